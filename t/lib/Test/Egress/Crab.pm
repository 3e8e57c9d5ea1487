package Test::Egress::Crab;

# A peer that speaks crabbox's egress bridge byte for byte, as its Go CLI
# (internal/cli/egress.go) does: no WebSocket subprotocol offered, no hello
# expected, JSON text frames only, string ids ("conn_" + base36 of a
# nanosecond clock), the port as a string, an error's text in "error",
# members left out when empty (Go's omitempty), <, > and & escaped as
# \u003c, \u003e, \u0026 (Go's encoder), 32 KiB data chunks, no credit.
#
# Host role, in its own process (dials loopback origins only; anything else
# or a host in deny gets crabbox's "host not allowed"):
#   my $h = Test::Egress::Crab->start_host($t, url => $c->ws_url($lease, 'host'),
#       ticket => $ticket, deny => ['denied.test']);
#   $h->log =~ /crab host: close 1012/;
# slow => ['slow.test'] answers opens for those names after 4 s (as a dial
# that times out), without holding up anything else meanwhile (crabbox
# opens each stream in a goroutine).
#
# Client role, in the test process (one request at a time is enough here):
#   my $ws = Test::Egress::Crab->client($url, $ticket);
#   my ($answer, $bytes) = Test::Egress::Crab::request($ws, 'localhost', $port, $raw_http);

use strict;
use warnings;

use Carp qw(croak);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use IO::Socket::IP;
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes qw(time);

use Test::Egress::WS;

my $JSON = JSON::PP->new;

# ---- crabbox's encoding ------------------------------------------------------

