#!/usr/bin/perl
# ngx_stream_egress_module without a reachable coordinator: the proxy
# request parser (400/431/408), IPv6 targets, and an immediate 503 with a
# one-line reason while the bridge is down. Real nginx, real sockets.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);

use Test::Egress qw(wait_until);
use Test::Egress::Module;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so');

# The bridge points at a port nobody listens on.
my $m = Test::Egress::Module->new($t,
    bridge => 'ws://127.0.0.1:' . $t->port . '/v1/leases/L/egress/client',
    server => "egress_header_timeout 1s;\n");
$m->start;

ok($m->wait_log(qr/egress bridge: .*Connection refused/), 'the bridge tries to connect');

sub status_of { ($_[0] // '') =~ m{^HTTP/1\.1 (\d{3}) } ? $1 : 0 }

sub body_of {
    my ($r) = @_;
    my (undef, $body) = split /\r\n\r\n/, $r // '', 2;
    return $body // '';
}

# --- bridge down: 503 at once -------------------------------------------

my ($r, $dt) = $m->request("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
is(status_of($r), 503, 'CONNECT while the bridge is down: 503');
cmp_ok($dt, '<', $t->san ? 3 : 1, '... at once, not after a timeout');
like(body_of($r), qr/^egress bridge to the coordinator is down: .+\n\z/,
    '... with a one-line plain-text reason');
like($r, qr/\r\nContent-Type: text\/plain/, '... as text/plain');
like($r, qr/\r\nConnection: close\r\n/, '... and Connection: close');
my ($cl) = $r =~ /Content-Length: (\d+)/;
is($cl, length(body_of($r)), '... with a correct Content-Length');

$r = $m->request("GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n");
is(status_of($r), 503, 'absolute-form GET while the bridge is down: 503');

# --- targets: IPv6 literals and default ports (seen in $egress_target) --

$m->request("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n");
$m->request("GET http://[2001:DB8::1]/ HTTP/1.1\r\nHost: x\r\n\r\n");
$m->request("GET https://Example.COM./ HTTP/1.1\r\nHost: x\r\n\r\n");
$m->request("GET http://example.com:8080 HTTP/1.0\r\n\r\n");
wait_until(sub { $m->access_log =~ /target=example\.com:8080/ });
my $log = $m->access_log;
like($log, qr/target=\[::1\]:8443 /, 'CONNECT [::1]:8443 parsed as an IPv6 target');
like($log, qr/target=\[2001:db8::1\]:80 /, 'http://[2001:DB8::1]/ -> [2001:db8::1]:80');
like($log, qr/target=example\.com:443 .*egress_status=400/,
    'https:// defaults to 443, normalized (and is refused in absolute form, t/303)');
like($log, qr/target=example\.com:8080 /, 'explicit port in the URL');

# --- malformed requests: 400 --------------------------------------------

my @bad = (
    [ "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",           'origin-form request' ],
    [ "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 'origin-form POST' ],
    [ "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",                 'asterisk-form' ],
    [ "CONNECT example.com HTTP/1.1\r\n\r\n",                  'CONNECT without a port' ],
    [ "CONNECT example.com:0 HTTP/1.1\r\n\r\n",                'CONNECT to port 0' ],
    [ "CONNECT example.com:99999 HTTP/1.1\r\n\r\n",            'CONNECT to port 99999' ],
    [ "CONNECT http://example.com/ HTTP/1.1\r\n\r\n",          'CONNECT with a URL' ],
    [ "CONNECT [::1:443 HTTP/1.1\r\n\r\n",                     'unbalanced IPv6 bracket' ],
    [ "CONNECT bad_host!:443 HTTP/1.1\r\n\r\n",                'invalid host name' ],
    [ "GET http://user:pw\@example.com/ HTTP/1.1\r\n\r\n",     'user information in the URL' ],
    [ "GET http:///x HTTP/1.1\r\n\r\n",                        'empty host' ],
    [ "GET ftp://example.com/ HTTP/1.1\r\n\r\n",               'non-http scheme' ],
    [ "GET http://example.com/ HTTP/2.0\r\n\r\n",              'HTTP/2.0' ],
    [ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",                      'HTTP/2 preface' ],
    [ "GET http://example.com/\r\n\r\n",                       'HTTP/0.9 style line' ],
    [ "GET  http://example.com/ HTTP/1.1\r\n\r\n",             'double space' ],
    [ "GARBAGE\r\n\r\n",                                       'garbage' ],
    [ "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  'TLS ClientHello' ],
    [ "GET http://example.com/ HTTP/1.1\r\nNoColon\r\n\r\n",   'header without colon' ],
    [ "GET http://example.com/ HTTP/1.1\r\nX : y\r\n\r\n",     'space before colon' ],
    [ "GET http://example.com/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 'folded header' ],
    [ "POST http://example.com/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        'Content-Length with Transfer-Encoding' ],
    [ "POST http://example.com/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        'conflicting Content-Length' ],
    [ "POST http://example.com/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 'negative Content-Length' ],
    [ "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 'unframeable coding' ],
    [ "POST http://example.com/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 'chunked in HTTP/1.0' ],
    [ "GET http://example.com/ HTTP/1.1\r\nX: a\rb\r\n\r\n",   'bare CR in a header' ],
);

for my $b (@bad) {
    my ($req, $name) = @$b;
    my ($resp, $secs) = $m->request($req);
    is(status_of($resp), 400, "400 for $name") or diag($resp);
}

($r) = $m->request("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
like(body_of($r), qr/absolute URL/, 'the 400 body says what is wrong');

# --- request head too large: 431 ----------------------------------------

my $big = "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n"
    . join('', map { "X-Filler-$_: " . ('a' x 1000) . "\r\n" } 1 .. 66) . "\r\n";
cmp_ok(length $big, '>', 65536, 'the big request is over 64 KiB');
($r) = $m->request($big);
is(status_of($r), 431, '64 KiB of headers: 431');

my $line = "GET http://example.com/" . ('a' x 20000) . " HTTP/1.1\r\n\r\n";
($r) = $m->request($line);
is(status_of($r), 431, 'a 20 KB request line: 431');

# Just under the limit is fine (it gets as far as the 503 of the bridge).
my $fits = "GET http://example.com/ HTTP/1.1\r\nX-A: " . ('b' x 15000) . "\r\n\r\n";
($r) = $m->request($fits);
is(status_of($r), 503, 'a 15 KB header is within egress_max_header_size 16k');

# --- slow clients: 408 --------------------------------------------------

my $c = $m->client;
my $t0 = time;
$c->send("GET http://example.com/ HTTP/1.1\r\n");
my $stalled = 1;
for (1 .. 4) {
    sleep 0.3;
    $stalled = 0 unless $c->send("X-Slow-$_: a\r\n");
}
$r = $c->read_all(5);
my $elapsed = time - $t0;
is(status_of($r), 408, 'slowloris (header never finished): 408');
cmp_ok($elapsed, '<', $t->san ? 6 : 3, '... after egress_header_timeout, not much later');
cmp_ok($elapsed, '>=', 0.9, '... but not before it');

$c = $m->client;
($r) = $c->read_all(4);
is(status_of($r), 408, 'a connection that sends nothing gets 408 too');

# --- leading empty lines are skipped; the client half-closing -----------

($r) = $m->request("\r\n\r\nCONNECT example.com:443 HTTP/1.1\r\n\r\n");
is(status_of($r), 503, 'empty lines before the request line are ignored');

$c = $m->client;
$c->send("GET http://example.com/ HTTP/1.1\r\nHost: a\r\n");
$c->shutdown_write;
$r = $c->read_all(3);
is(status_of($r), 400, 'EOF inside the request head: 400');

$c = $m->client;
$c->shutdown_write;
$r = $c->read_all(3);
is($r, '', 'EOF before any byte: closed without a response');

# --- logs: statuses in the access log, no alerts ------------------------

wait_until(sub { $m->access_log =~ /egress_status=408/ });
$log = $m->access_log;
like($log, qr/egress_status=400 status=400/, '$egress_status and $status show 400');
like($log, qr/egress_status=431/, '... 431');
like($log, qr/egress_status=408/, '... 408');
like($m->error_log, qr/bad proxy request: .*absolute URL/, 'the error log says why a request was bad');
unlike($m->error_log . $log, qr/egt_/, 'no ticket material in any log');

$t->done;
done_testing;
