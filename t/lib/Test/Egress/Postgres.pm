package Test::Egress::Postgres;

# A scratch PostgreSQL server for tests, from Debian's packages
# (/usr/lib/postgresql/N/bin): initdb into the test directory, then the
# server in the foreground on a free 127.0.0.1 port (no Unix socket), owned
# by the harness like every other process. PostgreSQL refuses to run as
# root, so under root both run as the unprivileged user `nobody` (the test
# directory is opened for traversal only). Trust authentication on loopback:
# a test server only.
#
#   my $pg  = $t->postgres;               # one server per test, started once
#   my $uri = $pg->database('c1');        # CREATE DATABASE; returns its URI
#   $pg->psql('c1', 'SELECT 1');          # (rc, output)
#
# Set EGRESS_TEST_DB=pg and every $t->coordinator without an explicit db
# gets its own database on this server instead of a SQLite file.

use strict;
use warnings;

use Carp qw(croak);

my $USER = 'egress';    # the database superuser initdb creates

# Directory of Debian's PostgreSQL binaries (newest major), or undef.
sub bindir {
    my @dirs = sort { ($b =~ m{/(\d+)/bin$})[0] <=> ($a =~ m{/(\d+)/bin$})[0] }
        grep { -x "$_/initdb" && -x "$_/postgres" } glob('/usr/lib/postgresql/*/bin');
    return $dirs[0];
}

sub available { return defined bindir() }

sub start {
    my ($class, $t) = @_;
    my $bin = bindir() or croak 'PostgreSQL server binaries not found under /usr/lib/postgresql';
    my $dir = $t->dir . '/pg';
    my $data = "$dir/data";
    my $self = bless { t => $t, bin => $bin, dir => $dir, port => $t->port, dbs => {} }, $class;

    mkdir $dir or croak "mkdir $dir: $!";
    my @as = ();
    if ($> == 0) {
        my (undef, undef, $uid, $gid) = getpwnam('nobody') or croak 'no user nobody';
        chmod 0711, $t->dir;
        chown $uid, $gid, $dir or croak "chown $dir: $!";
        @as = (as_user => [ $uid, $gid ]);
    }
    $self->{as} = \@as;
    my ($rc, $out) = $t->run([ "$bin/initdb", '-D', $data, '-U', $USER, '--auth=trust',
            '--encoding=UTF8', '--locale=C', '--no-sync' ], @as, timeout => 120);
    croak "initdb failed ($rc):\n$out" if $rc != 0;
    $t->spawn(
        'postgres',
        cmd => [ "$bin/postgres", '-D', $data, '-p', $self->{port},
            '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
            '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
            '-c', 'max_connections=100', '-c', 'shared_buffers=16MB' ],
        @as,
        wait_port   => $self->{port},
        timeout     => 60,
        stop_signal => 'INT',    # fast shutdown: TERM would wait for clients
    );
    # The port opens before recovery ends ("the database system is starting
    # up"): ready is when a query answers.
    Test::Egress::wait_until(sub { ($self->psql('postgres', 'SELECT 1'))[0] == 0 }, 60)
        or croak 'PostgreSQL did not become ready';
    return $self;
}

sub port { $_[0]{port} }

sub uri {
    my ($self, $db) = @_;
    return "postgresql://$USER\@127.0.0.1:$self->{port}/$db";
}

# Runs SQL in database $db through psql; returns (rc, output).
sub psql {
    my ($self, $db, $sql) = @_;
    return $self->{t}->run([ "$self->{bin}/psql", '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
            '-d', $self->uri($db), '-c', $sql ], @{ $self->{as} });
}

# Creates database $name once; returns its URI.
sub database {
    my ($self, $name) = @_;
    (my $db = lc $name) =~ s/[^a-z0-9_]/_/g;
    $db = "egress_$db";
    unless ($self->{dbs}{$db}++) {
        my ($rc, $out) = $self->psql('postgres', qq{CREATE DATABASE "$db"});
        croak "CREATE DATABASE $db failed ($rc):\n$out" if $rc != 0;
    }
    return $self->uri($db);
}

1;
