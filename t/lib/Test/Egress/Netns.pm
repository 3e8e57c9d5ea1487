package Test::Egress::Netns;

# A small internet made of network namespaces, for end-to-end tests. Only
# documentation address ranges are used, and everything is removed again
# when the object goes away.
#
#            198.51.100.0/24             203.0.113.0/24
#   lease ─────────────────── net ─────────────────── operator
#   .10                 .1 │ (router, coordinator)  .1          .20
#                          │ 192.0.2.0/24
#                          │ .1
#                        origin .30
#
# - "net" forwards between its links and hosts the coordinator (it listens
#   on 198.51.100.1 and 203.0.113.1).
# - lease has routes to its own link and to the operator link only, so it
#   cannot reach the origin by itself.
# - operator has a default route through net, so the origin sees
#   203.0.113.20 for connections the host agent opens.
# - /etc/netns/<ns>/hosts gives each namespace its own name table
#   (`ip netns exec` mounts it over /etc/hosts inside the namespace).
#
#   my $n = Test::Egress::Netns->new($t, hosts => { 'origin.test' => '192.0.2.30' });
#   $n->exec('operator', 'curl', ...)    # argv prefix: ('ip','netns','exec',NAME)
#   $n->wrap('lease')                    # the prefix, for $t->spawn(cmd => [...])

use strict;
use warnings;

use Carp qw(croak);

our %ADDR = (
    lease    => '198.51.100.10',
    operator => '203.0.113.20',
    origin   => '192.0.2.30',
    net_lease    => '198.51.100.1',
    net_operator => '203.0.113.1',
    net_origin   => '192.0.2.1',
);

# Returns undef (with a reason in $@) when namespaces cannot be made here.
sub available {
    return 0 if $> != 0;
    return system('ip netns list >/dev/null 2>&1') == 0;
}

sub new {
    my ($class, $t, %o) = @_;
    croak "network namespaces need root" unless available();
    my $tag  = sprintf('eg%x%x', $$ & 0xffff, int(rand(0xffff)));
    my $self = bless { t => $t, tag => $tag, ns => {}, cmds => [] }, $class;
    for my $role (qw(net lease operator origin)) {
        $self->{ns}{$role} = "$tag-$role";
    }
    eval { $self->_build(%o); 1 } or do {
        my $e = $@;
        $self->destroy;
        croak "netns setup failed: $e";
    };
    return $self;
}

sub name { $_[0]{ns}{ $_[1] } // croak "no namespace $_[1]" }
sub addr { $ADDR{ $_[1] } // croak "no address $_[1]" }
sub wrap { ('ip', 'netns', 'exec', $_[0]->name($_[1])) }

sub _sh {
    my ($self, @cmd) = @_;
    my $rc = system(@cmd);
    croak "failed ($rc): @cmd" if $rc != 0;
}

sub _link {
    my ($self, $a, $a_addr, $b, $b_addr) = @_;
    my ($na, $nb) = ($self->name($a), $self->name($b));
    # Interface names must fit IFNAMSIZ; the tag keeps them unique per test.
    my ($ia, $ib) = ("$self->{tag}" . substr($b, 0, 2), "$self->{tag}" . substr($a, 0, 2));
    $self->_sh('ip', 'link', 'add', $ia, 'netns', $na, 'type', 'veth', 'peer', 'name', $ib,
        'netns', $nb);
    $self->_sh('ip', '-n', $na, 'addr', 'add', "$a_addr/24", 'dev', $ia);
    $self->_sh('ip', '-n', $nb, 'addr', 'add', "$b_addr/24", 'dev', $ib);
    $self->_sh('ip', '-n', $na, 'link', 'set', $ia, 'up');
    $self->_sh('ip', '-n', $nb, 'link', 'set', $ib, 'up');
}

sub _build {
    my ($self, %o) = @_;
    for my $role (qw(net lease operator origin)) {
        my $ns = $self->name($role);
        $self->_sh('ip', 'netns', 'add', $ns);
        $self->{made}{$ns} = 1;
        $self->_sh('ip', '-n', $ns, 'link', 'set', 'lo', 'up');
    }
    $self->_link('net', $ADDR{net_lease},    'lease',    $ADDR{lease});
    $self->_link('net', $ADDR{net_operator}, 'operator', $ADDR{operator});
    $self->_link('net', $ADDR{net_origin},   'origin',   $ADDR{origin});
    $self->_sh('ip', 'netns', 'exec', $self->name('net'), 'sysctl', '-qw',
        'net.ipv4.ip_forward=1');
    $self->_sh('ip', '-n', $self->name('lease'), 'route', 'add', '203.0.113.0/24', 'via',
        $ADDR{net_lease});
    $self->_sh('ip', '-n', $self->name('operator'), 'route', 'add', 'default', 'via',
        $ADDR{net_operator});
    $self->_sh('ip', '-n', $self->name('origin'), 'route', 'add', 'default', 'via',
        $ADDR{net_origin});

    my %hosts = %{ $o{hosts} || {} };
    for my $role (qw(net lease operator origin)) {
        my $dir = "/etc/netns/" . $self->name($role);
        mkdir '/etc/netns';
        mkdir $dir or croak "mkdir $dir: $!";
        $self->{etc}{$dir} = 1;
        open my $fh, '>', "$dir/hosts" or croak "$dir/hosts: $!";
        print {$fh} "127.0.0.1 localhost\n::1 localhost\n";
        print {$fh} "$hosts{$_} $_\n" for sort keys %hosts;
        close $fh;
    }
}

# Runs a command inside a namespace; returns (exit code, output).
sub run {
    my ($self, $role, $cmd, %o) = @_;
    return $self->{t}->run([ $self->wrap($role), @$cmd ], %o);
}

sub destroy {
    my ($self) = @_;
    return if $self->{destroyed}++;
    for my $ns (keys %{ $self->{made} || {} }) {
        # Processes left in the namespace would keep it alive: end them first.
        my @pids = split ' ', `ip netns pids $ns 2>/dev/null`;
        kill 'KILL', @pids if @pids;
        system('ip', 'netns', 'del', $ns);
    }
    for my $dir (keys %{ $self->{etc} || {} }) {
        unlink "$dir/hosts";
        rmdir $dir;
    }
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    $self->destroy;
}

1;
