#!/usr/bin/perl
# Adaptive stream windows end to end: nginx + module -> delayrelay (D ms) ->
# coordinator <- delayrelay (D ms) <- egress host -> origin, so a stream
# credit round trip is 4D. A bulk download must grow the module's receive
# window (its error log names every change) and a bulk upload the agent's
# (the audit line's windowMax), while a slow reader downloading beside the
# fast one keeps its window at the start size (256 KiB). Every byte is
# checked. Nothing here is timed: the windows are read from the streams' own
# counters.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);
use IO::Select;
use IO::Socket::IP;
use POSIX ();
use JSON::PP;
use IO::Handle;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes qw(time sleep);

use Test::Egress qw(wait_until slurp spew);
use Test::Egress::Module;
use Test::Egress::Origin;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so', 'egress-coordinator',
    'egress', 'bench/delayrelay');
$SIG{PIPE} = 'IGNORE';

my $D     = 10;    # ms each way on each WebSocket leg: a 40 ms credit round trip
my $START = 262144;
my $c     = $t->coordinator;
my $tok   = $c->token(owner => 'alice', org => 'acme');
my $lid   = $c->lease($tok, slug => 'windows')->{id};
my $ct    = $c->ticket($tok, $lid, role => 'client');
my $dir   = $t->dir;
my $o     = $t->origin;
my $op    = $o->port;

# ---- configuration ------------------------------------------------------------------
spew("$dir/t.ticket", "egt_not_a_real_ticket\n", 0600);
sub conf_with {
    my ($extra) = @_;
    return "egress_bridge ws://127.0.0.1:1/x;\negress_bridge_ticket_file $dir/t.ticket;\n"
        . "egress_bridge_state_file $dir/t.state;\n$extra\n"
        . "server { listen 127.0.0.1:${\ $t->port}; egress_proxy on; }";
}
for my $bad ('egress_window_max 100k;', 'egress_window_max 2g;', 'egress_window_budget lots;') {
    my ($rc, $out) = $t->nginx_test(stream => conf_with($bad));
    isnt($rc, 0, "nginx -t refuses '$bad'");
    like($out, qr/"egress_window_(max|budget)"/, '... naming it') or diag($out);
}
my ($trc, $tout) = $t->nginx_test(stream => conf_with('egress_window_max 256k; egress_window_budget 0;'));
is($trc, 0, 'fixed windows (256k, budget 0) are a valid configuration') or diag($tout);

sub relay {
    my ($name) = @_;
    my $p = $t->port;
    $t->spawn($name, cmd => [ $t->bin('bench/delayrelay'), '--listen', "127.0.0.1:$p",
            '--connect', '127.0.0.1:' . $c->port, '--delay-ms', $D ], wait_port => $p);
    return $p;
}
my $mrp = relay('relay-module');
my $arp = relay('relay-agent');

my $m = Test::Egress::Module->new($t, ticket => $ct->{ticket},
    bridge => "ws://127.0.0.1:$mrp/v1/leases/$lid/egress/client",
    stream => 'egress_window_max 4m;');
$m->start;
ok($m->wait_log(qr/egress bridge: session ".+" ready/, $t->timeout(20)), 'module bridge up');

mkdir "$dir/state";
$t->spawn('agent', cmd => [ $t->bin('egress'), 'host', '--id', $lid, '--session', $ct->{sessionID},
        '--allow', "127.0.0.1:$op", '--allow-private', '--audit-log', "$dir/audit.log",
        '--window-max', '8M' ],
    env => { $t->san_env, HOME => $dir, XDG_STATE_HOME => "$dir/state",
        EGRESS_COORDINATOR => "http://127.0.0.1:$arp", EGRESS_TOKEN => $tok },
    wait_log => qr/connected: lease=/, timeout => 20);
ok($m->wait_log(qr/egress bridge: host agent connected/, $t->timeout(20)), 'host agent up');

# ---- one bulk download: the module's window grows ------------------------------------
my $BIG = 24 * 1024 * 1024 + 3;
my ($rc, $out) = $t->run([ 'curl', '-sS', '--max-time', '180', '-p', '--proxy',
        "http://127.0.0.1:" . $m->port, '-o', "$dir/big.bin", "http://127.0.0.1:$op/bytes/$BIG" ],
    timeout => 200);
is($rc, 0, "download through a CONNECT tunnel ($out)");
my $got = -e "$dir/big.bin" ? slurp("$dir/big.bin") : '';
is(length($got), $BIG, 'download length');
ok($got eq Test::Egress::Origin::pattern($BIG), 'download content intact');
undef $got;

