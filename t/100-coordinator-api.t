#!/usr/bin/perl
# egress-coordinator: token CLI, leases API, access rules, ticket minting,
# session ids and generations, request limits, healthz and metrics.

use strict;
use warnings;

use Test::More;
use Test::Egress qw(wait_until);

my $t = Test::Egress->new;
my $c = $t->coordinator(env => { EGRESS_RATE_MINT => '0.001:40' });

# ---- token CLI --------------------------------------------------------------
my $alice = $c->token(owner => 'alice', org => 'acme');
my $bob   = $c->token(owner => 'bob',   org => 'acme');
my $boss  = $c->token(owner => 'carol', org => 'acme', admin => 1);
my $eve   = $c->token(owner => 'eve',   org => 'evil');
like($alice, qr/^egk_[A-Za-z0-9_-]{43}$/, 'token add prints an egk_ token');

my ($rc, $out) = $c->admin('token', 'list');
is($rc, 0, 'token list exits 0');
like($out, qr/alice\s+acme\s+no\s+no/, 'token list shows alice');
like($out, qr/carol\s+acme\s+yes/, 'token list shows the admin flag');
unlike($out, qr/egk_/, 'token list never shows a token');

($rc, $out) = $c->admin('token', 'add', '--owner', 'x');
isnt($rc, 0, 'token add without --org fails');
($rc, $out) = $c->admin('--help');
is($rc, 0, '--help exits 0');
like($out, qr/token add --owner NAME --org NAME/, '--help documents token add');

my $tmp = $c->token(owner => 'tmp', org => 'acme');
($rc, $out) = $c->admin('token', 'list');
my ($tmp_id) = $out =~ /^(tok_\S+)\s+tmp\s/m;
ok($tmp_id, 'token list shows an id');
my ($st) = $c->api(GET => '/v1/leases', $tmp);
is($st, 200, 'fresh token works');
($rc) = $c->admin('token', 'revoke', $tmp_id);
is($rc, 0, 'token revoke exits 0');
($st, my $j) = $c->api(GET => '/v1/leases', $tmp);
is($st, 401, 'revoked token gets 401');
is($j->{error}, 'unauthorized', 'error field');
ok(length $j->{message}, 'message field');
($st) = $c->api(GET => '/v1/leases', undef);
is($st, 401, 'no token gets 401');
($st) = $c->api(GET => '/v1/leases', 'egk_nope');
is($st, 401, 'unknown token gets 401');

# ---- healthz / metrics ------------------------------------------------------
($st, $j) = $c->api(GET => '/healthz');
is($st, 200, 'healthz 200');
ok($j->{ok}, 'healthz ok');

# ---- leases -------------------------------------------------------------------
($st, $j) = $c->api(POST => '/v1/leases', $alice, { slug => 'swift-crab', ttlSeconds => 600, ssh => 'root@192.0.2.1' });
is($st, 201, 'lease created');
my $lease = $j;
like($lease->{id}, qr/^[A-Za-z0-9_-]{1,64}$/, 'lease id syntax');
is($lease->{slug}, 'swift-crab', 'slug');
is($lease->{owner}, 'alice', 'owner');
is($lease->{org}, 'acme', 'org');
is($lease->{state}, 'active', 'state active');
like($lease->{expiresAt}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'expiresAt is RFC 3339');

($st) = $c->api(POST => '/v1/leases', $alice, { slug => 'swift-crab', ttlSeconds => 60 });
is($st, 409, 'duplicate slug 409');
($st) = $c->api(POST => '/v1/leases', $alice, { slug => 'bad slug', ttlSeconds => 60 });
is($st, 400, 'bad slug 400');
($st) = $c->api(POST => '/v1/leases', $alice, { ttlSeconds => 0 });
is($st, 400, 'ttl 0 is 400');
($st) = $c->api(POST => '/v1/leases', $alice, '{not json');
is($st, 400, 'malformed JSON 400');
($st) = $c->api(POST => '/v1/leases', $alice, { org => 'evil', ttlSeconds => 60 });
is($st, 403, 'lease in another org 403');
($st, $j) = $c->api(POST => '/v1/leases', $alice, '{"pad":"' . ('x' x 70000) . '"}');
is($st, 413, 'oversized body 413');

($st, $j) = $c->api(GET => '/v1/leases/swift-crab', $alice);
is($st, 200, 'get by slug');
is($j->{id}, $lease->{id}, 'same lease by slug');
($st, $j) = $c->api(GET => "/v1/leases/$lease->{id}", $bob);
is($st, 200, 'org member may read');
($st) = $c->api(GET => "/v1/leases/$lease->{id}", $eve);
is($st, 404, 'other org gets 404');
($st, $j) = $c->api(GET => '/v1/leases', $alice);
is($st, 200, 'list');
ok((grep { $_->{id} eq $lease->{id} } @{ $j->{leases} }), 'list has the lease');
($st, $j) = $c->api(GET => '/v1/leases', $eve);
is(scalar @{ $j->{leases} }, 0, 'other org lists nothing');
($st) = $c->api(GET => '/v1/leases/nope', $alice);
is($st, 404, 'unknown lease 404');

# ---- tickets ------------------------------------------------------------------
my $L = $lease->{id};
($st, $j) = $c->api(POST => "/v1/leases/$L/egress/ticket", $bob, { role => 'client' });
is($st, 403, 'other owner (same org, not admin) gets 403');
is($j->{error}, 'forbidden', '403 error code');
($st) = $c->api(POST => "/v1/leases/$L/egress/ticket", $eve, { role => 'client' });
is($st, 404, 'other org gets 404 on mint');
($st) = $c->api(POST => "/v1/leases/$L/egress/ticket", $alice, { role => 'boss' });
is($st, 400, 'bad role 400');
($st) = $c->api(POST => "/v1/leases/$L/egress/ticket", $alice, { role => 'host', profile => 'nope' });
is($st, 400, 'unknown profile 400');
($st) = $c->api(POST => "/v1/leases/$L/egress/ticket", $alice, { role => 'host', allow => ['*.'] });
is($st, 400, 'bad allow pattern 400');

