#!/usr/bin/perl
# The end-to-end test network itself: the origin sees the operator's address,
# and the lease has no route of its own to the origin.

use strict;
use warnings;

use Test::More;
use Test::Egress;
use Test::Egress::Netns;

plan(skip_all => 'needs root and ip netns') unless Test::Egress::Netns::available();

my $t = Test::Egress->new;
my $n = Test::Egress::Netns->new($t, hosts => { 'origin.test' => '192.0.2.30' });

my $o = $t->origin(listen => '192.0.2.30', port => 8080, wrap => [ $n->wrap('origin') ]);

my ($rc, $out) = $n->run('operator', [ 'curl', '-sS', '--max-time', '5', 'http://origin.test:8080/ip' ]);
is($rc, 0, 'operator reaches the origin by name') or diag($out);
is($out, "203.0.113.20\n", 'origin sees the operator address');

($rc, $out) = $n->run('lease', [ 'curl', '-sS', '--max-time', '3', 'http://192.0.2.30:8080/ip' ]);
isnt($rc, 0, 'lease cannot reach the origin directly');
like($out, qr/unreachable|timed out|Couldn't connect/i, 'lease gets a routing error') or diag($out);

my @names = map { $n->name($_) } qw(net lease operator origin);

$t->done;
$n->destroy;
my $left = `ip netns list`;
ok(!grep({ $left =~ /\b\Q$_\E\b/ } @names), 'namespaces are removed');
ok(!-e '/etc/netns/' . $names[1], 'per-namespace hosts files are removed');

done_testing;
