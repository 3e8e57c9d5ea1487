#!/usr/bin/perl
# egress-coordinator when PostgreSQL stops answering: the whole server
# (postmaster and backends) frozen with SIGSTOP, so TCP still accepts and
# acknowledges but no query is ever answered and the server's own
# statement_timeout never fires. The coordinator's loop must keep serving:
# /healthz and /metrics answer at once, paired sockets keep getting their
# pings, the first call that needs the database fails after the client-side
# deadline (3 s) with a clear log line, the calls after it fail at once
# while the connection is rebuilt in the background, and once the server is
# thawed the instance reconnects by itself.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use Test::Egress qw(wait_until);

$SIG{PIPE} = 'IGNORE';    # a socket the coordinator dropped fails a check, not the script
my $t = Test::Egress->new;
my $pg = $t->postgres;
my $c1 = $t->coordinator(name => 'c1', db => 'pg', args => [ '--ping-interval', '500ms' ]);
my $slow = $ENV{EGRESS_SAN} ? 3 : 1;

my $alice = $c1->token(owner => 'alice', org => 'acme');
my $L = $c1->lease($alice, slug => 'crab')->{id};
my $h = $c1->ticket($alice, $L, role => 'host');
my $c = $c1->ticket($alice, $L, role => 'client', sessionID => $h->{sessionID});
my %ws = map { $_ => scalar $c1->ws($L, $_, ticket => ($_ eq 'host' ? $h : $c)->{ticket}) } qw(host client);
ok($ws{host} && $ws{client}, 'a paired session before the freeze');
$ws{$_}->recv_json(5) for qw(host client);

# The postmaster and its children (backends and background workers: each
# calls setsid, so the process group does not reach them): pid => state.
sub pg_procs {
    my $pm = $t->pid('postgres');
    my %p;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        my ($pid, $state, $ppid) = $line =~ /^(\d+) .*\)\s+(\S)\s+(\d+)/ or next;
        $p{$pid} = $state if $pid == $pm || $ppid == $pm;
    }
    return %p;
}

sub timed {
    my ($f) = @_;
    my $t0 = time;
    my @r = $f->();
    return (time - $t0, @r);
}

my $spare = $c1->ticket($alice, $L, role => 'client', sessionID => $h->{sessionID});
my %frozen = pg_procs();
kill 'STOP', $t->pid('postgres');    # first, so that it forks no new backend
kill 'STOP', keys %frozen;
ok(wait_until(sub { my %s = pg_procs(); keys %s > 1 && !grep { $_ ne 'T' } values %s }, 10),
    'every PostgreSQL process is stopped') or diag(explain { pg_procs() });

# ---- the first call that needs the database: bounded by the client deadline ----------
my ($dt, $st) = timed(sub { $c1->api(GET => "/v1/leases/$L", $alice) });
is($st, 500, 'database silent: the API call fails with 500');
cmp_ok($dt, '<', 3 + 2 * $slow, sprintf('after the 3 s deadline, not a hang (%.2f s)', $dt));
like($c1->log, qr/store_error op=\w+ backend=postgresql error="no answer within 3000 ms; connection dropped, reconnecting"/,
    'one clear line says the server did not answer');

# ---- meanwhile: the loop keeps serving; calls fail fast -----------------------------
my ($worst_plain, $worst_db, $fails) = (0, 0, 0);
my $pings = $ws{host}->pings + $ws{client}->pings;
for my $i (1 .. 8) {
    for my $path ('/healthz', '/metrics') {
        my ($d, $s) = timed(sub { $c1->api(GET => $path) });
        $worst_plain = $d if $d > $worst_plain;
        $fails++ if $s != 200;
    }
    my ($d, $s) = timed(sub { $c1->api(GET => "/v1/leases/$L", $alice) });
    $worst_db = $d if $d > $worst_db;
    $fails++ if $s != 500;
    $ws{$_}->poll for qw(host client);    # answers the coordinator's pings
    select(undef, undef, undef, 0.25);    # spread the 8 rounds over a reconnect attempt
}
is($fails, 0, '/healthz and /metrics 200, API calls 500, throughout');
cmp_ok($worst_plain, '<', 1 * $slow, sprintf('/healthz and /metrics at once (worst %.3f s)', $worst_plain));
cmp_ok($worst_db, '<', 1 * $slow, sprintf('later API calls fail fast (worst %.3f s)', $worst_db));
cmp_ok($ws{host}->pings + $ws{client}->pings, '>', $pings, 'paired sockets keep getting pings');
ok(!$ws{host}->closed && !$ws{client}->closed, 'and stay open');
my ($du, $ws_st) = timed(sub { (Test::Egress::WS->connect_finish($c1->ws_start($L, 'client', ticket => $spare->{ticket})))[1] });
is($ws_st, 500, 'an upgrade that needs the database is refused with 500');
cmp_ok($du, '<', 1 * $slow, sprintf('at once (%.3f s)', $du));
$ws{$_}->poll for qw(host client);
ok(wait_until(sub { $c1->log =~ /store_error op=reconnect backend=postgresql error="no answer within 5000 ms"/ }, 10 * $slow),
    'a reconnect to the silent server is given up after 5 s, without holding the loop');
my ($d) = timed(sub { $c1->api(GET => '/healthz') });
cmp_ok($d, '<', 1 * $slow, sprintf('/healthz still at once (%.3f s)', $d));

# ---- thawed: the instance reconnects by itself ---------------------------------------
kill 'CONT', keys %frozen;
ok(wait_until(sub { ($c1->api(GET => "/v1/leases/$L", $alice))[0] == 200 }, 20),
    'server thawed: the API answers again');
like($c1->log, qr/store_reconnected backend=postgresql/, 'store_reconnected logged');
my $nt = $c1->ticket($alice, $L, role => 'client', sessionID => $h->{sessionID});
ok($nt->{ticket}, 'a ticket is minted (writes work)');
ok($t->running('c1'), 'c1 still running');

$t->done;
done_testing;
