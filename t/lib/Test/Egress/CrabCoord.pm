package Test::Egress::CrabCoord;

# A coordinator double that behaves like crabbox's (worker/src/fleet.ts,
# its Node server) where our parts can tell: it accepts any ticket, echoes
# the first offered WebSocket subprotocol, never sends hello or peer, relays
# each message to the other role's socket without reading it, closes an
# older socket of the same role with 1012 "replaced by a newer egress
# host|client" and the other role's socket with 1011 when one leaves. Its
# HTTP API has only the status (GET .../egress/status) and ticket mint
# (POST .../egress/ticket); there is no DELETE.
#
#   my $d = Test::Egress::CrabCoord->start($t);
#   $d->url; $d->ws_url($lease, 'host'); $d->log;

use strict;
use warnings;

use Carp qw(croak);
use Digest::SHA qw(sha1_base64);
use IO::Select;
use IO::Socket::IP;
use JSON::PP;
use Protocol::WebSocket::Frame;

my $JSON = JSON::PP->new->canonical;
my $GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

sub start {
    my ($class, $t, %o) = @_;
    my $name = $o{name} // 'crabcoord';
    my $port = $t->port;
    my @cmd = ($^X, '-I' . $t->root . '/t/lib', '-MTest::Egress::CrabCoord', '-e',
        'Test::Egress::CrabCoord::main(@ARGV)', '--', $port);
    $t->spawn($name, cmd => \@cmd, wait_log => qr/^crabcoord ready/m, timeout => 10);
    return bless { t => $t, name => $name, port => $port }, $class;
}

sub url    { "http://127.0.0.1:$_[0]{port}" }
sub ws_url { "ws://127.0.0.1:$_[0]{port}/v1/leases/$_[1]/egress/$_[2]" }
sub log    { $_[0]{t}->log_of($_[0]{name}) }
sub stop   { $_[0]{t}->stop($_[0]{name}) }

# ---- the double itself (its own process) -----------------------------------

my (%C, %ROLE, $SEL);    # conn by fileno; {lease}{role} => conn

sub main {
    my ($port) = @_;
    $| = 1;
    $SIG{PIPE} = 'IGNORE';
    my $l = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $port, Listen => 64,
        ReuseAddr => 1) or die "crabcoord: listen: $!\n";
    $SEL = IO::Select->new($l);
    print "crabcoord ready port=$port\n";
    while (1) {
        for my $fh ($SEL->can_read(1)) {
            if ($fh == $l) {
                my $s = $l->accept or next;
                binmode $s;
                $C{ fileno $s } = { s => $s, in => '', ws => 0 };
                $SEL->add($s);
                next;
            }
            my $c = $C{ fileno $fh } or next;
            my $n = sysread($fh, my $buf, 262144);
            if (!$n) {
                drop($c, 1011, 'egress peer disconnected');
                next;
            }
            if ($c->{ws}) {
                $c->{frame}->append($buf);
                while (defined(my $msg = $c->{frame}->next_bytes)) {
                    my $f = $c->{frame};
                    if ($f->is_close) {
                        drop($c, 1011, "egress $c->{role} disconnected");
                        last;
                    } elsif ($f->is_ping) {
                        send_frame($c, 'pong', $msg);
                    } elsif ($f->is_text || $f->is_binary) {
                        my $peer = $ROLE{ $c->{lease} }{ $c->{role} eq 'host' ? 'client' : 'host' };
                        # crabbox relays without reading; with no peer the frame is dropped
                        send_frame($peer, $f->is_text ? 'text' : 'binary', $msg) if $peer;
                    }
                }
                next;
            }
            $c->{in} .= $buf;
            http($c) if $c->{in} =~ /\r\n\r\n/;
        }
    }
}

sub send_frame {
    my ($c, $type, $data, %o) = @_;
    return unless $c && $c->{s};
    my $bytes = Protocol::WebSocket::Frame->new(buffer => $data, type => $type,
        max_payload_size => 0)->to_bytes;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($c->{s}, $bytes, length($bytes) - $off, $off);
        last unless defined $n;
        $off += $n;
    }
}

