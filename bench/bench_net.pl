# bench/bench_net.pl: the network case of `make bench`, loaded by bench.pl
# (same package: it uses bench.pl's spawn, stop_proc, wait_port, free_port,
# mem_of, setup_egress, summarize, fmt, cell, note).
#
# For each one-way delay D (BENCH_NET_DELAYS, default 2,10,25 ms):
#   egress-net: curl -> nginx + module -> delayrelay (D) -> coordinator
#               <- delayrelay (D) <- egress host agent -> origin
#               (a stream credit round trip is 4D)
#   ssh-net:    curl -> SOCKS5 of sshd (ssh -R dynamic forward, "lease"
#               side) -> delayrelay (2D) <- ssh client ("operator" side,
#               egress from here) -> origin (the same 4D round trip)
# Everything on 127.0.0.1; keys and sshd config per run in the bench's temp
# directory; sshd is a private one on a free port. Workloads per path:
# single-stream download and upload (every byte checked against the
# origin's pattern), 8 parallel downloads, time to first byte on a new
# connection (absolute-form and CONNECT for egress, SOCKS for ssh) at idle
# and behind one bulk download, and RSS growth of every process while one
# reader drains at 100 KiB/s beside a fast download. See bench/README.md.
use strict;
use warnings;
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use IO::Select;
use IPC::Open2 qw(open2);
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep clock_gettime CLOCK_MONOTONIC);

my $NX;          # context from bench.pl: dir, origin, quick, tools, procs, path, pathprocs, versions
my %NC;          # sizes
my $PAT_LEN = 1048573;    # bench/origin.c PAT_LEN
my $PP;          # the pattern followed by its first MiB: any chunk <= 1 MiB is one substr
my %KIDS;        # reader pid => 1
my %KIDH;        # reader pid => its handle (pipes a later reader must not keep open)
my $NSETUP = 0;
my $MB = 1024 * 1024;

sub mono { clock_gettime(CLOCK_MONOTONIC) }

# curl must not pick up proxies or a .curlrc from the environment
sub curl_cmd {
    my ($p, $mode, @rest) = @_;    # mode: abs | connect (egress) ; ssh always SOCKS
    my @px = $p->{kind} eq 'ssh' ? ('--socks5-hostname', $p->{socks})
      : ('--proxy', "http://$p->{connect}", ($mode eq 'abs' ? () : '--proxytunnel'));
    return [ 'env', '-u', 'http_proxy', '-u', 'https_proxy', '-u', 'HTTP_PROXY', '-u', 'HTTPS_PROXY',
        '-u', 'ALL_PROXY', '-u', 'all_proxy', '-u', 'NO_PROXY', '-u', 'no_proxy',
        'curl', '-q', '-s', @px, @rest ];
}

sub net_kill_kids {
    for my $pid (keys %KIDS) { kill 'KILL', -$pid; kill 'KILL', $pid; waitpid($pid, 0) }
    %KIDS = %KIDH = ();
}

# ---- readers: a forked process runs curl and checks every byte ------------------

# Starts a download through $p; the reader child prints "FLOWING" once
# $mark bytes arrived and, when the parent closes its control pipe (or
# after 600 s), a JSON line: bytes, bad, first_bad, eof, curl_rc and a
# timeline [[t, bytes], ...] (CLOCK_MONOTONIC, one sample per >= 10 ms).
# With $rate (bytes/s) the child reads no faster than that (16 KiB burst):
# curl's own --limit-rate averages over the transfer and lets the first MiB
# through at once, then stalls for seconds.
sub dl_start {
    my ($p, $mode, $mark, $rate) = @_;
    my $cmd = curl_cmd($p, $mode, '-N', "http://$NX->{origin}/pattern/68719476736");
    pipe(my $cr, my $cw) or return undef;
    pipe(my $sr, my $sw) or return undef;
    my $pid = fork() // return undef;
    if (!$pid) {
        $SIG{INT} = $SIG{TERM} = 'DEFAULT';
        setpgrp(0, 0);
        close $cw;
        close $sr;
        # a copy of another reader's control pipe here would hide its EOF
        for my $o (values %KIDH) { close $o->{ctl}; close $o->{st} }
        dl_child($cr, $sw, $cmd, $mark, $rate);
        POSIX::_exit(0);    # never bench.pl's END (it would stop every process)
    }
    close $cr;
    close $sw;
    $KIDS{$pid} = 1;
    return $KIDH{$pid} = { pid => $pid, ctl => $cw, st => $sr, buf => '' };
}

