#!/usr/bin/perl
# The promise, end to end: in a small internet of network namespaces, an
# operator runs `egress start` against a lease reached over real SSH; headless
# Chromium on the lease loads pages from an origin the lease cannot reach by
# itself, and the origin sees the operator's address. Then `egress stop`
# tears everything down.
#
#   lease 198.51.100.10 (sshd, nginx+module, Chromium)
#   operator 203.0.113.20 (egress start/status/stop, host agent daemon)
#   origin 192.0.2.30 (HTTP :80 and HTTPS :443, test CA)
#   net: router + coordinator (198.51.100.1, 203.0.113.1)

use strict;
use warnings;

use Test::More;
use File::Path qw(make_path);
use Test::Egress qw(slurp spew wait_until);
use Test::Egress::Netns;
use Test::Egress::Browser;

plan(skip_all => 'needs root and ip netns') unless Test::Egress::Netns::available();
plan(skip_all => 'needs sshd and chromium') unless -x '/usr/sbin/sshd' && Test::Egress::Browser::available();
my $t = Test::Egress->new->require_bins('egress', 'egress-coordinator',
    'ngx_stream_egress_module.so');
# The lease side is started through sshd, which cannot preload the sanitizer
# runtimes into nginx; every part is covered under ASan by the other tests.
plan(skip_all => 'uninstrumented nginx over SSH; covered by the plain pass') if $t->san;

my $dir    = $t->dir;
my $egress = $t->bin('egress');
chmod 0711, $dir;
my $n = Test::Egress::Netns->new($t,
    hosts => { 'origin.test' => '192.0.2.30', 'denied.test' => '192.0.2.30' });

sub sh { my $rc = system(@_); die "failed: @_\n" if $rc != 0 }

# --- a test CA and a certificate for origin.test ------------------------------

sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=egress-test-ca "
        . "-keyout $dir/ca.key -out $dir/ca.pem 2>/dev/null");
sh("openssl req -newkey rsa:2048 -nodes -subj /CN=origin.test -keyout $dir/origin.key "
        . "-out $dir/origin.csr 2>/dev/null");
spew("$dir/san.ext", "subjectAltName=DNS:origin.test\n");
sh("openssl x509 -req -in $dir/origin.csr -CA $dir/ca.pem -CAkey $dir/ca.key -CAcreateserial "
        . "-days 2 -extfile $dir/san.ext -out $dir/origin.pem 2>/dev/null");
chomp(my $spki = `openssl x509 -in $dir/origin.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`);

# --- the origin, the coordinator, sshd on the lease ---------------------------

$t->origin(name => 'origin-http', listen => '192.0.2.30', port => 80, wrap => [ $n->wrap('origin') ]);
$t->origin(name => 'origin-https', listen => '192.0.2.30', port => 443, tls => 1,
    cert => "$dir/origin.pem", key => "$dir/origin.key", wrap => [ $n->wrap('origin') ]);

$t->spawn('coordinator', cmd => [ $n->wrap('net'), $t->bin('egress-coordinator'), '--listen',
        '0.0.0.0:8080', '--db', "$dir/coord.db" ], wait_log => qr/listening/);
my ($rc, $token) = $t->run([ $t->bin('egress-coordinator'), '--db', "$dir/coord.db", 'token',
        'add', '--owner', 'olga', '--org', 'qa' ], stderr_to => '/dev/null');
chomp $token;
like($token, qr/^egk_/, 'operator token');

make_path('/run/sshd');
sh("ssh-keygen -q -t ed25519 -N '' -f $dir/host_key");
sh("ssh-keygen -q -t ed25519 -N '' -f $dir/id_ed25519");
sh("cp $dir/id_ed25519.pub $dir/authorized_keys");
spew("$dir/sshd_config", <<"EOF");
ListenAddress 198.51.100.10
Port 22
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $dir/sshd.pid
EOF
$t->spawn('sshd', cmd => [ $n->wrap('lease'), '/usr/sbin/sshd', '-D', '-e', '-f', "$dir/sshd_config" ],
    wait_log => qr/Server listening on 198\.51\.100\.10 port 22/);
spew("$dir/ssh_config", <<"EOF");
Host 198.51.100.10
    User root
    IdentityFile $dir/id_ed25519
    UserKnownHostsFile /dev/null
    StrictHostKeyChecking no
    LogLevel ERROR
EOF

