#!/usr/bin/perl
# Lease ownership across coordinator instances (issue 18, point 3): three
# instances on one PostgreSQL database behind the nginx front of
# conf/coordinator-cluster.conf.example, the real host agent and the real
# module (client side), and checksummed streams through them throughout.
#
# - the claim raced by two instances (host socket on one, client socket on
#   the other, at once), 50 rounds: one upgrade, one 503;
# - kill -9 of the instance relaying a busy lease: both agents back on
#   another instance within 10 s (heartbeat lapse included), same session,
#   new streams work, cut streams end with an error (no hang, no bad byte);
# - the instance returns and the ring gives the lease back to it: the old
#   owner closes its sockets (1013) and lets go before the new one claims;
# - an owner frozen past its heartbeat lapse, whose lease was taken
#   meanwhile, closes its sockets when it wakes up;
# - a clean stop (SIGTERM) hands the lease over without the lapse;
# - status from any instance names the owner.

use strict;
use warnings;

use Test::More;
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);
use Test::Egress qw(slurp spew wait_until);
use Test::Egress::Module;
use Test::Egress::Origin;
use Test::Egress::WS;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so', 'egress-coordinator',
    'egress');
$SIG{PIPE} = 'IGNORE';
my $pg = $t->postgres;
my %env = (EGRESS_RATE_MINT => '100000:100000', EGRESS_RATE_FAIL => '100000:100000');
my @c = map {
    $t->coordinator(name => "c$_", db => 'pg', db_name => 'own', env => \%env,
        args => [ '--instance', "c$_", '--owner-lapse', '3s' ])
} 1 .. 3;
my %by_name = map { ($_->name => $_) } @c;
like($c[0]->log, qr/owner_registered instance=c1 epoch=1 lapse_ms=3000/, 'c1 registered, epoch 1');

my $alice = $c[0]->token(owner => 'alice', org => 'acme');

# ---- the claim raced by two instances: one winner, 50 rounds ---------------------------
my ($one, %won) = (0);
for my $r (1 .. 50) {
    my $L  = $c[0]->lease($alice, ttlSeconds => 600)->{id};
    my $ht = $c[0]->ticket($alice, $L, role => 'host');
    my $ct = $c[0]->ticket($alice, $L, role => 'client', sessionID => $ht->{sessionID});
    my @pair = $r % 2 ? ([ $c[1], 'host', $ht ], [ $c[2], 'client', $ct ])
                      : ([ $c[2], 'client', $ct ], [ $c[1], 'host', $ht ]);
    my @h = map { $_->[0]->ws_start($L, $_->[1], ticket => $_->[2]{ticket}) } @pair;
    my (@st, @ws);
    for my $h (@h) {
        my ($w, $s) = Test::Egress::WS->connect_finish($h);
        push @st, $s;
        push @ws, $w;
    }
    my @win = grep { $st[$_] == 101 } 0, 1;
    if (@win == 1 && (grep { $_ == 503 } @st) == 1) {
        my ($w, $l) = ($pair[ $win[0] ][0], $pair[ 1 - $win[0] ][0]);
        my $name = $w->name;
        # the winner claimed; the loser found it owned by the winner and asked it to let go
        $one++ if $w->log =~ /owner_claimed lease=\Q$L\E instance=\Q$name\E /
            && $l->log =~ /owner_elsewhere lease=\Q$L\E owner=\Q$name\E /
            && $l->log !~ /owner_claimed lease=\Q$L\E /;
        $won{$name}++;
    } else {
        diag("round $r: HTTP $st[0] and $st[1]");
    }
    $_->close for grep {defined} @ws;
}
is($one, 50, 'claim raced on two instances: one upgrade, one 503, the winner recorded; 50 rounds');
diag('claims won: ' . join(', ', map {"$_=$won{$_}"} sort keys %won));

# ---- the front --------------------------------------------------------------------------
my $front = $t->port;
my $prefix = $t->dir . '/front';
mkdir $prefix;
mkdir "$prefix/logs";
my $conf = slurp($t->root . '/conf/coordinator-cluster.conf.example');
my $i = 0;
my %addr = map { ('192.0.2.1' . ++$i . ':8080') => '127.0.0.1:' . $_->port } @c;
$conf =~ s/\Q$_\E/$addr{$_}/g for sort keys %addr;
$conf =~ s/listen 443 ssl;/listen 127.0.0.1:$front;/;
$conf =~ s/^\s*ssl_certificate(?:_key)?\s.*\n//mg;
$conf =~ s/rate=20r\/s/rate=100000r\/s/;
$conf =~ s/^worker_processes auto;/worker_processes 1;\ndaemon off;\npid $prefix\/nginx.pid;\nerror_log $prefix\/logs\/error.log info;/m;
spew("$prefix/nginx.conf", $conf);
$t->spawn('front',
    cmd => [ '/usr/sbin/nginx', '-p', "$prefix/", '-c', "$prefix/nginx.conf", '-e', "$prefix/logs/error.log" ],
    wait_port => $front, nginx_log => "$prefix/logs/error.log");

