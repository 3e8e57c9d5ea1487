#!/usr/bin/perl
# egress host against the real coordinator and real local origins: allowlist
# (exact, wildcard, IP literal, ports), address policy, DNS failure, refused
# and timed-out connections, error texts, audit lines.

use strict;
use warnings;

use Test::More;
use IO::Socket::IP;
use Socket qw(AF_INET SOCK_STREAM pack_sockaddr_in unpack_sockaddr_in inet_aton);
use Test::Egress;
use Test::Egress::HostAgent;

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator', 'egress');
my $o = $t->origin;
my $P = $o->port;
my $closed = $t->port; # nothing listens here

# A listener whose accept queue we fill, so a further SYN is dropped and the
# connect hangs until the dial timeout.
socket(my $full, AF_INET, SOCK_STREAM, 0) or die "socket: $!";
bind($full, pack_sockaddr_in(0, inet_aton('127.0.0.1'))) or die "bind: $!";
listen($full, 0) or die "listen: $!";
my ($FP) = unpack_sockaddr_in(getsockname($full));
my $filler = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $FP, Timeout => 2)
    or die "filler: $!";

my $audit = $t->dir . '/audit.log';
my $h = Test::Egress::HostAgent->new($t,
    allow => "127.0.0.1:$P,*.localhost:$P,127.0.0.1:$closed,127.0.0.1:$FP,*.invalid,"
        . "[::1]:$P,ip6-localhost.example",
    args => [ '--allow-private', '--audit-log', $audit, '--dial-timeout', '1' ]);

like($t->log_of('agent'), qr/lease=\S+ session=\S+ profile=\(none\) allow=127\.0\.0\.1:$P,\*\.localhost:$P.* ports=80,443 private-addresses=ALLOWED/,
    'startup line names lease, session, allowlist, ports and private policy');

# ---- allowed ----------------------------------------------------------------------
my ($a, $r) = $h->http(1, '127.0.0.1', $P, '/ip');
is($a->{type}, 'open_ok', 'allowed IP literal: open_ok');
is($a->{window}, 262144, 'open_ok advertises the 256 KiB window');
like($r, qr/\r\n\r\n127\.0\.0\.1\n$/, 'allowed IP literal: origin answered through the agent');

($a, $r) = $h->http(2, 'localhost', $P, '/hello');
is($a->{type}, 'open_ok', 'wildcard *.localhost matches the bare name localhost');
like($r, qr/ok GET \/hello host=localhost/, 'wildcard: request relayed');

# ---- denied -----------------------------------------------------------------------
$a = $h->open(3, 'evil.example', 443);
is($a->{type}, 'error', 'unlisted name refused');
is($a->{message}, 'not allowed: evil.example:443 is not on the allowlist', 'denied name: exact text');

$a = $h->open(4, '127.0.0.1', $P + 0 == 80 ? 81 : 80);
like($a->{message},
    qr/^not allowed: 127\.0\.0\.1:\d+ is not on the allowlist \(port not allowed for this host\)$/,
    'listed IP on another port refused, saying it is the port');

$a = $h->open(5, 'ip6-localhost.example', 8443);
is($a->{message}, 'not allowed: ip6-localhost.example:8443 is not on the allowlist'
    . ' (port not allowed for this host)', 'port outside the default set refused');

$a = $h->open(6, 'localhost.attacker.example', $P);
is($a->{type}, 'error', 'suffix trick refused');

# ---- dial failures -----------------------------------------------------------------
$a = $h->open(7, 'no-such-host.invalid', 80);
like($a->{message}, qr/^DNS lookup failed for no-such-host\.invalid: /, 'DNS failure text');

$a = $h->open(8, '127.0.0.1', $closed);
is($a->{message}, "connection refused by 127.0.0.1:$closed", 'connection refused text');

my $t0 = time;
$a = $h->open(9, '127.0.0.1', $FP);
is($a->{message}, "connection to 127.0.0.1:$FP timed out", 'dial timeout text');

# ---- IPv6 loopback (when the machine has ::1) ----------------------------------------
SKIP: {
    my $v6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1);
    skip 'no IPv6 loopback', 1 unless $v6;
    my $v6p = $v6->sockport;
    close $v6;
    $a = $h->open(10, '::1', $P);
    ok($a->{type} eq 'error' && $a->{message} =~ /connection refused by ::1:$P/,
        'IPv6 literal dialled over IPv6') or diag explain $a;
}

# ---- private-address policy (a second agent without --allow-private) -------------------
$t->stop('agent');
$h->connect_client;
$h->{o}{args} = [ '--audit-log', $audit, '--ports', "8443,$P" ];
$h->{o}{allow} = "127.0.0.1,localhost";
$h->start_agent(name => 'agent2');
like($t->log_of('agent2'), qr/private-addresses=refused/, 'startup line: private refused');
like($t->log_of('agent2'), qr/ports=8443,$P /, 'startup line: --ports replaced the default set');
$a = $h->open(19, 'localhost', 443);
is($a->{message}, 'not allowed: localhost:443 is not on the allowlist'
    . ' (port not allowed for this host)', '--ports replaces the default ports (443 no longer allowed)');
$a = $h->open(20, '127.0.0.1', $P);
is($a->{message}, 'not allowed: 127.0.0.1 is a private address (loopback)', 'loopback IP refused by default');
$a = $h->open(21, 'localhost', $P);
like($a->{message}, qr/^not allowed: (127\.0\.0\.1|::1) is a private address \(loopback\)$/,
    'name resolving to loopback refused after DNS');
$t->stop('agent2');

# ---- audit ----------------------------------------------------------------------------
my @lines = $h->audit_lines($audit);
my %by = map { ($_->{stream} . '/' . $_->{result}) => $_ } @lines;
ok(scalar(@lines) >= 10, 'one audit line per connection') or diag explain \@lines;
my $ok1 = $by{'1/ok'};
ok($ok1, 'stream 1 audited ok');
is($ok1->{address}, '127.0.0.1', 'audit: resolved address');
is($ok1->{host}, '127.0.0.1', 'audit: host');
is($ok1->{port}, $P, 'audit: port');
ok($ok1->{bytesUp} > 30 && $ok1->{bytesDown} > 30, 'audit: bytes both ways') or diag explain $ok1;
ok(defined $ok1->{durationMs} && $ok1->{time} =~ /^\d{4}-\d\d-\d\dT[\d:.]+Z$/, 'audit: time and duration');
ok($by{'3/denied'}, 'audit: denied');
ok($by{'7/dns_failed'}, 'audit: DNS failure');
ok($by{'8/refused'}, 'audit: refused');
ok($by{'9/timeout'}, 'audit: timeout');
ok($by{'20/private'}, 'audit: private address');
unlike(Test::Egress::slurp($audit) . $t->log_of('agent') . $t->log_of('agent2'),
    qr/egt_|egr_|egk_/, 'no secret in logs or audit');

$t->done;
done_testing;
