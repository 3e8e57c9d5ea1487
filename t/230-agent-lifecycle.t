#!/usr/bin/perl
# egress host life cycle against the real coordinator: ticket from stdin,
# SIGTERM closes every stream and exits 0, reconnect with the resume secret
# after a coordinator restart, fatal stop (exit 3) on session replacement and
# on an unknown lease, refused/expired credentials.

use strict;
use warnings;

use Test::More;
use Test::Egress qw(wait_until);
use Test::Egress::HostAgent;

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator', 'egress');
my $o = $t->origin;
my $P = $o->port;
my $h = Test::Egress::HostAgent->new($t, allow => "127.0.0.1:$P", args => ['--allow-private'],
    no_agent => 1);
my $c = $h->c;

# ---- a ticket on stdin, no token: SIGTERM closes streams, exit 0 -------------------------
my $ht = $c->ticket($h->token, $h->lease, role => 'host', sessionID => $h->session,
    allow => ["127.0.0.1:$P"]);
$h->start_agent(args => [ '--ticket-file', '-' ], stdin => "$ht->{ticket}\n",
    env => { EGRESS_TOKEN => '' });
like($t->log_of('agent'), qr/session=\Q${\ $h->session}\E/, 'startup line names the session');
is($h->open(1, '127.0.0.1', $P)->{type}, 'open_ok', 'stream 1 open (ticket from stdin)');
is($h->open(2, '127.0.0.1', $P)->{type}, 'open_ok', 'stream 2 open');
$h->send(1, "GET /slow/100000/1000 HTTP/1.1\r\nHost: a\r\n\r\n");
kill 'TERM', $t->pid('agent');
my %closed;
my $peer_gone;
wait_until(sub {
    my $m = $h->next_msg(1) or return 0;
    $closed{ $m->{json}{id} } = 1 if $m->{json} && $m->{json}{type} eq 'close' && !$m->{json}{half};
    $peer_gone = 1 if $m->{json} && $m->{json}{type} eq 'peer' && !$m->{json}{connected};
    return $peer_gone;
}, 15);
ok($closed{1} && $closed{2}, 'SIGTERM: close frame for every stream');
ok($peer_gone, 'SIGTERM: the bridge closes (client told the host left)');
my $st = $t->wait_exit('agent', 15);
is(defined $st ? $st >> 8 : -1, 0, 'SIGTERM: exit 0');
unlike($t->log_of('agent'), qr/egt_|egr_/, 'no ticket or resume secret in the log');

# ---- reconnect after a coordinator restart (resume secret) -----------------------------
my $audit = $t->dir . '/audit.log';
$h->start_agent(name => 'agent2', args => [ '--audit-log', $audit ]);
is($h->open(5, '127.0.0.1', $P)->{type}, 'open_ok', 'stream 5 open before the restart');
$h->send(5, "GET /slow/100000/1000 HTTP/1.1\r\nHost: a\r\n\r\n");
$c->restart;
ok(wait_until(sub { $t->log_of('agent2') =~ /reconnected: lease=/ }, 30),
    'agent reconnects after the coordinator restarts');
like($t->log_of('agent2'), qr/bridge down/, 'the drop was logged');
ok($t->running('agent2'), 'agent kept running');
$h->connect_client(same_session => 1);
my $st2 = $c->status($h->token, $h->lease);
ok($st2->{hostConnected} && $st2->{clientConnected}, 'status: both sides connected again');
my ($a, $r) = $h->http(10, '127.0.0.1', $P, '/ip');
like($r // '', qr/127\.0\.0\.1\n$/, 'streams work after the reconnect');

# the client leaves: its streams die with it
is($h->open(11, '127.0.0.1', $P)->{type}, 'open_ok', 'stream 11 open');
$h->send(11, "GET /slow/100000/1000 HTTP/1.1\r\nHost: a\r\n\r\n");
$h->ws->close;
my %res;
wait_until(sub {
    %res = map { $_->{stream} => $_->{result} } $h->audit_lines($audit);
    return $res{11};
}, 10);
is($res{5}, 'bridge_down', 'bridge loss closed the open stream (audit)');
is($res{11}, 'bridge_down', 'client departure closed its stream (audit)');
$h->connect_client(same_session => 1);

# ---- fatal: a second agent on the same session takes over (4002) -----------------------
$t->spawn('agent3', cmd => $h->agent_cmd, env => { $h->env }, wait_log => qr/connected: lease=/);
$st = $t->wait_exit('agent2', 20);
is(defined $st ? $st >> 8 : -1, 3, 'socket replaced by a newer agent: exit 3');
like($t->log_of('agent2'), qr/fatal: .*took over/, 'takeover explained');
ok($t->running('agent3'), 'the newer agent keeps running');

# ---- fatal: a newer session replaces this one (4001) -----------------------------------
$h->connect_client; # no sessionID: a new session replaces the agent's
$st = $t->wait_exit('agent3', 20);
is(defined $st ? $st >> 8 : -1, 3, 'session replaced: exit 3, no reconnect');
like($t->log_of('agent3'), qr/fatal: .*replaced/, 'replacement explained');

# ---- fatal: unknown lease (404 while minting) ------------------------------------------
my ($rc, $out) = $t->run([ $t->bin('egress'), 'host', '--id', 'no-such-lease', '--allow',
        'example.com', '--coordinator', $c->url ], env => { $h->env });
is($rc, 3, 'unknown lease: exit 3');
like($out, qr/404/, 'unknown lease: status shown');

# ---- refused credentials ----------------------------------------------------------------
($rc, $out) = $t->run([ $t->bin('egress'), 'host', '--id', $h->lease, '--allow', 'example.com',
        '--coordinator', $c->url ], env => { $h->env(EGRESS_TOKEN => 'egk_bogus') });
is($rc, 4, 'bad token: exit 4');
unlike($out, qr/egk_bogus/, 'bad token not echoed');

# a used ticket and no token: 401 on upgrade, nothing left to try -> exit 4
($rc, $out) = $t->run([ @{ $h->agent_cmd('--ticket-file', '-') } ],
    env => { $h->env(EGRESS_TOKEN => '') }, stdin => "$ht->{ticket}\n", timeout => 30);
is($rc, 4, 'spent ticket without a token: exit 4');
like($out, qr/ticket refused \(401/, 'spent ticket explained');

$t->done;
done_testing;
