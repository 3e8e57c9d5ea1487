#!/usr/bin/perl
# egress-coordinator hardening of the HTTP side: request framing (any
# Transfer-Encoding, duplicate or invalid Content-Length: 400 and the
# connection closed, so nothing after the head is ever run as a request),
# duplicate JSON keys (400), and the failed-upgrade limit: one bucket per
# lease whether the upgrade names it by id or by slug, and a name that is no
# lease charges the client address, never the lease that takes it later.

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::IP;
use JSON::PP;
use Time::HiRes qw(time);
use Test::Egress;

my $t = Test::Egress->new;
my $c = $t->coordinator(env => { EGRESS_RATE_FAIL => '0.001:3' });
my $alice = $c->token(owner => 'alice', org => 'acme');
my $slow = $t->san ? 3 : 1;

# Sends raw bytes from source address $from; reads until the server closes
# (or 10 s). Returns (response text, 1 when the server closed the connection).
sub exchange {
    my ($bytes, %o) = @_;
    my $s = IO::Socket::IP->new(LocalHost => $o{from} // '127.0.0.1', PeerHost => '127.0.0.1',
        PeerPort => $c->port, Proto => 'tcp', Timeout => 5)
        or die "connect: $!";
    binmode $s;
    syswrite($s, $bytes);
    my ($buf, $closed) = ('', 0);
    my $sel = IO::Select->new($s);
    my $deadline = time + 10 * $slow;
    while (time < $deadline) {
        next unless $sel->can_read(0.2);
        my $n = sysread($s, my $chunk, 65536);
        if (!$n) {
            $closed = 1;
            last;
        }
        $buf .= $chunk;
        last if $o{until} && $buf =~ $o{until};
    }
    close $s;
    return ($buf, $closed);
}

# Every status line (a response may follow a body on the same line).
sub statuses { my ($r) = @_; return [ $r =~ m{HTTP/1\.[01] (\d{3})}g ] }
sub body_json { my ($r) = @_; my ($b) = $r =~ /\r\n\r\n(\{.*?\})(?:HTTP|\z)/s; return $b ? decode_json($b) : {} }

sub slugs {
    my ($st, $j) = $c->api(GET => '/v1/leases', $alice);
    return join(',', sort map { $_->{slug} } @{ $j->{leases} || [] });
}

my $head = "POST /v1/leases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $alice\r\n"
    . "Content-Type: application/json\r\n";

# ---- framing -----------------------------------------------------------------
# TE.CL smuggling: a proxy framing by Transfer-Encoding forwards one request
# whose chunk holds a second one; a server framing by Content-Length (4 bytes:
# the chunk size line) would run the chunk as its own request, here one that
# creates a lease.
my $inner = "POST /v1/leases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $alice\r\n"
    . "Content-Length: 0\r\n\r\n";
my $size = sprintf("%x\r\n", length $inner);
my ($r, $closed) = exchange($head . 'Content-Length: ' . length($size) . "\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n$size$inner\r\n0\r\n\r\n");
is_deeply(statuses($r), [400], 'Content-Length with Transfer-Encoding: one 400 and nothing else');
like(body_json($r)->{message}, qr/Transfer-Encoding/, 'the message names Transfer-Encoding');
like($r, qr/^connection: close/mi, 'the 400 says connection: close');
ok($closed, 'and the connection is closed');
is(slugs(), '', 'the smuggled request never ran (no lease)');

# A chunked body alone: lws would not read it, so the lease would get the
# default slug and the chunk would become the next "request".
my $json = '{"slug":"chk1"}';
($r, $closed) = exchange($head . "Transfer-Encoding: chunked\r\n\r\n"
        . sprintf("%x\r\n%s\r\n0\r\n\r\n", length $json, $json));
is_deeply(statuses($r), [400], 'chunked body: 400');
ok($closed, 'chunked body: connection closed');
is(slugs(), '', 'chunked body: no lease created');