# A JSON string as Go's encoding/json writes it.
sub go_str {
    my ($s) = @_;
    my %esc = ('"' => '\\"', '\\' => '\\\\', "\n" => '\\n', "\r" => '\\r', "\t" => '\\t');
    $s =~ s/(["\\\n\r\t])/$esc{$1}/g;
    $s =~ s/([\x00-\x1f<>&])/sprintf('\\u%04x', ord $1)/ge;
    return qq("$s");
}

# egressProxyMessage: members in struct order, each left out when empty.
sub go_json {
    my (%m) = @_;
    my @out;
    for my $k (qw(type id host port body error)) {
        next unless defined $m{$k} && length $m{$k};
        push @out, go_str($k) . ':' . go_str("$m{$k}");
    }
    return '{' . join(',', @out) . '}';
}

# JSON::PP is slow on 44 KB base64 strings (a busy machine then misses the
# coordinator's pings): data frames of the usual shape are read by a pattern.
sub decode_frame {
    my ($text) = @_;
    if ($text =~ /\A\{"type":"data","id":"([\x21\x23-\x5b\x5d-\x7e]+)"(?:,"body":"([A-Za-z0-9+\/=]*)")?\}\z/) {
        return { type => 'data', id => $1, (defined $2 ? (body => $2) : ()) };
    }
    return $JSON->decode($text);
}

sub base36 {
    my ($n) = @_;
    my $s = '';
    do { $s = substr('0123456789abcdefghijklmnopqrstuvwxyz', $n % 36, 1) . $s; $n = int($n / 36) }
        while $n > 0;
    return $s;
}

my $last_id = 0;

# newLocalEgressConnID: "conn_" + base36 of the clock in nanoseconds.
sub conn_id {
    my $ns = int(time * 1e9);
    $ns = $last_id + 1 if $ns <= $last_id;
    $last_id = $ns;
    return 'conn_' . base36($ns);
}

# ---- client role (in the test process) -----------------------------------------

sub client {
    my ($class, $url, $ticket, %o) = @_;
    my ($host, $port, $path) = $url =~ m{^ws://([^/:]+):(\d+)(/.*)$} or croak "bad url $url";
    my $hdr = $o{ticket_header} // 'Authorization';
    return Test::Egress::WS->connect(host => $host, port => $port, path => $path,
        headers => { $hdr => ($hdr eq 'Authorization' ? "Bearer $ticket" : $ticket) },
        protocols => $o{protocols} // []);
}

# Opens one stream, sends $send (may be empty), reads until the host closes
# it. Returns (first answer frame, bytes received, frames seen).
sub request {
    my ($ws, $host, $port, $send, %o) = @_;
    my $id = $o{id} // conn_id();
    $ws->send_text(go_json(type => 'open', id => $id, host => $host, port => $port));
    my $ans;
    my @frames;
    while (my $m = $ws->recv(20)) {
        if ($m->{type} ne 'text') {
            Test::More::diag("crab client: $m->{type} " . ($m->{code} // '') . ' ' . ($m->{reason} // ''));
            return (undef, '', \@frames);
        }
        my $j = decode_frame($m->{data});
        push @frames, $j;
        next unless ($j->{id} // '') eq $id;
        $ans = $j;
        last;
    }
    return ($ans, '', \@frames) unless $ans && $ans->{type} eq 'open_ok';
    for (my $o = 0; $o < length $send; $o += 32768) {
        $ws->send_text(go_json(type => 'data', id => $id,
                body => encode_base64(substr($send, $o, 32768), '')));
    }
    my $got = '';
    while (my $m = $ws->recv(30)) {
        last unless $m->{type} eq 'text';
        my $j = decode_frame($m->{data});
        push @frames, $j;
        next unless ($j->{id} // '') eq $id;
        if ($j->{type} eq 'data') {
            $got .= decode_base64($j->{body} // '');
            last if $o{until} && length($got) >= $o{until};
        } elsif ($j->{type} eq 'close' || $j->{type} eq 'error') {
            last;
        }
    }
    $ws->send_text(go_json(type => 'close', id => $id)) if $o{until};
    return ($ans, $got, \@frames);
}

# ---- host role (its own process) ------------------------------------------------

sub start_host {
    my ($class, $t, %o) = @_;
    my $name = $o{name} // 'crabhost';
    my @args = ('--url', $o{url}, '--header', $o{ticket_header} // 'Authorization');
    push @args, '--deny', join(',', @{ $o{deny} }) if $o{deny};
    push @args, '--slow', join(',', @{ $o{slow} }) if $o{slow};
    my @cmd = ($^X, '-I' . $t->root . '/t/lib', '-MTest::Egress::Crab', '-e',
        'Test::Egress::Crab::host_main(@ARGV)', '--', @args);
    $t->spawn($name, cmd => \@cmd, env => { EGRESS_TICKET => $o{ticket} },
        wait_log => qr/^crab host ready/m, timeout => $o{timeout} // 10);
    return bless { t => $t, name => $name }, $class;
}

sub stop { $_[0]{t}->stop($_[0]{name}) }
sub log  { $_[0]{t}->log_of($_[0]{name}) }

my ($WS, %S, %A, @DUE);

sub host_send { $WS->send_text(go_json(@_)) }

sub host_main {
    while (@_) {
        my $k = shift;
        $k =~ s/^--//;
        $A{$k} = shift;
    }
    $| = 1;
    $SIG{PIPE} = 'IGNORE';
    my %deny = map { $_ => 1 } split /,/, $A{deny} // '';
    $deny{"slow:$_"} = 1 for split /,/, $A{slow} // '';
    my $ticket = delete $ENV{EGRESS_TICKET} or die "crab host: no EGRESS_TICKET\n";
    my $ws = Test::Egress::Crab->client($A{url}, $ticket, ticket_header => $A{header})
        or die "crab host: upgrade refused\n";
    $WS = $ws;
    print "crab host ready protocol=" . ($ws->protocol || '-') . "\n";

    while (1) {
        my $sel = IO::Select->new($ws->socket);
        $sel->add($_->{sock}) for values %S;
        for my $fh ($sel->can_read(@DUE ? 0.1 : 1)) {
            if ($fh == $ws->socket) {
                my $n = sysread($fh, my $buf, 262144);
                if (!$n) {
                    print "crab host: socket closed without a close frame\n";
                    exit 0;
                }
                $ws->{frame}->append($buf);
                while (defined(my $msg = $ws->{frame}->next_bytes)) {
                    my $f = $ws->{frame};
                    if ($f->is_text) {
                        host_on_text(decode_frame($msg), \%deny);
                    } elsif ($f->is_binary) {
                        # crabbox reads every message as JSON: a binary one kills its bridge
                        print "crab host: binary message, giving up\n";
                        exit 1;
                    } elsif ($f->is_close) {
                        my ($code, $why) = length($msg) >= 2 ? (unpack('n', $msg), substr($msg, 2))
                                                           : (1005, '');
                        print "crab host: close $code $why\n";
                        exit 0;
                    } elsif ($f->is_ping) {
                        $ws->_send('pong', $msg);
                    }
                }
                next;
            }
            for my $id (keys %S) {
                next unless $S{$id} && $fh == $S{$id}{sock};
                my $n = sysread($fh, my $buf, 32768);
                next if !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR);
                if (!$n) {
                    close $fh;
                    delete $S{$id};
                    host_send(type => 'close', id => $id);
                    last;
                }
                host_send(type => 'data', id => $id, body => encode_base64($buf, ''));
                last;
            }
        }
        while (@DUE && $DUE[0][0] <= time) {
            my $d = shift @DUE;
            host_send(type => 'error', id => $d->[1], error => 'dial allowed destination: i/o timeout');
        }
    }
}

sub host_on_text {
    my ($f, $deny) = @_;
    my $type = $f->{type} // '';
    my $id = $f->{id};
    # Go's decoder refuses a number where it expects a string: so does this peer
    die "crab host: id is not a string\n" if defined $id && $JSON->encode([$id]) !~ /^\["/;
    if ($type eq 'open') {
        my ($h, $p) = ($f->{host}, $f->{port});
        print "crab host: open $id $h:$p\n";
        die "crab host: port is not a string\n" unless $JSON->encode([$p]) =~ /^\["/;
        if ($deny->{"slow:$h"}) {
            push @DUE, [ time + 4, $id ];
            return;
        }
        if ($deny->{$h} || ($h ne '127.0.0.1' && $h ne 'localhost')) {
            host_send(type => 'error', id => $id, error => 'host not allowed');
            return;
        }
        my $s = IO::Socket::IP->new(PeerHost => $h, PeerPort => $p, Proto => 'tcp', Timeout => 5);
        if (!$s) {
            host_send(type => 'error', id => $id, error => "dial allowed destination: $!");
            return;
        }
        binmode $s;
        $S{$id} = { sock => $s };
        host_send(type => 'open_ok', id => $id);
    } elsif ($type eq 'data') {
        my $st = $S{$id} or return;
        my $data = decode_base64($f->{body} // '');
        my $off = 0;
        while ($off < length $data) {
            my $n = syswrite($st->{sock}, $data, length($data) - $off, $off);
            if (!defined $n) {
                next if $! == EINTR;
                last;
            }
            $off += $n;
        }
    } elsif ($type eq 'close') {
        my $st = delete $S{$id} or return;
        close $st->{sock};
    }
}

1;
