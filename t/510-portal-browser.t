#!/usr/bin/perl
# The portal in a real browser: Debian's headless Chromium driven over the
# DevTools protocol against a real coordinator and a real host agent. Signs in
# with the keyboard, follows the lease, watches the host dot go from connected
# to disconnected when the agent stops (no reload), copies a command, renders
# hostile values as text, stops the session through the confirmation page,
# fits a narrow window, checks labels and contrast, and signs out.
# Screenshots go to build/artifacts/portal-*.png.

use strict;
use warnings;

use Test::More;
use Test::Egress;
use Test::Egress::CDP;
use Test::Egress::HostAgent;
use Test::Egress::Origin;

plan skip_all => 'chromium is not installed' unless Test::Egress::CDP::available();

my $t = Test::Egress->new;
$t->require_bins('egress-coordinator', 'egress');
# The test's own client socket answers pings only when the test reads it,
# which it does not while it drives the browser: a long ping interval.
my $c    = $t->coordinator(args => [ '--ping-interval', '120s' ]);
my $base = $c->url;
my $o    = $t->origin;
my $h    = Test::Egress::HostAgent->new($t, coordinator => $c, slug => 'browser-lease',
    allow => 'localhost:' . $o->port . ',a1.example.com,a2.example.com,a3.example.com,'
        . 'a4.example.com,a5.example.com,a6.example.com', args => ['--allow-private']);
my $token = $h->token;
my $lease = $h->lease;
my $art   = $t->root . '/build/artifacts';
mkdir $art;

my $b = Test::Egress::CDP->new($t);
$b->browser_call('Browser.grantPermissions', { origin => $base,
    permissions => [ 'clipboardReadWrite', 'clipboardSanitizedWrite' ] });

