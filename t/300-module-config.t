#!/usr/bin/perl
# ngx_stream_egress_module: configuration-time checks, via `nginx -t` with
# the built module. Every refusal must be an [emerg] naming the problem.

use strict;
use warnings;

use Test::More;
use IO::Socket::IP;

use Test::Egress qw(spew);

my $t = Test::Egress->new->require_bins('ngx_stream_egress_module.so');

my $dir    = $t->dir;
my $ticket = "$dir/client.ticket";
spew($ticket, "egt_x\n", 0600);

my $bridge = 'ws://127.0.0.1:' . $t->port . '/v1/leases/L/egress/client';

sub stream {
    my (%o) = @_;
    my $listen = $o{listen} // '127.0.0.1:' . $t->port;
    my $text = '';
    $text .= "egress_bridge $o{bridge};\n" if defined $o{bridge};
    $text .= "egress_bridge_ticket_file $o{ticket};\n" if defined $o{ticket};
    $text .= "egress_bridge_state_file $o{state};\n" if defined $o{state};
    $text .= $o{extra} // '';
    $text .= "server {\n listen $listen;\n egress_proxy on;\n" . ($o{server} // '') . "}\n";
    return $text;
}

sub nginx_t {
    my ($name, %o) = @_;
    my ($rc, $out) = $t->nginx_test(stream => stream(%o), workers => $o{workers} // 1,
        main => $o{main});
    return ($rc, $out);
}

my %ok = (bridge => $bridge, ticket => $ticket, state => "$dir/client.state");

my ($rc, $out) = nginx_t('ok', %ok);
is($rc, 0, 'a complete configuration passes') or diag($out);

($rc, $out) = nginx_t('localhost', %ok, listen => 'localhost:' . $t->port);
is($rc, 0, 'listen localhost is loopback') or diag($out);

($rc, $out) = nginx_t('127/8', %ok, listen => '127.0.0.2:' . $t->port);
is($rc, 0, 'listen 127.0.0.2 is loopback') or diag($out);

SKIP: {
    my $s = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1);
    skip 'no ::1 on this host', 1 unless $s;
    close $s;
    ($rc, $out) = nginx_t('v6', %ok, listen => '[::1]:' . $t->port);
    is($rc, 0, 'listen [::1] is loopback') or diag($out);
}

($rc, $out) = nginx_t('wildcard', %ok, listen => '0.0.0.0:' . $t->port);
isnt($rc, 0, 'listen 0.0.0.0 is refused');
like($out, qr/\[emerg\].*egress_proxy on.*non-loopback listen address "0\.0\.0\.0:\d+"/,
    'the refusal names the address');

($rc, $out) = nginx_t('wildcard-port', %ok, listen => $t->port);
isnt($rc, 0, 'a bare port (all addresses) is refused');
like($out, qr/\[emerg\].*non-loopback/, '... with the loopback message');

($rc, $out) = nginx_t('v6-any', %ok, listen => '[::]:' . $t->port);
isnt($rc, 0, 'listen [::] is refused');

($rc, $out) = nginx_t('udp', %ok, listen => '127.0.0.1:' . $t->port . ' udp');
isnt($rc, 0, 'a udp listen is refused');
like($out, qr/\[emerg\].*needs a TCP listen/, '... as not TCP');

($rc, $out) = nginx_t('nobridge', ticket => $ticket);
isnt($rc, 0, 'egress_proxy without egress_bridge is refused');
like($out, qr/\[emerg\].*needs "egress_bridge/, '... naming egress_bridge');

($rc, $out) = nginx_t('workers', %ok, workers => 2);
isnt($rc, 0, 'worker_processes 2 is refused');
like($out, qr/\[emerg\].*needs "worker_processes 1" \(found 2\)/, '... naming worker_processes');

($rc, $out) = nginx_t('noticket', bridge => $bridge);
isnt($rc, 0, 'a missing egress_bridge_ticket_file is refused');
like($out, qr/\[emerg\].*needs "egress_bridge_ticket_file"/, '... naming the directive');

($rc, $out) = nginx_t('unreadable', %ok, ticket => "$dir/no-such.ticket");
isnt($rc, 0, 'an unreadable ticket file is refused');
like($out, qr/\[emerg\].*egress_bridge_ticket_file ".*no-such\.ticket" is not readable/,
    '... naming the file');

($rc, $out) = nginx_t('dirticket', %ok, ticket => $dir);
isnt($rc, 0, 'a directory as ticket file is refused');

spew("$dir/open.ticket", "egt_x\n", 0644);
($rc, $out) = nginx_t('mode', %ok, ticket => "$dir/open.ticket");
is($rc, 0, 'a world-readable ticket file is accepted');
like($out, qr/\[warn\].*should be mode 0600/, '... with a warning');

($rc, $out) = nginx_t('statedir', %ok, state => "$dir/missing/dir/state");
isnt($rc, 0, 'a state file in a missing directory is refused');
like($out, qr/\[emerg\].*egress_bridge_state_file does not exist/, '... naming the state file');

($rc, $out) = nginx_t('scheme', %ok, bridge => 'http://127.0.0.1:1/x');
isnt($rc, 0, 'a non-WebSocket bridge URL is refused');
like($out, qr/\[emerg\].*must start with ws:\/\/ or wss:\/\//, '... naming the schemes');

($rc, $out) = nginx_t('userinfo', %ok, bridge => 'ws://user:secret@127.0.0.1:1/x');
isnt($rc, 0, 'credentials in the bridge URL are refused');
like($out, qr/\[emerg\].*must not contain user information/, '... with a clear message');
unlike($out, qr/secret/, '... without echoing them');

($rc, $out) = nginx_t('proxy_pass', %ok, server => "proxy_pass 127.0.0.1:1;\n");
isnt($rc, 0, 'egress_proxy together with proxy_pass is refused');

($rc, $out) = nginx_t('hdrsize', %ok, server => "egress_max_header_size 100;\n");
isnt($rc, 0, 'egress_max_header_size below 1k is refused');

($rc, $out) = nginx_t('wss-missing-ca', %ok, bridge => 'wss://127.0.0.1:1/x',
    extra => "egress_bridge_trusted_certificate $dir/none.pem;\n");
isnt($rc, 0, 'a missing trusted certificate file is refused');

($rc, $out) = nginx_t('timeouts', %ok,
    server => "egress_open_timeout 3s;\negress_header_timeout 2s;\negress_max_header_size 8k;\n");
is($rc, 0, 'the server directives are accepted') or diag($out);

# A server without egress_proxy may listen anywhere; only proxies are checked.
($rc, $out) = $t->nginx_test(stream => stream(%ok)
        . "server {\n listen 0.0.0.0:" . $t->port . ";\n return ok;\n}\n");
is($rc, 0, 'other servers are not restricted') or diag($out);

$t->done;
done_testing;
