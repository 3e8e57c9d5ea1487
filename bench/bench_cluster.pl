# bench/bench_cluster.pl: the cluster case of `make bench`, loaded by
# bench.pl (same package: it uses bench.pl's spawn, stop_proc, wait_port,
# free_port, api, cpu_of, child_cpu, cmd_out, slurp, spew, tail, summarize,
# fmt, cell, note).
#
# Many leases at once, each with its own pair of agents (an `egress host`
# agent and a lease-side nginx with the module) and one bulk download, in
# two topologies built side by side on one scratch PostgreSQL:
#   single:  agents -> 1 egress-coordinator
#   cluster: agents -> nginx http front (conf/coordinator-cluster.conf.example,
#            adapted to loopback) -> 3 egress-coordinators
# On two cores three instances cannot relay more than one; what the run
# shows is the CPU each GiB costs in each topology, the front's share, and
# how the leases spread over the instances. See bench/README.md.
use strict;
use warnings;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

my $CX;    # context from bench.pl: dir, origin, origin_port, quick, tools, eb, root
my %CC;    # sizes

# ---- PostgreSQL, from Debian's packages, as in t/lib/Test/Egress/Postgres.pm ----------

sub cl_pg_bindir {
    my @dirs = sort { ($b =~ m{/(\d+)/bin$})[0] <=> ($a =~ m{/(\d+)/bin$})[0] }
        grep { -x "$_/initdb" && -x "$_/postgres" } glob('/usr/lib/postgresql/*/bin');
    return $dirs[0];
}

