#!/usr/bin/perl
# egress host data path against the real coordinator: v2 flow control (a
# stalled stream does not stall another, the agent never exceeds the credit
# it was given, uploads are paced by the agent's grants), half-close, and
# 1000 parallel streams on one WebSocket.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);
use Time::HiRes qw(time);
use Test::Egress;
use Test::Egress::HostAgent;
use Test::Egress::Origin;

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator', 'egress');
my $o = $t->origin;
my $P = $o->port;
my $mp = $t->port;
# Fixed 256 KiB windows (--window-max 256K): this file checks the credit
# contract itself; t/222 checks windows that grow.
my $h = Test::Egress::HostAgent->new($t, allow => "127.0.0.1:$P",
    args => [ '--allow-private', '--metrics', "127.0.0.1:$mp", '--window-max', '256K' ]);

# ---- slow reader: stream 1 gets no grants, stream 2 must still complete ------------
my $big = 4_000_000;
my $credit = 262144;
is($h->open(1, '127.0.0.1', $P)->{type}, 'open_ok', 'stream 1 open');
$h->send(1, "GET /bytes/$big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
my ($stalled) = $h->read_stream(1, no_grant => 1, bytes => $credit, timeout => 10);
ok(length($stalled) > 0, 'stalled stream received its first window');

my ($a, $r) = $h->http(2, '127.0.0.1', $P, '/bytes/300000');
is($a->{type}, 'open_ok', 'stream 2 open while stream 1 is stalled');
my ($body) = ($r // '') =~ /\r\n\r\n(.*)$/s;
ok(defined $body && $body eq Test::Egress::Origin::pattern(300000),
    'stream 2 completes while stream 1 is stalled');

# Stream 2's whole exchange ran through the agent while stream 1's origin
# socket had megabytes waiting: any stream 1 bytes beyond the credit would
# have been sent by now and sit in the pending queue.
$h->{pending} = [ grep {
    my $extra = $_->{type} eq 'binary' && $_->{id} == 1;
    $stalled .= $_->{body} if $extra;
    !$extra;
} @{ $h->{pending} } ];
ok(length($stalled) <= $credit, 'agent stops at the 256 KiB credit (' . length($stalled) . ')');

# now release stream 1 and read it to the end
$h->ws->send_json({ type => 'window', id => 1, increment => length $stalled });
my ($rest, $close) = $h->read_stream(1, timeout => 60);
my $all = $stalled . $rest;
($body) = $all =~ /\r\n\r\n(.*)$/s;
ok(defined $body && length($body) == $big && $body eq Test::Egress::Origin::pattern($big),
    'stream 1 completes intact after the grant');
is($close && $close->{type}, 'close', 'origin EOF arrives as close');
ok($close && $close->{half}, '... as a half-close');
$h->close_stream(1);

# ---- upload paced by the agent's window grants, then half-close ------------------------
# byte i = (i * 7) % 256, built from one 256-byte period
my $up = substr(pack('C*', map { ($_ * 7) % 256 } 0 .. 255) x 3907, 0, 1_000_000);
is($h->open(3, '127.0.0.1', $P)->{type}, 'open_ok', 'stream 3 open');
$credit = 262144;
my $hdr = "POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: "
    . length($up) . "\r\n\r\n";
my $data = $hdr . $up;
my ($off, $grants, $over) = (0, 0, 0);
my $deadline = time + 60;
while ($off < length $data && time < $deadline) {
    if ($credit > 0) {
        my $n = length($data) - $off;
        $n = $credit if $n > $credit;
        $n = 32768 if $n > 32768;
        $h->send(3, substr($data, $off, $n));
        $off += $n;
        $credit -= $n;
        next;
    }
    my $m = $h->next_msg(2) or next;
    if ($m->{json} && $m->{json}{type} eq 'window' && $m->{json}{id} == 3) {
        $credit += $m->{json}{increment};
        $grants++;
        $over++ if $credit > 262144;
    } else {
        push @{ $h->{pending} }, $m;
    }
}
is($off, length $data, 'upload of 1 MB sent within the credit the agent granted');
ok($grants >= 3, "agent granted window as it drained ($grants grants)");
is($over, 0, 'agent never granted beyond its advertised window');
$h->close_stream(3, 1);
my ($echo, $c3) = $h->read_stream(3, timeout => 30);
like($echo, qr/len=1000000 sha1=${\ sha1_hex($up)}/, 'origin received the upload intact');
ok($c3 && $c3->{type} eq 'close', 'stream ends after both half-closes');

# ---- 1000 parallel streams ------------------------------------------------------------
my $N = 1000;
my $base = 1000;
for my $i (1 .. $N) {
    $h->open($base + $i, '127.0.0.1', $P, no_wait => 1);
}
my (%state, %buf, @opened);
my ($errs, $done) = (0, 0);
$deadline = time + 120 * ($ENV{EGRESS_SAN} ? 3 : 1);
my $track = sub {
    my ($m) = @_;
    if ($m->{type} eq 'binary') {
        $buf{ $m->{id} } .= $m->{body};
        return;
    }
    return unless $m->{json};
    my $id = $m->{json}{id} // 0;
    return unless $id > $base && $id <= $base + $N;
    if ($m->{json}{type} eq 'open_ok') {
        push @opened, $id;
    } elsif ($m->{json}{type} eq 'error') {
        $errs++;
        diag("stream $id: $m->{json}{message}") if $errs < 5;
    } elsif ($m->{json}{type} eq 'close') {
        return if $state{$id}++;
        $done++;
        $h->close_stream($id);
    }
};
# Every stream is answered before any request goes out, so all of them are
# open in the agent at once.
while (@opened + $errs < $N && time < $deadline) {
    my $m = $h->next_msg(2) or next;
    $track->($m);
}
is(scalar @opened, $N, "$N parallel streams opened");
# (no stream can end before its request; only stream 3's end may still be settling)
my $metrics = '';
Test::Egress::wait_until(sub {
    $metrics = Test::Egress::http_get($mp, '/metrics') // '';
    return $metrics =~ /^egress_host_streams $N$/m;
}, 10);
like($metrics, qr/^egress_host_streams $N$/m, "metrics: $N streams open at once");
$h->send($_, "GET /bytes/2000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n") for @opened;
while ($done + $errs < $N && time < $deadline) {
    my $m = $h->next_msg(2) or next;
    $track->($m);
}
is($done, $N, "all $N streams finished");
my $want = Test::Egress::Origin::pattern(2000);
my $good = grep { my ($b) = ($buf{$_} // '') =~ /\r\n\r\n(.*)$/s; defined $b && $b eq $want }
    ($base + 1 .. $base + $N);
is($good, $N, "all $N responses intact") or do {
    for my $id ($base + 1 .. $base + $N) {
        my ($b) = ($buf{$id} // '') =~ /\r\n\r\n(.*)$/s;
        next if defined $b && $b eq $want;
        diag("stream $id: " . length($buf{$id} // '') . " bytes: " . substr($buf{$id} // '', 0, 120));
        last;
    }
};
ok($t->running('agent'), 'agent still running');

# ---- metrics --------------------------------------------------------------------------
# (the client's last close frames may still be in flight: poll)
$metrics = '';
Test::Egress::wait_until(sub {
    $metrics = Test::Egress::http_get($mp, '/metrics') // '';
    return $metrics =~ /^egress_host_streams 0$/m;
}, 20);
like($metrics, qr/^egress_host_bridge_connected 1$/m, 'metrics: bridge connected');
like($metrics, qr/^egress_host_streams_opened_total 1003$/m, 'metrics: streams opened');
like($metrics, qr/^egress_host_streams_closed_total\{result="ok"\} 1003$/m, 'metrics: closed ok');
my ($down) = $metrics =~ /^egress_host_bytes_total\{direction="down"\} (\d+)$/m;
ok(($down // 0) > 4_000_000 + 300_000 + 2_000_000, 'metrics: bytes down');

$t->done;
done_testing;
