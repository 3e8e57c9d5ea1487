#!/usr/bin/perl
# egress-coordinator: its own WebSocket framing on agent sockets (RFC 6455
# edges lws used to let through or answer with a bare TCP drop), plain and
# over TLS: an unmasked client frame, a ping above 125 bytes and a fragmented
# ping are closed with 1002, a message whose fragments pass 2 MiB with 1009;
# a ping is answered with its payload, a close is echoed. The front door:
# a head above 8 KiB is answered 431, a malformed one 400, one that never
# ends is dropped after 10 s, and requests lws serves end their connection
# (an upgrade on a kept-alive one would reach lws).

use strict;
use warnings;

use Test::More;
use HTTP::Tiny;
use IO::Select;
use IO::Socket::IP;
use IO::Socket::SSL;
use JSON::PP;
use Time::HiRes qw(time);
use Test::Egress;

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator');
my $dir = $t->dir;
my $slow = $t->san ? 3 : 1;
$SIG{PIPE} = 'IGNORE';    # the coordinator may close while we still write

my ($rc, $out) = $t->run([ 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
        '-subj', '/CN=127.0.0.1', '-keyout', "$dir/key.pem", '-out', "$dir/cert.pem" ]);
is($rc, 0, 'self-signed certificate') or diag $out;

# Two coordinators: plain and TLS, each with its own database and lease.
my %srv;
for my $tls (0, 1) {
    my $name = $tls ? 'tls' : 'plain';
    my $port = $t->port;
    my $db = "$dir/$name.db";
    my ($r, $o) = $t->run([ $t->bin('egress-coordinator'), '--db', $db, 'token', 'add', '--owner',
            'alice', '--org', 'acme' ], env => { $t->san_env }, stderr_to => '/dev/null');
    my ($tok) = $o =~ /^(egk_\S+)$/m;
    $t->spawn($name, cmd => [ $t->bin('egress-coordinator'), '--listen', "127.0.0.1:$port", '--db', $db,
            ($tls ? ('--tls-cert', "$dir/cert.pem", '--tls-key', "$dir/key.pem") : ()) ],
        env => { $t->san_env }, wait_port => $port);
    my $base = ($tls ? 'https' : 'http') . "://127.0.0.1:$port";
    my $http = HTTP::Tiny->new(verify_SSL => 0, timeout => 10 * $slow);
    my $res = $http->post("$base/v1/leases", { headers => { Authorization => "Bearer $tok",
                'Content-Type' => 'application/json' }, content => '{"slug":"frames","ttlSeconds":600}' });
    is($res->{status}, 201, "$name: lease") or diag $res->{content};
    $srv{$tls} = { name => $name, port => $port, tok => $tok, http => $http, base => $base };
}

sub ticket {
    my ($s) = @_;
    my $res = $s->{http}->post("$s->{base}/v1/leases/frames/egress/ticket",
        { headers => { Authorization => "Bearer $s->{tok}", 'Content-Type' => 'application/json' },
          content => '{"role":"client"}' });
    return $res->{status} == 201 ? decode_json($res->{content})->{ticket} : '';
}

sub connect_raw {
    my ($s, $tls) = @_;
    my %o = (PeerHost => '127.0.0.1', PeerPort => $s->{port}, Timeout => 5 * $slow);
    my $sock = $tls ? IO::Socket::SSL->new(%o, SSL_verify_mode => 0) : IO::Socket::IP->new(%o);
    die "connect: $! $SSL_ERROR" unless $sock;
    binmode $sock;
    return $sock;
}

# Reads whatever arrives within $secs (or until EOF) and appends it to $$buf;
# 0 at EOF.
sub read_some {
    my ($sock, $buf, $secs) = @_;
    my $sel = IO::Select->new($sock);
    return 1 unless ($sock->can("pending") && $sock->pending) || $sel->can_read($secs);
    my $n = sysread($sock, my $chunk, 65536);
    return 0 unless $n;
    $$buf .= $chunk;
    return 1;
}

