#!/usr/bin/perl
# Rate limits that hold across coordinator instances (issue 18): with
# PostgreSQL every token bucket is a row shared by all instances, taken by
# one atomic statement, so spreading calls over the instances gains nothing.
#
# - one token mints round-robin over three instances: exactly `burst`
#   tickets, then 429 (per-process buckets would give 3x burst);
# - failed upgrades from one address spread over two instances: the third,
#   which saw none of them, answers 429;
# - several clients racing on a burst-1 bucket through different instances
#   at once: exactly one mint, 10 rounds;
# - after the refill time a new mint works again;
# - the buckets' table locked (the statement times out): the mint falls
#   back to this instance's own bucket, which still limits, logged once;
#   then the database answers again;
# - the whole PostgreSQL server frozen (SIGSTOP): a mint answers within the
#   call deadline, never hangs.

use strict;
use warnings;

use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use Test::Egress qw(wait_until);
use Test::Egress::WS;

my $t = Test::Egress->new->require_bins('egress-coordinator');
$SIG{PIPE} = 'IGNORE';
my $pg = $t->postgres;
my $slow = $ENV{EGRESS_SAN} ? 3 : 1;

# A slow refill (one token per 5 s) so that no token comes back while a
# phase runs; failed upgrades: 3, then one per 10 s.
my ($RATE, $BURST) = (0.2, 5);
my %env = (EGRESS_RATE_MINT => "$RATE:$BURST", EGRESS_RATE_FAIL => '0.1:3');
my @c = map {
    $t->coordinator(name => "c$_", db => 'pg', db_name => 'rl', env => {%env},
        args => [ '--instance', "c$_" ])
} 1 .. 3;
like($c[0]->log, qr/store_migrated backend=postgresql schema_version=4/, 'the buckets table is migration 4');

# Garbage: a bucket full again (full_at past) is purged by some instance's
# timer, in batches; one that is not full stays. Checked further down.
my ($prc) = $pg->psql('egress_rl', "INSERT INTO ratelimits VALUES "
    . "('test:full', 0, now() - interval '1 hour', now() - interval '1 second'), "
    . "('test:filling', 0, now(), now() + interval '1 hour')");
is($prc, 0, 'two buckets put in by hand');

my $alice = $c[0]->token(owner => 'alice', org => 'acme');
my @leases = map { $c[0]->lease($alice, ttlSeconds => 3600)->{id} } 1 .. 3 * $BURST + 1;

sub mint {
    my ($c, $tok, $lease, %o) = @_;
    my ($st, $j) = $c->api(POST => "/v1/leases/$lease/egress/ticket", $tok, { role => 'host', %o });
    return wantarray ? ($st, $j) : $st;
}

# ---- one token, round-robin over the instances: exactly burst --------------------------
# A lease each, so that only the token's bucket is drawn on.
my $bob = $c[0]->token(owner => 'bob', org => 'acme');
my @bob_leases = map { $c[0]->lease($bob, ttlSeconds => 3600)->{id} } 1 .. 3 * $BURST;
my @st = map { scalar mint($c[$_ % 3], $bob, $bob_leases[$_]) } 0 .. 3 * $BURST - 1;
my $ok = grep { $_ == 201 || $_ == 200 } @st;
is($ok, $BURST, "one token over three instances: $BURST mints succeed, not " . 3 * $BURST)
    or diag("statuses: @st");
