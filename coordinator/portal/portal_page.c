/*
 * portal_page.c: the portal's HTML documents. Every value from the database
 * or a request goes through hbuf_text(); only this file's own literals are
 * written raw.
 */

#include <stdio.h>
#include <string.h>

#include "portal.h"

/* ---- shared parts ------------------------------------------------------ */

static void page_begin(hbuf_t *b, const portal_view_t *v, const char *title)
{
    hbuf_raw(b, "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                "<meta name=\"referrer\" content=\"same-origin\">\n<title>");
    hbuf_text(b, title);
    hbuf_raw(b,
             " · egress</title>\n<link rel=\"stylesheet\" href=\"/portal/assets/portal.css\">\n"
             "<script src=\"/portal/assets/portal.js\" defer></script>\n</head>\n<body>\n"
             "<a class=\"skip\" href=\"#main\">Skip to content</a>\n"
             "<header class=\"top\"><a class=\"brand\" href=\"/portal/\">egress</a>");
    if (v != NULL && v->tok != NULL) {
        hbuf_raw(b, "<form class=\"signout\" method=\"post\" action=\"/portal/logout\">"
                    "<span class=\"who\">");
        hbuf_text(b, v->tok->owner);
        hbuf_raw(b, " <span class=\"org\">(");
        hbuf_text(b, v->tok->org);
        hbuf_raw(b, ")</span></span><input type=\"hidden\" name=\"csrf\" value=\"");
        hbuf_text(b, v->csrf);
        hbuf_raw(b, "\"><button type=\"submit\" class=\"link\">Sign out</button></form>");
    }
    hbuf_raw(b, "</header>\n<main id=\"main\">\n");
}

static void page_end(hbuf_t *b)
{
    hbuf_raw(b, "</main>\n</body>\n</html>\n");
}

static void page_time(hbuf_t *b, int64_t t)
{
    char ts[32];

    coord_time_format(ts, sizeof(ts), t);
    hbuf_raw(b, "<time datetime=\"");
    hbuf_text(b, ts);
    hbuf_raw(b, "\">");
    hbuf_text(b, ts);
    hbuf_raw(b, "</time>");
}

static void page_state(hbuf_t *b, lease_state_e st)
{
    hbuf_raw(b, "<span class=\"state state-");
    hbuf_text(b, store_lease_state_name(st));
    hbuf_raw(b, "\">");
    hbuf_text(b, store_lease_state_name(st));
    hbuf_raw(b, "</span>");
}

/* 1536 -> "1.5 KiB"; the same rule as fmtBytes() in portal.js. */
static void page_bytes(hbuf_t *b, long long n)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double) n;
    int u = 0;

    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0) {
        hbuf_printf(b, "%lld B", n);
    } else {
        hbuf_printf(b, "%.1f %s", v, units[u]);
    }
}

static const char *json_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* A command line (cmd + slug + tail) with a copy button. */
static void page_copyable(hbuf_t *b, const char *id, const char *label, const char *cmd,
                          const char *slug, const char *tail)
{
    hbuf_raw(b, "<div class=\"cmd\"><span class=\"cmd-label\" id=\"");
    hbuf_raw(b, id);
    hbuf_raw(b, "-label\">");
    hbuf_text(b, label);
    hbuf_raw(b, "</span><code id=\"");
    hbuf_raw(b, id);
    hbuf_raw(b, "\">");
    hbuf_text(b, cmd);
    hbuf_text(b, slug);
    hbuf_text(b, tail);
    hbuf_raw(b, "</code><button type=\"button\" class=\"copy\" data-copy=\"");
    hbuf_raw(b, id);
    hbuf_raw(b, "\" aria-describedby=\"");
    hbuf_raw(b, id);
    hbuf_raw(b, "-label\">Copy</button></div>\n");
}

static void page_flash(hbuf_t *b, const char *flash)
{
    if (flash != NULL) {
        hbuf_raw(b, "<p class=\"flash\" role=\"status\">");
        hbuf_text(b, flash);
        hbuf_raw(b, "</p>\n");
    }
}

