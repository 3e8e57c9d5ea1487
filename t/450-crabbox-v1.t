#!/usr/bin/perl
# v1 is crabbox's wire format (issue 15): a peer that speaks it byte for byte
# (Test::Egress::Crab: string ids, string ports, "error" members, omitted
# bodies, no subprotocol, no hello) works with each of our parts through our
# coordinator, and every transfer arrives intact:
#   - our module (v1 forced, and auto) + a crabbox-style host agent;
#   - a crabbox-style client + our host agent (--protocol v1, and auto);
#   - a crabbox-style client + a crabbox-style host (the coordinator relays);
#   - the same in a session under an id the client proposed, as crabbox's CLI
#     does (both tickets meet in it, a replaced or stopped one gets 409), and
#     our module and agent (v2) in such a session.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);
use JSON::PP;
use Time::HiRes ();
use Test::Egress qw(wait_until);
use Test::Egress::Crab;
use Test::Egress::Origin;

$SIG{PIPE} = 'IGNORE';    # a write to a socket the coordinator dropped fails, not kills

my $t = Test::Egress->new->require_bins('egress', 'egress-coordinator',
    'ngx_stream_egress_module.so');
my $c     = $t->coordinator;
my $token = $c->token(owner => 'crab', org => 'qa');
my $o     = $t->origin;
my $op    = $o->port;
my $dir   = $t->dir;
my $n     = 0;

my $size = 4 * 1024 * 1024 + 5;
my $want = Test::Egress::Origin::pattern($size);
my $upload = join('', map { chr(($_ * 13) % 256) } 0 .. 3 * 1024 * 1024);
Test::Egress::spew("$dir/upload.bin", $upload);

sub both_connected {
    my ($lease) = @_;
    return wait_until(sub {
        my $st = $c->status($token, $lease);
        $st && $st->{hostConnected} && $st->{clientConnected};
    });
}

# ---- our module + a crabbox-style host ------------------------------------
for my $mp ('v1', 'auto') {
    $n++;
    my $name  = "module=$mp + crabbox host";
    my $lease = $c->lease($token, slug => "crab-$n")->{id};
    my $ct    = $c->ticket($token, $lease, role => 'client');
    my $ht    = $c->ticket($token, $lease, role => 'host', sessionID => $ct->{sessionID});
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
    my $h = Test::Egress::Crab->start_host($t, name => "crabhost-$n",
        url => $c->ws_url($lease, 'host'), ticket => $ht->{ticket}, deny => ['denied.test']);
    like($h->log, qr/crab host ready protocol=-/, "$name: no subprotocol, so v1");
    ok(both_connected($lease), "$name: both sides connected");

    my ($rc, $body) = $t->run([ 'curl', '-sS', '--max-time', '60', '--proxy',
            "http://127.0.0.1:$pp", "http://localhost:$op/bytes/$size" ], timeout => 90);
    is(length($body), $size, "$name: absolute-form download length");
    ok($body eq $want, "$name: absolute-form download intact");

    ($rc, $body) = $t->run([ 'curl', '-sS', '--max-time', '60', '-p', '--proxy',
            "http://127.0.0.1:$pp", "http://localhost:$op/bytes/$size" ], timeout => 90);
    ok($body eq $want, "$name: download through a CONNECT tunnel intact");

    ($rc, $body) = $t->run([ 'curl', '-sS', '--max-time', '60', '-p', '--proxy',
            "http://127.0.0.1:$pp", '--data-binary', "\@$dir/upload.bin",
            "http://localhost:$op/echo" ], timeout => 90);
    is($body, sprintf("len=%d sha1=%s\n", length $upload, sha1_hex($upload)),
        "$name: 3 MiB upload intact");

    my $out;
    ($rc, $out) = $t->run([ 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}',
            '--max-time', '30', '--proxy', "http://127.0.0.1:$pp", "http://denied.test/" ],
        timeout => 60);
    is($out, '403', "$name: crabbox's \"host not allowed\" is a 403");
    like($h->log, qr/crab host: open conn_[0-9a-z]+ localhost:$op/,
        "$name: the host saw our ids in crabbox's shape");

    $t->stop("crabhost-$n");
    $t->stop("nginx-$n");
}

