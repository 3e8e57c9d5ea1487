#!/usr/bin/perl
# make deb builds the three Debian packages; lintian has nothing to say
# beyond the documented overrides; they install on this machine with dpkg,
# Debian's nginx loads the module through the packaged snippet (nginx -t),
# the units pass systemd-analyze verify, the coordinator's packaged database
# takes a token from root and stays the service user's, and purging leaves
# nothing behind. Root only (dpkg -i); skipped when a package of ours is
# already installed, so a real installation is never touched.

use strict;
use warnings;

use Test::More;
use Test::Egress;

my @PKGS = qw(libnginx-mod-stream-egress egress egress-coordinator);

plan(skip_all => 'needs root (dpkg -i, nginx -t against /etc/nginx)') if $> != 0;
plan(skip_all => 'the packages are built once, by the plain pass') if $ENV{EGRESS_SAN};
for my $tool (qw(dpkg-buildpackage lintian scdoc systemd-analyze nginx)) {
    plan(skip_all => "$tool is not installed (make deps)")
        unless grep { -x "$_/$tool" } split /:/, "$ENV{PATH}:/usr/sbin:/sbin";
}
for my $p (@PKGS) {
    my $st = `dpkg-query -W -f='\${Status}' $p 2>/dev/null`;
    plan(skip_all => "$p is installed on this machine; not touching it") if $st =~ /installed/;
}

my $t    = Test::Egress->new;
my $root = $t->root;

# t/602 prints and runs commands that use installed programs when there are
# any: it holds this lock shared, we hold it exclusively while ours exist.
use Fcntl qw(:flock);
mkdir "$root/build";
open(my $lock, '>>', "$root/build/.system-packages.lock") or die "lock: $!";
my $dir  = $t->dir;
my $debs = "$root/build/deb";
my $user_existed = getpwnam('egress-coordinator') ? 1 : 0;
my $installed;

END {
    if ($installed) {
        system('dpkg', '--purge', @PKGS);
        system('userdel', 'egress-coordinator') if !$user_existed && getpwnam('egress-coordinator');
        getgrnam('egress-coordinator') && !$user_existed && system('groupdel', 'egress-coordinator');
    }
}

