#!/usr/bin/perl
# egress-coordinator: liveness of agent sockets. The coordinator pings a
# socket that has been quiet for one interval and drops one quiet for three,
# so a vanished agent (SIGSTOP: its TCP connection stays open) is reported
# gone within seconds: the peer hears peer{connected:false}, status and
# /metrics say so. A quiet agent that answers pings stays.

use strict;
use warnings;

use Test::More;
use Test::Egress qw(wait_until);
use Time::HiRes qw(time);
use Test::Egress::HostAgent;

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator', 'egress');
my $o = $t->origin;
my $c = $t->coordinator(args => [ '--ping-interval', '200ms' ]);
my $h = Test::Egress::HostAgent->new($t, coordinator => $c, allow => 'localhost:' . $o->port,
    args => ['--allow-private']);

# ---- quiet and healthy: both sides answer the coordinator's pings --------------------
# The agent pings every 30 s by default, so its socket stays quiet unless
# the coordinator asks. Read the client socket for a dozen intervals: recv()
# answers pings as a browser-side agent would.
my $until = time + 2.5;
my $quiet = 1;
while ($quiet && time < $until) {
    my $m = $h->ws->recv(0.3) or next;
    $quiet = 0;
    diag("unexpected message on a quiet session: $m->{type}");
}
ok($quiet, 'a quiet session stays quiet for a dozen ping intervals');
ok($h->ws->pings >= 5, 'the coordinator pings a quiet socket (' . $h->ws->pings . ' pings)');
unlike($c->log, qr/socket_silent/, 'sockets that answer pings stay');
my $st = $c->status($h->token, $h->lease);
ok($st->{hostConnected} && $st->{clientConnected}, 'status: both still connected');
my ($a, $resp) = $h->http(1, 'localhost', $o->port, '/ip');
like($resp // '', qr/^HTTP\/1\.1 200/, 'the quiet session still carries streams');

# ---- the host agent vanishes ----------------------------------------------------------
my $apid = $t->pid('agent');
kill 'STOP', $apid;
ok($h->wait_peer(0, 10), 'the client hears the silent host is gone');
like($c->log, qr/socket_silent lease=\S+ session=\S+ role=host/, 'log: socket_silent role=host');
$st = $c->status($h->token, $h->lease);
ok(!$st->{hostConnected} && $st->{clientConnected}, 'status: host gone, client still there');
my $metrics = (Test::Egress::http_get($c->port, '/metrics')) // '';
like($metrics, qr/^egress_sockets_silent_total 1$/m, 'metrics: one silent socket dropped');

# ---- it wakes up: its socket is gone, it rejoins with its resume secret ---------------
kill 'CONT', $apid;
ok($h->wait_peer(1, 20), 'the agent comes back');
ok(wait_until(sub { $c->status($h->token, $h->lease)->{hostConnected} }, 10),
    'status: host connected again');
($a, $resp) = $h->http(2, 'localhost', $o->port, '/ip');
like($resp // '', qr/^HTTP\/1\.1 200/, 'streams flow again');

$t->done;
done_testing;
