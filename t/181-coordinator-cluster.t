#!/usr/bin/perl
# Three egress-coordinators on one PostgreSQL database behind nginx, with
# the routing of conf/coordinator-cluster.conf.example (addresses, TLS and
# the per-address limit adapted to a loopback test): 300 leases spread over
# the instances (none above 1.5x its share), and both sockets of a lease,
# opened through the front, meet on the instance the lease hashes to.

use strict;
use warnings;

use Test::More;
use HTTP::Tiny;
use JSON::PP;
use Test::Egress qw(slurp spew wait_until);
use Test::Egress::WS;

my $t = Test::Egress->new;
$t->postgres;
my %env = (EGRESS_RATE_MINT => '100000:100000', EGRESS_RATE_FAIL => '100000:100000');
my @c = map { $t->coordinator(name => "c$_", db => 'pg', db_name => 'cluster', env => \%env) } 1 .. 3;

# ---- the front, from the shipped example ---------------------------------------------
my $front = $t->port;
my $prefix = $t->dir . '/front';
mkdir $prefix;
mkdir "$prefix/logs";
my $conf = slurp($t->root . '/conf/coordinator-cluster.conf.example');
my $i = 0;
my %addr = map { ('192.0.2.1' . ++$i . ':8080') => '127.0.0.1:' . $_->port } @c;
my $subs = 0;
$subs += ($conf =~ s/\Q$_\E/$addr{$_}/g) for sort keys %addr;
is($subs, 6, 'example names three instances in both upstreams');
$subs = ($conf =~ s/listen 443 ssl;/listen 127.0.0.1:$front;/);
$subs += ($conf =~ s/^\s*ssl_certificate(?:_key)?\s.*\n//mg);
$subs += ($conf =~ s/rate=20r\/s/rate=100000r\/s/);    # every test request comes from 127.0.0.1
$subs += ($conf =~ s/^worker_processes auto;/worker_processes 1;\ndaemon off;\npid $prefix\/nginx.pid;\nerror_log $prefix\/logs\/error.log info;/m);
is($subs, 5, 'example adapted: listen, TLS files, per-address rate, process settings');
spew("$prefix/nginx.conf", $conf);
$t->spawn('front',
    cmd => [ '/usr/sbin/nginx', '-p', "$prefix/", '-c', "$prefix/nginx.conf", '-e', "$prefix/logs/error.log" ],
    wait_port => $front, nginx_log => "$prefix/logs/error.log");

my $alice = $c[0]->token(owner => 'alice', org => 'acme');
my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 30);
my $JSON = JSON::PP->new;

sub front_api {
    my ($method, $path, $body) = @_;
    my $res = $http->request($method, "http://127.0.0.1:$front$path", {
        headers => { Authorization => "Bearer $alice", 'Content-Type' => 'application/json' },
        (defined $body ? (content => $JSON->encode($body)) : ()) });
    return ($res->{status}, eval { $JSON->decode($res->{content}) });
}

# ---- 300 leases: where do their tickets land? -------------------------------------------
my (@leases, $created);
for my $n (1 .. 300) {
    my ($st, $j) = front_api(POST => '/v1/leases', { ttlSeconds => 3600 });
    push @leases, $j->{id} if $st == 201;
}
is(scalar @leases, 300, '300 leases created through the front');
my $minted = 0;
for my $L (@leases) {
    my ($st) = front_api(POST => "/v1/leases/$L/egress/ticket", { role => 'host' });
    $minted++ if $st == 201 || $st == 200;
}
is($minted, 300, '300 tickets minted through the front');
my (%home, %count);
for my $k (0 .. 2) {
    for my $L ($c[$k]->log =~ /ticket_minted lease=(lease_[A-Za-z0-9_-]+)/g) {
        $home{$L} = $k;
    }
}
$count{ $home{$_} // 'none' }++ for @leases;
is($count{none} // 0, 0, 'every mint landed on some instance');
my ($max) = sort { $b <=> $a } map { $count{$_} // 0 } 0 .. 2;
ok($max <= 150, "no instance above 1.5x its share of 100 (max $max)");
ok(!grep({ !$count{$_} } 0 .. 2), 'every instance got leases');
diag('leases per instance: ' . join(' ', map { $count{$_} // 0 } 0 .. 2));

# ---- both sockets through the front meet on the lease's instance ------------------------
my $met = 0;
for my $L (@leases[0 .. 19]) {
    my (%tk, %ws);
    for my $role (qw(host client)) {
        my ($st, $j) = front_api(POST => "/v1/leases/$L/egress/ticket",
            { role => $role, ($tk{host} ? (sessionID => $tk{host}{sessionID}) : ()) });
        $tk{$role} = $j;
        $ws{$role} = Test::Egress::WS->connect(host => '127.0.0.1', port => $front,
            path => "/v1/leases/$L/egress/$role",
            headers => { Authorization => "Bearer $j->{ticket}" },
            protocols => ['egress.v2']);
    }
    next unless $ws{host} && $ws{client};
    my $hh = $ws{host}->recv_json(5);
    my $ch = $ws{client}->recv_json(5);
    my $peer = $ws{host}->recv_json(5);
    $met++ if $hh && $ch && $ch->{peerConnected} && $peer && $peer->{type} eq 'peer'
        && $c[ $home{$L} ]->log =~ /socket_open lease=$L .*role=client/;
    $_->close for values %ws;
}
is($met, 20, '20 leases: host and client through the front paired on the lease\'s instance');

$t->done;
done_testing;
