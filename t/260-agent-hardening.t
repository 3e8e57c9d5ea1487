#!/usr/bin/perl
# Hardening of the host agent, the coordinator's files and `egress client`:
# wildcards over a whole public suffix are refused (agent and coordinator);
# non-global addresses (benchmarking, documentation, 6to4 of a private IPv4)
# are refused without --allow-private; the database with its -wal/-shm and
# the audit log are 0600 under umask 022, wider ones are tightened; a
# --runtime-dir the nginx worker cannot reach fails before nginx starts.
# No address outside loopback is ever dialled: the refusals happen first.

use strict;
use warnings;

use Test::More;
use Test::Egress qw(slurp spew wait_until);
use Test::Egress::HostAgent;

umask 022;    # inherited by every process started below
my $t = Test::Egress->new->require_bins('egress', 'egress-coordinator');
my $egress = $t->bin('egress');
my $d      = $t->dir;
my $closed = $t->port;    # nothing listens here
my %env = ($t->san_env, HOME => "$d/home", XDG_CONFIG_HOME => "$d/config",
    XDG_STATE_HOME => "$d/state", EGRESS_TOKEN => '', EGRESS_COORDINATOR => '', EGRESS_TICKET => '');
mkdir "$d/$_" for qw(home config state);
sub egress { my ($extra, @a) = @_; $t->run([ $egress, @a ], env => { %env, %$extra }) }
sub mode { sprintf '%04o', (stat $_[0])[2] & 07777 }

my $have_list = -r '/usr/share/publicsuffix/public_suffix_list.dat';
my @host = ('host', '--id', 'lease-1', '--coordinator', "http://127.0.0.1:$closed");

# ---- wildcards over a public suffix --------------------------------------------

my ($rc, $out) = egress({}, @host, '--allow', 'shop.example,*.com');
is($rc, 2, '--allow *.com: exit 2');
like($out, qr/--allow: invalid allowlist pattern "\*\.com": .*public suffix.*"?com"?/,
    '... naming the pattern and why') or diag($out);
($rc, $out) = egress({}, @host, '--allow', '*.co.uk');
is($rc, 2, '--allow *.co.uk: exit 2');
like($out, qr/"\*\.co\.uk": .*"co\.uk"/, '... naming the suffix');
($rc, $out) = egress({}, 'start', '--id', 'lease-1', '--allow', '*.com');
is($rc, 2, 'egress start --allow *.com: exit 2');
like($out, qr/egress start: invalid allowlist pattern "\*\.com"/, '... before anything starts');

SKIP: {
    skip 'Debian package publicsuffix not installed', 4 unless $have_list;
    ($rc, $out) = egress({}, @host, '--allow', '*.github.io');
    like($out, qr/"\*\.github\.io": the wildcard covers the whole public suffix "github\.io"/,
        'the list knows private suffixes (github.io)');
    ($rc, $out) = egress({}, @host, '--allow', '*.amazonaws.com');
    is($rc, 2, '--allow *.amazonaws.com: exit 2');
    like($out, qr/"\*\.amazonaws\.com": the wildcard covers the public suffix "[^"]+\.amazonaws\.com"/,
        '... a public suffix below the wildcard is named');
    ($rc, $out) = egress({}, @host, '--allow', '*.github.io');
    is($rc, 2, '--allow *.github.io: exit 2');
}

