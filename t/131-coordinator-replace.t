#!/usr/bin/perl
# egress-coordinator: a socket replaced by a newer one of the same role.
# Regression for a heap use-after-free: replacing the only socket of a
# session (no peer attached) freed the session under the new socket.

use strict;
use warnings;

use Test::More;
use Test::Egress;

my $t = Test::Egress->new;
my $c = $t->coordinator;
my $alice = $c->token(owner => 'alice', org => 'acme');
my $L = $c->lease($alice, slug => 'replace')->{id};

for my $role (qw(host client)) {
    my $t1 = $c->ticket($alice, $L, role => $role);
    my $S  = $t1->{sessionID};
    my $w1 = $c->ws($L, $role, ticket => $t1->{ticket}) or BAIL_OUT("$role upgrade refused");
    is($w1->recv_json(5)->{type}, 'hello', "$role: first socket joined a new session");

    my $t2 = $c->ticket($alice, $L, role => $role, sessionID => $S);
    my $w2 = $c->ws($L, $role, ticket => $t2->{ticket});
    my $h = $w2 && $w2->recv_json(5);
    is($h && $h->{sessionID}, $S, "$role: second socket joined the same session");
    my $m = $w1->recv_until(sub { $_[0]{type} eq 'close' }, 5);
    is($m && $m->{code}, 4002, "$role: the replaced socket got 4002");

    my $s = $c->status($alice, $L);
    my $key = $role eq 'host' ? 'hostConnected' : 'clientConnected';
    ok($s->{$key}, "$role: status sees the new socket");
    is($s->{sessionID}, $S, "$role: status keeps the session");

    # The replacement is a working socket: the other role joins and the pair relays.
    my $other = $role eq 'host' ? 'client' : 'host';
    my $to = $c->ticket($alice, $L, role => $other, sessionID => $S);
    my $wo = $c->ws($L, $other, ticket => $to->{ticket});
    ok($wo && $wo->recv_json(5)->{peerConnected}, "$role: the $other sees the new $role");
    my ($cl, $ho) = $role eq 'host' ? ($wo, $w2) : ($w2, $wo);
    $ho->recv_until(sub { $_[0]{json} && $_[0]{json}{type} eq 'peer' }, 5)
        if $role eq 'host';
    $cl->send_json({ type => 'open', id => 7, host => 'example.com', port => 443, window => 65536 });
    my $o = $ho->recv_until(sub { $_[0]{json} && $_[0]{json}{type} eq 'open' }, 5);
    ok($o, "$role: relay works through the replacement");
    $_->close for $cl, $ho;
}

$t->done;
done_testing;