# ---- a crabbox-style client + our host agent -------------------------------
for my $ap ('v1', 'auto') {
    $n++;
    my $name  = "crabbox client + agent=$ap";
    my $lease = $c->lease($token, slug => "crab-$n")->{id};
    my $ct    = $c->ticket($token, $lease, role => 'client');
    my $ws    = Test::Egress::Crab->client($c->ws_url($lease, 'client'), $ct->{ticket});
    ok($ws && $ws->protocol eq '', "$name: client upgraded without a subprotocol");
    $t->spawn("host-$n", cmd => [ $t->bin('egress'), 'host', '--id', $lease, '--session',
            $ct->{sessionID}, '--allow', "localhost:$op", '--allow-private', '--protocol', $ap ],
        env => { $t->san_env, HOME => $dir, XDG_STATE_HOME => "$dir/state-$n",
            EGRESS_COORDINATOR => $c->url, EGRESS_TOKEN => $token },
        wait_log => qr/connected/);
    ok(both_connected($lease), "$name: both sides connected");

    my $id = Test::Egress::Crab::conn_id();
    my ($ans, $got) = Test::Egress::Crab::request($ws, 'localhost', $op,
        "GET /bytes/$size HTTP/1.1\r\nHost: localhost:$op\r\nConnection: close\r\n\r\n", id => $id);
    is_deeply($ans, { type => 'open_ok', id => $id }, "$name: open_ok under the client's string id");
    my ($head, $payload) = split /\r\n\r\n/, $got, 2;
    like($head // '', qr{^HTTP/1\.1 200}, "$name: response head");
    ok(defined $payload && $payload eq $want, "$name: 4 MiB download intact");

    my $req = "POST /echo HTTP/1.1\r\nHost: localhost:$op\r\nContent-Length: "
        . length($upload) . "\r\nConnection: close\r\n\r\n" . $upload;
    ($ans, $got) = Test::Egress::Crab::request($ws, 'localhost', $op, $req);
    like($got, qr/len=${\ length $upload} sha1=${\ sha1_hex($upload)}\n\z/, "$name: 3 MiB upload intact");

    $id = Test::Egress::Crab::conn_id();
    ($ans) = Test::Egress::Crab::request($ws, 'example.com', 443, '', id => $id);
    is($ans && $ans->{type}, 'error', "$name: a destination off the allowlist is refused");
    is($ans && $ans->{id}, $id, "$name: ... under the client's id");
    like($ans && $ans->{error}, qr/^not allowed/, "$name: ... with the text in \"error\"");

    $ws->close;
    $t->stop("host-$n");
}

# ---- crabbox-style client + crabbox-style host through our coordinator ----
{
    $n++;
    my $name  = 'crabbox client + crabbox host';
    my $lease = $c->lease($token, slug => "crab-$n")->{id};
    my $ct    = $c->ticket($token, $lease, role => 'client');
    my $ht    = $c->ticket($token, $lease, role => 'host', sessionID => $ct->{sessionID});
    my $ws    = Test::Egress::Crab->client($c->ws_url($lease, 'client'), $ct->{ticket});
    my $h     = Test::Egress::Crab->start_host($t, name => "crabhost-$n",
        url => $c->ws_url($lease, 'host'), ticket => $ht->{ticket},
        ticket_header => 'X-Crabbox-Bridge-Ticket');
    ok(both_connected($lease), "$name: both sides connected");
    # every member crabbox's status has, with crabbox's JSON types
    my $st = $c->status($token, $lease);
    my %type = (leaseID => 's', slug => 's', active => 'b', sessionID => 's', profile => 's',
        allow => 'a', hostConnected => 'b', clientConnected => 'b', createdAt => 's', updatedAt => 's');
    my @bad = grep {
        my $v = $st->{$_};
        !defined $v || ($type{$_} eq 'b' ? !JSON::PP::is_bool($v) : $type{$_} eq 'a' ? ref $v ne 'ARRAY' : ref $v)
    } sort keys %type;
    is("@bad", '', "$name: status carries crabbox's members (leaseID slug active sessionID ...)");
    my ($ans, $got) = Test::Egress::Crab::request($ws, 'localhost', $op,
        "GET /bytes/$size HTTP/1.1\r\nHost: localhost:$op\r\nConnection: close\r\n\r\n");
    is($ans && $ans->{type}, 'open_ok', "$name: open_ok");
    my (undef, $payload) = split /\r\n\r\n/, $got, 2;
    ok(defined $payload && $payload eq $want, "$name: 4 MiB download intact");
    $ws->close;
    $t->stop("crabhost-$n");
}

# ---- a session under an id crabbox's CLI proposes --------------------------
# `crabbox egress start` makes "egress_<base36 of unix nanos>" and mints the
# client and then the host ticket with it: both must meet in one session
# under that very id; once another session replaced it, it gets 409.
{
    $n++;
    my $name  = 'crabbox-proposed session id';
    my $lease = $c->lease($token, slug => "crab-$n")->{id};
    my $sid   = 'egress_' . Test::Egress::Crab::base36(int(Time::HiRes::time() * 1e9));
    my $ct    = $c->ticket($token, $lease, role => 'client', sessionID => $sid);
    is($ct->{sessionID}, $sid, "$name: the client ticket is for the proposed id");
    my $ht = $c->ticket($token, $lease, role => 'host', sessionID => $sid, allow => ["localhost:$op"]);
    is($ht->{sessionID}, $sid, "$name: the host ticket joins it");
    my $ws = Test::Egress::Crab->client($c->ws_url($lease, 'client'), $ct->{ticket});
    my $h  = Test::Egress::Crab->start_host($t, name => "crabhost-$n",
        url => $c->ws_url($lease, 'host'), ticket => $ht->{ticket});
    ok(both_connected($lease), "$name: both sides connected");
    my $st = $c->status($token, $lease);
    is($st->{sessionID}, $sid, "$name: status shows the proposed id");
    is_deeply($st->{allow}, ["localhost:$op"], "$name: the host ticket's allowlist is the session's");
    like($c->log, qr/session_created lease=\Q$lease\E session=\Q$sid\E generation=\d+ proposed=1/,
        "$name: one session created under it");
    my @created = $c->log =~ /session_created lease=\Q$lease\E /g;
    is(scalar @created, 1, "$name: ... and only one");

    my ($ans, $got) = Test::Egress::Crab::request($ws, 'localhost', $op,
        "GET /bytes/$size HTTP/1.1\r\nHost: localhost:$op\r\nConnection: close\r\n\r\n");
    is($ans && $ans->{type}, 'open_ok', "$name: open_ok");
    my (undef, $payload) = split /\r\n\r\n/, $got, 2;
    ok(defined $payload && $payload eq $want, "$name: 4 MiB download intact");
    my $req = "POST /echo HTTP/1.1\r\nHost: localhost:$op\r\nContent-Length: "
        . length($upload) . "\r\nConnection: close\r\n\r\n" . $upload;
    ($ans, $got) = Test::Egress::Crab::request($ws, 'localhost', $op, $req);
    like($got, qr/len=${\ length $upload} sha1=${\ sha1_hex($upload)}\n\z/, "$name: 3 MiB upload intact");

    # crabbox's host daemon reconnects with the same id: still the same session
    my ($code, $j) = $c->api(POST => "/v1/leases/$lease/egress/ticket", $token,
        { role => 'host', sessionID => $sid });
    is("$code " . ($j->{sessionID} // ''), "201 $sid", "$name: a later ticket for it joins the session");
    ok($t->running("crabhost-$n"), "$name: ... without disturbing the attached host");

    # shapes we refuse: too short, bad characters, and our own shape unsigned
    for my $bad ('egress_ab', 'egress_a b c d', 'egress_1.5.forged') {
        ($code, $j) = $c->api(POST => "/v1/leases/$lease/egress/ticket", $token,
            { role => 'host', sessionID => $bad });
        is("$code " . ($j->{message} // ''), '400 malformed sessionID', "$name: \"$bad\" is refused");
    }

    # `crabbox egress start` again: a new id replaces the session
    my $sid2 = "${sid}x";
    my $ct2 = $c->ticket($token, $lease, role => 'client', sessionID => $sid2);
    is($ct2->{sessionID}, $sid2, "$name: a second proposed id starts a new session");
    ok(wait_until(sub { !$t->running("crabhost-$n") }, 10), "$name: the old session's host is closed");
    ($code, $j) = $c->api(POST => "/v1/leases/$lease/egress/ticket", $token,
        { role => 'host', sessionID => $sid });
    is("$code " . ($j->{error} // ''), '409 egress_session_replaced',
        "$name: the replaced id gets 409, it cannot come back");
    ($code) = $c->api(POST => "/v1/leases/$lease/egress/ticket", $token, { role => 'client' });
    is($code, 201, "$name: a session of ours replaces the proposed one");
    ($code, $j) = $c->api(POST => "/v1/leases/$lease/egress/ticket", $token,
        { role => 'host', sessionID => $sid2 });
    is("$code " . ($j->{error} // ''), '409 egress_session_replaced', "$name: ... and fences it too");
    my (undef, $ust) = $c->ws($lease, 'client', ticket => $ct2->{ticket}, protocols => []);
    is($ust, 409, "$name: an unused ticket of the replaced id cannot attach");
    my $sid3 = "${sid}y";
    $c->ticket($token, $lease, role => 'client', sessionID => $sid3);
    ($code) = $c->api(DELETE => "/v1/leases/$lease/egress", $token);
    is($code, 200, "$name: the proposed session can be stopped");
    ($code, $j) = $c->api(POST => "/v1/leases/$lease/egress/ticket", $token,
        { role => 'host', sessionID => $sid3 });
    is("$code " . ($j->{error} // ''), '409 egress_session_stopped', "$name: a stopped one stays stopped");
    $ws->close;
}

# ---- our module and agent (v2) in a session under a crabbox-proposed id ---
{
    $n++;
    my $name  = 'our parts, crabbox-proposed id';
    my $lease = $c->lease($token, slug => "crab-$n")->{id};
    my $sid   = 'egress_' . Test::Egress::Crab::base36(int(Time::HiRes::time() * 1e9));
    my $ct    = $c->ticket($token, $lease, role => 'client', sessionID => $sid);
    Test::Egress::spew("$dir/client-$n.ticket", "$ct->{ticket}\n", 0600);
    my $pp = $t->port;
    $t->nginx(name => "nginx-$n", wait_port => $pp, main => "user root;\n", stream => <<"EOF");
    egress_bridge ${\ $c->ws_url($lease, 'client')};
    egress_bridge_ticket_file $dir/client-$n.ticket;
    egress_bridge_state_file $dir/client-$n.state;
    server {
        listen 127.0.0.1:$pp;
        egress_proxy on;
    }
EOF
    $t->spawn("host-$n", cmd => [ $t->bin('egress'), 'host', '--id', $lease, '--session', $sid,
            '--allow', "localhost:$op", '--allow-private' ],
        env => { $t->san_env, HOME => $dir, XDG_STATE_HOME => "$dir/state-$n",
            EGRESS_COORDINATOR => $c->url, EGRESS_TOKEN => $token },
        wait_log => qr/connected/);
    ok(both_connected($lease), "$name: both sides connected");
    my $st = $c->status($token, $lease);
    is(($st->{sessionID} // '') . ' ' . ($st->{protocol}{host} // '-') . ' ' . ($st->{protocol}{client} // '-'),
        "$sid egress.v2 egress.v2", "$name: v2 on both legs, in the proposed session");
    like($t->nginx_error_log("nginx-$n"), qr/session "\Q$sid\E" ready/, "$name: hello names it");
    my ($rc, $body) = $t->run([ 'curl', '-sS', '--max-time', '60', '-p', '--proxy',
            "http://127.0.0.1:$pp", "http://localhost:$op/bytes/$size" ], timeout => 90);
    ok($body eq $want, "$name: 4 MiB download intact");
    ($rc, $body) = $t->run([ 'curl', '-sS', '--max-time', '60', '-p', '--proxy',
            "http://127.0.0.1:$pp", '--data-binary', "\@$dir/upload.bin",
            "http://localhost:$op/echo" ], timeout => 90);
    is($body, sprintf("len=%d sha1=%s\n", length $upload, sha1_hex($upload)), "$name: 3 MiB upload intact");
    $t->stop("host-$n");
    $t->stop("nginx-$n");
}

$t->done;
done_testing;
