#!/usr/bin/perl
# Status from any instance shows the owner's live counters (issue 18,
# point 4): two instances on one PostgreSQL database; the real module and
# the real host agent paired on c1 with a checksummed transfer through them.
# c2, which relays nothing of the lease, answers status with c1's counters
# (connected roles, protocols, streams, bytes), published with c1's
# heartbeat, and says where they come from and how old they are; after
# kill -9 of c1 it no longer presents them as live.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);
use Test::Egress qw(slurp wait_until);
use Test::Egress::Module;
use Test::Egress::Origin;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so', 'egress-coordinator',
    'egress');
$SIG{PIPE} = 'IGNORE';
my $slow = $ENV{EGRESS_SAN} ? 3 : 1;
my $pg = $t->postgres;
my @c = map {
    $t->coordinator(name => "c$_", db => 'pg', db_name => 'st',
        args => [ '--instance', "c$_", '--owner-lapse', '3s' ])
} 1 .. 2;
my ($c1, $c2) = @c;
like($c1->log, qr/store_migrated backend=postgresql schema_version=5/, 'counters column: migration 5');

my $alice = $c1->token(owner => 'alice', org => 'acme');
my $L = $c1->lease($alice, ttlSeconds => 3600)->{id};
my $ct = $c1->ticket($alice, $L, role => 'client');
my $S = $ct->{sessionID};

# Before any socket: nobody relays the lease, nothing live anywhere.
my $st = $c2->status($alice, $L);
is_deeply($st->{relay}, { instance => undef, live => JSON::PP::false, here => JSON::PP::false,
    counters => 'none' }, 'no socket yet: no owner, no counters');

# ---- the module and the host agent, both on c1 -----------------------------------------
my $o = $t->origin;
my $op = $o->port;
my $m = Test::Egress::Module->new($t, bridge => $c1->ws_url($L, 'client'), ticket => $ct->{ticket});
$m->start;
my $d = $t->dir;
mkdir "$d/$_" for qw(home state config);
$t->spawn('agent',
    cmd => [ $t->bin('egress'), 'host', '--id', $L, '--session', $S, '--coordinator', $c1->url,
        '--allow', "127.0.0.1:$op", '--allow-private' ],
    env => { $t->san_env, HOME => "$d/home", XDG_STATE_HOME => "$d/state",
        XDG_CONFIG_HOME => "$d/config", EGRESS_TOKEN => $alice },
    wait_log => qr/connected: lease=/);
ok($m->wait_log(qr/egress bridge: host agent connected/), 'module and host agent paired on c1');

$st = $c1->status($alice, $L);
is_deeply([ @{ $st->{relay} }{qw(instance here counters)} ], [ 'c1', JSON::PP::true, 'here' ],
    'c1 relays the lease and counts it itself');
ok(!exists $st->{relay}{countersAt}, '... no countersAt for its own counters');