is_deeply([ grep { $st[$_] =~ /^20[01]$/ } 0 .. $#st ], [ 0 .. $BURST - 1 ], '... the first ones');
is(scalar(grep { $_ == 429 } @st), 2 * $BURST, '... the rest 429');
my ($s429, $j429) = mint($c[1], $bob, $bob_leases[0]);
is($j429->{message} // '', 'too many tickets for this token', 'the token is what is limited');
my (undef, undef, $raw) = $c[2]->api(GET => '/metrics');
like($raw, qr/^egress_rate_limited_total [1-9]/m, 'counted in /metrics');

# The per-lease bucket too: one lease, a different token (org admins) per mint.
my @toks = map { $c[0]->token(owner => "u$_", org => 'acme', admin => 1) } 1 .. 3 * $BURST;
my $L = $c[0]->lease($alice, ttlSeconds => 3600)->{id};
@st = map { scalar mint($c[$_ % 3], $toks[$_], $L) } 0 .. 3 * $BURST - 1;
is(scalar(grep { /^20[01]$/ } @st), $BURST, "one lease over three instances: $BURST mints")
    or diag("statuses: @st");

# No secret in the table: keys are hashes, ids and addresses.
my ($rc, $keys) = $pg->psql('egress_rl', 'SELECT key FROM ratelimits ORDER BY key');
is($rc, 0, 'the buckets are rows in PostgreSQL');
like($keys, qr/^mint:token:[0-9a-f]{64}$/m, 'a token bucket is keyed by the token hash');
unlike($keys, qr/egk_/, 'no token in the table');

# ---- after the refill time a mint works again ------------------------------------------------
my $t0 = time;
my ($back, $n) = (0, 0);
ok(wait_until(sub {
    $back = mint($c[ $n % 3 ], $bob, $bob_leases[ $n++ % @bob_leases ]);
    return $back =~ /^20[01]$/;
}, 15 * $slow), 'the token mints again once its bucket refilled');
my $waited = time - $t0;
diag(sprintf('refilled after %.1f s', $waited));
is(mint($c[0], $bob, $bob_leases[1]), 429, '... one token, not a full bucket');

# ---- failed upgrades: the limit follows the address across instances --------------------------
# Unknown lease names charge only the address (fail:addr:127.0.0.1); a bad
# ticket for a real lease charges the address and the lease, in one statement.
my @fail = map {
    my (undef, $s) = $c[ $_ % 2 ]->ws($_ < 2 ? "lease_nosuch$_" : $leases[1], 'host',
        ticket => 'egt_bogus');
    $s;
} 0 .. 2;
is_deeply(\@fail, [ 404, 404, 401 ], 'three failed upgrades on c1 and c2 (two unknown leases, a bad ticket)')
    or diag("statuses: @fail");
my (undef, $rows) = $pg->psql('egress_rl',
    "SELECT key || ' ' || round(tokens) FROM ratelimits WHERE key LIKE 'fail:%' ORDER BY key");
is($rows // '', "fail:addr:127.0.0.1 0\nfail:lease:$leases[1] 2\n",
    'the address paid three times, the lease once');
my $h = $c[0]->ticket($alice, $leases[0], role => 'host');
my ($w, $s) = $c[2]->ws($leases[0], 'host', ticket => $h->{ticket});
is($s, 429, 'c3, which saw none of them, refuses the address with 429');
like($c[2]->log, qr/upgrade_refused .*addr=127\.0\.0\.1 status=429 error=rate_limited/, '... logged');

# ---- a race on a burst-1 bucket: exactly one mint ----------------------------------------------
$_->{env}{EGRESS_RATE_MINT} = '0.05:1' for @c;
$_->restart for @c;
my $ROUNDS = 10;
my $one = 0;
for my $r (1 .. $ROUNDS) {
    my $tok = $c[0]->token(owner => "race$r", org => 'acme');
    my @ls = map { $c[0]->lease($tok, ttlSeconds => 600)->{id} } 1 .. 6;
    pipe(my $rd, my $wr) or die "pipe: $!";          # the start signal: closed by the parent
    pipe(my $ready_rd, my $ready_wr) or die "pipe: $!";  # a byte from each child, waiting
    my @kids;
    for my $i (0 .. $#ls) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $wr;
            close $ready_rd;
            syswrite($ready_wr, 'r');
            sysread($rd, my $x, 1);
            my $st = mint($c[ $i % 3 ], $tok, $ls[$i]);
            POSIX::_exit($st =~ /^20[01]$/ ? 0 : $st == 429 ? 1 : 2);
        }
        push @kids, $pid;
    }
    close $rd;
    close $ready_wr;
    my $ready = '';
    while (length($ready) < @kids) {
        sysread($ready_rd, $ready, 16, length $ready) or last;
    }
    close $ready_rd;
    close $wr;    # all go
    my %by;
    for my $pid (@kids) {
        waitpid($pid, 0);
        $by{ $? >> 8 }++;
    }
    if (($by{0} // 0) == 1 && ($by{1} // 0) == 5) {
        $one++;
    } else {
        diag("round $r: " . join(' ', map {"$_=$by{$_}"} sort keys %by));
    }
}
is($one, $ROUNDS, "six clients on three instances racing on a burst-1 bucket: one mint, $ROUNDS rounds");

my $keys_now = sub { (undef, my $k) = $pg->psql('egress_rl', 'SELECT key FROM ratelimits'); $k // '' };
ok(wait_until(sub { $keys_now->() !~ /^test:full$/m }, 15 * $slow), 'a full bucket\'s row is purged');
like($keys_now->(), qr/^test:filling$/m, '... one still filling is kept');

# ---- the buckets' table locked: each instance falls back to its own bucket ---------------------
my $tok = $c[0]->token(owner => 'carol', org => 'acme');
my @cl = map { $c[0]->lease($tok, ttlSeconds => 600)->{id} } 1 .. 4;
$t->spawn('locker',
    cmd => [ "$pg->{bin}/psql", '-X', '-q', '-d', $pg->uri('egress_rl'), '-c',
        'BEGIN; LOCK TABLE ratelimits IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120)' ],
    @{ $pg->{as} });
ok(wait_until(sub {
    my (undef, $out) = $pg->psql('egress_rl',
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid=l.relation "
        . "WHERE c.relname='ratelimits' AND l.mode='AccessExclusiveLock' AND l.granted");
    return ($out // '') =~ /^1$/m;
}, 10), 'the buckets table is locked by another session');
my $t1 = time;
my $st1 = mint($c[0], $tok, $cl[0]);
my $d1 = time - $t1;
like($st1, qr/^20[01]$/, 'a mint while the table is locked succeeds from the local bucket');
cmp_ok($d1, '<', 3 + 2 * $slow, sprintf('... within the call deadline (%.2f s)', $d1));
my $t2 = time;
is(mint($c[0], $tok, $cl[1]), 429, 'the local bucket still limits (burst 1)');
cmp_ok(time - $t2, '<', 1 * $slow, sprintf('... at once: the database is not asked again for a second (%.2f s)', time - $t2));
like($c[0]->log, qr/ratelimit_local error="the database did not answer/, 'the fallback is logged');
is(mint($c[0], $tok, $cl[2]), 429, 'later mints: still limited');
my @lines = $c[0]->log =~ /(ratelimit_local)/g;
is(scalar @lines, 1, '... logged once for the outage');
# (the backend sleeps on, holding the lock, when only its psql goes)
$pg->psql('egress_rl', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    . "WHERE query LIKE '%LOCK TABLE ratelimits%' AND pid <> pg_backend_pid()");
$t->stop('locker');
ok(wait_until(sub { mint($c[0], $tok, $cl[3]); $c[0]->log =~ /ratelimit_global local_ms=\d+/ }, 10 * $slow),
    'the table free again: the buckets are global again (logged)');

# ---- the whole server frozen: answers within the deadline ---------------------------------------
sub pg_procs {
    my $pm = $t->pid('postgres');
    my @p;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        my ($pid, $ppid) = $line =~ /^(\d+) .*\)\s+\S\s+(\d+)/ or next;
        push @p, $pid if $pid == $pm || $ppid == $pm;
    }
    return @p;
}
my @frozen = pg_procs();
kill 'STOP', $t->pid('postgres');
kill 'STOP', @frozen;
my $t3 = time;
my $st3 = mint($c[1], $tok, $cl[0]);
my $d3 = time - $t3;
is($st3, 500, 'PostgreSQL frozen: a mint fails (the token lookup needs the database)');
cmp_ok($d3, '<', 3 + 2 * $slow, sprintf('... within the call deadline, not a hang (%.2f s)', $d3));
my $t4 = time;
mint($c[1], $tok, $cl[1]);
cmp_ok(time - $t4, '<', 1 * $slow, sprintf('... and the next at once (%.2f s)', time - $t4));
kill 'CONT', @frozen;
ok(wait_until(sub { mint($c[1], $tok, $cl[0]) != 500 }, 20), 'thawed: minting works again');

ok($t->running($_->name), $_->name . ' still running') for @c;
$t->done;
done_testing;
