#!/usr/bin/perl
# The coordinator's portal over plain HTTP (the browser test is t/510):
# sign-in and its cookie, sign-out, the lease list and lease page, escaping of
# hostile values, no secret in any page, CSRF and Origin checks on every form,
# stop and release, access rules, revocation, rate limits and TLS cookies.

use strict;
use warnings;

use Test::More;
use HTTP::Tiny;
use JSON::PP;
use Test::Egress qw(slurp);

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator');
my $c    = $t->coordinator;
my $base = $c->url;
my $http = HTTP::Tiny->new(max_redirect => 0, timeout => 10 * ($t->san ? 3 : 1));

my $alice = $c->token(owner => 'alice', org => 'acme');
my $bob   = $c->token(owner => 'bob', org => 'acme');              # same org, not owner
my $eve   = $c->token(owner => '<img/src=x/onerror=alert(1)>', org => 'acme');
my $mall  = $c->token(owner => 'mallory', org => 'other');

sub req {
    my ($method, $path, %o) = @_;
    my %h = %{ $o{headers} || {} };
    $h{Cookie} = "egress_portal=$o{cookie}" if $o{cookie};
    my %r = (headers => \%h);
    if (defined $o{form}) {
        $r{content} = join '&', map { "$_=" . uri($o{form}{$_}) } sort keys %{ $o{form} };
        $h{'Content-Type'} = 'application/x-www-form-urlencoded';
    }
    return $http->request($method, "$base$path", \%r);
}