/* ---- sign-in ----------------------------------------------------------- */

void portal_render_login(hbuf_t *b, const char *error)
{
    page_begin(b, NULL, "Sign in");
    hbuf_raw(b, "<h1>Sign in</h1>\n");
    if (error != NULL) {
        hbuf_raw(b, "<p class=\"error\" role=\"alert\" id=\"login-error\">");
        hbuf_text(b, error);
        hbuf_raw(b, "</p>\n");
    }
    hbuf_raw(b, "<form class=\"card\" method=\"post\" action=\"/portal/login\" "
                "autocomplete=\"off\">\n"
                "<label for=\"token\">API token</label>\n"
                "<input id=\"token\" name=\"token\" type=\"password\" required "
                "autocomplete=\"off\" spellcheck=\"false\" aria-describedby=\"token-help\"");
    if (error != NULL) {
        hbuf_raw(b, " aria-invalid=\"true\"");
    }
    hbuf_raw(b, ">\n<p class=\"help\" id=\"token-help\">The bearer token you use with the "
                "<code>egress</code> command (egk_...). It is exchanged for a sign-in "
                "cookie and is not stored in the browser.</p>\n"
                "<button type=\"submit\">Sign in</button>\n</form>\n");
    page_end(b);
}

/* ---- lease list -------------------------------------------------------- */

void portal_render_leases(hbuf_t *b, const portal_view_t *v, const portal_row_t *rows, size_t n,
                          size_t total)
{
    size_t i;
    const store_lease_t *l;

    page_begin(b, v, "Leases");
    hbuf_raw(b, "<h1>Leases</h1>\n");
    if (n == 0) {
        hbuf_raw(b, "<p>Your organization has no leases yet.</p>\n");
        page_end(b);
        return;
    }
    hbuf_raw(b, "<div class=\"scroll\"><table>\n<caption>Leases of ");
    hbuf_text(b, v->tok->org);
    hbuf_raw(b, "</caption>\n<thead><tr><th scope=\"col\">Lease</th><th scope=\"col\">State"
                "</th><th scope=\"col\">Expires</th><th scope=\"col\">Egress</th>"
                "<th scope=\"col\">Owner</th></tr></thead>\n<tbody>\n");
    for (i = 0; i < n; i++) {
        l = &rows[i].lease;
        hbuf_raw(b, "<tr><th scope=\"row\"><a href=\"/portal/leases/");
        hbuf_text(b, l->id);
        hbuf_raw(b, "\">");
        hbuf_text(b, l->slug);
        hbuf_raw(b, "</a></th><td>");
        page_state(b, lease_effective_state(l));
        hbuf_raw(b, "</td><td>");
        page_time(b, l->expires_at);
        hbuf_raw(b, rows[i].egress ? "</td><td class=\"egress-yes\">yes</td><td>"
                                   : "</td><td class=\"egress-no\">no</td><td>");
        hbuf_text(b, l->owner);
        hbuf_raw(b, "</td></tr>\n");
    }
    hbuf_raw(b, "</tbody>\n</table></div>\n");
    if (total > n) {
        hbuf_printf(b, "<p class=\"help\">Showing the first %zu of %zu leases.</p>\n", n,
                    total);
    }
    page_end(b);
}

/* ---- one lease --------------------------------------------------------- */

static void page_conn(hbuf_t *b, const char *key, const char *label, int on, const char *since)
{
    hbuf_raw(b, "<dt>");
    hbuf_raw(b, label);
    hbuf_raw(b, "</dt><dd><span class=\"dot");
    hbuf_raw(b, on ? " on" : "");
    hbuf_raw(b, "\" data-dot=\"");
    hbuf_raw(b, key);
    hbuf_raw(b, "\" aria-hidden=\"true\"></span><span data-field=\"");
    hbuf_raw(b, key);
    hbuf_raw(b, "\" aria-live=\"polite\">");
    hbuf_raw(b, on ? "connected" : "disconnected");
    hbuf_raw(b, "</span> <span class=\"since\" data-field=\"");
    hbuf_raw(b, key);
    hbuf_raw(b, "Since\">");
    if (since != NULL) {
        hbuf_raw(b, "since ");
        hbuf_text(b, since);
    }
    hbuf_raw(b, "</span></dd>\n");
}

