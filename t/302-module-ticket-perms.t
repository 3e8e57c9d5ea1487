#!/usr/bin/perl
# A ticket file the nginx worker cannot read (master runs as root, the worker
# as nobody) is reported as such, in the 503 body and once in the error log,
# instead of looking like a spent ticket.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);
use Test::Egress qw(spew http_request wait_until);

plan(skip_all => 'needs root (worker drops to nobody)') if $> != 0;
my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so');

my $dir = $t->dir;
chmod 0700, $dir;
spew("$dir/client.ticket", "egt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", 0600);
my ($port, $closed) = ($t->port, $t->port);

$t->nginx(wait_port => $port, stream => <<"EOF");
    egress_bridge ws://127.0.0.1:$closed/v1/leases/l1/egress/client;
    egress_bridge_ticket_file $dir/client.ticket;
    egress_bridge_state_file $dir/client.state;
    server {
        listen 127.0.0.1:$port;
        egress_proxy on;
    }
EOF

my $r;
ok(wait_until(sub {
    $r = http_request($port, "CONNECT example.com:443 HTTP/1.1\r\n\r\n");
    ($r // '') =~ /cannot read/;
}, 5), 'the worker reports it cannot read the ticket file');
like($r, qr{^HTTP/1\.1 503 }, '503');
like($r, qr/cannot read the ticket file "\Q$dir\E\/client\.ticket"/, 'naming the file');

sleep 1.2;    # the file is polled every second: still one log line
my $log = $t->nginx_error_log;
my $n = () = $log =~ /egress bridge: cannot read ticket file/g;
is($n, 1, 'logged once') or diag($log);
like($log, qr/cannot read ticket file .*\(13: Permission denied\)/, 'with the OS error');
unlike($log, qr/egt_/, 'the ticket is not logged');

$t->done;
done_testing;