# A TCP relay between the host agent and the front, to cut the agent's
# socket on demand (SIGUSR1 closes every connection it carries).
my $relay = $t->port;
spew($t->dir . '/relay.pl', <<'EOF');
use strict; use warnings; use IO::Socket::IP; use IO::Select;
my ($lport, $tport) = @ARGV;
my $l = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $lport, Listen => 64, ReuseAddr => 1) or die $!;
my $sel = IO::Select->new($l);
my %peer;
my $cut = 0;
$SIG{USR1} = sub { $cut = 1 };
while (1) {
    if ($cut) {
        $cut = 0;
        for my $s (values %peer) { $sel->remove($s); close $s; }
        %peer = ();
        print STDERR "relay: cut\n";
    }
    for my $s ($sel->can_read(0.2)) {
        if ($s == $l) {
            my $a = $l->accept or next;
            my $b = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $tport) or do { close $a; next };
            $peer{$a} = $b; $peer{$b} = $a;
            $sel->add($a, $b);
            next;
        }
        my $o = $peer{$s} or next;
        my $n = sysread($s, my $buf, 65536);
        if (!$n) {
            $sel->remove($s, $o); delete $peer{$s}; delete $peer{$o}; close $s; close $o;
            next;
        }
        my $off = 0;
        while ($off < $n) { my $w = syswrite($o, $buf, $n - $off, $off); last unless defined $w; $off += $w; }
    }
}
EOF
$t->spawn('relay', cmd => [ $^X, $t->dir . '/relay.pl', $relay, $front ], wait_port => $relay);

# ---- a busy lease through the front -------------------------------------------------------
my $http = HTTP::Tiny->new(timeout => 10);
sub front_api {
    my ($method, $path, $body) = @_;
    my $res = $http->request($method, "http://127.0.0.1:$front$path", {
        headers => { Authorization => "Bearer $alice", 'Content-Type' => 'application/json' },
        (defined $body ? (content => encode_json($body)) : ()) });
    return ($res->{status}, eval { decode_json($res->{content}) });
}

my $o = $t->origin;
my $op = $o->port;
my (undef, $lease) = front_api(POST => '/v1/leases', { ttlSeconds => 3600 });
my $L = $lease->{id};
my (undef, $ct) = front_api(POST => "/v1/leases/$L/egress/ticket", { role => 'client' });
my $S = $ct->{sessionID};
ok($L && $S, "lease $L and a client ticket through the front");

my $m = Test::Egress::Module->new($t, bridge => "ws://127.0.0.1:$front/v1/leases/$L/egress/client",
    ticket => $ct->{ticket});
$m->start;
mkdir $t->dir . "/$_" for qw(home state config);
my $d = $t->dir;
$t->spawn('agent',
    cmd => [ $t->bin('egress'), 'host', '--id', $L, '--session', $S, '--coordinator',
        "http://127.0.0.1:$relay", '--allow', "127.0.0.1:$op", '--allow-private' ],
    env => { $t->san_env, HOME => "$d/home", XDG_STATE_HOME => "$d/state",
        XDG_CONFIG_HOME => "$d/config", EGRESS_TOKEN => $alice },
    wait_log => qr/connected: lease=/);
ok($m->wait_log(qr/egress bridge: host agent connected/), 'module and host agent paired through the front');

# Which instance relays it, and how many sockets each has opened for it.
sub opens {
    my ($c, $role) = @_;
    my @l = $c->log =~ /socket_open lease=\Q$L\E session=(\S+) role=\Q$role\E/g;
    return @l;
}
sub relaying {
    return grep { opens($_, 'host') && opens($_, 'client') } @c;
}
my ($Y) = grep { opens($_, 'client') } @c;
ok($Y && opens($Y, 'host'), 'both sockets on one instance: ' . ($Y ? $Y->name : 'none'));
my @others = grep { $_ != $Y } @c;

# ---- status from any instance --------------------------------------------------------------
my $st = $Y->status($alice, $L);
is_deeply([ @{ $st->{relay} }{qw(instance here live)} ], [ $Y->name, JSON::PP::true, JSON::PP::true ],
    'status on the owner: relay here');
$st = $others[0]->status($alice, $L);
is($st->{relay}{instance}, $Y->name, 'status on another instance names the owner');
ok(!$st->{relay}{here}, '... and says it is not here');
is($st->{sessionID}, $S, '... with the session from the database');

# ---- checksummed streams, run throughout ----------------------------------------------------
my $mport = $m->port;
my $results = "$d/streams.txt";
my $stopfile = "$d/streams.stop";
my $N = 150000;
my $expect = Test::Egress::Origin::pattern($N);