static void page_allow(hbuf_t *b, json_t *allow)
{
    size_t i, n = json_array_size(allow);
    json_t *p;

    hbuf_raw(b, "<h3>Allowlist</h3>\n");
    if (n == 0) {
        hbuf_raw(b, "<p>No patterns: every destination is refused.</p>\n");
        return;
    }
    hbuf_printf(b, "<p class=\"allow-summary\">%zu pattern%s: ", n, n == 1 ? "" : "s");
    for (i = 0; i < n && i < PORTAL_ALLOW_SHOWN; i++) {
        p = json_array_get(allow, i);
        hbuf_raw(b, i ? ", <code>" : "<code>");
        hbuf_text(b, json_string_value(p) ? json_string_value(p) : "?");
        hbuf_raw(b, "</code>");
    }
    hbuf_raw(b, n > PORTAL_ALLOW_SHOWN ? ", …</p>\n" : "</p>\n");
    if (n > PORTAL_ALLOW_SHOWN) {
        hbuf_printf(b,
                    "<details class=\"allow-all\"><summary>Show all %zu patterns</summary>"
                    "<ul>\n",
                    n);
        json_array_foreach(allow, i, p)
        {
            hbuf_raw(b, "<li><code>");
            hbuf_text(b, json_string_value(p) ? json_string_value(p) : "?");
            hbuf_raw(b, "</code></li>\n");
        }
        hbuf_raw(b, "</ul></details>\n");
    }
}

/* The refused destinations: why, and the command that allows each. */
static void page_refused(hbuf_t *b, json_t *s)
{
    json_t *refused = json_object_get(s, "refused"), *r;
    size_t i;

    hbuf_raw(b, "<h3 id=\"refused-h\">Refused destinations</h3>\n"
                "<p class=\"help\" id=\"refused-none\"");
    hbuf_raw(b, json_array_size(refused) ? " hidden>" : ">");
    hbuf_raw(b, "Nothing was refused.</p>\n<div class=\"scroll\"><table id=\"refused\" "
                "aria-labelledby=\"refused-h\"");
    hbuf_raw(b, json_array_size(refused) ? ">" : " hidden>");
    hbuf_raw(b, "<thead><tr><th scope=\"col\">Destination</th><th scope=\"col\">Why</th>"
                "<th scope=\"col\">Times</th><th scope=\"col\">To allow it, run on your "
                "workstation</th></tr></thead>\n<tbody>\n");
    json_array_foreach(refused, i, r)
    {
        const char *cmd = json_string_value(json_object_get(r, "allowCommand"));

        hbuf_raw(b, "<tr><th scope=\"row\"><code>");
        hbuf_text(b, json_str(r, "host"));
        hbuf_printf(b, ":%lld</code></th><td data-reason=\"",
                    (long long) json_integer_value(json_object_get(r, "port")));
        hbuf_text(b, json_str(r, "reason"));
        hbuf_raw(b, "\">");
        hbuf_text(b, json_str(r, "reasonText"));
        hbuf_printf(b, "</td><td>%lld</td><td>",
                    (long long) json_integer_value(json_object_get(r, "count")));
        if (cmd != NULL) {
            hbuf_raw(b, "<code class=\"allow-cmd\">");
            hbuf_text(b, cmd);
            hbuf_raw(b, "</code>");
        } else {
            hbuf_raw(b, "not an allowlist matter");
        }
        hbuf_raw(b, "</td></tr>\n");
    }
    hbuf_raw(b, "</tbody></table></div>\n");
}

