#!/usr/bin/perl
# A window grows only to what the path carries per round trip. The download
# direction crosses a slow hop: the agent's delayrelay is also a 4 MiB/s link
# (--rate-kib) with an unbounded queue in front of it, like a router on a slow
# uplink, and both WebSocket legs add D ms. A 256 KiB window already covers
# that path's bandwidth-delay product (4 MiB/s x ~40 ms = 160 KiB), so a
# window that grew further would only park bytes in the link's queue, where
# a new stream's response waits behind them. The download's window must stay
# well below the cap (pace alone, the reader keeping up, would grow it there)
# while every byte arrives intact. A small request beside it must come back
# intact too. The windows come from the module's own log of every change,
# not from timing.

use strict;
use warnings;

use Test::More;
use POSIX ();

use Test::Egress qw(wait_until slurp);
use Test::Egress::Module;
use Test::Egress::Origin;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so', 'egress-coordinator',
    'egress', 'bench/delayrelay');
$SIG{PIPE} = 'IGNORE';

my $D     = 10;      # ms each way on each WebSocket leg: a 40 ms credit round trip
my $RATE  = 4096;    # KiB/s of the agent's hop
my $START = 262144;
my $c     = $t->coordinator;
my $tok   = $c->token(owner => 'alice', org => 'acme');
my $lid   = $c->lease($tok, slug => 'bdp')->{id};
my $ct    = $c->ticket($tok, $lid, role => 'client');
my $dir   = $t->dir;
my $o     = $t->origin;
my $op    = $o->port;

# ---- the relay's rate option ------------------------------------------------------
my ($rc, $out) = $t->run([ $t->bin('bench/delayrelay'), '--listen', '127.0.0.1:1', '--connect',
        '127.0.0.1:2', '--delay-ms', 1, '--rate-kib', 0 ]);
isnt($rc, 0, 'delayrelay refuses a zero rate');
like($out, qr/--rate-kib R/, '... and says how to use it');

sub relay {
    my ($name, @rate) = @_;
    my $p = $t->port;
    $t->spawn($name, cmd => [ $t->bin('bench/delayrelay'), '--listen', "127.0.0.1:$p",
            '--connect', '127.0.0.1:' . $c->port, '--delay-ms', $D, @rate ], wait_port => $p);
    return $p;
}
my $mrp = relay('relay-module');
my $arp = relay('relay-agent', '--rate-kib', $RATE);

my $m = Test::Egress::Module->new($t, ticket => $ct->{ticket},
    bridge => "ws://127.0.0.1:$mrp/v1/leases/$lid/egress/client",
    stream => 'egress_window_max 8m;');
$m->start;
ok($m->wait_log(qr/egress bridge: session ".+" ready/, $t->timeout(20)), 'module bridge up');

mkdir "$dir/state";
$t->spawn('agent', cmd => [ $t->bin('egress'), 'host', '--id', $lid, '--session', $ct->{sessionID},
        '--allow', "127.0.0.1:$op", '--allow-private' ],
    env => { $t->san_env, HOME => $dir, XDG_STATE_HOME => "$dir/state",
        EGRESS_COORDINATOR => "http://127.0.0.1:$arp", EGRESS_TOKEN => $tok },
    wait_log => qr/connected: lease=/, timeout => 20);
ok($m->wait_log(qr/egress bridge: host agent connected/, $t->timeout(20)), 'host agent up');

# ---- a bulk download through the slow hop, a small request beside it ------------------
my $BIG   = 10 * 1024 * 1024 + 3;    # about 2.5 s at 4 MiB/s
my $SMALL = 20000 + 7;
$t->spawn('curl-big', cmd => [ 'curl', '-sS', '--max-time', '120', '-p', '--proxy',
        "http://127.0.0.1:" . $m->port, '-o', "$dir/big.bin", "http://127.0.0.1:$op/bytes/$BIG" ],
    allow_exit => 1);
# the small request once the download is under way (its stream logged a change
# or at least its first MiB arrived)
ok(wait_until(sub { -e "$dir/big.bin" && -s "$dir/big.bin" >= 1024 * 1024 }, $t->timeout(60)),
    'the download is under way');
($rc, $out) = $t->run([ 'curl', '-sS', '--max-time', '60', '--proxy', "http://127.0.0.1:" . $m->port,
        '-o', "$dir/small.bin", "http://127.0.0.1:$op/bytes/$SMALL" ], timeout => 70);
is($rc, 0, "a small request beside it ($out)");
my $small = -e "$dir/small.bin" ? slurp("$dir/small.bin") : '';
ok($small eq Test::Egress::Origin::pattern($SMALL), 'small response intact');

my $p = $t->{procs}{'curl-big'};
my $status;
ok(wait_until(sub {
    return 0 unless waitpid($p->{pid}, POSIX::WNOHANG()) == $p->{pid};
    $status = $?;
    return 1;
}, $t->timeout(120)), 'download finished');
is($status, 0, 'curl succeeded');
$p->{pid}    = undef;
$p->{status} = $status;
my $got = -e "$dir/big.bin" ? slurp("$dir/big.bin") : '';
is(length($got), $BIG, 'download length');
ok($got eq Test::Egress::Origin::pattern($BIG), 'download content intact');
undef $got;

ok(wait_until(sub { defined $m->access_stream_id($BIG, $BIG + 1000) }, $t->timeout(10)), 'access log written');
my $bid = $m->access_stream_id($BIG, $BIG + 1000);
my $w   = $m->stream_windows->{ $bid // 0 } // [];
my ($peak) = sort { $b <=> $a } map { $_->[1] } @$w;
$peak //= $START;
my $changes = join(' ', map { "$_->[0]->$_->[1]" } @$w) || 'none';
ok($peak <= 4 * $START, "the window stayed near the path's bandwidth-delay product, "
    . "far below egress_window_max 8m (peak $peak; changes: $changes)");

done_testing();
