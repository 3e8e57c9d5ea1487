#!/usr/bin/perl
# Our module and host agent through a coordinator that behaves like
# crabbox's (Test::Egress::CrabCoord: opaque relay, no hello, echoes the
# first offered subprotocol, no DELETE), v1 forced on both ends (issue 15):
# a checksummed download and upload, then a second host agent takes the
# session over and crabbox's "replaced by a newer egress host" close (1012,
# which wslay refuses as a code) ends the first agent for good instead of
# letting the two fight over the slot. Opens the double drops because no
# host is attached get 503 "host agent not connected" in seconds (the
# module's probe goes unanswered), while a host that is there but slow to
# open gets its time (the probe is answered).

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);
use Time::HiRes ();
use Test::Egress qw(wait_until);
use Test::Egress::Crab;
use Test::Egress::CrabCoord;
use Test::Egress::Origin;

$SIG{PIPE} = 'IGNORE';

my $t = Test::Egress->new->require_bins('egress', 'ngx_stream_egress_module.so');
my $d   = Test::Egress::CrabCoord->start($t);
my $o   = $t->origin;
my $op  = $o->port;
my $dir = $t->dir;
my $L   = 'swift-crab';

my $size = 4 * 1024 * 1024 + 3;
my $want = Test::Egress::Origin::pattern($size);
my $upload = join('', map { chr(($_ * 11) % 256) } 0 .. 3 * 1024 * 1024);
Test::Egress::spew("$dir/upload.bin", $upload);

sub status {
    my ($rc, $out) = $t->run([ 'curl', '-sS', '--max-time', '10', $d->url . "/v1/leases/$L/egress/status" ]);
    return eval { JSON::PP->new->decode($out) } // {};
}

Test::Egress::spew("$dir/client.ticket", 'egress_' . ('cd' x 16) . "\n", 0600);
my $pp = $t->port;
$t->nginx(name => 'nginx', wait_port => $pp, main => "user root;\n", stream => <<"EOF");
    egress_bridge ${\ $d->ws_url($L, 'client')};
    egress_bridge_ticket_file $dir/client.ticket;
    egress_bridge_state_file $dir/client.state;
    egress_bridge_protocol v1;
    server {
        listen 127.0.0.1:$pp;
        egress_proxy on;
        egress_open_timeout 30s;
    }
EOF

