#!/usr/bin/perl
# egress-coordinator: relay between a v2 client and a v2 host: control frames,
# 10k data frames, 2 MiB messages, stream/byte counters, backpressure, and the
# closes for oversize, malformed and misdirected frames.

use strict;
use warnings;

use Test::More;
use Test::Egress qw(wait_until);

my $t = Test::Egress->new;
my $c = $t->coordinator(args => [ '--queue-cap', 262144 ]);
my $alice = $c->token(owner => 'alice', org => 'acme');
my $L = $c->lease($alice, slug => 'relay')->{id};

sub pair {
    my $ct = $c->ticket($alice, $L, role => 'client');
    my $ht = $c->ticket($alice, $L, role => 'host', sessionID => $ct->{sessionID}, allow => ['example.com']);
    my $cl = $c->ws($L, 'client', ticket => $ct->{ticket}) or die 'client refused';
    $cl->recv_json(5);
    my $ho = $c->ws($L, 'host', ticket => $ht->{ticket}) or die 'host refused';
    $ho->recv_json(5);
    $cl->recv_json(5);    # peer connected
    return ($cl, $ho);
}

my ($cl, $ho) = pair();

# ---- control frames pass through --------------------------------------------
$cl->send_json({ type => 'open', id => 1, host => 'example.com', port => 443, window => 262144 });
my $j = $ho->recv_json(5);
is_deeply($j, { type => 'open', id => 1, host => 'example.com', port => 443, window => 262144 },
    'open reaches the host');
$ho->send_json({ type => 'open_ok', id => 1, window => 262144 });
is_deeply($cl->recv_json(5), { type => 'open_ok', id => 1, window => 262144 }, 'open_ok reaches the client');
$ho->send_json({ type => 'window', id => 1, increment => 1000 });
is_deeply($cl->recv_json(5), { type => 'window', id => 1, increment => 1000 }, 'window relayed');
is($c->status($alice, $L)->{streams}, 1, 'status: one stream');

# ---- 10k frames each way ------------------------------------------------------
my $n = 10000;
my ($ok_up, $ok_down) = (1, 1);
my ($sent_up, $sent_down) = (0, 0);
for (my $i = 0; $i < $n; $i += 500) {
    for my $k ($i .. $i + 499) {
        my $body = sprintf('frame-%05d', $k) x 3;
        $cl->send_binary(pack('N', 1) . $body);
        $ho->send_binary(pack('N', 1) . $body);
        $sent_up += length $body;
        $sent_down += length $body;
    }
    for my $k ($i .. $i + 499) {
        my $want = pack('N', 1) . sprintf('frame-%05d', $k) x 3;
        my $m = $ho->recv(5);
        $ok_up = 0 unless $m && $m->{type} eq 'binary' && $m->{data} eq $want;
        $m = $cl->recv(5);
        $ok_down = 0 unless $m && $m->{type} eq 'binary' && $m->{data} eq $want;
    }
}
ok($ok_up, '10k client->host frames in order and intact');
ok($ok_down, '10k host->client frames in order and intact');
my $s = $c->status($alice, $L);
is($s->{bytesUp}, $sent_up, 'bytesUp counts payload');
is($s->{bytesDown}, $sent_down, 'bytesDown counts payload');

# ---- 2 MiB messages -------------------------------------------------------------
my $big = join('', map { chr($_ % 251) } 0 .. (2 * 1024 * 1024 - 4 - 1));
$cl->send_binary(pack('N', 1) . $big);
my $m = $ho->recv(20);
ok($m && $m->{type} eq 'binary' && $m->{data} eq pack('N', 1) . $big, '2 MiB message client->host');
$ho->send_binary(pack('N', 1) . $big);
$m = $cl->recv(20);
ok($m && $m->{type} eq 'binary' && $m->{data} eq pack('N', 1) . $big, '2 MiB message host->client');

