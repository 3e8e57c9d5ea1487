#!/usr/bin/perl
# egress-coordinator: ticketed WebSocket upgrades, refusals, hello/peer,
# status while sockets come and go, replacement and teardown close codes.

use strict;
use warnings;

use Test::More;
use Test::Egress qw(wait_until);

my $t = Test::Egress->new;
my $c = $t->coordinator(env => { EGRESS_TICKET_TTL => 2, EGRESS_RATE_FAIL => '0.001:1000' });
my $alice = $c->token(owner => 'alice', org => 'acme');
my $L = $c->lease($alice, slug => 'crab')->{id};
my $L2 = $c->lease($alice, slug => 'other')->{id};
my @secrets = ($alice);

sub refused {
    my ($lease, $role, %o) = @_;
    my ($ws, $status, $body) = $c->ws($lease, $role, %o);
    return ($status, ($body && $body =~ /^\{/) ? JSON::PP->new->decode($body) : undef);
}

sub ticket {
    my (%o) = @_;
    my $tk = $c->ticket($alice, $o{lease} // $L, role => $o{role}, %{ $o{extra} || {} });
    push @secrets, $tk->{ticket};
    return $tk;
}

# ---- refusals -------------------------------------------------------------------
my ($st, $j) = refused($L, 'client');
is($st, 401, 'no ticket: 401');
is($j->{error}, 'unauthorized', '401 JSON error');
($st) = refused($L, 'client', ticket => 'egt_unknown');
is($st, 401, 'unknown ticket: 401');
($st) = refused('nope', 'client', ticket => 'egt_unknown');
is($st, 404, 'unknown lease: 404');
($st) = refused($L, 'admin', ticket => 'egt_unknown');
is($st, 404, 'unknown role endpoint: 404');

my $ct = ticket(role => 'client');
my $S = $ct->{sessionID};
($st, $j) = refused($L, 'host', ticket => $ct->{ticket});
is($st, 403, 'client ticket on the host endpoint: 403');
($st) = refused($L, 'client', ticket => $ct->{ticket});
is($st, 401, 'a ticket presented once is spent');

$ct = ticket(role => 'client');
$S = $ct->{sessionID};
($st) = refused($L2, 'client', ticket => $ct->{ticket});
is($st, 403, 'ticket of another lease: 403');

$ct = ticket(role => 'client');
$S = $ct->{sessionID};
($st) = refused($L, 'client', ticket => $ct->{ticket}, protocols => ['chat']);
is($st, 400, 'unknown subprotocol only: 400');

my $exp = ticket(role => 'host', extra => { sessionID => $S });
select(undef, undef, undef, 3.2);    # EGRESS_TICKET_TTL=2
($st, $j) = refused($L, 'host', ticket => $exp->{ticket});
is($st, 401, 'expired ticket: 401');
like($j->{message}, qr/expired/, 'message says expired');
$ct = ticket(role => 'client');
$S = $ct->{sessionID};

# ---- accept, hello, peer --------------------------------------------------------
my $client = $c->ws($L, 'client', ticket => $ct->{ticket}, ticket_header => 'x-egress-ticket',
    headers => { Authorization => 'Bearer access-proxy-token' });
ok($client, 'client accepted with X-Egress-Ticket while a proxy owns Authorization');
is($client->protocol, 'egress.v2', 'v2 negotiated');
my $h = $client->recv_json(5);
is($h->{type}, 'hello', 'hello first');
is($h->{sessionID}, $S, 'hello sessionID');
is($h->{role}, 'client', 'hello role');
ok(!$h->{peerConnected}, 'host not connected yet');
like($h->{resume}, qr/^egr_[A-Za-z0-9_-]{43}$/, 'resume secret');
push @secrets, $h->{resume};
($st) = refused($L, 'client', ticket => $ct->{ticket});
is($st, 401, 'ticket one-use after a successful upgrade');

$client->send_json({ type => 'open', id => 7, host => 'example.com', port => 443, window => 262144 });
my $e = $client->recv_json(5);
is_deeply($e, { type => 'error', id => 7, message => 'host agent not connected' },
    'open without host gets the immediate error');

$j = $c->status($alice, $L);
ok($j->{clientConnected} && !$j->{hostConnected}, 'status: client only');
like($j->{clientSince}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'status: client connected since');
is($j->{hostSince}, undef, 'status: host never seen');
is($j->{protocol}{client}, 'egress.v2', 'status protocol');

my $ht = ticket(role => 'host', extra => { sessionID => $S, profile => 'slack' });
my $host = $c->ws($L, 'host', ticket => $ht->{ticket});
ok($host, 'host accepted');
$h = $host->recv_json(5);
is($h->{role}, 'host', 'host hello');
ok($h->{peerConnected}, 'host hello: peer connected');
push @secrets, $h->{resume};
my $p = $client->recv_json(5);
is_deeply($p, { type => 'peer', connected => JSON::PP::true }, 'client told: peer connected');
$j = $c->status($alice, $L);
ok($j->{clientConnected} && $j->{hostConnected}, 'status: both connected');
is($j->{profile}, 'slack', 'status profile');

# Frames from the wrong side are a policy violation.
# ---- same-session socket replacement ---------------------------------------------
my $ht2 = ticket(role => 'host', extra => { sessionID => $S });
my $host2 = $c->ws($L, 'host', ticket => $ht2->{ticket});
ok($host2, 'second host socket of the same session accepted');
my $m = $host->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 4002, 'older host socket closed with 4002');
is($m && $m->{reason}, 'egress_socket_replaced', 'reason egress_socket_replaced');
$h = $host2->recv_json(5);
is($h->{type}, 'hello', 'new host gets hello');
push @secrets, $h->{resume};
$p = $client->recv_json(5);
is($p->{type} . ':' . ($p->{connected} ? 1 : 0), 'peer:0', 'client sees the old host leave');
$p = $client->recv_json(5);
is($p->{type} . ':' . ($p->{connected} ? 1 : 0), 'peer:1', 'and the new one arrive');

# ---- host drops: status and peer -------------------------------------------------
$host2->close;
$p = $client->recv_json(5);
is($p->{type} . ':' . ($p->{connected} ? 1 : 0), 'peer:0', 'host gone announced');
ok(wait_until(sub { !$c->status($alice, $L)->{hostConnected} }, 5), 'status: host disconnected');
like($c->status($alice, $L)->{hostSince}, qr/Z$/, 'status: since when the host is gone');

# ---- session replaced --------------------------------------------------------------
my $newc = ticket(role => 'client');
isnt($newc->{sessionID}, $S, 'new session minted');
$m = $client->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 4001, 'replaced session closed with 4001');
is($m && $m->{reason}, 'egress_session_replaced', 'reason');
my ($stale) = $c->api(POST => "/v1/leases/$L/egress/ticket", $alice, { role => 'host', sessionID => $S });
is($stale, 409, 'minting for the replaced session: 409');
$S = $newc->{sessionID};
my $client3 = $c->ws($L, 'client', ticket => $newc->{ticket});
ok($client3, 'client of the new session');
push @secrets, $client3->recv_json(5)->{resume};

