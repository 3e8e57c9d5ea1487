package Test::Egress::Origin;

# A real HTTP/1.1 (and HTTPS) origin server for tests, one process per
# connection being served so slow readers and thousands of parallel streams
# behave as they would against a real site. The parent accepts and forks a
# child per connection; a child that has finished its connection takes the
# next one from the listening socket itself while connections keep coming
# (a burst then costs few forks) and leaves after about a second idle.
#
#   my $o = $t->origin;                          # 127.0.0.1, free port
#   my $o = $t->origin(tls => 1, cert => $crt, key => $key, listen => '192.0.2.30',
#                      wrap => ['ip', 'netns', 'exec', 'origin']);
#   $o->port, $o->url('/ip')
#
# Routes:
#   GET  /ip            the peer address, text/plain ("203.0.113.20\n")
#   GET  /ip.html       the same inside an HTML page (<p id="ip">...</p>)
#   GET  /bytes/N       N bytes, byte i = i % 251 (verifiable)
#   GET  /slow/N/R      N bytes written at about R bytes/s
#   GET  /headers       the request head as received
#   POST|PUT /echo      "len=N sha1=HEX\n" of the (Content-Length or chunked) body
#   GET  /close         closes the connection without a response
#   anything else       200 "ok METHOD PATH host=HOST\n"
# Connections are kept alive unless the client asks for close.

use strict;
use warnings;

use Carp qw(croak);
use Digest::SHA;
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Socket qw(SOMAXCONN);
use Time::HiRes qw(time sleep);

sub start {
    my ($class, $t, %o) = @_;
    my $name   = $o{name} // 'origin';
    my $port   = $o{port} // $t->port;
    my $listen = $o{listen} // '127.0.0.1';
    my @args   = ('--listen', $listen, '--port', $port);
    push @args, '--cert', $o{cert}, '--key', $o{key} if $o{tls};
    my @cmd = (@{ $o{wrap} || [] }, $^X, '-I' . $t->root . '/t/lib', '-MTest::Egress::Origin',
        '-e', 'Test::Egress::Origin::main(@ARGV)', '--', @args);
    $t->spawn($name, cmd => \@cmd, wait_log => qr/^origin ready/m);
    return bless { t => $t, name => $name, port => $port, host => $listen, tls => $o{tls} }, $class;
}

