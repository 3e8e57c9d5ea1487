#!/usr/bin/perl
# ngx_stream_egress_module: a response never spills into the next one on a
# reused browser connection. Real nginx with the module, the real
# coordinator, the real host agent and a lying origin that sends more than
# its head declares: bytes after a Content-Length body, after the last
# chunk, after a body-less head (HEAD, 204), after broken chunked framing.
# The module forwards exactly the declared body, drops the rest, logs it,
# and closes the browser connection after the response; honest keep-alive
# responses still reuse the connection.

use strict;
use warnings;

use Test::More;

use Test::Egress;
use Test::Egress::Module;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so', 'egress-coordinator',
    'egress');
$SIG{PIPE} = 'IGNORE';
my $dir = $t->dir;

# --- the lying origin -------------------------------------------------------
#
# One child per connection, one request each (the module asks for
# Connection: close); the answer is chosen by path and written in pieces
# so that the excess arrives both with the body and after it.

my $LIAR = <<'EOF_LIAR';
use strict;
use warnings;
use IO::Socket::IP;
use POSIX ();
my ($port) = @ARGV;
$SIG{CHLD} = 'IGNORE';
my $inject = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected";
my %answer = (
    '/cl-excess'      => [ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello$inject" ],
    '/cl-later'       => [ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", "lo", $inject ],
    '/chunked-excess' => [ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            . "5\r\nhello\r\n0\r\n\r\n", $inject ],
    '/chunked-broken' => [ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            . "5\r\nhelloXX$inject" ],
    '/head'           => [ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", $inject ],
    '/no-content'     => [ "HTTP/1.1 204 No Content\r\n\r\n$inject" ],
    '/cl-twice'       => [ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello" ],
    '/te-and-cl'      => [ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
            . "5\r\nhello\r\n0\r\n\r\n" ],
    '/gzip-only'      => [ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nhello" ],
    '/honest'         => [ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" ],
    '/honest-chunked' => [ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            . "2\r\nhe\r\n3;x=1\r\nllo\r\n0\r\nTrailer-A: 1\r\n\r\n" ],
);
my $srv = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $port, Listen => 128,
    ReuseAddr => 1) or die "liar: listen: $!\n";
$| = 1;
print "liar ready\n";
while (1) {
    my $c = $srv->accept or next;
    my $pid = fork // next;
    if ($pid) { close $c; next }
    close $srv;
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) {
        sysread($c, $buf, 65536, length $buf) or POSIX::_exit(0);
    }
    my ($path) = $buf =~ m{^\S+ (\S+) HTTP/1\.1\r\n} or POSIX::_exit(1);
    for my $piece (@{ $answer{$path} // [ "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" ] }) {
        syswrite($c, $piece);
        select(undef, undef, undef, 0.05);    # separate segments, not a wait for anything
    }
    POSIX::_exit(0);
}
EOF_LIAR

my $lp = $t->port;
$t->spawn('liar', cmd => [ $^X, '-e', $LIAR, $lp ], wait_log => qr/^liar ready/m);

# --- coordinator, nginx with the module, the real host agent ----------------

my $c     = $t->coordinator;
my $tok   = $c->token(owner => 'alice', org => 'acme');
my $lease = $c->lease($tok, slug => 'mod-resp-framing');
my $lid   = $lease->{id};
my $ct    = $c->ticket($tok, $lid, role => 'client');

my $m = Test::Egress::Module->new($t,
    bridge => $c->ws_url($lid, 'client'),
    ticket => $ct->{ticket},
    server => "egress_open_timeout 5s;\negress_header_timeout 3s;\n");
$m->start;
ok($m->wait_log(qr/egress bridge: session ".+" ready/), 'the module\'s bridge is up');

mkdir "$dir/$_" for qw(home state config);
$t->spawn('agent',
    cmd => [ $t->bin('egress'), 'host', '--id', $lid, '--session', $ct->{sessionID},
        '--coordinator', $c->url, '--allow', "127.0.0.1:$lp", '--allow-private' ],
    env => { $t->san_env, HOME => "$dir/home", XDG_STATE_HOME => "$dir/state",
        XDG_CONFIG_HOME => "$dir/config", EGRESS_TOKEN => $tok },
    wait_log => qr/(?:re)?connected: lease=/);
ok($m->wait_log(qr/egress bridge: host agent connected/), 'the host agent joined the session');

sub get {
    my ($method, $path) = @_;
    return "$method http://127.0.0.1:$lp$path HTTP/1.1\r\nHost: a\r\n\r\n";
}

# A keep-alive request whose response is followed by injected bytes: the
# browser gets the declared response, then the connection closes, and not
# one byte of the injected response.
sub expect_cut {
    my ($method, $path, $want, $name) = @_;
    my $cl = $m->client;
    $cl->send(get($method, $path));
    my $all = $cl->read_all(10);
    ok($cl->eof, "$name: the browser connection closes after the response");
    unlike($all, qr/injected/, "$name: the injected bytes never reach the browser");
    like($all, $want, "$name: the declared response arrives whole");
    $cl->close;
}

expect_cut('GET', '/cl-excess',
    qr/\AHTTP\/1\.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello\z/,
    'bytes after a Content-Length body, in the same write');
expect_cut('GET', '/cl-later', qr/\r\n\r\nhello\z/, 'bytes after a Content-Length body, later');
expect_cut('GET', '/chunked-excess', qr/\r\n\r\n5\r\nhello\r\n0\r\n\r\n\z/,
    'bytes after the last chunk');
expect_cut('GET', '/chunked-broken', qr/\r\n\r\n5\r\nhello\z/,
    'broken chunked framing (cut at the bad byte)');
expect_cut('HEAD', '/head', qr/\AHTTP\/1\.1 200 OK\r\nContent-Length: 5\r\n.*\r\n\r\n\z/s,
    'a body after the head of a HEAD response');
expect_cut('GET', '/no-content', qr/\AHTTP\/1\.1 204 No Content\r\n.*\r\n\r\n\z/s,
    'a body after a 204');

like($m->error_log, qr/egress stream \d+: the origin sent bytes beyond the body its head declared; they are dropped/,
    'the error log says why the connection closed');
like($m->error_log, qr/the origin sent bytes that break its chunked framing/,
    '... and names broken chunked framing');

# Framing we cannot count is never kept alive: the browser is told to close.
for my $case ([ '/cl-twice', 'two different Content-Length values' ],
    [ '/te-and-cl', 'Transfer-Encoding beside Content-Length' ],
    [ '/gzip-only', 'a coding that does not end in chunked' ])
{
    my ($path, $name) = @$case;
    my $cl = $m->client;
    $cl->send(get('GET', $path));
    my $all = $cl->read_all(10);
    like($all, qr/\r\nConnection: close\r\n\r\n/, "$name: Connection: close to the browser");
    ok($cl->eof, "$name: ... and the connection closes");
    $cl->close;
}

# Honest responses keep the connection: three requests on one connection.
{
    my $cl = $m->client;
    for my $i (1 .. 3) {
        $cl->send(get('GET', '/honest'));
        my $r = $cl->take_response(10) // '';
        like($r, qr/\r\nConnection: keep-alive\r\n\r\nhello\z/,
            "honest Content-Length response $i on one connection");
    }
    $cl->send(get('GET', '/honest-chunked'));
    my $r = $cl->read_until(qr/0\r\nTrailer-A: 1\r\n\r\n/, 10);
    like($r, qr/\r\n\r\n2\r\nhe\r\n3;x=1\r\nllo\r\n0\r\nTrailer-A: 1\r\n\r\n\z/,
        'an honest chunked response with an extension and a trailer');
    $cl->take;
    $cl->send(get('GET', '/honest'));
    like($cl->take_response(10) // '', qr/\r\n\r\nhello\z/, '... and the connection is still reused');
    $cl->close;
}

$t->done;
done_testing;
