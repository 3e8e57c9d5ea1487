#!/usr/bin/perl
# The whole path with each side speaking either protocol version: the module
# (egress_bridge_protocol) and the host agent (--protocol) fall back to v1,
# and the coordinator translates between a v1 and a v2 leg. Downloads and
# uploads must arrive intact either way.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);
use Test::Egress qw(slurp wait_until);
use Test::Egress::Origin;

my $t = Test::Egress->new->require_bins('egress', 'egress-coordinator',
    'ngx_stream_egress_module.so');
my $c     = $t->coordinator;
my $token = $c->token(owner => 'vera', org => 'qa');
my $o     = $t->origin;
my $op    = $o->port;
my $dir   = $t->dir;
my $n     = 0;

my $size = 3 * 1024 * 1024 + 17;
my $want = Test::Egress::Origin::pattern($size);
my $upload = join('', map { chr(($_ * 7) % 256) } 0 .. 400_000);
Test::Egress::spew("$dir/upload.bin", $upload);

for my $combo ([ 'v1', 'v2' ], [ 'v2', 'v1' ], [ 'v1', 'v1' ], [ 'auto', 'auto' ]) {
    my ($mp, $ap) = @$combo;
    my $name = "module=$mp agent=$ap";
    $n++;
    my $lease = $c->lease($token, slug => "proto-$n")->{id};
    my $ct    = $c->ticket($token, $lease, role => 'client');
    Test::Egress::spew("$dir/client-$n.ticket", "$ct->{ticket}\n", 0600);
    my $pp = $t->port;

    $t->nginx(name => "nginx-$n", wait_port => $pp, main => "user root;\n", stream => <<"EOF");
    egress_bridge ${\ $c->ws_url($lease, 'client')};
    egress_bridge_ticket_file $dir/client-$n.ticket;
    egress_bridge_state_file $dir/client-$n.state;
    egress_bridge_protocol $mp;
    server {
        listen 127.0.0.1:$pp;
        egress_proxy on;
    }
EOF
    $t->spawn("host-$n", cmd => [ $t->bin('egress'), 'host', '--id', $lease, '--session',
            $ct->{sessionID}, '--allow', "localhost:$op", '--allow-private', '--protocol', $ap ],
        env => { $t->san_env, HOME => $dir, XDG_STATE_HOME => "$dir/state-$n",
            EGRESS_COORDINATOR => $c->url, EGRESS_TOKEN => $token },
        wait_log => qr/connected/);

    my $st;
    ok(wait_until(sub {
        $st = $c->status($token, $lease);
        $st && $st->{hostConnected} && $st->{clientConnected};
    }), "$name: both sides connected");
    my %v = (auto => 'egress.v2', v1 => 'egress.v1', v2 => 'egress.v2');
    is($st->{protocol}{client}, $v{$mp}, "$name: status names the client's version");
    is($st->{protocol}{host},   $v{$ap}, "$name: status names the host's version");

    my ($rc, $body) = $t->run([ 'curl', '-sS', '--max-time', '30', '--proxy', "http://127.0.0.1:$pp",
            "http://localhost:$op/bytes/$size" ], timeout => 60);
    is(length($body), $size, "$name: download length");
    ok($body eq $want, "$name: download content intact");

    ($rc, $body) = $t->run([ 'curl', '-sS', '--max-time', '30', '-p', '--proxy',
            "http://127.0.0.1:$pp", '--data-binary', "\@$dir/upload.bin",
            "http://localhost:$op/echo" ], timeout => 60);
    is($body, sprintf("len=%d sha1=%s\n", length $upload, sha1_hex($upload)),
        "$name: upload through a CONNECT tunnel intact");

    $t->stop("host-$n");
    $t->stop("nginx-$n");
}

$t->done;
done_testing;
