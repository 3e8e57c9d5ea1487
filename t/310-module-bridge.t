#!/usr/bin/perl
# ngx_stream_egress_module through the real coordinator: the module's bridge
# is the client leg, Test::Egress::HostSim (a protocol-level peer that
# dials local origins) is the host leg. CONNECT and absolute-form requests,
# keep-alive across hosts, bodies, refusals and timeouts, flow control with
# a slow reader, many parallel tunnels, host loss, coordinator restart and
# nginx reload.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);
use Time::HiRes qw(time sleep);

use Test::Egress qw(wait_until slurp);
use Test::Egress::Module;
use Test::Egress::HostSim;
use Test::Egress::Origin;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so', 'egress-coordinator');
$SIG{PIPE} = 'IGNORE';

my $c     = $t->coordinator;
my $tok   = $c->token(owner => 'alice', org => 'acme');
my $lease = $c->lease($tok, slug => 'mod-bridge');
my $lid   = $lease->{id};

my $ct = $c->ticket($tok, $lid, role => 'client');
ok($ct->{ticket} && $ct->{sessionID}, 'client ticket minted (new session)');

my $m = Test::Egress::Module->new($t,
    bridge => $c->ws_url($lid, 'client'),
    ticket => $ct->{ticket},
    server => "egress_open_timeout 2s;\negress_header_timeout 3s;\n");
$m->start;

ok($m->wait_log(qr/egress bridge: session ".+" ready, host agent not connected/),
    'the bridge connects with the ticket and gets hello');
like($m->error_log, qr/connected to ws:\/\/.*\(egress\.v2, with ticket\)/, 'protocol v2 negotiated');

ok(wait_until(sub { -s $m->state_file }), 'the state file is written');
my $state = slurp($m->state_file);
like($state, qr/^resume = egr_[A-Za-z0-9_-]+$/m, 'it holds the resume secret');
like($state, qr/^ticket_sha256 = [0-9a-f]{64}$/m, 'and the spent ticket\'s hash');
unlike($state, qr/\Q$ct->{ticket}\E/, 'but not the ticket');
is((stat $m->state_file)[2] & 0777, 0600, 'mode 0600');

