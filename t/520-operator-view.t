#!/usr/bin/perl
# The operator's view (issue 16): what the lease browses and what was
# refused, per session in the coordinator (status JSON, `egress status
# --destinations`), the traffic ring (`egress status --watch`), and that the
# destination table stays bounded with 10,000 distinct hosts. Real
# coordinator, nginx with the module (`egress client`), host agent, curl and
# origin server.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Test::Egress qw(slurp spew wait_until);
use Test::Egress::HostAgent;

my $t = Test::Egress->new->require_bins('egress', 'egress-coordinator',
    'ngx_stream_egress_module.so');
my $c      = $t->coordinator;
my $token  = $c->token(owner => 'vera', org => 'qa');
my $egress = $t->bin('egress');
my $dir    = $t->dir;
chmod 0711, $dir;    # the nginx worker (nobody) must reach its runtime dir

my %env = (
    $t->san_env(preload => 1, leaks => 0),
    HOME               => "$dir/home",
    XDG_STATE_HOME     => "$dir/state",
    XDG_CONFIG_HOME    => "$dir/config",
    XDG_RUNTIME_DIR    => "$dir/run",
    EGRESS_COORDINATOR => $c->url,
    EGRESS_TOKEN       => $token,
    EGRESS_MODULE      => $t->bin('ngx_stream_egress_module.so'),
);
mkdir "$dir/$_" for qw(home state config run);
chmod 0711, "$dir/run";
sub eg { $t->run([ $egress, @_ ], env => \%env) }

my ($rc, $out) = eg('lease', 'create', '--slug', 'view-lease', '--ttl', '600');
is($rc, 0, 'lease create') or diag($out);
my ($lid) = $out =~ /^(\S+) slug=view-lease/m;
($rc, $out) = eg('ticket', '--id', $lid, '--role', 'client', '--out', "$dir/client.ticket",
    '--session-out', "$dir/session");
is($rc, 0, 'client ticket') or diag($out);
chomp(my $session = slurp("$dir/session"));

my $pport = $t->port;
$t->spawn('client', cmd => [ $egress, 'client', '--id', $lid, '--listen', "127.0.0.1:$pport",
        '--ticket-file', "$dir/client.ticket" ], env => \%env, wait_port => $pport);
my $o  = $t->origin;
my $op = $o->port;
my $o2 = $t->origin(name => 'origin2');
my $op2 = $o2->port;
spew("$dir/allow.txt", "# patterns added with egress allow\n");
{
    local $env{EGRESS_TICKET};
    $t->spawn('host', cmd => [ $egress, 'host', '--id', $lid, '--session', $session,
            '--allow', "localhost:$op", '--allow-file', "$dir/allow.txt", '--allow-private' ],
        env => \%env, wait_log => qr/connected/);
}
ok(wait_until(sub { (eg('status', '--id', $lid))[0] == 0 }), 'both sides connected');

sub curl {
    my ($url, @extra) = @_;
    return $t->run([ 'curl', '-sS', '--max-time', '20', '--proxy', "http://127.0.0.1:$pport",
            '-w', '\n%{http_code}', @extra, $url ]);
}

sub status_json {
    my ($st, $body) = $c->api(GET => "/v1/leases/$lid/egress/status", $token);
    return $st == 200 ? $body : undef;
}

sub dest_of {
    my ($s, $host, $port) = @_;
    my ($d) = grep { $_->{host} eq $host && $_->{port} == $port } @{ $s->{destinations} };
    return $d;
}

# --- a browser-like session: pages, a download, refused hosts ---------------

my $before = status_json();
is_deeply($before->{destinations}, [], 'no destinations before any request');
is_deeply($before->{refused}, [], 'nothing refused yet');
is(scalar @{ $before->{traffic}{up} }, 900, 'the traffic ring holds 900 seconds');

for my $path ('/', '/ip', '/bytes/100000') {
    ($rc, $out) = curl("http://localhost:$op$path");
    like($out, qr/\n200$/, "GET $path through the proxy");
}
($rc, $out) = curl("http://cdn.denied.example:$op/logo.png");
like($out, qr/not allowed.*\n403$/s, 'a host off the allowlist: 403');
($rc, $out) = curl("http://cdn.denied.example:$op/app.js");
like($out, qr/\n403$/, '... twice');
($rc, $out) = curl("http://localhost:$op2/");
like($out, qr/\n403$/, 'an allowed host on another port: 403');
($rc, $out) = curl("http://127.0.0.1:$op/ip");
like($out, qr/\n403$/, 'an address not on the allowlist: 403');

