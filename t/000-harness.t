#!/usr/bin/perl
# The harness itself: free ports, process spawning, and the origin server's routes.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);

use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(time);
use Test::Egress qw(http_get http_request slurp wait_until);
use Test::Egress::Origin;

my $t = Test::Egress->new;

my %seen;
$seen{ $t->port }++ for 1 .. 20;
is(scalar(keys %seen), 20, 'ports are distinct');

my $o = $t->origin;
like(http_get($o->port, '/ip'), qr/\r\n\r\n127\.0\.0\.1\n$/, '/ip reports the peer address');

my $r = http_get($o->port, '/bytes/100000');
my ($body) = $r =~ /\r\n\r\n(.*)$/s;
is(length $body, 100000, '/bytes length');
ok($body eq Test::Egress::Origin::pattern(100000), '/bytes pattern');

my $payload = 'x' x 70000;
$r = http_request($o->port, "POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
        . "Content-Length: 70000\r\n\r\n$payload");
like($r, qr/len=70000 sha1=${\ sha1_hex($payload)}/, '/echo with Content-Length');

$r = http_request($o->port, "POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n");
like($r, qr/len=5 sha1=${\ sha1_hex('abcde')}/, '/echo with chunked body');

$r = http_request($o->port, "GET /a HTTP/1.1\r\nHost: one\r\n\r\nGET /b HTTP/1.1\r\nHost: two\r\n"
        . "Connection: close\r\n\r\n");
like($r, qr/ok GET \/a host=one.*ok GET \/b host=two/s, 'keep-alive serves two requests');

# A burst of parallel connections while one child is stuck on a client that
# does not read: every connection is served (children take queued connections
# themselves) and the stuck one is not in the way.
my $stuck = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $o->port) or die $!;
syswrite($stuck, "GET /bytes/20000000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
my $n = 300;
my (@c, %got);
for (1 .. $n) {
    my $c = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $o->port) or die $!;
    syswrite($c, "GET /bytes/2000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    push @c, $c;
}
my $sel = IO::Select->new(@c);
my $deadline = time + $t->timeout(60);
while ($sel->count && time < $deadline) {
    for my $c ($sel->can_read(1)) {
        my $k = sysread($c, my $buf, 65536);
        if ($k) {
            $got{ fileno $c } .= $buf;
            next;
        }
        $sel->remove($c);
    }
}
my $want = Test::Egress::Origin::pattern(2000);
my $served = grep {
    my ($rb) = ($got{ fileno $_ } // '') =~ /\r\n\r\n(.*)$/s;
    defined $rb && $rb eq $want;
} @c;
is($served, $n, "$n parallel connections served while one client does not read");
close $_ for @c;
my $big = '';
while (sysread($stuck, my $buf, 1 << 20)) { $big .= $buf }
($body) = $big =~ /\r\n\r\n(.*)$/s;
ok(defined $body && length $body == 20000000 && $body eq Test::Egress::Origin::pattern(20000000),
    'the stalled connection completes when read');
close $stuck;

# Children that ran out of connections leave: only the parent stays.
my $pgid = $t->pid('origin');
ok(wait_until(sub {
    my @g = grep { my @f = split ' ', (slurp("$_/stat") =~ s/^.*\) //sr); ($f[2] // -1) == $pgid }
        glob('/proc/[0-9]*');
    return @g == 1;
}, 15), 'idle origin children exit');

my ($rc, $out) = $t->run(['sh', '-c', 'echo hi; exit 3']);
is($rc, 3, 'run returns the exit code');
is($out, "hi\n", 'run captures output');

$t->done;
done_testing;