# Before: Debian's nginx does not know the directives.
my $port = $t->port('proxy');
Test::Egress::spew("$dir/client.ticket", "egt_placeholder\n");
chmod 0600, "$dir/client.ticket";
Test::Egress::spew("$dir/nginx.conf", <<"EOF2");
include /etc/nginx/modules-enabled/*.conf;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events {}
stream {
    egress_bridge ws://127.0.0.1:8080/v1/leases/t601/egress/client;
    egress_bridge_ticket_file $dir/client.ticket;
    server {
        listen 127.0.0.1:$port;
        egress_proxy on;
    }
}
EOF2
my ($rc, $out) = $t->run([ 'nginx', '-t', '-c', "$dir/nginx.conf" ]);
isnt($rc, 0, 'before: nginx -t does not know egress_bridge');

# Build (EGRESS_DEB_REUSE=1 takes build/deb as it is, to iterate on the rest).
if ($ENV{EGRESS_DEB_REUSE} && glob("$debs/egress_*.changes")) {
    pass('make deb (reused build/deb)');
} else {
    ($rc, $out) = $t->run([ 'make', '-s', '-C', $root, 'deb' ], timeout => 1800);
    is($rc, 0, 'make deb') or diag($out);
}
my %deb;
for my $p (@PKGS) {
    ($deb{$p}) = glob("$debs/${p}_*_*.deb");
    ok($deb{$p} && -f $deb{$p}, "make deb built $p") or diag($out);
}
BAIL_OUT('no packages to test') if grep { !$deb{$_} } @PKGS;

# What the packages declare.
my $ctl = `dpkg-deb -f $deb{'libnginx-mod-stream-egress'} Depends`;
like($ctl, qr/\blibnginx-mod-stream\b/, 'the module depends on libnginx-mod-stream');
like($ctl, qr/\bnginx-abi-[\d.]+-\d+\b/, '... and on the nginx ABI it was built for');
my %files;
for my $p (@PKGS) {
    $files{$p} = join "\n", map { (split ' ', $_, 6)[5] } split /\n/, `dpkg-deb -c $deb{$p}`;
}
like($files{'libnginx-mod-stream-egress'}, qr{^\./usr/lib/nginx/modules/ngx_stream_egress_module\.so$}m,
    'the module is in Debian\'s nginx module directory');
like($files{'libnginx-mod-stream-egress'}, qr{^\./usr/share/nginx/modules-available/mod-stream-egress\.conf$}m,
    '... with its snippet in modules-available');
like($files{egress}, qr{^\./usr/bin/egress$}m, 'egress has the program');
like($files{egress}, qr{^\./usr/share/man/man1/egress\.1\.gz$}m, '... egress(1)');
like($files{egress}, qr{^\./usr/share/man/man5/egress\.5\.gz$}m, '... egress(5)');
like($files{egress}, qr{^\./usr/lib/systemd/user/egress-host\@\.service$}m, '... the user unit');
like($files{egress}, qr{^\./usr/share/bash-completion/completions/egress$}m, '... bash completion');
like($files{'egress-coordinator'}, qr{^\./usr/sbin/egress-coordinator$}m, 'egress-coordinator has the daemon');
like($files{'egress-coordinator'}, qr{^\./lib/systemd/system/egress-coordinator\.service$}m, '... its unit');
like($files{'egress-coordinator'}, qr{^\./etc/egress/coordinator\.conf$}m, '... its config');
like(`dpkg-deb --ctrl-tarfile $deb{'egress-coordinator'} | tar -xOf - ./conffiles`,
    qr{^/etc/egress/coordinator\.conf$}m, '... which is a conffile');

# lintian: nothing at error or warning level (overrides in debian/*.lintian-overrides).
my ($changes) = glob("$debs/egress_*.changes");
($rc, $out) = $t->run([ 'lintian', '--fail-on', 'error,warning', $changes ], timeout => 900);
my @tags = grep { /^[EW]: / } split /\n/, $out;
is($rc, 0, 'lintian passes') or diag($out);
is_deeply(\@tags, [], 'lintian reports no error or warning');

# Install on this machine.
flock($lock, LOCK_EX) or die "flock: $!";
($rc, $out) = $t->run([ 'dpkg', '-i', map { $deb{$_} } @PKGS ], timeout => 300);
$installed = 1;
is($rc, 0, 'dpkg -i installs the three packages') or diag($out);

my $link = '/etc/nginx/modules-enabled/70-mod-stream-egress.conf';
ok(-l $link, 'the module is enabled like Debian\'s libnginx-mod-* (modules-enabled symlink)');
is(Test::Egress::slurp($link), "load_module modules/ngx_stream_egress_module.so;\n",
    '... loading it from nginx\'s module directory');
($rc, $out) = $t->run([ 'nginx', '-t', '-c', "$dir/nginx.conf" ]);
is($rc, 0, 'nginx -t with the packaged snippet accepts the egress directives') or diag($out);
($rc, $out) = $t->run([ 'nginx', '-t' ]);
is($rc, 0, 'Debian\'s own nginx configuration still passes nginx -t') or diag($out);

# Units.
($rc, $out) = $t->run([ 'systemd-analyze', 'verify', '/lib/systemd/system/egress-coordinator.service' ]);
is($rc, 0, 'systemd-analyze verify egress-coordinator.service') or diag($out);
is($out, '', '... without a complaint');
# A template is verified through an instance; system mode expands %E to /etc.
system('cp', '/usr/lib/systemd/user/egress-host@.service', "$dir/egress-host\@t601.service");
($rc, $out) = $t->run([ 'systemd-analyze', 'verify', "$dir/egress-host\@t601.service" ]);
is($rc, 0, 'systemd-analyze verify egress-host@LEASE.service') or diag($out);
my $unit = Test::Egress::slurp('/lib/systemd/system/egress-coordinator.service');
for my $want ('User=egress-coordinator', 'StateDirectory=egress-coordinator',
              'ProtectSystem=strict', 'NoNewPrivileges=yes', 'Restart=on-failure',
              'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
              'EnvironmentFile=/etc/egress/coordinator.conf') {
    like($unit, qr/^\Q$want\E$/m, "the coordinator unit has $want");
}

# The coordinator's user and database; a token from root.
my @pw = getpwnam('egress-coordinator');
ok(@pw, 'the package created the system user egress-coordinator');
my $db = '/var/lib/egress-coordinator/egress.db';
my @st = stat($db);
ok(@st && $st[4] == $pw[2] && ($st[2] & 07777) == 0600, 'the packaged database is the user\'s, mode 0600');
($rc, $out) = $t->run([ '/usr/sbin/egress-coordinator', '--db', $db, 'token', 'add',
    '--owner', 't601', '--org', 't601' ], stderr_to => "$dir/token.err");
is($rc, 0, 'root adds a token against the packaged database');
like($out, qr/^egk_\S+\n\z/, '... printed once');
@st = stat($db);
is($st[4], $pw[2], 'the database still belongs to the service user');
ok(!grep({ -e "$db$_" && (stat("$db$_"))[4] != $pw[2] } '-wal', '-shm'),
    'no root-owned -wal/-shm left beside it');
($rc, $out) = $t->run([ 'setpriv', "--reuid=$pw[2]", "--regid=$pw[3]", '--clear-groups',
    '/usr/sbin/egress-coordinator', '--db', $db, 'token', 'list' ]);
is($rc, 0, 'the service user opens the database') or diag($out);
like($out, qr/\bt601\b/, '... and sees the token root added');

# Man pages are found by man.
for my $page ([ 1, 'egress' ], [ 5, 'egress' ], [ 8, 'egress-coordinator' ]) {
    ($rc, $out) = $t->run([ 'man', '-w', $page->[0], $page->[1] ]);
    like($out, qr{/usr/share/man/man$page->[0]/$page->[1]\.$page->[0]\.gz}, "man $page->[0] $page->[1] is installed");
}

# Purge.
($rc, $out) = $t->run([ 'dpkg', '--purge', @PKGS ], timeout => 300);
is($rc, 0, 'dpkg --purge') or diag($out);
$installed = 0;
ok(!-e $link && !-l $link, 'the modules-enabled link is gone');
ok(!-e '/var/lib/egress-coordinator', 'the database is gone');
ok(!-e '/etc/egress/coordinator.conf', 'the conffile is gone');
ok(!-e '/usr/lib/nginx/modules/ngx_stream_egress_module.so', 'the module is gone');
system('userdel', 'egress-coordinator') if !$user_existed && getpwnam('egress-coordinator');
system('groupdel', 'egress-coordinator') if !$user_existed && getgrnam('egress-coordinator');

# --- egress start --install -------------------------------------------------
# The lease is this machine reached over a real sshd on loopback; after the
# purge above it has neither egress nor the module, like a fresh lease (the
# operator's egress is the build's, the lease's the packaged one).
SKIP: {
    skip 'needs sshd', 1 unless -x '/usr/sbin/sshd';
    my $egress = $t->bin('egress');
    -x $egress or skip 'egress not built', 1;
    chmod 0711, $dir;
    my $c     = $t->coordinator;
    my $token = $c->token(owner => 'ida', org => 'qa');
    my $sport = $t->port;
    mkdir '/run/sshd' unless -d '/run/sshd';
    system("ssh-keygen -q -t ed25519 -N '' -f $dir/host_key && ssh-keygen -q -t ed25519 -N '' "
        . "-f $dir/id_ed25519 && cp $dir/id_ed25519.pub $dir/authorized_keys") == 0 or die;
    Test::Egress::spew("$dir/sshd_config", <<"EOF2");
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
    Test::Egress::spew("$dir/ssh_config", <<"EOF2");
Host lease
    HostName 127.0.0.1
    Port $sport
    User root
    IdentityFile $dir/id_ed25519
    UserKnownHostsFile /dev/null
    StrictHostKeyChecking no
    LogLevel ERROR
EOF2
    my %env = (HOME => "$dir/home", XDG_STATE_HOME => "$dir/state", XDG_CONFIG_HOME => "$dir/config",
        EGRESS_COORDINATOR => $c->url, EGRESS_TOKEN => $token);
    mkdir "$dir/$_" for qw(home state config);
    my $pport = $t->port;
    my @start = ('start', '--id', 'install-lease', '--ssh-config', "$dir/ssh_config",
        '--allow', 'localhost', '--allow-private', '--listen', "127.0.0.1:$pport", '--daemon');
    my $op = sub { $t->run([ $egress, @_ ], env => \%env, timeout => 600) };
    my $ours = sub {
        join ' ', map { `dpkg-query -W -f='\${db:Status-Status}' $_ 2>/dev/null` || 'not-installed' }
            qw(egress libnginx-mod-stream-egress);
    };
    my $before = `dpkg-query -W -f='\${Package} \${db:Status-Status}\n' | sort`;

    ($rc, $out) = $op->('lease', 'create', '--slug', 'install-lease', '--ssh', 'lease');
    is($rc, 0, 'lease created') or diag($out);

    ($rc, $out) = $op->(@start);
    is($rc, 6, 'without --install: exit 6, egress is missing on the lease');
    like($out, qr/next: egress start --id install-lease \.\.\. --install/, '... and the hint names --install')
        or diag($out);

    # An nginx ABI the lease does not have: a copy of the module package that says so.
    mkdir "$dir/badabi";
    system("cp $deb{egress} $dir/badabi/ && dpkg-deb -R $deb{'libnginx-mod-stream-egress'} $dir/x "
        . "&& sed -i 's/nginx-abi-[^ ,]*/nginx-abi-0.0.1-1/' $dir/x/DEBIAN/control "
        . "&& dpkg-deb -b $dir/x $dir/badabi/libnginx-mod-stream-egress_0.1.0_amd64.deb >/dev/null") == 0
        or die 'cannot make the mismatching package';
    ($rc, $out) = $op->(@start, '--install', '--packages', "$dir/badabi");
    is($rc, 6, 'a module for another nginx ABI: exit 6');
    like($out, qr/nginx ABI mismatch: the module was built for nginx-abi-0\.0\.1-1, the lease has nginx-abi-[\d.]+-\d+ \(its installed nginx [^)]+\); build the packages/,
        '... naming both ABIs and how to build for the lease');
    is($ours->(), 'not-installed not-installed', '... and installing nothing');

    # A failure in the middle of apt-get: another package owns /usr/bin/egress,
    # so dpkg refuses to unpack egress after apt has started.
    mkdir "$dir/blocker";
    mkdir "$dir/blocker/$_" for qw(DEBIAN usr usr/bin);
    Test::Egress::spew("$dir/blocker/DEBIAN/control", "Package: egress-t601-blocker\nVersion: 1\n"
        . "Architecture: all\nMaintainer: t601 <t601\@localhost>\nDescription: test blocker\n");
    Test::Egress::spew("$dir/blocker/usr/bin/egress", "#!/bin/sh\nexit 1\n");
    chmod 0755, "$dir/blocker/usr/bin/egress";
    system("dpkg-deb -b $dir/blocker $dir/blocker.deb >/dev/null && dpkg -i $dir/blocker.deb >/dev/null") == 0
        or die 'cannot install the blocker package';
    $before = `dpkg-query -W -f='\${Package} \${db:Status-Status}\n' | sort`;
    ($rc, $out) = $op->(@start, '--install', '--packages', $debs);
    my $after = `dpkg-query -W -f='\${Package} \${db:Status-Status}\n' | sort`;
    system('dpkg --purge egress-t601-blocker >/dev/null');
    is($rc, 1, 'apt-get fails in the middle: exit 1') or diag($out);
    like($out, qr/apt-get install failed; undone, the lease is as it was/, '... undone');
    is($ours->(), 'not-installed not-installed', '... neither package is left installed')
        or system('dpkg', '--purge', 'egress', 'libnginx-mod-stream-egress');
    ok($after eq $before, '... and the lease\'s package list is as before');
    ok(!-l $link, '... nor the module enabled');
    ($rc, $out) = $op->('status', '--id', 'install-lease');
    like($out, qr/host=false client=false/, '... and no session runs');

    # The real thing.
    ($rc, $out) = $op->(@start, '--install', '--packages', $debs);
    $installed = 1;
    is($rc, 0, 'egress start --install') or diag($out);
    like($out, qr/lease: installed: egress 0\.1\.0 libnginx-mod-stream-egress 0\.1\.0$/m,
        '... installs both packages on the lease');
    is($ours->(), 'installed installed', '... which dpkg has');
    ok(Test::Egress::wait_until(sub { ($op->('status', '--id', 'install-lease'))[0] == 0 }, 30),
        '... and the packaged lease proxy connects');
    ($rc, $out) = $t->run([ 'curl', '-sS', '--proxy', "http://127.0.0.1:$pport",
        "http://localhost:" . $c->port . '/healthz' ]);
    is($rc, 0, 'a request goes through the packaged module') or diag($out);

    ($rc, $out) = $op->('stop', '--id', 'install-lease', '--ssh-config', "$dir/ssh_config");
    is($rc, 0, 'egress stop') or diag($out);
    my @list = stat('/var/lib/dpkg/info/egress.list');
    ($rc, $out) = $op->(@start, '--install', '--packages', $debs);
    is($rc, 0, 'egress start --install again') or diag($out);
    like($out, qr/lease: already installed: nothing to do/, '... changes nothing');
    is((stat('/var/lib/dpkg/info/egress.list'))[9], $list[9], '... dpkg did not run');
    ($rc, $out) = $op->('stop', '--id', 'install-lease', '--ssh-config', "$dir/ssh_config");
    is($rc, 0, 'egress stop') or diag($out);

    ($rc, $out) = $t->run([ 'dpkg', '--purge', 'egress', 'libnginx-mod-stream-egress' ], timeout => 300);
    is($rc, 0, 'purged again') or diag($out);
    $installed = 0;
}

$t->done;
done_testing;
