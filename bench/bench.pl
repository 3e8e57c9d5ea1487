#!/usr/bin/perl
# bench/bench.pl: the benchmark driver behind `make bench` (bench/run.sh
# installs the peers and builds the C tools first, then runs this).
#
# Starts every path on 127.0.0.1 (origin, squid, tinyproxy, websockify +
# wsbridge, npm wstunnel, egress v2 and v1), runs each workload RUNS times
# with the paths interleaved, and writes bench/results/latest.{md,json}.
# Read bench/README.md for what every figure means.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use IPC::Open2 qw(open2);
use JSON::PP;
use POSIX qw(:sys_wait_h strftime);
use Time::HiRes qw(time sleep);

my $ROOT  = abs_path(dirname(abs_path($0)) . '/..');
my $TOOLS = $ENV{BENCH_TOOLS} // "$ROOT/build/bench";
my $EB    = $ENV{EGRESS_BUILD} // "$ROOT/build";
my $OUT   = $ENV{BENCH_OUT} // "$ROOT/bench/results";
my $QUICK = $ENV{BENCH_QUICK} ? 1 : 0;
my $ONLY  = $ENV{BENCH_PATHS};    # e.g. "direct,squid,egress-v2"
my $PART  = $ENV{BENCH_ONLY} // '';    # net | loopback | cluster | '' (all)
die "BENCH_ONLY must be net, loopback or cluster\n" if $PART !~ /^(|net|loopback|cluster)$/;
my $DO_LOOP = $PART eq '' || $PART eq 'loopback';
my $DO_NET  = $PART eq '' || $PART eq 'net';
my $DO_CLUSTER = $PART eq '' || $PART eq 'cluster';
my $MiB   = 1024 * 1024;
my $GiB   = 1024 * $MiB;

# Sizes: the full suite follows issue 7; BENCH_QUICK=1 is a smoke run.
my %C = $QUICK
  ? ( runs => 3, bulk_down => 256 * $MiB, bulk_up => 64 * $MiB, bulk_max => 4,
      many => [ 100, 500 ], many_bytes => 256 * 1024, many_max => 10, idle => 1000,
      lat_samples => 100, lat_open => 1000, lat_bulk => 256 * $MiB,
      slow_fast => 256 * $MiB, slow_max => 4, wrk_secs => 1, wrk_conns => 16,
      idle_cap_fork => 200 )
  : ( runs => 5, bulk_down => 2 * $GiB, bulk_up => 512 * $MiB, bulk_max => 10,
      many => [ 100, 1000 ], many_bytes => $MiB, many_max => 20, idle => 5000,
      lat_samples => 300, lat_open => 1000, lat_bulk => $GiB,
      slow_fast => $GiB, slow_max => 8, wrk_secs => 5, wrk_conns => 32,
      idle_cap_fork => 500 );
$C{runs} = $ENV{BENCH_RUNS} if $ENV{BENCH_RUNS};

my $DIR = tempdir('egress-bench-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{BENCH_KEEP});
my $TCK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
my $HTTP = HTTP::Tiny->new(timeout => 10);
my %procs;    # name => { pid, cmd, log }
my @order;
my %pathprocs;    # path => [ process names it started ]
our $CUR_PATH;    # set while a path's setup runs
my $SETUPS = 0;   # fresh directories for restarted paths

sub note { print STDERR strftime('%H:%M:%S ', gmtime), @_, "\n" }

# ---- processes -----------------------------------------------------------

sub spawn {
    my ($name, $cmd, %o) = @_;
    my $log = "$DIR/$name.log";
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        setpgrp(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>>', $log;
        $ENV{$_} = $o{env}{$_} for keys %{ $o{env} // {} };
        chdir $o{cwd} if $o{cwd};
        if ($o{as}) {    # [uid, gid]: PostgreSQL refuses to run as root
            $) = "$o{as}[1] $o{as}[1]";
            POSIX::setgid($o{as}[1]);
            POSIX::setuid($o{as}[0]) or die "setuid: $!";
        }
        exec @$cmd or die "exec $cmd->[0]: $!";
    }
    $procs{$name} = { pid => $pid, cmd => $cmd, log => $log };
    push @order, $name;
    push @{ $pathprocs{$CUR_PATH} }, $name if $CUR_PATH;
    return $pid;
}

sub alive { my $pid = shift; return $pid && kill(0, $pid) && !waitpid($pid, WNOHANG) }

sub stop_proc {
    my $name = shift;
    my $p = delete $procs{$name} or return;
    kill 'TERM', -$p->{pid};
    kill 'TERM', $p->{pid};
    for (1 .. 50) {    # 5 s, then KILL
        return if waitpid($p->{pid}, WNOHANG) != 0;
        sleep 0.1;
    }
    kill 'KILL', -$p->{pid};
    waitpid($p->{pid}, 0);
}

sub stop_all {
    net_kill_kids() if defined &net_kill_kids;    # bench_net.pl's readers
    stop_proc($_) for reverse @order;
    @order = ();
}
$SIG{INT} = $SIG{TERM} = sub { stop_all(); exit 130 };
END { stop_all() if %procs }

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1,
        ReuseAddr => 1) or die "free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub port_open {
    my $port = shift;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 1);
    return $s ? (close($s), 1)[1] : 0;
}

