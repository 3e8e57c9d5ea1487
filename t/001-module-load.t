#!/usr/bin/perl
# The built module loads into Debian's nginx (nginx -t with load_module).

use strict;
use warnings;

use Test::More;
use Test::Egress;

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so');

my ($rc, $out) = $t->nginx_test(stream => '');
is($rc, 0, 'nginx -t accepts the module') or diag($out);
like($out, qr/test is successful/, 'nginx reports success');

$t->done;
done_testing;
