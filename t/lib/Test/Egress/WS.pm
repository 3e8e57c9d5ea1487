package Test::Egress::WS;

# A small blocking WebSocket client for tests (RFC 6455 handshake written
# here so tests control every header; framing by Protocol::WebSocket::Frame).
#
#   my $ws = Test::Egress::WS->connect(host => '127.0.0.1', port => $p,
#       path => '/v1/leases/L/egress/host', headers => {...},
#       protocols => ['egress.v2', 'egress.v1']);
#   $ws->protocol;                    # negotiated subprotocol or ''
#   $ws->send_json({type => 'open_ok', id => 1, window => 262144});
#   $ws->send_binary(pack('N', 1) . $bytes);
#   my $m = $ws->recv(5);             # {type => 'text'|'binary'|'close', data, code, reason}
#   my $j = $ws->recv_json(5);        # next text message decoded (skips nothing)
#   my $p = $ws->poll;                # a message already there, or undef (no wait)
#   my $h = Test::Egress::WS->connect_start(...);   # handshake sent, not read
#   my $ws2 = Test::Egress::WS->connect_finish($h);
#   $ws->abort(reset => 1);           # drop TCP without a close frame (RST)

use strict;
use warnings;

use Carp qw(croak);
use Digest::SHA qw(sha1_base64);
use IO::Select;
use IO::Socket::IP;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Protocol::WebSocket::Frame;
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time);

my $JSON = JSON::PP->new->canonical;
my $GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

sub connect {
    my ($class, %o) = @_;
    return $class->connect_finish($class->connect_start(%o));
}

# The two halves of connect: connect_start sends the handshake and returns at
# once (so a test can race several upgrades), connect_finish reads the answer
# and returns what connect returns.
sub connect_start {
    my ($class, %o) = @_;
    my $s = IO::Socket::IP->new(
        PeerHost => $o{host},
        PeerPort => $o{port},
        Proto    => 'tcp',
        Timeout  => 5,
    ) or croak "connect $o{host}:$o{port}: $!";
    $s->autoflush(1);
    binmode $s;

    my $key = encode_base64(join('', map { chr(int(rand(256))) } 1 .. 16), '');
    my $req = "GET $o{path} HTTP/1.1\r\n"
        . "Host: $o{host}:$o{port}\r\n"
        . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n";
    $req .= "Sec-WebSocket-Protocol: " . join(', ', @{ $o{protocols} }) . "\r\n"
        if $o{protocols} && @{ $o{protocols} };
    for my $h (sort keys %{ $o{headers} || {} }) {
        $req .= "$h: $o{headers}{$h}\r\n";
    }
    $req .= "\r\n";
    syswrite($s, $req);
    return { s => $s, key => $key };
}

sub connect_finish {
    my ($class, $p) = @_;
    my ($s, $key) = @{$p}{qw(s key)};
    my $head = '';
    my $sel  = IO::Select->new($s);
    my $deadline = time + 10 * ($ENV{EGRESS_SAN} ? 3 : 1);
    while ($head !~ /\r\n\r\n/) {
        croak "handshake timeout" if time > $deadline;
        next unless $sel->can_read(0.2);
        my $n = sysread($s, my $c, 16384);
        last unless $n;
        $head .= $c;
    }
    my ($hdr, $rest) = split /\r\n\r\n/, $head, 2;
    my ($status) = $hdr =~ m{^HTTP/1\.[01] (\d{3})};
    $status //= 0;
    if ($status != 101) {
        # Refused: read the body too (Content-Length or until close).
        my ($len) = $hdr =~ /^Content-Length:\s*(\d+)/mi;
        $rest //= '';
        while (!defined $len || length($rest) < $len) {
            last if time > $deadline;
            next unless $sel->can_read(0.2);
            my $n = sysread($s, my $c, 16384);
            last unless $n;
            $rest .= $c;
        }
        close $s;
        return wantarray ? (undef, $status, $rest, $hdr) : undef;
    }
    my ($accept) = $hdr =~ /^Sec-WebSocket-Accept:\s*(\S+)/mi;
    my $want = sha1_base64($key . $GUID) . '=';
    croak "bad Sec-WebSocket-Accept" unless defined $accept && $accept eq $want;
    my ($proto) = $hdr =~ /^Sec-WebSocket-Protocol:\s*(\S+)/mi;

    my $self = bless {
        s        => $s,
        sel      => $sel,
        proto    => $proto // '',
        headers  => $hdr,
        frame    => Protocol::WebSocket::Frame->new(max_payload_size => 0,
            max_fragments_amount => 100000),
        queue    => [],
        closed   => 0,
    }, $class;
    $self->{frame}->append($rest) if defined $rest && length $rest;
    return wantarray ? ($self, 101, '', $hdr) : $self;
}

