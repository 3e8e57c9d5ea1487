#!/usr/bin/perl
# egress-coordinator on PostgreSQL: two instances sharing one database (a
# scratch server from Debian's packages). The same ticket presented to both
# at once upgrades exactly one socket (50 rounds), a resume secret likewise;
# state written through one instance is seen by the other; migrations run
# once; expiry marked by one instance closes the other's sockets; /metrics
# names each instance; a newer schema, a dead server and a password in the
# URI are handled.

use strict;
use warnings;

use Test::More;
use Test::Egress qw(wait_until);

my $t = Test::Egress->new;
my $pg = $t->postgres;
my %env = (EGRESS_RATE_MINT => '1000:1000', EGRESS_RATE_FAIL => '1000:1000');
my $c1 = $t->coordinator(name => 'c1', db => 'pg', db_name => 'shared', env => \%env);
my $c2 = $t->coordinator(name => 'c2', db => 'pg', db_name => 'shared', env => \%env);
is($c1->db, $c2->db, 'both instances use one database');
like($c1->db, qr{^postgresql://}, 'a postgresql:// URI');

like($c1->log, qr/store_migrated backend=postgresql schema_version=1\b/, 'first instance migrated');
unlike($c2->log, qr/store_migrated/, 'second instance found the schema in place');
unlike($c2->log, qr/NOTICE/, 'without a NOTICE from PostgreSQL on stderr');
my $desc = quotemeta('db=postgresql://127.0.0.1:' . $pg->port . '/egress_shared');
like($c1->log, qr/listening .*$desc/, 'listening line names host, port and database');

# The lease may be owned by the other instance, which is asked to let go
# and does within a poll (100 ms): like an agent, retry the upgrade on 503
# (the ticket is not spent by a 503).
sub ws_owned {
    my ($c, @args) = @_;
    for (1 .. 50) {
        my ($w, $st) = $c->ws(@args);
        return $w if $w || $st != 503;
        select(undef, undef, undef, 0.1);
    }
    return undef;
}

# ---- one state, two instances ------------------------------------------------------
my $alice = $c1->token(owner => 'alice', org => 'acme');
my $L = $c2->lease($alice, slug => 'crab')->{id};    # token from c1's CLI, lease via c2
my ($st, $j) = $c1->api(GET => "/v1/leases/$L", $alice);
is($st, 200, 'lease created through c2 is visible on c1');
is($j->{slug}, 'crab', 'same lease');
($st) = $c1->api(POST => '/v1/leases', $alice, { slug => 'crab', ttlSeconds => 600 });
is($st, 409, 'slug taken through the other instance: 409');

my $tk = $c1->ticket($alice, $L, role => 'client');
my $ws = ws_owned($c2, $L, 'client', ticket => $tk->{ticket});
ok($ws, 'ticket minted on c1 upgrades on c2');
my $hello = $ws->recv_json(5);
is($hello->{sessionID}, $tk->{sessionID}, 'hello names the session minted on c1');
$ws->close;

# ---- the same ticket to both at once: exactly one upgrade --------------------------
my ($rounds, $one_winner, %wins, %why) = (50, 0);
for my $r (1 .. $rounds) {
    my $tk = $c1->ticket($alice, $L, role => 'client');
    my @order = $r % 2 ? ($c1, $c2) : ($c2, $c1);
    my @h = map { $_->ws_start($L, 'client', ticket => $tk->{ticket}) } @order;
    my (@ws, @st, @body);
    for my $h (@h) {
        my ($w, $s, $b) = Test::Egress::WS->connect_finish($h);
        push @ws, $w;
        push @st, $s;
        push @body, $b;
    }
    my @won = grep { $st[$_] == 101 } 0, 1;
    # The loser either lost the spend (401) or, the lease being owned by the
    # other instance at that moment, was told to retry there (503).
    my @lost = grep { $st[$_] == 401 || $st[$_] == 503 } 0, 1;
    if (@won == 1 && @lost == 1) {
        $one_winner++;
        $wins{ $order[ $won[0] ]->name }++;
        $why{$1}++ if ($body[ $lost[0] ] // '') =~ /"message":"([^"]*)"/;
    } else {
        diag("round $r: HTTP $st[0] and $st[1]");
    }
    $_->close for grep {defined} @ws;
}
is($one_winner, $rounds, "$rounds rounds: one upgrade and one refusal (401 or 503) each");
is_deeply([ grep { !/^ticket already used$|^lease is moving from instance \S+; retry$/ } keys %why ], [],
    'the loser hears "ticket already used" or "lease is moving"') or diag(join ', ', keys %why);
diag('wins: ' . join(', ', map {"$_=$wins{$_}"} sort keys %wins));

# ---- a resume secret presented to both at once: one resumes ------------------------
my $resumed = 0;
for my $r (1 .. 10) {
    my $tk = $c1->ticket($alice, $L, role => 'host');
    my $w = ws_owned($c1, $L, 'host', ticket => $tk->{ticket}) or BAIL_OUT('host upgrade');
    my $secret = $w->recv_json(5)->{resume};
    $w->close;
    # The session must have seen the socket go before the secret is usable again.
    wait_until(sub { !(($c1->status($alice, $L) // {})->{hostConnected}) }, 10);
    my @h = map { $_->ws_start($L, 'host', resume => $secret) } ($r % 2 ? ($c1, $c2) : ($c2, $c1));
    my @st;
    for my $h (@h) {
        my ($x, $s) = Test::Egress::WS->connect_finish($h);
        push @st, $s;
        $x->close if $x;
    }
    if ((grep { $_ == 101 } @st) == 1 && (grep { $_ == 401 || $_ == 503 } @st) == 1) {
        $resumed++;
    } else {
        diag("resume round $r: HTTP @st");
    }
}
is($resumed, 10, 'resume secret raced on both instances: one resumes, 10 rounds');

# ---- expiry marked by one instance closes the sockets on the other -------------------
# c2 relays a short lease and is frozen while c1's timer marks it expired;
# thawed, c2 must still close its sockets with 4003 (c1 has none to close).
# c2 is restarted first so that it is frozen before its timer ever fired:
# its expiry scans must cover what happened since it started, not since its
# first tick (which, on an idle machine, came after the freeze and found
# nothing due).
$c2->restart;
my $X = $c1->lease($alice, slug => 'short', ttlSeconds => 4)->{id};
my $xh = $c1->ticket($alice, $X, role => 'host');
my $xc = $c1->ticket($alice, $X, role => 'client', sessionID => $xh->{sessionID});
my %xs = map { $_ => scalar ws_owned($c2, $X, $_, ticket => ($_ eq "host" ? $xh : $xc)->{ticket}) } qw(host client);
ok($xs{host} && $xs{client}, 'both sockets of a short lease on c2');
$xs{$_}->recv_json(5) for qw(host client);
kill 'STOP', $t->pid('c2');
ok(wait_until(sub { $c1->log =~ /lease_expired lease=$X/ }, 15), 'c1 marks the lease expired');
kill 'CONT', $t->pid('c2');
for my $role (qw(host client)) {
    my $m = $xs{$role}->recv_until(sub { $_[0]{type} eq 'close' }, 10);
    is($m && $m->{code}, 4003, "$role socket on c2 closed with 4003 although c1 expired the lease");
}
unlike($c2->log, qr/lease_expired lease=$X/, 'c2 did not mark it (c1 had)');

# ---- ... also behind more than one scan's page of other expiries ------------------
# 300 leases that expire while c2 is frozen, all before Y: c2's first scan
# after thawing sees only the oldest STORE_DUE_MAX (256) of them; the next
# scans must start where that page ended, not at "now", or Y's sockets stay.
my $Y = $c1->lease($alice, slug => 'paged', ttlSeconds => 12)->{id};
my $yh = $c1->ticket($alice, $Y, role => 'host');
my $yc = $c1->ticket($alice, $Y, role => 'client', sessionID => $yh->{sessionID});
my %ys = map { $_ => scalar $c2->ws($Y, $_, ticket => ($_ eq "host" ? $yh : $yc)->{ticket}) } qw(host client);
ok($ys{host} && $ys{client}, 'both sockets of lease Y on c2');
$ys{$_}->recv_json(5) for qw(host client);
kill 'STOP', $t->pid('c2');
my $filled = 0;
for my $i (1 .. 300) {
    my ($st) = $c1->api(POST => '/v1/leases', $alice, { slug => "fill$i", ttlSeconds => 2 });
    $filled++ if $st =~ /^20[01]$/;
}
is($filled, 300, '300 short leases created while c2 is frozen');
ok(wait_until(sub { $c1->log =~ /lease_expired lease=$Y/ }, 30), 'c1 marks them and Y expired');
kill 'CONT', $t->pid('c2');
for my $role (qw(host client)) {
    my $m = $ys{$role}->recv_until(sub { $_[0]{type} eq 'close' }, 15);
    is($m && $m->{code}, 4003, "$role socket of Y on c2 closed behind 300 other expiries");
}

# ---- /metrics names the instance ------------------------------------------------------
my %seen;
for my $c ($c1, $c2) {
    my ($name) = $c->log =~ /listening instance=(\S+)/;
    my (undef, undef, $raw) = $c->api(GET => '/metrics');
    like($raw // '', qr/^egress_coordinator_info\{coordinator="\Q$name\E",version="[^"]+"\} 1$/m,
        $c->name . ": egress_coordinator_info names the instance ($name)");
    $seen{$name}++;
}
is(scalar keys %seen, 2, 'two instances, two names (default HOSTNAME:PORT)');

# ---- restart: no second migration; a newer schema is refused -------------------------
my @migrated = $c1->log =~ /store_migrated/g;
$c1->restart;
my @again = $c1->log =~ /store_migrated/g;
is(scalar @again, scalar @migrated, 'restart migrates nothing');
($st) = $c1->api(GET => "/v1/leases/$L", $alice);
is($st, 200, 'state survives the restart');

my ($rc, $out) = $pg->psql('egress_shared', q{SELECT value FROM meta WHERE key='schema_version'});
my ($schema) = $out =~ /(\d+)/;
($rc, $out) = $pg->psql('egress_shared', q{UPDATE meta SET value='99' WHERE key='schema_version'});
is($rc, 0, 'schema version set to 99') or diag($out);
($rc, $out) = $c1->admin('token', 'list');
isnt($rc, 0, 'a database from a newer build is refused');
like($out, qr/schema version 99, this build knows up to $schema\b/, 'and the error says why');
$pg->psql('egress_shared', qq{UPDATE meta SET value='$schema' WHERE key='schema_version'});

# ---- a password in the URI never reaches the log; a dead server is an error -----------
(my $pw_uri = $pg->database('pw')) =~ s{//egress\@}{//egress:sekrit-pw\@};
my $c3 = $t->coordinator(name => 'c3', db => $pw_uri, args => [ '--instance', 'coord-3.example' ]);
like($c3->log, qr/listening .*db=postgresql:\/\/127\.0\.0\.1:\d+\/egress_pw /, 'c3 listening');
like(($c3->api(GET => '/metrics'))[2] // '',
    qr/^egress_coordinator_info\{coordinator="coord-3\.example",version="[^"]+"\} 1$/m,
    '--instance NAME is the coordinator label of egress_coordinator_info');
unlike($c3->log, qr/sekrit/, 'the password is not logged');
$c3->stop;

my $dead = $t->port;
($rc, $out) = $t->run([ $t->bin('egress-coordinator'), '--db',
        "postgresql://egress:sekrit-pw\@127.0.0.1:$dead/x", 'token', 'list' ],
    env => { $t->san_env });
is($rc, 1, 'no server: exit 1');
like($out, qr/store_error op=open backend=postgresql error="[^"]*127\.0\.0\.1/,
    'one-line error naming the address');
unlike($out, qr/sekrit/, 'without the password');
($rc, $out) = $t->run([ $t->bin('egress-coordinator'), '--db',
        "postgresql://egress:sekrit%zz\@127.0.0.1:$dead/x", 'token', 'list' ],
    env => { $t->san_env });
is($rc, 1, 'malformed URI: exit 1');
like($out, qr/store_error op=open backend=postgresql error="invalid percent-encoded/,
    'libpq says what is wrong');
unlike($out, qr/sekrit/, 'and the password it quotes is masked');

# ---- the database goes away and comes back under a running instance ---------------
$t->stop('postgres');
($st) = $c2->api(GET => "/v1/leases/$L", $alice);
is($st, 500, 'database down: 500, no crash');
$t->spawn('postgres', %{ $t->{procs}{postgres} }{qw(cmd as_user stop_signal)},
    wait_port => $pg->port, timeout => 60);
ok(wait_until(sub { ($c2->api(GET => "/v1/leases/$L", $alice))[0] == 200 }, 20),
    'database back: the instance reconnects');
like($c2->log, qr/store_reconnected/, 'and logs it');
ok(wait_until(sub { $c2->log =~ /owner_reconnected instance=/ }, 20),
    'the ownership connection (heartbeat, LISTEN) is back too');
ok($t->running('c2'), 'c2 still running');

$t->done;
done_testing;
