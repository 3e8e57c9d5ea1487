#!/usr/bin/perl
# `egress start` reports each step as it starts with the time since it
# began, and a failure names the step, its cause and the command to run
# next. The lease here is this machine reached over a real sshd on loopback
# (root only): a failed SSH login, egress missing on the lease, an unknown
# lease, no allowlist, and then a whole start that reaches the host agent.

use strict;
use warnings;

use Test::More;
use Test::Egress qw(slurp spew wait_until);

plan(skip_all => 'needs root (sshd, nginx as the lease proxy)') if $> != 0;
plan(skip_all => 'needs sshd') unless -x '/usr/sbin/sshd';
my $t = Test::Egress->new->require_bins('egress', 'egress-coordinator',
    'ngx_stream_egress_module.so');

my $dir    = $t->dir;
my $egress = $t->bin('egress');
chmod 0711, $dir;
my $c     = $t->coordinator;
my $token = $c->token(owner => 'pia', org => 'qa');

sub sh { my $rc = system(@_); die "failed: @_\n" if $rc != 0 }

my $sport = $t->port;
my $dead  = $t->port;    # nothing listens there
mkdir '/run/sshd' unless -d '/run/sshd';
sh("ssh-keygen -q -t ed25519 -N '' -f $dir/host_key");
sh("ssh-keygen -q -t ed25519 -N '' -f $dir/id_ed25519");
sh("cp $dir/id_ed25519.pub $dir/authorized_keys");
spew("$dir/sshd_config", <<"EOF2");
ListenAddress 127.0.0.1
Port $sport
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $dir/sshd.pid
EOF2
$t->spawn('sshd', cmd => [ '/usr/sbin/sshd', '-D', '-e', '-f', "$dir/sshd_config" ],
    wait_log => qr/Server listening on 127\.0\.0\.1 port $sport/);
spew("$dir/ssh_config", <<"EOF2");
Host lease
    HostName 127.0.0.1
    Port $sport
    User root
    IdentityFile $dir/id_ed25519
    UserKnownHostsFile /dev/null
    StrictHostKeyChecking no
    LogLevel ERROR
Host deadlease
    HostName 127.0.0.1
    Port $dead
    User root
    IdentityFile $dir/id_ed25519
    UserKnownHostsFile /dev/null
    StrictHostKeyChecking no
    LogLevel ERROR
    ConnectTimeout 10
EOF2

my %env = (
    HOME               => "$dir/home",
    XDG_STATE_HOME     => "$dir/state",
    XDG_CONFIG_HOME    => "$dir/config",
    EGRESS_COORDINATOR => $c->url,
    EGRESS_TOKEN       => $token,
);
mkdir "$dir/$_" for qw(home state config);
my $lease = 'progress-' . $$;
my $pport = $t->port;
my @common = ('--ssh-config', "$dir/ssh_config", '--remote-egress', $egress,
    '--listen', "127.0.0.1:$pport", '--allow', 'localhost', '--allow-private');
sub op { $t->run([ $egress, @_ ], env => \%env, timeout => 90) }

my ($rc, $out) = op('lease', 'create', '--slug', $lease, '--ssh', 'lease');
is($rc, 0, 'lease created') or diag($out);

my $step = sub { my ($n, $what) = @_; qr/^egress start: \[\s*\d+\.\d+s\] $n\/6 \Q$what\E/m };

# 1. no allowlist
($rc, $out) = op('start', '--id', $lease, '--ssh-config', "$dir/ssh_config");
is($rc, 2, 'no allowlist: exit 2');
like($out, $step->(1, 'checking the allowlist'), '... step 1 reported');
like($out, qr/^egress start: failed at step 1\/6 \(checking the allowlist\) after \d+\.\ds, exit 2: refusing to start without an allowlist/m,
    '... the failure names the step and the cause');
like($out, qr/^egress start: next: egress start --id \Q$lease\E --profile discord/m, '... and what to run next');

# 2. an unknown lease
($rc, $out) = op('start', '--id', 'no-such-lease', @common);
is($rc, 3, 'unknown lease: exit 3');
like($out, $step->(2, 'looking up lease no-such-lease on the coordinator'), '... step 2 reported');
like($out, qr/^egress start: failed at step 2\/6 .* exit 3: the coordinator answered 404 for lease no-such-lease/m,
    '... the failure names the step and the cause');