# One stream: CONNECT through the module, then /slow/N/R; one result word.
sub one_stream {
    my $cl = eval { Test::Egress::Module::Client->new($mport) } or return 'refused';
    $cl->send("CONNECT 127.0.0.1:$op HTTP/1.1\r\nHost: 127.0.0.1:$op\r\n\r\n");
    my $head = $cl->read_until(qr/\r\n\r\n/, 10);
    return 'refused' unless $head =~ m{^HTTP/1\.1 200 };
    $cl->take(length $head);
    $cl->send("GET /slow/$N/100000 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    my $buf = $cl->read_until(qr/\r\n\r\n/, 15);
    return ($cl->eof ? 'cut' : 'hang') unless $buf =~ /\r\n\r\n/;
    my ($h) = $buf =~ /^(.*?\r\n\r\n)/s;
    return 'bad' unless $h =~ m{^HTTP/1\.1 200 };
    $cl->take(length $h);
    my $deadline = time + 15;
    while (length($cl->{buf}) < $N && !$cl->eof && time < $deadline) {
        $cl->read_some(0.5);
    }
    my $body = $cl->{buf};
    return 'bad' if substr($expect, 0, length $body) ne $body;
    return 'ok' if length $body >= $N;
    return $cl->eof ? 'cut' : 'hang';
}

sub start_streams {
    my ($name) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    my $deadline = time + 240;
    while (!-e $stopfile && time < $deadline) {
        my $r = one_stream();
        open my $fh, '>>', $results or POSIX::_exit(1);
        printf {$fh} "%.3f %s %s\n", time, $name, $r;
        close $fh;
        sleep 0.2 if $r eq 'refused';
    }
    POSIX::_exit(0);
}
sub stream_results {
    my ($from, $to) = @_;
    my %n;
    for (split /\n/, -e $results ? slurp($results) : '') {
        my ($at, undef, $r) = split / /;
        $n{$r}++ if $at >= $from && (!defined $to || $at <= $to);
    }
    return \%n;
}
my @workers = map { start_streams("w$_") } 1 .. 2;
ok(wait_until(sub { (stream_results(0)->{ok} // 0) >= 2 }, 20), 'streams flow before the kill');

# ---- kill -9 of the relaying instance ------------------------------------------------------
my %before = map { ($_->name => scalar(() = opens($_, 'host')) . '/' . scalar(() = opens($_, 'client'))) } @c;
sleep 0.5;    # a stream in flight when the kill lands
my $killed_at = time;
$Y->kill9;
my $X;
ok(wait_until(sub {
    ($X) = grep { my $b = $before{ $_->name }; my ($h, $c) = split m{/}, $b;
        opens($_, 'host') > $h && opens($_, 'client') > $c } @others;
    return $X;
}, 15), 'both agents reconnected to another instance');
my $took = time - $killed_at;
ok($took < 10, sprintf('... within 10 s of the kill (%.1f s, heartbeat lapse included)', $took));
diag(sprintf('agents back on %s after %.1f s', $X ? $X->name : 'none', $took));
is((opens($X, 'host'))[-1], $S, 'the host agent resumed the same session');
is((opens($X, 'client'))[-1], $S, 'the module resumed the same session');
like($X->log, qr/owner_claimed lease=\Q$L\E instance=\Q${\ $X->name}\E/, 'the new instance claimed the lease');
my $t_back = time;
ok(wait_until(sub { (stream_results($t_back)->{ok} // 0) >= 2 }, 20), 'new streams work after the takeover');
my $k = stream_results($killed_at - 0.6, $t_back);
ok(($k->{cut} // 0) + ($k->{refused} // 0) >= 1, 'the kill cut streams (cut ' . ($k->{cut} // 0)
    . ', refused ' . ($k->{refused} // 0) . ')');

# ---- the killed instance returns; the ring gives the lease back ---------------------------------
$Y->start_again;
ok(wait_until(sub { $Y->log =~ /owner_registered instance=\Q${\ $Y->name}\E epoch=2 / }, 10),
    'it returns with epoch 2');
# nginx retries a failed server after fail_timeout (10 s): wait until a
# mint for the lease lands on the returned instance again.
my $minted = sub { () = $Y->log =~ /ticket_minted lease=\Q$L\E/g };
my $base = $minted->();
ok(wait_until(sub {
    front_api(POST => "/v1/leases/$L/egress/ticket", { role => 'client', sessionID => $S });
    return $minted->() > $base;
}, 30), 'the front routes the lease to the returned instance again');

my %x_before = map { ($_ => scalar(() = opens($Y, $_))) } qw(host client);
my $cut_at = time;
kill 'USR1', $t->pid('relay');
ok(wait_until(sub { opens($Y, 'host') > $x_before{host} && opens($Y, 'client') > $x_before{client} }, 20),
    'host agent reconnected through the front: both sockets moved back');
like($Y->log, qr/owner_elsewhere lease=\Q$L\E owner=\Q${\ $X->name}\E/, 'the returned instance found the lease owned and asked');
like($X->log, qr/owner_released lease=\Q$L\E instance=\Q${\ $X->name}\E epoch=\d+ why=asked/, 'the old owner let go');
like($X->log, qr/session_end lease=\Q$L\E session=\Q$S\E code=1013 reason=egress_lease_moved/,
    '... closing its sockets with 1013');

# No split: the old owner's last word on the lease comes before the new owner's first socket.
sub stamp {
    my ($log, $re) = @_;
    my @s = map { /^(\S+)/ ? $1 : () } grep { $_ =~ $re } split /\n/, $log;
    return @s;
}
my ($released) = (stamp($X->log, qr/owner_released lease=\Q$L\E/))[-1];
my @reopen = stamp($Y->log, qr/socket_open lease=\Q$L\E/);
my ($first_back) = grep { $_ gt $released } @reopen;
ok($released && $first_back && $released lt $first_back, "release ($released) before the new owner's sockets (" . ($first_back // '-') . ')');
my @late = grep { $_ gt $released } stamp($X->log, qr/socket_open lease=\Q$L\E/);
is(scalar @late, 0, 'the old owner opened no socket of the lease after letting go');
is((opens($Y, 'client'))[-1], $S, 'same session after the move back');
my $t_moved = time;
ok(wait_until(sub { (stream_results($t_moved)->{ok} // 0) >= 2 }, 20), 'streams work after the move back');

# ---- a stalled owner closes what was taken from it meanwhile --------------------------------
# Y is frozen past its heartbeat lapse while the lease's record is given to
# an instance that is not running (as a takeover by another would): thawed,
# Y's next heartbeat says it lapsed, Y finds the record no longer its own,
# closes its sockets (1013), and the agents come back; Y's claim over the
# dead owner succeeds at once.
my $yn = $Y->name;
my %y_before = map { ($_ => scalar(() = opens($Y, $_))) } qw(host client);
kill 'STOP', $t->pid($yn);
my ($prc) = $pg->psql('egress_own', "UPDATE lease_owners SET instance='c9', epoch=1 WHERE lease_id='$L'");
is($prc, 0, "while $yn is frozen, the record moves to another (dead) instance");
ok(wait_until(sub {
    my (undef, $out) = $pg->psql('egress_own',
        "SELECT clock_timestamp() - heartbeat > interval '3.2 s' FROM instances WHERE name='$yn'");
    return ($out // '') =~ /^t/m;
}, 10), "${yn}'s heartbeat lapsed");
kill 'CONT', $t->pid($yn);
ok(wait_until(sub { $Y->log =~ /owner_lost lease=\Q$L\E instance=\Q$yn\E why=heartbeat_lapsed/ }, 10),
    'thawed, it finds the lease no longer its own');
ok(wait_until(sub { opens($Y, 'host') > $y_before{host} && opens($Y, 'client') > $y_before{client} }, 20),
    'the agents came back and it claimed the lease again');
my $t_stall = time;
ok(wait_until(sub { (stream_results($t_stall)->{ok} // 0) >= 2 }, 20), 'streams work after the stall');

# ---- a clean stop hands the leases over at once ---------------------------------------------
my %o_before = map { my $c = $_; ($c->name => { map { ($_ => scalar(() = opens($c, $_))) } qw(host client) }) } @others;
my $stop_at = time;
$Y->stop;
my $Z;
ok(wait_until(sub {
    ($Z) = grep { opens($_, 'host') > $o_before{ $_->name }{host}
        && opens($_, 'client') > $o_before{ $_->name }{client} } @others;
    return $Z;
}, 15), 'after SIGTERM of the owner both agents are on another instance');
my $handover = time - $stop_at;
ok($handover < 1.5, sprintf('... sooner than the heartbeat lapse (%.1f s): the stop released the lease', $handover));
my $t_stop = time;
ok(wait_until(sub { (stream_results($t_stop)->{ok} // 0) >= 2 }, 20), 'streams work after the hand-over');

# ---- streams: nothing corrupted, nothing hung ----------------------------------------------
spew($stopfile, '');
waitpid($_, 0) for @workers;
my $all = stream_results(0);
diag('streams: ' . join(' ', map {"$_=$all->{$_}"} sort keys %$all));
is($all->{bad} // 0, 0, 'no stream saw a wrong byte');
is($all->{hang} // 0, 0, 'no stream hung');
ok(($all->{ok} // 0) >= 6, 'streams completed throughout');

$t->done;
done_testing;
