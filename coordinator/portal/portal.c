/*
 * portal.c: the /portal/ routes: sign-in and sign-out, the lease list, the
 * lease page and its live status JSON, and the stop and release actions.
 *
 * Pages are rendered on the server with every value escaped; the script only
 * polls the status JSON and copies commands. Nothing here ever renders or
 * logs a token, ticket, resume secret or proxy URL.
 */

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress.h"
#include "front.h"
#include "portal.h"
#include "portal_form.h"
#include "metrics.h"
#include "ratelimit.h"
#include "http_reply.h"
#include "lease.h"

#define PORTAL_CSP                                                                             \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                \
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

/* Failed sign-ins per client address: a burst of 10, then one per 5 s. */
#define PORTAL_LOGIN_RATE  0.2
#define PORTAL_LOGIN_BURST 10

typedef struct {
    struct lws *wsi;
    http_req_t *req;
    store_token_t tok;
    int signed_in;
    char cookie[COORD_SECRET_BUF];
    char csrf[EGRESS_SHA256_HEX_LEN + 1];
} portal_req_t;

/* ---- responses --------------------------------------------------------- */

static int portal_send(portal_req_t *px, int status, const char *ctype, const char *body,
                       size_t len, const char *set_cookie, const char *location)
{
    const char *hdrs[16];
    size_t n = 0;

    hdrs[n++] = "content-security-policy:";
    hdrs[n++] = PORTAL_CSP;
    hdrs[n++] = "x-content-type-options:";
    hdrs[n++] = "nosniff";
    hdrs[n++] = "referrer-policy:";
    hdrs[n++] = "same-origin";
    hdrs[n++] = "x-frame-options:";
    hdrs[n++] = "DENY";
    if (set_cookie != NULL) {
        hdrs[n++] = "set-cookie:";
        hdrs[n++] = set_cookie;
    }
    if (location != NULL) {
        hdrs[n++] = "location:";
        hdrs[n++] = location;
    }
    hdrs[n] = NULL;
    return http_finish(px->wsi,
                       http_write_response_hdrs(px->wsi, status, ctype, hdrs, body, len));
}

/* Sends a rendered page, or a plain 500 when rendering ran out of room. */
static int portal_send_page(portal_req_t *px, int status, hbuf_t *b, const char *set_cookie)
{
    static const char oops[] = "internal error: page too large or out of memory\n";
    int rc;

    if (b->failed || b->data == NULL) {
        rc = portal_send(px, 500, "text/plain; charset=utf-8", oops, sizeof(oops) - 1, NULL,
                         NULL);
    } else {
        rc = portal_send(px, status, "text/html; charset=utf-8", b->data, b->len, set_cookie,
                         NULL);
    }
    hbuf_free(b);
    return rc;
}

static int portal_redirect(portal_req_t *px, const char *location, const char *set_cookie)
{
    hbuf_t b;
    int rc;

    hbuf_init(&b, 4096);
    hbuf_raw(&b, "<!doctype html><title>Redirect</title><a href=\"");
    hbuf_text(&b, location);
    hbuf_raw(&b, "\">Continue</a>\n");
    rc = portal_send(px, 303, "text/html; charset=utf-8", b.failed ? "" : b.data,
                     b.failed ? 0 : b.len, set_cookie, location);
    hbuf_free(&b);
    return rc;
}

static int portal_message(portal_req_t *px, int status, const char *title, const char *text)
{
    portal_view_t v = {px->signed_in ? &px->tok : NULL, px->csrf};
    hbuf_t b;

    hbuf_init(&b, PORTAL_PAGE_MAX);
    portal_render_message(&b, &v, title, text);
    return portal_send_page(px, status, &b, NULL);
}

static int portal_json(portal_req_t *px, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    int rc;

    json_decref(doc);
    if (text == NULL) {
        return -1;
    }
    rc = portal_send(px, status, "application/json", text, strlen(text), NULL, NULL);
    free(text);
    return rc;
}

static int portal_asset(portal_req_t *px, const char *ctype, const char *text)
{
    return portal_send(px, 200, ctype, text, strlen(text), NULL, NULL);
}