sub uri {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub sign_in {
    my ($token) = @_;
    my $res = req(POST => '/portal/login', form => { token => $token });
    my ($cookie) = ($res->{headers}{'set-cookie'} // '') =~ /^egress_portal=([^;]*)/;
    return ($res, $cookie);
}

sub csrf_of {
    my ($html) = @_;
    my ($v) = $html =~ /name="csrf" value="([0-9a-f]{64})"/;
    return $v;
}

# ---- signed out -----------------------------------------------------------------
my $res = req(GET => '/portal');
is($res->{status}, 303, '/portal redirects');
is($res->{headers}{location}, '/portal/', '... to /portal/');
$res = req(GET => '/portal/');
is($res->{status}, 303, 'signed out: lease list redirects');
is($res->{headers}{location}, '/portal/login', '... to the sign-in page');
$res = req(GET => '/portal/api/leases/x/status');
is($res->{status}, 401, 'signed out: status JSON is 401');
like($res->{content}, qr/"signed_out"/, '... saying why');

$res = req(GET => '/portal/login');
is($res->{status}, 200, 'sign-in page');
like($res->{headers}{'content-type'}, qr{^text/html; charset=utf-8}, '... is HTML');
like($res->{content}, qr{<form[^>]+method="post"[^>]+action="/portal/login"}, '... posts its form');
like($res->{content}, qr{<label for="token">}, '... with a label');
like($res->{content}, qr{<input id="token" name="token" type="password"}, '... and a password field');
my $csp = $res->{headers}{'content-security-policy'} // '';
like($csp, qr/default-src 'none'/, 'CSP denies by default');
like($csp, qr/script-src 'self'/, 'CSP: scripts from the coordinator only');
like($csp, qr/frame-ancestors 'none'/, 'CSP: no framing');
is($res->{headers}{'x-content-type-options'}, 'nosniff', 'nosniff');
is($res->{headers}{'referrer-policy'}, 'same-origin', 'referrer only to ourselves (no-referrer would blank the Origin of our forms)');
is($res->{headers}{'cache-control'}, 'no-store', 'pages are not cached');

$res = req(GET => '/portal/assets/portal.css');
is($res->{status}, 200, 'stylesheet served by the coordinator');
like($res->{headers}{'content-type'}, qr{^text/css}, '... as CSS');
$res = req(GET => '/portal/assets/portal.js');
is($res->{status}, 200, 'script served by the coordinator');
like($res->{headers}{'content-type'}, qr{^text/javascript}, '... as JavaScript');
unlike($res->{content}, qr/innerHTML|eval\(|document\.write/, '... which never parses HTML');

# ---- sign-in ----------------------------------------------------------------------
($res, my $none) = sign_in('egk_not_a_real_token');
is($res->{status}, 401, 'unknown token refused');
ok(!$res->{headers}{'set-cookie'}, '... without a cookie');
like($res->{content}, qr/unknown or revoked/, '... with a clear message');
unlike($res->{content}, qr/egk_not_a_real_token/, '... that does not echo the token');
$res = req(POST => '/portal/login', form => { token => '' });
is($res->{status}, 400, 'empty token refused');
$res = req(POST => '/portal/login', form => { token => $alice },
    headers => { Origin => 'http://evil.example' });
is($res->{status}, 403, 'sign-in from a foreign Origin refused');

($res, my $cookie) = sign_in($alice);
is($res->{status}, 303, 'sign-in redirects');
is($res->{headers}{location}, '/portal/', '... to the lease list');
my $sc = $res->{headers}{'set-cookie'} // '';
like($cookie, qr/^egp_[A-Za-z0-9_-]{43}$/, 'session cookie is a random egp_ value');
isnt($cookie, $alice, '... not the token');
like($sc, qr/; HttpOnly/, '... HttpOnly');
like($sc, qr/; SameSite=Strict/, '... SameSite=Strict');
like($sc, qr/; Path=\/portal/, '... scoped to /portal');
like($sc, qr/; Max-Age=\d+/, '... expiring');
unlike($sc, qr/Secure/, '... not Secure over plain HTTP');
unlike($res->{content}, qr/\Q$alice\E/, 'token not in the response');
$res = req(GET => '/portal/login', cookie => $cookie);
is($res->{status}, 303, 'signed in: sign-in page redirects to the list');
$res = req(GET => '/portal/', cookie => 'egp_forged_value_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx');
is($res->{status}, 303, 'a forged cookie is not signed in');

# ---- lease list -------------------------------------------------------------------
my $l1 = $c->lease($alice, slug => 'swift-crab');
my $l2 = $c->lease($bob, slug => 'quiet-owl');
my $lx = $c->lease($mall, slug => 'other-org-lease');
my @allow = map {"host$_.example.com:443"} 1 .. 7;
my $ct = $c->ticket($alice, $l1->{id}, role => 'client', allow => \@allow);

$res = req(GET => '/portal/', cookie => $cookie);
is($res->{status}, 200, 'lease list');
my $list = $res->{content};
like($list, qr{<a href="/portal/leases/\Q$l1->{id}\E">swift-crab</a>}, 'lists own lease by slug');
like($list, qr{quiet-owl}, 'lists the org\'s other leases');
unlike($list, qr{other-org-lease}, 'never another org\'s');
like($list, qr{swift-crab</a></th><td><span class="state state-active">active</span></td><td><time[^>]*>[^<]+</time></td><td class="egress-yes">yes},
    'state, expiry and egress yes');
like($list, qr{quiet-owl</a></th><td>.*?</td><td>.*?</td><td class="egress-no">no}, 'egress no');
like($list, qr{<caption>}, 'the table has a caption');

# ---- lease page --------------------------------------------------------------------
$res = req(GET => "/portal/leases/$l1->{id}", cookie => $cookie);
is($res->{status}, 200, 'lease page');
my $page = $res->{content};
like($page, qr{<h1>Lease <span class="slug">swift-crab</span></h1>}, 'names the lease');
like($page, qr{data-field="host"[^>]*>disconnected<}, 'host not connected yet');
like($page, qr{data-field="client"[^>]*>disconnected<}, 'client not connected (ticket only)');
like($page, qr{<dt>Profile</dt><dd>custom allowlist</dd>}, 'profile (none: custom allowlist)');
like($page, qr{7 patterns: <code>host1\.example\.com:443</code>.*<code>host5\.example\.com:443</code>, …},
    'allowlist summary shows the first five');
like($page, qr{<details class="allow-all"><summary>Show all 7 patterns</summary>.*host7\.example\.com:443}s,
    'all patterns on demand');
like($page, qr{<code id="cmd-status">egress status --id swift-crab</code>}, 'status command');
like($page, qr{<code id="cmd-stop">egress stop --id swift-crab</code>}, 'stop command');
like($page, qr{<button type="button" class="copy" data-copy="cmd-status"}, 'copy button');
like($page, qr{href="/portal/leases/\Q$l1->{id}\E/stop">Stop egress session}, 'stop button');
like($page, qr{href="/portal/leases/\Q$l1->{id}\E/release">Release lease}, 'release button');
like($page, qr{data-status-url="/portal/api/leases/\Q$l1->{id}\E/status"}, 'live status source');
for my $secret ($alice, $ct->{ticket}, $cookie) {
    unlike($page, qr/\Q$secret\E/, 'no token, ticket or cookie in the page');
}
unlike($page, qr/egt_|egr_|egk_[A-Za-z0-9]|3128|proxy_pass|http:\/\/127\.0\.0\.1:\d+\/v1/,
    'no ticket, resume secret or proxy URL in the page');

$res = req(GET => "/portal/api/leases/$l1->{id}/status", cookie => $cookie);
is($res->{status}, 200, 'status JSON');
my $st = decode_json($res->{content});
is($st->{leaseState}, 'active', '... lease state');
is($st->{session}{state}, 'active', '... session state');
ok(!$st->{session}{hostConnected}, '... host not connected');
unlike($res->{content}, qr/egt_|egr_/, '... no secrets');

$res = req(GET => '/portal/leases/swift-crab', cookie => $cookie);
is($res->{status}, 200, 'lease page by slug too');
$res = req(GET => "/portal/leases/$lx->{id}", cookie => $cookie);
is($res->{status}, 404, 'another org\'s lease is 404');
$res = req(GET => '/portal/leases/no-such-lease', cookie => $cookie);
is($res->{status}, 404, 'unknown lease is 404');
$res = req(GET => '/portal/leases/%3Cscript%3E', cookie => $cookie);
is($res->{status}, 404, 'a hostile lease reference is 404');
unlike($res->{content}, qr/<script>/, '... and not echoed');

$res = req(GET => "/portal/leases/$l2->{id}", cookie => $cookie);
like($res->{content}, qr/This lease has no egress session/, 'no session: says so');
like($res->{content}, qr{<code id="cmd-start">egress start --id quiet-owl --profile NAME</code>},
    '... and how to start one');
unlike($res->{content}, qr{/stop"|/release"}, 'not the owner: no stop or release buttons');
like($res->{content}, qr/Only the lease owner or an admin/, '... says who can');

# ---- escaping ---------------------------------------------------------------------------
my ($eres, $ecookie) = sign_in($eve);
my $le = $c->lease($eve, slug => 'eve-lease');
$res = req(GET => "/portal/leases/$le->{id}", cookie => $ecookie);
unlike($res->{content}, qr/<img\/src/, 'owner name with HTML is not markup');
like($res->{content}, qr/&lt;img\/src=x\/onerror=alert\(1\)&gt;/, '... it is escaped text');
# Values the API refuses (slugs, patterns) can still reach the database (an
# older version, a manual edit): the page must escape them too.
my $hostile = q{<script>alert("slug")</script>'};
my $db = $c->db;
my ($rc, $out) = $t->run([ 'sqlite3', $db,
    "UPDATE leases SET slug='x\"><svg onload=alert(1)>' WHERE id='$le->{id}';"
  . "INSERT INTO sessions(lease_id, session_id, generation, profile, allow, state, created_at,"
  . " updated_at) VALUES('$le->{id}', 'egress_1.1.x.y', 1, '<b>p</b>',"
  . " '[\"<script>alert(2)</script>\",\"a\\\"b&c\"]', 0, 1, 1);" ]);
is($rc, 0, 'hostile rows written straight into the database') or diag $out;
$res = req(GET => "/portal/leases/$le->{id}", cookie => $ecookie);
is($res->{status}, 200, 'lease page with hostile rows');
unlike($res->{content}, qr/<svg onload|<script>alert|<b>p<\/b>/, 'hostile slug, profile and pattern are not markup');
like($res->{content}, qr/x&quot;&gt;&lt;svg onload=alert\(1\)&gt;/, 'slug escaped');
like($res->{content}, qr/&lt;script&gt;alert\(2\)&lt;\/script&gt;/, 'pattern escaped');
like($res->{content}, qr/a&quot;b&amp;c/, 'quotes and ampersands escaped');
$res = req(GET => '/portal/', cookie => $ecookie);
unlike($res->{content}, qr/<svg/, 'lease list escapes the slug too');

# ---- forms: CSRF and Origin ---------------------------------------------------------
my $csrf = csrf_of($page);
ok($csrf, 'pages carry a CSRF value');
$res = req(GET => "/portal/leases/$l1->{id}/stop", cookie => $cookie);
is($res->{status}, 200, 'stop asks for confirmation first');
like($res->{content}, qr{<form method="post" class="confirm" action="/portal/leases/\Q$l1->{id}\E/stop">},
    '... with a form');
is(csrf_of($res->{content}), $csrf, '... carrying the CSRF value');
like($res->{content}, qr{>Cancel</a>}, '... and a way back');

$res = req(GET => "/portal/leases/$l1->{id}/release", cookie => $cookie);
like($res->{content}, qr{<form method="post" class="confirm" action="/portal/leases/\Q$l1->{id}\E/release">},
    'release asks for confirmation first too');
$res = req(GET => "/portal/leases/$l2->{id}/release", cookie => $cookie);
is($res->{status}, 403, '... and only for someone who may release it');

$res = req(POST => "/portal/leases/$l1->{id}/stop", cookie => $cookie, form => {});
is($res->{status}, 403, 'stop without CSRF value refused');
$res = req(POST => "/portal/leases/$l1->{id}/stop", cookie => $cookie, form => { csrf => 'f' x 64 });
is($res->{status}, 403, 'stop with a wrong CSRF value refused');
$res = req(POST => "/portal/leases/$l1->{id}/stop", cookie => $cookie, form => { csrf => $csrf },
    headers => { Origin => 'http://evil.example' });
is($res->{status}, 403, 'stop from a foreign Origin refused');
$res = req(POST => "/portal/leases/$l1->{id}/stop", form => { csrf => $csrf });
is($res->{status}, 303, 'stop without the cookie goes to sign-in');
is($res->{headers}{location}, '/portal/login', '... there');
is($c->status($alice, $l1->{id})->{state}, 'active', 'nothing was stopped');

my ($bres, $bcookie) = sign_in($bob);
$res = req(POST => "/portal/leases/$l1->{id}/stop", cookie => $bcookie,
    form => { csrf => csrf_of(req(GET => '/portal/', cookie => $bcookie)->{content}) });
is($res->{status}, 403, 'a member who is not the owner cannot stop it');
is($c->status($alice, $l1->{id})->{state}, 'active', 'still active');

$res = req(POST => "/portal/leases/$l1->{id}/stop", cookie => $cookie, form => { csrf => $csrf },
    headers => { Origin => $base });
is($res->{status}, 303, 'stop with CSRF value and our Origin');
is($res->{headers}{location}, "/portal/leases/$l1->{id}?done=stopped", '... back to the lease');
is($c->status($alice, $l1->{id})->{state}, 'stopped', 'the egress session is stopped');
$res = req(GET => "/portal/leases/$l1->{id}?done=stopped", cookie => $cookie);
like($res->{content}, qr{role="status">The egress session was stopped\.}, 'confirmation message');
unlike($res->{content}, qr{/stop">Stop egress}, 'no stop button on a stopped session');
like($c->log, qr/portal_action lease=\Q$l1->{id}\E action=stop result=stopped owner=alice/,
    'the action is logged');

$res = req(POST => "/portal/leases/$l1->{id}/release", cookie => $cookie, form => { csrf => $csrf });
is($res->{status}, 303, 'release');
is($res->{headers}{location}, "/portal/leases/$l1->{id}?done=released", '... back to the lease');
my ($s2, $lj) = $c->api(GET => "/v1/leases/$l1->{id}", $alice);
is($lj->{state}, 'released', 'the lease is released');
$res = req(POST => "/portal/leases/$l1->{id}/release", cookie => $cookie, form => { csrf => $csrf });
is($res->{headers}{location}, "/portal/leases/$l1->{id}?done=gone", 'releasing twice says it is gone');

# ---- bad input --------------------------------------------------------------------------
$res = req(POST => "/portal/leases/$l2->{id}/release", cookie => $cookie,
    headers => { 'Content-Type' => 'application/json' });
is($res->{status}, 403, 'a non-form body is refused');
$res = $http->request(POST => "$base/portal/login",
    { headers => { 'Content-Type' => 'application/x-www-form-urlencoded' }, content => 'token=%zz' });
is($res->{status}, 400, 'a malformed %-escape is a 400');
$res = $http->request(POST => "$base/portal/login",
    { headers => { 'Content-Type' => 'application/x-www-form-urlencoded' },
      content => 'token=' . ('a' x 70000) });
is($res->{status}, 413, 'an oversized body is a 413');
$res = req(PUT => '/portal/', cookie => $cookie);
is($res->{status}, 405, 'other methods are 405');
$res = req(GET => '/portal/nowhere', cookie => $cookie);
is($res->{status}, 404, 'unknown portal page is 404');

# ---- sign-out and revocation ---------------------------------------------------------
$res = req(POST => '/portal/logout', cookie => $cookie, form => {});
is($res->{status}, 403, 'sign-out needs the CSRF value');
$res = req(POST => '/portal/logout', cookie => $cookie, form => { csrf => $csrf });
is($res->{status}, 303, 'sign-out');
like($res->{headers}{'set-cookie'} // '', qr/^egress_portal=; .*Max-Age=0/, '... clears the cookie');
$res = req(GET => '/portal/', cookie => $cookie);
is($res->{status}, 303, 'the old cookie no longer signs in');

my ($r3, $ccookie) = sign_in($bob);
is(req(GET => '/portal/', cookie => $ccookie)->{status}, 200, 'bob signed in');
my ($id) = $c->admin('token', 'list') =~ /^(tok_\S+)\s+bob\s/m;
ok($id, 'bob\'s token id');
($rc, $out) = $c->admin('token', 'revoke', $id);
is($rc, 0, 'revoke bob\'s token') or diag $out;
is(req(GET => '/portal/', cookie => $ccookie)->{status}, 303, 'revoking the token signs the browser out');

my $dbtext = slurp($db) . slurp("$db-wal");
unlike($dbtext, qr/\Q$ccookie\E/, 'the database never holds a cookie value');
unlike($c->log, qr/egp_|egk_/, 'the log never holds a cookie or token');

# ---- sign-in rate limit -----------------------------------------------------------------
my $limited = 0;
for (1 .. 15) {
    my ($r) = sign_in("egk_wrong_$_");
    $limited++ if $r->{status} == 429;
}
ok($limited > 0, 'repeated failed sign-ins are rate limited');
like($c->log, qr/portal_signin_refused addr=127\.0\.0\.1/, 'failed sign-ins are logged');

# ---- TLS: the cookie is Secure ---------------------------------------------------------
SKIP: {
    my $dir = $t->dir;
    ($rc, $out) = $t->run([ 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
        '-subj', '/CN=127.0.0.1', '-keyout', "$dir/key.pem", '-out', "$dir/cert.pem" ]);
    skip 'openssl cannot make a certificate', 3 if $rc != 0;
    my $tc = $t->coordinator(name => 'tls', db => $c->db,
        args => [ '--tls-cert', "$dir/cert.pem", '--tls-key', "$dir/key.pem" ]);
    my $https = HTTP::Tiny->new(max_redirect => 0, verify_SSL => 0, timeout => 30);
    $res = $https->request(POST => 'https://127.0.0.1:' . $tc->port . '/portal/login',
        { headers => { 'Content-Type' => 'application/x-www-form-urlencoded' },
          content => 'token=' . uri($alice) });
    is($res->{status}, 303, 'sign-in over https');
    like($res->{headers}{'set-cookie'} // '', qr/; Secure/, '... sets a Secure cookie');
    like($res->{headers}{'set-cookie'} // '', qr/; HttpOnly; SameSite=Strict/, '... HttpOnly, SameSite=Strict');
}

$t->done;
done_testing;
