#!/usr/bin/perl
# egress-coordinator: control frames pass queued data. With megabytes of one
# stream's data queued toward a host that is not reading, a new stream's
# `open` reaches the host ahead of that data; a reused stream id's `open`
# never overtakes the old stream's `close`; and every byte still arrives,
# in order.

use strict;
use warnings;

use Digest::SHA qw(sha1_hex);
use Test::More;
use Test::Egress;

my $t = Test::Egress->new;
my $c = $t->coordinator(args => [ '--queue-cap', 64 * 1024 * 1024 ]);
my $alice = $c->token(owner => 'alice', org => 'acme');
my $L = $c->lease($alice, slug => 'prio')->{id};

my $ct = $c->ticket($alice, $L, role => 'client');
my $ht = $c->ticket($alice, $L, role => 'host', sessionID => $ct->{sessionID});
my $cl = $c->ws($L, 'client', ticket => $ct->{ticket}) or BAIL_OUT('client refused');
$cl->recv_json(5);
my $ho = $c->ws($L, 'host', ticket => $ht->{ticket}) or BAIL_OUT('host refused');
$ho->recv_json(5);
$cl->recv_json(5);    # peer connected

$cl->send_json({ type => 'open', id => 1, host => 'example.com', port => 443, window => 1 << 30 });
is($ho->recv_json(5)->{type}, 'open', 'stream 1 opened');
$ho->send_json({ type => 'open_ok', id => 1, window => 1 << 30 });
is($cl->recv_json(5)->{type}, 'open_ok', 'stream 1 answered');

# The host stops reading; 24 MiB of stream 1 queue up (in the kernel's
# socket buffers first, then in the coordinator's queue for the host).
my ($frames, $chunk) = (768, 32 * 1024);
my $sent = '';
for my $i (1 .. $frames) {
    my $body = pack('N', $i) x ($chunk / 4);
    $sent .= $body;
    $cl->send_binary(pack('N', 1) . $body) or BAIL_OUT("send: $!");
}
$cl->send_json({ type => 'close', id => 1 });
$cl->send_json({ type => 'open', id => 1, host => 'example.net', port => 443, window => 65536 });
$cl->send_json({ type => 'open', id => 2, host => 'example.org', port => 443, window => 65536 });

# Now the host reads everything.
my (@order, $got);
while (1) {
    my $m = $ho->recv(30) or last;
    if ($m->{type} eq 'binary') {
        my $id = unpack('N', substr($m->{data}, 0, 4));
        push @order, "data$id";
        $got .= substr($m->{data}, 4);
        next;
    }
    last unless $m->{type} eq 'text';
    my $j = JSON::PP::decode_json($m->{data});
    push @order, "$j->{type}$j->{id}";
    last if (grep { $_ eq 'open1' || $_ eq 'open2' } @order) == 2;    # the reused id's, and 2
}
my %at;
$at{ $order[$_] } //= $_ for 0 .. $#order;
my $data_after =
    defined $at{open2} ? grep { $order[$_] eq 'data1' } ($at{open2} + 1 .. $#order) : 0;
ok(defined $at{open2}, 'the host got the new stream\'s open');
ok($data_after >= 64,
    "... ahead of queued data: $data_after of $frames data frames came after it");
ok(defined $at{close1} && defined $at{open1} && $at{close1} < $at{open1},
    'a reused id\'s open did not overtake the old stream\'s close');
is(length($got // ''), length $sent, 'every byte of stream 1 arrived');
ok(($got // '') eq $sent, '... in order (' . sha1_hex($got // '') . ')');

$t->done;
done_testing;
