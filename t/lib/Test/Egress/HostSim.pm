package Test::Egress::HostSim;

# A host-role peer for module tests: it joins a session through the real
# coordinator with a real host ticket and speaks protocol v2 (open/open_ok/
# error, binary data, window credit, half-close) to local test origins. It
# stands in for the host agent where a test needs to steer the host side
# (deny a destination, never answer an open, vanish); end-to-end tests with
# the real agent live in t/4xx.
#
#   my $h = Test::Egress::HostSim->start($t, url => $c->ws_url($lease, 'host'),
#       ticket => $ticket, deny => ['denied.test'], blackhole => ['void.test']);
#   $h->stop;
#
# Only loopback destinations are dialled; anything else is refused with the
# agent's "not allowed" text. The ticket travels in the environment.

use strict;
use warnings;

use Carp qw(croak);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use IO::Socket::IP;
use JSON::PP;
use Socket qw(SHUT_WR);
use Time::HiRes qw(time);

use Test::Egress::WS;

my $JSON = JSON::PP->new->canonical;

sub start {
    my ($class, $t, %o) = @_;
    my $name = $o{name} // 'hostsim';
    my ($host, $port, $path) = $o{url} =~ m{^ws://([^/:]+):(\d+)(/.*)$}
        or croak "bad url $o{url}";
    my @args = ('--host', $host, '--port', $port, '--path', $path,
        '--window', $o{window} // 262144);
    push @args, '--deny', join(',', @{ $o{deny} }) if $o{deny};
    push @args, '--blackhole', join(',', @{ $o{blackhole} }) if $o{blackhole};
    my @cmd = ($^X, '-I' . $t->root . '/t/lib', '-MTest::Egress::HostSim', '-e',
        'Test::Egress::HostSim::main(@ARGV)', '--', @args);
    $t->spawn($name, cmd => \@cmd, env => { EGRESS_TICKET => $o{ticket} },
        wait_log => qr/^hostsim ready/m, timeout => $o{timeout} // 10);
    return bless { t => $t, name => $name }, $class;
}

sub stop { $_[0]{t}->stop($_[0]{name}) }
sub log  { $_[0]{t}->log_of($_[0]{name}) }

# ---- the peer itself (runs in its own process) ----------------------------

my ($WS, %S, $SEL, %A);

sub main {
    while (@_) {
        my $k = shift;
        $k =~ s/^--//;
        $A{$k} = shift;
    }
    $| = 1;
    $SIG{PIPE} = 'IGNORE';
    my %deny  = map { $_ => 1 } split /,/, $A{deny} // '';
    my %black = map { $_ => 1 } split /,/, $A{blackhole} // '';
    my $ticket = delete $ENV{EGRESS_TICKET} or die "hostsim: no EGRESS_TICKET\n";

    my ($ws, $status, $body) = Test::Egress::WS->connect(
        host      => $A{host},
        port      => $A{port},
        path      => $A{path},
        headers   => { Authorization => "Bearer $ticket" },
        protocols => [ 'egress.v2', 'egress.v1' ],
    );
    die "hostsim: upgrade refused: $status $body\n" unless $ws;
    die "hostsim: coordinator chose " . $ws->protocol . "\n" unless $ws->protocol eq 'egress.v2';
    $WS = $ws;

    my $hello = $ws->recv_json(10) or die "hostsim: no hello\n";
    die "hostsim: first frame is not hello\n" unless ($hello->{type} // '') eq 'hello';
    print "hostsim ready session=$hello->{sessionID} peer="
        . ($hello->{peerConnected} ? 1 : 0) . "\n";

    $SEL = IO::Select->new($ws->socket);
    my $wsbuf_sock = $ws->socket;
    $wsbuf_sock->blocking(1);

    while (1) {
        # Origins are read only while their stream has credit.
        my $rsel = IO::Select->new($ws->socket);
        for my $id (keys %S) {
            my $st = $S{$id};
            $rsel->add($st->{sock}) if $st->{sock} && !$st->{eof} && $st->{credit} > 0;
        }
        my @ready = $rsel->can_read(1);
        for my $fh (@ready) {
            if ($fh == $ws->socket) {
                my $n = sysread($fh, my $buf, 262144);
                if (!$n) {
                    print "hostsim: coordinator closed the socket\n";
                    exit 0;
                }
                $ws->{frame}->append($buf);
                while (defined(my $msg = $ws->{frame}->next_bytes)) {
                    my $f = $ws->{frame};
                    if ($f->is_text) {
                        on_text($JSON->decode($msg), \%deny, \%black);
                    } elsif ($f->is_binary) {
                        on_data($msg);
                    } elsif ($f->is_close) {
                        my $code = length($msg) >= 2 ? unpack('n', $msg) : 1005;
                        print "hostsim: close $code\n";
                        exit 0;
                    } elsif ($f->is_ping) {
                        $ws->_send('pong', $msg);
                    }
                }
                next;
            }
            for my $id (keys %S) {
                my $st = $S{$id};
                next unless $st->{sock} && $fh == $st->{sock};
                from_origin($id, $st);
                last;
            }
        }
    }
}

sub send_json { $WS->send_json($_[0]) }

sub on_text {
    my ($f, $deny, $black) = @_;
    my $type = $f->{type} // '';
    my $id = $f->{id};
    if ($type eq 'open') {
        my ($h, $p) = ($f->{host}, $f->{port});
        print "hostsim: open $id $h:$p\n";
        return if $black->{$h};
        if ($deny->{$h} || ($h ne '127.0.0.1' && $h ne 'localhost' && $h ne '::1')) {
            send_json({ type => 'error', id => $id,
                    message => "not allowed: $h:$p is not on the allowlist" });
            return;
        }
        my $s = IO::Socket::IP->new(PeerHost => $h, PeerPort => $p, Proto => 'tcp', Timeout => 5);
        if (!$s) {
            send_json({ type => 'error', id => $id, message => "connection refused by $h:$p" });
            return;
        }
        binmode $s;
        $S{$id} = { sock => $s, credit => $f->{window} // 262144, drained => 0,
            eof => 0, half_in => 0 };
        send_json({ type => 'open_ok', id => $id, window => $A{window} + 0 });
    } elsif ($type eq 'close') {
        my $st = $S{$id} or return;
        if ($f->{half}) {
            $st->{half_in} = 1;
            shutdown($st->{sock}, SHUT_WR);
            finish($id) if $st->{eof};
        } else {
            close $st->{sock};
            delete $S{$id};
        }
    } elsif ($type eq 'window') {
        my $st = $S{$id} or return;
        $st->{credit} += $f->{increment};
    } elsif ($type eq 'peer') {
        print "hostsim: peer " . ($f->{connected} ? 'connected' : 'disconnected') . "\n";
        if (!$f->{connected}) {
            close $_->{sock} for values %S;
            %S = ();
        }
    }
}

sub on_data {
    my ($msg) = @_;
    my $id = unpack('N', substr($msg, 0, 4));
    my $st = $S{$id} or return;
    my $data = substr($msg, 4);
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($st->{sock}, $data, length($data) - $off, $off);
        if (!defined $n) {
            next if $! == EINTR;
            send_json({ type => 'close', id => $id });
            close $st->{sock};
            delete $S{$id};
            return;
        }
        $off += $n;
    }
    # Grant in batches of half the window, as libegress does.
    $st->{drained} += length $data;
    if ($st->{drained} >= $A{window} / 2) {
        send_json({ type => 'window', id => $id, increment => $st->{drained} + 0 });
        $st->{drained} = 0;
    }
}

sub from_origin {
    my ($id, $st) = @_;
    my $want = $st->{credit} < 32768 ? $st->{credit} : 32768;
    my $n = sysread($st->{sock}, my $buf, $want);
    return if !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR);
    if (!$n) {
        $st->{eof} = 1;
        send_json({ type => 'close', id => $id + 0, half => JSON::PP::true });
        finish($id) if $st->{half_in};
        return;
    }
    $st->{credit} -= $n;
    $WS->send_binary(pack('N', $id) . $buf);
}

sub finish {
    my ($id) = @_;
    my $st = delete $S{$id} or return;
    send_json({ type => 'close', id => $id + 0 });
    close $st->{sock};
}

1;