sub protocol { $_[0]{proto} }
sub socket   { $_[0]{s} }
sub closed   { $_[0]{closed} }
sub pings    { $_[0]{pings} // 0 }    # pings received (and answered) so far

sub _send {
    my ($self, $type, $data, %o) = @_;
    my $f = Protocol::WebSocket::Frame->new(
        buffer           => $data,
        type             => $type,
        masked           => 1,
        max_payload_size => 0,
        (defined $o{code} ? () : ()),
    );
    my $bytes = $f->to_bytes;
    my $off   = 0;
    while ($off < length $bytes) {
        my $n = syswrite($self->{s}, $bytes, length($bytes) - $off, $off);
        return 0 unless defined $n;
        $off += $n;
    }
    return 1;
}

sub send_text   { $_[0]->_send('text',   $_[1]) }
sub send_binary { $_[0]->_send('binary', $_[1]) }
sub send_json   { $_[0]->_send('text',   $JSON->encode($_[1])) }

# Sends a raw, already-built frame (for malformed-frame tests).
sub send_raw {
    my ($self, $bytes) = @_;
    return syswrite($self->{s}, $bytes);
}

sub send_close {
    my ($self, $code, $reason) = @_;
    $self->_send('close', pack('n', $code // 1000) . ($reason // ''));
}

# Next message: {type, data} for text/binary, {type => 'close', code, reason}
# for a close frame or {type => 'eof'} when the TCP connection ends. undef on
# timeout. Pings are answered and skipped.
sub recv {
    my ($self, $timeout) = @_;
    $timeout = ($timeout // 5) * ($ENV{EGRESS_SAN} ? 3 : 1);
    my $deadline = time + $timeout;
    while (1) {
        return shift @{ $self->{queue} } if @{ $self->{queue} };
        my $f = $self->{frame};
        while (defined(my $msg = $f->next_bytes)) {
            if ($f->is_text || $f->is_binary) {
                push @{ $self->{queue} }, { type => $f->is_text ? 'text' : 'binary', data => $msg };
            } elsif ($f->is_close) {
                my ($code, $reason) = length($msg) >= 2 ? (unpack('n', $msg), substr($msg, 2)) : (1005, '');
                $self->{closed} = 1;
                push @{ $self->{queue} }, { type => 'close', code => $code, reason => $reason };
            } elsif ($f->is_ping) {
                $self->{pings}++;
                $self->_send('pong', $msg);
            }
        }
        return shift @{ $self->{queue} } if @{ $self->{queue} };
        return { type => 'eof' } if $self->{eof};
        my $left = $deadline - time;
        return undef if $left <= 0;
        next unless $self->{sel}->can_read($left > 0.5 ? 0.5 : $left);
        my $n = sysread($self->{s}, my $buf, 262144);
        if (!$n) {
            $self->{eof} = 1;
            next;
        }
        $f->append($buf);
    }
}

# The next message that has already arrived, without waiting (pings that
# arrived are answered); undef when there is none. Lets a test keep idle
# sockets alive and check that nothing unexpected came.
sub poll {
    my ($self) = @_;
    while ($self->{s} && !$self->{eof} && $self->{sel}->can_read(0)) {
        my $n = sysread($self->{s}, my $buf, 262144);
        if (!$n) {
            $self->{eof} = 1;
            last;
        }
        $self->{frame}->append($buf);
    }
    return $self->recv(0);
}

# Next text message decoded as JSON (croaks on a non-text message).
sub recv_json {
    my ($self, $timeout) = @_;
    my $m = $self->recv($timeout) or return undef;
    return $m unless $m->{type} eq 'text';
    return $JSON->decode($m->{data});
}

# Skips messages until one matches the predicate; returns it (undef on timeout).
sub recv_until {
    my ($self, $pred, $timeout) = @_;
    my $deadline = time + ($timeout // 5) * ($ENV{EGRESS_SAN} ? 3 : 1);
    while (time < $deadline) {
        my $m = $self->recv(($deadline - time) / ($ENV{EGRESS_SAN} ? 3 : 1)) or return undef;
        if ($m->{type} eq 'text') {
            my $j = eval { $JSON->decode($m->{data}) };
            $m->{json} = $j;
        }
        return $m if $pred->($m);
        return undef if $m->{type} eq 'close' || $m->{type} eq 'eof';
    }
    return undef;
}

# Drops the TCP connection without a close frame; reset => 1 sends an RST
# (SO_LINGER 0) instead of a FIN.
sub abort {
    my ($self, %o) = @_;
    return unless $self->{s};
    setsockopt($self->{s}, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)) if $o{reset};
    CORE::close($self->{s});
    $self->{s} = undef;
}

sub close {
    my ($self) = @_;
    return unless $self->{s};
    $self->send_close(1000) unless $self->{closed};
    CORE::close($self->{s});
    $self->{s} = undef;
}

sub DESTROY {
    my ($self) = @_;
    CORE::close($self->{s}) if $self->{s};
}

1;