ok(wait_until(sub { defined $m->access_stream_id($BIG, $BIG + 1000) }, $t->timeout(10)), 'access log written');
my $bid = $m->access_stream_id($BIG, $BIG + 1000);
my $w   = $m->stream_windows->{ $bid // 0 } // [];
my ($peak) = sort { $b <=> $a } map { $_->[1] } @$w;
ok(@$w && $w->[0][0] == $START, "the window started at 256 KiB ("
    . join(' ', map { "$_->[0]->$_->[1]" } @$w) . ')');
ok(($peak // 0) >= 4 * $START, 'the window grew at least fourfold (' . ($peak // 0) . ')');
ok(($peak // 0) <= 4 * 1024 * 1024, 'and never beyond egress_window_max 4m');
like($m->error_log, qr/egress stream $bid: receive window \d+ \(was \d+, round trip [1-9]\d* ms,/,
    'a round trip was measured');

# ---- a slow reader beside a fast download ---------------------------------------------
my $SLOW = 3 * 1024 * 1024 + 11;
my $FAST = 16 * 1024 * 1024 + 5;
# a small receive buffer, set before connect so the kernel cannot hide the
# reader's pace behind a large advertised window
socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
setsockopt($s, SOL_SOCKET, SO_RCVBUF, 16384) or die "SO_RCVBUF: $!";
connect($s, pack_sockaddr_in($m->port, inet_aton('127.0.0.1'))) or die "connect: $!";
$s->autoflush(1);
print {$s} "CONNECT 127.0.0.1:$op HTTP/1.1\r\n\r\n";
my $head = '';
my $sel  = IO::Select->new($s);
my $dl   = time + $t->timeout(20);
while ($head !~ /\r\n\r\n/ && time < $dl) {
    next unless $sel->can_read(1);
    sysread($s, $head, 1, length $head) or last;
}
like($head, qr{^HTTP/1\.1 200 }, 'slow reader: tunnel established');
print {$s} "GET /bytes/$SLOW HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

$t->spawn('curl-fast', cmd => [ 'curl', '-sS', '--max-time', '180', '-p', '--proxy',
        "http://127.0.0.1:" . $m->port, '-o', "$dir/fast.bin", "http://127.0.0.1:$op/bytes/$FAST" ],
    allow_exit => 1);

# The slow reader takes at most 16 KiB every 50 ms (about 320 KiB/s, a
# tenth of what a 256 KiB window carries per 80 ms) to the end.
my $slow = '';
my $fast_done;
$dl = time + $t->timeout(240);
while (time < $dl) {
    if (!defined $fast_done) {
        my $p = $t->{procs}{'curl-fast'};
        if (waitpid($p->{pid}, POSIX::WNOHANG()) == $p->{pid}) {
            $fast_done = $?;
            $p->{pid}  = undef;
            $p->{status} = $fast_done;
        }
    }
    last if defined $fast_done && $slow =~ /\r\n\r\n/ && length($slow) - $+[0] >= $SLOW;
    if ($sel->can_read(0.05)) {
        my $n = sysread($s, my $buf, 16384);
        last unless $n;
        $slow .= $buf;
        sleep 0.05;
    }
}
close $s;
is($fast_done, 0, 'fast download finished');
$got = -e "$dir/fast.bin" ? slurp("$dir/fast.bin") : '';
ok(length($got) == $FAST && $got eq Test::Egress::Origin::pattern($FAST), 'fast download intact');
undef $got;
my ($sbody) = $slow =~ /\r\n\r\n(.*)$/s;
ok(defined $sbody && length($sbody) == $SLOW && $sbody eq Test::Egress::Origin::pattern($SLOW),
    'slow download intact');

ok(wait_until(sub { defined $m->access_stream_id($FAST, $FAST + 1000) && defined $m->access_stream_id($SLOW, $SLOW + 1000) },
        $t->timeout(10)), 'access log written');
my $fid = $m->access_stream_id($FAST, $FAST + 1000);
my $sid = $m->access_stream_id($SLOW, $SLOW + 1000);
$w = $m->stream_windows;
ok(@{ $w->{ $fid // 0 } // [] }, 'the fast stream grew its window ('
    . join(' ', map { "$_->[0]->$_->[1]" } @{ $w->{ $fid // 0 } // [] }) . ')');
is_deeply($w->{ $sid // 0 } // [], [], 'the slow stream kept its 256 KiB window');

# ---- one bulk upload: the agent's window grows ----------------------------------------
my $UP = 12 * 1024 * 1024 + 7;
my $up = Test::Egress::Origin::pattern($UP);
spew("$dir/up.bin", $up);
($rc, $out) = $t->run([ 'curl', '-sS', '--max-time', '180', '-p', '--proxy',
        "http://127.0.0.1:" . $m->port, '--data-binary', "\@$dir/up.bin",
        "http://127.0.0.1:$op/echo" ], timeout => 200);
is($out, sprintf("len=%d sha1=%s\n", $UP, sha1_hex($up)), 'upload intact');

my @audit;
ok(wait_until(sub {
    @audit = map { eval { decode_json($_) } // () } split /\n/, (-e "$dir/audit.log" ? slurp("$dir/audit.log") : '');
    grep { ($_->{bytesUp} // 0) >= $UP } @audit;
}, $t->timeout(10)), 'agent audit line for the upload');
my ($ua) = grep { ($_->{bytesUp} // 0) >= $UP } @audit;
ok(($ua->{windowMax} // 0) >= 4 * $START, "the agent's window grew (windowMax "
    . ($ua->{windowMax} // 'none') . ')');
ok(($ua->{windowMax} // 0) <= 8 * 1024 * 1024, 'and never beyond --window-max 8M');
my ($sa) = grep { ($_->{bytesDown} // 0) >= $SLOW && ($_->{bytesDown} // 0) < $SLOW + 1000 } @audit;
is($sa && $sa->{windowMax}, $START, 'a stream that uploaded only its request kept 256 KiB');

$t->stop('agent');
$t->stop('nginx');
$t->done;
done_testing;