# ---- sign in with the keyboard ---------------------------------------------------
$b->goto("$base/portal/");
is($b->eval('location.pathname'), '/portal/login', 'signed out: the portal shows the sign-in page');
my $tabs = 0;
while ($tabs < 8 && ($b->eval('document.activeElement && document.activeElement.id') // '') ne 'token') {
    $b->press('Tab');
    $tabs++;
}
is($b->eval('document.activeElement.id'), 'token', "the token field is reached with Tab ($tabs presses)");
$b->type($token);
$b->{events} = [];
$b->press('Enter');
ok($b->wait_event('Page.loadEventFired', 30), 'Enter submits the form');
is($b->eval("location.pathname"), "/portal/", "signed in: the lease list") or diag $b->eval("document.body.innerText"), $c->log;
is($b->eval('document.cookie'), '', 'the session cookie is invisible to scripts (HttpOnly)');
unlike($b->eval('document.documentElement.outerHTML'), qr/\Q$token\E/, 'the token is not in the page');
unlike($b->eval('location.href'), qr/egk_/, '... nor in the URL');
like($b->eval('document.querySelector("table").textContent'), qr/browser-lease/, 'the lease is listed');
like($b->eval('document.querySelector("table").textContent'), qr/yes/, '... with egress');
$b->screenshot("$art/portal-leases.png");

# ---- the lease page, live ------------------------------------------------------------
$b->{events} = [];
$b->click('a[href="/portal/leases/' . $lease . '"]');
ok($b->wait_event('Page.loadEventFired', 30), 'the lease link opens the lease page');
is($b->eval('location.pathname'), "/portal/leases/$lease", '... for that lease');
is($b->eval('document.querySelector("h1").textContent'), 'Lease browser-lease', '... titled by slug');
ok($b->wait_for('document.querySelector("[data-field=host]").textContent === "connected"'),
    'host agent shown connected');
ok($b->eval('document.querySelector("[data-dot=host]").classList.contains("on")'), '... with a lit dot');
like($b->eval('document.querySelector("[data-field=hostSince]").textContent'), qr/^since \d{4}-\d\d-\d\dT/,
    '... and since when');
is($b->eval('document.querySelector("[data-field=client]").textContent'), 'connected',
    'lease proxy shown connected');
like($b->eval('document.querySelector(".allow-summary").textContent'), qr/^7 patterns: /,
    'allowlist summary');
ok(!$b->eval('document.querySelector(".allow-all").open'), '... all patterns folded away');
$b->click('.allow-all summary');
ok($b->eval('document.querySelector(".allow-all").open'), '... and shown on demand');
like($b->eval('document.querySelector(".allow-all").textContent'), qr/a6\.example\.com/, '... all of them');
$b->screenshot("$art/portal-lease-connected.png");

# Traffic through the session moves the counters without a reload.
$b->eval('window.__same_page = 42');
my $r = $h->open(1, 'localhost', $o->port);
is($r->{type}, 'open_ok', 'a stream through the host agent');
$h->send(1, "GET /bytes/200000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
my ($bytes) = $h->read_stream(1);
ok(length($bytes) > 200000, 'the origin answered through the agent');
ok($b->wait_for('/KiB|MiB/.test(document.querySelector("[data-field=bytesDown]").textContent)', 20),
    'the received-bytes counter updates live');

# The throughput chart follows that transfer, and a refused host is listed
# with its reason and the command that allows it (issue 16).
ok($b->wait_for('Number(document.getElementById("traffic-chart").getAttribute("data-sum-down")) >= 200000', 20),
    'the chart counts the transfer');
my @pts = split / /, $b->eval('document.getElementById("traffic-down").getAttribute("points")');
is(scalar @pts, 900, 'the received line has a point per second for 15 minutes');
my @ys = map { (split /,/)[1] } @pts;
ok((grep { $_ < 149 } @ys[-30 .. -1]), '... rising above the baseline in the last 30 s');
is(scalar(grep { $_ < 149 } @ys[0 .. 800]), 0, '... and flat before the session had traffic');
like($b->eval('document.getElementById("traffic-text").textContent'),
    qr/received \d+(\.\d)? KiB, sent \d+/, 'the text alternative says how much');
is($b->eval('getComputedStyle(document.getElementById("traffic-up")).strokeDasharray') =~ /\d/ ? 1 : 0, 1,
    'sent is dashed, so the lines differ without colour');
$r = $h->open(2, 'cdn.refused.example', 443);
is($r->{type}, 'error', 'a host off the allowlist is refused');
ok($b->wait_for('!document.getElementById("refused").hidden', 20), 'the refused table appears');
is($b->eval('document.querySelector("#refused tbody th").textContent'), 'cdn.refused.example:443',
    '... naming the host');
is($b->eval('document.querySelector("#refused tbody td").textContent'), 'not on the allowlist',
    '... and why');
is($b->eval('document.querySelector("#refused .allow-cmd").textContent'),
    "egress allow --id $lease add cdn.refused.example", '... and the command that allows it');
$b->screenshot("$art/portal-lease-traffic.png");

$t->stop('agent');
ok($b->wait_for('document.querySelector("[data-field=host]").textContent === "disconnected"', 30),
    'host goes disconnected when the agent stops');
ok(!$b->eval('document.querySelector("[data-dot=host]").classList.contains("on")'), '... the dot goes dark');
is($b->eval('window.__same_page'), 42, '... without a page reload');
like($b->eval('document.querySelector("[data-field=hostSince]").textContent'), qr/^since \d{4}-/,
    '... saying since when');
$b->screenshot("$art/portal-lease-disconnected.png");

# ---- copy button ---------------------------------------------------------------------
$b->click('button[data-copy="cmd-status"]');
ok($b->wait_for('document.querySelector("button[data-copy=cmd-status]").textContent === "Copied"', 10),
    'the copy button confirms');
is($b->eval('navigator.clipboard.readText()'), 'egress status --id browser-lease',
    'the clipboard holds the status command');

# ---- no secrets in the page source ------------------------------------------------
my $src = $b->eval('fetch(location.href, {credentials: "same-origin"}).then(r => r.text())');
like($src, qr/browser-lease/, 'page source fetched');
for my $secret ($token, $h->session) {
    unlike($src, qr/\Q$secret\E/, 'no token or session secret in the source');
}
unlike($src, qr/egt_|egr_|egk_|:3128|proxyURL|--proxy-server/i, 'no ticket, resume secret or proxy URL in the source');

# ---- accessibility: labels, names, contrast ---------------------------------------
is($b->eval('document.documentElement.lang'), 'en', 'the document has a language');
is($b->eval('[...document.querySelectorAll("input:not([type=hidden])")].filter(e => !e.labels.length).length'),
    0, 'every input has a label');
is($b->eval('[...document.querySelectorAll("button, a")].filter(e => !e.textContent.trim()).length'),
    0, 'every button and link has a name');
my $contrast = $b->eval(<<'JS');
(function () {
  function rgb(s) { return s.match(/[\d.]+/g).slice(0, 3).map(Number); }
  function lum(c) {
    var a = c.map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * a[0] + 0.7152 * a[1] + 0.0722 * a[2];
  }
  function bg(e) {
    for (; e; e = e.parentElement) {
      var c = getComputedStyle(e).backgroundColor;
      if (!/rgba\(.*, 0\)$/.test(c) && c !== 'transparent') return rgb(c);
    }
    return [255, 255, 255];
  }
  var worst = 99, what = '';
  document.querySelectorAll('h1, dt, dd, p, a, button, code, th, td, .help, .cmd-label').forEach(function (e) {
    if (!e.textContent.trim() || !e.offsetParent) return;
    var f = lum(rgb(getComputedStyle(e).color)), b = lum(bg(e));
    var r = (Math.max(f, b) + 0.05) / (Math.min(f, b) + 0.05);
    if (r < worst) { worst = r; what = e.tagName + '.' + e.className; }
  });
  return [worst, what];
})()
JS
cmp_ok($contrast->[0], '>=', 4.5, "text contrast meets WCAG AA (lowest $contrast->[0] on $contrast->[1])");

# ---- a narrow window ------------------------------------------------------------------
$b->viewport(360, 740, mobile => 1);
$b->goto("$base/portal/leases/$lease");
ok($b->eval('document.documentElement.scrollWidth <= 360'), 'no horizontal scrolling at 360 px');
$b->screenshot("$art/portal-lease-narrow.png");
$b->viewport(1024, 768);

# ---- hostile values render as text -------------------------------------------------------
my $hostile = q{<img src=x onerror="window.__xss=1">};
my ($rc, $out) = $t->run([ 'sqlite3', $c->db,
    "UPDATE leases SET slug='<script>window.__xss=2</script>' WHERE id='$lease';"
  . "UPDATE sessions SET allow='[\"<img src=x onerror=\\\"window.__xss=1\\\">\"]' WHERE lease_id='$lease';" ]);
is($rc, 0, 'hostile slug and pattern written into the database') or diag $out;
$b->goto("$base/portal/leases/$lease");
is($b->eval('document.querySelector("h1 .slug").textContent'), '<script>window.__xss=2</script>',
    'a slug containing HTML renders as text');
is($b->eval('document.querySelector(".allow-summary code").textContent'), $hostile,
    'a pattern containing HTML renders as text');
is($b->eval('typeof window.__xss'), 'undefined', 'neither ran');
is($b->eval('document.querySelectorAll("main img, main script").length'), 0, 'no element was injected');
$b->screenshot("$art/portal-xss-as-text.png");
($rc, $out) = $t->run([ 'sqlite3', $c->db, "UPDATE leases SET slug='browser-lease' WHERE id='$lease';" ]);

# ---- stop, with confirmation --------------------------------------------------------------
$b->{events} = [];
$b->click('#stop');
ok($b->wait_event('Page.loadEventFired', 30), 'the stop button opens a confirmation');
like($b->eval('document.querySelector("h1").textContent'), qr/^Stop egress session browser-lease\?$/,
    '... asking first');
is($c->status($token, $lease)->{state}, 'active', '... and nothing is stopped yet');
$b->screenshot("$art/portal-confirm-stop.png");
$b->{events} = [];
$b->click('#confirm');
ok($b->wait_event('Page.loadEventFired', 30), 'confirming submits');
is($b->eval('location.pathname + location.search'), "/portal/leases/$lease?done=stopped", 'back on the lease');
is($b->eval('document.querySelector(".flash").textContent'), 'The egress session was stopped.',
    '... saying it stopped');
is($c->status($token, $lease)->{state}, 'stopped', 'the coordinator stopped the session');
my $m = $h->ws->recv_until(sub { $_[0]{type} eq 'close' }, 10);
is($m && $m->{code}, 4004, 'the lease proxy socket was closed with 4004 (session stopped)');
is($b->eval('document.querySelector("#stop")'), undef, 'no stop button any more');

# ---- sign out ------------------------------------------------------------------------
$b->{events} = [];
$b->click('.signout button');
ok($b->wait_event('Page.loadEventFired', 30), 'sign out');
is($b->eval('location.pathname'), '/portal/login', '... to the sign-in page');
$b->goto("$base/portal/leases/$lease");
is($b->eval('location.pathname'), '/portal/login', 'the lease page now asks to sign in again');

$b->close;
$t->done;
done_testing;
