#!/usr/bin/perl
# egress-coordinator: TLS (https + wss upgrade), IPv6 listen, rate limiting of
# failed upgrades (429), and a few HTTP edge cases.

use strict;
use warnings;

use Test::More;
use HTTP::Tiny;
use IO::Socket::IP;
use IO::Socket::SSL;
use JSON::PP;
use Test::Egress qw(wait_until);

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator');
my $dir = $t->dir;

# ---- TLS ------------------------------------------------------------------------
my ($rc, $out) = $t->run([ 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
        '-subj', '/CN=127.0.0.1', '-keyout', "$dir/key.pem", '-out', "$dir/cert.pem" ]);
is($rc, 0, 'self-signed certificate') or diag $out;

my $port = $t->port;
my $db = "$dir/tls.db";
($rc, $out) = $t->run([ $t->bin('egress-coordinator'), '--db', $db, 'token', 'add', '--owner', 'alice',
        '--org', 'acme' ], env => { $t->san_env }, stderr_to => '/dev/null');
my ($tok) = $out =~ /^(egk_\S+)$/m;
$t->spawn('tls', cmd => [ $t->bin('egress-coordinator'), '--listen', "127.0.0.1:$port", '--db', $db,
        '--tls-cert', "$dir/cert.pem", '--tls-key', "$dir/key.pem" ],
    env => { $t->san_env }, wait_port => $port);

my $http = HTTP::Tiny->new(verify_SSL => 0, timeout => 10 * ($t->san ? 3 : 1));
my $res = $http->get("https://127.0.0.1:$port/healthz");
is($res->{status}, 200, 'healthz over https');
$res = $http->post("https://127.0.0.1:$port/v1/leases",
    { headers => { Authorization => "Bearer $tok", 'Content-Type' => 'application/json' },
      content => '{"slug":"tls","ttlSeconds":600}' });
is($res->{status}, 201, 'lease over https');
$res = $http->post("https://127.0.0.1:$port/v1/leases/tls/egress/ticket",
    { headers => { Authorization => "Bearer $tok" }, content => '{"role":"client"}' });
my $ticket = decode_json($res->{content})->{ticket};

sub wss_upgrade {
    my ($hdr) = @_;
    my $s = IO::Socket::SSL->new(PeerHost => '127.0.0.1', PeerPort => $port, SSL_verify_mode => 0)
        or return '';
    print {$s} "GET /v1/leases/tls/egress/client HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        . "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        . "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: egress.v2\r\n$hdr\r\n";
    my $buf = '';
    my $deadline = time + 10;
    while ($buf !~ /\r\n\r\n.*\}/s && time < $deadline) {
        my $n = sysread($s, my $chunk, 4096);
        last unless $n;
        $buf .= $chunk;
        last if $buf =~ /^HTTP\/1\.1 101/ && $buf =~ /"hello"/;
    }
    return $buf;
}
like(wss_upgrade("Authorization: Bearer egt_nope\r\n"), qr{^HTTP/1\.[01] 401.*"unauthorized"}s,
    'wss refusal is a JSON 401');
my $ok = wss_upgrade("Authorization: Bearer $ticket\r\n");
like($ok, qr{^HTTP/1\.1 101}, 'wss upgrade accepted with a ticket');
like($ok, qr{"type":"hello"}, 'hello over wss');
$t->stop('tls');

# ---- IPv6 ---------------------------------------------------------------------------
SKIP: {
    my $probe = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1);
    skip 'no IPv6 loopback', 2 unless $probe;
    my $p6 = $probe->sockport;
    close $probe;
    $t->spawn('v6', cmd => [ $t->bin('egress-coordinator'), '--listen', "[::1]:$p6", '--db', "$dir/v6.db" ],
        env => { $t->san_env }, wait_log => qr/listening/);
    ok(wait_until(sub { Test::Egress::port_open($p6, '::1') }, 5), 'listening on [::1]');
    my $r = HTTP::Tiny->new->get("http://[::1]:$p6/healthz");
    is($r->{status}, 200, 'healthz over IPv6');
    $t->stop('v6');
}

# ---- listen errors are fatal -----------------------------------------------------------
($rc, $out) = $t->run([ $t->bin('egress-coordinator'), '--listen', 'name.invalid:1', '--db', "$dir/x.db" ],
    env => { $t->san_env });
is($rc, 2, 'a host name in --listen is a usage error');
my $busy = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0, Listen => 1);
($rc, $out) = $t->run([ $t->bin('egress-coordinator'), '--listen', '127.0.0.1:' . $busy->sockport,
        '--db', "$dir/x.db" ], env => { $t->san_env(leaks => 0) });    # lws 4.1.6 leaks 72 bytes when vhost creation fails
is($rc, 1, 'a port in use makes it exit 1');
like($out, qr/listen_failed/, 'and says so');
close $busy;

# ---- failed upgrades are rate limited ------------------------------------------------
my $c = $t->coordinator(env => { EGRESS_RATE_FAIL => '0.001:5' });
my $alice = $c->token(owner => 'alice', org => 'acme');
my $L = $c->lease($alice, slug => 'limited')->{id};
my @st;
for (1 .. 7) {
    my (undef, $s) = $c->ws($L, 'host', ticket => 'egt_wrong');
    push @st, $s;
}
is_deeply([ @st[0 .. 4] ], [ (401) x 5 ], 'first failures: 401');
is($st[5], 429, 'then 429');
my $good = $c->ticket($alice, $L, role => 'client');
my (undef, $s) = $c->ws($L, 'client', ticket => $good->{ticket});
is($s, 429, 'even a good ticket waits out the limit on that lease');

# ---- HTTP edge cases ------------------------------------------------------------------
my ($st2, $j) = $c->api(GET => "/v1/leases/$L/egress/client", $alice);
is($st2, 400, 'plain GET on a WebSocket endpoint: 400');
my $L2 = $c->lease($alice, slug => 'nosession')->{id};
($st2) = $c->api(DELETE => "/v1/leases/$L2/egress", $alice);
is($st2, 404, 'DELETE egress without a session: 404');
($st2) = $c->api(GET => "/v1/leases/$L2/egress/status", $alice);
is($st2, 404, 'status without a session: 404');
# Several requests with bodies on one keep-alive connection.
my $ka = HTTP::Tiny->new(keep_alive => 1, timeout => 10 * ($t->san ? 3 : 1));
my @ka;
for my $i (1 .. 5) {
    my $r = $ka->post($c->url . '/v1/leases', { headers => { Authorization => "Bearer $alice" },
        content => qq({"slug":"ka$i","ttlSeconds":60}) });
    push @ka, $r->{status};
}
is_deeply(\@ka, [ (201) x 5 ], 'keep-alive requests with bodies');
my $h2c = Test::Egress::http_request($c->port, "GET /healthz HTTP/1.1\r\nHost: x\r\n"
    . "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
    until => qr/\}/);
like($h2c, qr{^HTTP/1\.[01] 400 .*"bad_request"}s, 'h2c upgrade refused (no path around the ticket check)');
($st2) = $c->api(PUT => '/v1/leases', $alice);
is($st2, 405, 'unsupported method: 405');
($st2) = $c->api(GET => '/nope');
is($st2, 404, 'unknown route: 404');

$t->done;
done_testing;