/* ---- sign-in state ----------------------------------------------------- */

/* The CSRF value is a MAC of the cookie: only a page that can read the
 * cookie's own pages can know it, and nothing extra is stored. */
static void portal_csrf_for(char out[EGRESS_SHA256_HEX_LEN + 1], const char *cookie)
{
    static const char label[] = "egress portal csrf v1";
    uint8_t mac[EGRESS_SHA256_LEN];

    egress_hmac_sha256(mac, cookie, strlen(cookie), label, sizeof(label) - 1);
    egress_hex_encode(out, mac, sizeof(mac));
}

/* Reads the sign-in cookie: 0 signed in (px->tok set), 1 not, -1 database error. */
static int portal_auth(portal_req_t *px)
{
    char hdr[2048], hash[EGRESS_SHA256_HEX_LEN + 1], tok_hash[EGRESS_SHA256_HEX_LEN + 1];
    int n = lws_hdr_copy(px->wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_COOKIE);

    if (n <= 0) {
        return 1;
    }
    n = portal_cookie_get(hdr, (size_t) n, PORTAL_COOKIE, px->cookie, sizeof(px->cookie));
    if (n <= 4 || strncmp(px->cookie, "egp_", 4) != 0) {
        return 1;
    }
    egress_sha256_hex(hash, px->cookie, (size_t) n);
    if ((n = store_portal_get(hash, coord_now(), tok_hash, sizeof(tok_hash))) != 0) {
        return n;
    }
    if ((n = store_token_get(tok_hash, &px->tok)) != 0) {
        return n;
    }
    if (px->tok.revoked) {
        return 1;
    }
    portal_csrf_for(px->csrf, px->cookie);
    px->signed_in = 1;
    return 0;
}

/* A browser's POST must come from our own pages: its Origin, when sent, is
 * this server (and the form carries the CSRF value: portal_csrf_ok). */
static int portal_origin_ok(portal_req_t *px)
{
    char origin[256], host[256], want[300];
    int n = lws_hdr_copy(px->wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);

    if (n == 0) {
        return 1; /* not a browser, or a same-origin GET-style request */
    }
    if (n < 0 || lws_hdr_copy(px->wsi, host, sizeof(host), WSI_TOKEN_HOST) <= 0) {
        return 0;
    }
    snprintf(want, sizeof(want), "%s://%s", front_is_tls(px->wsi) ? "https" : "http", host);
    return strcmp(origin, want) == 0;
}

static int portal_csrf_ok(portal_req_t *px)
{
    char csrf[EGRESS_SHA256_HEX_LEN + 2];
    int n = portal_form_get(px->req->body, px->req->body_len, "csrf", csrf, sizeof(csrf));

    return n > 0 && egress_ct_streq(csrf, (size_t) n, px->csrf, strlen(px->csrf));
}

static int portal_form_body_ok(portal_req_t *px)
{
    char ctype[128];

    if (px->req->body_len == 0) {
        return 1;
    }
    return lws_hdr_copy(px->wsi, ctype, sizeof(ctype), WSI_TOKEN_HTTP_CONTENT_TYPE) > 0 &&
           strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0;
}

static void portal_cookie_header(portal_req_t *px, char *out, size_t cap, const char *value,
                                 int max_age)
{
    snprintf(out, cap, "%s=%s; Path=/portal; Max-Age=%d; HttpOnly; SameSite=Strict%s",
             PORTAL_COOKIE, value, max_age, front_is_tls(px->wsi) ? "; Secure" : "");
}

static int portal_login_page(portal_req_t *px, int status, const char *error)
{
    hbuf_t b;

    hbuf_init(&b, PORTAL_PAGE_MAX);
    portal_render_login(&b, error);
    return portal_send_page(px, status, &b, NULL);
}

