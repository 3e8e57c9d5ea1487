#!/usr/bin/perl
# egress host --daemon: pidfile and log under $XDG_STATE_HOME/egress, the
# supervisor restarts the agent after kill -9 (which resumes the session from
# its 0600 state file), refuses a second daemon, and stops cleanly on SIGTERM.

use strict;
use warnings;

use Test::More;
use Test::Egress qw(wait_until slurp);
use Test::Egress::HostAgent;

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator', 'egress');
my $o = $t->origin;
my $P = $o->port;
my $h = Test::Egress::HostAgent->new($t, allow => "127.0.0.1:$P", args => ['--allow-private'],
    no_agent => 1);
mkdir $t->dir . "/$_" for qw(home state config);
my $sd = $t->dir . '/state/egress';
my $L = $h->lease;
my $pidfile = "$sd/$L.host.pid";
my $log = "$sd/$L.host.log";

# The daemon detaches from the harness: make sure nothing outlives the test.
END {
    if ($pidfile && open(my $fh, '<', $pidfile)) {
        my $p = <$fh>;
        kill 'TERM', $1 if defined $p && $p =~ /^(\d+)/;
    }
}

my ($rc, $out) = $t->run($h->agent_cmd('--daemon'), env => { $h->env });
is($rc, 0, 'daemon start exits 0');
like($out, qr/daemon started for lease \Q$L\E/, 'start message names the lease');
ok(-e $pidfile, 'pidfile written');
chomp(my $sup = slurp($pidfile));
ok($sup && kill(0, $sup), "supervisor $sup alive");
ok($h->wait_peer(1, 20), 'agent connected (client sees the host)');

sub agent_pid {
    my ($m) = slurp($log) =~ /.*agent pid (\d+) started/s;
    return $m;
}
my $a1 = agent_pid();
ok($a1 && kill(0, $a1), "agent $a1 running under the supervisor");
my $state = "$sd/$L.host.state";
ok(wait_until(sub { -s $state }, 10), 'state file written');
is((stat $state)[2] & 0777, 0600, 'state file is 0600');

($rc, $out) = $t->run($h->agent_cmd('--daemon'), env => { $h->env });
is($rc, 2, 'second daemon for the same lease refused');
like($out, qr/already running/, 'refusal explained');

# ---- kill -9 the agent: the supervisor restarts it, it resumes ---------------------------
kill 'KILL', $a1;
ok($h->wait_peer(0, 20), 'client sees the host go');
ok(wait_until(sub { my $p = agent_pid(); $p && $p != $a1 }, 20), 'supervisor started a new agent');
ok($h->wait_peer(1, 30), 'restarted agent rejoined the session');
like(slurp($log), qr/killed by signal 9; restarting/, 'restart logged');
my ($a, $r) = $h->http(1, '127.0.0.1', $P, '/ip');
like($r // '', qr/127\.0\.0\.1\n$/, 'streams work after the restart');

# ---- a refused resume secret: the restarted agent mints a fresh ticket -------------------
my $a2 = agent_pid();
my $sess = slurp($state) =~ /^session = (\S+)/m ? $1 : '';
Test::Egress::spew($state, "session = $sess\nresume = egr_bogusbogusbogus\n", 0600);
kill 'KILL', $a2;
ok($h->wait_peer(0, 20), 'client sees the host go again');
ok($h->wait_peer(1, 30), 'agent rejoined after its resume secret was refused');
like(slurp($log), qr/resume secret refused \(401\); trying a fresh ticket/, 'fallback to minting logged');
($a, $r) = $h->http(2, '127.0.0.1', $P, '/ip');
like($r // '', qr/127\.0\.0\.1\n$/, 'streams work on the minted ticket');
unlike(slurp($log), qr/egt_|egr_|egk_/, 'no secrets in the daemon log');

# ---- SIGTERM the supervisor: clean stop ----------------------------------------------------
$a2 = agent_pid();
kill 'TERM', $sup;
ok(wait_until(sub { !kill(0, $sup) && !kill(0, $a2) }, 20), 'supervisor and agent exit on SIGTERM');
ok(!-e $pidfile, 'pidfile removed');
ok($h->wait_peer(0, 10), 'bridge closed');

# ---- a fatal exit is not restarted ---------------------------------------------------------
($rc) = $t->run($h->agent_cmd('--daemon'), env => { $h->env });
is($rc, 0, 'daemon started again');
ok($h->wait_peer(1, 20), 'agent connected');
chomp($sup = slurp($pidfile));
$h->connect_client; # a new session replaces the agent's: fatal
ok(wait_until(sub { !kill(0, $sup) }, 30), 'supervisor stops after a fatal agent exit');
like(slurp($log), qr/exited with 3; not restarting/, 'fatal exit logged');

$t->done;
done_testing;