/* Every destination of the session, most recent first. */
static void page_destinations(hbuf_t *b, json_t *s)
{
    json_t *dests = json_object_get(s, "destinations"), *d;
    size_t i;

    hbuf_raw(b, "<details class=\"dests\"><summary>All destinations (<span "
                "data-field=\"destCount\">");
    hbuf_printf(b, "%zu", json_array_size(dests));
    hbuf_raw(b, "</span>, the 100 most recent)</summary>\n<div class=\"scroll\"><table "
                "id=\"destinations\"><thead><tr><th scope=\"col\">Destination</th>"
                "<th scope=\"col\">Opens</th><th scope=\"col\">Refused</th>"
                "<th scope=\"col\">Sent</th><th scope=\"col\">Received</th>"
                "<th scope=\"col\">Last seen</th></tr></thead>\n<tbody>\n");
    json_array_foreach(dests, i, d)
    {
        hbuf_raw(b, "<tr><th scope=\"row\"><code>");
        hbuf_text(b, json_str(d, "host"));
        hbuf_printf(b, ":%lld</code></th><td>%lld</td><td>%lld</td><td>",
                    (long long) json_integer_value(json_object_get(d, "port")),
                    (long long) json_integer_value(json_object_get(d, "opens")),
                    (long long) json_integer_value(json_object_get(d, "refused")));
        page_bytes(b, (long long) json_integer_value(json_object_get(d, "bytesUp")));
        hbuf_raw(b, "</td><td>");
        page_bytes(b, (long long) json_integer_value(json_object_get(d, "bytesDown")));
        hbuf_raw(b, "</td><td>");
        hbuf_text(b, json_str(d, "lastSeen"));
        hbuf_raw(b, "</td></tr>\n");
    }
    hbuf_raw(b, "</tbody></table></div></details>\n");
}

/* The chart's frame; portal.js draws it from the status document. */
static void page_traffic(hbuf_t *b)
{
    hbuf_raw(b,
             "<h3 id=\"traffic-h\">Traffic, last 15 minutes</h3>\n"
             "<figure class=\"traffic\">\n"
             "<svg id=\"traffic-chart\" viewBox=\"0 0 600 180\" role=\"img\" "
             "aria-labelledby=\"traffic-h traffic-text\" preserveAspectRatio=\"none\">"
             "<g class=\"axis\"><line x1=\"40\" y1=\"150\" x2=\"600\" y2=\"150\"/>"
             "<line x1=\"40\" y1=\"10\" x2=\"40\" y2=\"150\"/></g>"
             "<text x=\"44\" y=\"22\" data-field=\"trafficPeak\">0</text>"
             "<text x=\"36\" y=\"154\" text-anchor=\"end\">0</text>"
             "<text x=\"40\" y=\"170\">-15 min</text>"
             "<text x=\"600\" y=\"170\" text-anchor=\"end\">now</text>"
             "<polyline id=\"traffic-down\" class=\"down\" points=\"\"/>"
             "<polyline id=\"traffic-up\" class=\"up\" points=\"\"/>"
             "<polyline id=\"traffic-streams\" class=\"streams\" points=\"\"/></svg>\n"
             "<figcaption><ul class=\"legend\">"
             "<li><svg width=\"32\" height=\"8\" aria-hidden=\"true\"><line class=\"down\" "
             "x1=\"0\" y1=\"4\" x2=\"32\" y2=\"4\"/></svg> received (solid)</li>"
             "<li><svg width=\"32\" height=\"8\" aria-hidden=\"true\"><line class=\"up\" "
             "x1=\"0\" y1=\"4\" x2=\"32\" y2=\"4\"/></svg> sent (dashed)</li>"
             "<li><svg width=\"32\" height=\"8\" aria-hidden=\"true\"><line class=\"streams\" "
             "x1=\"0\" y1=\"4\" x2=\"32\" y2=\"4\"/></svg> open streams (dotted, own "
             "scale)</li></ul>\n"
             "<p id=\"traffic-text\" data-field=\"trafficText\" aria-live=\"polite\">"
             "No traffic yet.</p></figcaption>\n</figure>\n");
}

