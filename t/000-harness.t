#!/usr/bin/perl
# The harness itself: free ports, process spawning, and the origin server's routes.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);

use Test::Egress qw(http_get http_request);
use Test::Egress::Origin;

my $t = Test::Egress->new;

my %seen;
$seen{ $t->port }++ for 1 .. 20;
is(scalar(keys %seen), 20, 'ports are distinct');

my $o = $t->origin;
like(http_get($o->port, '/ip'), qr/\r\n\r\n127\.0\.0\.1\n$/, '/ip reports the peer address');

my $r = http_get($o->port, '/bytes/100000');
my ($body) = $r =~ /\r\n\r\n(.*)$/s;
is(length $body, 100000, '/bytes length');
ok($body eq Test::Egress::Origin::pattern(100000), '/bytes pattern');

my $payload = 'x' x 70000;
$r = http_request($o->port, "POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
        . "Content-Length: 70000\r\n\r\n$payload");
like($r, qr/len=70000 sha1=${\ sha1_hex($payload)}/, '/echo with Content-Length');

$r = http_request($o->port, "POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n");
like($r, qr/len=5 sha1=${\ sha1_hex('abcde')}/, '/echo with chunked body');

$r = http_request($o->port, "GET /a HTTP/1.1\r\nHost: one\r\n\r\nGET /b HTTP/1.1\r\nHost: two\r\n"
        . "Connection: close\r\n\r\n");
like($r, qr/ok GET \/a host=one.*ok GET \/b host=two/s, 'keep-alive serves two requests');

my ($rc, $out) = $t->run(['sh', '-c', 'echo hi; exit 3']);
is($rc, 3, 'run returns the exit code');
is($out, "hi\n", 'run captures output');

$t->done;
done_testing;
