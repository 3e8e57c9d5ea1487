#!/usr/bin/perl
# `make demo` (tools/demo.sh) runs the whole path on loopback, shows what it
# promises, and leaves nothing running.

use strict;
use warnings;

use Test::More;
use Test::Egress;

my $t = Test::Egress->new->require_bins('egress', 'egress-coordinator',
    'ngx_stream_egress_module.so');
plan(skip_all => 'the demo runs uninstrumented nginx; covered by the plain pass') if $t->san;

my ($rc, $out) = $t->run([ 'sh', $t->root . '/tools/demo.sh' ],
    env => { EGRESS_BUILD => $t->build_dir }, timeout => 120);
is($rc, 0, 'demo exits 0') or diag($out);
like($out, qr/origin sees the host agent's address.*\n127\.0\.0\.1\n/, 'the page came through the proxy');
like($out, qr/host=true client=true/, 'status shows both sides connected');
like($out, qr/not allowed: not-allowed\.example:\d+ is not on the allowlist\s*HTTP 403/,
    'a denied host gets 403 with the reason');
like($out, qr/Try next/, 'it prints what to try next');
unlike($out, qr/egt_|egk_|egr_/, 'no secret printed');

my ($dir) = $out =~ m{database (/tmp/egress-demo\.\w+)/};
ok($dir && !-e $dir, 'its temporary directory is gone');
my $ps = `ps -eo args`;
unlike($ps, qr/egress-demo\./, 'no demo process is left running');

$t->done;
done_testing;