like($out, qr/^egress start: next: egress lease list$/m, '... and what to run next');

# 3. SSH cannot log in
($rc, $out) = op('start', '--id', $lease, @common, '--ssh', 'deadlease');
is($rc, 1, 'SSH unreachable: exit 1');
like($out, $step->(3, 'checking nginx and the egress module on the lease (deadlease)'), '... step 3 reported');
like($out, qr/^egress start: failed at step 3\/6 .* exit 1: cannot reach the lease over SSH \(deadlease\)/m,
    '... the failure names the step and the cause');
like($out, qr/^egress start: next: ssh -F \Q$dir\E\/ssh_config deadlease true/m, '... and what to run next');

# 3. egress missing on the lease
($rc, $out) = op('start', '--id', $lease, @common, '--remote-egress', '/nonexistent/egress');
is($rc, 6, 'egress missing on the lease: exit 6');
like($out, qr/^egress start: failed at step 3\/6 .* exit 6: \/nonexistent\/egress is not installed on the lease/m,
    '... the failure names the step and the cause');
like($out, qr/^egress start: next: egress start --id \Q$lease\E \.\.\. --install .*apt-get install -y/m,
    '... and how to install the lease side');
($rc, $out) = op('status', '--id', $lease);
like($out, qr/host=false client=false/, 'the failed starts left no session running');

# --install: no packages where it looks, then files that are no packages
# (they travel over SSH and the lease refuses them; nothing is installed).
($rc, $out) = op('start', '--id', $lease, @common, '--install', '--packages', "$dir/none");
is($rc, 1, '--install without packages: exit 1');
like($out, qr/^egress start: no egress_\*_\*\.deb in \Q$dir\E\/none \(make deb builds them/m, '... saying where it looked');
mkdir "$dir/pk";
spew("$dir/pk/egress_0.0_amd64.deb", "not a package\n" x 5000);
spew("$dir/pk/libnginx-mod-stream-egress_0.0_amd64.deb", join('', map { chr } 0 .. 255) x 64);
($rc, $out) = op('start', '--id', $lease, @common, '--install', '--packages', "$dir/pk");
is($rc, 6, '--install with files that are no packages: exit 6');
like($out, qr/^egress start: lease: egress_0\.0_amd64\.deb is not a Debian package/m,
    '... the lease names the file it refused');
like($out, qr/^egress start: failed at step 3\/6 \(installing egress and the module on the lease \(lease\)/m,
    '... and the step');

SKIP: {
skip 'the lease proxy is started through sshd, which cannot preload the sanitizer runtimes '
    . 'into nginx; covered by the plain pass', 9 if $t->san;
# The whole way, to a host agent in the background.
($rc, $out) = op('start', '--id', $lease, @common, '--daemon');
is($rc, 0, 'egress start --daemon') or diag($out);
my @steps = $out =~ /^egress start: \[\s*(\d+\.\d)s\] (\d)\/6 /mg;
my @nums  = @steps[ grep { $_ % 2 } 0 .. $#steps ];
is_deeply(\@nums, [ 1 .. 6 ], 'the six steps are reported in order') or diag($out);
my @times = @steps[ grep { !($_ % 2) } 0 .. $#steps ];
ok(!grep({ $times[$_] < $times[ $_ - 1 ] } 1 .. $#times), '... with elapsed times that never go back');
like($out, qr/^egress start: \[\s*\d+\.\ds\] done: egress status --id \Q$lease\E; egress stop --id \Q$lease\E$/m,
    'it ends saying what to run next');
unlike($out, qr/failed at step/, 'no failure reported');
unlike($out, qr/egt_|egk_|egr_/, 'no secret printed');
ok(wait_until(sub { (op('status', '--id', $lease))[0] == 0 }, 20), 'both sides connected');

($rc, $out) = op('stop', '--id', $lease, '--ssh-config', "$dir/ssh_config", '--remote-egress', $egress);
is($rc, 0, 'egress stop') or diag($out);
ok(wait_until(sub { !$t->port_open($pport) }, 20), 'the lease proxy is gone');
}

$t->done;
done_testing;
