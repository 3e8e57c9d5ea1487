#!/usr/bin/perl
# egress-coordinator: v1 <-> v2 translation in both pairings, including the
# credit the coordinator grants on behalf of the v1 side and the v1 data it
# holds back until the v2 side grants credit.

use strict;
use warnings;

use Test::More;
use MIME::Base64 qw(encode_base64 decode_base64);
use Test::Egress qw(wait_until);

my $t = Test::Egress->new;
my $c = $t->coordinator;
my $alice = $c->token(owner => 'alice', org => 'acme');
my $L = $c->lease($alice, slug => 'translate')->{id};

sub pair {
    my ($cproto, $hproto) = @_;
    my $ct = $c->ticket($alice, $L, role => 'client');
    my $ht = $c->ticket($alice, $L, role => 'host', sessionID => $ct->{sessionID});
    my $cl = $c->ws($L, 'client', ticket => $ct->{ticket}, protocols => $cproto) or die 'client refused';
    $cl->recv_json(5) if @$cproto && $cproto->[0] eq 'egress.v2';
    my $ho = $c->ws($L, 'host', ticket => $ht->{ticket}, protocols => $hproto) or die 'host refused';
    $ho->recv_json(5) if @$hproto && $hproto->[0] eq 'egress.v2';
    $cl->recv_json(5) if @$cproto && $cproto->[0] eq 'egress.v2';    # peer
    return ($cl, $ho);
}

sub pattern { my ($n, $seed) = @_; join('', map { chr(($_ * 7 + $seed) % 256) } 0 .. $n - 1) }

# Collects v1 data bodies for a stream until $n bytes arrived.
sub v1_read {
    my ($ws, $n) = @_;
    my $got = '';
    while (length $got < $n) {
        my $j = $ws->recv_json(5) or last;
        last unless ref $j eq 'HASH' && $j->{type} eq 'data';
        $got .= decode_base64($j->{body});
    }
    return $got;
}

# ================= v2 client, v1 host =================
my ($cl, $ho) = pair([ 'egress.v2', 'egress.v1' ], ['egress.v1']);
is($ho->protocol, 'egress.v1', 'host negotiated v1');
ok(!defined $ho->recv(0.3), 'v1 host gets no hello');

$cl->send_json({ type => 'open', id => 1, host => 'example.com', port => 443, window => 65536 });
# v1 is crabbox's shape: string ids ("conn_<base36>" for ours), string port
is_deeply($ho->recv_json(5), { type => 'open', id => 'conn_1', host => 'example.com', port => '443' },
    'v1 host gets open without window, in crabbox\'s shape');
$ho->send_json({ type => 'open_ok', id => 'conn_1' });
is_deeply($cl->recv_json(5), { type => 'open_ok', id => 1, window => 262144 },
    'v2 client gets open_ok with the window the coordinator grants for the v1 host');

# client -> host: 200 KiB within the 256 KiB credit, as binary chunks
my $up = pattern(200 * 1024, 3);
for (my $o = 0; $o < length $up; $o += 32768) {
    $cl->send_binary(pack('N', 1) . substr($up, $o, 32768));
}
ok(v1_read($ho, length $up) eq $up, 'v2 binary data arrives as v1 base64 data, intact');
my $w = $cl->recv_json(5);
is($w->{type}, 'window', 'coordinator grants credit to the v2 client as it writes to the v1 host');
cmp_ok($w->{increment}, '>=', 131072, 'grant covers at least half the window');

# host -> client: v1 sends 100 KiB at once; the client advertised 64 KiB
my $down = pattern(100 * 1024, 5);
$ho->send_json({ type => 'data', id => 'conn_1', body => encode_base64($down, '') });
my $got = '';
while (length $got < 65536) {
    my $m = $cl->recv(5) or last;
    last unless $m->{type} eq 'binary';
    cmp_ok(length($m->{data}) - 4, '<=', 32768, 'chunks of at most 32 KiB') if length $got == 0;
    $got .= substr($m->{data}, 4);
}
is(length $got, 65536, 'client gets exactly its window');
ok(!defined $cl->recv(0.5), 'and nothing more before it grants credit');
$ho->send_json({ type => 'close', id => 'conn_1' });
ok(!defined $cl->recv(0.3), 'the v1 close waits behind the held-back data');
$cl->send_json({ type => 'window', id => 1, increment => 65536 });
while (length $got < length $down) {
    my $m = $cl->recv(5) or last;
    last unless $m->{type} eq 'binary';
    $got .= substr($m->{data}, 4);
}
ok($got eq $down, 'held-back data arrives after the grant, intact');
is_deeply($cl->recv_json(5), { type => 'close', id => 1 }, 'then the close');

