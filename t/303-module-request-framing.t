#!/usr/bin/perl
# ngx_stream_egress_module: request framing that must never reach an origin
# wrongly. Real nginx with the module, the real coordinator, the real host
# agent (`egress host`) and two origins: the test origin and a recording
# origin that keeps every byte it receives, per connection, in a file.
#
#   - absolute-form https:// is refused with 400 and a CONNECT hint (it
#     would travel unencrypted); with egress_absolute_https_cleartext on it
#     is sent as plain HTTP to the URL's port (443 by default)
#   - malformed chunked bodies: 400 before the head is forwarded when the
#     bad framing came with the head; a 400 and a closed stream when it
#     comes later; the bytes after it are never a new request
#   - well-formed chunked bodies with extensions and trailers still pass
#     byte for byte, and LF-only heads are rewritten within their buffer

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);

use Test::Egress qw(wait_until slurp);
use Test::Egress::Module;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so', 'egress-coordinator',
    'egress');
$SIG{PIPE} = 'IGNORE';
my $dir = $t->dir;

sub status_of { ($_[0] // '') =~ m{^HTTP/1\.1 (\d{3}) } ? $1 : 0 }
sub body_of { my (undef, $b) = split /\r\n\r\n/, $_[0] // '', 2; $b // '' }

# --- the recording origin ---------------------------------------------------
#
# One child per connection; raw bytes go to rec/conn-PID as they arrive, and
# rec/conn-PID.eof appears when the peer closes before a complete request.
# It parses the request (chunked with extensions and trailers; like many
# servers it also takes a bare LF as a line end, which is what makes a
# proxy that disagrees about framing smuggle requests into it), answers
# "seen METHOD PATH len=N sha1=HEX trailers=NAMES" and closes, as asked by
# the module's Connection: close.

my $RECORDER = <<'EOF';
use strict;
use warnings;
use IO::Socket::IP;
use Digest::SHA qw(sha1_hex);
use POSIX ();
my ($port, $dir) = @ARGV;
$SIG{CHLD} = 'IGNORE';
my $srv = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $port, Listen => 128,
    ReuseAddr => 1) or die "recorder: listen: $!\n";
$| = 1;
print "recorder ready\n";
while (1) {
    my $c = $srv->accept or next;
    my $pid = fork // next;
    if ($pid) { close $c; next }
    close $srv;
    my $file = "$dir/conn-$$";
    open my $raw, '>>:raw', $file or POSIX::_exit(1);
    $raw->autoflush(1);
    my $buf = '';
    my $more = sub {
        my $n = sysread($c, my $chunk, 65536);
        if (!$n) {
            open my $e, '>', "$file.eof";
            close $e;
            POSIX::_exit(0);
        }
        print {$raw} $chunk;
        $buf .= $chunk;
    };
    # lenient like many servers: a bare LF ends a line too
    my $line = sub {
        $more->() while $buf !~ /\n/;
        $buf =~ s/^(.*?)\r?\n//;
        return $1;
    };
    while (1) {
        $more->() while $buf !~ /\r?\n\r?\n/;
        my $head = '';
        while ((my $l = $line->()) ne '') { $head .= "$l\n" }
        my ($method, $path) = $head =~ m{^(\S+) (\S+) HTTP/1\.[01]\n} or POSIX::_exit(1);
        my ($body, @trailers) = ('');
        if ($head =~ /^Transfer-Encoding: chunked$/mi) {
            while (1) {
                my ($size) = $line->() =~ /^([0-9a-fA-F]+)(?:[ \t]*;.*)?$/ or POSIX::_exit(1);
                $size = hex $size;
                last if $size == 0;
                $more->() while length $buf < $size + 2;
                $body .= substr($buf, 0, $size, '');
                $buf =~ s/^\r\n// or POSIX::_exit(1);
            }
            while ((my $l = $line->()) ne '') {
                my ($name) = $l =~ /^([!#\$%&'*+.^_`|~0-9A-Za-z-]+):/ or POSIX::_exit(1);
                push @trailers, $name;
            }
        } elsif ($head =~ /^Content-Length: (\d+)$/mi) {
            $more->() while length $buf < $1;
            $body = substr($buf, 0, $1, '');
        }
        my $out = "seen $method $path len=" . length($body) . ' sha1=' . sha1_hex($body)
            . ' trailers=' . join(',', @trailers) . "\n";
        syswrite($c, "HTTP/1.1 200 OK\r\nContent-Length: " . length($out)
            . "\r\nConnection: close\r\n\r\n$out");
        POSIX::_exit(0);
    }
}
EOF

mkdir "$dir/rec";
my $rp = $t->port;
$t->spawn('recorder', cmd => [ $^X, '-e', $RECORDER, $rp, "$dir/rec" ],
    wait_log => qr/^recorder ready/m);

# Everything the recording origin has received, all connections together.
sub recorded {
    return join '', map { slurp($_) } grep { !/\.eof\z/ } glob("$dir/rec/conn-*");
}

# The recording of the connection whose bytes match.
sub conn_file {
    my ($re) = @_;
    for my $f (grep { !/\.eof\z/ } glob("$dir/rec/conn-*")) {
        return $f if slurp($f) =~ $re;
    }
    return undef;
}

my $o  = $t->origin;
my $op = $o->port;

# --- coordinator, nginx with the module, the real host agent ----------------

my $c     = $t->coordinator;
my $tok   = $c->token(owner => 'alice', org => 'acme');
my $lease = $c->lease($tok, slug => 'mod-framing');
my $lid   = $lease->{id};
my $ct    = $c->ticket($tok, $lid, role => 'client');

my $p2 = $t->port;
my $m = Test::Egress::Module->new($t,
    bridge => $c->ws_url($lid, 'client'),
    ticket => $ct->{ticket},
    server => "egress_open_timeout 5s;\negress_header_timeout 3s;\n",
    stream => "server {\n        listen 127.0.0.1:$p2;\n        egress_proxy on;\n"
        . "        egress_absolute_https_cleartext on;\n    }\n");
$m->start;
ok($m->wait_log(qr/egress bridge: session ".+" ready/), 'the module\'s bridge is up');

mkdir "$dir/$_" for qw(home state config);
$t->spawn('agent',
    cmd => [ $t->bin('egress'), 'host', '--id', $lid, '--session', $ct->{sessionID},
        '--coordinator', $c->url, '--allow', "127.0.0.1:$op,127.0.0.1:$rp",
        '--allow-private' ],
    env => { $t->san_env, HOME => "$dir/home", XDG_STATE_HOME => "$dir/state",
        XDG_CONFIG_HOME => "$dir/config", EGRESS_TOKEN => $tok },
    wait_log => qr/(?:re)?connected: lease=/);
ok($m->wait_log(qr/egress bridge: host agent connected/), 'the host agent joined the session');

# One request on a fresh connection to the given proxy port.
sub request_on {
    my ($port, $text) = @_;
    my $cl = $m->client(port => $port);
    $cl->send($text);
    return $cl->read_all(10);
}

my ($r) = $m->request("GET http://127.0.0.1:$op/ip HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
like($r, qr/^HTTP\/1\.1 200 .*\r\n\r\n127\.0\.0\.1\n\z/s, 'a plain request goes through');

# --- absolute-form https:// -------------------------------------------------

($r) = $m->request("GET https://127.0.0.1:$rp/https-refused HTTP/1.1\r\nHost: a\r\n\r\n");
is(status_of($r), 400, 'absolute-form https:// URL: 400');
like(body_of($r), qr/^https:\/\/ URLs are not proxied in absolute form .*use CONNECT host:443/,
    '... and the body says to use CONNECT');
($r) = $m->request("POST HTTPS://127.0.0.1:$rp/https-refused-post HTTP/1.1\r\nHost: a\r\n"
        . "Content-Length: 5\r\n\r\nhello");
is(status_of($r), 400, '... also with a body and an upper-case scheme');
like($m->error_log, qr/bad proxy request: absolute-form https:\/\/ URL/,
    'the error log says why');

# With egress_absolute_https_cleartext on: plain HTTP to the URL's port.
$r = request_on($p2, "GET https://127.0.0.1:$rp/https-cleartext HTTP/1.1\r\nHost: a\r\n\r\n");
like($r, qr/\r\n\r\nseen GET \/https-cleartext len=0/,
    'egress_absolute_https_cleartext on: the request is forwarded');
ok(conn_file(qr/\AGET \/https-cleartext HTTP\/1\.1\r\nHost: 127\.0\.0\.1:$rp\r\n/),
    '... in origin-form, as plain HTTP (no TLS) to the URL\'s port');
$r = request_on($p2, "GET https://denied.test/ HTTP/1.1\r\nHost: a\r\n\r\n");
is(status_of($r), 403, '... to port 443 when the URL names none (refused by the allowlist here)');
ok(wait_until(sub { $m->access_log =~ /target=denied\.test:443 .*egress_status=403/ }),
    '... as the access log shows');

# --- malformed chunked bodies sent with the head: 400, nothing forwarded ----

my @bad = (
    [ 'bare-lf',      "5\nhello\n0\n\n",                       'bare LF line ends' ],
    [ 'huge-hex',     "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 'oversized hex chunk size' ],
    [ 'minus',        "-5\r\nhello\r\n0\r\n\r\n",              'chunk size -5' ],
    [ 'hex-prefix',   "0x5\r\nhello\r\n0\r\n\r\n",             'chunk size 0x5' ],
    [ 'no-crlf',      "5\r\nhelloXX0\r\n\r\n",                 'missing CRLF after chunk data' ],
    [ 'lf-after-data', "5\r\nhello\n0\r\n\r\n",                'bare LF after chunk data' ],
    [ 'smuggle',      "5\r\nhello\r\n0\n\nGET http://127.0.0.1:$rp/smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        'a second request behind a bare-LF terminator' ],
    [ 'digits',       "00000000000000005\r\nhello\r\n0\r\n\r\n", '17 digits of chunk size' ],
    [ 'long-ext',     "5;" . ('x' x 5000) . "\r\nhello\r\n0\r\n\r\n", 'a 5000-byte chunk extension' ],
    [ 'ext-ctl',      "5;a=\x01\r\nhello\r\n0\r\n\r\n",        'a control byte in an extension' ],
    [ 'trailer-lf',   "0\r\nX-T: 1\n\r\n",                     'bare LF in a trailer' ],
    [ 'trailer-fold', "0\r\nX-T: 1\r\n  more\r\n\r\n",         'a folded trailer line' ],
    [ 'ws-size',      "5 \r\nhello\r\n0\r\n\r\n",              'whitespace after a size without extension' ],
);

for my $b (@bad) {
    my ($tag, $body, $name) = @$b;
    ($r) = $m->request("POST http://127.0.0.1:$rp/early-$tag HTTP/1.1\r\nHost: a\r\n"
            . "Transfer-Encoding: chunked\r\n\r\n$body");
    is(status_of($r), 400, "400 for $name") or diag($r);
    like(body_of($r), qr/^malformed chunked request body: \S/, '... saying what is wrong');
}
like($m->error_log, qr/bad proxy request: malformed chunked request body: bare LF/,
    'the error log names the framing error');

# --- bad framing after the head went out: 400, the stream is closed ---------

my @late = (
    [ 'bare-lf',    "5\r\nhello\r\n", "0\n\n",                       'bare LF terminator' ],
    [ 'huge-hex',   "5\r\nhello\r\n", "ffffffffffffffffffff\r\n",    'oversized hex chunk size' ],
    [ 'minus',      "5\r\nhello\r\n", "-5\r\nhello\r\n",             'chunk size -5' ],
    [ 'hex-prefix', "5\r\nhello\r\n", "0x5\r\nhello\r\n0\r\n\r\n",   'chunk size 0x5' ],
    [ 'no-crlf',    "5\r\nhel",       "loXX0\r\n\r\n",               'missing CRLF after chunk data' ],
    [ 'smuggle',    "5\r\nhello\r\n",
        "0\n\nGET http://127.0.0.1:$rp/smuggled-late HTTP/1.1\r\nHost: a\r\n\r\n",
        'a second request behind a bare-LF terminator' ],
    [ 'trailers',   "0\r\n", join('', map { "X-T$_: " . ('t' x 1000) . "\r\n" } 1 .. 20) . "\r\n",
        'trailers over 16 KiB' ],
);

for my $l (@late) {
    my ($tag, $first, $rest, $name) = @$l;
    my $cl = $m->client;
    $cl->send("POST http://127.0.0.1:$rp/late-$tag HTTP/1.1\r\nHost: a\r\n"
            . "Transfer-Encoding: chunked\r\n\r\n$first");
    ok(wait_until(sub {
                conn_file(qr/\APOST \/late-\Q$tag\E HTTP\/1\.1\r\n(?:[^\r\n]+\r\n)*\r\n\Q$first\E\z/) }),
        "late $name: the head and the good part reached the origin");
    $cl->send($rest);
    $r = $cl->read_all(10);
    is(status_of($r), 400, "... then the bad part: 400") or diag($r);
    ok($cl->eof, '... and the browser connection is closed');
    my $f = conn_file(qr/\APOST \/late-\Q$tag\E /);
    ok($f && wait_until(sub { -e "$f.eof" }), '... and so is the stream to the origin');
}
like($m->error_log, qr/egress stream \d+: malformed chunked request body: bare LF .*, stream closed/,
    'the error log says the stream was closed and why');

# --- well-formed chunked bodies still work ----------------------------------

my $good = "5;name=v\r\nhello\r\n1A ;x=\"a b\"\r\n" . ('z' x 26) . "\r\n"
    . "0;last\r\nX-Sum: 1\r\nX-Other:\tv w\r\n\r\n";
my $cl = $m->client;
$cl->send("POST http://127.0.0.1:$rp/good HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
$cl->send($_) for unpack('(a9)*', $good);    # across several reads
$r = $cl->take_response;
like($r, qr/\r\n\r\nseen POST \/good len=31 sha1=${\ sha1_hex('hello' . ('z' x 26))} trailers=X-Sum,X-Other\n\z/,
    'a chunked body with extensions and trailers reaches the origin intact');
like(recorded(), qr/\r\nTransfer-Encoding: chunked\r\n(?:[^\r\n]+\r\n)*\r\n\Q$good\E/,
    '... byte for byte');
$cl->send("GET http://127.0.0.1:$op/after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
like($cl->read_all(10), qr/ok GET \/after /, '... and the next request on the connection works');

# Pipelined right behind a complete chunked body: a request of its own.
$cl = $m->client;
$cl->send("POST http://127.0.0.1:$op/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        . "5\r\nhello\r\n0\r\n\r\nGET http://127.0.0.1:$op/second HTTP/1.1\r\nHost: a\r\n"
        . "Connection: close\r\n\r\n");
my $r1 = $cl->take_response;
like($r1, qr/len=5 sha1=${\ sha1_hex('hello')}/, 'a chunked body followed by a pipelined request');
like($cl->read_all(10), qr/ok GET \/second /, '... which is answered on its own');

# A head of short LF-only lines grows when rewritten with CRLF.
my $lf = "GET http://127.0.0.1:$rp/lf-only HTTP/1.1\n" . join('', map { "a$_:b\n" } 1 .. 1500) . "\n";
($r) = $m->request($lf);
like($r, qr/\r\n\r\nseen GET \/lf-only len=0/, 'an LF-only head of 1500 short lines is forwarded');
like(recorded(), qr/\r\na1500: b\r\nConnection: close\r\n\r\n/, '... rewritten completely with CRLF');

# Connection naming a header that frames the body: the rewrite would drop it
# and the origin would read the body as the next request.
my @hop = (
    [ 'cl', "Content-Length: 48\r\nConnection: content-length",
        "GET http://127.0.0.1:$rp/smuggled-hop HTTP/1.1\r\nHost: a\r\n\r\n" ],
    [ 'te', "Transfer-Encoding: chunked\r\nProxy-Connection: keep-alive, Transfer-Encoding",
        "5\r\nhello\r\n0\r\n\r\n" ],
);
for my $h (@hop) {
    my ($tag, $hdrs, $body) = @$h;
    ($r) = $m->request("POST http://127.0.0.1:$rp/hop-$tag HTTP/1.1\r\nHost: a\r\n$hdrs\r\n\r\n$body");
    is(status_of($r), 400, "400 when Connection names a framing header ($tag)") or diag($r);
}

# --- nothing of the refused requests ever reached an origin -----------------

($r) = $m->request("GET http://127.0.0.1:$rp/sentinel HTTP/1.1\r\nHost: a\r\n\r\n");
like($r, qr/seen GET \/sentinel /, 'a last request reaches the recording origin');
my $seen = recorded();
unlike($seen, qr/https-refused/, 'no refused https:// request reached the origin');
unlike($seen, qr/\/early-/, 'no head with known-bad chunked framing reached the origin');
unlike($seen, qr/smuggled/, 'no smuggled request reached the origin');
unlike($seen, qr/\/hop-/, 'no request whose Connection named a framing header reached the origin');

my $log = $m->access_log;
my $n400 = () = $log =~ /egress_status=400 status=400/g;
is($n400, 2 + @bad + @late + @hop, 'the access log shows every 400');
unlike($m->error_log . $log, qr/egt_/, 'no ticket material in any log');

$t->done;
done_testing;