static void page_session(hbuf_t *b, const store_lease_t *l, json_t *s)
{
    json_t *profile = json_object_get(s, "profile");

    hbuf_raw(b, "<dl class=\"grid\" id=\"live\" data-status-url=\"/portal/api/leases/");
    hbuf_text(b, l->id);
    hbuf_raw(b, "/status\">\n<dt>State</dt><dd data-field=\"state\">");
    hbuf_text(b, json_str(s, "state"));
    hbuf_raw(b, "</dd>\n<dt>Profile</dt><dd>");
    hbuf_text(b, json_string_length(profile) ? json_string_value(profile) : "custom allowlist");
    hbuf_raw(b, "</dd>\n");
    page_conn(b, "host", "Host agent", json_is_true(json_object_get(s, "hostConnected")),
              json_string_value(json_object_get(s, "hostSince")));
    page_conn(b, "client", "Lease proxy", json_is_true(json_object_get(s, "clientConnected")),
              json_string_value(json_object_get(s, "clientSince")));
    hbuf_printf(b, "<dt>Open streams</dt><dd data-field=\"streams\">%lld</dd>\n",
                (long long) json_integer_value(json_object_get(s, "streams")));
    hbuf_raw(b, "<dt>Sent to sites</dt><dd data-field=\"bytesUp\">");
    page_bytes(b, (long long) json_integer_value(json_object_get(s, "bytesUp")));
    hbuf_raw(b, "</dd>\n<dt>Received from sites</dt><dd data-field=\"bytesDown\">");
    page_bytes(b, (long long) json_integer_value(json_object_get(s, "bytesDown")));
    hbuf_raw(b, "</dd>\n<dt>Session since</dt><dd><time data-field=\"createdAt\">");
    hbuf_text(b, json_str(s, "createdAt"));
    hbuf_raw(b, "</time></dd>\n<dt>Last change</dt><dd><time data-field=\"updatedAt\">");
    hbuf_text(b, json_str(s, "updatedAt"));
    hbuf_raw(b, "</time></dd>\n</dl>\n<p class=\"help\" data-field=\"checked\">"
                "Live: this page refreshes these values every few seconds.</p>\n");
    page_traffic(b);
    page_refused(b, s);
    page_destinations(b, s);
    page_allow(b, json_object_get(s, "allow"));
}

