#!/usr/bin/perl
# ngx_stream_egress_module, early data: an absolute-form request goes out
# right behind `open`, before `open_ok`, within the initial window; a failed
# open still gets the module's 403/502 page. First against a host side this
# test plays (to see what arrives before open_ok), then end to end with the
# real host agent, which holds the early bytes until its connection is up.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);
use IO::Socket::IP;
use JSON::PP;
use POSIX ();

use Test::Egress qw(wait_until);
use Test::Egress::Module;
use Test::Egress::Origin;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so', 'egress-coordinator',
    'egress');
$SIG{PIPE} = 'IGNORE';

my $JSON   = JSON::PP->new->canonical;
my $WINDOW = 256 * 1024;    # EGRESS_INITIAL_WINDOW

my $c   = $t->coordinator;
my $tok = $c->token(owner => 'alice', org => 'acme');

# ---- 1. what arrives before open_ok ----------------------------------------

my $lid = $c->lease($tok, slug => 'early-sim')->{id};
my $ct  = $c->ticket($tok, $lid, role => 'client');
# the host side below waits for quiet before it answers: more than the
# default open timeout under ASan
my $m = Test::Egress::Module->new($t, bridge => $c->ws_url($lid, 'client'), ticket => $ct->{ticket},
    server => 'egress_open_timeout 120s;');
$m->start;
ok($m->wait_log(qr/egress bridge: session ".+" ready/), 'bridge up');
my $ht = $c->ticket($tok, $lid, role => 'host', sessionID => $ct->{sessionID},
    allow => ['127.0.0.1']);
# says it holds early data (X-Egress-Features), as our host agent does
my $h = $c->ws($lid, 'host', ticket => $ht->{ticket},
    headers => { 'X-Egress-Features' => 'early-data' });
