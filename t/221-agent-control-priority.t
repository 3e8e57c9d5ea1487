#!/usr/bin/perl
# egress host: control frames are not stuck behind the agent's own data queue.
# A download the lease client does not read piles up in the agent's send
# queue; a new stream's open_ok must then arrive ahead of the data still
# queued (ordering, not timing), and the download's bytes must all arrive
# intact afterwards. Also checks the agent's ordering is still per stream:
# the download's close comes after its data.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha1_hex);
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Test::Egress;
use Test::Egress::HostAgent;
use Test::Egress::Origin;

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator', 'egress');
my $o = $t->origin;
my $P = $o->port;
my $mp = $t->port;
# a small coordinator queue, so the bytes the client does not read back up
# into the agent instead of the coordinator
my $c = $t->coordinator(args => [ '--queue-cap', 262144 ]);
my $h = Test::Egress::HostAgent->new($t, coordinator => $c, allow => "127.0.0.1:$P",
    args => [ '--allow-private', '--metrics', "127.0.0.1:$mp" ]);

my $metric = sub {
    my ($re) = @_;
    my $m = Test::Egress::http_get($mp, '/metrics') // '';
    return $m =~ $re ? $1 : undef;
};

# The client reads nothing while a download piles up. It has credit for all
# of it (no window round trips) and the coordinator's queue is small, so what
# the kernels do not hold waits in the agent's queue; then stream $probe
# opens, and the client reads only once the agent has queued its open_ok.
# Either the agent read the whole response (nothing of it can then follow an
# open_ok that waits its turn), or its queue passed the 8 MiB mark and it
# stopped reading (then at most 16 MiB - 8 MiB - what the kernels hold can).
# The kernels' share varies from run to run (the coordinator's receive
# buffer grows up to tcp_rmem's maximum): when they took everything, the
# attempt is repeated with new streams and an 8 MiB larger download, which
# the agent still reads whole unless the kernels' share shrank.
my $mib = 1024 * 1024;
my $big = 16 * $mib;
# a small client receive buffer keeps the kernel from taking most of it
setsockopt($h->ws->socket, SOL_SOCKET, SO_RCVBUF, 65536);

my $queue = sub { $metric->(qr/^egress_host_bridge_queue_bytes (\d+)$/m) // 0 };

# one download and one probe; returns the stream-1 bytes before and after
# the probe's open_ok, the queued bytes, the download and its close
sub attempt {
    my ($id, $probe, $big) = @_;
    $h->open($id, '127.0.0.1', $P, window => 32 * $mib)->{type} eq 'open_ok' or return;
    $h->send($id, "GET /bytes/$big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    # the agent's queue has not moved for 10 polls in a row
    my ($queued, $same) = (-1, 0);
    Test::Egress::wait_until(sub {
        my $q = $queue->();
        $same = $q && $q == $queued ? $same + 1 : 0;
        $queued = $q;
        return $same >= 10;
    }, 10);
    my $waited = 0;
    if ($queued >= $mib) {
        $h->open($probe, '127.0.0.1', $P, no_wait => 1);
        $waited = Test::Egress::wait_until(sub { $queue->() != $queued }, 10);
    }
    my ($buf, $at, $close, $answer) = ('', undef, undef, undef);
    my $deadline = time + 60 * ($ENV{EGRESS_SAN} ? 3 : 1);
    while (time < $deadline && !($close && ($queued < $mib || defined $at))) {
        my $m = $h->next_msg(2) or next;
        last if $m->{type} eq 'eof' || $m->{type} eq 'close';
        if ($m->{type} eq 'binary' && $m->{id} == $id) {
            $buf .= $m->{body};
            next;
        }
        my $j = $m->{json} or next;
        my $jid = $j->{id} // 0;
        if ($jid == $probe && $j->{type} =~ /^(open_ok|error)$/) {
            ($answer, $at) = ($j->{type}, length $buf);
        } elsif ($jid == $id && $j->{type} =~ /^(close|error)$/) {
            $close = $j;
        }
    }
    $h->close_stream($id);
    return { big => $big, queued => $queued, waited => $waited, answer => $answer,
        after => length($buf) - ($at // length $buf), buf => $buf, close => $close };
}

my ($r, $id, $probe);
for my $try (0 .. 4) {
    ($id, $probe) = (1 + 2 * $try, 100 + $try);
    $r = attempt($id, $probe, $big + 8 * $mib * $try) or last;
    last if $r->{queued} >= $mib;
    diag("attempt $try: the kernels took the whole download of $r->{big} bytes; again");
}
ok($r && $r->{queued} >= $mib, "$r->{queued} bytes of stream $id waited in the agent's queue");
ok($r->{waited}, 'the probe\'s open_ok was queued in the agent before the client read');
is($r->{answer}, 'open_ok', "stream $probe open");
# At most the frame being written and the socket's staging and in-flight
# buffers (2 x 256 KiB) go ahead of it.
ok($r->{after} >= $r->{queued} - 600 * 1024,
    "open_ok went ahead of the queued data ($r->{after} bytes of stream $id came after it, "
        . "$r->{queued} were queued)");
my ($body) = $r->{buf} =~ /\r\n\r\n(.*)$/s;
ok(defined $body && length($body) == $r->{big} && sha1_hex($body) eq sha1_hex(Test::Egress::Origin::pattern($r->{big})),
    "stream $id arrives whole and intact after the jump");
is($r->{close} && $r->{close}{type}, 'close', "stream $id ends with its close, after its data");

# stream 100 works
$h->send($probe, "GET /bytes/1000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
my ($r2, $c2) = $h->read_stream($probe, timeout => 20);
my ($b2) = ($r2 // '') =~ /\r\n\r\n(.*)$/s;
ok(defined $b2 && $b2 eq Test::Egress::Origin::pattern(1000), "stream $probe completes");
$h->close_stream($probe);
ok($t->running('agent'), 'agent still running');

$t->done;
done_testing;
