#!/usr/bin/perl
# egress CLI and `egress host` startup checks that need no coordinator:
# dispatcher, help, refusal without an allowlist, malformed patterns, ticket
# on argv, bad ports/profile/coordinator, missing credentials.

use strict;
use warnings;

use Test::More;
use Test::Egress;

my $t = Test::Egress->new;
$t->require_bins('egress');
my $egress = $t->bin('egress');
my $d = $t->dir;
my %env = ($t->san_env, HOME => "$d/home", XDG_CONFIG_HOME => "$d/config",
    XDG_STATE_HOME => "$d/state", EGRESS_TOKEN => '', EGRESS_COORDINATOR => '', EGRESS_TICKET => '');
mkdir "$d/$_" for qw(home config state);

sub egress { my @a = @_; return $t->run([ $egress, @a ], env => \%env) }

my ($rc, $out) = egress('--version');
is($rc, 0, '--version exits 0');
like($out, qr/^egress \d+\.\d+\.\d+$/m, '--version prints the version');

($rc, $out) = egress('help');
is($rc, 0, 'help exits 0');
like($out, qr/^\s+host\s+run the host agent/m, 'help lists the host command');
like($out, qr/Exit codes:.*\n\s+3\s+fatal bridge answer/s, 'help documents exit codes');

($rc, $out) = egress();
is($rc, 2, 'no command: usage error');
($rc, $out) = egress('frobnicate');
is($rc, 2, 'unknown command: exit 2');
like($out, qr/unknown command 'frobnicate'/, 'unknown command named');

($rc, $out) = egress('host', '--help');
is($rc, 0, 'host --help exits 0');
like($out, qr/^SYNOPSIS/m, 'host --help is man-style');
like($out, qr/--allow-private/, 'host --help documents --allow-private');
like($out, qr/EXIT STATUS/, 'host --help documents exit status');
my ($rc2, $out2) = egress('help', 'host');
is($out2, $out, '`egress help host` = `egress host --help`');

my @base = ('host', '--id', 'lease-1', '--coordinator', 'http://127.0.0.1:9');

($rc, $out) = egress(@base);
is($rc, 2, 'no allowlist: exit 2');
like($out, qr/refusing to start without an allowlist/, 'no allowlist: clear message');

($rc, $out) = egress(@base, '--allow', 'good.example,bad..example');
is($rc, 2, 'malformed pattern: exit 2');
like($out, qr/"bad\.\.example"/, 'malformed pattern named');

($rc, $out) = egress(@base, '--allow', '*.*.example');
is($rc, 2, 'bad wildcard: exit 2');
like($out, qr/\*\.\*\.example/, 'bad wildcard named');

($rc, $out) = egress(@base, '--profile', 'nosuch');
is($rc, 2, 'unknown profile: exit 2');
like($out, qr/nosuch/, 'unknown profile named');

($rc, $out) = egress(@base, '--allow', 'a.example', '--ports', '80,0');
is($rc, 2, 'bad --ports: exit 2');

($rc, $out) = egress(@base, '--allow', 'a.example', '--ticket', 'egt_secretvalue');
is($rc, 2, '--ticket on argv refused');
like($out, qr/--ticket-file/, 'refusal explains the alternative');
unlike($out, qr/egt_secretvalue/, 'refusal does not echo the ticket');

($rc, $out) = egress('host', '--id', 'lease-1', '--allow', 'a.example');
is($rc, 2, 'no coordinator: exit 2');
like($out, qr/no coordinator/, 'no coordinator: clear message');

($rc, $out) = egress('host', '--id', 'lease-1', '--allow', 'a.example', '--coordinator', 'ftp://x');
is($rc, 2, 'bad coordinator URL: exit 2');

($rc, $out) = egress(@base, '--allow', 'a.example');
is($rc, 2, 'no ticket and no token: exit 2');
like($out, qr/no credential/, 'no credential: clear message');

($rc, $out) = egress('host', '--id', 'bad/lease', '--allow', 'a.example');
is($rc, 2, 'invalid lease id: exit 2');

# The config file supplies coordinator and token; an unreachable coordinator
# while minting the first ticket is a runtime error (1), not a usage error.
mkdir "$d/config/egress";
Test::Egress::spew("$d/config/egress/config",
    "# egress\ncoordinator = http://127.0.0.1:9\ntoken = egk_fromconfig\n");
($rc, $out) = egress('host', '--id', 'lease-1', '--allow', 'a.example');
is($rc, 1, 'config file read; unreachable coordinator: exit 1');
like($out, qr/cannot mint a host ticket: cannot connect to 127\.0\.0\.1:9/, 'mint failure explained');
unlike($out, qr/egk_fromconfig/, 'token never logged');

$t->done;
done_testing;
