#!/usr/bin/perl
# The host agent's adaptive receive windows, against the real coordinator
# with a delayrelay (D ms each way) between the agent and the coordinator.
# The test client is an older v2 peer: it knows nothing of growth and only
# adds up the agent's `window` increments. A bulk upload to a fast origin
# must see the agent's credit grow past 256 KiB (and stop at --window-max);
# an upload beside it to a destination that reads slowly must never be
# granted more than 256 KiB. Every byte is checked; the windows come from
# the grants the client counted and the agent's audit line, not from timing.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);
use IO::Socket::IP;
use POSIX ();
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(time sleep);

use Test::Egress qw(wait_until slurp);
use Test::Egress::HostAgent;
use Test::Egress::Origin;

my $t = Test::Egress->new->require_bins('egress-coordinator', 'egress', 'bench/delayrelay');
$SIG{PIPE} = 'IGNORE';

my $D     = 20;    # ms each way between agent and coordinator
my $START = 262144;
my $MAX   = 2 * 1024 * 1024;
my $dir   = $t->dir;

# ---- flags ----------------------------------------------------------------------------
my ($rc, $out) = $t->run([ $t->bin('egress'), 'host', '--help' ]);
like($out, qr/--window-max BYTES/, '--help documents --window-max');
like($out, qr/--window-budget BYTES/, '--help documents --window-budget');
for my $bad ([ '--window-max', '100K' ], [ '--window-max', '2G' ], [ '--window-max', 'lots' ],
    [ '--window-budget', '-1' ], [ '--window-budget', '2T' ], [ '--window-budget', '1X' ]) {
    ($rc, $out) = $t->run([ $t->bin('egress'), 'host', '--id', 'x', @$bad ]);
    is($rc, 2, "@$bad is a usage error");
    like($out, qr/\Q$bad->[0]\E must be/, "... saying what is allowed");
}

# ---- a destination that reads 4 KiB every 20 ms (about 200 KiB/s) ------------------------
my $slow_port = $t->port;
my $slow_pid  = fork // die "fork: $!";
if ($slow_pid == 0) {
    my $l = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $slow_port, Listen => 1,
        ReuseAddr => 1) or POSIX::_exit(1);
    setsockopt($l, SOL_SOCKET, SO_RCVBUF, 16384);
    while (my $c = $l->accept) {
        my ($len, $sha) = (0, Digest::SHA->new(1));
        while (1) {
            my $n = sysread($c, my $buf, 4096);
            last unless $n;
            $len += $n;
            $sha->add($buf);
            sleep 0.02;
        }
        next unless $len; # the readiness probe
        syswrite($c, "len=$len sha1=" . $sha->hexdigest . "\n");
        close $c;
        POSIX::_exit(0);
    }
    POSIX::_exit(1);
}
wait_until(sub { Test::Egress::port_open($slow_port) }, 10) or die 'slow destination not up';

my $o = $t->origin;
my $P = $o->port;
my $h = Test::Egress::HostAgent->new($t, no_agent => 1,
    allow => "127.0.0.1:$P,127.0.0.1:$slow_port",
    args  => [ '--allow-private', '--audit-log', "$dir/audit.log", '--window-max', '2M' ]);
my $c  = $h->c;
my $rp = $t->port;
$t->spawn('relay', cmd => [ $t->bin('bench/delayrelay'), '--listen', "127.0.0.1:$rp", '--connect',
        '127.0.0.1:' . $c->port, '--delay-ms', $D ], wait_port => $rp);
mkdir "$dir/$_" for qw(home state config);
my $url = $c->url;
$t->spawn('agent', cmd => [ map { $_ eq $url ? "http://127.0.0.1:$rp" : $_ } @{ $h->agent_cmd } ],
    env => { $h->env }, wait_log => qr/connected: lease=/, timeout => 20);
ok($h->wait_peer(1, $t->timeout(20)), 'agent connected through the delayed link');

# ---- two uploads at once: fast origin, slow destination ---------------------------------
my $FAST = 8 * 1024 * 1024 + 3;
my $SLOW = 1024 * 1024 + 5;
my $fast = Test::Egress::Origin::pattern($FAST);
my $slow = substr(pack('C*', map { ($_ * 7) % 256 } 0 .. 255) x (int($SLOW / 256) + 1), 0, $SLOW);
my %s = (
    1 => { data => "POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: $FAST\r\n\r\n"
            . $fast },
    2 => { data => $slow },
);
is($h->open(1, '127.0.0.1', $P)->{type}, 'open_ok', 'fast stream open');
is($h->open(2, '127.0.0.1', $slow_port)->{type}, 'open_ok', 'slow stream open');
for my $st (values %s) {
    @$st{qw(off credit peak grants)} = (0, $START, $START, 0);
}

my $deadline = time + $t->timeout(180);
while (time < $deadline) {
    my $busy = 0;
    for my $id (1, 2) {
        my $st = $s{$id};
        next if $st->{off} >= length $st->{data};
        $busy = 1;
        next unless $st->{credit} > 0;
        my $n = length($st->{data}) - $st->{off};
        $n = $st->{credit} if $n > $st->{credit};
        $n = 32768 if $n > 32768;
        $h->send($id, substr($st->{data}, $st->{off}, $n));
        $st->{off} += $n;
        $st->{credit} -= $n;
        if ($st->{off} >= length $st->{data}) {
            $h->close_stream($id, 1);
        }
    }
    last unless $busy;
    # wait for grants only when no stream can send
    my $m = $h->next_msg((grep { $_->{credit} > 0 && $_->{off} < length $_->{data} } values %s) ? 0.001 : 2)
        or next;
    if ($m->{json} && $m->{json}{type} eq 'window' && $s{ $m->{json}{id} }) {
        my $st = $s{ $m->{json}{id} };
        $st->{credit} += $m->{json}{increment};
        $st->{grants}++;
        $st->{peak} = $st->{credit} if $st->{credit} > $st->{peak};
    } else {
        push @{ $h->{pending} }, $m;
    }
}
is($s{1}{off}, length $s{1}{data}, 'fast upload sent within the credit granted');
is($s{2}{off}, length $s{2}{data}, 'slow upload sent within the credit granted');
ok($s{1}{peak} > $START, "the fast stream's credit grew past 256 KiB (peak $s{1}{peak})");
ok($s{1}{peak} <= $MAX, 'and stayed within --window-max 2M');
is($s{2}{peak}, $START, "the slow stream's credit never passed 256 KiB ($s{2}{grants} grants)");

my ($echo) = $h->read_stream(1, timeout => 60);
like($echo, qr/len=$FAST sha1=${\ sha1_hex($fast)}/, 'origin received the fast upload intact');
my ($secho) = $h->read_stream(2, timeout => 60);
is($secho, "len=$SLOW sha1=" . sha1_hex($slow) . "\n", 'slow destination received its upload intact');
$h->close_stream($_) for 1, 2;
waitpid($slow_pid, 0);

my @audit;
ok(wait_until(sub { @audit = $h->audit_lines("$dir/audit.log"); @audit >= 2 }, $t->timeout(10)),
    'audit lines written');
my %a = map { $_->{stream} => $_ } @audit;
ok(($a{1}{windowMax} // 0) > $START && $a{1}{windowMax} <= $MAX,
    "audit: the fast stream's windowMax (" . ($a{1}{windowMax} // 'none') . ')');
is($a{2}{windowMax}, $START, "audit: the slow stream's windowMax");

$t->stop('agent');
$t->done;
done_testing;