# ---- backpressure: host stops reading, client keeps sending -------------------
# The coordinator may hold only --queue-cap bytes for the host; the rest must stay
# in TCP buffers (the client's writes start to block), and nothing is lost.
my $chunk = 'z' x 32768;
my $sock = $cl->socket;
$sock->blocking(0);
my ($pushed, $frame) = (0, undef);
my $wire = '';
{
    my $f = Protocol::WebSocket::Frame->new(buffer => pack('N', 1) . $chunk, type => 'binary', masked => 1);
    $frame = $f->to_bytes;
}
my $deadline = time + 10;
while (time < $deadline) {
    $wire = $frame if $wire eq '';
    my $w = syswrite($sock, $wire);
    if (!defined $w) {
        select(undef, undef, undef, 0.05);
        last if $pushed > 8 * 1024 * 1024;
        next;
    }
    substr($wire, 0, $w) = '';
    $pushed += $w;
    last if $pushed > 64 * 1024 * 1024;
}
my $frames_sent = int(($pushed + length($frame) - 1) / length($frame));
cmp_ok($pushed, '<', 64 * 1024 * 1024, 'client writes block while the host does not read');
my (undef, undef, $metrics) = $c->api(GET => '/metrics');
like($metrics, qr/^egress_rx_pauses_total [1-9]/m, 'coordinator paused the client socket');
# The tail of a partly written frame goes out while the host reads: a blocking
# write here would wait for a coordinator that waits for the host (deadlock).
my $got = 0;
while ($got < $frames_sent) {
    if ($wire ne '') {
        my $w = syswrite($sock, $wire);
        substr($wire, 0, $w) = '' if $w;
    }
    my $mm = $ho->recv(10) or last;
    last unless $mm->{type} eq 'binary' && length($mm->{data}) == 4 + 32768;
    $got++;
}
is($got, $frames_sent, 'every queued frame arrives once the host reads again');
is(length $wire, 0, '... including the one written last');
$sock->blocking(1);

# ---- close and error bookkeeping ------------------------------------------------
$cl->send_json({ type => 'close', id => 1, half => JSON::PP::true });
is_deeply($ho->recv_json(5), { type => 'close', id => 1, half => JSON::PP::true }, 'half close relayed');
$ho->send_json({ type => 'close', id => 1 });
is_deeply($cl->recv_json(5), { type => 'close', id => 1 }, 'close relayed');
ok(wait_until(sub { $c->status($alice, $L)->{streams} == 0 }, 5), 'status: stream gone');
$cl->send_json({ type => 'open', id => 2, host => 'example.com', port => 80 });
$ho->recv_json(5);
$ho->send_json({ type => 'error', id => 2, message => 'not allowed: example.com:80 is not on the allowlist' });
is($cl->recv_json(5)->{message}, 'not allowed: example.com:80 is not on the allowlist', 'error relayed');

# ---- policy closes ------------------------------------------------------------
$cl->send_text('{"type":"open","id":3');
$m = $cl->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 1008, 'malformed JSON: 1008');
$m = $ho->recv_until(sub { $_[0]{type} eq 'text' }, 5);
is($m && $m->{json}{type} . ':' . ($m->{json}{connected} ? 1 : 0), 'peer:0', 'host told the client left');

($cl, $ho) = pair();
$ho->send_json({ type => 'open', id => 5, host => 'example.com', port => 443 });
$m = $ho->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 1008, 'open from the host: 1008');

($cl, $ho) = pair();
$cl->send_json({ type => 'hello', sessionID => 'x', role => 'client', peerConnected => JSON::PP::false, resume => '' });
$m = $cl->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 1008, 'hello from an agent: 1008');

($cl, $ho) = pair();
$cl->send_json({ type => 'data', id => 1, body => 'aGk=' });
$m = $cl->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 1008, 'JSON data on v2: 1008');

($cl, $ho) = pair();
$cl->send_binary(pack('N', 1) . ('x' x (2 * 1024 * 1024 - 3)));
$m = $cl->recv_until(sub { $_[0]{type} eq 'close' }, 10);
is($m && $m->{code}, 1009, 'message above 2 MiB: 1009');

# The same limit for a message sent as many small fragments (the coordinator
# assembles them): closed with 1009 as soon as the total passes 2 MiB.
($cl, $ho) = pair();
{
    # The coordinator may end the connection while fragments are still being
    # written: a failed write ends the loop, it must not kill the test.
    local $SIG{PIPE} = 'IGNORE';
    my $frag = sub {    # masked frame with FIN/opcode byte $b0
        my ($b0, $p) = @_;
        my $len = length $p;
        my $hdr = chr($b0) . ($len < 126 ? chr(0x80 | $len) : chr(0x80 | 126) . pack('n', $len));
        return $hdr . "\0\0\0\0" . $p;    # an all-zero mask leaves the payload as is
    };
    my $ok = $cl->send_raw($frag->(0x02, pack('N', 1) . ('f' x 60000)));
    for (1 .. 40) {
        last unless $ok && $cl->send_raw($frag->(0x00, 'f' x 60000));
    }
}
$m = $cl->recv_until(sub { $_[0]{type} eq 'close' }, 10);
is($m && $m->{code}, 1009, 'fragmented message above 2 MiB: 1009');

($cl, $ho) = pair();
$cl->send_binary(pack('N', 0) . 'x');
$m = $cl->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 1008, 'stream id 0: 1008');

($cl, $ho) = pair();
$cl->send_json({ type => 'open', id => 9, host => 'example.com', port => 443 });
$ho->recv_json(5);
$cl->send_json({ type => 'open', id => 9, host => 'example.com', port => 443 });
$m = $cl->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 1008, 'reusing a live stream id: 1008');

$t->done;
done_testing;