# Runs a command (as $as = [uid, gid] when given) to completion; returns (rc, output).
sub cl_run_as {
    my ($as, @cmd) = @_;
    my $pid = open(my $fh, '-|') // return (-1, "fork: $!");
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        if ($as) { chdir '/'; POSIX::setgid($as->[1]); POSIX::setuid($as->[0]) or exit 127 }
        exec @cmd or exit 127;
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

# Starts a scratch server; returns its port, or dies with the reason.
sub cl_pg_start {
    my $bin = cl_pg_bindir() or die "PostgreSQL server binaries not found under /usr/lib/postgresql\n";
    my $dir = "$CX->{dir}/cluster-pg";
    mkdir $dir or die "mkdir $dir: $!\n";
    my $as;
    if ($> == 0) {    # PostgreSQL refuses root
        my (undef, undef, $uid, $gid) = getpwnam('nobody') or die "no user nobody\n";
        chmod 0711, $CX->{dir};
        chown $uid, $gid, $dir or die "chown $dir: $!\n";
        $as = [ $uid, $gid ];
    }
    my ($rc, $out) = cl_run_as($as, "$bin/initdb", '-D', "$dir/data", '-U', 'egress', '--auth=trust',
        '--encoding=UTF8', '--locale=C', '--no-sync');
    die "initdb failed ($rc): " . substr($out, -300) . "\n" if $rc;
    my $port = free_port();
    spawn('cluster-postgres', [ "$bin/postgres", '-D', "$dir/data", '-p', $port,
        '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
        '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'max_connections=100' ],
        as => $as, cwd => '/');
    my $until = time + 60;
    while (time < $until) {
        ($rc) = cl_run_as(undef, "$bin/psql", '-h', '127.0.0.1', '-p', $port, '-U', 'egress',
            '-d', 'postgres', '-Atc', 'SELECT 1');
        last if $rc == 0;
        sleep 0.2;
    }
    die "PostgreSQL did not become ready\n" if $rc;
    for my $db (qw(single cluster)) {
        ($rc, $out) = cl_run_as(undef, "$bin/psql", '-h', '127.0.0.1', '-p', $port, '-U', 'egress',
            '-d', 'postgres', '-Atc', "CREATE DATABASE egress_$db");
        die "CREATE DATABASE: $out\n" if $rc;
    }
    $CX->{pg_version} = (cmd_out("$bin/postgres", '--version') =~ /(\d+[\d.]*)/)[0];
    return $port;
}

# ---- topologies -----------------------------------------------------------------------

my %COORD_ENV = (EGRESS_RATE_MINT => '100000:100000', EGRESS_RATE_FAIL => '100000:100000');

# The shipped example with loopback addresses, no TLS, one worker.
sub cl_front_conf {
    my ($dir, $port, @cports) = @_;
    my $conf = slurp("$CX->{root}/conf/coordinator-cluster.conf.example");
    my $i = 0;
    for my $cp (@cports) {
        $i++;
        $conf =~ s/192\.0\.2\.1$i:8080/127.0.0.1:$cp/g;
    }
    my $n = 0;
    $n += ($conf =~ s/listen 443 ssl;/listen 127.0.0.1:$port backlog=4096;/);
    $n += ($conf =~ s/^\s*ssl_certificate(?:_key)?\s.*\n//mg);
    $n += ($conf =~ s/rate=20r\/s/rate=100000r\/s/);    # every agent is 127.0.0.1
    $n += ($conf =~ s/^worker_processes auto;/worker_processes 1;\ndaemon off;\npid $dir\/front.pid;\nerror_log $dir\/front-error.log warn;/m);
    die "conf/coordinator-cluster.conf.example changed shape ($n of 5 edits applied)\n" if $n != 5;
    return $conf;
}

# Builds one topology: coordinators (and the front), N leases with their
# agents. Returns { name, base, coords => [pids], front => pid, agents =>
# [pids], nginx => [pids], ports => [lease nginx ports], cports => [...] }.
sub cl_setup {
    my ($name, $ninst, $pgport) = @_;
    my $d = "$CX->{dir}/cluster-$name";
    mkdir $d;
    chmod 0711, $d;
    my $db = "postgresql://egress\@127.0.0.1:$pgport/egress_$name";
    my %t = (name => $name, coords => [], agents => [], nginx => [], ports => [], cports => [], procs => []);
    for my $i (1 .. $ninst) {
        my $cp = free_port();
        my $pn = "cl-$name-coord$i";
        spawn($pn, [ "$CX->{eb}/egress-coordinator", '--listen', "127.0.0.1:$cp", '--db', $db,
            '--instance', "$name-$i" ], env => \%COORD_ENV);
        push @{ $t{procs} }, $pn;
        my $e = wait_port($pn, $cp, 30);
        die "$pn: $e\n" if $e;
        push @{ $t{coords} }, $CX->{procs}{$pn}{pid};
        push @{ $t{cports} }, $cp;
    }
    my $base = "http://127.0.0.1:$t{cports}[0]";
    if ($ninst > 1) {
        my $fp = free_port();
        spew("$d/front.conf", cl_front_conf($d, $fp, @{ $t{cports} }));
        my $pn = "cl-$name-front";
        spawn($pn, [ '/usr/sbin/nginx', '-p', "$d/", '-c', "$d/front.conf", '-e', "$d/front-error.log" ]);
        push @{ $t{procs} }, $pn;
        my $e = wait_port($pn, $fp, 15);
        die "$pn: $e " . tail("$d/front-error.log") . "\n" if $e;
        $t{front} = $CX->{procs}{$pn}{pid};
        $base = "http://127.0.0.1:$fp";
    }
    $t{base} = $base;
    my $tok = cmd_out("$CX->{eb}/egress-coordinator", '--db', $db, 'token', 'add', '--owner', 'bench',
        '--org', 'bench');
    ($tok) = $tok =~ /(egk_[A-Za-z0-9_-]+)/ or die "token add printed no token\n";
    $t{tok} = $tok;
    # memory before the leases: PSS growth per lease once all are paired
    my $mem = sub { my $x = 0; $x += mem_of($_) for @{ $t{coords} }; $x };
    my $m0 = $mem->();
    my $f0 = $t{front} ? mem_of($t{front}) : 0;
    (my $ws = $base) =~ s{^http://}{ws://};
    my $allow = "127.0.0.1:$CX->{origin_port},localhost:$CX->{origin_port}";
    my $nofile = 4096;
    for my $l (1 .. $CC{leases}) {
        my ($st, $lease, $raw) = api($base, 'POST', '/v1/leases', $tok, { ttlSeconds => 7200 });
        die "POST /v1/leases: $st " . substr($raw // '', 0, 120) . "\n" unless $st == 201 && $lease->{id};
        my $id = $lease->{id};
        my ($s1, $ct, $r1) = api($base, 'POST', "/v1/leases/$id/egress/ticket", $tok, { role => 'client' });
        die "client ticket: $s1 " . substr($r1 // '', 0, 120) . "\n" unless $ct && $ct->{ticket};
        my ($s2, $ht, $r2) = api($base, 'POST', "/v1/leases/$id/egress/ticket", $tok,
            { role => 'host', sessionID => $ct->{sessionID}, allow => [ split /,/, $allow ] });
        die "host ticket: $s2 " . substr($r2 // '', 0, 120) . "\n" unless $ht && $ht->{ticket};
        my $ld = "$d/lease$l";
        mkdir $ld;
        chmod 0700, $ld;
        my $an = "cl-$name-agent$l";
        spawn($an, [ "$CX->{eb}/egress", 'host', '--id', $id, '--session', $ct->{sessionID},
            '--allow', $allow, '--allow-private', '--coordinator', $base ],
            env => { EGRESS_TICKET => $ht->{ticket}, EGRESS_COORDINATOR => $base,
                XDG_STATE_HOME => $ld, XDG_CONFIG_HOME => $ld, HOME => $ld });
        push @{ $t{procs} }, $an;
        push @{ $t{agents} }, $CX->{procs}{$an}{pid};
        spew("$ld/client.ticket", $ct->{ticket}, 0600);
        my $np = free_port();
        mkdir "$ld/logs";
        my $user = $> == 0 ? 'user root;' : '';
        # one process per lease (master_process off): the lease side of a
        # real deployment is one nginx per lease machine
        spew("$ld/nginx.conf", <<"EOF");
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
load_module $CX->{eb}/ngx_stream_egress_module.so;
$user
worker_processes 1;
worker_rlimit_nofile $nofile;
daemon off;
master_process off;
pid $ld/nginx.pid;
error_log $ld/logs/error.log warn;
events { worker_connections 1024; }
stream {
    egress_bridge $ws/v1/leases/$id/egress/client;
    egress_bridge_ticket_file $ld/client.ticket;
    egress_bridge_state_file  $ld/client.state;
    server {
        listen 127.0.0.1:$np;
        egress_proxy on;
        egress_open_timeout 15s;
    }
}
EOF
        my $nn = "cl-$name-nginx$l";
        spawn($nn, [ '/usr/sbin/nginx', '-p', "$ld/", '-c', "$ld/nginx.conf", '-e', "$ld/logs/error.log" ]);
        push @{ $t{procs} }, $nn;
        my $e = wait_port($nn, $np, 15);
        die "$nn: $e " . tail("$ld/logs/error.log") . "\n" if $e;
        push @{ $t{nginx} }, $CX->{procs}{$nn}{pid};
        push @{ $t{ports} }, $np;
        push @{ $t{ids} }, $id;
    }
    # every lease paired (bounded), then one byte through each
    for my $i (0 .. $#{ $t{ids} }) {
        my $id = $t{ids}[$i];
        my $until = time + 30;
        my $j;
        while (time < $until) {
            (my $s, $j) = api($base, 'GET', "/v1/leases/$id/egress/status", $tok);
            last if $s == 200 && $j && $j->{hostConnected} && $j->{clientConnected};
            sleep 0.1;
        }
        die "lease " . ($i + 1) . " never paired; agent: " . tail($CX->{procs}{"cl-$name-agent" . ($i + 1)}{log}) . "\n"
          unless $j && $j->{hostConnected} && $j->{clientConnected};
        my $p = { connect => "127.0.0.1:$t{ports}[$i]", proxy => 1 };
        my $e;
        my $probe_until = time + 10;
        do { $e = probe($p) } while ($e =~ /\b503\b/ && time < $probe_until && sleep 0.1);
        die "lease " . ($i + 1) . ": $e\n" if $e;
    }
    $t{kib_per_lease_coord} = ($mem->() - $m0) / 1024 / $CC{leases};
    $t{kib_per_lease_front} = $t{front} ? (mem_of($t{front}) - $f0) / 1024 / $CC{leases} : 0;
    return \%t;
}

# Sockets per instance from each instance's /metrics (named by egress_coordinator_info).
sub cl_spread {
    my $t = shift;
    my %by;
    for my $cp (@{ $t->{cports} }) {
        my $m = $CX->{http}->get("http://127.0.0.1:$cp/metrics")->{content} // '';
        my ($inst) = $m =~ /^egress_coordinator_info\{coordinator="([^"]+)"/m;
        my ($h) = $m =~ /^egress_sockets\{role="host"\} (\d+)/m;
        my ($c) = $m =~ /^egress_sockets\{role="client"\} (\d+)/m;
        $by{ $inst // "127.0.0.1:$cp" } = ($h // 0) + ($c // 0);
    }
    return \%by;
}

# ---- the workload: one bulk download per lease, all at once ------------------------------

sub cl_snap {
    my $t = shift;
    my %s = (client => child_cpu(), origin => cpu_of($CX->{procs}{origin}{pid}));
    my $sum = sub { my $x = 0; $x += cpu_of($_) for @_; $x };
    $s{coordinators} = $sum->(@{ $t->{coords} });
    $s{front} = $t->{front} ? cpu_of($t->{front}) : 0;
    $s{lease_nginx} = $sum->(@{ $t->{nginx} });
    $s{host_agents} = $sum->(@{ $t->{agents} });
    $s{"coordinator.$_"} = cpu_of($t->{coords}[$_]) for 0 .. $#{ $t->{coords} };
    return \%s;
}

sub cl_bulk {
    my $t = shift;
    my @h;
    my $c0 = cl_snap($t);    # before any download starts (a snapshot scans /proc per process)
    for my $np (@{ $t->{ports} }) {
        my $cmd = [ "$CX->{tools}/loadgen", '--connect', "127.0.0.1:$np", '--target', $CX->{origin},
            '--proxy', '--bytes', 64 * 1024 * 1024 * 1024, '--max-time', $CC{secs} ];
        my $pid = open(my $fh, '-|') // die "fork: $!\n";
        if (!$pid) { open STDERR, '>', '/dev/null'; exec @$cmd or exit 127 }
        push @h, $fh;
    }
    my ($bytes, $failed, $slowest, $fastest) = (0, 0, undef, undef);
    for my $fh (@h) {    # loadgen stops itself after --max-time
        local $/;
        my $out = <$fh> // '';
        close $fh;
        my ($line) = grep {/^\{/} reverse split /\n/, $out;
        my $r = $line ? eval { decode_json($line) } : undef;
        if (!$r || !$r->{bytes}) { $failed++; next }
        $bytes += $r->{bytes};
        my $rate = $r->{mib_s};
        $slowest = $rate if !defined $slowest || $rate < $slowest;
        $fastest = $rate if !defined $fastest || $rate > $fastest;
    }
    my $c1 = cl_snap($t);
    return { error => "$failed of " . scalar(@h) . ' downloads moved nothing' } if $failed;
    my $gib = $bytes / (1024 * 1024 * 1024);
    my %f = (mib_s => $bytes / 1048576 / $CC{secs}, gib => $gib, stream_min_mib_s => $slowest,
        stream_max_mib_s => $fastest);
    my $tot = 0;
    for my $k (keys %$c1) {
        my $v = ($c1->{$k} - $c0->{$k}) / $gib;
        $f{"cpu_s_per_gib.$k"} = $v;
        $tot += $v unless $k =~ /\./;
    }
    $f{cpu_s_per_gib_total} = $tot;
    $f{coord_cpu_s_per_gib} = $f{'cpu_s_per_gib.coordinators'};
    $f{front_cpu_s_per_gib} = $f{'cpu_s_per_gib.front'};
    return \%f;
}

# ---- driver ------------------------------------------------------------------------------

sub cluster_run {
    $CX = shift;
    %CC = $CX->{quick} ? (runs => 2, leases => 10, secs => 3) : (runs => 3, leases => 30, secs => 6);
    $CC{runs} = $ENV{BENCH_CLUSTER_RUNS} if $ENV{BENCH_CLUSTER_RUNS};
    $CC{leases} = $ENV{BENCH_CLUSTER_LEASES} if $ENV{BENCH_CLUSTER_LEASES};
    my $t0 = time;
    for my $b ('egress-coordinator', 'egress', 'ngx_stream_egress_module.so') {
        die "$CX->{eb}/$b not built\n" unless -e "$CX->{eb}/$b";
    }
    my $pgport = cl_pg_start();
    my %topo;
    my @names = qw(single cluster);
    $topo{single} = cl_setup('single', 1, $pgport);
    note("cluster case: single ready ($CC{leases} leases)");
    $topo{cluster} = cl_setup('cluster', 3, $pgport);
    note("cluster case: cluster ready ($CC{leases} leases over 3 instances)");
    my $spread = cl_spread($topo{cluster});
    my %res;
    for my $run (1 .. $CC{runs}) {
        my %r;
        for my $n (@names) {
            my $t = time;
            $r{$n} = eval { cl_bulk($topo{$n}) } // { error => "died: $@" };
            note(sprintf('cluster   %-8s run %d: %s (%.1fs)', $n, $run, $r{$n}{error} ? "ERROR $r{$n}{error}"
                : join(' ', map { "$_=" . fmt($r{$n}{$_}) } grep { !/\./ } sort keys %{ $r{$n} }), time - $t));
        }
        # ratios within the same run
        if (!$r{single}{error} && !$r{cluster}{error}) {
            my ($s, $c) = ($r{single}, $r{cluster});
            $r{ratio} = {
                coord_cluster_over_single => $c->{coord_cpu_s_per_gib} / $s->{coord_cpu_s_per_gib},
                front_over_single_coord   => $c->{front_cpu_s_per_gib} / $s->{coord_cpu_s_per_gib},
                total_cluster_over_single => $c->{cpu_s_per_gib_total} / $s->{cpu_s_per_gib_total},
                mib_s_cluster_over_single => $c->{mib_s} / $s->{mib_s},
            };
        } else {
            $r{ratio} = { error => 'a topology failed in this run' };
        }
        push @{ $res{$_} }, $r{$_} for @names, 'ratio';
    }
    stop_proc($_) for map { @{ $topo{$_}{procs} } } @names;
    stop_proc('cluster-postgres');

    my %sum = map { $_ => summarize($res{$_}) } @names, 'ratio';
    my %mem = map { $_ => { coordinators_kib_per_lease => $topo{$_}{kib_per_lease_coord},
        front_kib_per_lease => $topo{$_}{kib_per_lease_front} } } @names;
    my $json = { config => \%CC, postgresql => $CX->{pg_version}, spread => $spread, memory => \%mem,
        duration_s => int(time - $t0),
        map { $_ => { runs => $res{$_}, summary => $sum{$_} } } @names, 'ratio' };

    my $F = sub { my ($n, $k) = @_; return $sum{$n}{figures}{$k} };
    my @md = ('## Cluster: 3 coordinators behind nginx against 1', '',
        "$CC{leases} leases at once, each with its own host agent and lease-side nginx and one bulk "
        . "download for $CC{secs} s; $CC{runs} runs; one PostgreSQL $CX->{pg_version} for both "
        . 'topologies (it is not on the relay path). `single`: agents straight to one coordinator. '
        . '`cluster`: agents through an nginx http front (conf/coordinator-cluster.conf.example, 1 worker) '
        . 'to 3 coordinators. CPU s/GiB per role, summed over its processes; the ratios are taken '
        . 'within each run, then the median.', '',
        '| topology | aggregate MiB/s | slowest stream MiB/s | coordinators CPU s/GiB | front CPU s/GiB '
        . '| lease nginx CPU s/GiB | host agents CPU s/GiB | all procs CPU s/GiB |',
        '|---|---|---|---|---|---|---|---|');
    for my $n (@names) {
        push @md, "| $n | " . join(' | ', map { cell($F->($n, $_)) } 'mib_s', 'stream_min_mib_s',
            'cpu_s_per_gib.coordinators', 'cpu_s_per_gib.front', 'cpu_s_per_gib.lease_nginx',
            'cpu_s_per_gib.host_agents', 'cpu_s_per_gib_total')
          . (@{ $sum{$n}{errors} } ? " ($sum{$n}{errors}[0])" : '') . ' |';
    }
    push @md, '', '| ratio (same run) | value |', '|---|---|',
        '| coordinators CPU/GiB, cluster ÷ single | ' . cell($F->('ratio', 'coord_cluster_over_single')) . ' |',
        '| front CPU/GiB ÷ single coordinator CPU/GiB | ' . cell($F->('ratio', 'front_over_single_coord')) . ' |',
        '| all processes CPU/GiB, cluster ÷ single | ' . cell($F->('ratio', 'total_cluster_over_single')) . ' |',
        '| aggregate MiB/s, cluster ÷ single | ' . cell($F->('ratio', 'mib_s_cluster_over_single')) . ' |',
        '', 'cluster: per-instance CPU s/GiB: ' . join('; ', map {
            'instance ' . ($_ + 1) . ' ' . cell($F->('cluster', "cpu_s_per_gib.coordinator.$_")) } 0 .. 2),
        '', 'cluster: agent sockets per instance (from each instance\'s /metrics, before the runs): '
        . join(', ', map {"$_ $spread->{$_}"} sort keys %$spread), '',
        'memory per paired lease (PSS growth from before the leases to all paired, one sample): '
        . join('; ', map { sprintf('%s: coordinators %s KiB%s', $_, fmt($mem{$_}{coordinators_kib_per_lease}),
            $_ eq 'cluster' ? ', front ' . fmt($mem{$_}{front_kib_per_lease}) . ' KiB' : '') } @names), '';
    return ($json, \@md);
}

1;
