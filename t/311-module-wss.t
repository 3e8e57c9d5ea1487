#!/usr/bin/perl
# ngx_stream_egress_module over wss://: the bridge verifies the coordinator's
# certificate (egress_bridge_trusted_certificate) and host name, sends SNI,
# and refuses an untrusted or mismatching certificate with a clear 503.

use strict;
use warnings;

use Test::More;

use Test::Egress qw(wait_until);
use Test::Egress::Module;
use Test::Egress::Coordinator;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so', 'egress-coordinator');
$SIG{PIPE} = 'IGNORE';

my $dir = $t->dir;

# A private CA and a server certificate for the name "localhost" only.
my @steps = (
    [ qw(openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=egress-test-ca),
      '-keyout', "$dir/ca.key", '-out', "$dir/ca.pem" ],
    [ qw(openssl req -newkey rsa:2048 -nodes -subj /CN=localhost),
      '-keyout', "$dir/srv.key", '-out', "$dir/srv.csr" ],
);
for my $cmd (@steps) {
    my ($rc, $out) = $t->run($cmd);
    BAIL_OUT("openssl failed: $out") if $rc;
}
Test::Egress::spew("$dir/ext.cnf", "subjectAltName=DNS:localhost\n");
my ($rc, $out) = $t->run([ qw(openssl x509 -req -days 2), '-in', "$dir/srv.csr", '-CA', "$dir/ca.pem",
    '-CAkey', "$dir/ca.key", '-CAcreateserial', '-out', "$dir/srv.pem", '-extfile', "$dir/ext.cnf" ]);
is($rc, 0, 'test certificates created') or diag($out);

my $c = $t->coordinator(args => [ '--tls-cert', "$dir/srv.pem", '--tls-key', "$dir/srv.key" ]);
{
    # The harness speaks http://; this coordinator serves https://.
    no warnings 'redefine';
    *Test::Egress::Coordinator::url = sub { "https://127.0.0.1:$_[0]{port}" };
}
my $tok   = $c->token(owner => 'alice', org => 'acme');
my $lease = $c->lease($tok, slug => 'wss-test');
my $lid   = $lease->{id};
my $port  = $c->port;

sub status_of { ($_[0] // '') =~ m{^HTTP/1\.1 (\d{3}) } ? $1 : 0 }

# 1. Trusted CA, matching name: the bridge comes up.
my $ct = $c->ticket($tok, $lid, role => 'client');
my $good = Test::Egress::Module->new($t, name => 'nginx-good',
    bridge => "wss://localhost:$port/v1/leases/$lid/egress/client",
    ticket => $ct->{ticket}, ticket_file => "$dir/good.ticket", state_file => "$dir/good.state",
    stream => "egress_bridge_trusted_certificate $dir/ca.pem;\n");
$good->start;
ok($good->wait_log(qr/egress bridge: session ".+" ready/),
    'wss:// with the trusted CA: the bridge connects and gets hello');
like($good->error_log, qr/connected to wss:\/\/localhost:$port\/.*egress\.v2/, '... over TLS, protocol v2');
my ($r) = $good->request("CONNECT example.com:443 HTTP/1.1\r\n\r\n");
like($r, qr/^HTTP\/1\.1 503 .*\r\n\r\nhost agent not connected\n\z/s,
    '... so requests reach the session (no host agent yet)');

# 2. No trusted certificate configured: the system store does not know the CA.
my $untrusted = Test::Egress::Module->new($t, name => 'nginx-untrusted',
    bridge => "wss://localhost:$port/v1/leases/$lid/egress/client",
    ticket_file => "$dir/u.ticket", state_file => "$dir/u.state");
$untrusted->start(allow_log => 1);
ok($untrusted->wait_log(qr/coordinator certificate verify error/), 'an unknown CA is refused');
($r) = $untrusted->request("CONNECT example.com:443 HTTP/1.1\r\n\r\n");
is(status_of($r), 503, '... requests get 503');
like($r, qr/coordinator certificate not trusted/, '... saying why');

# 3. Trusted CA but the URL names 127.0.0.1, which the certificate does not cover.
my $mismatch = Test::Egress::Module->new($t, name => 'nginx-mismatch',
    bridge => "wss://127.0.0.1:$port/v1/leases/$lid/egress/client",
    ticket_file => "$dir/m.ticket", state_file => "$dir/m.state",
    stream => "egress_bridge_trusted_certificate $dir/ca.pem;\n");
$mismatch->start(allow_log => 1);
ok($mismatch->wait_log(qr/coordinator certificate does not match "127\.0\.0\.1"/),
    'a certificate for another name is refused');
($r) = $mismatch->request("CONNECT example.com:443 HTTP/1.1\r\n\r\n");
like($r, qr/^HTTP\/1\.1 503 .*does not match/s, '... with a 503 naming the problem');

unlike($c->log, qr/ticket_consumed.*\n.*ticket_consumed/,
    'the refused bridges never spent a ticket (they stopped before the upgrade)');

$t->done;
done_testing;