my $t1 = $c->ticket($alice, $L, role => 'client');
like($t1->{ticket}, qr/^egt_[A-Za-z0-9_-]{43}$/, 'ticket format');
is($t1->{leaseID}, $L, 'ticket leaseID');
is($t1->{role}, 'client', 'ticket role');
like($t1->{sessionID}, qr/^egress_1\.1\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/, 'sessionID format, generation 1');
like($t1->{expiresAt}, qr/Z$/, 'expiresAt');
my $s1 = $t1->{sessionID};

my $t2 = $c->ticket($boss, 'swift-crab', role => 'host', sessionID => $s1, profile => 'discord',
    allow => ['example.com', '*.example.org']);
is($t2->{sessionID}, $s1, 'host ticket joins the session (org admin may mint)');
($st, $j) = $c->api(GET => "/v1/leases/$L/egress/status", $bob);
is($st, 200, 'status readable by org member');
is($j->{profile}, 'discord', 'status profile');
ok(exists $j->{hostSince} && !defined $j->{hostSince}, 'hostSince null before any socket');
is_deeply($j->{allow}, ['example.com', '*.example.org'], 'status allow');
is($j->{sessionID}, $s1, 'status sessionID');
ok(!$j->{hostConnected} && !$j->{clientConnected}, 'nothing connected');

my $t3 = $c->ticket($alice, $L, role => 'client');
like($t3->{sessionID}, qr/^egress_1\.2\./, 'a mint without sessionID makes generation 2');
($st, $j) = $c->api(POST => "/v1/leases/$L/egress/ticket", $alice, { role => 'host', sessionID => $s1 });
is($st, 409, 'mint for the replaced generation 409');
is($j->{error}, 'egress_session_replaced', '409 error code');

(my $forged = $t3->{sessionID}) =~ s/\.([A-Za-z0-9_-])([A-Za-z0-9_-]{42})$/'.' . ($1 eq 'A' ? 'B' : 'A') . $2/e;
($st) = $c->api(POST => "/v1/leases/$L/egress/ticket", $alice, { role => 'host', sessionID => $forged });
is($st, 400, 'forged sessionID 400');
($st) = $c->api(POST => "/v1/leases/$L/egress/ticket", $alice, { role => 'host', sessionID => 'egress_1.9.x.y' });
is($st, 400, 'malformed sessionID 400');
my $other = $c->lease($alice, slug => 'other');
($st) = $c->api(POST => "/v1/leases/$other->{id}/egress/ticket", $alice,
    { role => 'host', sessionID => $t3->{sessionID} });
is($st, 400, 'sessionID of another lease 400');

# ---- stop, release, expiry ---------------------------------------------------
($st) = $c->api(DELETE => "/v1/leases/$L/egress", $bob);
is($st, 403, 'org member may not stop');
($st, $j) = $c->api(DELETE => "/v1/leases/$L/egress", $alice);
is($st, 200, 'DELETE egress stops the session');
($st, $j) = $c->api(GET => "/v1/leases/$L/egress/status", $alice);
is($j->{state}, 'stopped', 'status says stopped');
($st, $j) = $c->api(POST => "/v1/leases/$L/egress/ticket", $alice, { role => 'host', sessionID => $t3->{sessionID} });
is($st, 409, 'mint for a stopped session 409');

($st) = $c->api(POST => "/v1/leases/$L/release", $bob);
is($st, 403, 'org member may not release');
($st, $j) = $c->api(POST => "/v1/leases/$L/release", $alice);
is($st, 200, 'release');
is($j->{state}, 'released', 'released state');
($st, $j) = $c->api(POST => "/v1/leases/$L/egress/ticket", $alice, { role => 'client' });
is($st, 410, 'mint on a released lease 410');
is($j->{error}, 'lease_gone', '410 error code');

my $short = $c->lease($alice, slug => 'short', ttlSeconds => 1);
ok(wait_until(sub {
    my ($s, $l) = $c->api(GET => '/v1/leases/short', $alice);
    $l && $l->{state} eq 'expired';
}, 5), 'lease expires');
($st) = $c->api(POST => '/v1/leases/short/egress/ticket', $alice, { role => 'client' });
is($st, 410, 'mint on an expired lease 410');

# ---- rate limit ---------------------------------------------------------------
my $rl = $c->lease($alice, slug => 'ratelimited');
my @codes;
for (1 .. 42) {
    my ($s) = $c->api(POST => "/v1/leases/$rl->{id}/egress/ticket", $alice, { role => 'client' });
    push @codes, $s;
}
is($codes[0], 201, 'first mint ok');
is($codes[-1], 429, 'mints beyond the burst get 429');

my $raw;
($st, undef, $raw) = $c->api(GET => "/metrics");
is($st, 200, 'metrics 200');
like($raw, qr/^egress_tickets_minted_total \d+$/m, 'metrics: tickets minted');
like($raw, qr/^egress_sessions \d+$/m, 'metrics: sessions gauge');
like($raw, qr/^egress_rate_limited_total [1-9]/m, 'metrics: rate limited counted');

my $log = $c->log;
for my $secret ($alice, $bob, $boss, $t1->{ticket}, $t2->{ticket}, $t3->{ticket}) {
    ok(index($log, $secret) < 0, 'no secret in the log');
}

$t->done;
done_testing;
