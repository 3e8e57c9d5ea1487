package Test::Egress::Coordinator;

# A real egress-coordinator process for tests, with helpers that go through
# its real admin CLI and HTTP API.
#
#   my $c = $t->coordinator;                     # or (name => 'c2', args => [...])
#   my $tok = $c->token(owner => 'alice', org => 'acme', admin => 0);
#   my ($st, $json) = $c->api(POST => '/v1/leases', $tok, { ttlSeconds => 600 });
#   my $lease  = $c->lease($tok, slug => 'swift-crab');
#   my $ticket = $c->ticket($tok, $lease->{id}, role => 'host', allow => ['localhost']);
#   my $ws = $c->ws($lease->{id}, 'host', ticket => $ticket->{ticket});
#   $c->restart;  $c->kill9;  $c->start_again;

use strict;
use warnings;

use Carp qw(croak);
use HTTP::Tiny;
use JSON::PP;

use Test::Egress::WS;

my $JSON = JSON::PP->new->canonical->allow_nonref;

# Without db, the database is a SQLite file in the test directory, or a
# database of the test's PostgreSQL server under EGRESS_TEST_DB=pg (db =>
# 'pg' asks for that always); either way one per coordinator name.
sub start {
    my ($class, $t, %o) = @_;
    my $name = $o{name} // 'coordinator';
    my $db = $o{db} // ($t->test_db eq 'pg' ? 'pg' : undef);
    if (defined $db && $db eq 'pg') {
        $db = $t->postgres->database($o{db_name} // $name);
    }
    my $self = bless {
        t    => $t,
        name => $name,
        port => $o{port} // $t->port,
        db   => $db // $t->dir . "/$name.db",
        args => $o{args} // [],
        env  => $o{env} // {},
    }, $class;
    $self->start_again;
    return $self;
}

sub start_again {
    my ($self) = @_;
    my $t = $self->{t};
    my $before = () = ($self->log // '') =~ /^\S+ listening /mg;
    $t->spawn(
        $self->{name},
        cmd => [ $t->bin('egress-coordinator'), '--listen', "127.0.0.1:$self->{port}",
            '--db', $self->{db}, @{ $self->{args} } ],
        env       => { $t->san_env, %{ $self->{env} } },
        wait_port => $self->{port},
    );
    # The port opens a moment before the start is logged (and, on PostgreSQL,
    # before ownership is set up): ready is when this start's line is there.
    Test::Egress::wait_until(sub { (() = ($self->log // '') =~ /^\S+ listening /mg) > $before },
        $t->timeout(10))
        or Carp::croak("$self->{name} did not log its start:\n" . ($self->log // ''));
    return $self;
}

sub port { $_[0]{port} }
sub db   { $_[0]{db} }
sub name { $_[0]{name} }
sub url  { "http://127.0.0.1:$_[0]{port}" }
sub ws_url {
    my ($self, $lease, $role) = @_;
    return "ws://127.0.0.1:$self->{port}/v1/leases/$lease/egress/$role";
}
sub log { $_[0]{t}->log_of($_[0]{name}) }

sub stop    { $_[0]{t}->stop($_[0]{name}) }
sub kill9   { $_[0]{t}->kill9($_[0]{name}) }
sub restart {
    my ($self) = @_;
    $self->stop;
    return $self->start_again;
}

# Runs an admin subcommand against the same database; returns (rc, output).
sub admin {
    my ($self, @args) = @_;
    my $t = $self->{t};
    return $t->run([ $t->bin('egress-coordinator'), '--db', $self->{db}, @args ],
        env => { $t->san_env });
}

# Creates a bearer token and returns it (the CLI prints it alone on stdout).
sub token {
    my ($self, %o) = @_;
    my @args = ('token', 'add', '--owner', $o{owner} // 'alice', '--org', $o{org} // 'acme');
    push @args, '--admin' if $o{admin};
    my $t = $self->{t};
    my ($rc, $out) = $t->run([ $t->bin('egress-coordinator'), '--db', $self->{db}, @args ],
        env => { $t->san_env }, stderr_to => '/dev/null');
    croak "token add failed ($rc): $out" if $rc != 0;
    my ($tok) = $out =~ /^(egk_[A-Za-z0-9_-]+)\s*$/m;
    croak "token add printed no token: $out" unless $tok;
    return $tok;
}

# HTTP request to the API. Returns ($status, $decoded_json_or_undef, $raw_body, $headers).
sub api {
    my ($self, $method, $path, $token, $body, %o) = @_;
    my %h = (%{ $o{headers} || {} });
    $h{Authorization} = "Bearer $token" if defined $token;
    my %req = (headers => \%h);
    if (defined $body) {
        $req{content} = ref $body ? $JSON->encode($body) : $body;
        $h{'Content-Type'} = 'application/json';
    }
    my $res = HTTP::Tiny->new(timeout => 10 * ($ENV{EGRESS_SAN} ? 3 : 1))
        ->request($method, $self->url . $path, \%req);
    my $json = eval { $JSON->decode($res->{content}) } if length($res->{content} // '');
    return ($res->{status}, $json, $res->{content}, $res->{headers});
}

sub lease {
    my ($self, $token, %body) = @_;
    $body{ttlSeconds} //= 3600;
    my ($st, $j, $raw) = $self->api(POST => '/v1/leases', $token, \%body);
    croak "lease create: $st $raw" unless $st =~ /^20[01]$/ && $j;
    return $j;
}

sub ticket {
    my ($self, $token, $lease, %body) = @_;
    my ($st, $j, $raw) = $self->api(POST => "/v1/leases/$lease/egress/ticket", $token, \%body);
    croak "ticket mint: $st $raw" unless $st =~ /^20[01]$/ && $j;
    return $j;
}

sub status {
    my ($self, $token, $lease) = @_;
    my ($st, $j) = $self->api(GET => "/v1/leases/$lease/egress/status", $token);
    return wantarray ? ($st, $j) : $j;
}

# Opens an agent WebSocket. Options: ticket, ticket_header ('authorization'
# (default) or 'x-egress-ticket'), resume, protocols (default [egress.v2,
# egress.v1]; [] sends none), headers. Returns a Test::Egress::WS, or in list
# context (undef, status, body) when the upgrade is refused.
sub ws {
    my ($self, @args) = @_;
    return Test::Egress::WS->connect($self->_ws_args(@args));
}

# Like ws, but only sends the handshake; Test::Egress::WS->connect_finish($h)
# reads the answer (for racing upgrades).
sub ws_start {
    my ($self, @args) = @_;
    return Test::Egress::WS->connect_start($self->_ws_args(@args));
}

sub _ws_args {
    my ($self, $lease, $role, %o) = @_;
    my %h = (%{ $o{headers} || {} });
    if (defined $o{ticket}) {
        if (($o{ticket_header} // 'authorization') eq 'authorization') {
            $h{Authorization} = "Bearer $o{ticket}";
        } else {
            $h{'X-Egress-Ticket'} = $o{ticket};
        }
    }
    $h{'X-Egress-Resume'} = $o{resume} if defined $o{resume};
    return (
        host      => '127.0.0.1',
        port      => $self->{port},
        path      => "/v1/leases/$lease/egress/$role",
        headers   => \%h,
        protocols => $o{protocols} // [ 'egress.v2', 'egress.v1' ],
    );
}

1;