my $s;
ok(wait_until(sub { $s = status_json(); dest_of($s, 'cdn.denied.example', $op)
            && dest_of($s, 'localhost', $op)
            && dest_of($s, 'localhost', $op)->{bytesDown} >= 100000 }),
    'the status JSON lists the destinations');
my $ok = dest_of($s, 'localhost', $op);
is($ok->{opens}, 3, 'allowed host: three opens');
is($ok->{opened}, 3, '... three established');
is($ok->{refused}, 0, '... none refused');
is($ok->{reason}, undef, '... no reason');
cmp_ok($ok->{bytesDown}, '>=', 100000, '... the download counted down');
cmp_ok($ok->{bytesUp}, '>', 0, '... the requests counted up');
my $bad = dest_of($s, 'cdn.denied.example', $op);
is($bad->{opens}, 2, 'refused host: two opens');
is($bad->{refused}, 2, '... two refusals');
is($bad->{opened}, 0, '... never established');
is($bad->{reason}, 'not_allowed', '... reason not_allowed');
my $port = dest_of($s, 'localhost', $op2);
is($port->{reason}, 'port', 'allowed host, other port: reason port');

my %ref = map { ("$_->{host}:$_->{port}" => $_) } @{ $s->{refused} };
is(scalar keys %ref, 3, 'three refused destinations');
is($ref{"cdn.denied.example:$op"}{count}, 2, 'refused list: count');
is($ref{"cdn.denied.example:$op"}{reasonText}, 'not on the allowlist', 'refused list: reason text');
is($ref{"cdn.denied.example:$op"}{allowCommand}, "egress allow --id $lid add cdn.denied.example:$op",
    'refused list: the exact command that allows it');
is($ref{"localhost:$op2"}{allowCommand}, "egress allow --id $lid add localhost:$op2",
    '... and for the port');
ok(!exists $ref{"localhost:$op"}, 'the allowed host is not in the refused list');
my $json = JSON::PP->new->canonical->encode($s);
unlike($json, qr/is not on the allowlist|egt_|egr_|GET \//,
    'the status keeps no refusal text, secret or request content');

($rc, $out) = eg('status', '--id', $lid, '--destinations');
is($rc, 0, 'status --destinations') or diag($out);
like($out, qr/^HOST\s+PORT\s+OPENS\s+OK\s+REFUSED\s+REASON\s+UP\s+DOWN\s+LAST SEEN$/m,
    '... a table header');
like($out, qr/^localhost\s+$op\s+3\s+3\s+0\s+-\s+\S+\s+\d+\.\dK\s+\S+Z$/m, '... the allowed row');
like($out, qr/^cdn\.denied\.example\s+$op\s+2\s+0\s+2\s+not_allowed\s/m, '... the refused row');
like($out, qr/^localhost\s+$op2\s+1\s+0\s+1\s+port\s/m, '... the port row');
like($out, qr/^  cdn\.denied\.example:$op  not on the allowlist \(not_allowed\), 2 times\n    allow it: egress allow --id \Q$lid\E add cdn\.denied\.example:$op$/m,
    '... the refused host with its command');
($rc, $out) = eg('status', '--id', $lid, '--destinations', '--json');
is($rc, 2, '--destinations and --json exclude each other');

# --- egress allow: widen the list of the running agent ------------------------

my $host_pid = $t->pid('host');
($rc, $out) = eg('allow', '--id', $lid, 'add', "127.0.0.1:$op");
is($rc, 0, 'egress allow add') or diag($out, $t->log_of('host'));
like($out, qr/now enforces 2 patterns/, '... the agent confirms the new list');
like(slurp("$dir/allow.txt"), qr/^# patterns added with egress allow\n127\.0\.0\.1:$op\n\z/,
    '... the pattern is appended to the allow file, the comment kept');
($rc, $out) = curl("http://127.0.0.1:$op/ip");
is($out, "127.0.0.1\n\n200", 'the refused address now works');
is($t->pid('host'), $host_pid, '... without restarting the agent');
ok($t->running('host'), '... which still runs');
ok(wait_until(sub { my $x = status_json(); !grep { $_->{host} eq '127.0.0.1' } @{ $x->{refused} } }),
    'it leaves the refused list');
ok(wait_until(sub { grep { $_ eq "127.0.0.1:$op" } @{ status_json()->{allow} } }),
    'the agent reports its new list: the status shows it')
    or diag(explain(status_json()->{allow}), $t->log_of('host'));