static int portal_login(portal_req_t *px)
{
    char token[256], tok_hash[EGRESS_SHA256_HEX_LEN + 1], hash[EGRESS_SHA256_HEX_LEN + 1],
        value[COORD_SECRET_BUF], set_cookie[256], key[128], ip[64];
    store_token_t tok;
    int n;

    front_peer(px->wsi, ip, sizeof(ip));
    snprintf(key, sizeof(key), "portal:login:%s", ip);
    if (!ratelimit_peek(key, PORTAL_LOGIN_RATE, PORTAL_LOGIN_BURST)) {
        api_stats.rate_limited++;
        return portal_login_page(px, 429,
                                 "Too many failed sign-ins from this address. Wait a minute "
                                 "and try again.");
    }
    if (!portal_form_body_ok(px) || !portal_origin_ok(px)) {
        return portal_message(px, 403, "Refused", "This form must be sent from the portal.");
    }
    n = portal_form_get(px->req->body, px->req->body_len, "token", token, sizeof(token));
    if (n <= 0) {
        OPENSSL_cleanse(token, sizeof(token));
        return portal_login_page(px, 400, "Enter an API token.");
    }
    egress_sha256_hex(tok_hash, token, (size_t) n);
    OPENSSL_cleanse(token, sizeof(token));
    if ((n = store_token_get(tok_hash, &tok)) < 0) {
        return portal_message(px, 500, "Internal error", "The database failed; try again.");
    }
    if (n == 1 || tok.revoked) {
        ratelimit_take(key, PORTAL_LOGIN_RATE, PORTAL_LOGIN_BURST);
        coord_log("portal_signin_refused", "addr=%s", ip);
        return portal_login_page(px, 401, "That token is unknown or revoked.");
    }
    if (egress_token_new(value, sizeof(value), "egp_", COORD_SECRET_BYTES, NULL) < 0) {
        return portal_message(px, 500, "Internal error", "No randomness available.");
    }
    egress_sha256_hex(hash, value, strlen(value));
    if (store_portal_put(hash, tok_hash, coord_now() + PORTAL_SESSION_TTL) < 0) {
        OPENSSL_cleanse(value, sizeof(value));
        return portal_message(px, 500, "Internal error", "The database failed; try again.");
    }
    portal_cookie_header(px, set_cookie, sizeof(set_cookie), value, PORTAL_SESSION_TTL);
    OPENSSL_cleanse(value, sizeof(value));
    coord_log("portal_signin", "owner=%s org=%s addr=%s", tok.owner, tok.org, ip);
    n = portal_redirect(px, "/portal/", set_cookie);
    OPENSSL_cleanse(set_cookie, sizeof(set_cookie));
    return n;
}

static int portal_logout(portal_req_t *px)
{
    char hash[EGRESS_SHA256_HEX_LEN + 1], set_cookie[256];

    if (!portal_form_body_ok(px) || !portal_origin_ok(px) || !portal_csrf_ok(px)) {
        return portal_message(px, 403, "Refused",
                              "The sign-out form expired or came from elsewhere. Reload "
                              "the page and try again.");
    }
    egress_sha256_hex(hash, px->cookie, strlen(px->cookie));
    if (store_portal_delete(hash) < 0) {
        return portal_message(px, 500, "Internal error", "The database failed; try again.");
    }
    coord_log("portal_signout", "owner=%s org=%s", px->tok.owner, px->tok.org);
    portal_cookie_header(px, set_cookie, sizeof(set_cookie), "", 0);
    return portal_redirect(px, "/portal/login", set_cookie);
}

/* ---- pages ------------------------------------------------------------- */

typedef struct {
    portal_row_t *rows;
    size_t n;
    size_t total;
} portal_list_t;

static void portal_list_cb(const store_lease_t *l, void *arg)
{
    portal_list_t *pl = arg;

    pl->total++;
    if (pl->n < PORTAL_LEASES_MAX) {
        pl->rows[pl->n++].lease = *l;
    }
}