# a half close toward v1 becomes the full close v1 has (crabbox waits for it);
# the v2 side is told the stream is over
$cl->send_json({ type => 'open', id => 2, host => 'example.com', port => 80 });
$ho->recv_json(5);
$ho->send_json({ type => 'open_ok', id => 'conn_2' });
$cl->recv_json(5);
$cl->send_json({ type => 'close', id => 2, half => JSON::PP::true });
$cl->send_json({ type => 'close', id => 2 });
is_deeply($ho->recv_json(5), { type => 'close', id => 'conn_2' }, 'v1 host sees one full close');
is_deeply($cl->recv_json(5), { type => 'close', id => 2 }, 'v2 client is told the stream is over');
$cl->send_json({ type => 'open', id => 3, host => 'example.com', port => 1 });
$ho->recv_json(5);
$ho->send_json({ type => 'error', id => 'conn_3', error => 'connection refused by example.com:1' });
is($cl->recv_json(5)->{message}, 'connection refused by example.com:1', 'v1 error reaches the v2 client');
$cl->close;
$ho->close;

# ================= v1 client, v2 host =================
($cl, $ho) = pair(['egress.v1'], [ 'egress.v2', 'egress.v1' ]);
my $cid = 'conn_lr3x9k2a1q';    # crabbox's shape: "conn_" + base36 of a nanosecond clock
$cl->send_json({ type => 'open', id => $cid, host => 'example.com', port => '443' });
is_deeply($ho->recv_json(5), { type => 'open', id => 1, host => 'example.com', port => 443, window => 262144 },
    'v2 host gets open with the window the coordinator grants for the v1 client');
$ho->send_json({ type => 'open_ok', id => 1, window => 1000 });
is_deeply($cl->recv_json(5), { type => 'open_ok', id => $cid }, 'v1 client gets open_ok without window, under its own id');

my $cup = pattern(5000, 9);
$cl->send_json({ type => 'data', id => $cid, body => encode_base64($cup, '') });
my $m = $ho->recv(5);
is(length($m->{data}) - 4, 1000, 'host gets only its 1000-byte window');
ok(!defined $ho->recv(0.3), 'nothing beyond the credit');
$ho->send_json({ type => 'window', id => 1, increment => 10000 });
my $rest = '';
while (length($rest) < 4000) {
    my $mm = $ho->recv(5) or last;
    last unless $mm->{type} eq 'binary';
    $rest .= substr($mm->{data}, 4);
}
ok(substr($m->{data}, 4) . $rest eq $cup, 'rest arrives after the grant');

my $hdown = pattern(200 * 1024, 11);
for (my $o = 0; $o < length $hdown; $o += 32768) {
    $ho->send_binary(pack('N', 1) . substr($hdown, $o, 32768));
}
ok(v1_read($cl, length $hdown) eq $hdown, 'v2 host data reaches the v1 client as base64');
$w = $ho->recv_json(5);
is($w->{type}, 'window', 'coordinator grants credit to the v2 host on behalf of the v1 client');

$ho->send_json({ type => 'close', id => 1, half => JSON::PP::true });
$ho->send_json({ type => 'close', id => 1 });
is_deeply($cl->recv_json(5), { type => 'close', id => $cid }, 'v1 client sees one close');
is_deeply($ho->recv_json(5), { type => 'close', id => 1 }, 'v2 host is told the stream is over');

$cl->send_binary(pack('N', 1) . 'x');
$m = $cl->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 1008, 'binary message from a v1 agent: 1008');

# ================= v1 <-> v1 pass-through =================
($cl, $ho) = pair(['egress.v1'], []);
$cl->send_json({ type => 'open', id => 'conn_a1', host => 'example.com', port => '443' });
is_deeply($ho->recv_json(5), { type => 'open', id => 'conn_a1', host => 'example.com', port => '443' }, 'v1 pass-through');
$ho->send_json({ type => 'data', id => 'conn_a1', body => encode_base64('hello', '') });
$cl->send_json({ type => 'open', id => 'conn_a2', host => 'example.com', port => '443' });
$ho->recv_json(5);
is_deeply($cl->recv_json(5), { type => 'data', id => 'conn_a1', body => encode_base64('hello', '') }, 'v1 data pass-through');
# an open while no host is attached is answered under the client's own id
$ho->close;
wait_until(sub { !$c->status($alice, $L)->{hostConnected} }, 10);
$cl->send_json({ type => 'open', id => 'conn_a3', host => 'example.com', port => '443' });
is_deeply($cl->recv_json(5), { type => 'error', id => 'conn_a3', error => 'host agent not connected' },
    'v1 open without a host: error under the client\'s id, text in "error"');

$t->done;
done_testing;
