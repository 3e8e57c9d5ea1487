package Test::Egress::Module;

# Helpers for the nginx module tests (t/3xx): a stream{} block for an
# egress proxy, a raw proxy client that keeps its connection, and the
# ticket plumbing between the real coordinator and nginx.
#
#   my $m = Test::Egress::Module->new($t, bridge => $url);
#   $m->start;                                   # nginx with the module
#   my $r = $m->request("CONNECT a:1 HTTP/1.1\r\n\r\n");
#   my $c = $m->client;  $c->send(...);  $c->read_until(qr/\r\n\r\n/);

use strict;
use warnings;

use Carp qw(croak);
use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(time sleep);

use Test::Egress qw(slurp spew);

sub new {
    my ($class, $t, %o) = @_;
    my $self = bless {
        t       => $t,
        port    => $o{port} // $t->port,
        bridge  => $o{bridge} // 'ws://127.0.0.1:' . $t->port . '/v1/leases/none/egress/client',
        ticket  => $o{ticket_file} // $t->dir . '/client.ticket',
        state   => $o{state_file} // $t->dir . '/client.state',
        server  => $o{server} // '',
        listen_params => $o{listen_params} // '',
        stream  => $o{stream} // '',
        name    => $o{name} // 'nginx',
    }, $class;
    spew($self->{ticket}, $o{ticket} // "egt_not_a_real_ticket\n", 0600)
        unless -e $self->{ticket};
    return $self;
}

sub port   { $_[0]{port} }
sub ticket_file { $_[0]{ticket} }
sub state_file  { $_[0]{state} }

# Writes a (new) ticket for the module to pick up at its next connect.
sub set_ticket {
    my ($self, $ticket) = @_;
    my $tmp = "$self->{ticket}.tmp";
    spew($tmp, "$ticket\n", 0600);
    rename $tmp, $self->{ticket} or croak "rename: $!";
}

sub stream_conf {
    my ($self, %o) = @_;
    my $log = $self->{t}->dir . "/$self->{name}/logs/access.log";
    return <<"EOF";
    log_format egress '\$remote_addr target=\$egress_target id=\$egress_stream_id '
                      'egress_status=\$egress_status status=\$status bytes=\$bytes_sent';
    access_log $log egress;
    egress_bridge $self->{bridge};
    egress_bridge_ticket_file $self->{ticket};
    egress_bridge_state_file $self->{state};
    egress_bridge_reconnect_max 2s;
    $self->{stream}
    server {
        listen 127.0.0.1:$self->{port} $self->{listen_params};
        egress_proxy on;
        $self->{server}
    }
EOF
}

# Starts nginx. The workers run as root so they can read the 0600 ticket
# file in the private test directory (as they would under `user`).
sub start {
    my ($self, %o) = @_;
    $self->{t}->nginx(
        name      => $self->{name},
        stream    => $self->stream_conf,
        main      => "user root;\n" . ($o{main} // ''),
        wait_port => $self->{port},
        allow_log => $o{allow_log},
    );
    return $self;
}

sub access_log {
    my ($self) = @_;
    return slurp($self->{t}->dir . "/$self->{name}/logs/access.log");
}

sub error_log {
    my ($self) = @_;
    return $self->{t}->nginx_error_log($self->{name});
}

# Stream id => [[old, new] receive window] for every window change the
# module logged (info level).
sub stream_windows {
    my ($self) = @_;
    my %w;
    my $log = $self->error_log;
    while ($log =~ /egress stream (\d+): receive window (\d+) \(was (\d+)/g) {
        push @{ $w{$1} }, [ $3, $2 ];
    }
    return \%w;
}

# The stream id of the first access-log line whose byte count is in
# [min, max] (the test's bodies have distinct sizes), or undef.
sub access_stream_id {
    my ($self, $bytes_min, $bytes_max) = @_;
    for my $l (split /\n/, $self->access_log) {
        my ($id, $b) = $l =~ /id=(\d+) .* bytes=(\d+)/ or next;
        return $id if $b >= $bytes_min && $b <= $bytes_max;
    }
    return undef;
}

# Waits until the error log matches (the bridge logs its state changes).
sub wait_log {
    my ($self, $re, $timeout) = @_;
    return Test::Egress::wait_until(sub { $self->error_log =~ $re }, $timeout // 10);
}

sub client {
    my ($self, %o) = @_;
    return Test::Egress::Module::Client->new($o{port} // $self->{port});
}

# One request on a fresh connection; returns (response, seconds).
sub request {
    my ($self, $text, %o) = @_;
    my $c = $self->client;
    my $t0 = time;
    $c->send($text);
    my $r = $c->read_all($o{timeout} // 10);
    return wantarray ? ($r, time - $t0) : $r;
}

package Test::Egress::Module::Client;

use IO::Select;
use IO::Socket::IP;
use Socket qw(SHUT_WR);
use Time::HiRes qw(time);

sub new {
    my ($class, $port) = @_;
    my $s = IO::Socket::IP->new(
        PeerHost => '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => 5,
    ) or die "connect 127.0.0.1:$port: $!";
    binmode $s;
    $s->autoflush(1);
    return bless { s => $s, sel => IO::Select->new($s), buf => '', eof => 0 }, $class;
}

sub socket { $_[0]{s} }

sub send {
    my ($self, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($self->{s}, $data, length($data) - $off, $off);
        return 0 unless defined $n;
        $off += $n;
    }
    return 1;
}

sub shutdown_write { shutdown($_[0]{s}, SHUT_WR) }

sub _scale { $_[0] * ($ENV{EGRESS_SAN} ? 3 : 1) }

# Reads once (up to timeout); returns bytes read (0 on EOF, undef on timeout).
sub read_some {
    my ($self, $timeout) = @_;
    return 0 if $self->{eof};
    return undef unless $self->{sel}->can_read($timeout);
    my $n = sysread($self->{s}, my $chunk, 262144);
    if (!$n) {
        $self->{eof} = 1;
        return 0;
    }
    $self->{buf} .= $chunk;
    return $n;
}

# Reads until the buffer matches; returns the buffer (and leaves it).
sub read_until {
    my ($self, $re, $timeout) = @_;
    my $deadline = time + _scale($timeout // 10);
    while ($self->{buf} !~ $re) {
        my $left = $deadline - time;
        last if $left <= 0;
        my $n = $self->read_some($left > 0.5 ? 0.5 : $left);
        last if defined $n && $n == 0;
    }
    return $self->{buf};
}

# Reads until at least n bytes are buffered.
sub read_bytes {
    my ($self, $n, $timeout) = @_;
    my $deadline = time + _scale($timeout // 10);
    while (length $self->{buf} < $n) {
        my $left = $deadline - time;
        last if $left <= 0;
        my $r = $self->read_some($left > 0.5 ? 0.5 : $left);
        last if defined $r && $r == 0;
    }
    return $self->{buf};
}

sub read_all {
    my ($self, $timeout) = @_;
    my $deadline = time + _scale($timeout // 10);
    while (!$self->{eof}) {
        my $left = $deadline - time;
        last if $left <= 0;
        $self->read_some($left > 0.5 ? 0.5 : $left);
    }
    return $self->{buf};
}

# Takes n bytes (or everything) off the front of the buffer.
sub take {
    my ($self, $n) = @_;
    $n = length $self->{buf} if !defined $n || $n > length $self->{buf};
    return substr($self->{buf}, 0, $n, '');
}

# Takes one HTTP response with a Content-Length body off the buffer.
sub take_response {
    my ($self, $timeout) = @_;
    $self->read_until(qr/\r\n\r\n/, $timeout);
    my ($head) = $self->{buf} =~ /^(.*?\r\n\r\n)/s or return undef;
    my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
    $len //= 0;
    $self->read_bytes(length($head) + $len, $timeout);
    return $self->take(length($head) + $len);
}

sub eof { $_[0]{eof} }

sub close {
    my ($self) = @_;
    close $self->{s} if $self->{s};
    $self->{s} = undef;
}

1;