# A POST without Content-Length: lws would read the next request as its body.
($r, $closed) = exchange("POST /v1/leases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $alice\r\n\r\n"
        . "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
is_deeply(statuses($r), [411], 'POST without Content-Length: 411, and the next request is not run');
ok($closed, 'POST without Content-Length: connection closed');
is(slugs(), '', 'POST without Content-Length: no lease created');

for my $te ('identity', 'gzip, chunked') {
    ($r, $closed) = exchange("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: $te\r\n\r\n");
    is_deeply(statuses($r), [400], "any Transfer-Encoding ($te), even on a GET: 400");
    ok($closed, "Transfer-Encoding: $te: connection closed");
}

$json = '{"slug":"cl2"}';
($r, $closed) = exchange($head . "Content-Length: 14\r\nContent-Length: 14\r\n\r\n$json");
is_deeply(statuses($r), [400], 'two equal Content-Length headers: 400');
like(body_json($r)->{message}, qr/more than one Content-Length/, 'and says why');
ok($closed, 'duplicate Content-Length: connection closed');
($r, $closed) = exchange($head . "Content-Length: 14\r\nContent-Length: 4\r\n\r\n$json");
is_deeply(statuses($r), [400], 'two different Content-Length headers: 400');
ok($closed, 'connection closed');
for my $cl ('-1', '0x0e', '14abc', '1e1', '99999999999999999999999999999999999999999999') {
    ($r, $closed) = exchange($head . "Content-Length: $cl\r\n\r\n$json");
    is_deeply(statuses($r), [400], "Content-Length: $cl: 400");
    ok($closed, "Content-Length: $cl: connection closed");
}
is(slugs(), '', 'no lease from any of them');

($r, $closed) = exchange($head . "Content-Length: 70000\r\n\r\n" . ('x' x 70000));
is_deeply(statuses($r), [413], 'Content-Length above 64 KiB: 413');
ok($closed, '413: connection closed');
($r, $closed) = exchange($head . "Content-Length: 99999999999999999999\r\n\r\n$json");
is_deeply(statuses($r), [413], 'a 20-digit Content-Length: 413, no overflow');

# One request per connection (agent upgrades are answered only in a
# connection's first request, see front.c): a pipelined second request is
# never read, the first is answered with Connection: close and the
# connection ends.
($r, $closed) = exchange($head . "Content-Length: 14\r\n\r\n{\"slug\":\"ka1\"}"
        . "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
is_deeply(statuses($r), [201], 'pipelined well-framed requests: 201, the second is not read');
ok($closed, 'pipelined: connection closed after the first answer');
is(slugs(), 'ka1', 'exactly the one lease');

# ---- duplicate JSON keys ---------------------------------------------------------
my ($st, $j) = $c->api(POST => '/v1/leases', $alice, '{"slug":"dup1","slug":"dup2"}');
is($st, 400, 'duplicate key in a lease body: 400');
is($j->{error}, 'bad_request', 'error bad_request');
like($j->{message}, qr/duplicate key/, 'message says duplicate key');
($st) = $c->api(POST => '/v1/leases', $alice, '{"slug":"dup3","ttlSeconds":60,"ttlSeconds":600}');
is($st, 400, 'duplicate ttlSeconds: 400');
is(slugs(), 'ka1', 'no lease from duplicate keys');
($st, $j) = $c->api(POST => '/v1/leases/ka1/egress/ticket', $alice,
    '{"role":"client","role":"host"}');
is($st, 400, 'duplicate key in a ticket body: 400');
like($j->{message}, qr/duplicate key/, 'ticket: message says duplicate key');
($st, $j) = $c->api(POST => '/v1/leases/ka1/egress/ticket', $alice,
    '{"role":"host","allow":["example.com"],"x":{"k":1,"k":2}}');
is($st, 400, 'a nested duplicate key: 400');
($st) = $c->api(POST => '/v1/leases/ka1/egress/ticket', $alice, '{"role":"host","allow":["example.com"]}');
is($st, 201, 'the same body without duplicates: 201');

# ---- failed upgrades: one bucket per lease ------------------------------------------
# EGRESS_RATE_FAIL 0.001:3 applies per lease and per client address; each
# step comes from its own loopback address so that the address bucket of one
# step does not hide the lease bucket of the next.
sub upgrade {
    my ($from, $ref, %o) = @_;
    my $req = "GET /v1/leases/$ref/egress/" . ($o{role} // 'host') . " HTTP/1.1\r\nHost: x\r\n"
        . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        . "Sec-WebSocket-Protocol: egress.v2\r\n";
    $req .= "X-Egress-Ticket: $o{ticket}\r\n" if defined $o{ticket};
    my ($resp) = exchange("$req\r\n", from => $from, until => qr/\r\n\r\n/);
    my ($s) = $resp =~ m{^HTTP/1\.[01] (\d{3})};
    return $s // 0;
}
sub upgrades { my ($from, $ref, $n, %o) = @_; return [ map { upgrade($from, $ref, %o) } 1 .. $n ] }

my $one = $c->lease($alice, slug => 'one')->{id};
is_deeply(upgrades('127.0.0.2', 'one', 3, ticket => 'egt_junk'), [ (401) x 3 ],
    'junk upgrades by slug: 401 up to the burst');
is(upgrade('127.0.0.3', 'one', ticket => 'egt_junk'), 429,
    'junk by slug is limited (from a fresh address: the lease bucket)');
is(upgrade('127.0.0.3', $one, ticket => 'egt_junk'), 429, 'and by id: the same bucket');

my $two = $c->lease($alice, slug => 'two')->{id};
is_deeply(upgrades('127.0.0.4', $two, 3, ticket => 'egt_junk'), [ (401) x 3 ],
    'junk upgrades by id: 401 up to the burst');
is(upgrade('127.0.0.5', 'two', ticket => 'egt_junk'), 429, 'they limit the lease by slug too');
my $good = $c->ticket($alice, 'two', role => 'client');
is(upgrade('127.0.0.5', 'two', role => 'client', ticket => $good->{ticket}), 429,
    'even a good ticket by slug waits out the limit');
is(upgrade('127.0.0.6', 'one', ticket => 'egt_junk'), 429, 'lease one is still limited');
is(upgrade('127.0.0.6', $two, ticket => 'egt_junk'), 429, 'lease two by id is limited');

# A name that is no lease yet: refusals charge the address only.
is_deeply(upgrades('127.0.0.7', 'later', 3, ticket => 'egt_junk'), [ (404) x 3 ],
    'junk for an unknown slug: 404');
is(upgrade('127.0.0.7', 'later', ticket => 'egt_junk'), 429, 'then the source address is limited');
is_deeply(upgrades('127.0.0.8', 'later2', 3), [ (401) x 3 ],
    'no credential for an unknown slug: 401');
is(upgrade('127.0.0.8', 'later2', ticket => 'egt_junk'), 429, 'that address is limited too');

my $later = $c->lease($alice, slug => 'later')->{id};
my $tk = $c->ticket($alice, 'later', role => 'host');
is(upgrade('127.0.0.9', 'later', ticket => $tk->{ticket}), 101,
    'a lease created with that slug later is not drained: upgrade by slug accepted');
$c->lease($alice, slug => 'later2');
is_deeply(upgrades('127.0.0.10', 'later2', 3, ticket => 'egt_junk'), [ (401) x 3 ],
    'the other slug gets its whole burst of its own');
is(upgrade('127.0.0.11', 'later2', ticket => 'egt_junk'), 429, 'and then is limited');

my $log = $c->log;
unlike($log, qr/egt_junk|\Q$alice\E|\Q$tk->{ticket}\E/, 'no credential in the log');
like($log, qr/http_refused addr=127\.0\.0\.1 status=400/, 'framing refusals are logged');

$t->done;
done_testing;