my %env = (
    HOME               => "$dir/home",
    XDG_STATE_HOME     => "$dir/state",
    XDG_CONFIG_HOME    => "$dir/config",
    EGRESS_COORDINATOR => 'http://203.0.113.1:8080',
    EGRESS_TOKEN       => $token,
);
mkdir "$dir/$_" for qw(home state config);
my @ssh_opts = ('--ssh-config', "$dir/ssh_config", '--remote-egress', $egress);
sub op { $n->run('operator', [ $egress, @_ ], env => \%env, timeout => 60) }

($rc, my $out) = op('lease', 'create', '--slug', 'e2e-lease', '--ssh', 'root@198.51.100.10');
is($rc, 0, 'lease created with its SSH target') or diag($out);

# --- egress start: refusals and a failed preflight leave nothing behind ------------

($rc, $out) = op('start', '--id', 'e2e-lease', '--daemon', @ssh_opts);
is($rc, 2, 'egress start without an allowlist is refused');
like($out, qr/without an allowlist/, '... saying why');
($rc, $out) = op('start', '--id', 'e2e-lease', '--allow', 'origin.test', '--daemon',
    '--ssh-config', "$dir/ssh_config", '--remote-egress', '/nonexistent/egress');
is($rc, 6, 'egress start with egress missing on the lease: exit 6');
like($out, qr{/nonexistent/egress is not installed on the lease}, '... naming the missing piece');
($rc, $out) = op('start', '--id', 'e2e-lease', '--allow', 'origin.test', @ssh_opts,
    '--lease-coordinator', 'http://olga:secret@198.51.100.1:8080');
is($rc, 2, 'egress start refuses to hand a URL with credentials to the lease');
($rc, $out) = $n->run('lease', [ $egress, 'client', '--id', 'e2e-lease', '--check' ],
    env => { EGRESS_MODULE => '/nonexistent/ngx_stream_egress_module.so' });