void portal_render_lease(hbuf_t *b, const portal_view_t *v, const store_lease_t *l,
                         access_e access, json_t *status, const char *flash)
{
    lease_state_e st = lease_effective_state(l);
    int active_session = status != NULL && strcmp(json_str(status, "state"), "active") == 0;

    page_begin(b, v, l->slug);
    hbuf_raw(b, "<p class=\"crumbs\"><a href=\"/portal/\">Leases</a></p>\n<h1>Lease <span "
                "class=\"slug\">");
    hbuf_text(b, l->slug);
    hbuf_raw(b, "</span></h1>\n");
    page_flash(b, flash);
    hbuf_raw(b, "<dl class=\"grid\">\n<dt>Lease ID</dt><dd><code>");
    hbuf_text(b, l->id);
    hbuf_raw(b, "</code></dd>\n<dt>State</dt><dd>");
    page_state(b, st);
    hbuf_raw(b, "</dd>\n<dt>Owner</dt><dd>");
    hbuf_text(b, l->owner);
    hbuf_raw(b, "</dd>\n<dt>Expires</dt><dd>");
    page_time(b, l->expires_at);
    hbuf_raw(b, "</dd>\n</dl>\n<section aria-labelledby=\"egress-h\">\n"
                "<h2 id=\"egress-h\">Egress</h2>\n");
    if (status != NULL) {
        page_session(b, l, status);
        hbuf_raw(b, "<h3>Commands</h3>\n");
        page_copyable(b, "cmd-status", "Check it", "egress status --id ", l->slug, "");
        page_copyable(b, "cmd-stop", "Stop it", "egress stop --id ", l->slug, "");
    }
    if (!active_session) {
        hbuf_raw(b, "<p id=\"no-session\">");
        hbuf_raw(b, status ? "This egress session is stopped. "
                           : "This lease has no egress session. ");
        if (st == LEASE_ACTIVE) {
            hbuf_raw(b, "To route the lease's browser through your workstation, run this "
                        "there, with a profile (<code>discord</code>, <code>slack</code>) "
                        "or <code>--allow HOSTS</code> in place of <code>--profile "
                        "NAME</code>:</p>\n");
            page_copyable(b, "cmd-start", "Start it", "egress start --id ", l->slug,
                          " --profile NAME");
        } else {
            hbuf_raw(b, "The lease is no longer active.</p>\n");
        }
    }
    hbuf_raw(b, "</section>\n");
    if (access == ACCESS_MANAGE && st == LEASE_ACTIVE) {
        hbuf_raw(b, "<section aria-labelledby=\"actions-h\" class=\"actions\">\n"
                    "<h2 id=\"actions-h\">Actions</h2>\n");
        if (active_session) {
            hbuf_raw(b, "<a class=\"button danger\" id=\"stop\" href=\"/portal/leases/");
            hbuf_text(b, l->id);
            hbuf_raw(b, "/stop\">Stop egress session…</a>\n");
        }
        hbuf_raw(b, "<a class=\"button danger\" id=\"release\" href=\"/portal/leases/");
        hbuf_text(b, l->id);
        hbuf_raw(b, "/release\">Release lease…</a>\n</section>\n");
    } else if (access != ACCESS_MANAGE) {
        hbuf_raw(b, "<p class=\"help\">Only the lease owner or an admin of its organization "
                    "can stop or release it.</p>\n");
    }
    page_end(b);
}

/* ---- confirmation and messages ---------------------------------------- */

void portal_render_confirm(hbuf_t *b, const portal_view_t *v, const store_lease_t *l,
                           int release)
{
    const char *what = release ? "Release lease" : "Stop egress session";

    page_begin(b, v, what);
    hbuf_raw(b, "<h1>");
    hbuf_raw(b, what);
    hbuf_raw(b, " <span class=\"slug\">");
    hbuf_text(b, l->slug);
    hbuf_raw(b, "</span>?</h1>\n<p>");
    hbuf_raw(b, release ? "The lease ends now: its egress session stops, the lease proxy and "
                          "the host agent disconnect, and the lease cannot be used again."
                        : "The lease proxy and the host agent disconnect and every open "
                          "connection through them closes. Starting egress again needs a "
                          "new <code>egress start</code>.");
    hbuf_raw(b, "</p>\n<form method=\"post\" class=\"confirm\" action=\"/portal/leases/");
    hbuf_text(b, l->id);
    hbuf_raw(b, release ? "/release\">" : "/stop\">");
    hbuf_raw(b, "<input type=\"hidden\" name=\"csrf\" value=\"");
    hbuf_text(b, v->csrf);
    hbuf_raw(b, "\"><button type=\"submit\" class=\"danger\" id=\"confirm\">");
    hbuf_raw(b, what);
    hbuf_raw(b, "</button> <a class=\"button\" href=\"/portal/leases/");
    hbuf_text(b, l->id);
    hbuf_raw(b, "\">Cancel</a></form>\n");
    page_end(b);
}

void portal_render_message(hbuf_t *b, const portal_view_t *v, const char *title,
                           const char *text)
{
    page_begin(b, v, title);
    hbuf_raw(b, "<h1>");
    hbuf_text(b, title);
    hbuf_raw(b, "</h1>\n<p>");
    hbuf_text(b, text);
    hbuf_raw(b, "</p>\n<p><a href=\"/portal/\">Back to leases</a></p>\n");
    page_end(b);
}