static int portal_leases(portal_req_t *px)
{
    portal_view_t v = {&px->tok, px->csrf};
    portal_list_t pl = {NULL, 0, 0};
    store_session_t s;
    hbuf_t b;
    size_t i;

    if ((pl.rows = calloc(PORTAL_LEASES_MAX, sizeof(*pl.rows))) == NULL) {
        return -1;
    }
    if (store_lease_list_org(px->tok.org, portal_list_cb, &pl) < 0) {
        free(pl.rows);
        return portal_message(px, 500, "Internal error", "The database failed; try again.");
    }
    for (i = 0; i < pl.n; i++) {
        pl.rows[i].egress = lease_effective_state(&pl.rows[i].lease) == LEASE_ACTIVE &&
                            store_session_get(pl.rows[i].lease.id, &s) == 0 &&
                            s.state == SESSION_ACTIVE;
    }
    hbuf_init(&b, PORTAL_PAGE_MAX);
    portal_render_leases(&b, &v, pl.rows, pl.n, pl.total);
    free(pl.rows);
    return portal_send_page(px, 200, &b, NULL);
}

/* Loads the lease `ref` for the signed-in token; answers (404, or 403 below
 * `need`) when it may not see or change it. */
static int portal_load_lease(portal_req_t *px, const char *ref, access_e need, int json,
                             store_lease_t *l, access_e *a, int *rc)
{
    if (lease_lookup(&px->tok, ref, l, a) < 0) {
        *rc = json ? portal_json(px, 500, json_pack("{s:s}", "error", "internal"))
                   : portal_message(px, 500, "Internal error", "The database failed.");
        return -1;
    }
    if (*a == ACCESS_NONE) {
        *rc = json ? portal_json(px, 404, json_pack("{s:s}", "error", "not_found"))
                   : portal_message(px, 404, "No such lease",
                                    "There is no lease by that name in your organization.");
        return -1;
    }
    if (*a < need) {
        *rc = portal_message(px, 403, "Not allowed",
                             "Only the lease owner or an admin of its organization may do "
                             "this.");
        return -1;
    }
    return 0;
}

static const char *portal_flash(portal_req_t *px)
{
    char buf[40];
    const char *arg = lws_get_urlarg_by_name(px->wsi, "done=", buf, sizeof(buf));

    if (arg == NULL) {
        return NULL;
    }
    if (strcmp(arg, "stopped") == 0) {
        return "The egress session was stopped.";
    }
    if (strcmp(arg, "released") == 0) {
        return "The lease was released.";
    }
    if (strcmp(arg, "nosession") == 0) {
        return "There was no egress session to stop.";
    }
    if (strcmp(arg, "gone") == 0) {
        return "The lease was already released or had expired.";
    }
    return NULL;
}

static int portal_lease(portal_req_t *px, const char *ref)
{
    portal_view_t v = {&px->tok, px->csrf};
    store_lease_t l;
    access_e a;
    json_t *status = NULL;
    hbuf_t b;
    int rc, n;

    if (portal_load_lease(px, ref, ACCESS_READ, 0, &l, &a, &rc) < 0) {
        return rc;
    }
    if ((n = lease_status_json(&l, &status)) < 0) {
        return portal_message(px, 500, "Internal error", "The database failed.");
    }
    hbuf_init(&b, PORTAL_PAGE_MAX);
    portal_render_lease(&b, &v, &l, a, n == 0 ? status : NULL, portal_flash(px));
    json_decref(status);
    return portal_send_page(px, 200, &b, NULL);
}

/* The live part of the lease page, polled by portal.js. */
static int portal_status(portal_req_t *px, const char *ref)
{
    store_lease_t l;
    access_e a;
    json_t *status = NULL;
    int rc, n;

    if (portal_load_lease(px, ref, ACCESS_READ, 1, &l, &a, &rc) < 0) {
        return rc;
    }
    if ((n = lease_status_json(&l, &status)) < 0) {
        return portal_json(px, 500, json_pack("{s:s}", "error", "internal"));
    }
    return portal_json(px, 200,
                       json_pack("{s:s, s:o}", "leaseState",
                                 store_lease_state_name(lease_effective_state(&l)), "session",
                                 n == 0 ? status : json_null()));
}

static int portal_confirm(portal_req_t *px, const char *ref, int release)
{
    portal_view_t v = {&px->tok, px->csrf};
    store_lease_t l;
    access_e a;
    hbuf_t b;
    int rc;

    if (portal_load_lease(px, ref, ACCESS_MANAGE, 0, &l, &a, &rc) < 0) {
        return rc;
    }
    hbuf_init(&b, PORTAL_PAGE_MAX);
    portal_render_confirm(&b, &v, &l, release);
    return portal_send_page(px, 200, &b, NULL);
}

