#!/usr/bin/perl
# egress host: bridge liveness. With a short ping interval (EGRESS_PING_MS), a
# quiet but healthy bridge stays up (the coordinator's pongs count), and a
# coordinator that stops answering (SIGSTOP: the TCP connection stays open)
# is given up on after three quiet intervals; once it answers again the agent
# rejoins the same session with its resume secret.

use strict;
use warnings;

use Test::More;
use Test::Egress qw(wait_until);
use Test::Egress::HostAgent;

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator', 'egress');
my $o = $t->origin;
my $h = Test::Egress::HostAgent->new($t, allow => 'localhost:' . $o->port,
    args => ['--allow-private'], no_agent => 1);
$h->start_agent(env => { EGRESS_PING_MS => 200 });
my $c = $h->c;

# ---- quiet and healthy: pings are answered -----------------------------------------
select(undef, undef, undef, 2.5);    # a dozen ping intervals with no traffic
unlike($t->log_of('agent'), qr/no answer to pings/, 'a quiet bridge answered by pongs stays up');
my $st = $c->status($h->token, $h->lease);
ok($st->{hostConnected}, '... and the coordinator still sees the host');
my ($a, $resp) = $h->http(1, 'localhost', $o->port, '/ip');
like($resp // '', qr/^HTTP\/1\.1 200/, '... and it still carries streams');

# ---- the coordinator stops answering ---------------------------------------------------
my $cpid = $t->pid($c->name);
kill 'STOP', $cpid;
my $gone = wait_until(sub { $t->log_of('agent') =~ /no answer to pings/ }, 10);
kill 'CONT', $cpid;
ok($gone, 'a silent coordinator is given up on after three quiet intervals');
ok($h->wait_peer(0, 10), 'the coordinator then sees the old host socket gone');
ok($h->wait_peer(1, 20), 'the agent comes back');
# The client hears of the host when the coordinator attaches it, a moment
# before the agent reads its hello and logs.
ok(wait_until(sub { $t->log_of('agent') =~ /reconnected: lease=/ }, 10), '... by reconnecting');
my @mints = $c->log =~ /ticket_minted lease=\S+ session=\S+ role=host/g;
is(scalar @mints, 1, '... without minting a new host ticket');
like($c->log, qr/resume_accepted lease=\S+ session=\S+ role=host/, '... with its resume secret');
($a, $resp) = $h->http(3, 'localhost', $o->port, '/ip');
like($resp // '', qr/^HTTP\/1\.1 200/, 'streams work again');

$t->done;
done_testing;