ok($h && $h->protocol eq 'egress.v2', 'host side joined (v2)');
is(($h->recv_json(10) // {})->{type}, 'hello', 'hello');
ok($m->wait_log(qr/egress bridge: host agent connected/), 'module sees the host side');

sub host_next {
    my ($timeout) = @_;
    my $msg = $h->recv($timeout) or return undef;
    return { type => "ws_$msg->{type}" } if $msg->{type} ne 'text' && $msg->{type} ne 'binary';
    return { type => 'data', id => unpack('N', $msg->{data}), data => substr($msg->{data}, 4) }
        if $msg->{type} eq 'binary';
    my $j = $JSON->decode($msg->{data});
    return { type => $j->{type}, id => $j->{id} // 0, json => $j };
}

# The next open the host side receives (other frames skipped), or undef.
sub host_open {
    while (my $f = host_next(10)) {
        return $f if $f->{type} eq 'open';
    }
    return undef;
}

# Reads stream $id's data until $want bytes or nothing more comes for a
# while (the module has nothing else to send before open_ok).
sub host_collect {
    my ($id, $want, $quiet) = @_;
    my $got = '';
    while (length $got < $want) {
        my $f = host_next($quiet) or last;
        last if $f->{type} =~ /^ws_/;
        $got .= $f->{data} if $f->{type} eq 'data' && $f->{id} == $id;
    }
    return $got;
}

my $body = join('', map { chr(($_ * 13 + 5) % 256) } 0 .. 99_999);
my $head = "POST http://127.0.0.1:9/up HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: "
    . length($body) . "\r\n\r\n";

{
    my $b = $m->client;
    $b->send($head . $body);
    my $open = host_next(10);
    is($open && $open->{type}, 'open', 'small request: open');
    my $id = $open->{id};
    # No open_ok yet: the whole request must come anyway.
    my $got = host_collect($id, 200_000, 5);
    my ($rh, $rb) = split /\r\n\r\n/, $got, 2;
    like($rh // '', qr{^POST /up HTTP/1\.1\r\n}, 'the request head arrived before open_ok');
    is(sha1_hex($rb // ''), sha1_hex($body), 'the whole body arrived before open_ok, intact');
    $h->send_json({ type => 'open_ok', id => $id, window => $WINDOW });
    $h->send_binary(pack('N', $id) . "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly");
    $h->send_json({ type => 'close', id => $id });
    like($b->read_until(qr/early/, 10), qr/^HTTP\/1\.1 200 OK\r\n.*\r\n\r\nearly$/s,
        'the response reaches the browser');
}

# A body beyond the initial window: only the window comes before open_ok,
# the rest after it, as credit is granted.
{
    my $big = join('', map { pack('N', $_ * 2654435761 % 4294967296) } 0 .. 262_143);  # 1 MiB
    my $bh = "PUT http://127.0.0.1:9/big HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: "
        . length($big) . "\r\n\r\n";
    my $b = $m->client;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $b->send($bh . $big);
        POSIX::_exit(0);
    }
    my $open = host_next(10);
    is($open && $open->{type}, 'open', 'large request: open');
    my $id = $open->{id};
    my $before = host_collect($id, 2 * 1024 * 1024, 3);
    is(length $before, $WINDOW, 'exactly the initial window came before open_ok');
    $h->send_json({ type => 'open_ok', id => $id, window => $WINDOW });
    my $got = $before;
    # the module rewrites the head: the body follows its end
    my $hl = index($got, "\r\n\r\n") + 4;
    my $total = $hl + length($big);
    my $granted = 0;
    while (length $got < $total) {
        # grant what we consumed, as a host does
        my $inc = length($got) - $granted;
        if ($inc > 0) {
            $h->send_json({ type => 'window', id => $id, increment => $inc });
            $granted += $inc;
        }
        my $more = host_collect($id, $total - length $got, 5);
        last unless length $more;
        $got .= $more;
    }
    waitpid($pid, 0);
    is(length $got, $total, 'the whole large request arrived');
    is(sha1_hex(substr($got, $hl)), sha1_hex($big), 'large body intact');
    $h->send_binary(pack('N', $id) . "HTTP/1.1 204 No Content\r\n\r\n");
    $h->send_json({ type => 'close', id => $id });
    like($b->read_until(qr/\r\n\r\n/, 10), qr/^HTTP\/1\.1 204 /, 'large request answered');
}

# The open fails after the request went out: the browser still gets the page.
{
    my $b = $m->client;
    $b->send($head . $body);
    my $open = host_next(10);
    my $id = $open->{id};
    host_collect($id, length($head) + length($body), 5);
    $h->send_json({ type => 'error', id => $id, message => 'not allowed: 127.0.0.1:9 is not on the allowlist' });
    like($b->read_all(10), qr/^HTTP\/1\.1 403 Forbidden\r\n.*not allowed/s,
        'refused after early bytes: 403 page');
}

# egress_early_data off: nothing before open_ok.
$t->stop('nginx');
{
    my $m2 = Test::Egress::Module->new($t, name => 'nginx-off', bridge => $c->ws_url($lid, 'client'),
        ticket => $ct->{ticket}, server => 'egress_early_data off; egress_open_timeout 120s;');
    $m2->start;
    ok($m2->wait_log(qr/egress bridge: session ".+" ready/), 'bridge up again (early data off)');
    my $b = $m2->client;
    $b->send($head . $body);
    my $open = host_open();
    ok($open, 'open');
    my $got = host_collect($open->{id}, 1, 3);
    is(length $got, 0, 'early data off: nothing before open_ok');
    $h->send_json({ type => 'open_ok', id => $open->{id}, window => $WINDOW });
    $got = host_collect($open->{id}, length($head) + length($body), 5);
    my ($rh, $rb) = split /\r\n\r\n/, $got, 2;
    is(sha1_hex($rb // ''), sha1_hex($body), 'early data off: the body after open_ok, intact');
    $t->stop('nginx-off');
}

# No answer at all: the open times out after the early bytes went out, and
# the browser gets the 504 page; the stream is closed toward the host.
{
    my $m5 = Test::Egress::Module->new($t, name => 'nginx-timeout', bridge => $c->ws_url($lid, 'client'),
        ticket => $ct->{ticket}, server => 'egress_open_timeout 5s;');
    $m5->start;
    ok($m5->wait_log(qr/egress bridge: session ".+" ready/), 'bridge up again (5 s open timeout)');
    my $b = $m5->client;
    $b->send($head . $body);
    my ($open, $got, $closed) = (undef, '', 0);
    while (my $f = host_next(10)) {
        if ($f->{type} eq 'open') {
            $open = $f;
        } elsif ($open && $f->{type} eq 'data' && $f->{id} == $open->{id}) {
            $got .= $f->{data};
        } elsif ($open && $f->{type} eq 'close' && $f->{id} == $open->{id}) {
            $closed = 1;
            last;
        }
    }
    ok($open && length($got) >= length $body, 'early bytes went out');
    ok($closed, 'the timed-out stream is closed toward the host');
    like($b->read_all(10), qr/^HTTP\/1\.1 504 Gateway Timeout\r\n.*no answer from the host agent/s,
        'no answer after early bytes: 504 page');
    $t->stop('nginx-timeout');
}

# egress_early_data connect: a tunnel is answered 200 at once and its first
# bytes go behind open; a refused open then closes the connection.
{
    my $m4 = Test::Egress::Module->new($t, name => 'nginx-connect', bridge => $c->ws_url($lid, 'client'),
        ticket => $ct->{ticket}, server => 'egress_early_data connect; egress_open_timeout 120s;');
    $m4->start;
    ok($m4->wait_log(qr/egress bridge: session ".+" ready/), 'bridge up again (early data connect)');
    for my $refuse (0, 1) {
        my $b = $m4->client;
        $b->send("CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n");
        like($b->read_until(qr/\r\n\r\n/, 10), qr/^HTTP\/1\.1 200 /, 'CONNECT answered 200 before open_ok');
        $b->take;
        $b->send($body);
        my $open = host_open();
        my $got = host_collect($open->{id}, length $body, 5);
        is(sha1_hex($got), sha1_hex($body), 'the tunnel\'s first bytes arrived before open_ok, intact');
        if ($refuse) {
            $h->send_json({ type => 'error', id => $open->{id}, message => 'connection refused by 127.0.0.1:9' });
            is($b->read_all(10), '', 'refused after an early 200: the connection just closes');
        } else {
            $h->send_json({ type => 'open_ok', id => $open->{id}, window => $WINDOW });
            $h->send_binary(pack('N', $open->{id}) . 'tunnel-back');
            is($b->read_bytes(11, 10), 'tunnel-back', 'the tunnel carries bytes back');
        }
    }
    $t->stop('nginx-connect');
}
$h->close;

# A host that does not say it holds early data (an older egress, crabbox's
# agent: both drop data for a connection still dialing): the coordinator
# holds the client's frames until open_ok, then they follow it, in order.
{
    my $ht2 = $c->ticket($tok, $lid, role => 'host', sessionID => $ct->{sessionID},
        allow => ['127.0.0.1']);
    $h = $c->ws($lid, 'host', ticket => $ht2->{ticket});
    ok($h && $h->protocol eq 'egress.v2', 'a host without early-data joined');
    is(($h->recv_json(10) // {})->{type}, 'hello', 'hello');
    my $m = Test::Egress::Module->new($t, name => 'nginx-held', bridge => $c->ws_url($lid, 'client'),
        ticket => $ct->{ticket}, server => 'egress_open_timeout 120s;');
    $m->start;
    ok($m->wait_log(qr/egress bridge: session ".+" ready/), 'its bridge is up');
    my $b = $m->client;
    $b->send($head . $body);
    my $open = host_open();
    ok($open, 'open arrives');
    is(host_collect($open->{id}, 1, 2), '', 'no data before open_ok: the coordinator holds it');
    $h->send_json({ type => 'open_ok', id => $open->{id}, window => $WINDOW });
    my $got = host_collect($open->{id}, length($body) + 200, 5);
    my ($rh, $rb) = split /\r\n\r\n/, $got, 2;
    like($rh // '', qr{^POST /up HTTP/1\.1\r\n}, 'after open_ok: the request head');
    is(sha1_hex($rb // ''), sha1_hex($body), '... and the whole body, intact');
    $h->send_binary(pack('N', $open->{id}) . "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld");
    $h->send_json({ type => 'close', id => $open->{id} });
    like($b->read_until(qr/held/, 10), qr/\r\n\r\nheld$/, 'the response reaches the browser');

    # refused after holding: the held bytes are dropped, the page still comes
    $b = $m->client;
    $b->send($head . $body);
    $open = host_open();
    $h->send_json({ type => 'error', id => $open->{id}, message => 'not allowed: 127.0.0.1:9' });
    like($b->read_all(10), qr/^HTTP\/1\.1 403 /, 'refused: the browser gets the 403 page');
    is(host_collect($open->{id}, 1, 2), '', '... and the held bytes never reach the host');
    like(($c->api(GET => "/metrics"))[2] // "", qr/^egress_early_data_held_bytes_total [1-9]/m,
        'the coordinator counts what it held');
    $h->close;
    $t->stop('nginx-held');
}

# ---- 2. end to end with the real host agent ---------------------------------

my $o  = $t->origin;
my $op = $o->port;
# a port nothing listens on: the agent's dial is refused
my $dead = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0, Listen => 1)->sockport;

my $lid2 = $c->lease($tok, slug => 'early-agent')->{id};
my $ct2  = $c->ticket($tok, $lid2, role => 'client');
my $m3 = Test::Egress::Module->new($t, name => 'nginx-agent', bridge => $c->ws_url($lid2, 'client'),
    ticket => $t->dir . '/agent-client.ticket', state_file => $t->dir . '/agent-client.state');
$m3->set_ticket($ct2->{ticket});
$m3->start;
ok($m3->wait_log(qr/egress bridge: session ".+" ready/), 'bridge up (real agent)');
my $dir = $t->dir;
$t->spawn('host', cmd => [ $t->bin('egress'), 'host', '--id', $lid2, '--session', $ct2->{sessionID},
        '--allow', "127.0.0.1:$op", '--allow', "127.0.0.1:$dead", '--allow-private' ],
    env => { $t->san_env, HOME => $dir, XDG_STATE_HOME => "$dir/state",
        EGRESS_COORDINATOR => $c->url, EGRESS_TOKEN => $tok },
    wait_log => qr/connected/);
ok($m3->wait_log(qr/egress bridge: host agent connected/), 'host agent connected');

for my $size (0, 1000, 200_000, 3 * 1024 * 1024 + 7) {
    my $up = join('', map { chr(($_ * 31 + $size) % 256) } 0 .. $size - 1);
    my $r = $m3->request("POST http://127.0.0.1:$op/echo HTTP/1.1\r\nHost: 127.0.0.1:$op\r\n"
            . "Connection: close\r\nContent-Length: $size\r\n\r\n$up", timeout => 60);
    like($r, qr/\r\n\r\nlen=$size sha1=${\ sha1_hex($up)}\n$/s, "$size-byte request body intact through the agent");
}

my $got = $m3->request("GET http://127.0.0.1:$op/bytes/100000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    timeout => 30);
my ($rb) = $got =~ /\r\n\r\n(.*)$/s;
ok(defined $rb && $rb eq Test::Egress::Origin::pattern(100000), 'download intact');

like($m3->request("POST http://127.0.0.1:$dead/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
    qr/^HTTP\/1\.1 502 Bad Gateway\r\n.*refused/s, 'refused destination after early bytes: 502 page');
like($m3->request("POST http://127.0.0.1:1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
    qr/^HTTP\/1\.1 403 Forbidden\r\n.*not allowed/s, 'denied destination after early bytes: 403 page');
ok($t->running('host'), 'agent still running');

$t->done;
done_testing;