sub dl_child {
    my ($ctl, $out, $cmd, $mark, $rate) = @_;
    $out->autoflush(1);
    my $cpid = open(my $fh, '-|');
    if (!defined $cpid) { print $out encode_json({ error => "fork: $!" }), "\n"; return }
    if (!$cpid) { open STDERR, '>', '/dev/null'; exec @$cmd or POSIX::_exit(127) }
    my $sel = IO::Select->new($fh, $ctl);
    my $csel = IO::Select->new($ctl);
    my ($bytes, $bad, $first_bad, $eof, $flowing, $last, $t_first) = (0, 0, -1, 0, 0, 0);
    my @tl;
    my $deadline = mono() + 600;
    LOOP: while (mono() < $deadline) {
        my $want = $MB;
        if ($rate) {
            $want = defined $t_first ? int($rate * (mono() - $t_first)) + 16384 - $bytes : 16384;
            if ($want <= 0) {    # ahead of the rate: wait, still watching the control pipe
                my $wait = (1 - $want) / $rate;
                last LOOP if $csel->can_read($wait < 0.1 ? $wait : 0.1);
                next;
            }
            $want = $MB if $want > $MB;
        }
        for my $h ($sel->can_read(0.2)) {
            last LOOP if $h == $ctl;    # the parent closed it: stop
            my $n = sysread($fh, my $buf, $want);
            if (!$n) { $eof = 1; last LOOP }
            my $t = mono();
            $t_first //= $t;
            my $x = $buf ^ substr($PP, $bytes % $PAT_LEN, $n);
            if ((my $nb = ($x =~ tr/\0//c))) {
                $first_bad = $bytes + $-[0] if $first_bad < 0 && $x =~ /[^\0]/;
                $bad += $nb;
            }
            $bytes += $n;
            if ($t - $last >= 0.01) { push @tl, [ $t, $bytes ]; $last = $t }
            if (!$flowing && $bytes >= $mark) { print $out "FLOWING\n"; $flowing = 1 }
        }
    }
    push @tl, [ mono(), $bytes ];
    kill 'TERM', $cpid;
    close $fh;
    waitpid($cpid, 0);
    print $out encode_json({ bytes => $bytes, bad => $bad, first_bad => $first_bad, eof => $eof,
        curl_rc => $? >> 8, timeline => \@tl }), "\n";
}

# Reads the reader's status pipe until a line matches (bounded); 1 if it did.
sub kid_wait {
    my ($k, $re, $secs) = @_;
    my $sel = IO::Select->new($k->{st});
    my $until = mono() + $secs;
    while (mono() < $until) {
        return 1 if $k->{buf} =~ $re;
        next unless $sel->can_read(0.1);
        my $n = sysread($k->{st}, my $b, 65536);
        last unless $n;
        $k->{buf} .= $b;
    }
    return $k->{buf} =~ $re ? 1 : 0;
}

sub kid_finish {
    my $k = shift or return undef;
    close $k->{ctl};
    kid_wait($k, qr/^\{.*\}$/m, 30);
    kill 'KILL', -$k->{pid} unless $k->{buf} =~ /^\{/m;
    waitpid($k->{pid}, 0);
    delete $KIDS{ $k->{pid} };
    delete $KIDH{ $k->{pid} };
    close $k->{st};
    my ($line) = $k->{buf} =~ /^(\{.*\})$/m;
    return $line ? eval { decode_json($line) } : undef;
}

sub tl_at {
    my ($tl, $t) = @_;
    my $b = 0;
    for (@$tl) { last if $_->[0] > $t; $b = $_->[1] }
    return $b;
}

# Readers started, all flowing (bounded), then measured for $secs; returns
# (error, [results], t0, t1).
sub dl_window {
    my ($secs, @ks) = @_;
    my $err = '';
    $err = 'a reader did not start' if grep { !$_ } @ks;
    for my $k (grep { $_ } @ks) {
        last if $err;
        $err = 'no data within 30 s' unless kid_wait($k, qr/^FLOWING$/m, 30);
    }
    my $t0 = mono();
    sleep $secs unless $err;    # the measurement window itself, not a readiness wait
    my $t1 = mono();
    my @r = map { kid_finish($_) } @ks;
    return ($err, \@r, $t0, $t1);
}

sub dl_check {
    my ($r, $t1) = @_;
    return 'reader failed' unless $r && !$r->{error};
    return "$r->{bad} bytes differ from the pattern, first at offset $r->{first_bad}" if $r->{bad};
    return "curl ended after $r->{bytes} bytes (rc $r->{curl_rc})"
      if $r->{eof} && $r->{timeline}[-1][0] < $t1;
    return '';
}

# ---- workloads ------------------------------------------------------------------

sub mode_bulk { my $p = shift; return $p->{kind} eq 'ssh' ? 'socks' : 'connect' }

sub nw_down {
    my $p = shift;
    my ($err, $r, $t0, $t1) = dl_window($NC{secs}, dl_start($p, mode_bulk($p), 256 * 1024));
    return { error => $err } if $err;
    my $e = dl_check($r->[0], $t1);
    return { error => $e } if $e;
    my $b = tl_at($r->[0]{timeline}, $t1) - tl_at($r->[0]{timeline}, $t0);
    return { mib_s => $b / $MB / ($t1 - $t0), bytes_checked => $r->[0]{bytes} };
}

sub nw_par {
    my $p = shift;
    my ($err, $r, $t0, $t1) = dl_window($NC{secs}, map { dl_start($p, mode_bulk($p), 64 * 1024) } 1 .. 8);
    return { error => $err } if $err;
    my ($sum, $checked, @per) = (0, 0);
    for (@$r) {
        my $e = dl_check($_, $t1);
        return { error => $e } if $e;
        my $b = tl_at($_->{timeline}, $t1) - tl_at($_->{timeline}, $t0);
        $sum += $b;
        $checked += $_->{bytes};
        push @per, $b / $MB / ($t1 - $t0);
    }
    @per = sort { $a <=> $b } @per;
    return { mib_s => $sum / $MB / ($t1 - $t0), stream_min_mib_s => $per[0], stream_max_mib_s => $per[-1],
        bytes_checked => $checked };
}

# Upload: the pattern goes into curl's stdin (chunked PUT /check) for the
# window, then stdin closes and the origin answers with what it got and
# checked; the rate is the origin's (bytes over first-to-last byte).
sub nw_up {
    my $p = shift;
    my $cmd = curl_cmd($p, mode_bulk($p), '-T', '-', '-H', 'Expect:', '--max-time', $NC{secs} + 120,
        "http://$NX->{origin}/check");
    my ($out, $in);
    local $SIG{PIPE} = 'IGNORE';    # curl may be gone (a refused CONNECT): EPIPE, not death
    my $pid = eval { open2($out, $in, @$cmd) } or return { error => "curl: $@" };
    $KIDS{$pid} = 1;
    my $fl = fcntl($in, F_GETFL, 0);
    fcntl($in, F_SETFL, $fl | O_NONBLOCK);
    my $sel = IO::Select->new($in);
    my ($off, $t_end) = (0, mono() + $NC{secs} + 0.5);
    while (mono() < $t_end) {
        next unless $sel->can_write(0.1);
        my $n = syswrite($in, substr($PP, $off % $PAT_LEN, $MB));
        last if !defined $n && !$!{EAGAIN};
        $off += $n // 0;
    }
    close $in;
    my $txt = '';
    my $rs = IO::Select->new($out);
    my $until = mono() + $NC{secs} + 120;
    while (mono() < $until) {
        next unless $rs->can_read(0.2);
        my $n = sysread($out, my $b, 4096);
        last unless $n;
        $txt .= $b;
    }
    kill 'KILL', $pid if mono() >= $until;
    waitpid($pid, 0);
    delete $KIDS{$pid};
    my %f = $txt =~ /(\w+)=(-?\d+)/g;
    return { error => 'no answer from the origin: ' . substr($txt =~ s/\s+/ /gr, 0, 120) }
      unless defined $f{bytes} && $f{usecs};
    return { error => "$f{bad} bytes differ from the pattern, first at offset $f{first_bad}" } if $f{bad};
    return { error => "origin got $f{bytes} of $off bytes sent" } if $f{bytes} != $off;
    return { mib_s => $f{bytes} / $MB / ($f{usecs} / 1e6), bytes_checked => $f{bytes},
        drain_s => $f{usecs} / 1e6 - $NC{secs} };
}

sub ttfb_one {
    my ($p, $mode) = @_;
    my $o = cmd_out(@{ curl_cmd($p, $mode, '-o', '/dev/null', '--max-time', 30, '-w',
        '%{http_code} %{time_pretransfer} %{time_starttransfer}', "http://$NX->{origin}/bytes/1") });
    return (undef, 'curl: ' . substr($o =~ s/\s+/ /gr, 0, 100)) unless $o =~ /(\d{3}) ([\d.]+) ([\d.]+)\s*$/;
    return (undef, "HTTP $1") unless $1 eq '200';
    return ($3 * 1000, '');
}

# K fresh connections per mode; per mode the run's median and max.
sub ttfb_modes {
    my $p = shift;
    my @modes = $p->{kind} eq 'ssh' ? ('socks') : ('abs', 'connect');
    my %f;
    for my $m (@modes) {
        my @v;
        for (1 .. $NC{ttfb}) {
            my ($ms, $e) = ttfb_one($p, $m);
            return { error => "$m: $e" } if $e;
            push @v, $ms;
        }
        $f{"samples_ms.$m"} = [@v];    # in latest.json; summaries skip lists
        @v = sort { $a <=> $b } @v;
        $f{"ttfb_${m}_ms"} = median(@v);
        $f{"ttfb_${m}_max_ms"} = $v[-1];
    }
    return \%f;
}

sub nw_ttfb_idle { return ttfb_modes(shift) }

sub nw_ttfb_bulk {
    my $p = shift;
    my $k = dl_start($p, mode_bulk($p), 256 * 1024);
    return { error => 'bulk reader did not start' } unless $k;
    unless (kid_wait($k, qr/^FLOWING$/m, 30)) { kid_finish($k); return { error => 'bulk download never flowed' } }
    my $t0 = mono();
    my $f = ttfb_modes($p);
    my $t1 = mono();
    my $r = kid_finish($k);
    return $f if $f->{error};
    my $e = dl_check($r, $t1);
    return { error => "bulk: $e" } if $e;
    $f->{bulk_mib_s} = (tl_at($r->{timeline}, $t1) - tl_at($r->{timeline}, $t0)) / $MB / ($t1 - $t0);
    return $f;
}

sub rss_snap {
    my $p = shift;
    my %s;
    $s{$_} = mem_of($p->{roles}{$_}, 'rss') for keys %{ $p->{roles} };
    $s{$_} = mem_of($p->{relays}{$_}, 'rss') for keys %{ $p->{relays} };
    return \%s;
}

# One reader at 100 KiB/s (the reader child's pace) beside one full-speed
# download; peak RSS growth of every process, sampled every 100 ms.
sub nw_slow {
    my $p = shift;
    my $base = rss_snap($p);
    my %peak = %$base;
    my $fast = dl_start($p, mode_bulk($p), 256 * 1024);
    my $slow = dl_start($p, mode_bulk($p), 1, 100 * 1024);
    my $err = (!$fast || !$slow) ? 'a reader did not start' : '';
    for my $k ($fast, $slow) {
        last if $err;
        $err = 'no data within 30 s' unless kid_wait($k, qr/^FLOWING$/m, 30);
    }
    my $t0 = mono();
    while (!$err && mono() < $t0 + $NC{slow_secs}) {
        my $m = rss_snap($p);
        $peak{$_} = $m->{$_} > ($peak{$_} // 0) ? $m->{$_} : $peak{$_} for keys %$m;
        sleep 0.1;
    }
    my $t1 = mono();
    my ($rf, $rs) = (kid_finish($fast), kid_finish($slow));
    return { error => $err } if $err;
    for ([ fast => $rf ], [ slow => $rs ]) {
        my $e = dl_check($_->[1], $t1);
        return { error => "$_->[0]: $e" } if $e;
    }
    my %f = (
        fast_mib_s => (tl_at($rf->{timeline}, $t1) - tl_at($rf->{timeline}, $t0)) / $MB / ($t1 - $t0),
        slow_kib_s => (tl_at($rs->{timeline}, $t1) - tl_at($rs->{timeline}, $t0)) / 1024 / ($t1 - $t0));
    my $worst;
    for my $k (keys %peak) {
        my $g = ($peak{$k} - $base->{$k}) / $MB;
        $f{"rss_growth_mib.$k"} = $g;
        $worst = $g if $k !~ /^relay/ && (!defined $worst || $g > $worst);
    }
    $f{rss_growth_max_mib} = $worst;
    return \%f;
}

my @NET_WORKLOADS = (
    [ net_slow      => \&nw_slow ],    # first: on fresh processes (every run starts fresh paths)
    [ net_down      => \&nw_down ],
    [ net_up        => \&nw_up ],
    [ net_par8      => \&nw_par ],
    [ net_ttfb_idle => \&nw_ttfb_idle ],
    [ net_ttfb_bulk => \&nw_ttfb_bulk ],
);
if ($ENV{BENCH_NET_WORKLOADS}) {
    my %want = map { $_ => 1 } split /,/, $ENV{BENCH_NET_WORKLOADS};
    @NET_WORKLOADS = grep { $want{ $_->[0] } } @NET_WORKLOADS;
}

# ---- paths ---------------------------------------------------------------------

sub net_setup_ssh {
    my $dms = shift;
    my $name = 'ssh-net';
    return path_skip($name, 'OpenSSH client/server not installed (tools/install-deps.sh)')
      unless have('ssh') && have('ssh-keygen') && -x '/usr/sbin/sshd';
    my $d = "$NX->{dir}/$name-" . ++$NSETUP;
    mkdir $d;
    chmod 0700, $d;
    for my $k ('host_key', 'user_key') {
        my $o = cmd_out('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', "bench-$k", '-f', "$d/$k");
        return path_skip($name, "ssh-keygen: $o") unless -f "$d/$k.pub";
    }
    my ($user) = getpwuid($<);
    my ($sp, $rp, $socks) = (free_port(), free_port(), free_port());
    my ($htype, $hkey) = split ' ', slurp("$d/host_key.pub");
    spew("$d/known_hosts", "bench-sshd $htype $hkey\n", 0600);
    spew("$d/authorized_keys", slurp("$d/user_key.pub"), 0600);
    # a private sshd: only this user, only this key, only the one reverse
    # forward port, nothing else
    spew("$d/sshd_config", <<"EOF", 0600);
Port $sp
ListenAddress 127.0.0.1
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
AllowUsers $user
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowTcpForwarding remote
PermitListen 127.0.0.1:$socks
PermitOpen none
GatewayPorts no
X11Forwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
PermitTTY no
PrintMotd no
MaxStartups 4
LogLevel ERROR
EOF
    # as root, sshd wants its privilege-separation directory (Debian's unit creates it)
    mkdir '/run/sshd', 0755 if $< == 0 && !-d '/run/sshd';
    spawn("$name-sshd", [ '/usr/sbin/sshd', '-D', '-e', '-f', "$d/sshd_config" ]);
    my $e = wait_port("$name-sshd", $sp, 15);
    return path_skip($name, $e) if $e;
    spawn("$name-relay", [ "$NX->{tools}/delayrelay", '--listen', "127.0.0.1:$rp", '--connect',
        "127.0.0.1:$sp", '--delay-ms', 2 * $dms ]);
    $e = wait_port("$name-relay", $rp, 10);
    return path_skip($name, $e) if $e;
    spawn("$name-client", [ 'ssh', '-F', '/dev/null', '-N', '-T', '-p', $rp, '-i', "$d/user_key",
        '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes',
        '-o', "UserKnownHostsFile=$d/known_hosts", '-o', 'HostKeyAlias=bench-sshd',
        '-o', 'UpdateHostKeys=no', '-o', 'ExitOnForwardFailure=yes', '-o', 'ConnectTimeout=15',
        '-o', 'ControlMaster=no', '-o', 'ControlPath=none', '-o', 'LogLevel=ERROR',
        '-R', "127.0.0.1:$socks", "$user\@127.0.0.1" ]);
    $e = wait_port("$name-client", $socks, 20);
    return path_skip($name, "$e; sshd: " . tail($NX->{procs}{"$name-sshd"}{log})) if $e;
    path_add($name, kind => 'ssh', socks => "127.0.0.1:$socks",
        roles => { sshd => $NX->{procs}{"$name-sshd"}{pid}, ssh => $NX->{procs}{"$name-client"}{pid} },
        relays => { relay => $NX->{procs}{"$name-relay"}{pid} });
    my ($ms, $err) = ttfb_one($NX->{path}{$name}, 'socks');
    return path_skip($name, "probe: $err; ssh: " . tail($NX->{procs}{"$name-client"}{log})) if $err;
    $NX->{versions}{openssh} //= (cmd_out('ssh', '-V') =~ /(OpenSSH\S+)/)[0] // '?';
}

sub net_setup_egress {
    my $dms = shift;
    setup_egress('v2', name => 'egress-net', delay_ms => $dms);
    my $p = $NX->{path}{'egress-net'};
    $p->{kind} = 'egress' if $p->{avail};
}

my %NET_SETUP = ('egress-net' => \&net_setup_egress, 'ssh-net' => \&net_setup_ssh);

sub net_stop {
    my $name = shift;
    stop_proc($_) for reverse @{ $NX->{pathprocs}{$name} // [] };
    $NX->{pathprocs}{$name} = [];
}

sub net_start {
    my ($name, $dms) = @_;
    net_stop($name);
    local $main::CUR_PATH = $name;
    eval { $NET_SETUP{$name}->($dms); 1 } or path_skip($name, "setup died: $@");
    return $NX->{path}{$name}{avail} ? $NX->{path}{$name} : undef;
}

# ---- main ------------------------------------------------------------------------

# Runs every network workload; returns (json part, markdown lines, targets).
sub net_run {
    $NX = shift;
    my $quick = $NX->{quick};
    %NC = $quick ? (runs => 3, secs => 1.5, ttfb => 5, slow_secs => 2)
                 : (runs => 3, secs => 5, ttfb => 15, slow_secs => 5);
    $NC{runs} = $ENV{BENCH_NET_RUNS} if $ENV{BENCH_NET_RUNS};
    $NC{secs} = $ENV{BENCH_NET_SECS} if $ENV{BENCH_NET_SECS};
    my @delays = split /,/, ($ENV{BENCH_NET_DELAYS} // '2,10,25');
    $NC{delays_ms} = \@delays;
    my $t_start = mono();

    my $pat = cmd_out('curl', '-q', '-s', '--noproxy', '*', "http://$NX->{origin}/pattern/$PAT_LEN");
    die "origin pattern: got " . length($pat) . " bytes\n" unless length($pat) == $PAT_LEN;
    $PP = $pat . substr($pat, 0, $MB);

    my %res;    # D => workload => path => [runs]
    my %why;    # path => last reason it did not run
    my @paths = ('egress-net', 'ssh-net');
    for my $dms (@delays) {
        for my $run (1 .. $NC{runs}) {
            my %p;
            for my $pn (@paths) {
                $p{$pn} = net_start($pn, $dms);
                $why{$pn} = $NX->{path}{$pn}{reason} unless $p{$pn};
                note("D=$dms run $run: $pn " . ($p{$pn} ? 'ready' : "not run: $why{$pn}"));
            }
            for my $w (@NET_WORKLOADS) {
                my ($wn, $fn) = @$w;
                for my $pn (@paths) {
                    my $t = mono();
                    my $r = !$p{$pn} ? { error => "not run: $why{$pn}" }
                      : eval { $fn->($p{$pn}) } // { error => "died: $@" };
                    net_kill_kids();    # a failed workload leaves no reader behind
                    push @{ $res{$dms}{$wn}{$pn} }, $r;
                    note(sprintf('D=%-3s %-13s %-10s run %d: %s (%.1fs)', $dms, $wn, $pn, $run,
                        $r->{error} ? "ERROR $r->{error}"
                          : join(' ', map { "$_=" . fmt($r->{$_}) } grep { !/\./ } sort keys %$r), mono() - $t));
                }
            }
            net_stop($_) for @paths;
        }
    }

    my %sum;
    for my $dms (@delays) {
        for my $w (@NET_WORKLOADS) {
            $sum{$dms}{ $w->[0] }{$_} = summarize($res{$dms}{ $w->[0] }{$_} // []) for @paths;
        }
    }
    my $med = sub {
        my ($dms, $w, $pn, $f) = @_;
        my $x = $sum{$dms}{$w}{$pn}{figures}{$f};
        return $x ? $x->{median} : undef;
    };
    my $ratio = sub { my ($a, $b) = @_; return defined $a && $b ? $a / $b : undef };

    # ---- targets of issue 14 (reported, not asserted)
    my @tg;
    my $tgt = sub {
        my ($what, $op, @vals) = @_;    # [value, limit] per D
        push @tg, { target => $what, op => $op, per_delay => { map {
            my ($v, $l) = @{ $vals[$_] };
            $delays[$_] => { value => $v, limit => $l, status => !defined $v ? 'not measured'
                : ($op eq '>=' ? $v >= $l : $op eq '<' ? $v < $l : $v <= $l) ? 'met' : 'missed' } } 0 .. $#delays } };
    };
    my @E = map { my $d = $_; sub { $med->($d, @_) } } @delays;
    $tgt->('single-stream download >= 1.0x ssh', '>=',
        map { [ $ratio->($_->('net_down', 'egress-net', 'mib_s'), $_->('net_down', 'ssh-net', 'mib_s')), 1.0 ] } @E);
    $tgt->('single-stream upload >= 1.0x ssh', '>=',
        map { [ $ratio->($_->('net_up', 'egress-net', 'mib_s'), $_->('net_up', 'ssh-net', 'mib_s')), 1.0 ] } @E);
    $tgt->('8 parallel streams >= 1.0x ssh', '>=',
        map { [ $ratio->($_->('net_par8', 'egress-net', 'mib_s'), $_->('net_par8', 'ssh-net', 'mib_s')), 1.0 ] } @E);
    $tgt->('first byte, absolute-form, idle <= 1 credit RTT + 10% (ms)', '<=',
        map { [ $E[$_]->('net_ttfb_idle', 'egress-net', 'ttfb_abs_ms'), 4 * $delays[$_] * 1.1 ] } 0 .. $#delays);
    $tgt->('first byte, CONNECT, idle <= 2 credit RTT + 10% (ms)', '<=',
        map { [ $E[$_]->('net_ttfb_idle', 'egress-net', 'ttfb_connect_ms'), 8 * $delays[$_] * 1.1 ] } 0 .. $#delays);
    for my $m ('abs', 'connect') {
        $tgt->("first byte, " . ($m eq 'abs' ? 'absolute-form' : 'CONNECT') . ", behind a bulk download <= 1.25x idle",
            '<=', map { [ $ratio->($_->('net_ttfb_bulk', 'egress-net', "ttfb_${m}_ms"),
                $_->('net_ttfb_idle', 'egress-net', "ttfb_${m}_ms")), 1.25 ] } @E);
    }
    for my $role (qw(nginx coordinator agent)) {
        $tgt->("slow reader: RSS growth, $role < 32 MiB", '<',
            map { [ $_->('net_slow', 'egress-net', "rss_growth_mib.$role"), 32 ] } @E);
    }

    # ---- markdown
    my @md;
    my $rtt = sub { 4 * shift };
    my $c = sub { my ($dms, $w, $pn, $f) = @_; return cell($sum{$dms}{$w}{$pn}{figures}{$f}) };
    my $r2 = sub { my $v = shift; return defined $v ? sprintf('%.2f', $v) : '—' };
    my $errs = sub {
        my ($dms, $w) = @_;
        my @e;
        for my $pn (@paths) {
            my $s = $sum{$dms}{$w}{$pn};
            push @e, "$pn: " . scalar(@{ $s->{errors} }) . " of $s->{runs} runs failed ("
              . substr($s->{errors}[0], 0, 160) . ')' if $s && $s->{errors} && @{ $s->{errors} };
        }
        return @e ? ' ' . join('; ', @e) : '';
    };
    push @md, '## Network case: a delay relay on each WebSocket leg, against `ssh -R`', '',
      '- egress: curl → nginx + module → **delayrelay (D)** → coordinator ← **delayrelay (D)** ← host agent → '
      . 'origin; a stream credit round trip is 4D. ssh: curl → SOCKS5 of a private sshd (the "lease") '
      . '← **delayrelay (2D)** ← `ssh -N -R PORT` (the "operator", egress from here) → origin: the same 4D round '
      . 'trip. The relay delays every byte D ms each way and buffers without limit (latency only; the relayed '
      . 'TCP connections themselves see loopback).',
      "- D = " . join(', ', @delays) . " ms; $NC{runs} runs per D, fresh processes every run; cells are "
      . '`median [min–max]` of the per-run figures; `egress/ssh` = ratio of the medians (throughput: higher '
      . 'is better for egress; times: lower is).',
      "- bulk figures: bytes over a $NC{secs} s window that starts once the stream flows (upload: bytes over "
      . 'first-to-last byte at the origin); every byte checked against the origin\'s pattern. egress uses CONNECT '
      . "for bulk, ssh SOCKS5 (`--socks5-hostname`). First byte: $NC{ttfb} fresh curl connections per run and "
      . "mode (`GET /bytes/1`), the run's median. Slow reader: one stream read at 100 KiB/s (the reader "
      . "paces itself; curl's `--limit-rate` lets the first MiB through at once) beside one full-speed "
      . "download for $NC{slow_secs} s, peak RSS growth sampled every 100 ms (relays listed apart: they "
      . 'stand in for the network).',
      sprintf('- network part: %.0f s', mono() - $t_start), '';
    my @tp = (
        [ net_down => 'Single-stream download, MiB/s' ],
        [ net_up   => 'Single-stream upload, MiB/s' ],
        [ net_par8 => '8 parallel downloads, aggregate MiB/s' ],
    );
    for (@tp) {
        my ($w, $title) = @$_;
        push @md, "### $title", '', '| D ms | credit RTT ms | egress | ssh -R | egress/ssh |', '|---|---|---|---|---|';
        for my $dms (@delays) {
            push @md, "| $dms | " . $rtt->($dms) . ' | ' . $c->($dms, $w, 'egress-net', 'mib_s') . ' | '
              . $c->($dms, $w, 'ssh-net', 'mib_s') . ' | '
              . $r2->($ratio->($med->($dms, $w, 'egress-net', 'mib_s'), $med->($dms, $w, 'ssh-net', 'mib_s'))) . ' |'
              . $errs->($dms, $w);
        }
        push @md, '';
    }
    for ([ net_ttfb_idle => 'Time to first byte on a new connection, idle, ms' ],
         [ net_ttfb_bulk => 'Time to first byte on a new connection behind one bulk download, ms' ]) {
        my ($w, $title) = @$_;
        my $bulk = $w eq 'net_ttfb_bulk';
        push @md, "### $title", '',
          '| D ms | credit RTT ms | egress absolute-form | egress CONNECT | ssh -R SOCKS | abs/ssh | CONNECT/ssh | '
          . ($bulk ? 'abs, CONNECT, ssh: ×idle | bulk MiB/s egress / ssh |' : 'abs / RTT | CONNECT / RTT |'),
          '|---|---|---|---|---|---|---|---|' . ($bulk ? '---|' : '---|');
        for my $dms (@delays) {
            my ($a, $k, $s) = map { $med->($dms, $w, @$_) }
              ([ 'egress-net', 'ttfb_abs_ms' ], [ 'egress-net', 'ttfb_connect_ms' ], [ 'ssh-net', 'ttfb_socks_ms' ]);
            my $row = "| $dms | " . $rtt->($dms) . ' | ' . $c->($dms, $w, 'egress-net', 'ttfb_abs_ms') . ' | '
              . $c->($dms, $w, 'egress-net', 'ttfb_connect_ms') . ' | ' . $c->($dms, $w, 'ssh-net', 'ttfb_socks_ms')
              . ' | ' . $r2->($ratio->($a, $s)) . ' | ' . $r2->($ratio->($k, $s)) . ' | ';
            if ($bulk) {
                $row .= join(', ', map { $r2->($ratio->($med->($dms, $w, @$_), $med->($dms, 'net_ttfb_idle', @$_))) }
                    ([ 'egress-net', 'ttfb_abs_ms' ], [ 'egress-net', 'ttfb_connect_ms' ], [ 'ssh-net', 'ttfb_socks_ms' ]))
                  . ' | ' . fmt($med->($dms, $w, 'egress-net', 'bulk_mib_s')) . ' / '
                  . fmt($med->($dms, $w, 'ssh-net', 'bulk_mib_s')) . ' |';
            } else {
                $row .= $r2->($ratio->($a, $rtt->($dms))) . ' | ' . $r2->($ratio->($k, $rtt->($dms))) . ' |';
            }
            push @md, $row . $errs->($dms, $w);
        }
        push @md, '';
    }
    push @md, '### Slow reader (100 KiB/s) beside one full-speed download: peak RSS growth, MiB', '',
      '| D ms | nginx | coordinator | agent | sshd | ssh | relays egress / ssh | slow KiB/s egress / ssh '
      . '| fast MiB/s egress / ssh |',
      '|---|---|---|---|---|---|---|---|---|';
    for my $dms (@delays) {
        my $w = 'net_slow';
        my $rel = sub {
            my $pn = shift;
            my $v = 0;
            my $any;
            for my $k (keys %{ $sum{$dms}{$w}{$pn}{figures} }) {
                next unless $k =~ /^rss_growth_mib\.relay/;
                $v += $sum{$dms}{$w}{$pn}{figures}{$k}{median};
                $any = 1;
            }
            return $any ? fmt($v) : '—';
        };
        my $both = sub {
            my $f = shift;
            return fmt($med->($dms, $w, 'egress-net', $f)) . ' / ' . fmt($med->($dms, $w, 'ssh-net', $f));
        };
        push @md, "| $dms | "
          . join(' | ', map { $c->($dms, $w, 'egress-net', "rss_growth_mib.$_") } qw(nginx coordinator agent))
          . ' | ' . join(' | ', map { $c->($dms, $w, 'ssh-net', "rss_growth_mib.$_") } qw(sshd ssh))
          . ' | ' . $rel->('egress-net') . ' / ' . $rel->('ssh-net') . ' | ' . $both->('slow_kib_s') . ' | '
          . $both->('fast_mib_s') . ' |' . $errs->($dms, $w);
    }
    push @md, '', '### Network targets (issue 14; reported, not asserted)', '',
      '| target | ' . join(' | ', map { "D=$_" } @delays) . ' |', '|---|' . join('', map { '---|' } @delays);
    for my $t (@tg) {
        push @md, "| $t->{target} | " . join(' | ', map {
            my $x = $t->{per_delay}{$_};
            (defined $x->{value} ? fmt($x->{value}) . ' (limit ' . fmt($x->{limit}) . ') ' : '') . $x->{status}
        } @delays) . ' |';
    }
    push @md, '';

    my $json = { config => \%NC, duration_s => int(mono() - $t_start),
        paths => { map { $_ => ($why{$_} ? { reason => $why{$_} } : { ran => JSON::PP::true }) } @paths },
        delays => { map { my $d = $_; $d => { map { my $w = $_->[0]; $w => { map {
            $_ => { runs => $res{$d}{$w}{$_}, summary => $sum{$d}{$w}{$_} } } @paths } } @NET_WORKLOADS } } @delays },
        targets => \@tg };
    return ($json, \@md);
}

1;
