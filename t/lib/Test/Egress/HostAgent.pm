package Test::Egress::HostAgent;

# Test fixture for the host agent (t/2xx): a real coordinator, a lease, a
# WebSocket test client in the lease's "client" role, and the real
# `egress host` process joined to the client's session.
#
#   my $h = Test::Egress::HostAgent->new($t, allow => "localhost:$port",
#                                        args => ['--allow-private']);
#   my $r = $h->open(1, 'localhost', $port);    # open_ok / error frame (hash)
#   $h->send(1, "GET / HTTP/1.1\r\n...");       # binary data for stream 1
#   my ($bytes, $closed) = $h->read_stream(1);  # until close{1} (granting window)
#
# Owned by the host agent (issue 4).

use strict;
use warnings;

use Carp qw(croak);
use JSON::PP;
use Time::HiRes qw(time);

my $JSON = JSON::PP->new->canonical;

sub new {
    my ($class, $t, %o) = @_;
    $t->require_bins('egress-coordinator', 'egress');
    my $self = bless { t => $t, o => \%o, pending => [] }, $class;
    my $c = $self->{c} = $o{coordinator} // $t->coordinator;
    $self->{token} = $c->token(owner => 'alice', org => 'acme');
    $self->{lease} = $c->lease($self->{token}, slug => $o{slug} // 'agent-test')->{id};
    $self->connect_client;
    $self->start_agent unless $o{no_agent};
    return $self;
}

sub t      { $_[0]{t} }
sub c      { $_[0]{c} }
sub lease  { $_[0]{lease} }
sub token  { $_[0]{token} }
sub ws     { $_[0]{ws} }
sub session { $_[0]{session} }

# New client ticket (a new session unless same_session) and client socket.
sub connect_client {
    my ($self, %o) = @_;
    my $c  = $self->{c};
    my $ct = $c->ticket($self->{token}, $self->{lease}, role => 'client',
        ($o{same_session} ? (sessionID => $self->{session}) : ()));
    $self->{session} = $ct->{sessionID};
    $self->{ws} = $c->ws($self->{lease}, 'client', ticket => $ct->{ticket})
        or croak "client upgrade refused";
    my $hello = $self->{ws}->recv_json(5);
    croak "no hello" unless $hello && $hello->{type} eq 'hello';
    $self->{pending} = [];
    return $hello;
}

# Environment for the agent: private HOME/XDG dirs, the bearer token.
sub env {
    my ($self, %extra) = @_;
    my $d = $self->{t}->dir;
    return (
        $self->{t}->san_env,
        HOME           => "$d/home",
        XDG_STATE_HOME => "$d/state",
        XDG_CONFIG_HOME => "$d/config",
        EGRESS_TOKEN   => $self->{token},
        %extra,
    );
}

sub agent_cmd {
    my ($self, @args) = @_;
    my $o = $self->{o};
    return [ $self->{t}->bin('egress'), 'host', '--id', $self->{lease}, '--session',
        $self->{session}, '--coordinator', $self->{c}->url,
        (defined $o->{allow} ? ('--allow', $o->{allow}) : ()), @{ $o->{args} || [] }, @args ];
}

# Starts `egress host` as process 'agent' and waits until the client sees it.
sub start_agent {
    my ($self, %o) = @_;
    mkdir $self->{t}->dir . "/$_" for qw(home state config);
    $self->{t}->spawn($o{name} // 'agent',
        cmd      => $self->agent_cmd(@{ $o{args} || [] }),
        env      => { $self->env(%{ $o{env} || {} }) },
        wait_log => qr/(?:re)?connected: lease=/,
        ($o{stdin} ? (stdin => $o{stdin}) : ()));
    $self->wait_peer(1) or croak "client never saw the host agent";
    return $self;
}

# Waits for peer{connected => $want} on the client socket (or hello saying so).
sub wait_peer {
    my ($self, $want, $timeout) = @_;
    my $m = $self->{ws}->recv_until(sub {
        my $j = $_[0]{json} or return 0;
        return $j->{type} eq 'peer' && !!$j->{connected} == !!$want;
    }, $timeout // 10);
    return $m ? 1 : 0;
}

# Next message from the client socket, using the pending queue first.
sub next_msg {
    my ($self, $timeout) = @_;
    return shift @{ $self->{pending} } if @{ $self->{pending} };
    my $m = $self->{ws}->recv($timeout // 10) or return undef;
    if ($m->{type} eq 'text') {
        $m->{json} = eval { $JSON->decode($m->{data}) };
    } elsif ($m->{type} eq 'binary') {
        $m->{id} = unpack('N', substr($m->{data}, 0, 4));
        $m->{body} = substr($m->{data}, 4);
    }
    return $m;
}

# Waits for the open_ok or error answer for id; other messages stay queued.
sub answer {
    my ($self, $id, $timeout) = @_;
    my $deadline = time + ($timeout // 20) * ($ENV{EGRESS_SAN} ? 3 : 1);
    my @keep;
    my $found;
    while (time < $deadline) {
        my $m = $self->next_msg(1);
        next unless $m;
        last if $m->{type} eq 'eof' || $m->{type} eq 'close';
        if ($m->{json} && ($m->{json}{id} // 0) == $id
            && $m->{json}{type} =~ /^(open_ok|error)$/) {
            $found = $m->{json};
            last;
        }
        push @keep, $m;
    }
    unshift @{ $self->{pending} }, @keep;
    return $found;
}

sub open {
    my ($self, $id, $host, $port, %o) = @_;
    $self->{ws}->send_json({ type => 'open', id => $id, host => $host, port => $port + 0,
        ($o{window} ? (window => $o{window}) : ()) });
    return $o{no_wait} ? undef : $self->answer($id, $o{timeout});
}

sub send {
    my ($self, $id, $bytes) = @_;
    while (length $bytes) {
        my $chunk = substr($bytes, 0, 32768, '');
        $self->{ws}->send_binary(pack('N', $id) . $chunk);
    }
}

sub close_stream {
    my ($self, $id, $half) = @_;
    $self->{ws}->send_json({ type => 'close', id => $id, ($half ? (half => JSON::PP::true) : ()) });
}

# Reads stream id's bytes until its close (half or full), or until the bytes
# match the until regex, or until at least `bytes` bytes arrived. Grants window
# as it goes unless no_grant. Returns (bytes, close frame or undef).
sub read_stream {
    my ($self, $id, %o) = @_;
    my $deadline = time + ($o{timeout} // 20) * ($ENV{EGRESS_SAN} ? 3 : 1);
    my ($buf, $unacked, @keep) = ('', 0);
    my $close;
    while (time < $deadline) {
        my $m = $self->next_msg(1) or next;
        last if $m->{type} eq 'eof' || $m->{type} eq 'close';
        if ($m->{type} eq 'binary' && $m->{id} == $id) {
            $buf .= $m->{body};
            $unacked += length $m->{body};
            if (!$o{no_grant} && $unacked >= 65536) {
                $self->{ws}->send_json({ type => 'window', id => $id, increment => $unacked });
                $unacked = 0;
            }
            last if $o{until} && $buf =~ $o{until};
            last if $o{bytes} && length $buf >= $o{bytes};
            next;
        }
        if ($m->{json} && ($m->{json}{id} // 0) == $id
            && $m->{json}{type} =~ /^(close|error)$/) {
            $close = $m->{json};
            last;
        }
        push @keep, $m;
    }
    unshift @{ $self->{pending} }, @keep;
    return ($buf, $close);
}

# One HTTP/1.1 request over a fresh stream; returns (answer, response text).
sub http {
    my ($self, $id, $host, $port, $path, %o) = @_;
    my $a = $self->open($id, $host, $port);
    return ($a, undef) unless $a && $a->{type} eq 'open_ok';
    $self->send($id, "GET $path HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n");
    my ($buf) = $self->read_stream($id, %o);
    $self->close_stream($id);
    return ($a, $buf);
}

sub audit_lines {
    my ($self, $file) = @_;
    CORE::open(my $fh, '<', $file) or return ();
    return map { $JSON->decode($_) } grep {/\S/} <$fh>;
}

1;