like($t->log_of('host'), qr/allowlist reported to the coordinator/, '... as the agent logs');
($rc, $out) = eg('allow', '--id', $lid, 'list');
is($rc, 0, 'egress allow list');
like($out, qr/^localhost:$op\n127\.0\.0\.1:$op\n/m, '... the effective patterns');
($rc, $out) = eg('allow', '--id', $lid, 'add', "127.0.0.1:$op");
like($out, qr/nothing to change/, 'adding it again changes nothing');
($rc, $out) = eg('allow', '--id', $lid, 'add', '*.com');
is($rc, 2, 'a bad pattern is refused before the file is touched');
like($out, qr/public suffix/, '... saying why');

# An open stream survives the removal of its pattern (no --strict-reload).
$t->spawn('keep', cmd => [ 'curl', '-sS', '-o', '/dev/null', '-w', 'size=%{size_download}\n',
        '--max-time', '60', '--proxy', "http://127.0.0.1:$pport",
        "http://127.0.0.1:$op/slow/200000/100000" ], allow_exit => 1);
ok(wait_until(sub { (status_json() // {})->{streams} >= 1 }), 'a slow download is open');
($rc, $out) = eg('allow', '--id', $lid, 'remove', "127.0.0.1:$op");
is($rc, 0, 'egress allow remove') or diag($out);
like($out, qr/now enforces 1 patterns/, '... one pattern left');
($rc, $out) = curl("http://127.0.0.1:$op/ip");
like($out, qr/\n403$/, 'new requests to the removed address are refused');
ok(defined $t->wait_exit('keep', 60), 'the open download went on');
like($t->log_of('keep'), qr/^size=200000$/m, '... to its last byte');
($rc, $out) = eg('allow', '--id', $lid, 'remove', 'never.example');
is($rc, 1, 'removing a pattern that is not there: exit 1');
like($out, qr/never\.example is not in the allow file/, '... saying so');

# A broken file is refused whole, the line named, and the old list stays.
spew("$dir/allow.txt", "# hand edited\n127.0.0.1:$op\nb..example\n");
($rc, $out) = eg('allow', '--id', $lid, 'add', 'c.example');
is($rc, 1, 'a broken allow file: egress allow fails');
like($out, qr/refused the file: \Q$dir\E\/allow\.txt line 3: .*b\.\.example/,
    '... naming the file and the line');
like($out, qr/previous allowlist stays in force/, '... and saying the old list applies');
like($t->log_of('host'), qr/allowlist reload refused, the old list stays: .*line 3/,
    'the agent logs the refusal');
($rc, $out) = curl("http://127.0.0.1:$op/ip");
like($out, qr/\n403$/, 'the good line of the broken file did not apply');
($rc, $out) = curl("http://localhost:$op/ip");
like($out, qr/\n200$/, 'the old list still allows what it allowed');
ok($t->running('host'), 'the agent still runs');
is_deeply(status_json()->{allow}, ["localhost:$op"], 'the status still shows the list in force');
spew("$dir/allow.txt", "127.0.0.1:$op\n");
kill 'HUP', $host_pid;
ok(wait_until(sub { (curl("http://127.0.0.1:$op/ip"))[1] =~ /\n200$/ }),
    'a plain SIGHUP re-reads the fixed file');

# The report is the session's own: a stale session id is refused.
my ($pst) = $c->api(PUT => "/v1/leases/$lid/egress/allow", $token,
    { sessionID => 'egress_1.1.x.y', allow => ['evil.example'] });
is($pst, 409, 'an allowlist report for another session is refused');
($pst) = $c->api(PUT => "/v1/leases/$lid/egress/allow", $token,
    { sessionID => $session, allow => ['*.com'] });
is($pst, 400, 'a report with a bad pattern is refused');

# --- egress allow with a --daemon agent: SIGHUP to the supervisor reloads ----

my $hd = Test::Egress::HostAgent->new($t, coordinator => $c, slug => 'daemon-allow',
    allow => 'only.example', no_agent => 1);
my $sd = "$dir/state/egress";
my $DL = $hd->lease;
my $dpid = "$sd/$DL.host.pid";
END {
    if ($dpid && open(my $fh, '<', $dpid)) {
        my $p = <$fh>;
        kill 'TERM', $1 if defined $p && $p =~ /^(\d+)/;
    }
}
spew("$dir/daemon.allow", "# empty at first\n");
($rc, $out) = $t->run($hd->agent_cmd('--daemon', '--allow-file', "$dir/daemon.allow"),
    env => { $hd->env });
is($rc, 0, 'a daemon with --allow-file starts') or diag($out);
ok($hd->wait_peer(1, 20), '... and connects');
chomp(my $sup = slurp($dpid));
my %denv = (%env, $hd->env);
($rc, $out) = $t->run([ $egress, 'allow', '--id', $DL, 'add', 'two.example' ], env => \%denv);
is($rc, 0, 'egress allow add reaches the daemon\'s agent') or diag($out);
like($out, qr/now enforces 2 patterns/, '... which confirms');
like(slurp("$sd/$DL.host.allow"), qr/^reload 2 ok 2$/m, '... in its state file');
kill 'HUP', $sup;
ok(wait_until(sub { slurp("$sd/$DL.host.allow") =~ /^reload 3 ok 2$/m }),
    'SIGHUP to the supervisor reaches the agent as a reload');
ok(kill(0, $sup), '... and does not stop the daemon');
kill 'TERM', $sup;
ok(wait_until(sub { !kill(0, $sup) }, 20), 'the daemon stops on SIGTERM');
ok(!-e "$sd/$DL.host.allow", '... and the agent removes its allow state file');

# --- the traffic ring and --watch -------------------------------------------

$s = status_json();
my $down = 0;
$down += $_ for @{ $s->{traffic}{down} };
cmp_ok($down, '>=', 100000, 'the ring counted the download');
my $streams = 0;
$streams = $_ > $streams ? $_ : $streams for @{ $s->{traffic}{streams} };
cmp_ok($streams, '>=', 1, 'the ring saw an open stream');

# A transfer of about 4 s runs while --watch prints 3 lines.
$t->spawn('slow', cmd => [ 'curl', '-sS', '-o', '/dev/null', '--max-time', '60',
        '--proxy', "http://127.0.0.1:$pport", "http://localhost:$op/slow/400000/100000" ],
    allow_exit => 1);
ok(wait_until(sub { (status_json() // {})->{streams} >= 1 }), 'the slow transfer is open');
($rc, $out) = eg('status', '--id', $lid, '--watch', '--count', '3');
is($rc, 0, 'status --watch --count 3 ends by itself') or diag($out);
my @lines = $out =~ /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ up=\d+ down=\d+ streams=\d+)$/mg;
is(scalar @lines, 3, '... after three lines') or diag($out);
my @secs = map { /T\d\d:\d\d:(\d\d)Z/ } @lines;
ok(($secs[1] - $secs[0]) % 60 == 1 && ($secs[2] - $secs[1]) % 60 == 1, '... one a second');
ok((grep { /down=(\d+)/ && $1 > 0 } @lines), '... showing the transfer') or diag($out);
ok((grep { /streams=([1-9]\d*)/ } @lines), '... and the open stream') or diag($out);
ok(defined $t->wait_exit('slow', 60), 'the slow transfer ended');

# SIGINT ends an unbounded --watch.
$t->spawn('watch', cmd => [ $egress, 'status', '--id', $lid, '--watch' ], env => \%env,
    wait_log => qr/ up=\d+ down=\d+ streams=\d+$/m);
kill 'INT', $t->pid('watch');
my $ws = $t->wait_exit('watch', 10);
ok(defined $ws, '--watch exits on SIGINT');
is($ws >> 8, 0, '... with status 0') if defined $ws;

# --- 10,000 distinct hosts: the table stays bounded ----------------------------

sub rss_kb {
    my ($pid) = @_;
    my ($kb) = slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+) kB/m;
    return $kb;
}
my $h = Test::Egress::HostAgent->new($t, coordinator => $c, slug => 'many-hosts',
    allow => 'only.example');
my $cpid = $t->pid($c->name);
my $rss0 = rss_kb($cpid);
my $n = 10000;
for my $i (1 .. $n) {
    $h->open($i, "h$i.many.example", 443, no_wait => 1);
}
my $errors = 0;
while ($errors < $n) {
    my $m = $h->next_msg(30 * ($ENV{EGRESS_SAN} ? 3 : 1)) or last;
    $errors++ if $m->{json} && $m->{json}{type} eq 'error';
}
is($errors, $n, "$n opens of distinct hosts refused");
my ($st, $big) = $c->api(GET => '/v1/leases/' . $h->lease . '/egress/status', $h->token);
is($st, 200, 'status of that session');
is(scalar @{ $big->{destinations} }, 100, 'the table keeps 100 destinations');
is($big->{destinationsEvicted}, $n - 100, '... and counts the others as forgotten');
is($big->{destinations}[0]{host}, "h$n.many.example", '... the most recent first');
is(scalar @{ $big->{refused} }, 100, 'the refused list is bounded too');
my $rss1 = rss_kb($cpid);
cmp_ok($rss1 - $rss0, '<', 16 * 1024, "coordinator memory grew by less than 16 MiB ($rss0 -> $rss1 kB)")
    unless $ENV{EGRESS_SAN};

done_testing();
