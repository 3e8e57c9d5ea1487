#!/usr/bin/perl
# egress host against an https/wss coordinator: ticket minting and the
# WebSocket both verify the coordinator's certificate (OpenSSL's default
# trust, here extended with SSL_CERT_FILE to a test CA); an untrusted
# certificate is refused.

use strict;
use warnings;

use Test::More;
use HTTP::Tiny;
use JSON::PP;
use Test::Egress qw(wait_until);

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator', 'egress');
my $dir = $t->dir;

my ($rc, $out) = $t->run([ 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days',
        '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout', "$dir/key.pem", '-out', "$dir/cert.pem" ]);
is($rc, 0, 'test certificate') or diag $out;

my $port = $t->port;
my $db = "$dir/tls.db";
($rc, $out) = $t->run([ $t->bin('egress-coordinator'), '--db', $db, 'token', 'add', '--owner',
        'alice', '--org', 'acme' ], env => { $t->san_env }, stderr_to => '/dev/null');
my ($tok) = $out =~ /^(egk_\S+)$/m;
ok($tok, 'token');
$t->spawn('coordinator', cmd => [ $t->bin('egress-coordinator'), '--listen', "127.0.0.1:$port",
        '--db', $db, '--tls-cert', "$dir/cert.pem", '--tls-key', "$dir/key.pem" ],
    env => { $t->san_env }, wait_port => $port);
my $url = "https://127.0.0.1:$port";
my $http = HTTP::Tiny->new(verify_SSL => 1, SSL_options => { SSL_ca_file => "$dir/cert.pem" },
    timeout => 10 * ($t->san ? 3 : 1));
my $res = $http->post("$url/v1/leases", { headers => { Authorization => "Bearer $tok",
            'Content-Type' => 'application/json' }, content => '{"slug":"tls","ttlSeconds":600}' });
is($res->{status}, 201, 'lease over https');

mkdir "$dir/$_" for qw(home state config);
my %env = ($t->san_env, HOME => "$dir/home", XDG_STATE_HOME => "$dir/state",
    XDG_CONFIG_HOME => "$dir/config", EGRESS_TOKEN => $tok);

# untrusted certificate: minting fails, nothing is sent in the clear
($rc, $out) = $t->run([ $t->bin('egress'), 'host', '--id', 'tls', '--allow', 'example.com',
        '--coordinator', $url ], env => { %env, SSL_CERT_FILE => '/dev/null' });
is($rc, 1, 'untrusted coordinator certificate: exit 1');
like($out, qr/TLS handshake with 127\.0\.0\.1 failed/, 'certificate failure explained');

# untrusted certificate on the wss upgrade (ticket given): not connected, retried
$res = $http->post("$url/v1/leases/tls/egress/ticket", { headers => {
            Authorization => "Bearer $tok", 'Content-Type' => 'application/json' },
        content => '{"role":"host"}' });
my $ticket = eval { decode_json($res->{content})->{ticket} };
ok($ticket, 'host ticket minted by the test');
$t->spawn('agent-untrusted', cmd => [ $t->bin('egress'), 'host', '--id', 'tls', '--allow',
        'example.com', '--coordinator', $url ],
    env => { %env, EGRESS_TOKEN => '', EGRESS_TICKET => $ticket, SSL_CERT_FILE => '/dev/null' },
    wait_log => qr/cannot connect to coordinator \(.*SSL.*\); retrying/);
ok(1, 'wss with an untrusted certificate is refused and retried');
is(($t->stop('agent-untrusted') // -1) >> 8, 0, 'SIGTERM while retrying: exit 0');

# trusted: mint over https, bridge over wss
$t->spawn('agent', cmd => [ $t->bin('egress'), 'host', '--id', 'tls', '--allow', 'example.com',
        '--coordinator', $url ], env => { %env, SSL_CERT_FILE => "$dir/cert.pem" },
    wait_log => qr/connected: lease=tls session=\S+ protocol=egress\.v2/);
ok(1, 'agent minted a ticket over https and connected over wss');
my $st;
wait_until(sub {
    $res = $http->get("$url/v1/leases/tls/egress/status",
        { headers => { Authorization => "Bearer $tok" } });
    $st = eval { decode_json($res->{content}) } || {};
    return $st->{hostConnected};
}, 10);
ok($st->{hostConnected}, 'coordinator status: host connected');
is(($t->stop('agent') // -1) >> 8, 0, 'SIGTERM: exit 0');

$t->done;
done_testing;