# ---- v1 without subprotocol: no hello ------------------------------------------
my $v1t = ticket(role => 'host', extra => { sessionID => $S });
my $v1 = $c->ws($L, 'host', ticket => $v1t->{ticket}, protocols => []);
ok($v1, 'v1 host without a subprotocol header accepted');
is($v1->protocol, '', 'no subprotocol echoed');
$p = $client3->recv_json(5);
is($p->{type}, 'peer', 'v2 client told about the v1 host');
ok(!defined $v1->recv(0.5), 'v1 socket gets no hello');
$j = $c->status($alice, $L);
is($j->{protocol}{host}, 'egress.v1', 'status: host is v1');

# ---- DELETE stops: 4004 ------------------------------------------------------------
my ($dst) = $c->api(DELETE => "/v1/leases/$L/egress", $alice);
is($dst, 200, 'DELETE');
$m = $client3->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 4004, 'stopped session: 4004');
$m = $v1->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 4004, 'v1 host also 4004');

# ---- release: 4003 and 410 ------------------------------------------------------------
my $rt = ticket(role => 'client');
my $rc = $c->ws($L, 'client', ticket => $rt->{ticket});
$rc->recv_json(5);
my $rt2 = ticket(role => 'host', extra => { sessionID => $rt->{sessionID} });
$c->api(POST => "/v1/leases/$L/release", $alice);
$m = $rc->recv_until(sub { $_[0]{type} eq 'close' }, 5);
is($m && $m->{code}, 4003, 'released lease: 4003');
($st, $j) = refused($L, 'host', ticket => $rt2->{ticket});
is($st, 410, 'upgrade on a released lease: 410');

# ---- expiry: 4003 ---------------------------------------------------------------------
my $sl = $c->lease($alice, slug => 'short', ttlSeconds => 2)->{id};
my $et = ticket(role => 'client', lease => $sl);
my $ec = $c->ws($sl, 'client', ticket => $et->{ticket});
ok($ec, 'client on a short lease');
$m = $ec->recv_until(sub { $_[0]{type} eq 'close' }, 8);
is($m && $m->{code}, 4003, 'expired lease: 4003');

# ---- no secret in log or status ------------------------------------------------------
my $log = $c->log;
my (undef, undef, $raw) = $c->api(GET => "/v1/leases/$L2/egress/status", $alice);
for my $s (@secrets) {
    next unless defined $s;
    ok(index($log, $s) < 0, 'secret not in log');
}
ok(index($log, 'egt_') < 0 && index($log, 'egr_') < 0 && index($log, 'egk_') < 0,
    'no secret prefix in log at all');

$t->done;
done_testing;
