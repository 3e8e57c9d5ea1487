#!/usr/bin/perl
# The "Try next" commands `make demo` prints work as printed: this runs them
# in a shell, line by line, exactly as printed, with only a readiness wait
# where a person would wait before typing the next line (the coordinator
# listening, the proxy listening, both agents connected). The one line that
# needs the internet (curl to discord.com through the host agent) is left
# out: tests talk to loopback only. The lease-of-your-own lines need an SSH
# lease and are covered by t/440-e2e-netns.t.

use strict;
use warnings;

use Test::More;
use Test::Egress;

my $t = Test::Egress->new->require_bins('egress', 'egress-coordinator',
    'ngx_stream_egress_module.so');
plan(skip_all => 'the demo runs uninstrumented nginx; covered by the plain pass') if $t->san;

my $dir = $t->dir;

# t/601 installs and purges the packages on this machine: not while the
# printed commands (which prefer installed programs) run.
use Fcntl qw(:flock);
open(my $lock, '>>', $t->root . '/build/.system-packages.lock') or die "lock: $!";
flock($lock, LOCK_SH) or die "flock: $!";
my ($rc, $out) = $t->run([ 'sh', $t->root . '/tools/demo.sh' ],
    env => { EGRESS_BUILD => $t->build_dir }, timeout => 120);
is($rc, 0, 'demo exits 0') or diag($out);
unlike($out, qr/not found|EGRESS_TOKEN=\s*$/m, 'nothing in the printed text ran at print time');

my ($block) = $out =~ /^Try next, on this machine[^\n]*\n(.*?)\n\n/ms;
ok($block, 'the demo prints commands to try on this machine') or BAIL_OUT('no Try next block');
my @lines = map { s/^  //r } split /\n/, $block;
like($block, qr/\$\(\S*egress-coordinator --db \.\/egress\.db token add/,
    'the token command is printed, not run');
my ($cport) = $block =~ /--listen 127\.0\.0\.1:(\d+) --db/;
my ($pport) = $block =~ /--proxy http:\/\/127\.0\.0\.1:(\d+)/;
ok($cport && $pport, 'the printed commands name their ports');

my $wait_port = sub {
    my ($port) = @_;
    return qq{i=0; until perl -MIO::Socket::IP -e 'exit !IO::Socket::IP->new(PeerHost=>"127.0.0.1",PeerPort=>$port)'; }
        . qq{do i=\$((i+1)); [ \$i -lt 1500 ] || exit 90; sleep 0.02; done};
};
my $egress = $t->bin('egress');
my @script = ('set -e', 'PS4="+ "', 'set -x');
my $skipped = 0;
for my $l (@lines) {
    if ($l =~ /discord\.com/) {    # the internet: not from a test
        $skipped++;
        next;
    }
    $l =~ s/\s+# .*$//;
    push @script, $l;
    if ($l =~ /--listen 127\.0\.0\.1:$cport --db .*&$/) {
        push @script, 'set +x', $wait_port->($cport), 'set -x';
    } elsif ($l =~ / client --id /) {
        push @script, 'set +x', $wait_port->($pport), 'set -x';
    } elsif ($l =~ / host --id /) {
        push @script, 'set +x',
            qq{i=0; until $egress status --id my-lease >/dev/null 2>&1; do i=\$((i+1)); [ \$i -lt 1500 ] || exit 91; sleep 0.02; done},
            'set -x';
    } elsif ($l =~ /^cd /) {
        push @script, 'pwd > ' . "$dir/trydir";
    }
}
is($skipped, 1, 'only the internet line is left out');
push @script, 'wait';
Test::Egress::spew("$dir/try.sh", join("\n", @script) . "\n");

my %env = (HOME => "$dir/home", XDG_RUNTIME_DIR => '', XDG_STATE_HOME => '', XDG_CONFIG_HOME => '');
mkdir "$dir/home";
($rc, $out) = $t->run([ 'sh', "$dir/try.sh" ], env => \%env, timeout => 120);
is($rc, 0, 'the printed commands run as printed') or diag($out);
like($out, qr/host=true client=true/, 'egress status shows both sides connected');
like($out, qr/not on the allowlist/, 'the refused destination gets the host agent\'s reason');

my $try = -e "$dir/trydir" ? Test::Egress::slurp("$dir/trydir") =~ s/\s+$//r : '';
like($try, qr{^/tmp/egress-try\.\w+$}, 'they worked in their own temporary directory');
ok(!$t->port_open($cport), 'the coordinator is gone after kill $!');
ok(!$t->port_open($pport), 'the lease proxy is gone after egress stop');
system('rm', '-rf', $try) if $try =~ m{^/tmp/egress-try\.\w+$};

$t->done;
done_testing;
