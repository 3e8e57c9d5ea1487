#!/usr/bin/perl
# egress-coordinator: model-based lifecycle test. Seeded random sequences of
# ticket mints (new session, same session, stale session), upgrades with
# tickets and resume secrets (v2 and v1), replacements of each role, racing
# upgrades, blips (drop and reconnect at once), socket drops (close
# handshake, close frame, FIN, RST, policy violation), stops, releases, lease
# expiry, ticket expiry and restarts (kill -9, SIGTERM) on three leases. After
# every step each open socket's messages (hello, peer, close codes, relayed
# open/open_ok/error) and every lease's status JSON are compared with a small
# model of what must be true.
#
#   EGRESS_MODEL_SEED=N      replay a sequence (the seed is printed on failure)
#   EGRESS_MODEL_STEPS=N     step budget (default 4000)
#   EGRESS_MODEL_SECONDS=S   wall budget for the steps (default 40)
#   EGRESS_MODEL_TRACE=1     print every step as it runs

use strict;
use warnings;

use Test::More;
use Test::Egress qw(wait_until);
use JSON::PP;
use Time::HiRes qw(time);
use Time::Local qw(timegm);

my $SEED = $ENV{EGRESS_MODEL_SEED} // int(rand(2**31));
my $MAX_STEPS = $ENV{EGRESS_MODEL_STEPS} // 4000;
my $MAX_SECS = $ENV{EGRESS_MODEL_SECONDS} // 40;
my $TRACE = $ENV{EGRESS_MODEL_TRACE};
my $TICKET_TTL = 3;
my $NSLOTS = 3;
# The coordinator's time(NULL) reads the kernel's coarse clock, which may lag
# Time::HiRes by a tick.
my $LAG = 0.05;

my $t = Test::Egress->new;
my $c = $t->coordinator(env => {
    EGRESS_TICKET_TTL => $TICKET_TTL,
    EGRESS_RATE_MINT  => '1000000:1000000',
    EGRESS_RATE_FAIL  => '1000000:1000000',
});
my $tok = $c->token(owner => 'alice', org => 'acme');
my $JSON = JSON::PP->new->canonical;
$SIG{PIPE} = 'IGNORE';    # a write to a socket the coordinator dropped fails, not kills

# ---- a private PRNG (xorshift32): the sequence depends on the seed alone -------

my $rs = ($SEED & 0xffffffff) || 0x9e3779b9;
sub rnd_u32 {
    my $x = $rs;
    $x ^= ($x << 13) & 0xffffffff;
    $x ^= $x >> 17;
    $x ^= ($x << 5) & 0xffffffff;
    return $rs = $x;
}
rnd_u32() for 1 .. 16;
sub rnd    { rnd_u32() % $_[0] }
sub chance { rnd_u32() < $_[0] * 4294967296 }
sub pick   { $_[ rnd(scalar @_) ] }

# ---- model ---------------------------------------------------------------------
#
# lease:  {id, name, state (active|released|expired), gen, sess => undef |
#          {sid, stopped}, old_sids, sock => {host, client} (attached sockets),
#          resume => {host, client} (the live secret), mem (the coordinator
#          holds the session in memory: {host, client} = "since" is set,
#          1 or 'any' when either is right),
#          streams, open_ids, next_id, expiring}
# socket: {ws, name, role, v, lease, expect => [expected messages]}

my %lease;       # id => lease
my @slot;        # the leases steps work on
my @open;        # sockets open on our side (attached or awaiting their close)
my @tickets;     # {tk, lease, role, sid, exp, used}
my @dead;        # resume secrets that must not work: {secret, lease, role}
my ($nlease, $nsock) = (0, 0);
my (@steps, %cov, $desc);
my $side;        # a short lease waiting to expire: {lease, spare (an unused ticket)}

sub other { $_[0] eq 'host' ? 'client' : 'host' }

sub bad { die { msg => join('', @_) } }

sub say_step { $desc .= ' ' . join('', @_) }