# Without the list, the built-in rule stands in and says so.
my %nolist = (EGRESS_PUBLIC_SUFFIX_LIST => "$d/no-such-list.dat");
($rc, $out) = egress(\%nolist, @host, '--allow', '*.com');
is($rc, 2, 'no list: *.com still refused');
like($out, qr/"\*\.com": "com" looks like a public suffix \(built-in rule; install publicsuffix/,
    '... by the built-in rule, which says so');
($rc, $out) = egress(\%nolist, @host, '--allow', '*.com.au');
is($rc, 2, 'no list: *.com.au refused');

# Acceptable wildcards and both profiles get past the allowlist (then stop at the credential).
for my $ok ([ '--allow', '*.example.com,*.bbc.co.uk,*.localhost' ], [ '--profile', 'discord' ],
    [ '--profile', 'slack' ]) {
    for my $e ({}, \%nolist) {
        ($rc, $out) = egress($e, @host, @$ok);
        like($out, qr/no credential/, "@$ok accepted" . (%$e ? ' (built-in rule)' : ''))
            or diag($out);
    }
}

# ---- the coordinator applies the same rule to a ticket's allowlist ---------------

my $c = $t->coordinator;
my $h = Test::Egress::HostAgent->new($t, coordinator => $c, no_agent => 1);
my ($st, $j, $raw) = $c->api(POST => '/v1/leases/' . $h->lease . '/egress/ticket', $h->token,
    { role => 'host', sessionID => $h->session, allow => ['good.example', '*.com'] });
is($st, 400, 'coordinator: a ticket allowing *.com is refused');
like($raw, qr/invalid allowlist pattern \\?"\*\.com\\?"/, '... naming the pattern');

# ---- non-global addresses need --allow-private -------------------------------------

my $o = $t->origin;
my $P = $o->port;
my $audit = "$d/audit.log";
$h->{o}{allow} = "198.18.0.1:$P,[2002:c0a8:101::1]:$P,192.0.2.1:$P,[2001:db8::1]:$P,"
    . "[64:ff9b:1::808:808]:$P,127.0.0.1:$P";
$h->{o}{args} = [ '--audit-log', $audit ];
$h->start_agent;
like($t->log_of('agent'), qr/private-addresses=refused/, 'agent started without --allow-private');
my $n = 1;
for (['198.18.0.1', 'benchmarking'], ['2002:c0a8:101::1', 'private'], ['192.0.2.1', 'documentation'],
    ['2001:db8::1', 'documentation'], ['64:ff9b:1::808:808', 'private']) {
    my ($addr, $class) = @$_;
    my $a = $h->open($n++, $addr, $P);
    is($a->{message}, "not allowed: $addr is a private address ($class)",
        "$addr refused before dialling ($class)")
        or diag explain $a;
}
my $a = $h->open($n++, '127.0.0.1', $P);
is($a->{message}, "not allowed: 127.0.0.1 is a private address (loopback)", 'loopback still refused');

# ---- file modes --------------------------------------------------------------------

ok(-e $audit, 'audit log written');
is(mode($audit), '0600', 'audit log is 0600 under umask 022');
ok(wait_until(sub { -e $c->db . '-wal' && -e $c->db . '-shm' }), 'coordinator has -wal and -shm');
is(mode($c->db), '0600', 'database is 0600 under umask 022');
is(mode($c->db . '-wal'), '0600', '-wal is 0600');
is(mode($c->db . '-shm'), '0600', '-shm is 0600');
$t->stop('agent');

# Wider files left by an older version are tightened, and that is logged.
spew("$d/old-audit.log", "{}\n");
chmod 0644, "$d/old-audit.log";
($rc, $out) = egress({ EGRESS_TOKEN => 'egk_notvalid' }, @host, '--allow', 'a.example',
    '--audit-log', "$d/old-audit.log");
is(mode("$d/old-audit.log"), '0600', 'an existing 0644 audit log is tightened');
like($out, qr{audit log \Q$d\E/old-audit\.log was mode 0644: tightened to 0600}, '... and logged');

# A symbolic link as the audit log is refused: tightening it would chmod its target.
spew("$d/victim", "keep\n");
chmod 0644, "$d/victim";
symlink("$d/victim", "$d/link-audit.log") or die "symlink: $!";
($rc, $out) = egress({ EGRESS_TOKEN => 'egk_notvalid' }, @host, '--allow', 'a.example',
    '--audit-log', "$d/link-audit.log");
isnt($rc, 0, 'a symbolic link as the audit log is refused');
like($out, qr{cannot open audit log \Q$d\E/link-audit\.log}, '... saying so');
is(mode("$d/victim"), '0644', "... and the link's target keeps its mode");
is(slurp("$d/victim"), "keep\n", '... and its content');

spew("$d/old.db", '');
spew("$d/old.db-wal", '');
chmod 0644, "$d/old.db";
chmod 0666, "$d/old.db-wal";
($rc, $out) = $t->run([ $t->bin('egress-coordinator'), '--db', "$d/old.db", 'token', 'list' ],
    env => { $t->san_env });
is($rc, 0, 'coordinator opens a database left 0644') or diag($out);
is(mode("$d/old.db"), '0600', '... and tightens it');
like($out, qr{store_mode path=\Q$d\E/old\.db was=0644 now=0600}, '... saying so');
like($out, qr{store_mode path=\Q$d\E/old\.db-wal was=0666 now=0600}, '... and its -wal');
($rc, $out) = $t->run([ $t->bin('egress-coordinator'), '--db', "$d/new.db", 'token', 'list' ],
    env => { $t->san_env });
is(mode("$d/new.db"), '0600', 'a new database is 0600');
unlike($out, qr/store_mode/, '... without a tightening line');

# ---- egress client: a runtime directory the nginx worker cannot reach -------------------

SKIP: {
    skip 'needs root (the nginx worker drops to nobody)', 6 if $> != 0;
    $t->require_bins('ngx_stream_egress_module.so');
    my %cenv = ($t->san_env(preload => 1, leaks => 0),
        EGRESS_MODULE => $t->bin('ngx_stream_egress_module.so'));
    chmod 0711, $d;
    mkdir "$d/priv", 0700;
    chmod 0700, "$d/priv";
    spew("$d/client.ticket", "egt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", 0600);
    my $pport = $t->port;
    my @client = ('client', '--id', 'lease-1', '--coordinator', "http://127.0.0.1:$closed",
        '--listen', "127.0.0.1:$pport", '--runtime-dir', "$d/priv/lease",
        '--ticket-file', "$d/client.ticket");
    ($rc, $out) = egress(\%cenv, @client, '--daemon');
    is($rc, 2, 'client --runtime-dir under a 0700 directory: exit 2');
    like($out, qr{worker runs as user nobody and cannot reach the runtime\s+directory \Q$d\E/priv/lease: \Q$d\E/priv is mode 0700 owned by root},
        '... naming the directory') or diag($out);
    like($out, qr{chmod o\+x \Q$d\E/priv}, '... and the fix');
    ok(!-e "$d/priv/lease/nginx.pid" && !Test::Egress::port_open($pport), '... before nginx starts');

    chmod 0711, "$d/priv";
    ($rc, $out) = egress(\%cenv, @client, '--daemon');
    is($rc, 0, 'once nobody may search it, the client starts') or diag($out);
    ($rc, $out) = egress(\%cenv, 'client', '--id', 'lease-1', '--runtime-dir', "$d/priv/lease",
        '--stop');
    like($out, qr/stopped/, '... and stops');
}

$t->done;
done_testing;