is($rc, 1, 'egress client --check fails when the module is missing');
like($out, qr{missing: ngx_stream_egress_module \(/nonexistent/}, '... naming the missing piece');
($rc, $out) = op('status', '--id', 'e2e-lease');
like($out, qr/session=- host=false client=false/, '... and no session was created');
ok(!-e "$dir/state/egress/e2e-lease.host.pid", '... and no host agent started');

# --- egress start -------------------------------------------------------------

# The test network lives in documentation ranges, which the host agent treats
# as non-global like every other special-purpose range: --allow-private.
($rc, $out) = op('start', '--id', 'e2e-lease', '--allow', 'origin.test', '--allow-private',
    '--daemon', @ssh_opts, '--lease-coordinator', 'http://198.51.100.1:8080');
is($rc, 0, 'egress start --daemon') or diag($out);
like($out, qr/lease proxy on root\@198\.51\.100\.10:127\.0\.0\.1:3128 is connected/, 'lease proxy up');
# The supervisor writes its own line first; the agent's follows as it starts.
my $scope = qr/lease=e2e-lease .*allow=origin\.test .*private-addresses=ALLOWED/;
wait_until(sub { slurp("$dir/state/egress/e2e-lease.host.log") =~ $scope }, 10);
like(slurp("$dir/state/egress/e2e-lease.host.log"), $scope, 'the daemon log starts with the scope line');
unlike($out, qr/egt_|egk_|egr_/, 'no secret printed');

ok(wait_until(sub { (op('status', '--id', 'e2e-lease'))[0] == 0 }, 15), 'status exits 0');
($rc, $out) = op('status', '--id', 'e2e-lease');
like($out, qr/host=true client=true/, 'status: host=true client=true');

# --- the lease has no route of its own; through the proxy it has the operator's --

($rc, $out) = $n->run('lease', [ 'curl', '-sS', '--max-time', '3', 'http://192.0.2.30/ip' ]);
isnt($rc, 0, 'the lease cannot reach the origin directly');

($rc, $out) = $n->run('lease', [ 'curl', '-sS', '--max-time', '10', '--proxy',
        'http://127.0.0.1:3128', 'http://origin.test/ip' ]);
is($out, "203.0.113.20\n", 'HTTP through the proxy: the origin sees the operator address');
($rc, $out) = $n->run('lease', [ 'curl', '-sS', '--max-time', '10', '--cacert', "$dir/ca.pem",
        '--proxy', 'http://127.0.0.1:3128', 'https://origin.test/ip' ]);
is($out, "203.0.113.20\n", 'HTTPS via CONNECT: the origin sees the operator address');

# --- headless Chromium on the lease --------------------------------------------

my $b = Test::Egress::Browser->new($t, proxy => 'http://127.0.0.1:3128',
    wrap => [ $n->wrap('lease') ], spki => $spki);
($rc, my $dom) = $b->dom('https://origin.test/ip.html');
like($dom, qr{<p id="ip">203\.0\.113\.20</p>}, 'Chromium: HTTPS page shows the operator address')
    or diag($dom);
($rc, $dom) = $b->dom('http://origin.test/ip.html');
like($dom, qr{<p id="ip">203\.0\.113\.20</p>}, 'Chromium: HTTP page shows the operator address');
($rc, $dom) = $b->dom('http://denied.test/ip.html');
like($dom, qr/not allowed: denied\.test:80 is not on the allowlist/, 'Chromium: a denied host shows the reason');

my $art = $t->root . '/build/artifacts';
make_path($art);
$b->screenshot('https://origin.test/ip.html', "$art/e2e-origin.png");
ok(-s "$art/e2e-origin.png", "screenshot saved ($art/e2e-origin.png)");

# --- egress stop -------------------------------------------------------------

my $pidfile = "$dir/state/egress/e2e-lease.host.pid";
ok(-s $pidfile, 'the host agent daemon wrote its pid file');
chomp(my $daemon = slurp($pidfile));

($rc, $out) = op('stop', '--id', 'e2e-lease', @ssh_opts);
is($rc, 0, 'egress stop') or diag($out);
($rc, $out) = op('status', '--id', 'e2e-lease');
is($rc, 1, 'status exits 1 after stop');
like($out, qr/host=false client=false/, 'status: host=false client=false');
ok(!kill(0, $daemon), 'the host agent daemon is gone');
($rc, $out) = $n->run('lease', [ 'curl', '-sS', '--max-time', '3', '--proxy',
        'http://127.0.0.1:3128', 'http://origin.test/ip' ]);
like($out, qr/Failed to connect|Connection refused|Couldn't connect/i, 'port 3128 is closed on the lease');
($rc, $out) = op('stop', '--id', 'e2e-lease', @ssh_opts);
is($rc, 0, 'egress stop again is harmless');

# --- releasing the lease tears down the same way -----------------------------------

($rc, $out) = op('start', '--id', 'e2e-lease', '--allow', 'origin.test', '--allow-private',
    '--daemon', @ssh_opts, '--lease-coordinator', 'http://198.51.100.1:8080');
is($rc, 0, 'egress start again') or diag($out);
ok(wait_until(sub { (op('status', '--id', 'e2e-lease'))[0] == 0 }, 15), 'connected again');
chomp($daemon = slurp($pidfile));
($rc, $out) = $n->run('lease', [ 'curl', '-sS', '--max-time', '10', '--proxy',
        'http://127.0.0.1:3128', 'http://origin.test/ip' ]);
is($out, "203.0.113.20\n", 'browsing works again');

($rc, $out) = op('lease', 'release', '--id', 'e2e-lease');
is($rc, 0, 'lease released');
ok(wait_until(sub { !kill(0, $daemon) }, 10), 'the host agent daemon exits on release');
ok(wait_until(sub {
    my ($r, $o) = $n->run('lease', [ 'curl', '-sS', '--max-time', '3', '--proxy',
            'http://127.0.0.1:3128', 'http://origin.test/ip' ]);
    $o =~ /Failed to connect|Connection refused|Couldn't connect/i;
}, 10), 'port 3128 closes on the lease when the lease is released');
($rc, $out) = op('status', '--id', 'e2e-lease');
isnt($rc, 0, 'status no longer reports a connected session');
unlike($out, qr/host=true|client=true/, '... neither side connected');

my $sshd = $t->pid('sshd');
my @left = grep { $_ != $sshd } split ' ', `ip netns pids ${\ $n->name('lease')}`;
is(scalar(@left), 0, 'nothing but sshd is left on the lease') or diag(`ps -o pid,args -p @left`);

$t->done;
my @names = map { $n->name($_) } qw(net lease operator origin);
$n->destroy;
my $ns = `ip netns list`;
ok(!grep({ $ns =~ /\b\Q$_\E\b/ } @names), 'namespaces removed');

done_testing;