# No host agent yet: the double drops the module's opens without a word.
# The module asks with a probe open, gets no answer either, and says what
# the status says (hostConnected false): 503 "host agent not connected",
# in seconds, not a 504 after egress_open_timeout (30 s here).
ok(wait_until(sub { status()->{clientConnected} }), 'module attached, no host agent yet');
sub timed_get {
    my $t0 = Time::HiRes::time();
    my ($rc, $out) = $t->run([ 'curl', '-sS', '--max-time', '40', '-w', '\n%{http_code}', '--proxy',
            "http://127.0.0.1:$pp", "http://localhost:$op/bytes/10" ], timeout => 60);
    return ($out, Time::HiRes::time() - $t0);
}
my ($got, $took) = timed_get();
like($got, qr/host agent not connected.*\n503\z/s, 'no host: 503 "host agent not connected"');
ok($took < 10, sprintf('... after %.1f s, well before egress_open_timeout', $took));
ok(!status()->{hostConnected}, '... which is what the status says');
like($t->nginx_error_log('nginx'), qr/host agent not connected \(no answer on this v1 bridge/,
    'the module logs why');
($got, $took) = timed_get();
like($got, qr/\n503\z/, 'the next request gets it at once');
ok($took < 5, sprintf('... (%.1f s)', $took));

sub start_agent {
    my ($name) = @_;
    Test::Egress::spew("$dir/$name.ticket", 'egress_' . ('ef' x 16) . "\n", 0600);
    $t->spawn($name, cmd => [ $t->bin('egress'), 'host', '--id', $L, '--session', 'egress_double',
            '--coordinator', $d->url, '--ticket-file', "$dir/$name.ticket", '--allow',
            "localhost:$op", '--allow-private', '--protocol', 'v1' ],
        env => { $t->san_env, HOME => $dir, XDG_STATE_HOME => "$dir/state-$name",
            EGRESS_TOKEN => 'unused' },
        wait_log => qr/connected: lease=/);
}

start_agent('host-a');
ok(wait_until(sub { my $s = status(); $s->{hostConnected} && $s->{clientConnected} }),
    'module and agent both attached to the crabbox-like coordinator');
ok(wait_until(sub { $t->nginx_error_log('nginx') =~ /host agent connected \(it answered\)/ }, 20),
    'the module\'s next probe is answered: host agent connected');
like($d->log, qr/client connected lease=\Q$L\E protocol=egress\.v1/, 'module offered v1 and got it echoed');

sub transfers {
    my ($name) = @_;
    my ($rc, $body) = $t->run([ 'curl', '-sS', '--max-time', '60', '--proxy', "http://127.0.0.1:$pp",
            "http://localhost:$op/bytes/$size" ], timeout => 90);
    ok($body eq $want, "$name: 4 MiB download intact");
    ($rc, $body) = $t->run([ 'curl', '-sS', '--max-time', '60', '-p', '--proxy',
            "http://127.0.0.1:$pp", '--data-binary', "\@$dir/upload.bin",
            "http://localhost:$op/echo" ], timeout => 90);
    is($body, sprintf("len=%d sha1=%s\n", length $upload, sha1_hex($upload)), "$name: 3 MiB upload intact");
}
transfers('first agent');

# A second daemon for the same session: crabbox closes the first with 1012.
start_agent('host-b');
my $st = $t->wait_exit('host-a', 30);
is(defined $st ? $st >> 8 : undef, 3, 'the replaced agent exits as fatal (3), it does not reconnect');
like($t->log_of('host-a'), qr/fatal: coordinator closed the bridge: replaced by a newer egress agent \(1012/,
    'and says why');
unlike($t->log_of('host-a'), qr/protocol error/, 'no WebSocket protocol error over the 1012');
ok(wait_until(sub { my $s = status(); $s->{hostConnected} && $s->{clientConnected} }),
    'the newer agent holds the session');
transfers('second agent');

# The module in auto offers egress.v2 first; the double echoes it and never
# says hello: after a short wait the module speaks v1, and says so once.
$t->stop('nginx');
Test::Egress::spew("$dir/client.ticket", 'egress_' . ('12' x 16) . "\n", 0600);
unlink "$dir/client.state";
$t->nginx(name => 'nginx-auto', wait_port => $pp, main => "user root;\n", stream => <<"EOF");
    egress_bridge ${\ $d->ws_url($L, 'client')};
    egress_bridge_ticket_file $dir/client.ticket;
    egress_bridge_state_file $dir/client.state;
    server {
        listen 127.0.0.1:$pp;
        egress_proxy on;
    }
EOF
ok(wait_until(sub { $t->nginx_error_log('nginx-auto') =~ /speaking egress\.v1/ }, 20),
    'auto: no hello after egress.v2 was echoed, so v1');
like($d->log, qr/client connected lease=\Q$L\E protocol=egress\.v2/, 'auto: the double echoed egress.v2');
transfers('auto module');
my @notes = $t->nginx_error_log('nginx-auto') =~ /(\[notice\].*speaking egress\.v1)/g;
is(scalar @notes, 1, 'auto: the fallback is logged once');

# The host agent in auto: the double echoes egress.v2 and the first thing
# the agent hears is the module's v1 open, so it speaks v1 from there.
Test::Egress::spew("$dir/host-c.ticket", 'egress_' . ('34' x 16) . "\n", 0600);
$t->spawn('host-c', cmd => [ $t->bin('egress'), 'host', '--id', $L, '--session', 'egress_double',
        '--coordinator', $d->url, '--ticket-file', "$dir/host-c.ticket", '--allow',
        "localhost:$op", '--allow-private' ],
    env => { $t->san_env, HOME => $dir, XDG_STATE_HOME => "$dir/state-host-c", EGRESS_TOKEN => 'unused' },
    wait_log => qr/host agent/);
ok(wait_until(sub { $d->log =~ /host connected lease=\Q$L\E protocol=egress\.v2/ }, 20),
    'auto agent: offered egress.v2 first and got it echoed');
is(defined $t->wait_exit('host-b', 30) ? 'exited' : 'running', 'exited', 'auto agent replaced the previous one (1012)');
transfers('auto agent');
like($t->log_of('host-c'), qr/protocol=egress\.v1: the coordinator selected egress\.v2 but sent a v1 frame/,
    'auto agent: fell back to v1 and said so');

# A host agent that is there but slow to open (crabbox's dials in the
# background): the probe is answered at once, so the open runs its course
# (502 with the host's dial error after 4 s), no "not connected".
{
    # the double closes the module's socket with 1011 when the host leaves:
    # a fresh ticket for the module's reconnect (v1 has no resume secret)
    Test::Egress::spew("$dir/client.ticket", 'egress_' . ('9a' x 16) . "\n", 0600);
    $t->stop('host-c');
    my $h = Test::Egress::Crab->start_host($t, name => 'crabhost-slow', url => $d->ws_url($L, 'host'),
        ticket => 'egress_' . ('56' x 16), slow => ['slow.test']);
    ok(wait_until(sub { my $s = status(); $s->{hostConnected} && $s->{clientConnected} }),
        'a crabbox-style host attached, and the module is back');
    ok(wait_until(sub {
        my (undef, $code) = $t->run([ 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time',
                '10', '--proxy', "http://127.0.0.1:$pp", "http://localhost:$op/bytes/10" ], timeout => 20);
        $code eq '200' }, 20), '... and past its wait for hello (auto): a request goes through');
    my $t0 = Time::HiRes::time();
    my ($rc, $out) = $t->run([ 'curl', '-sS', '--max-time', '40', '-w', '\n%{http_code}', '--proxy',
            "http://127.0.0.1:$pp", 'http://slow.test/' ], timeout => 60);
    my $took = Time::HiRes::time() - $t0;
    like($out, qr/i\/o timeout.*\n502\z/s, 'slow open: the host\'s own answer (502), not 503');
    ok($took >= 3.5, sprintf('... after the host took its time (%.1f s)', $took));
    like($h->log, qr/crab host: open conn_[0-9a-z]+ egress-probe\.invalid:9/,
        'the module probed meanwhile, and the host refused the probe');
    Test::Egress::spew("$dir/client.ticket", 'egress_' . ('bc' x 16) . "\n", 0600);
    $t->stop('crabhost-slow');
}
Test::Egress::spew("$dir/host-c.ticket", 'egress_' . ('78' x 16) . "\n", 0600);
$t->spawn('host-c2', cmd => [ $t->bin('egress'), 'host', '--id', $L, '--session', 'egress_double',
        '--coordinator', $d->url, '--ticket-file', "$dir/host-c.ticket", '--allow',
        "localhost:$op", '--allow-private' ],
    env => { $t->san_env, HOME => $dir, XDG_STATE_HOME => "$dir/state-host-c2", EGRESS_TOKEN => 'unused' },
    wait_log => qr/host agent/);
ok(wait_until(sub { my $s = status(); $s->{hostConnected} && $s->{clientConnected} }),
    'our agent holds the host side again, and the module is back');

# `egress client` has the same choice as `egress host`
my ($rc, $out) = $t->run([ $t->bin('egress'), 'client', '--id', $L, '--coordinator', $d->url,
        '--protocol', 'v1', '--print-config' ]);
like($out, qr/^\s*egress_bridge_protocol v1;$/m, 'egress client --protocol v1 reaches the module');
($rc, $out) = $t->run([ $t->bin('egress'), 'client', '--id', $L, '--coordinator', $d->url,
        '--print-config' ]);
like($out, qr/^\s*egress_bridge_protocol auto;$/m, 'egress client: auto by default');
($rc) = $t->run([ $t->bin('egress'), 'client', '--id', $L, '--protocol', 'v9', '--print-config' ]);
is($rc, 2, 'egress client --protocol v9: usage error');

# `egress status` reads crabbox's status (no "state", an "active" flag)
($rc, $out) = $t->run([ $t->bin('egress'), 'status', '--id', $L, '--coordinator', $d->url ],
    env => { $t->san_env, HOME => $dir, EGRESS_TOKEN => 'unused' });
is($rc, 0, 'egress status against the crabbox-like coordinator: both connected');
like($out, qr/^lease=\Q$L\E session=egress_double profile=- host=true client=true streams=0 state=active$/m,
    'egress status: crabbox\'s members read');

# `egress stop` against a coordinator without DELETE: stops what runs here,
# says what the coordinator could not do, and succeeds.
($rc, $out) = $t->run([ $t->bin('egress'), 'stop', '--id', $L, '--coordinator', $d->url ],
    env => { $t->san_env, HOME => $dir, XDG_STATE_HOME => "$dir/state-stop", EGRESS_TOKEN => 'unused' });
is($rc, 0, 'egress stop: exit 0 when the local part succeeded');
like($out, qr/coordinator cannot stop egress sessions \(answered 404 to DELETE\)/,
    'egress stop: says the coordinator could not stop the session');

# crabbox closes the host with 1011 when the client leaves: transient, the
# agent stays and connects again (with a freshly minted ticket).
sub host_attaches { my @m = $d->log =~ /host connected lease=\Q$L\E/g; scalar @m }
my $before = host_attaches();
$t->stop('nginx-auto');
ok(wait_until(sub { $t->log_of('host-c2') =~ /bridge down \(close code 1011\); reconnecting/ }, 20),
    '1011 from a crabbox-style coordinator: the agent reconnects');
ok(wait_until(sub { host_attaches() > $before }, 20) && $t->running('host-c2'),
    'it attaches again and keeps running');

$t->done;
done_testing;