sub status_of { ($_[0] // '') =~ m{^HTTP/1\.1 (\d{3}) } ? $1 : 0 }
sub body_of { my (undef, $b) = split /\r\n\r\n/, $_[0] // '', 2; $b // '' }

my $o  = $t->origin;
my $o2 = $t->origin(name => 'origin2');
my ($op, $op2) = ($o->port, $o2->port);

# --- host agent not connected: 503 at once ----------------------------

my ($r, $dt) = $m->request("CONNECT 127.0.0.1:$op HTTP/1.1\r\n\r\n");
is(status_of($r), 503, 'no host agent yet: 503');
like(body_of($r), qr/^host agent not connected\n\z/, '... saying so in one line');
cmp_ok($dt, '<', $t->san ? 3 : 1, '... at once');

# --- the host side joins ------------------------------------------------

my $hostsim;
sub start_host {
    my $ht = $c->ticket($tok, $lid, role => 'host', sessionID => $ct->{sessionID},
        allow => [ '127.0.0.1', 'localhost' ]);
    $hostsim = Test::Egress::HostSim->start($t, url => $c->ws_url($lid, 'host'),
        ticket => $ht->{ticket}, deny => ['denied.test'], blackhole => ['void.test']);
}
start_host();
ok($m->wait_log(qr/egress bridge: host agent connected/), 'peer {connected:true} reaches the module');

# --- CONNECT ------------------------------------------------------------

my $cl = $m->client;
$cl->send("CONNECT 127.0.0.1:$op HTTP/1.1\r\nHost: 127.0.0.1:$op\r\n\r\n");
$r = $cl->read_until(qr/\r\n\r\n/);
is($r, "HTTP/1.1 200 Connection Established\r\n\r\n", 'CONNECT: 200 Connection Established');
$cl->take;
$cl->send("GET /ip HTTP/1.1\r\nHost: x\r\n\r\n");
$r = $cl->take_response;
like($r, qr/\r\n\r\n127\.0\.0\.1\n\z/, 'a request through the tunnel reaches the origin');
$cl->send("GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n");
$r = $cl->take_response;
ok(body_of($r) eq Test::Egress::Origin::pattern(100000), 'a second exchange in the tunnel, 100 kB intact');

# Half-close: the browser ends its side, the answer still arrives, then EOF.
$cl->send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
$cl->shutdown_write;
$r = $cl->read_all(10);
like($r, qr/len=5 sha1=${\ sha1_hex('hello')}/, 'after the browser half-closes, the response arrives');
ok($cl->eof, '... and the origin\'s EOF reaches the browser');

# Early data: bytes sent right behind the CONNECT head.
$cl = $m->client;
$cl->send("CONNECT localhost:$op HTTP/1.1\r\n\r\nGET /ip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
$r = $cl->read_all(10);
like($r, qr/^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 200 OK.*127\.0\.0\.1\n\z/s,
    'bytes sent before 200 Connection Established are forwarded after it');

# --- absolute-form --------------------------------------------------------

($r) = $m->request("GET http://127.0.0.1:$op/x?q=1#frag HTTP/1.1\r\nHost: a\r\n\r\n");
like($r, qr/ok GET \/x\?q=1 host=127\.0\.0\.1:$op\n\z/, 'the query is kept, the fragment dropped');

($r) = $m->request("GET http://127.0.0.1:$op/headers HTTP/1.1\r\n"
        . "Host: wrong.example\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
        . "Keep-Alive: 300\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\n"
        . "Upgrade: h2c\r\nX-Keep: yes\r\nUser-Agent: t\r\n\r\n");
is(status_of($r), 200, 'absolute-form GET: 200 from the origin');
my $seen = body_of($r);
like($seen, qr/^GET \/headers HTTP\/1\.1\r\n/, 'forwarded in origin-form');
like($seen, qr/\r\nHost: 127\.0\.0\.1:$op\r\n/, 'Host set from the URL');
unlike($seen, qr/wrong\.example/, 'the client\'s Host is replaced');
like($seen, qr/\r\nConnection: close\r\n/, 'Connection: close towards the origin');
like($seen, qr/\r\nX-Keep: yes\r\n/, 'end-to-end headers kept');
for my $h (qw(Proxy-Connection Proxy-Authorization Keep-Alive X-Hop TE Upgrade)) {
    unlike($seen, qr/\r\n\Q$h\E:/i, "hop-by-hop $h removed");
}
like($r, qr/\r\nConnection: close\r\n/, 'the browser is told the connection closes (it asked for close)');

($r) = $m->request("GET http://localhost:$op/ip HTTP/1.0\r\n\r\n");
like($r, qr/^HTTP\/1\.1 200 .*\r\n\r\n127\.0\.0\.1\n\z/s, 'HTTP/1.0 absolute-form works');

# --- keep-alive with two hosts ----------------------------------------------

$cl = $m->client;
$cl->send("GET http://127.0.0.1:$op/a HTTP/1.1\r\nHost: 127.0.0.1:$op\r\n\r\n");
$r = $cl->take_response;
like($r, qr/\r\nConnection: keep-alive\r\n/, 'keep-alive: the response keeps the connection');
like($r, qr/ok GET \/a host=127\.0\.0\.1:$op\n\z/, 'first request answered by origin 1');
$cl->send("GET http://localhost:$op2/b HTTP/1.1\r\nHost: localhost:$op2\r\n\r\n");
$r = $cl->take_response;
like($r, qr/ok GET \/b host=localhost:$op2\n\z/, 'the next request on the same connection goes to origin 2');
# Pipelined: two requests at once, answered in order.
$cl->send("GET http://127.0.0.1:$op2/c HTTP/1.1\r\nHost: a\r\n\r\n"
        . "GET http://127.0.0.1:$op/d HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
my $r1 = $cl->take_response;
my $r2 = $cl->read_all(10);
like($r1, qr/ok GET \/c host=127\.0\.0\.1:$op2\n\z/, 'pipelined request 1');
like($r2, qr/ok GET \/d host=127\.0\.0\.1:$op\n\z/, 'pipelined request 2');
ok($cl->eof, 'Connection: close ends the keep-alive connection');

# --- request bodies -----------------------------------------------------------

# (the test origin does not accept trailers; the module's parser does, see t/301)
my $chunked = "5;name=v\r\nhello\r\n1A\r\n" . ('z' x 26) . "\r\n0\r\n\r\n";
$cl = $m->client;
$cl->send("POST http://127.0.0.1:$op/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
for my $piece (unpack('(a7)*', $chunked)) {    # in small pieces, across reads
    $cl->send($piece);
    sleep 0.01;
}
$r = $cl->take_response;
like($r, qr/len=31 sha1=${\ sha1_hex('hello' . ('z' x 26))}/, 'chunked upload relayed exactly');
$cl->send("GET http://127.0.0.1:$op/after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
like($cl->read_all(10), qr/ok GET \/after /, 'the chunked body\'s end was found: next request works');

my $payload = join '', map { chr(($_ * 7) % 256) } 0 .. (1 << 20) - 1;
($r) = $m->request("PUT http://127.0.0.1:$op/echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
        . "Content-Length: " . length($payload) . "\r\n\r\n$payload", timeout => 30);
like($r, qr/len=1048576 sha1=${\ sha1_hex($payload)}/, '1 MiB Content-Length upload intact (flow control upstream)');

# --- refusals and timeouts -----------------------------------------------------

($r) = $m->request("CONNECT denied.test:443 HTTP/1.1\r\n\r\n");
is(status_of($r), 403, 'a denied destination: 403');
is(body_of($r), "not allowed: denied.test:443 is not on the allowlist\n", '... with the agent\'s reason');

my $closed = $t->port;
($r) = $m->request("GET http://127.0.0.1:$closed/ HTTP/1.1\r\nHost: a\r\n\r\n");
is(status_of($r), 502, 'connection refused at the host: 502');
like(body_of($r), qr/^connection refused by 127\.0\.0\.1:$closed\n\z/, '... with the reason');

my $t0 = time;
($r) = $m->request("CONNECT void.test:443 HTTP/1.1\r\n\r\n", timeout => 15);
my $waited = time - $t0;
is(status_of($r), 504, 'no answer to open: 504');
cmp_ok($waited, '>=', 1.9, '... after egress_open_timeout (2s)');
cmp_ok($waited, '<', $t->san ? 8 : 4, '... not much later');

# --- flow control: a slow reader does not make nginx buffer the download ---------

sub worker_pid {
    my $master = $t->pid('nginx');
    my ($w) = grep { /^\d+$/ } split ' ', slurp("/proc/$master/task/$master/children");
    return $w;
}
sub rss_kb {
    my ($pid) = @_;
    my ($kb) = slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
    return $kb // 0;
}

# 1 GiB as the issue asks; smaller under the sanitizers (slow, and RSS is not checked there).
my $big = ($t->san ? 64 : 1024) * 1024 * 1024;
my $wpid = worker_pid();
ok($wpid, "nginx worker pid $wpid");
my $rss0 = rss_kb($wpid);

$cl = $m->client;
$cl->send("CONNECT 127.0.0.1:$op HTTP/1.1\r\n\r\nGET /bytes/$big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
$cl->read_until(qr/200 Connection Established\r\n\r\n/);
sleep 2;    # not reading: only the windows and socket buffers fill up
my $rss_stalled = rss_kb($wpid);
cmp_ok($rss_stalled - $rss0, '<', 16 * 1024, 'stalled reader: nginx RSS grows by less than 16 MiB')
    or diag("rss before $rss0 kB, stalled $rss_stalled kB");

my ($got, $max_rss, $sampled) = (0, 0, 0);
my $unit = Test::Egress::Origin::pattern(251 * 1100);    # > one read + 251
my $intact = 1;
$cl->read_until(qr/\r\n\r\n.*\r\n\r\n/s, 10);
my $buf = $cl->take;
$buf =~ s/^.*?\r\n\r\n.*?\r\n\r\n//s;
my $deadline = time + ($t->san ? 600 : 120);
while (time < $deadline) {
    $intact = 0 if length $buf && $buf ne substr($unit, $got % 251, length $buf);
    $got += length $buf;
    $buf = $cl->take;
    if (length $buf == 0) {
        my $k = $cl->read_some(1);
        last if defined $k && $k == 0;
    }
    if (time - $sampled > 0.2) {
        $sampled = time;
        my $now = rss_kb($wpid);
        $max_rss = $now if $now > $max_rss;
    }
}
$intact = 0 if length $buf && $buf ne substr($unit, $got % 251, length $buf);
$got += length $buf;
is($got, $big, "a $big-byte download arrives complete");
ok($intact, '... every byte as the origin sent it');
note("worker RSS: before $rss0 kB, stalled $rss_stalled kB, max while streaming $max_rss kB");
SKIP: {
    # ASan's quarantine keeps freed chunks resident: RSS says nothing there.
    skip 'RSS while streaming is measured in the plain pass (ASan quarantine)', 1 if $t->san;
    cmp_ok($max_rss - $rss0, '<', 16 * 1024, '... with nginx RSS bounded while streaming')
        or diag("rss before $rss0 kB, max $max_rss kB");
}

# --- many parallel tunnels ------------------------------------------------------

my $N = $t->san ? 200 : 500;
my @cs = map { $m->client } 1 .. $N;
$_->send("CONNECT 127.0.0.1:$op HTTP/1.1\r\n\r\n") for @cs;
my $est = grep { $_->read_until(qr/\r\n\r\n/, 30) =~ /^HTTP\/1\.1 200 / } @cs;
is($est, $N, "$N parallel CONNECTs established");
$_->take for @cs;
$_->send("GET /ip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") for @cs;
my $answered = grep { $_->read_all(30) =~ /\r\n\r\n127\.0\.0\.1\n\z/ } @cs;
is($answered, $N, "... and all $N answered through their tunnels");
$_->close for @cs;

# --- the host agent goes away -------------------------------------------------------

$cl = $m->client;
$cl->send("CONNECT 127.0.0.1:$op HTTP/1.1\r\n\r\n");
like($cl->read_until(qr/\r\n\r\n/), qr/^HTTP\/1\.1 200 /, 'a tunnel is open');
$hostsim->stop;
ok($m->wait_log(qr/egress bridge: host agent disconnected/), 'peer {connected:false} reaches the module');
$cl->read_all(10);
ok($cl->eof, 'the open tunnel is closed');
($r) = $m->request("CONNECT 127.0.0.1:$op HTTP/1.1\r\n\r\n");
is(status_of($r), 503, 'host agent down: 503');
like(body_of($r), qr/host agent not connected/, '... with the reason');

start_host();
ok(wait_until(sub { (() = $m->error_log =~ /egress bridge: host agent connected/g) >= 2 }),
    'the host agent is back');
($r) = $m->request("GET http://127.0.0.1:$op/ip HTTP/1.1\r\nHost: a\r\n\r\n");
like($r, qr/\r\n\r\n127\.0\.0\.1\n\z/, 'requests work again');

# --- coordinator restart: the bridge reconnects with its resume secret ---------------

my $pending = $m->client;    # an open nobody answers, cut by the restart
$pending->send("CONNECT void.test:443 HTTP/1.1\r\n\r\n");
ok(wait_until(sub { (() = $m->error_log =~ /egress stream \d+: CONNECT void\.test:443/g) == 2 }),
    'an open is pending');
$c->restart;
$r = $pending->read_all(10);
is(status_of($r), 503, 'the bridge lost while an open is pending: 503');
like(body_of($r), qr/^egress bridge to the coordinator lost: /, '... saying so');
ok(wait_until(sub { (() = $m->error_log =~ /egress bridge: connected to .*with resume secret/g) >= 1 }, 20),
    'after a coordinator restart the bridge reconnects with the resume secret');
start_host() unless $t->running('hostsim');
ok(wait_until(sub { my $s = $c->status($tok, $lid); $s && $s->{hostConnected} && $s->{clientConnected} }, 20),
    'both legs connected again');
ok(wait_until(sub {
    my ($x) = $m->request("GET http://127.0.0.1:$op/ip HTTP/1.1\r\nHost: a\r\n\r\n");
    $x =~ /\r\n\r\n127\.0\.0\.1\n\z/ }, 10), 'requests work after the restart');

# --- nginx reload: the new worker resumes from the state file ---------------------------

# the state file as an older module wrote it (JSON) is still read
my %st = slurp($m->state_file) =~ /^(\w+) = (\S+)$/mg;
ok($st{resume} && $st{ticket_sha256}, 'the state file parses as key = value lines');
Test::Egress::spew($m->state_file,
    qq({"resume": "$st{resume}", "ticket_sha256": "$st{ticket_sha256}"}\n), 0600);
my $old = worker_pid();
$t->nginx_signal('HUP');
ok(wait_until(sub { my $w = worker_pid(); $w && $w != $old }, 10), 'reload: a new worker');
ok(wait_until(sub { !kill(0, $old) }, 20), 'the old worker exits');
ok(wait_until(sub {
    my ($x) = $m->request("GET http://127.0.0.1:$op/ip HTTP/1.1\r\nHost: a\r\n\r\n");
    $x =~ /\r\n\r\n127\.0\.0\.1\n\z/ }, 20), 'requests work after the reload');
like($m->error_log, qr/egress bridge: connected to .*with resume secret(?![\s\S]*with ticket)/,
    '... the new worker resumed with the secret from the former JSON state file');
ok(wait_until(sub { slurp($m->state_file) =~ /^resume = egr_/m }, 10),
    'the state file is written back as key = value lines');

# --- a new session: the old one is closed (4001), the module waits for a new ticket ---

my $ct2 = $c->ticket($tok, $lid, role => 'client');
isnt($ct2->{sessionID}, $ct->{sessionID}, 'a new client ticket starts a new session');
ok($m->wait_log(qr/coordinator closed the WebSocket: 4001/, 10), 'the module\'s socket is closed with 4001');
($r) = $m->request("CONNECT 127.0.0.1:$op HTTP/1.1\r\n\r\n");
is(status_of($r), 503, 'meanwhile: 503');
like(body_of($r), qr/waiting for a new ticket/, '... saying that a new ticket is needed');
my $before = () = $c->log =~ /upgrade_refused|resume_/g;
sleep 2.5;
my $after = () = $c->log =~ /upgrade_refused|resume_/g;
cmp_ok($after - $before, '<=', 1, 'no reconnect storm with dead credentials');
unlike($c->log, qr/resume_rejected.*\n(.*\n)*.*resume_rejected/, 'the dead resume secret is not retried');
$m->set_ticket($ct2->{ticket});
ok($m->wait_log(qr/egress bridge: session "\Q$ct2->{sessionID}\E" ready/, 10),
    'the new ticket in the file is picked up without restarting nginx');

# --- logs ------------------------------------------------------------------------------

my $log = $m->access_log;
like($log, qr/target=127\.0\.0\.1:$op id=\d+ egress_status=200 /, 'access log: target, stream id, status');
like($log, qr/target=denied\.test:443 id=\d+ egress_status=403 /, 'access log: the 403');
like($log, qr/target=void\.test:443 id=\d+ egress_status=504 /, 'access log: the 504');
like($m->error_log, qr/egress open failed: not allowed.*egress stream: \d+, target: denied\.test:443/,
    'error log lines carry the stream id and target');
my $all = $m->error_log . $log;
unlike($all, qr/\Q$ct->{ticket}\E/, 'the ticket never appears in the logs');
unlike($all, qr/egr_[A-Za-z0-9_-]{10}/, 'no resume secret in the logs');

$t->done;
done_testing;