sub new_lease {
    my (%o) = @_;
    my ($st, $j, $raw) = $c->api(POST => '/v1/leases', $tok, { ttlSeconds => $o{ttl} // 3600 });
    bad("lease create: $st $raw") unless $st == 201 && $j;
    my $L = $lease{ $j->{id} } = {
        id => $j->{id}, name => 'L' . ++$nlease, state => 'active', gen => 0,
        sess => undef, old_sids => [], sock => {}, resume => {}, mem => undef,
        streams => 0, open_ids => [], next_id => 1, expires => iso_epoch($j->{expiresAt}),
    };
    return $L;
}

sub iso_epoch {
    my ($s) = @_;
    my ($y, $mo, $d, $h, $mi, $sec) = $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?Z$/
        or bad("bad time $s");
    return timegm($sec, $mi, $h, $d, $mo - 1, $y);
}

sub expect {
    my ($k, $e) = @_;
    return unless $k;
    push @{ $k->{expect} }, $e;
}

sub bury {
    my ($secret, $L, $role) = @_;
    push @dead, { secret => $secret, lease => $L->{id}, role => $role };
    splice(@dead, rnd(scalar @dead), 1) if @dead > 40;
}

sub kill_resume {
    my ($L, $role) = @_;
    my $s = delete $L->{resume}{$role} or return;
    bury($s, $L, $role);
}

sub clear_streams {
    my ($L) = @_;
    $L->{streams} = 0;
    $L->{open_ids} = [];
}

# The session's sockets are closed with code; resume secrets die.
sub teardown {
    my ($L, $code) = @_;
    for my $r (qw(host client)) {
        my $k = delete $L->{sock}{$r} or next;
        expect($k, { type => 'ws_close', code => $code });
    }
    kill_resume($L, $_) for qw(host client);
    $L->{mem} = undef;
    clear_streams($L);
}

sub detach {
    my ($L, $k) = @_;
    my $r = $k->{role};
    return unless $L->{sock}{$r} && $L->{sock}{$r} == $k;
    delete $L->{sock}{$r};
    my $peer = $L->{sock}{ other($r) };
    clear_streams($L);
    if ($peer) {
        expect($peer, { type => 'peer', connected => 0 }) if $peer->{v} == 2;
        $L->{mem}{$r} = 1;
    } else {
        $L->{mem} = undef;    # the session leaves memory with its last socket
    }
}

sub attach {
    my ($L, $role, $ws, $v) = @_;
    my $old = $L->{sock}{$role};
    my $peer = $L->{sock}{ other($role) };
    my $k = { ws => $ws, role => $role, v => $v, lease => $L->{id},
        name => substr($role, 0, 1) . ++$nsock, expect => [] };
    if ($old) {
        expect($old, { type => 'ws_close', code => 4002 });
        $cov{ $peer ? 'replace socket (peer attached)' : 'replace the only socket' }++;
        clear_streams($L);
        expect($peer, { type => 'peer', connected => 0 }) if $peer && $peer->{v} == 2;
    }
    # Every attach ends the role's previous resume secret: v2 gets a new one
    # in hello, v1 none at all.
    kill_resume($L, $role);
    if ($v == 2) {
        expect($k, { type => 'hello', sid => $L->{sess}{sid}, role => $role,
            peer => $peer ? 1 : 0, lease => $L });
    }
    expect($peer, { type => 'peer', connected => 1 }) if $peer && $peer->{v} == 2;
    $L->{sock}{$role} = $k;
    $L->{mem}{$role} = 1;
    push @open, $k;
    say_step("-> $k->{name}", $old ? " replaces $old->{name}" : '');
    return $k;
}

sub show { my ($m) = @_; return defined $m ? $JSON->encode($m) : 'nothing' }

# Compares one received message with one expectation; returns 1 when the
# socket is finished (closed).
sub check_msg {
    my ($k, $e, $m) = @_;
    my $what = "$k->{name} ($k->{role} v$k->{v} of $lease{ $k->{lease} }{name})";
    bad("$what: expected $e->{type}, got nothing") unless $m;
    if ($e->{type} eq 'eof' || $e->{type} eq 'close_or_eof') {
        return 1 if $m->{type} eq 'eof';
        return 1 if $m->{type} eq 'close' && $e->{type} eq 'close_or_eof';
        bad("$what: expected $e->{type}, got " . show($m));
    }
    if ($e->{type} eq 'ws_close') {
        bad("$what: expected close $e->{code}, got " . show($m))
            unless $m->{type} eq 'close' && $m->{code} == $e->{code};
        return 1;
    }
    bad("$what: expected $e->{type}, got " . show($m)) unless $m->{type} eq 'text';
    my $j = eval { $JSON->decode($m->{data}) } or bad("$what: not JSON: $m->{data}");
    bad("$what: expected $e->{type}, got $m->{data}") unless ($j->{type} // '') eq $e->{type};
    if ($e->{type} eq 'hello') {
        bad("$what: hello $m->{data}: sessionID/role/peerConnected should be "
                . "$e->{sid}/$e->{role}/$e->{peer}")
            unless ($j->{sessionID} // '') eq $e->{sid} && ($j->{role} // '') eq $e->{role}
            && ($j->{peerConnected} ? 1 : 0) == $e->{peer};
        bad("$what: hello without a resume secret") unless ($j->{resume} // '') =~ /^egr_[A-Za-z0-9_-]{43}$/;
        $e->{lease}{resume}{ $e->{role} } = $j->{resume};
    } elsif ($e->{type} eq 'peer') {
        bad("$what: expected peer connected=$e->{connected}, got $m->{data}")
            unless ($j->{connected} ? 1 : 0) == $e->{connected};
    } else {
        # v1 is crabbox's shape: our ids travel as "conn_<base36>", the text in "error"
        my $got = $j->{id} // -1;
        $got = from36($1) if $got =~ /^conn_([0-9a-z]+)$/;
        bad("$what: expected $e->{type} id $e->{id}, got $m->{data}") unless $got =~ /^\d+$/ && $got == $e->{id};
        bad("$what: expected message '$e->{message}', got $m->{data}")
            if defined $e->{message} && ($j->{message} // $j->{error} // '') ne $e->{message};
    }
    return 0;
}

sub from36 { my $n = 0; $n = $n * 36 + index('0123456789abcdefghijklmnopqrstuvwxyz', $_) for split //, $_[0]; $n }
sub to36 { my ($n) = @_; my $s = ''; do { $s = substr('0123456789abcdefghijklmnopqrstuvwxyz', $n % 36, 1) . $s; $n = int($n / 36) } while $n; $s }

# A stream id as socket $k writes it: v1 is crabbox's string shape.
sub wid { my ($k, $id) = @_; $k->{v} == 1 ? 'conn_' . to36($id) : $id }

# Receives every expected message, in order, on every socket.
sub settle {
    for my $k (@open) {
        while (my $e = shift @{ $k->{expect} }) {
            my $m = @{ $k->{pre} || [] } ? shift @{ $k->{pre} } : $k->{ws}->recv(5);
            if ($e->{optional} && !($m && $m->{type} eq 'text' && $m->{data} =~ /"type":"$e->{type}"/)) {
                unshift @{ $k->{pre} }, $m;    # it did not come: the next expectation gets $m
                $cov{"$e->{type} lost behind a close"}++;
                next;
            }
            if (check_msg($k, $e, $m)) {
                $k->{ws}->abort;
                $k->{gone} = 1;
                bad("$k->{name}: closed but still expecting " . show($k->{expect}))
                    if @{ $k->{expect} };
                last;
            }
        }
    }
    @open = grep { !$_->{gone} } @open;
}

# Nothing unexpected has arrived on any socket (also answers pings).
sub quiet {
    for my $k (@open) {
        next if $lease{ $k->{lease} }{expiring};
        my $m = shift @{ $k->{pre} || [] } // $k->{ws}->poll;
        bad("$k->{name} ($k->{role} of $lease{ $k->{lease} }{name}): unexpected " . show($m)) if $m;
    }
}

sub model_status {
    my ($L) = @_;
    return { code => 404 } unless $L->{sess};
    my %s = (code => 200, sessionID => $L->{sess}{sid},
        state => !$L->{sess}{stopped} && $L->{state} eq 'active' ? 'active' : 'stopped',
        streams => $L->{streams});
    for my $r (qw(host client)) {
        my $k = $L->{sock}{$r};
        $s{"${r}Connected"} = $k ? 1 : 0;
        $s{"${r}Protocol"} = $k ? "egress.v$k->{v}" : 'null';
        $s{"${r}Since"} = $L->{mem} && $L->{mem}{$r} ? $L->{mem}{$r} : 0;
    }
    return \%s;
}

# Fields the model leaves open ('any') take the coordinator's value.
sub same_status {
    my ($want, $got) = @_;
    my %w = %$want;
    for (keys %w) {
        $w{$_} = $got->{$_} if $w{$_} eq 'any' && exists $got->{$_};
    }
    return ($JSON->encode(\%w), $JSON->encode($got));
}

sub real_status {
    my ($L) = @_;
    my ($st, $j) = $c->status($tok, $L->{id});
    return { code => $st } unless $st == 200 && $j;
    my %s = (code => 200, sessionID => $j->{sessionID}, state => $j->{state}, streams => $j->{streams});
    for my $r (qw(host client)) {
        $s{"${r}Connected"} = $j->{"${r}Connected"} ? 1 : 0;
        $s{"${r}Protocol"} = $j->{protocol}{$r} // 'null';
        $s{"${r}Since"} = defined $j->{"${r}Since"} ? 1 : 0;
    }
    return \%s;
}

# Status converges to the model (sockets close asynchronously).
sub check_status {
    my ($L) = @_;
    my ($want, $got);
    return if wait_until(sub { ($want, $got) = same_status(model_status($L), real_status($L)); $want eq $got }, 5);
    bad("status of $L->{name}:\n  want $want\n  got  $got");
}

sub check_lease_state {
    my ($L) = @_;
    my $got;
    return if wait_until(sub {
        my ($st, $j) = $c->api(GET => "/v1/leases/$L->{id}", $tok);
        ($got = $j ? $j->{state} : "HTTP $st") eq $L->{state};
    }, 5);
    bad("lease $L->{name}: state $got, want $L->{state}");
}

# ---- actions --------------------------------------------------------------------

sub gen_of { ($_[0] =~ /^egress_1\.(\d+)\./)[0] // -1 }

# Mints a ticket; mode new|same|stale. Returns the ticket record or undef.
sub mint {
    my ($L, $role, $mode) = @_;
    $mode = 'new' if $mode ne 'stale' && !$L->{sess};
    $mode = 'same' if $mode eq 'stale' && !@{ $L->{old_sids} };
    $mode = 'new' if $mode eq 'same' && !$L->{sess};
    my %body = (role => $role);
    $body{sessionID} = $L->{sess}{sid} if $mode eq 'same';
    $body{sessionID} = pick(@{ $L->{old_sids} }) if $mode eq 'stale';
    say_step("mint $role $mode");
    my $t0 = time;
    my ($st, $j, $raw) = $c->api(POST => "/v1/leases/$L->{id}/egress/ticket", $tok, \%body);
    my $t1 = time;
    my ($want, $err) = (201, '');
    if ($L->{state} ne 'active') {
        ($want, $err) = (410, 'lease_gone');
    } elsif ($mode eq 'stale') {
        ($want, $err) = (409, 'egress_session_replaced');
    } elsif ($mode eq 'same' && $L->{sess}{stopped}) {
        ($want, $err) = (409, 'egress_session_stopped');
    }
    say_step("=$st");
    bad("mint: HTTP $st $raw, want $want $err")
        unless $st == $want && ($want == 201 || ($j && ($j->{error} // '') eq $err));
    $cov{"mint $st"}++;
    return undef if $st != 201;
    if ($mode eq 'new') {
        bad("new session id $j->{sessionID}: generation should be " . ($L->{gen} + 1))
            unless gen_of($j->{sessionID}) == $L->{gen} + 1;
        if ($L->{sess}) {
            $cov{'new session replaces sockets (4001)'}++ if %{ $L->{sock} };
            teardown($L, 4001);
            push @{ $L->{old_sids} }, $L->{sess}{sid};
        }
        $L->{gen}++;
        $L->{sess} = { sid => $j->{sessionID}, stopped => 0 };
    } else {
        bad("ticket sessionID $j->{sessionID}, want $L->{sess}{sid}") if $j->{sessionID} ne $L->{sess}{sid};
    }
    my $exp = iso_epoch($j->{expiresAt});
    bad("ticket expiresAt $j->{expiresAt} ($exp) not now+$TICKET_TTL (asked at $t0..$t1)")
        if $exp < int($t0 - $LAG) + $TICKET_TTL || $exp > int($t1) + $TICKET_TTL;
    my $tk = { tk => $j->{ticket}, lease => $L->{id}, role => $role, sid => $j->{sessionID},
        exp => $exp, used => 0 };
    push @tickets, $tk unless $L->{expiring};
    shift @tickets if @tickets > 200;
    return $tk;
}

sub ws_open {
    my ($L, $role, %o) = @_;
    my %a = (protocols => $o{v} == 2 ? [ 'egress.v2', 'egress.v1' ] : chance(0.5) ? [] : ['egress.v1']);
    if (defined $o{ticket}) {
        $a{ticket} = $o{ticket};
        $a{ticket_header} = chance(0.3) ? 'x-egress-ticket' : 'authorization';
    }
    $a{resume} = $o{resume} if defined $o{resume};
    my $t0 = time;
    my ($ws, $st, $body) = $c->ws($L->{id}, $role, %a);
    my $err = $body && $body =~ /^\{/ ? (eval { $JSON->decode($body)->{error} } // '') : '';
    return ($ws, $st, $err, $t0, time);
}

sub check_upgrade {
    my ($st, $err, $want, $werr, $what) = @_;
    bad("$what: HTTP $st $err, want $want $werr")
        unless $st == $want && ($want == 101 || $err eq $werr);
    $cov{"upgrade $want" . ($werr ? " $werr" : '')}++;
}

# Presents ticket tk at lease L, role.
sub use_ticket {
    my ($L, $role, $tk, $v) = @_;
    my $TL = $lease{ $tk->{lease} };
    say_step("ticket($TL->{name} $tk->{role}" . ($tk->{used} ? ' used' : '') . ") at $L->{name} $role v$v");
    my ($ws, $st, $err, $t0, $t1) = ws_open($L, $role, ticket => $tk->{tk}, v => $v);
    say_step("=$st");
    my ($want, $werr) = (101, '');
    my $expired = 0;
    if ($L->{state} ne 'active') {
        ($want, $werr) = (410, 'lease_gone');
    } else {
        my $was_used = $tk->{used};
        $tk->{used} = 1;
        if ($was_used) {
            ($want, $werr) = (401, 'unauthorized');
        } elsif (int($t0 - $LAG) >= $tk->{exp}) {
            ($want, $werr) = (401, 'unauthorized');
            $cov{'ticket expired'}++;
        } elsif (int($t1) >= $tk->{exp} && $st == 401) {
            ($want, $werr) = (401, 'unauthorized');    # expired while we asked: either is right
            $cov{'ticket expired'}++;
        } elsif ($tk->{lease} ne $L->{id} || $tk->{role} ne $role) {
            ($want, $werr) = (403, 'forbidden');
        } elsif (!$L->{sess} || $L->{sess}{sid} ne $tk->{sid}) {
            ($want, $werr) = (409, 'egress_session_replaced');
        } elsif ($L->{sess}{stopped}) {
            ($want, $werr) = (409, 'egress_session_stopped');
        }
    }
    check_upgrade($st, $err, $want, $werr, 'ticket upgrade');
    return $st == 101 ? attach($L, $role, $ws, $v) : undef;
}

# Presents a resume secret at lease L, role.
sub use_resume {
    my ($L, $role, $secret, $v) = @_;
    my ($owner, $orole);
    for my $X (values %lease) {
        for my $r (qw(host client)) {
            ($owner, $orole) = ($X, $r) if ($X->{resume}{$r} // '') eq $secret;
        }
    }
    say_step("resume(" . ($owner ? "$owner->{name} $orole" : 'dead') . ") at $L->{name} $role v$v");
    my ($ws, $st, $err) = ws_open($L, $role, resume => $secret, v => $v);
    say_step("=$st");
    my ($want, $werr) = (101, '');
    if ($L->{state} ne 'active') {
        ($want, $werr) = (410, 'lease_gone');
    } else {
        if ($owner) {
            # Taken, whatever happens next: it never works again.
            delete $owner->{resume}{$orole};
            bury($secret, $owner, $orole);
        }
        if (!$owner || $owner != $L || $orole ne $role) {
            ($want, $werr) = (401, 'unauthorized');
        } elsif (!$L->{sess} || $L->{sess}{stopped}) {
            bad("model: a live resume secret for a stopped session");
        }
    }
    check_upgrade($st, $err, $want, $werr, 'resume upgrade');
    return $st == 101 ? attach($L, $role, $ws, $v) : undef;
}

sub drop {
    my ($k) = @_;
    my $L = $lease{ $k->{lease} };
    my $how = pick(qw(handshake frame fin rst violation));
    say_step("drop $k->{name} ($k->{role} of $L->{name}) by $how");
    $cov{"drop by $how"}++;
    if ($how eq 'violation') {
        # A frame its role may not send: 1008, and the peer hears at once.
        $k->{ws}->send_json($k->{role} eq 'host'
            ? { type => 'open', id => wid($k, 1), host => 'example.com', port => 443 }
            : { type => 'open_ok', id => wid($k, 1) });
        expect($k, { type => 'ws_close', code => 1008 });
    } elsif ($how eq 'handshake') {
        $k->{ws}->send_close(1000);
        expect($k, { type => 'close_or_eof' });
    } elsif ($how eq 'frame') {
        $k->{ws}->close;
        $k->{gone} = 1;
    } else {
        $k->{ws}->abort(reset => $how eq 'rst');
        $k->{gone} = 1;
    }
    @open = grep { !$_->{gone} } @open;
    detach($L, $k);
}

# A network blip: the socket vanishes and its agent reconnects at once, so
# the coordinator may see the new upgrade before or after the old socket's
# end. The peer hears false then true either way; with no peer the session
# may or may not have left memory in between.
sub blip {
    my ($k) = @_;
    my $L = $lease{ $k->{lease} };
    my $r = $k->{role};
    my $secret = $k->{v} == 2 && chance(0.7) ? $L->{resume}{$r} : undef;
    my $tk;
    say_step("blip $k->{name} ($r of $L->{name}):");
    if (!defined $secret) {
        $tk = mint($L, $r, 'same') or return;
    }
    my $how = pick(qw(fin rst));
    say_step("$how +");
    $k->{ws}->abort(reset => $how eq 'rst');
    $k->{gone} = 1;
    @open = grep { !$_->{gone} } @open;
    my $alone = !$L->{sock}{ other($r) };
    my $since_other = $L->{mem} && $L->{mem}{ other($r) };
    detach($L, $k);
    my $v = chance(0.9) ? 2 : 1;
    my $new = defined $secret ? use_resume($L, $r, $secret, $v) : use_ticket($L, $r, $tk, $v);
    $L->{mem}{ other($r) } = 'any' if $new && $alone && $since_other;
    $cov{'blip'}++;
}

# Two sockets of one role upgrade at once. The coordinator attaches them in
# either order: the first is replaced (4002; its hello may be lost behind the
# close), the second stays. Which was first shows by who gets the 4002.
sub race {
    my ($L, $role) = @_;
    say_step("race two $role sockets:");
    my @cred;
    for my $i (0, 1) {
        if ($i == 1 && $L->{resume}{$role} && chance(0.5)) {
            my $secret = delete $L->{resume}{$role};
            bury($secret, $L, $role);
            push @cred, [ resume => $secret ];
            say_step("resume");
        } else {
            my $tk = mint($L, $role, 'same') or return;
            $tk->{used} = 1;
            push @cred, [ ticket => $tk->{tk} ];
        }
    }
    my @h = map { $c->ws_start($L->{id}, $role, @$_) } @cred;
    my (@ws, @st);
    for my $h (@h) {
        my ($ws, $st) = Test::Egress::WS->connect_finish($h);
        push @ws, $ws;
        push @st, $st;
    }
    say_step("=$st[0],$st[1]");
    if ($cred[1][0] eq 'resume' && $st[0] == 101 && $st[1] == 401) {
        # The ticket's socket came first and rotated the secret away.
        $cov{'race: resume secret rotated first'}++;
        attach($L, $role, $ws[0], 2);
        return;
    }
    bad("race: HTTP $st[0], $st[1], want 101") unless $st[0] == 101 && $st[1] == 101;
    my @got = ([], []);
    my @done = (0, 0);
    wait_until(sub {
        for my $i (0, 1) {
            while (!$done[$i] && (my $m = $ws[$i]->poll)) {
                push @{ $got[$i] }, $m;
                $done[$i] = 1 if $m->{type} eq 'close' || $m->{type} eq 'eof';
            }
        }
        return $done[0] || $done[1];
    }, 5) or bad("race: neither socket was replaced");
    bad("race: both sockets closed") if $done[0] && $done[1];
    my $first = $done[0] ? 0 : 1;
    say_step("first #$first");
    my $k1 = attach($L, $role, $ws[$first], 2);
    $k1->{expect}[-1]{optional} = 1;    # the hello
    my $k2 = attach($L, $role, $ws[ 1 - $first ], 2);
    $k1->{pre} = $got[$first];
    $k2->{pre} = $got[ 1 - $first ];
    $cov{race}++;
}

sub relay {
    my ($L) = @_;
    my $cl = $L->{sock}{client};
    my $ho = $L->{sock}{host};
    if (@{ $L->{open_ids} } && $ho && chance(0.4)) {
        my $i = rnd(scalar @{ $L->{open_ids} });
        my $id = splice(@{ $L->{open_ids} }, $i, 1);
        say_step("$cl->{name} closes stream $id");
        $cl->{ws}->send_json({ type => 'close', id => wid($cl, $id) });
        expect($ho, { type => 'close', id => $id });
        $L->{streams}--;
        $cov{'stream closed'}++;
        return;
    }
    my $id = $L->{next_id}++;
    my %o = (type => 'open', id => wid($cl, $id), host => 'example.com', port => ($cl->{v} == 1 ? '443' : 443));
    $o{window} = 65536 if $cl->{v} == 2;
    say_step("$cl->{name} opens $id");
    $cl->{ws}->send_json(\%o);
    if (!$ho) {
        expect($cl, { type => 'error', id => $id, message => 'host agent not connected' });
        $cov{'open without host'}++;
        return;
    }
    expect($ho, { type => 'open', id => $id });
    $L->{streams}++;
    $cov{"open relayed v$cl->{v}->v$ho->{v}"}++;
    settle();
    my $r = rnd(10);
    if ($r < 5) {
        say_step("$ho->{name} open_ok");
        $ho->{ws}->send_json({ type => 'open_ok', id => wid($ho, $id), ($ho->{v} == 2 ? (window => 65536) : ()) });
        expect($cl, { type => 'open_ok', id => $id });
        push @{ $L->{open_ids} }, $id;
    } elsif ($r < 8) {
        say_step("$ho->{name} error");
        $ho->{ws}->send_json({ type => 'error', id => wid($ho, $id), ($ho->{v} == 1 ? 'error' : 'message') => 'refused' });
        expect($cl, { type => 'error', id => $id, message => 'refused' });
        $L->{streams}--;
    } else {
        push @{ $L->{open_ids} }, $id;
    }
}

sub stop_session {
    my ($L) = @_;
    say_step("DELETE $L->{name} egress");
    my ($st, $j, $raw) = $c->api(DELETE => "/v1/leases/$L->{id}/egress", $tok);
    say_step("=$st");
    my $want = $L->{sess} ? 200 : 404;
    bad("DELETE: HTTP $st $raw, want $want") unless $st == $want;
    return unless $L->{sess};
    bad("DELETE answered session $j->{sessionID}") unless $j && $j->{sessionID} eq $L->{sess}{sid};
    $cov{'stop with sockets (4004)'}++ if %{ $L->{sock} };
    $L->{sess}{stopped} = 1;
    teardown($L, 4004);
}

sub release {
    my ($L) = @_;
    say_step("release $L->{name}");
    my ($st, $j, $raw) = $c->api(POST => "/v1/leases/$L->{id}/release", $tok);
    say_step("=$st");
    my $want = $L->{state} eq 'active' ? 200 : 410;
    bad("release: HTTP $st $raw, want $want") unless $st == $want;
    return if $st != 200;
    $cov{'release with sockets (4003)'}++ if %{ $L->{sock} };
    $L->{state} = 'released';
    teardown($L, 4003);
}

sub restart {
    my $hard = chance(0.8);
    say_step($hard ? 'kill -9 + start' : 'SIGTERM + start');
    $cov{$hard ? 'kill -9' : 'SIGTERM'}++;
    for my $k (@open) {
        @{ $k->{expect} } = ()
            if $lease{ $k->{lease} }{expiring};    # its 4003 may or may not have come
        expect($k, { type => $hard && !$lease{ $k->{lease} }{expiring} ? 'eof' : 'close_or_eof' });
    }
    if ($hard) {
        $c->kill9;
    } else {
        $c->stop;
    }
    settle();
    for my $L (values %lease) {
        $L->{sock} = {};
        $L->{mem} = undef;
        clear_streams($L);
    }
    $c->start_again;
}

# A short lease with sockets, left to expire while other steps go on.
sub expire_start {
    my $ttl = $t->san ? 3 : 2;
    my $L = new_lease(ttl => $ttl);
    $L->{expiring} = 1;
    say_step("lease $L->{name} ttl $ttl");
    my $ct = mint($L, 'client', 'new');
    use_ticket($L, 'client', $ct, 2);
    if (chance(0.6)) {
        my $ht = mint($L, 'host', 'same');
        use_ticket($L, 'host', $ht, chance(0.8) ? 2 : 1);
    }
    my $spare = mint($L, pick(qw(host client)), 'same');
    settle();
    bad("setup of $L->{name} outlived its ttl") if int(time) >= $L->{expires};
    $side = { lease => $L, spare => $spare };
}

sub expire_check {
    my $L = $side->{lease};
    say_step("$L->{name} expires");
    $cov{'lease expired'}++;
    $cov{'lease expired with sockets (4003)'}++ if %{ $L->{sock} };
    $L->{state} = 'expired';
    teardown($L, 4003);
    settle();
    check_lease_state($L);
    $L->{expiring} = 0;
    check_status($L);
    push @tickets, $side->{spare};
    $side = undef;
}

# ---- the step mix --------------------------------------------------------------

sub live_socks { grep { !$lease{ $_->{lease} }{expiring} } @open }

my $last_expire = 0;

sub choose {
    my ($n) = @_;
    my @c;    # [weight, label, action]
    for my $i (0 .. $#slot) {
        my $L = $lease{ $slot[$i] };
        my @socks = grep { $_ } @{ $L->{sock} }{qw(host client)};
        if ($L->{state} eq 'active') {
            push @c, [ 100, 'connect', sub {
                my $role = pick(qw(host client));
                my $new = chance($L->{sess} && $L->{sess}{stopped} ? 0.6 : 0.15);
                my $tk = mint($L, $role, $new ? 'new' : 'same') or return;
                use_ticket($L, $role, $tk, chance(0.9) ? 2 : 1);
            } ];
            push @c, [ 25, 'mint', sub { mint($L, pick(qw(host client)), pick(qw(new same same stale))) } ];
            if (@socks == 1) {
                # The only socket of the session gets a successor of its role.
                push @c, [ 50, 'replace only', sub {
                    my $role = $socks[0]{role};
                    say_step("replace only socket:");
                    if ($L->{resume}{$role} && chance(0.5)) {
                        use_resume($L, $role, $L->{resume}{$role}, 2);
                    } else {
                        my $tk = mint($L, $role, 'same') or return;
                        use_ticket($L, $role, $tk, chance(0.9) ? 2 : 1);
                    }
                } ];
            }
            for my $r (qw(host client)) {
                next unless $L->{resume}{$r};
                push @c, [ 40, 'resume', sub { use_resume($L, $r, $L->{resume}{$r}, chance(0.9) ? 2 : 1) } ];
                push @c, [ 4, 'resume misuse', sub {
                    # A live secret at the wrong role or lease: refused, and it dies.
                    my $X = chance(0.5) ? $L : $lease{ pick(@slot) };
                    my $role = $X == $L ? other($r) : pick(qw(host client));
                    use_resume($X, $role, $L->{resume}{$r}, 2);
                } ];
            }
            push @c, [ 5, 'stop', sub { stop_session($L) } ] if $L->{sess} || chance(0.1);
            push @c, [ 3, 'release', sub { release($L) } ];
        } else {
            push @c, [ 40, 'new lease', sub {
                $slot[$i] = new_lease()->{id};
                say_step("slot $i: new lease $lease{ $slot[$i] }{name}");
            } ];
            push @c, [ 2, 'release', sub { release($L) } ];
            push @c, [ 2, 'stop', sub { stop_session($L) } ];
            push @c, [ 2, 'mint', sub { mint($L, pick(qw(host client)), 'same') } ];
        }
        push @c, [ 40, 'relay', sub { relay($L) } ] if $L->{sock}{client};
    }
    my @ls = live_socks();
    push @c, [ 60, 'drop', sub { drop(pick(@ls)) } ] if @ls;
    push @c, [ 20, 'blip', sub { blip(pick(@ls)) } ] if @ls;
    for my $id (@slot) {
        my $L = $lease{$id};
        next unless $L->{state} eq 'active' && $L->{sess} && !$L->{sess}{stopped};
        push @c, [ 10, 'race', sub { race($L, pick(qw(host client))) } ];
    }
    if (@tickets) {
        push @c, [ 20, 'old ticket', sub {
            # Half the time the newest unused ticket (its session may be gone).
            my @unused = grep { !$_->{used} } @tickets;
            my $tk = @unused && chance(0.5) ? $unused[-1] : pick(@tickets);
            my ($X, $role) = ($lease{ $tk->{lease} }, $tk->{role});
            my $r = rnd(10);
            $role = other($role) if $r == 0;
            $X = $lease{ pick(@slot) } if $r == 1;
            use_ticket($X, $role, $tk, 2);
        } ];
    }
    if (@dead) {
        push @c, [ 8, 'dead resume', sub {
            my $d = pick(@dead);
            use_resume($lease{ $d->{lease} }, $d->{role}, $d->{secret}, 2);
        } ];
    }
    push @c, [ 4, 'restart', \&restart ];
    push @c, [ 3, 'expire', sub { $last_expire = $n; expire_start() } ]
        if !$side && $n - $last_expire >= 100;
    my $total = 0;
    $total += $_->[0] for @c;
    my $x = rnd($total);
    for (@c) {
        return ($_->[1], $_->[2]) if ($x -= $_->[0]) < 0;
    }
}

# ---- run -------------------------------------------------------------------------

note("seed $SEED");
@slot = map { new_lease()->{id} } 1 .. $NSLOTS;
my $start = time;
my $n = 0;
my (%spent, %count);
my $ok = eval {
    while ($n < $MAX_STEPS && time - $start < $MAX_SECS) {
        $n++;
        if ($side && time >= $side->{lease}{expires} + 1.5) {
            $desc = '';
            push @steps, \$desc;
            expire_check();
            $steps[-1] = sprintf('%5d %s', $n, $desc);
            note($steps[-1]) if $TRACE;
        }
        my ($label, $step) = choose($n);
        my $t0 = time;
        $desc = '';
        push @steps, \$desc;
        $step->();
        settle();
        quiet();
        check_status($lease{$_}) for @slot;
        if ($label =~ /^(?:release|new lease|restart|expire)$/ || $n % 20 == 0) {
            check_lease_state($lease{$_}) for @slot;
        }
        $spent{$label} += time - $t0;
        $count{$label}++;
        $steps[-1] = sprintf('%5d %s', $n, $desc);
        note($steps[-1]) if $TRACE;
    }
    if ($side) {
        wait_until(sub { time >= $side->{lease}{expires} + 1.5 }, 10);
        $desc = '';
        push @steps, \$desc;
        expire_check();
        $steps[-1] = sprintf('%5d %s', ++$n, $desc);
    }
    1;
};
my $err = $@;
if (!$ok) {
    $steps[-1] = sprintf('%5d %s   <-- failed', $n, $desc) if ref $steps[-1];
    fail('coordinator matches the model');
    diag("EGRESS_MODEL_SEED=$SEED: step $n: " . (ref $err ? $err->{msg} : $err));
    diag("coordinator " . ($t->running('coordinator') ? 'running' : 'NOT running'));
    diag("steps:\n" . join("\n", @steps));
    diag("coordinator log (tail):\n" . Test::Egress::tail($t->dir . "/coordinator.log", 30));
} else {
    pass("$n steps in " . sprintf('%.1f', time - $start) . " s match the model (seed $SEED)");
    note("coverage:\n" . join("\n", map { sprintf('  %6d  %s', $cov{$_}, $_) } sort keys %cov));
    note("steps (count, seconds):\n"
            . join("\n", map { sprintf('  %6d %7.2f  %s', $count{$_}, $spent{$_}, $_) } sort keys %count));
    if ($n >= 300) {
        for my $k ('replace the only socket', 'replace socket (peer attached)', 'kill -9',
            'upgrade 101', 'new session replaces sockets (4001)', 'open relayed v2->v2')
        {
            ok($cov{$k}, "the mix reached: $k");
        }
    }
}

my $log = $c->log;
ok(index($log, 'egt_') < 0 && index($log, 'egr_') < 0, 'no ticket or resume secret in the log');

$t->done;
done_testing;