# Upgrades with a fresh client ticket; returns the socket and the bytes after the 101.
sub upgrade {
    my ($s, $tls) = @_;
    my $sock = connect_raw($s, $tls);
    my $ticket = ticket($s);
    print {$sock} "GET /v1/leases/frames/egress/client HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        . "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        . "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: egress.v2\r\n"
        . "Authorization: Bearer $ticket\r\n\r\n";
    my $buf = '';
    my $deadline = time + 10 * $slow;
    while ($buf !~ /\r\n\r\n/ && time < $deadline) {
        last unless read_some($sock, \$buf, 0.5);
    }
    my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
    return ($head // '', $sock, $rest // '');
}

# One server frame off $$buf: (fin, opcode, payload) or () when incomplete.
sub take_frame {
    my ($buf) = @_;
    return () if length($$buf) < 2;
    my ($b0, $b1) = unpack('CC', $$buf);
    die 'server frame masked' if $b1 & 0x80;
    my ($len, $off) = ($b1 & 0x7f, 2);
    if ($len == 126) {
        return () if length($$buf) < 4;
        ($len, $off) = (unpack('x2 n', $$buf), 4);
    } elsif ($len == 127) {
        return () if length($$buf) < 10;
        ($len, $off) = (unpack('x2 Q>', $$buf), 10);
    }
    return () if length($$buf) < $off + $len;
    my $p = substr($$buf, $off, $len);
    substr($$buf, 0, $off + $len, '');
    return ($b0 & 0x80, $b0 & 0x0f, $p);
}

# Reads frames until one with opcode $want (0x8 close, 0xa pong); returns its
# payload, undef on timeout or EOF.
sub wait_frame {
    my ($sock, $buf, $want) = @_;
    my $deadline = time + 10 * $slow;
    while (time < $deadline) {
        while (my ($fin, $op, $p) = take_frame($buf)) {
            return $p if $op == $want;
        }
        return undef unless read_some($sock, $buf, 0.5);
    }
    return undef;
}

sub close_code {
    my ($p) = @_;
    return defined $p && length($p) >= 2 ? unpack('n', $p) : -1;
}

# A client frame: b0 (FIN|opcode), payload, masked unless $unmasked.
sub frame {
    my ($b0, $p, $unmasked) = @_;
    my $len = length $p;
    my $m = $unmasked ? 0 : 0x80;
    my $h = chr($b0) . ($len < 126 ? chr($m | $len)
        : $len < 65536 ? chr($m | 126) . pack('n', $len) : chr($m | 127) . pack('Q>', $len));
    return $h if $unmasked && !length $p;
    return $h . $p if $unmasked;
    my $key = pack('N', int(rand(2**32)));
    my $masked = $p ^ substr($key x (int($len / 4) + 1), 0, $len);
    return $h . $key . $masked;
}

sub send_all {
    my ($sock, $bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($sock, $bytes, length($bytes) - $off, $off);
        return 0 unless $n;
        $off += $n;
    }
    return 1;
}

for my $tls (0, 1) {
    my $s = $srv{$tls};
    my $n = $s->{name};

    my ($head, $sock, $buf) = upgrade($s, $tls);
    like($head, qr{^HTTP/1\.1 101}, "$n: upgrade accepted");
    like($head, qr{^Sec-WebSocket-Protocol: egress\.v2}mi, "$n: egress.v2 chosen");
    send_all($sock, frame(0x89, 'hello ping'));
    is(wait_frame($sock, \$buf, 0xa), 'hello ping', "$n: a ping is answered with its payload");
    send_all($sock, frame(0x88, pack('n', 1000) . 'bye'));
    is(close_code(wait_frame($sock, \$buf, 0x8)), 1000, "$n: a close is echoed");
    close $sock;

    ($head, $sock, $buf) = upgrade($s, $tls);
    send_all($sock, frame(0x82, "\0\0\0\1abc", 1));
    is(close_code(wait_frame($sock, \$buf, 0x8)), 1002, "$n: unmasked client frame: 1002");
    close $sock;

    ($head, $sock, $buf) = upgrade($s, $tls);
    send_all($sock, frame(0x89, 'p' x 126));
    is(close_code(wait_frame($sock, \$buf, 0x8)), 1002, "$n: ping with 126 bytes: 1002");
    close $sock;

    ($head, $sock, $buf) = upgrade($s, $tls);
    send_all($sock, frame(0x09, 'half a ping'));
    is(close_code(wait_frame($sock, \$buf, 0x8)), 1002, "$n: fragmented ping: 1002");
    close $sock;

    ($head, $sock, $buf) = upgrade($s, $tls);
    my $ok = send_all($sock, frame(0x02, pack('N', 1) . ('f' x 60000)));
    for (1 .. 40) {
        last unless $ok && ($ok = send_all($sock, frame(0x00, 'f' x 60000)));
    }
    is(close_code(wait_frame($sock, \$buf, 0x8)), 1009, "$n: fragments above 2 MiB: 1009");
    close $sock;

    # ---- the front door ------------------------------------------------------
    $sock = connect_raw($s, $tls);
    send_all($sock, "GET /healthz HTTP/1.1\r\nHost: x\r\n" . ("X-Pad: " . ('a' x 1000) . "\r\n") x 10);
    $buf = '';
    1 while $buf !~ /\r\n\r\n/ && read_some($sock, \$buf, 5 * $slow) && length($buf) < 65536;
    like($buf, qr{^HTTP/1\.1 431}, "$n: a head above 8 KiB: 431");
    close $sock;

    $sock = connect_raw($s, $tls);
    send_all($sock, "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n");
    $buf = '';
    1 while $buf !~ /\r\n\r\n/ && read_some($sock, \$buf, 5 * $slow) && length($buf) < 65536;
    like($buf, qr{^HTTP/1\.1 400}, "$n: a malformed head: 400");
    close $sock;

    # One request per connection: an upgrade on a keep-alive connection
    # (a proxy's pool) would reach lws, not the front door.
    $sock = connect_raw($s, $tls);
    send_all($sock, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    $buf = '';
    1 while read_some($sock, \$buf, 5 * $slow) && length($buf) < 65536;
    like($buf, qr{^HTTP/1\.1 200.*^connection: close\r\n.*"ok":true}ms,
        "$n: a request is answered with Connection: close, then the connection ends");
    close $sock;

    if (!$tls) {
        # A head that never ends: the connection is dropped after 10 s.
        $sock = connect_raw($s, $tls);
        send_all($sock, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
        my $t0 = time;
        $buf = '';
        1 while read_some($sock, \$buf, 1) && time - $t0 < 20 * $slow;
        my $took = time - $t0;
        ok($took >= 8 && $took < 15 * $slow, sprintf("$n: an unfinished head is dropped after 10 s (%.1f s)", $took));
        is($buf, '', "$n: ... without an answer");
        close $sock;
    }

    my $log = $t->log_of($n);
    like($log, qr/frame_rejected .*error=unmasked/, "$n: the unmasked frame is logged");
    like($log, qr/frame_rejected .*error=control_too_big/, "$n: the oversize ping is logged");
    unlike($log, qr/egt_|egr_/, "$n: no ticket or resume secret in the log");
    like($log, qr/head_timeout addr=127\.0\.0\.1/, "$n: the dropped head is logged") unless $tls;
}

$t->done;
done_testing;