# ---- a checksummed transfer, slow enough to be seen in flight ------------------------------
my $N = 400000;
my $result = "$d/stream.txt";
my $pid = fork // die "fork: $!";
if (!$pid) {
    my $r = eval {
        my $cl = Test::Egress::Module::Client->new($m->port);
        $cl->send("CONNECT 127.0.0.1:$op HTTP/1.1\r\nHost: 127.0.0.1:$op\r\n\r\n");
        my $head = $cl->read_until(qr/\r\n\r\n/, 10);
        die "CONNECT: $head\n" unless $head =~ m{^HTTP/1\.1 200 };
        $cl->take(length $head);
        $cl->send("GET /slow/$N/100000 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        my $buf = $cl->read_until(qr/\r\n\r\n/, 15);
        my ($h) = $buf =~ /^(.*?\r\n\r\n)/s or die "no response head\n";
        $cl->take(length $h);
        my $deadline = time + 30;
        $cl->read_some(0.5) while length($cl->{buf}) < $N && !$cl->eof && time < $deadline;
        $cl->{buf} eq Test::Egress::Origin::pattern($N) ? 'ok' : 'bad ' . length($cl->{buf});
    } // "error $@";
    open my $fh, '>', $result or POSIX::_exit(1);
    print {$fh} $r;
    close $fh;
    POSIX::_exit(0);
}

# c2's status while the stream runs: c1's counters, within about 2 s.
my ($seen, $t0) = (undef, time);
ok(wait_until(sub {
    my $s = $c2->status($alice, $L);
    $seen = $s if $s && $s->{streams} && $s->{hostConnected} && $s->{clientConnected};
    return $seen;
}, 10 * $slow), 'c2 shows the live stream of the lease c1 relays');
diag(sprintf('seen on c2 %.1f s after the stream started', time - $t0));
cmp_ok(time - $t0, '<', 3 * $slow, '... within about 2 s');
is($seen->{relay}{instance}, 'c1', '... relay names c1');
ok(!$seen->{relay}{here} && $seen->{relay}{live}, '... not here, owner live');
is($seen->{relay}{counters}, 'owner', '... the counters are the owner\'s');
like($seen->{relay}{countersAt} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, '... as of countersAt');
cmp_ok($seen->{relay}{countersAgeMs} // 1e9, '<', 3000, "... $seen->{relay}{countersAgeMs} ms old");
is_deeply($seen->{protocol}, { host => 'egress.v2', client => 'egress.v2' }, '... both sides speak v2');
ok($seen->{hostSince} && $seen->{clientSince}, '... with the roles\' since');

waitpid($pid, 0);
is(slurp($result), 'ok', "the transfer through the module and agent arrived intact ($N bytes)");

# Quiet again: c2 converges on exactly what c1 says of itself.
my @live = qw(hostConnected clientConnected hostSince clientSince protocol streams bytesUp bytesDown);
my ($s1, $s2);
ok(wait_until(sub {
    $s1 = $c1->status($alice, $L);
    $s2 = $c2->status($alice, $L);
    return $s2->{bytesDown} == $s1->{bytesDown} && $s2->{streams} == 0 && $s1->{streams} == 0;
}, 10 * $slow), 'after the transfer c2 reports c1\'s byte counters');
cmp_ok($s2->{bytesDown}, '>=', $N, "bytesDown $s2->{bytesDown} >= $N");
cmp_ok($s2->{bytesUp}, '>', 0, "bytesUp $s2->{bytesUp}");
is_deeply({ map { ($_ => $s2->{$_}) } @live }, { map { ($_ => $s1->{$_}) } @live },
    'every live member on c2 equals c1\'s own');
is($s2->{sessionID}, $S, 'same session');

# The document lives in the instance's row, one entry per lease, no secrets.
my ($rc, $row) = $pg->psql('egress_st', "SELECT relays::text FROM instances WHERE name='c1'");
like($row, qr/"\Q$L\E": \{/, 'c1\'s heartbeat row carries the lease\'s counters');
unlike($row, qr/egt_|egr_|egk_/, '... and no credential');

# ---- kill -9 of the owner: its counters are not shown as live ------------------------------
$c1->kill9;
my $killed = time;
my $after;
ok(wait_until(sub {
    $after = $c2->status($alice, $L);
    return $after && !$after->{relay}{live};
}, 10 * $slow), 'after kill -9 of c1, c2 says the owner is not live');
diag(sprintf('owner seen dead %.1f s after the kill (lapse 3 s)', time - $killed));
is($after->{relay}{counters}, 'none', '... no counters known');
ok(!exists $after->{relay}{countersAt}, '... no countersAt');
is_deeply([ @{$after}{qw(hostConnected clientConnected streams bytesUp bytesDown)} ],
    [ JSON::PP::false, JSON::PP::false, 0, 0, 0 ], '... and nothing live is claimed');
is_deeply($after->{protocol}, { host => undef, client => undef }, '... no protocols');

$t->done;
done_testing;