sub close_ws {
    my ($c, $code, $reason) = @_;
    return unless $c && $c->{s};
    print "crabcoord: close $c->{role} $code $reason\n";
    send_frame($c, 'close', pack('n', $code) . $reason);
    forget($c);
}

sub forget {
    my ($c) = @_;
    return unless $c->{s};
    $SEL->remove($c->{s});
    delete $C{ fileno $c->{s} };
    close $c->{s};
    $c->{s} = undef;
    if ($c->{ws} && ($ROLE{ $c->{lease} }{ $c->{role} } // 0) == $c) {
        delete $ROLE{ $c->{lease} }{ $c->{role} };
    }
}

# One side left: crabbox closes the other side with 1011.
sub drop {
    my ($c, $code, $reason) = @_;
    my $was = $c->{ws} && ($ROLE{ $c->{lease} }{ $c->{role} } // 0) == $c;
    forget($c);
    return unless $was;
    print "crabcoord: $c->{role} left\n";
    my $peer = $ROLE{ $c->{lease} }{ $c->{role} eq 'host' ? 'client' : 'host' };
    close_ws($peer, $code, $reason) if $peer;
}

sub reply {
    my ($c, $status, $body) = @_;
    my $text = { 200 => 'OK', 404 => 'Not Found', 400 => 'Bad Request' }->{$status} // 'X';
    syswrite($c->{s}, "HTTP/1.1 $status $text\r\nContent-Type: application/json\r\n"
            . 'Content-Length: ' . length($body) . "\r\nConnection: close\r\n\r\n$body");
    forget($c);
}

sub http {
    my ($c) = @_;
    my ($head) = $c->{in} =~ /^(.*?)\r\n\r\n/s;
    my ($method, $path) = $head =~ /^(\S+) (\S+)/;
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } split /\r\n/, $head;
    if ($method eq 'GET' && $path =~ m{^/v1/leases/([^/]+)/egress/(host|client)$}
        && lc($h{upgrade} // '') eq 'websocket') {
        my ($lease, $role) = ($1, $2);
        my ($first) = split /\s*,\s*/, $h{'sec-websocket-protocol'} // '';
        my $accept = sha1_base64(($h{'sec-websocket-key'} // '') . $GUID) . '=';
        syswrite($c->{s}, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                . "Connection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n"
                . ($first ? "Sec-WebSocket-Protocol: $first\r\n" : '') . "\r\n");
        @$c{qw(ws lease role)} = (1, $lease, $role);
        $c->{frame} = Protocol::WebSocket::Frame->new(max_payload_size => 0);
        my $rest = substr($c->{in}, length($head) + 4);
        $c->{frame}->append($rest) if length $rest;
        my $old = $ROLE{$lease}{$role};
        $ROLE{$lease}{$role} = $c;
        print "crabcoord: $role connected lease=$lease protocol=" . ($first // '-') . "\n";
        close_ws($old, 1012, "replaced by a newer egress $role") if $old;
        return;
    }
    if ($method eq 'GET' && $path =~ m{^/v1/leases/([^/]+)/egress/status$}) {
        my $r = $ROLE{$1} // {};
        return reply($c, 200, $JSON->encode({ leaseID => $1, active => JSON::PP::true,
                    sessionID => 'egress_double', profile => '', allow => [],
                    hostConnected => $r->{host} ? JSON::PP::true : JSON::PP::false,
                    clientConnected => $r->{client} ? JSON::PP::true : JSON::PP::false }));
    }
    if ($method eq 'POST' && $path =~ m{^/v1/leases/([^/]+)/egress/ticket$}) {
        return reply($c, 200, $JSON->encode({ ticket => 'egress_' . ('ab' x 16), leaseID => $1,
                    sessionID => 'egress_double', expiresAt => '2099-01-01T00:00:00Z' }));
    }
    return reply($c, 404, '{"error":"not_found"}');
}

1;