# Waits (bounded) for a port to accept; returns '' or a reason.
sub wait_port {
    my ($name, $port, $secs) = @_;
    my $until = time + ($secs // 15);
    while (time < $until) {
        return '' if port_open($port);
        my $p = $procs{$name};
        return "$name exited: " . tail($p->{log}) if $p && waitpid($p->{pid}, WNOHANG) != 0;
        sleep 0.05;
    }
    return "$name did not listen on $port: " . tail($procs{$name}{log});
}

sub slurp { my $f = shift; open my $fh, '<', $f or return ''; local $/; my $t = <$fh>; return $t // '' }
sub spew { my ($f, $t, $mode) = @_; open my $fh, '>', $f or die "$f: $!"; print $fh $t; close $fh; chmod $mode, $f if $mode }
sub tail {
    my $t = slurp(shift // '');
    my @l = grep { /\S/ } split /\n/, $t;
    my $s = join(' | ', @l[ ($#l > 2 ? $#l - 2 : 0) .. $#l ]);
    $s =~ s/\b(eg[ktr]_)[A-Za-z0-9_-]+/$1***/g;    # never echo a secret
    return substr($s, 0, 300);
}

# ---- /proc measurements ---------------------------------------------------

sub tree_pids {
    my $root = shift;
    my %kids;
    for my $st (glob '/proc/[0-9]*/stat') {
        my $t = slurp($st) or next;
        $t =~ /^(\d+) \(.*\) \S+ (\d+)/s or next;
        push @{ $kids{$2} }, $1;
    }
    my @out = ($root);
    for (my $i = 0; $i < @out; $i++) { push @out, @{ $kids{ $out[$i] } // [] } }
    return @out;
}

# CPU seconds of a process tree, including reaped children of its members.
sub cpu_of {
    my $root = shift;
    my $ticks = 0;
    for my $pid (tree_pids($root)) {
        my $t = slurp("/proc/$pid/stat") or next;
        $t =~ s/^.*\) //s;
        my @f = split ' ', $t;    # f[11]=utime f[12]=stime f[13]=cutime f[14]=cstime
        $ticks += $f[11] + $f[12] + $f[13] + $f[14];
    }
    return $ticks / $TCK;
}

# Memory of a process tree in bytes: PSS (fair for forking servers) or RSS.
sub mem_of {
    my ($root, $kind) = @_;
    my $kb = 0;
    for my $pid (tree_pids($root)) {
        if (($kind // 'pss') eq 'pss') {
            my $t = slurp("/proc/$pid/smaps_rollup");
            if ($t =~ /^Pss:\s+(\d+)/m) { $kb += $1; next }
        }
        my $s = slurp("/proc/$pid/status");
        $kb += $1 if $s =~ /^VmRSS:\s+(\d+)/m;
    }
    return $kb * 1024;
}

# ---- paths ------------------------------------------------------------------

my $ORIGIN_PORT;
my $ORIGIN = '';
my %path;          # name => { avail, reason, connect, proxy, roles => {role => pid}, fork }
my @PATHS = qw(direct squid tinyproxy websockify wstunnel egress-v2 egress-v1);
my %versions;

sub path_add {
    my ($name, %o) = @_;
    $path{$name} = { name => $name, avail => 1, roles => {}, %o };
}

sub path_skip {
    my ($name, $why) = @_;
    $why =~ s/\s+/ /g;
    $path{$name} = { name => $name, avail => 0, reason => $why, roles => {} };
    note "$name: not run: $why";
}

sub have { my $b = shift; return scalar grep { -x "$_/$b" } split /:/, "$ENV{PATH}:/usr/sbin:/sbin" }

sub cmd_out {
    my @cmd = @_;
    my $pid = open(my $fh, '-|') // return '';
    if (!$pid) { open STDERR, '>&', \*STDOUT; exec @cmd or exit 127 }
    local $/;
    my $t = <$fh> // '';
    close $fh;
    return $t;
}

# A one-stream probe through a path; returns '' or the failure.
sub probe {
    my $p = shift;
    my $r = loadgen($p, [ '--bytes', 1024, '--max-time', 10 ]);
    return '' if $r && $r->{ok} == 1;
    return 'probe failed: ' . ($r ? $r->{error} || 'no answer' : 'loadgen failed');
}

sub setup_direct {
    path_add('direct', connect => "127.0.0.1:$ORIGIN_PORT", proxy => 0, roles => {});
}

sub setup_squid {
    return path_skip('squid', 'squid not installed') unless have('squid');
    my $d = "$DIR/squid-" . ++$SETUPS;
    mkdir $d;
    chmod 0777, $d;
    my $port = free_port();
    spew("$d/squid.conf", <<"EOF");
http_port 127.0.0.1:$port
acl lo src 127.0.0.1/32
http_access allow lo
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log $d/cache.log
pid_filename $d/squid.pid
coredump_dir $d
netdb_filename none
max_filedescriptors 16384
shutdown_lifetime 1 seconds
dns_nameservers 127.0.0.1
EOF
    spawn('squid', [ 'squid', '-N', '-f', "$d/squid.conf" ]);
    my $e = wait_port('squid', $port, 20);
    return path_skip('squid', $e) if $e;
    path_add('squid', connect => "127.0.0.1:$port", proxy => 1,
        roles => { squid => $procs{squid}{pid} });
    ($versions{squid}) = cmd_out('squid', '-v') =~ /Version (\S+)/;
}

sub setup_tinyproxy {
    return path_skip('tinyproxy', 'tinyproxy not installed') unless have('tinyproxy');
    my $port = free_port();
    my $tc = "$DIR/tinyproxy-" . ++$SETUPS . '.conf';
    spew($tc, <<"EOF");
Port $port
Listen 127.0.0.1
Timeout 600
MaxClients 6000
Allow 127.0.0.1
LogLevel Error
EOF
    spawn('tinyproxy', [ 'tinyproxy', '-d', '-c', $tc ]);
    my $e = wait_port('tinyproxy', $port, 15);
    return path_skip('tinyproxy', $e) if $e;
    path_add('tinyproxy', connect => "127.0.0.1:$port", proxy => 1,
        roles => { tinyproxy => $procs{tinyproxy}{pid} });
    ($versions{tinyproxy}) = cmd_out('tinyproxy', '-v') =~ /tinyproxy (\S+)/;
}

sub setup_websockify {
    return path_skip('websockify', 'websockify not installed') unless have('websockify');
    my ($ws, $l) = (free_port(), free_port());
    spawn('websockify', [ 'websockify', "127.0.0.1:$ws", "127.0.0.1:$ORIGIN_PORT" ]);
    my $e = wait_port('websockify', $ws, 15);
    return path_skip('websockify', $e) if $e;
    spawn('wsbridge', [ "$TOOLS/wsbridge", '--listen', "127.0.0.1:$l", '--ws', "127.0.0.1:$ws" ]);
    $e = wait_port('wsbridge', $l, 15);
    return path_skip('websockify', $e) if $e;
    path_add('websockify', connect => "127.0.0.1:$l", proxy => 0, fork => 1,
        roles => { wsbridge => $procs{wsbridge}{pid}, websockify => $procs{websockify}{pid} });
    $e = probe($path{websockify});
    return path_skip('websockify', $e) if $e;
    $versions{websockify} = cmd_out('dpkg-query', '-W', '-f', '${Version}', 'websockify');
}

sub setup_wstunnel {
    my $js = "$TOOLS/npm/node_modules/wstunnel/bin/wstt.js";
    return path_skip('wstunnel', $ENV{BENCH_WSTUNNEL_MISSING} || 'npm wstunnel not installed')
      unless -f $js && have('node');
    my ($ws, $l) = (free_port(), free_port());
    spawn('wstunnel-server', [ 'node', $js, '-s', "127.0.0.1:$ws" ]);
    my $e = wait_port('wstunnel-server', $ws, 20);
    return path_skip('wstunnel', $e) if $e;
    spawn('wstunnel-client', [ 'node', $js, '-t', "127.0.0.1:$l:127.0.0.1:$ORIGIN_PORT",
        "ws://127.0.0.1:$ws" ]);
    $e = wait_port('wstunnel-client', $l, 20);
    return path_skip('wstunnel', $e) if $e;
    path_add('wstunnel', connect => "127.0.0.1:$l", proxy => 0,
        roles => { 'wstunnel-client' => $procs{'wstunnel-client'}{pid},
                   'wstunnel-server' => $procs{'wstunnel-server'}{pid} });
    $e = probe($path{wstunnel});
    return path_skip('wstunnel', $e) if $e;
    my $pj = eval { decode_json(slurp("$TOOLS/npm/node_modules/wstunnel/package.json")) };
    $versions{wstunnel} = $pj ? "$pj->{version} (node " . `node --version` =~ s/\s+//r . ')' : '?';
}

sub api {
    my ($base, $method, $path, $tok, $body) = @_;
    my $r = $HTTP->request($method, "$base$path", {
        headers => { Authorization => "Bearer $tok", 'Content-Type' => 'application/json' },
        ($body ? (content => encode_json($body)) : ()) });
    my $j = eval { decode_json($r->{content}) };
    return ($r->{status}, $j, $r->{content});
}

# HOOK (egress v1): neither the module nor the agent has a documented way to
# force the seed protocol yet. Set BENCH_EGRESS_V1_NGINX (directive text for
# the stream{} block, e.g. "egress_bridge_protocol v1;") and/or
# BENCH_EGRESS_V1_AGENT (extra agent flags, e.g. "--protocol v1"); we also
# auto-detect those two spellings when the built binaries contain them.
sub egress_v1_knobs {
    my $ng = $ENV{BENCH_EGRESS_V1_NGINX};
    my $ag = $ENV{BENCH_EGRESS_V1_AGENT};
    if (!defined $ng && slurp("$EB/ngx_stream_egress_module.so") =~ /egress_bridge_protocol\0/) {
        $ng = 'egress_bridge_protocol v1;';
    }
    if (!defined $ag && cmd_out("$EB/egress", 'host', '--help') =~ /--protocol\b/) {
        $ag = '--protocol v1';
    }
    return ($ng, $ag);
}

# setup_egress('v2'), or with (name => 'egress-net', delay_ms => D): then
# each WebSocket leg (nginx -> coordinator, agent -> coordinator) goes
# through its own bench/delayrelay adding D ms each way (the REST calls of
# this setup go straight to the coordinator).
sub setup_egress {
    my ($ver, %o) = @_;    # 'v2' or 'v1'
    my $name = $o{name} // "egress-$ver";
    for my $b ('egress-coordinator', 'egress', 'ngx_stream_egress_module.so') {
        return path_skip($name, "$EB/$b not built") unless -e "$EB/$b";
    }
    # BENCH_EGRESS_NGINX_EXTRA: stream{}-level directives for every egress
    # nginx (e.g. "egress_early_data connect;")
    my ($ng_extra, $ag_extra) = ($ENV{BENCH_EGRESS_NGINX_EXTRA} // '', '');
    my $v1_sides;
    if ($ver eq 'v1') {
        my ($ng, $ag) = egress_v1_knobs();
        return path_skip($name, 'no way to force protocol v1 yet (hook: BENCH_EGRESS_V1_NGINX / '
              . 'BENCH_EGRESS_V1_AGENT, see bench/README.md)') unless defined $ng || defined $ag;
        ($ng_extra, $ag_extra) = ($ng_extra . ($ng // ''), $ag // '');
        # only one side forced: the coordinator translates on the other leg
        $v1_sides = join('+', (defined $ng ? 'nginx' : ()), (defined $ag ? 'agent' : ()));
    }
    my $d = "$DIR/$name-" . ++$SETUPS;
    mkdir $d;
    chmod 0700, $d;
    my $cport = free_port();
    my $base = "http://127.0.0.1:$cport";
    my $cn = "$name-coordinator";
    spawn($cn, [ "$EB/egress-coordinator", '--listen', "127.0.0.1:$cport", '--db', "$d/coord.db" ]);
    my $e = wait_port($cn, $cport, 15);
    return path_skip($name, $e) if $e;
    my ($nginx_cport, $agent_base) = ($cport, $base);
    my %relays;
    if (defined $o{delay_ms}) {
        for my $leg ('nginx', 'agent') {
            my $rn = "$name-relay-$leg";
            my $rp = free_port();
            spawn($rn, [ "$TOOLS/delayrelay", '--listen', "127.0.0.1:$rp", '--connect', "127.0.0.1:$cport",
                '--delay-ms', $o{delay_ms} ]);
            $e = wait_port($rn, $rp, 10);
            return path_skip($name, $e) if $e;
            $relays{"relay-$leg"} = $procs{$rn}{pid};
            $leg eq 'nginx' ? ($nginx_cport = $rp) : ($agent_base = "http://127.0.0.1:$rp");
        }
    }
    my $tok = cmd_out("$EB/egress-coordinator", '--db', "$d/coord.db", 'token', 'add',
        '--owner', 'bench', '--org', 'bench');
    ($tok) = $tok =~ /(egk_[A-Za-z0-9_-]+)/;
    return path_skip($name, 'token add printed no token') unless $tok;
    my ($st, $lease, $raw) = api($base, 'POST', '/v1/leases', $tok,
        { slug => "bench-$ver", ttlSeconds => 7200 });
    return path_skip($name, "POST /v1/leases: $st " . substr($raw // '', 0, 120))
      unless $st =~ /^20[01]$/ && $lease && $lease->{id};
    my $id = $lease->{id};
    my ($s1, $ct, $r1) = api($base, 'POST', "/v1/leases/$id/egress/ticket", $tok, { role => 'client' });
    return path_skip($name, "client ticket: $s1 " . substr($r1 // '', 0, 120))
      unless $s1 =~ /^20[01]$/ && $ct && $ct->{ticket};
    my $allow = "127.0.0.1:$ORIGIN_PORT,localhost:$ORIGIN_PORT";
    my ($s2, $ht, $r2) = api($base, 'POST', "/v1/leases/$id/egress/ticket", $tok,
        { role => 'host', sessionID => $ct->{sessionID}, allow => [ split /,/, $allow ] });
    return path_skip($name, "host ticket: $s2 " . substr($r2 // '', 0, 120))
      unless $s2 =~ /^20[01]$/ && $ht && $ht->{ticket};

    my $an = "$name-agent";
    spawn($an, [ "$EB/egress", 'host', '--id', $id, '--session', $ct->{sessionID}, '--allow', $allow,
        '--allow-private', '--coordinator', $agent_base, split(' ', $ag_extra) ],
        env => { EGRESS_TICKET => $ht->{ticket}, EGRESS_COORDINATOR => $agent_base,
                 XDG_STATE_HOME => $d, XDG_CONFIG_HOME => $d, HOME => $d });

    spew("$d/client.ticket", $ct->{ticket}, 0600);
    my $np = free_port();
    mkdir "$d/logs";
    # as root, workers must run as root to read the 0600 ticket/state files
    my $user = $> == 0 ? 'user root;' : '';
    my $nofile = cmd_out('sh', '-c', 'ulimit -Hn') =~ /(\d+)/ ? $1 : 65536;
    $nofile = 65536 if $nofile > 65536;
    spew("$d/nginx.conf", <<"EOF");
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
load_module $EB/ngx_stream_egress_module.so;
$user
worker_processes 1;
worker_rlimit_nofile $nofile;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 16384; }
stream {
    egress_bridge ws://127.0.0.1:$nginx_cport/v1/leases/$id/egress/client;
    egress_bridge_ticket_file $d/client.ticket;
    egress_bridge_state_file  $d/client.state;
    $ng_extra
    server {
        listen 127.0.0.1:$np backlog=4096;
        egress_proxy on;
        egress_open_timeout 15s;
    }
}
EOF
    my $nn = "$name-nginx";
    spawn($nn, [ '/usr/sbin/nginx', '-p', "$d/", '-c', "$d/nginx.conf", '-e', "$d/logs/error.log" ]);
    $e = wait_port($nn, $np, 15);
    return path_skip($name, "$e " . tail("$d/logs/error.log")) if $e;

    # both agents paired (bounded), then one real stream end to end
    my $until = time + 20;
    my $stj;
    while (time < $until) {
        my ($s, $j) = api($base, 'GET', "/v1/leases/$id/egress/status", $tok);
        $stj = $j;
        last if $s == 200 && $j && $j->{hostConnected} && $j->{clientConnected};
        return path_skip($name, "agent exited: " . tail($procs{$an}{log})) unless alive($procs{$an}{pid});
        sleep 0.1;
    }
    return path_skip($name, 'host/client never both connected (status: '
          . join(',', map { "$_=" . ($stj->{$_} // '?') } qw(hostConnected clientConnected)) . '); agent: '
          . tail($procs{$an}{log}) . '; nginx: ' . tail("$d/logs/error.log"))
      unless $stj && $stj->{hostConnected} && $stj->{clientConnected};
    path_add($name, connect => "127.0.0.1:$np", proxy => 1, status => "$base/v1/leases/$id/egress/status",
        roles => { nginx => $procs{$nn}{pid}, coordinator => $procs{$cn}{pid}, agent => $procs{$an}{pid} },
        relays => \%relays, nginx_port => $np);
    # the module hears "peer connected" from the coordinator a leg later than
    # the status API shows it (D ms later behind a delay relay): 503 until then
    my $probe_until = time + 10;
    do { $e = probe($path{$name}) } while ($e =~ /\b503\b/ && time < $probe_until && sleep 0.1);
    return path_skip($name, "$e; nginx: " . tail("$d/logs/error.log") . '; agent: ' . tail($procs{$an}{log}))
      if $e;
    if ($ver eq 'v2' || !$versions{egress}) {
        $versions{egress} = (cmd_out("$EB/egress", '--version') =~ s/\s+$//r) . ' (git '
          . (cmd_out('git', '-C', $ROOT, 'rev-parse', '--short', 'HEAD') =~ s/\s+//gr) . ')';
    }
    my ($ps, $pj) = api($base, 'GET', "/v1/leases/$id/egress/status", $tok);
    if ($pj && $pj->{protocol}) {    # a string, or {host, client}
        my $pr = $pj->{protocol};
        $path{$name}{protocol} = ref $pr eq 'HASH'
          ? join(' ', map { "$_=" . ($pr->{$_} // '?') } sort keys %$pr) : "$pr";
    }
    $path{$name}{protocol} = ($path{$name}{protocol} // 'v1') . " forced on $v1_sides" if $v1_sides;
}

# ---- load generation ----------------------------------------------------------

sub lg_cmd {
    my ($p, $args) = @_;
    return [ "$TOOLS/loadgen", '--connect', $p->{connect}, '--target', $ORIGIN,
        ($p->{proxy} ? '--proxy' : ()), @$args ];
}

# Runs loadgen to completion (bounded) and returns its JSON result.
sub loadgen {
    my ($p, $args, $limit) = @_;
    my $cmd = lg_cmd($p, $args);
    my $pid = open(my $fh, '-|') // return undef;
    if (!$pid) { open STDERR, '>', '/dev/null'; exec @$cmd or exit 127 }
    my $out = '';
    my $deadline = time + ($limit // 120);
    my $sel = IO::Select->new($fh);
    while (time < $deadline) {
        next unless $sel->can_read(0.5);
        my $n = sysread($fh, my $buf, 65536);
        last unless $n;
        $out .= $buf;
    }
    if (time >= $deadline) { kill 'KILL', $pid }
    close $fh;
    my ($line) = grep { /^\{/ } reverse split /\n/, $out;
    return $line ? eval { decode_json($line) } : undef;
}

# Starts loadgen in the background with pipes; waits for a line matching
# $ready (bounded). Returns the handle or undef.
sub lg_start {
    my ($p, $args, $ready, $secs) = @_;
    my $cmd = lg_cmd($p, $args);
    my ($out, $in);
    my $pid = eval { open2($out, $in, @$cmd) } or return undef;
    my $h = { pid => $pid, out => $out, in => $in, buf => '' };
    my $sel = IO::Select->new($out);
    my $until = time + ($secs // 60);
    while (time < $until) {
        last if $h->{buf} =~ /^(READY|FLOWING)/m || $h->{buf} =~ /^\{/m;
        next unless $sel->can_read(0.2);
        my $n = sysread($out, my $b, 65536);
        last unless $n;
        $h->{buf} .= $b;
    }
    $h->{ready} = ($h->{buf} =~ /^($ready)(.*)$/m) ? "$1$2" : '';
    return $h;
}

# Ends a background loadgen (stdin EOF, then TERM) and returns its JSON.
sub lg_finish {
    my ($h, $term) = @_;
    return undef unless $h;
    kill 'TERM', $h->{pid} if $term;
    close $h->{in};
    my $sel = IO::Select->new($h->{out});
    my $until = time + 30;
    while (time < $until) {
        next unless $sel->can_read(0.5);
        my $n = sysread($h->{out}, my $b, 65536);
        last unless $n;
        $h->{buf} .= $b;
    }
    kill 'KILL', $h->{pid} if time >= $until;
    waitpid($h->{pid}, 0);
    my ($line) = grep { /^\{/ } reverse split /\n/, $h->{buf};
    return $line ? eval { decode_json($line) } : undef;
}

# BENCH_PERF=1: perf record the path's processes during the bulk runs (once
# per path and direction) and keep the top of `perf report` next to the
# results: results/perf-PATH-WORKLOAD.txt.
my %perf_done;
sub perf_start {
    my ($p, $w) = @_;
    return undef unless $ENV{BENCH_PERF} && %{ $p->{roles} } && have('perf');
    return undef if $perf_done{"$p->{name}-$w"}++;
    my @pids = map { tree_pids($_) } values %{ $p->{roles} };
    my $data = "$DIR/perf-$p->{name}-$w.data";
    my $pid = fork() // return undef;
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec 'perf', 'record', '-F', 499, '-g', '-o', $data, '-p', join(',', @pids);
        exit 127;
    }
    sleep 0.3;    # perf attaches asynchronously
    return { pid => $pid, data => $data, name => "$p->{name}-$w" };
}

sub perf_finish {
    my $h = shift or return;
    kill 'INT', $h->{pid};
    waitpid($h->{pid}, 0);
    mkdir $OUT;
    my $rep = cmd_out('perf', 'report', '-i', $h->{data}, '--no-children', '--sort',
        'comm,dso,sym', '--stdio', '-g', 'none', '--percent-limit', '0.5');
    spew("$OUT/perf-$h->{name}.txt", join("\n", grep { /%/ } split /\n/, $rep) . "\n");
}

sub child_cpu { my @t = times; return $t[2] + $t[3] }

# Snapshot of the CPU seconds of every role of a path plus origin.
sub cpu_snap {
    my $p = shift;
    my %s = (origin => cpu_of($procs{origin}{pid}), client => child_cpu());
    $s{$_} = cpu_of($p->{roles}{$_}) for keys %{ $p->{roles} };
    return \%s;
}

sub mem_snap {
    my ($p, $kind) = @_;
    my %s;
    $s{$_} = mem_of($p->{roles}{$_}, $kind) for keys %{ $p->{roles} };
    return \%s;
}

# ---- workloads -----------------------------------------------------------------
# Each returns a hash of figures for one run of one path (or {error => ...}).

sub w_bulk {
    my ($p, $dir) = @_;
    my $args = $dir eq 'down' ? [ '--bytes', $C{bulk_down} ] : [ '--upload', $C{bulk_up} ];
    my $perf = perf_start($p, "bulk_$dir");
    my $c0 = cpu_snap($p);
    my $r = loadgen($p, [ @$args, '--max-time', $C{bulk_max} ], $C{bulk_max} + 60);
    my $c1 = cpu_snap($p);
    perf_finish($perf);
    return { error => 'loadgen failed' } unless $r;
    return { error => $r->{error} || 'no bytes' } unless $r->{bytes} > 0 && !$r->{failed};
    my $gib = $r->{bytes} / $GiB;
    my %f = (mib_s => $r->{mib_s}, gib => $gib, partial => $r->{unfinished} ? 1 : 0);
    my $tot = 0;
    for my $k (keys %$c1) {
        my $v = ($c1->{$k} - $c0->{$k}) / $gib;
        $f{"cpu_s_per_gib.$k"} = $v;
        $tot += $v;
    }
    $f{cpu_s_per_gib_total} = $tot;
    return \%f;
}

sub w_many {
    my ($p, $n) = @_;
    my $r = loadgen($p, [ '--streams', $n, '--total', $n, '--bytes', $C{many_bytes},
        '--open-parallel', 256, '--max-time', $C{many_max} ], $C{many_max} + 60);
    return { error => 'loadgen failed' } unless $r;
    return { error => "$r->{unfinished} of $n unfinished after $C{many_max} s ("
          . sprintf('%.1f', $r->{mib_s}) . ' MiB/s so far)' } if $r->{unfinished};
    return { error => "$r->{failed} of $n failed: $r->{error}" } if $r->{failed} || $r->{ok} < $n;
    return { mib_s => $r->{mib_s}, done_p50_ms => $r->{done_p50_ms}, done_p99_ms => $r->{done_p99_ms} };
}

sub w_idle {
    my $p = shift;
    my $n = $p->{fork} ? $C{idle_cap_fork} : $C{idle};
    my $m0 = mem_snap($p);
    my $o0 = mem_of($procs{origin}{pid});
    my $h = lg_start($p, [ '--idle', '--streams', $n, '--total', $n, '--open-parallel', 256,
        '--max-time', 300 ], 'READY', 240);
    return { error => 'loadgen failed' } unless $h;
    my $ready = $h->{ready};
    my $m1 = mem_snap($p);
    my $o1 = mem_of($procs{origin}{pid});
    my $r = lg_finish($h);
    my ($ok) = $ready =~ /ok=(\d+)/;
    return { error => 'streams never all open: ' . ($r ? $r->{error} : '?') } unless $ok;
    return { error => ($n - $ok) . " of $n idle streams failed: " . ($r ? $r->{error} : '') }
      if $ok < $n;
    my %f = (streams => $ok, 'bytes_per_stream.origin' => ($o1 - $o0) / $ok);
    $f{"bytes_per_stream.$_"} = ($m1->{$_} - $m0->{$_}) / $ok for keys %$m1;
    if (%$m1) {
        my @k = map { ($m1->{$_} - $m0->{$_}) / $ok / 1024 } keys %$m1;
        $f{kib_per_stream_max} = (sort { $b <=> $a } @k)[0];
        $f{kib_per_stream_sum} = 0;
        $f{kib_per_stream_sum} += $_ for @k;
    }
    return \%f;
}

sub lat_figs {
    my ($r, $p) = @_;
    return { error => 'loadgen failed' } unless $r;
    return { error => "$r->{failed} failed: $r->{error}" } if $r->{failed} || !$r->{ok};
    my %f = (ttfb_p50_ms => $r->{ttfb_p50_ms}, ttfb_p99_ms => $r->{ttfb_p99_ms});
    if ($p->{proxy}) { $f{open_p50_ms} = $r->{open_p50_ms}; $f{open_p99_ms} = $r->{open_p99_ms} }
    return \%f;
}

sub lat_run {
    my $p = shift;
    return loadgen($p, [ '--streams', 1, '--total', $C{lat_samples}, '--bytes', 1, '--max-time', 60 ], 90);
}

sub w_lat_idle { my $p = shift; return lat_figs(lat_run($p), $p) }

sub w_lat_bulk {
    my $p = shift;
    my $h = lg_start($p, [ '--streams', 1, '--total', 0, '--bytes', $C{lat_bulk}, '--notify-flowing',
        '--max-time', 120 ], 'FLOWING', 30);
    return { error => 'bulk loadgen failed' } unless $h;
    unless ($h->{ready}) { lg_finish($h, 1); return { error => 'bulk download never started' } }
    my $r = lat_run($p);
    my $b = lg_finish($h, 1);
    my $f = lat_figs($r, $p);
    $f->{bulk_mib_s} = $b->{mib_s} if $b && !$f->{error};
    return $f;
}

sub w_lat_open {
    my $p = shift;
    my $n = $p->{fork} ? $C{idle_cap_fork} : $C{lat_open};
    my $h = lg_start($p, [ '--idle', '--streams', $n, '--total', $n, '--open-parallel', 256,
        '--max-time', 300 ], 'READY', 120);
    return { error => 'idle loadgen failed' } unless $h;
    my ($ok) = $h->{ready} =~ /ok=(\d+)/;
    my $r = ($ok && $ok == $n) ? lat_run($p) : undef;
    my $i = lg_finish($h);
    return { error => "only " . ($ok // 0) . " of $n streams opened: " . ($i ? $i->{error} : '') }
      unless $r;
    my $f = lat_figs($r, $p);
    $f->{streams_open} = $n unless $f->{error};
    return $f;
}

sub w_slow {
    my $p = shift;
    my %base = %{ mem_snap($p, 'rss') };
    my %peak = %base;
    my @cmd = @{ lg_cmd($p, [ '--bytes', $C{slow_fast}, '--slow', 1, '--slow-rate', 65536,
        '--slow-bytes', $GiB, '--max-time', $C{slow_max} ]) };
    my $pid = open(my $fh, '-|') // return { error => 'fork' };
    if (!$pid) { open STDERR, '>', '/dev/null'; exec @cmd or exit 127 }
    my $sel = IO::Select->new($fh);
    my $out = '';
    my $until = time + $C{slow_max} + 60;
    while (time < $until) {
        if ($sel->can_read(0.05)) {
            my $n = sysread($fh, my $b, 65536);
            last unless $n;
            $out .= $b;
        }
        my $m = mem_snap($p, 'rss');
        $peak{$_} = $m->{$_} > ($peak{$_} // 0) ? $m->{$_} : $peak{$_} for keys %$m;
    }
    kill 'KILL', $pid if time >= $until;
    close $fh;
    my ($line) = grep { /^\{/ } reverse split /\n/, $out;
    my $r = $line ? eval { decode_json($line) } : undef;
    return { error => 'loadgen failed' } unless $r;
    return { error => $r->{error} || 'fast stream failed' } if $r->{failed} || !$r->{bytes};
    my %f = (fast_mib_s => $r->{mib_s}, slow_kib_s => $r->{slow_rate_Bps} / 1024);
    $f{"rss_growth_mib.$_"} = ($peak{$_} - $base{$_}) / $MiB for keys %peak;
    $f{rss_growth_max_mib} = (sort { $b <=> $a } map { ($peak{$_} - $base{$_}) / $MiB } keys %peak)[0]
      if %peak;
    return \%f;
}

sub w_wrk {
    my $p = shift;
    return { error => 'wrk not installed' } unless have('wrk');
    my $script = "$DIR/wrk-$p->{name}.lua";
    my $url;
    if ($p->{proxy}) {    # absolute-form through the proxy
        spew($script, qq{wrk.path = "http://$ORIGIN/bytes/100"\nwrk.headers["Host"] = "$ORIGIN"\n});
        $url = "http://$p->{connect}/";
    } else {              # transparent tunnel or direct: origin-form
        spew($script, qq{wrk.headers["Host"] = "$ORIGIN"\n});
        $url = "http://$p->{connect}/bytes/100";
    }
    my $out = cmd_out('timeout', $C{wrk_secs} + 30, 'wrk', '-t1', "-c$C{wrk_conns}",
        "-d$C{wrk_secs}s", '--latency', '-s', $script, $url);
    my ($rps) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    return { error => 'wrk: ' . substr($out =~ s/\s+/ /gr, 0, 200) } unless defined $rps;
    my %f = (rps => $rps + 0);
    for my $q (50, 99) {
        next unless $out =~ /^\s+$q(?:\.000)?%\s+([\d.]+)(us|ms|s)\b/m;
        $f{"lat_p${q}_ms"} = $1 * ($2 eq 'us' ? 0.001 : $2 eq 's' ? 1000 : 1);
    }
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
    my ($errs) = $out =~ /Socket errors:\s*(.*)/;
    $f{non_2xx} = $non2xx // 0;
    $f{socket_errors} = $errs if $errs;
    my ($total) = $out =~ /(\d+) requests in/;
    return { error => "all $total responses non-2xx" } if $non2xx && $total && $non2xx >= $total;
    return \%f;
}

my @WORKLOADS = (
    [ bulk_down => sub { w_bulk($_[0], 'down') }, 'Bulk download, 1 stream' ],
    [ bulk_up   => sub { w_bulk($_[0], 'up') },   'Bulk upload, 1 stream' ],
    (map { my $n = $_; [ "many_$n" => sub { w_many($_[0], $n) }, "$n concurrent streams" ] } @{ $C{many} }),
    [ idle      => \&w_idle,     'Idle streams: memory per stream (fresh processes)', 1 ],
    [ lat_idle  => \&w_lat_idle, 'Open latency at idle' ],
    [ lat_bulk  => \&w_lat_bulk, 'Open latency behind a bulk download' ],
    [ lat_open  => \&w_lat_open, 'Open latency with many streams open' ],
    [ slow      => \&w_slow,     'Slow reader (64 KiB/s) + fast downloader (fresh processes)', 1 ],
    [ wrk       => \&w_wrk,      'Small HTTP requests (wrk)' ],
);
if ($ENV{BENCH_WORKLOADS}) {
    my %want = map { $_ => 1 } split /,/, $ENV{BENCH_WORKLOADS};
    @WORKLOADS = grep { $want{ $_->[0] } } @WORKLOADS;
}
@WORKLOADS = () unless $DO_LOOP;

# ---- statistics and report -----------------------------------------------------------

sub median {
    my @v = sort { $a <=> $b } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub summarize {
    my $runs = shift;    # [ {fig => val}, ... ]
    my %acc;
    my @errors;
    for my $r (@$runs) {
        if ($r->{error}) { push @errors, $r->{error}; next }
        for my $k (keys %$r) { push @{ $acc{$k} }, $r->{$k} if defined $r->{$k} && $r->{$k} =~ /^-?[\d.e+-]+$/ }
    }
    my %s;
    for my $k (keys %acc) {
        my @v = sort { $a <=> $b } @{ $acc{$k} };
        $s{$k} = { median => median(@v), min => $v[0], max => $v[-1], n => scalar @v };
    }
    return { figures => \%s, errors => \@errors, runs => scalar @$runs };
}

sub fmt {
    my $v = shift;
    return '—' unless defined $v;
    my $a = abs $v;
    return sprintf('%.0f', $v) if $a >= 100;
    return sprintf('%.1f', $v) if $a >= 10;
    return sprintf('%.2f', $v) if $a >= 1;
    return sprintf('%.3f', $v);
}

sub cell {
    my $f = shift;
    return '—' unless $f;
    return fmt($f->{median}) . ' [' . fmt($f->{min}) . '–' . fmt($f->{max}) . ']';
}

# ---- main -------------------------------------------------------------------------

sub machine {
    my ($cpu) = slurp('/proc/cpuinfo') =~ /^model name\s*:\s*(.*)$/m;
    my $n = () = slurp('/proc/cpuinfo') =~ /^processor\s*:/mg;
    my ($mem) = slurp('/proc/meminfo') =~ /MemTotal:\s+(\d+)/;
    return { cpu => ($cpu // '?') . " ($n logical CPUs)", kernel => (POSIX::uname())[2],
             memory_gib => sprintf('%.1f', ($mem // 0) / 1048576) };
}

my $t_start = time;
note "bench: " . ($QUICK ? 'QUICK (smoke) run' : 'full run') . ", $C{runs} runs per figure, tmp $DIR";
$ORIGIN_PORT = free_port();
$ORIGIN = "127.0.0.1:$ORIGIN_PORT";
spawn('origin', [ "$TOOLS/origin", '--listen', $ORIGIN ]);
my $e = wait_port('origin', $ORIGIN_PORT, 10);
die "origin: $e\n" if $e;

my %setup = (direct => \&setup_direct, squid => \&setup_squid, tinyproxy => \&setup_tinyproxy,
    websockify => \&setup_websockify, wstunnel => \&setup_wstunnel,
    'egress-v2' => sub { setup_egress('v2') }, 'egress-v1' => sub { setup_egress('v1') });
my %only = map { $_ => 1 } split /,/, ($ONLY // join(',', @PATHS));
$only{direct} = 1;    # every ratio needs it
for my $name (@PATHS) {
    if (!$DO_LOOP) { path_skip($name, "excluded by BENCH_ONLY=$PART"); next }
    if (!$only{$name}) { path_skip($name, 'excluded by BENCH_PATHS'); next }
    local $CUR_PATH = $name;
    eval { $setup{$name}->(); 1 } or path_skip($name, "setup died: $@");
    note "$name: ready" if $path{$name}{avail};
}
($versions{nginx}) = cmd_out('/usr/sbin/nginx', '-v') =~ m{nginx/(\S+)};
$versions{wrk} = (cmd_out('dpkg-query', '-W', '-f', '${Version}', 'wrk') =~ /^(\d\S*)$/)[0] // 'not installed';
($versions{curl}) = cmd_out('curl', '--version') =~ /^curl (\S+)/;
$versions{$_} //= 'not installed' for qw(squid tinyproxy websockify wstunnel egress);
$versions{egress} = 'not built' unless -e "$EB/egress";
delete @versions{qw(squid tinyproxy websockify wstunnel wrk)} unless $DO_LOOP;    # not looked for

# Stops a path's processes and sets it up again (fresh memory for the
# memory workloads); returns the new path or undef.
sub restart_path {
    my $name = shift;
    return $path{$name} if $name eq 'direct';
    stop_proc($_) for @{ $pathprocs{$name} // [] };
    $pathprocs{$name} = [];
    local $CUR_PATH = $name;
    eval { $setup{$name}->(); 1 } or path_skip($name, "setup died: $@");
    return $path{$name}{avail} ? $path{$name} : undef;
}

my @live = grep { $path{$_}{avail} } @PATHS;
my %live = map { $_ => 1 } @live;
my %res;    # workload => path => [runs]
for my $w (@WORKLOADS) {
    my ($wname, $fn, undef, $fresh) = @$w;
    for my $run (1 .. $C{runs}) {
        for my $pn (@live) {
            my $t = time;
            # a failed restart fails this run; the next run tries again
            my $p = ($fresh || !$path{$pn}{avail}) ? restart_path($pn) : $path{$pn};
            my $r = !$p ? { error => "restart failed: $path{$pn}{reason}" }
              : eval { $fn->($p) } // { error => "died: $@" };
            push @{ $res{$wname}{$pn} }, $r;
            note sprintf('%-10s %-10s run %d: %s (%.1fs)', $wname, $pn, $run,
                $r->{error} ? "ERROR $r->{error}"
                  : join(' ', map { "$_=" . ($r->{$_} =~ /^-?[\d.e+-]+$/ ? fmt($r->{$_}) : $r->{$_}) } grep { !/\./ } sort keys %$r), time - $t);
        }
    }
}
# the network case (bench/bench_net.pl) needs only the origin
stop_proc($_) for map { @{ $pathprocs{$_} // [] } } @PATHS;
my ($net_json, $net_md);
if ($DO_NET) {
    require "$ROOT/bench/bench_net.pl";
    ($net_json, $net_md) = eval {
        net_run({ dir => $DIR, origin => $ORIGIN, quick => $QUICK, tools => $TOOLS, procs => \%procs,
            path => \%path, pathprocs => \%pathprocs, versions => \%versions });
    };
    if (!$net_json) {
        note "network part failed: $@";
        ($net_json, $net_md) = ({ error => "$@" }, [ '## Network case', '', "failed: $@", '' ]);
    }
}
my ($cl_json, $cl_md);
if ($DO_CLUSTER) {
    require "$ROOT/bench/bench_cluster.pl";
    ($cl_json, $cl_md) = eval {
        cluster_run({ dir => $DIR, origin => $ORIGIN, origin_port => $ORIGIN_PORT, quick => $QUICK,
            tools => $TOOLS, eb => $EB, root => $ROOT, procs => \%procs, http => $HTTP });
    };
    if (!$cl_json) {
        note "cluster case failed: $@";
        ($cl_json, $cl_md) = ({ error => "$@" }, [ '## Cluster: 3 coordinators behind nginx against 1', '',
            "not run: $@", '' ]);
    }
}
stop_all();

# summaries, ratios, targets
my %sum;
for my $w (@WORKLOADS) {
    for my $pn (@live) { $sum{ $w->[0] }{$pn} = summarize($res{ $w->[0] }{$pn} // []) }
}
sub med {
    my ($w, $pn, $f) = @_;
    return undef unless $sum{$w} && $sum{$w}{$pn};
    my $x = $sum{$w}{$pn}{figures}{$f};
    return $x ? $x->{median} : undef;
}

my @targets;
sub target {
    my ($what, $val, $op, $limit, $why) = @_;
    my $met = !defined $val ? undef : $op eq '>=' ? ($val >= $limit ? 1 : 0) : ($val < $limit ? 1 : 0);
    push @targets, { target => $what, value => $val, op => $op, limit => $limit,
        status => !defined $met ? "not measured: $why" : $met ? 'met' : 'missed' };
}
{
    my $v2 = med('bulk_down', 'egress-v2', 'mib_s');
    my $v1 = med('bulk_down', 'egress-v1', 'mib_s');
    my $dir = med('bulk_down', 'direct', 'mib_s');
    my ($bestws) = sort { $b <=> $a } grep { defined } map { med('bulk_down', $_, 'mib_s') } qw(websockify wstunnel);
    my $why = $live{'egress-v2'} ? 'no result' : $path{'egress-v2'}{reason};
    target('egress v2 bulk download >= 40% of direct', defined $v2 && $dir ? $v2 / $dir : undef, '>=', 0.4, $why);
    target('egress v2 bulk download >= 3x best WebSocket bridge', defined $v2 && $bestws ? $v2 / $bestws : undef,
        '>=', 3, $bestws ? $why : 'no WebSocket bridge measured');
    target('egress v2 bulk download >= 2x egress v1', defined $v2 && $v1 ? $v2 / $v1 : undef, '>=', 2,
        defined $v1 ? $why : 'egress v1: ' . ($path{'egress-v1'}{reason} // 'no result'));
    target('egress v2 open (CONNECT->200) p99 at idle < 2 ms', med('lat_idle', 'egress-v2', 'open_p99_ms'), '<', 2, $why);
    target('egress v2 open p99 behind bulk < 10 ms', med('lat_bulk', 'egress-v2', 'open_p99_ms'), '<', 10, $why);
    for my $role (qw(nginx coordinator agent)) {
        my $b = med('idle', 'egress-v2', "bytes_per_stream.$role");
        target("egress v2 idle stream memory, $role < 16 KiB", defined $b ? $b / 1024 : undef, '<', 16, $why);
    }
    for my $role (qw(nginx coordinator agent)) {
        target("egress v2 slow-reader RSS growth, $role < 32 MiB",
            med('slow', 'egress-v2', "rss_growth_mib.$role"), '<', 32, $why);
    }
}

# ---- write results ----------------------------------------------------------------
my %desc = map { $_->[0] => $_->[2] } @WORKLOADS;
my $m = machine();
my $json = {
    date => strftime('%Y-%m-%dT%H:%M:%SZ', gmtime), quick => $QUICK, config => \%C,
    machine => $m, versions => \%versions, duration_s => int(time - $t_start),
    paths => { map { $_ => { available => $live{$_} ? JSON::PP::true : JSON::PP::false,
        ($path{$_}{reason} ? (reason => $path{$_}{reason}) : ()),
        ($path{$_}{protocol} ? (protocol => $path{$_}{protocol}) : ()),
        roles => [ sort keys %{ $path{$_}{roles} } ] } } @PATHS },
    workloads => { map { my $w = $_->[0]; $w => { description => $_->[2],
        paths => { map { $_ => { runs => $res{$w}{$_}, summary => $sum{$w}{$_} } } @live } } } @WORKLOADS },
    targets => \@targets,
    ($DO_NET ? (network => $net_json) : ()),
    ($DO_CLUSTER ? (cluster => $cl_json) : ()),
};

# figure => [label, ratio?]: ratio against direct where direct has the figure
my @COLS = (
    [ bulk_down => [ [ mib_s => 'MiB/s', 1 ], [ cpu_s_per_gib_total => 'CPU s/GiB (all procs)', 1 ] ] ],
    [ bulk_up   => [ [ mib_s => 'MiB/s', 1 ], [ cpu_s_per_gib_total => 'CPU s/GiB (all procs)', 1 ] ] ],
    (map { [ "many_$_" => [ [ mib_s => 'aggregate MiB/s', 1 ], [ done_p50_ms => 'completion p50 ms', 1 ],
        [ done_p99_ms => 'completion p99 ms', 1 ] ] ] } @{ $C{many} }),
    [ idle      => [ [ streams => 'streams', 0 ], [ kib_per_stream_max => 'KiB/stream, worst process', 0 ],
        [ kib_per_stream_sum => 'KiB/stream, all path processes', 0 ] ] ],
    [ lat_idle  => [ [ open_p50_ms => 'CONNECT→200 p50 ms', 0 ], [ open_p99_ms => 'CONNECT→200 p99 ms', 0 ],
        [ ttfb_p50_ms => 'first byte p50 ms', 1 ], [ ttfb_p99_ms => 'first byte p99 ms', 1 ] ] ],
    [ lat_bulk  => [ [ open_p50_ms => 'CONNECT→200 p50 ms', 0 ], [ open_p99_ms => 'CONNECT→200 p99 ms', 0 ],
        [ ttfb_p99_ms => 'first byte p99 ms', 1 ], [ bulk_mib_s => 'bulk MiB/s meanwhile', 1 ] ] ],
    [ lat_open  => [ [ streams_open => 'streams open', 0 ], [ open_p99_ms => 'CONNECT→200 p99 ms', 0 ],
        [ ttfb_p50_ms => 'first byte p50 ms', 1 ], [ ttfb_p99_ms => 'first byte p99 ms', 1 ] ] ],
    [ slow      => [ [ fast_mib_s => 'fast MiB/s', 1 ], [ slow_kib_s => 'slow KiB/s', 0 ],
        [ rss_growth_max_mib => 'peak RSS growth MiB, worst process', 0 ] ] ],
    [ wrk       => [ [ rps => 'requests/s', 1 ], [ lat_p50_ms => 'p50 ms', 1 ], [ lat_p99_ms => 'p99 ms', 1 ] ] ],
);
my %want_w = map { $_->[0] => 1 } @WORKLOADS;

my @md;
push @md, '# egress benchmark results', '',
  "- date: $json->{date}" . ($QUICK ? ' — **BENCH_QUICK=1 smoke run** (small sizes, 3 runs)' : ''),
  "- machine: $m->{cpu}, $m->{memory_gib} GiB RAM, kernel $m->{kernel}",
  '- versions: ' . join(', ', map { "$_ $versions{$_}" } sort keys %versions),
  ($DO_LOOP ? (
  "- runs per figure: $C{runs}; cells are `median [min–max]`; `×direct` = median / direct median "
  . '(same invocation). Everything on 127.0.0.1.',
  "- sizes: bulk down " . ($C{bulk_down} / $MiB) . " MiB, up " . ($C{bulk_up} / $MiB)
  . " MiB (each run capped at $C{bulk_max} s; partial runs count bytes moved), many-streams "
  . ($C{many_bytes} / 1024) . " KiB each, idle $C{idle} streams (forking servers: $C{idle_cap_fork}), "
  . "$C{lat_samples} latency samples per run") : ()),
  "- total time: $json->{duration_s} s"
  . ($DO_LOOP ? '' : " (BENCH_ONLY=$PART: the loopback paths and workloads did not run)")
  . ($DO_NET ? '' : " (BENCH_ONLY=$PART: the network case did not run)")
  . ($DO_CLUSTER ? '' : " (BENCH_ONLY=$PART: the cluster case did not run)"), '';
if ($DO_LOOP) {
    push @md, '## Paths', '', '| path | status | processes measured |', '|---|---|---|';
    for (@PATHS) {
        my $p = $path{$_};
        push @md, "| $_ | " . ($live{$_} ? 'run' . ($p->{protocol} ? " (protocol $p->{protocol})" : '')
            : "not run: $p->{reason}") . ' | ' . join(', ', sort keys %{ $p->{roles} }) . ' |';
    }
    push @md, '';
}
for my $c (@COLS) {
    my ($w, $cols) = @$c;
    next unless $want_w{$w};
    push @md, "## $desc{$w}", '';
    my @h = ('path');
    for (@$cols) { push @h, $_->[1]; push @h, '×direct' if $_->[2] }
    push @md, '| ' . join(' | ', @h) . ' |', '|' . join('|', map { '---' } @h) . '|';
    for my $pn (@PATHS) {
        next unless $live{$pn} && $sum{$w}{$pn};
        my $s = $sum{$w}{$pn};
        my @row = ($pn);
        for my $col (@$cols) {
            my ($k, undef, $ratio) = @$col;
            my $f = $s->{figures}{$k};
            push @row, cell($f);
            if ($ratio) {
                my $d = med($w, 'direct', $k);
                push @row, ($f && $d) ? sprintf('%.2f', $f->{median} / $d) : '—';
            }
        }
        push @row, '(' . scalar(@{ $s->{errors} }) . " of $s->{runs} runs failed: $s->{errors}[0])"
          if @{ $s->{errors} };
        push @md, '| ' . join(' | ', @row) . ' |';
    }
    # per-process breakdowns
    my %per;
    for my $pn (@PATHS) {
        next unless $live{$pn} && $sum{$w}{$pn};
        my $s = $sum{$w}{$pn};
        for my $k (sort keys %{ $s->{figures} }) {
            next unless $k =~ /^(cpu_s_per_gib|bytes_per_stream|rss_growth_mib)\.(.+)$/;
            my ($what, $role) = ($1, $2);
            my $f = $s->{figures}{$k};
            my $v = $what eq 'bytes_per_stream'
              ? sprintf('%s KiB [%s–%s]', fmt($f->{median} / 1024), fmt($f->{min} / 1024), fmt($f->{max} / 1024))
              : cell($f) . ($what eq 'rss_growth_mib' ? ' MiB' : '');
            push @{ $per{$what}{$pn} }, "$role $v";
        }
    }
    for my $what (sort keys %per) {
        my $label = { cpu_s_per_gib => 'CPU seconds per GiB, per process',
            bytes_per_stream => 'memory per idle stream, per process (PSS delta / streams)',
            rss_growth_mib => 'peak RSS growth during the run, per process' }->{$what};
        push @md, '', "$label:", '';
        push @md, "- $_: " . join('; ', @{ $per{$what}{$_} }) for grep { $per{$what}{$_} } @PATHS;
    }
    push @md, '';
}
if ($DO_LOOP) {
    push @md, '## Targets (reported, not asserted)', '', '| target | value | status |', '|---|---|---|';
    push @md, "| $_->{target} | " . fmt($_->{value}) . " | $_->{status} |" for @targets;
    push @md, '';
}
push @md, @$net_md if $DO_NET;
push @md, @$cl_md if $DO_CLUSTER;

mkdir $OUT;
spew("$OUT/latest.json", JSON::PP->new->canonical->pretty->encode($json));
spew("$OUT/latest.md", join("\n", @md) . "\n");
note "bench: wrote $OUT/latest.md and latest.json (" . int(time - $t_start) . ' s)';