sub port { $_[0]{port} }
sub host { $_[0]{host} }
sub url {
    my ($self, $path) = @_;
    my $h = $self->{host} =~ /:/ ? "[$self->{host}]" : $self->{host};
    return ($self->{tls} ? 'https' : 'http') . "://$h:$self->{port}" . ($path // '/');
}
sub stop { $_[0]{t}->stop($_[0]{name}) }

# ---- server side (runs in its own process) -------------------------------

sub main {
    my %a;
    while (@_) {
        my $k = shift;
        $k =~ s/^--//;
        $a{$k} = shift;
    }
    $SIG{CHLD} = 'IGNORE';
    $SIG{PIPE} = 'IGNORE';
    my $srv = IO::Socket::IP->new(
        LocalHost => $a{listen},
        LocalPort => $a{port},
        Proto     => 'tcp',
        Listen    => SOMAXCONN,
        ReuseAddr => 1,
    ) or die "origin: listen $a{listen}:$a{port}: $!\n";
    my %ssl;
    if ($a{cert}) {
        require IO::Socket::SSL;
        %ssl = (SSL_server => 1, SSL_cert_file => $a{cert}, SSL_key_file => $a{key});
    }
    # Built once here so every forked child shares it: building it per
    # connection cost each child tens of ms of CPU, which throttled the
    # origin to a few connections per second on a loaded machine.
    pattern_unit();
    $| = 1;
    print "origin ready on $a{listen}:$a{port}\n";
    while (1) {
        my $c = $srv->accept or next;
        my $pid = fork;
        if (!defined $pid) {
            close $c;
            next;
        }
        if ($pid == 0) {
            serve_then_accept($srv, $c, \%ssl);
            POSIX::_exit(0);
        }
        close $c;
    }
}

# A child: serves its connection, then accepts more until idle for a second.
# The listening socket stays blocking (its O_NONBLOCK flag would be shared
# with the parent); SIGALRM interrupts an idle accept, and a connection
# accepted just as the alarm fired is still served.
sub serve_then_accept {
    my ($srv, $c, $ssl) = @_;
    my $idle = 0;
    local $SIG{ALRM} = sub { $idle = 1 };
    while ($c) {
        if (!%$ssl || IO::Socket::SSL->start_SSL($c, %$ssl)) {
            serve_connection($c);
        }
        # as the exiting child did before: no TLS close_notify on the way out
        $c->isa('IO::Socket::SSL') ? $c->close(SSL_no_shutdown => 1) : close $c;
        $c = undef;
        $idle = 0;
        alarm 1;
        while (!$c && !$idle) {
            $c = $srv->accept;
        }
        alarm 0;
    }
}

sub read_more {
    my ($c, $bufref) = @_;
    my $n = sysread($c, my $chunk, 65536);
    return 0 unless $n;
    $$bufref .= $chunk;
    return $n;
}

sub serve_connection {
    my ($c) = @_;
    my $peer = $c->peerhost;
    $peer =~ s/^::ffff://;
    my $buf = '';
    while (1) {
        while ($buf !~ /\r\n\r\n/) {
            return unless read_more($c, \$buf);
            return if length $buf > 1 << 20;
        }
        my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
        $buf = $rest;
        my ($line, @hl) = split /\r\n/, $head;
        my ($method, $path) = $line =~ m{^(\S+) (\S+) HTTP/1\.[01]$} or return;
        my %h;
        for (@hl) {
            my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
            $h{ lc $k } = $v;
        }
        my $body = '';
        if (defined $h{'content-length'}) {
            while (length $buf < $h{'content-length'}) {
                return unless read_more($c, \$buf);
            }
            $body = substr($buf, 0, $h{'content-length'}, '');
        } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            while (1) {
                while ($buf !~ /\r\n/) { return unless read_more($c, \$buf) }
                $buf =~ s/^([0-9a-fA-F]+)[^\r]*\r\n// or return;
                my $len = hex $1;
                while (length $buf < $len + 2) { return unless read_more($c, \$buf) }
                $body .= substr($buf, 0, $len, '');
                $buf =~ s/^\r\n// or return;
                if ($len == 0) {
                    # Trailers (none expected) end with an empty line.
                    last;
                }
            }
        }
        my $close = ($h{connection} // '') =~ /close/i;
        my ($status, $type, $out, $gen) = (200, 'text/plain', '', undef);
        if ($path eq '/ip') {
            $out = "$peer\n";
        } elsif ($path eq '/ip.html') {
            $type = 'text/html';
            $out  = "<!doctype html><html><head><title>origin</title></head>"
                . "<body><p id=\"ip\">$peer</p></body></html>\n";
        } elsif ($path =~ m{^/bytes/(\d+)$}) {
            my $n = $1;
            $gen = sub { send_pattern($c, $n, 0) };
            $out = undef;
            respond($c, 200, 'application/octet-stream', $n, $close);
        } elsif ($path =~ m{^/slow/(\d+)/(\d+)$}) {
            my ($n, $rate) = ($1, $2);
            $gen = sub { send_pattern($c, $n, $rate) };
            $out = undef;
            respond($c, 200, 'application/octet-stream', $n, $close);
        } elsif ($path eq '/headers') {
            $out = "$head\r\n\r\n";
        } elsif ($path eq '/echo') {
            $out = sprintf("len=%d sha1=%s\n", length $body, Digest::SHA::sha1_hex($body));
        } elsif ($path eq '/close') {
            return;
        } else {
            $out = "ok $method $path host=" . ($h{host} // '') . "\n";
        }
        if (defined $out) {
            respond($c, $status, $type, length $out, $close);
            write_all($c, $out) or return;
        } else {
            $gen->() or return;
        }
        return if $close;
    }
}

sub respond {
    my ($c, $status, $type, $len, $close) = @_;
    write_all($c, "HTTP/1.1 $status OK\r\nContent-Type: $type\r\nContent-Length: $len\r\n"
            . ($close ? "Connection: close\r\n" : '') . "\r\n");
}

sub write_all {
    my ($c, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($c, $data, length($data) - $off, $off);
        return 0 unless $n;
        $off += $n;
    }
    return 1;
}

my $PATTERN;

# 256 periods of the pattern (byte i = i % 251), 64256 bytes.
sub pattern_unit {
    return $PATTERN //= pack('C*', 0 .. 250) x 256;
}

# Writes n pattern bytes; rate > 0 paces the writes to about rate bytes/s.
sub send_pattern {
    my ($c, $n, $rate) = @_;
    pattern_unit();
    my $plen = length $PATTERN;
    my $sent = 0;
    my $t0   = time;
    while ($sent < $n) {
        my $off = $sent % 251;
        my $len = $n - $sent;
        $len = $plen - $off if $len > $plen - $off;
        $len = 4096 if $rate && $len > 4096;
        write_all($c, substr($PATTERN, $off, $len)) or return 0;
        $sent += $len;
        if ($rate) {
            my $due = $t0 + $sent / $rate;
            my $now = time;
            sleep($due - $now) if $due > $now;
        }
    }
    return 1;
}

# The expected body of /bytes/N, for comparisons in tests.
sub pattern {
    my ($n) = @_;
    return substr(pack('C*', 0 .. 250) x (int($n / 251) + 1), 0, $n);
}

1;