static int portal_action(portal_req_t *px, const char *ref, int release)
{
    char location[128];
    store_lease_t l;
    store_session_t s;
    access_e a;
    const char *done;
    int rc, n;

    if (!portal_form_body_ok(px) || !portal_origin_ok(px) || !portal_csrf_ok(px)) {
        return portal_message(px, 403, "Refused",
                              "The form expired or came from elsewhere. Reload the lease "
                              "page and try again.");
    }
    if (portal_load_lease(px, ref, ACCESS_MANAGE, 0, &l, &a, &rc) < 0) {
        return rc;
    }
    n = release ? lease_release(&l) : lease_stop_session(&l, &s);
    if (n < 0) {
        return portal_message(px, 500, "Internal error", "The database failed; try again.");
    }
    if (release) {
        done = n == 0 ? "released" : "gone";
    } else {
        done = n == 0 ? "stopped" : "nosession";
    }
    coord_log("portal_action", "lease=%s action=%s result=%s owner=%s", l.id,
              release ? "release" : "stop", done, px->tok.owner);
    snprintf(location, sizeof(location), "/portal/leases/%s?done=%s", l.id, done);
    return portal_redirect(px, location, NULL);
}

/* ---- routing ----------------------------------------------------------- */

int portal_handle(struct lws *wsi, http_req_t *req)
{
    portal_req_t px;
    char ref[COORD_ID_MAX + 2];
    const char *path = req->path, *action;
    int get = req->method == LWSHUMETH_GET, post = req->method == LWSHUMETH_POST, n;

    memset(&px, 0, sizeof(px));
    px.wsi = wsi;
    px.req = req;
    if (!get && !post) {
        return portal_message(&px, 405, "Method not allowed", "Use GET or POST.");
    }
    if (strcmp(path, "/portal") == 0) {
        return portal_redirect(&px, "/portal/", NULL);
    }
    if (get && strcmp(path, "/portal/assets/portal.css") == 0) {
        return portal_asset(&px, "text/css; charset=utf-8", portal_css);
    }
    if (get && strcmp(path, "/portal/assets/portal.js") == 0) {
        return portal_asset(&px, "text/javascript; charset=utf-8", portal_js);
    }
    if ((n = portal_auth(&px)) < 0) {
        return portal_message(&px, 500, "Internal error", "The database failed.");
    }
    if (strcmp(path, "/portal/login") == 0) {
        if (post) {
            return portal_login(&px);
        }
        return px.signed_in ? portal_redirect(&px, "/portal/", NULL)
                            : portal_login_page(&px, 200, NULL);
    }
    if (!px.signed_in) {
        if (strncmp(path, "/portal/api/", 12) == 0) {
            return portal_json(&px, 401, json_pack("{s:s}", "error", "signed_out"));
        }
        return portal_redirect(&px, "/portal/login", NULL);
    }
    if (post && strcmp(path, "/portal/logout") == 0) {
        return portal_logout(&px);
    }
    if (get && strcmp(path, "/portal/") == 0) {
        return portal_leases(&px);
    }
    if (get && strncmp(path, "/portal/api/leases/", 19) == 0 &&
        lease_ref_split(path + 19, ref, sizeof(ref), &action) == 0 &&
        strcmp(action, "/status") == 0) {
        return portal_status(&px, ref);
    }
    if (strncmp(path, "/portal/leases/", 15) == 0 &&
        lease_ref_split(path + 15, ref, sizeof(ref), &action) == 0) {
        if (get && *action == '\0') {
            return portal_lease(&px, ref);
        }
        if (strcmp(action, "/stop") == 0 || strcmp(action, "/release") == 0) {
            return post ? portal_action(&px, ref, action[1] == 'r')
                        : portal_confirm(&px, ref, action[1] == 'r');
        }
    }
    return portal_message(&px, 404, "Not found", "There is no such page in the portal.");
}
