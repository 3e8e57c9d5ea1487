/*
 * http_api.c: the REST API (leases, tickets, status, stop, healthz, metrics)
 * and the request framing rules, without lws: server.c reads the request off
 * the socket, calls http_api_handle() and writes the response back (and hands
 * /portal/ to portal.c).
 *
 * Access rules: a token sees leases of its own org only (others: 404, so
 * existence does not leak across orgs); the lease owner and admins of the
 * lease's org may manage it (tickets, release, stop); other members of the
 * org may read it (GET lease, status) and get 403 on manage operations.
 */

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress.h"
#include "session.h"
#include "sessid.h"
#include "http_api.h"
#include "lease.h"
#include "metrics.h"
#include "ratelimit.h"

#define LEASE_TTL_MAX (30LL * 24 * 3600)

/* ---- responses --------------------------------------------------------- */

static int api_json(api_response_t *r, int status, json_t *doc)
{
    r->status = status;
    r->json = doc;
    return status;
}

static int api_error(api_response_t *r, int status, const char *error, const char *message)
{
    if (status == 429) {
        api_stats.rate_limited++;
    }
    return api_json(r, status, json_pack("{s:s, s:s}", "error", error, "message", message));
}

void api_response_free(api_response_t *r)
{
    json_decref(r->json);
    free(r->text);
    memset(r, 0, sizeof(*r));
}

/* ---- framing ----------------------------------------------------------- */

/*
 * lws reads a body by Content-Length and knows nothing of chunked bodies: a
 * Transfer-Encoding body would be read as the next request on the
 * connection, and a proxy in front that frames by Transfer-Encoding where we
 * frame by Content-Length is request smuggling. Only one plain decimal
 * Content-Length is accepted.
 */
int http_framing_check(const http_framing_t *f, size_t *len, const char **error,
                       const char **message)
{
    const char *p;
    size_t n = 0;

    *len = 0;
    *error = "bad_request";
    if (f->transfer_encoding) {
        *message = "Transfer-Encoding is not supported; send a Content-Length body";
        return 400;
    }
    if (f->content_length_count == 0) {
        return 0;
    }
    if (f->content_length_count > 1) {
        *message = "more than one Content-Length header";
        return 400;
    }
    p = f->content_length;
    if (p == NULL || *p == '\0') {
        *message = "invalid Content-Length";
        return 400;
    }
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            *message = "invalid Content-Length";
            return 400;
        }
        if (n <= COORD_BODY_MAX) { /* stop counting once too big: no overflow */
            n = n * 10 + (size_t) (*p - '0');
        }
    }
    if (n > COORD_BODY_MAX) {
        *error = "payload_too_large";
        *message = "request body exceeds 64 KiB";
        return 413;
    }
    *len = n;
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static json_t *lease_json(const store_lease_t *l)
{
    char created[32], expires[32];

    coord_time_format(created, sizeof(created), l->created_at);
    coord_time_format(expires, sizeof(expires), l->expires_at);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", l->id, "slug", l->slug,
                     "owner", l->owner, "org", l->org, "ssh", l->ssh, "state",
                     store_lease_state_name(lease_effective_state(l)), "createdAt", created,
                     "expiresAt", expires);
}

/* Authenticates the bearer token: 0, or -1 with the refusal in *r. */
static int authenticate(api_response_t *r, const char *auth, store_token_t *tok, char *tok_hash)
{
    int n;

    if (auth == NULL || strlen(auth) <= 7 || strncasecmp(auth, "Bearer ", 7) != 0) {
        api_error(r, 401, "unauthorized", "missing bearer token");
        return -1;
    }
    egress_sha256_hex(tok_hash, auth + 7, strlen(auth + 7));
    n = store_token_get(tok_hash, tok);
    if (n < 0) {
        api_error(r, 500, "internal", "database error");
        return -1;
    }
    if (n == 1 || tok->revoked) {
        api_error(r, 401, "unauthorized", "unknown or revoked token");
        return -1;
    }
    return 0;
}

/* Loads a lease the token may access at `need`; -1 with the refusal in *r. */
static int load_lease(api_response_t *r, const store_token_t *tok, const char *ref,
                      access_e need, store_lease_t *l)
{
    access_e a;

    if (lease_lookup(tok, ref, l, &a) < 0) {
        api_error(r, 500, "internal", "database error");
        return -1;
    }
    if (a == ACCESS_NONE) {
        api_error(r, 404, "not_found", "no such lease");
        return -1;
    }
    if (a < need) {
        api_error(r, 403, "forbidden", "only the lease owner or an org admin may do this");
        return -1;
    }
    return 0;
}

static int require_active(api_response_t *r, const store_lease_t *l)
{
    lease_state_e st = lease_effective_state(l);

    if (st != LEASE_ACTIVE) {
        api_error(r, 410, "lease_gone",
                  st == LEASE_RELEASED ? "lease was released" : "lease expired");
        return -1;
    }
    return 0;
}

/* Parses the body as a JSON object (an absent body is {}). A key given
 * twice is refused: which value wins differs between parsers, so a proxy or
 * log reader in front could see another request than we act on. */
static json_t *body_object(api_response_t *r, const api_request_t *rq)
{
    json_error_t je;
    json_t *j;

    if (rq->body_len == 0) {
        return json_object();
    }
    j = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL && json_error_code(&je) == json_error_duplicate_key) {
        api_error(r, 400, "bad_request", "duplicate key in the JSON body");
        return NULL;
    }
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        api_error(r, 400, "bad_request", "body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- routes ------------------------------------------------------------ */

static int route_lease_create(api_response_t *r, const api_request_t *rq,
                              const store_token_t *tok)
{
    store_lease_t l;
    json_t *body, *v;
    uint8_t rnd[12];
    int n;
    json_int_t ttl = 3600;

    if ((body = body_object(r, rq)) == NULL) {
        return r->status;
    }
    memset(&l, 0, sizeof(l));
    if ((v = json_object_get(body, "ttlSeconds")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > LEASE_TTL_MAX) {
            json_decref(body);
            return api_error(r, 400, "bad_request",
                             "ttlSeconds must be an integer from 1 to 2592000");
        }
        ttl = json_integer_value(v);
    }
    if ((v = json_object_get(body, "org")) != NULL &&
        (!json_is_string(v) || strcmp(json_string_value(v), tok->org) != 0)) {
        json_decref(body);
        return api_error(r, 403, "forbidden",
                         "a token can create leases in its own "
                         "org only");
    }
    if ((v = json_object_get(body, "ssh")) != NULL) {
        if (!json_is_string(v) || json_string_length(v) >= sizeof(l.ssh)) {
            json_decref(body);
            return api_error(r, 400, "bad_request", "ssh must be a string (< 256 bytes)");
        }
        snprintf(l.ssh, sizeof(l.ssh), "%s", json_string_value(v));
    }
    if (egress_random_bytes(rnd, sizeof(rnd), NULL) < 0 ||
        egress_random_bytes(l.key, sizeof(l.key), NULL) < 0) {
        json_decref(body);
        return api_error(r, 500, "internal", "no randomness");
    }
    memcpy(l.id, "lease_", 6);
    l.id[6 + egress_base64url_encode(l.id + 6, rnd, sizeof(rnd))] = '\0';
    if ((v = json_object_get(body, "slug")) != NULL) {
        if (!json_is_string(v) ||
            !coord_id_valid(json_string_value(v), json_string_length(v))) {
            json_decref(body);
            return api_error(r, 400, "bad_request", "slug must match [A-Za-z0-9_-]{1,64}");
        }
        snprintf(l.slug, sizeof(l.slug), "%s", json_string_value(v));
    } else {
        snprintf(l.slug, sizeof(l.slug), "%s", l.id);
    }
    json_decref(body);
    snprintf(l.owner, sizeof(l.owner), "%s", tok->owner);
    snprintf(l.org, sizeof(l.org), "%s", tok->org);
    l.state = LEASE_ACTIVE;
    l.created_at = coord_now();
    l.expires_at = l.created_at + ttl;
    if (strncmp(l.slug, "lease_", 6) == 0 && strcmp(l.slug, l.id) != 0) {
        return api_error(r, 400, "bad_request", "slugs may not start with lease_");
    }
    n = store_lease_insert(&l);
    if (n == 1) {
        return api_error(r, 409, "conflict", "slug already in use");
    }
    if (n < 0) {
        return api_error(r, 500, "internal", "database error");
    }
    coord_log("lease_created", "lease=%s slug=%s owner=%s org=%s ttl=%lld", l.id, l.slug,
              l.owner, l.org, (long long) ttl);
    return api_json(r, 201, lease_json(&l));
}

typedef struct {
    json_t *arr;
} list_ctx_t;

static void list_cb(const store_lease_t *l, void *arg)
{
    json_array_append_new(((list_ctx_t *) arg)->arr, lease_json(l));
}

static int route_lease_list(api_response_t *r, const store_token_t *tok)
{
    list_ctx_t ctx = {json_array()};

    if (store_lease_list_org(tok->org, list_cb, &ctx) < 0) {
        json_decref(ctx.arr);
        return api_error(r, 500, "internal", "database error");
    }
    return api_json(r, 200, json_pack("{s:o}", "leases", ctx.arr));
}

static int route_lease_release(api_response_t *r, const store_lease_t *l)
{
    store_lease_t copy = *l;

    if (require_active(r, l) < 0) {
        return r->status;
    }
    if (lease_release(l) < 0) {
        return api_error(r, 500, "internal", "database error");
    }
    copy.state = LEASE_RELEASED;
    return api_json(r, 200, lease_json(&copy));
}

/* Validates profile and allow; fills the session's metadata fields. */
static int ticket_metadata(api_response_t *r, json_t *body, store_session_t *s, int *have)
{
    json_t *v, *item;
    size_t i;
    egress_allow_t *al;
    egress_error_t err;
    char *text;

    *have = 0;
    if ((v = json_object_get(body, "profile")) != NULL && !json_is_null(v)) {
        if (!json_is_string(v) || egress_profile_patterns(json_string_value(v)) == NULL) {
            api_error(r, 400, "bad_request", "unknown profile");
            return -1;
        }
        snprintf(s->profile, sizeof(s->profile), "%s", json_string_value(v));
        *have = 1;
    }
    if ((v = json_object_get(body, "allow")) != NULL && !json_is_null(v)) {
        if (!json_is_array(v) || json_array_size(v) > EGRESS_ALLOW_MAX_PATTERNS) {
            api_error(r, 400, "bad_request", "allow must be an array of patterns");
            return -1;
        }
        al = egress_allow_new();
        if (al == NULL) {
            api_error(r, 500, "internal", "out of memory");
            return -1;
        }
        json_array_foreach(v, i, item)
        {
            if (!json_is_string(item) || egress_allow_add(al, json_string_value(item),
                                                          json_string_length(item), &err) < 0) {
                egress_allow_free(al);
                api_error(r, 400, "bad_request",
                          json_is_string(item) ? err.message : "allow items must be strings");
                return -1;
            }
        }
        egress_allow_free(al);
        text = json_dumps(v, JSON_COMPACT);
        if (text == NULL || strlen(text) >= sizeof(s->allow)) {
            free(text);
            api_error(r, 400, "bad_request", "allow list too long");
            return -1;
        }
        snprintf(s->allow, sizeof(s->allow), "%s", text);
        free(text);
        *have = 1;
    }
    return 0;
}

/* PUT .../egress/allow {sessionID, allow}: the host agent reports the list it
 * enforces after a reload, so status and the portal show what is in force. */
static int route_allow(api_response_t *r, const api_request_t *rq, store_lease_t *l)
{
    store_session_t cur, meta;
    json_t *body, *v;
    int n, have_meta;

    if (require_active(r, l) < 0) {
        return r->status;
    }
    if ((body = body_object(r, rq)) == NULL) {
        return r->status;
    }
    memset(&meta, 0, sizeof(meta));
    v = json_object_get(body, "sessionID");
    if (!json_is_string(v) || !json_is_array(json_object_get(body, "allow"))) {
        json_decref(body);
        return api_error(r, 400, "bad_request", "need sessionID and allow");
    }
    if (ticket_metadata(r, body, &meta, &have_meta) < 0) {
        json_decref(body);
        return r->status;
    }
    n = store_session_get(l->id, &cur);
    if (n < 0) {
        json_decref(body);
        return api_error(r, 500, "internal", "database error");
    }
    if (n == 1 || strcmp(cur.session_id, json_string_value(v)) != 0 ||
        cur.state == SESSION_STOPPED) {
        json_decref(body);
        return api_error(r, 409, "egress_session_replaced",
                         "not the lease's current egress session");
    }
    json_decref(body);
    snprintf(cur.allow, sizeof(cur.allow), "%s", meta.allow);
    cur.updated_at = coord_now();
    if (store_session_put(&cur) < 0) {
        return api_error(r, 500, "internal", "database error");
    }
    coord_log("allow_reported", "lease=%s session=%s", l->id, cur.session_id);
    if ((v = json_loads(cur.allow, 0, NULL)) == NULL) {
        v = json_array();
    }
    return api_json(r, 200, json_pack("{s:o}", "allow", v));
}

/* Whether sid has our own shape (then only sessid_verify() may accept it). */
static int is_own_id(const char *sid)
{
    return strncmp(sid, SESSID_PREFIX, sizeof(SESSID_PREFIX) - 1) == 0;
}

/*
 * Starts a new session for the lease at the next generation, replacing the
 * current one (prev, or NULL when there is none). Its id is one of ours, or
 * `name`, a crabbox id its client proposed: that name is bound to the
 * generation for good first, so a name that ever had a session cannot start
 * another (409, as crabbox answers for a replaced id) and two tickets minted
 * with the same new name meet in one session. 0 with *out filled, or -1 with
 * the refusal in *r. prev may point at *out (it is read first).
 */
static int ticket_new_session(api_response_t *r, const store_lease_t *l,
                              const store_session_t *meta, const char *name,
                              const store_session_t *prev, store_session_t *out)
{
    int64_t gen = l->generation + 1, bound = 0, now = coord_now();
    int n;

    if (prev != NULL && prev->generation >= gen) {
        gen = prev->generation + 1;
    }
    if (name != NULL) {
        n = store_session_name_claim(l->id, name, gen, &bound);
        if (n < 0) {
            api_error(r, 500, "internal", "database error");
            return -1;
        }
        if (n == 1) {
            /* another instance may be creating it right now: look once more */
            if (bound >= gen && store_session_get(l->id, out) == 0 &&
                strcmp(out->session_id, name) == 0 && out->state == SESSION_ACTIVE) {
                return 0;
            }
            api_error(r, 409, "egress_session_replaced",
                      "a newer egress session replaced this one");
            return -1;
        }
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->lease_id, sizeof(out->lease_id), "%s", l->id);
    if (name != NULL) {
        snprintf(out->session_id, sizeof(out->session_id), "%s", name);
    } else if (sessid_make(out->session_id, sizeof(out->session_id), l->key, l->id, gen) < 0) {
        api_error(r, 500, "internal", "no randomness");
        return -1;
    }
    out->generation = gen;
    snprintf(out->profile, sizeof(out->profile), "%s", meta->profile);
    snprintf(out->allow, sizeof(out->allow), "%s", meta->allow[0] ? meta->allow : "[]");
    out->state = SESSION_ACTIVE;
    out->created_at = out->updated_at = now;
    lease_teardown(l->id, EGRESS_CLOSE_SESSION_REPLACED, "egress_session_replaced");
    if (store_lease_set_generation(l->id, gen) < 0 || store_session_put(out) < 0) {
        api_error(r, 500, "internal", "database error");
        return -1;
    }
    coord_log("session_created", "lease=%s session=%s generation=%lld%s", l->id,
              out->session_id, (long long) gen, name != NULL ? " proposed=1" : "");
    return 0;
}

static int route_ticket(api_response_t *r, const api_request_t *rq, const store_token_t *tok,
                        const char *tok_hash, store_lease_t *l)
{
    store_session_t cur, meta;
    store_ticket_t t;
    json_t *body, *v;
    const char *sid = NULL;
    char role[8], key[160], ticket[COORD_SECRET_BUF], hash[EGRESS_SHA256_HEX_LEN + 1],
        expires[32];
    int rc, n, have_meta;
    int64_t now = coord_now(), gen;

    if (require_active(r, l) < 0) {
        return r->status;
    }
    snprintf(key, sizeof(key), "mint:lease:%s", l->id);
    if (!ratelimit_take(key, coord_cfg.mint_rate, coord_cfg.mint_burst)) {
        return api_error(r, 429, "rate_limited", "too many tickets for this lease");
    }
    snprintf(key, sizeof(key), "mint:token:%s", tok_hash);
    if (!ratelimit_take(key, coord_cfg.mint_rate, coord_cfg.mint_burst)) {
        return api_error(r, 429, "rate_limited", "too many tickets for this token");
    }
    if ((body = body_object(r, rq)) == NULL) {
        return r->status;
    }
    v = json_object_get(body, "role");
    snprintf(role, sizeof(role), "%s", json_is_string(v) ? json_string_value(v) : "");
    if (strcmp(role, "host") != 0 && strcmp(role, "client") != 0) {
        json_decref(body);
        return api_error(r, 400, "bad_request", "role must be \"host\" or \"client\"");
    }
    memset(&meta, 0, sizeof(meta));
    if (ticket_metadata(r, body, &meta, &have_meta) < 0) {
        json_decref(body);
        return r->status;
    }
    v = json_object_get(body, "sessionID");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v)) {
            json_decref(body);
            return api_error(r, 400, "bad_request", "sessionID must be a string");
        }
        sid = json_string_value(v);
    }
    n = store_session_get(l->id, &cur);
    if (n < 0) {
        json_decref(body);
        return api_error(r, 500, "internal", "database error");
    }
    if (sid != NULL && !is_own_id(sid) && sessid_foreign_valid(sid, strlen(sid)) &&
        (n == 1 || strcmp(sid, cur.session_id) != 0)) {
        /* crabbox's shape, not the current session: a new session under it */
        if (ticket_new_session(r, l, &meta, sid, n == 0 ? &cur : NULL, &cur) < 0) {
            json_decref(body);
            return r->status;
        }
    } else if (sid != NULL) {
        if (!is_own_id(sid) && sessid_foreign_valid(sid, strlen(sid))) {
            gen = cur.generation; /* the current session, under a crabbox id */
        } else {
            int vr = sessid_verify(sid, strlen(sid), l->key, l->id, &gen);
            if (vr < 0) {
                json_decref(body);
                return api_error(r, 400, "bad_request",
                                 vr == -1 ? "malformed sessionID"
                                          : "sessionID does not belong to this lease");
            }
        }
        if (n == 1 || gen > cur.generation ||
            (gen == cur.generation && strcmp(sid, cur.session_id) != 0)) {
            json_decref(body);
            return api_error(r, 400, "bad_request", "unknown sessionID");
        }
        if (gen < cur.generation) {
            json_decref(body);
            return api_error(r, 409, "egress_session_replaced",
                             "a newer egress session replaced this one");
        }
        if (cur.state == SESSION_STOPPED) {
            json_decref(body);
            return api_error(r, 409, "egress_session_stopped",
                             "this egress session was stopped");
        }
        if (have_meta) {
            if (json_object_get(body, "profile")) {
                snprintf(cur.profile, sizeof(cur.profile), "%s", meta.profile);
            }
            if (json_object_get(body, "allow")) {
                snprintf(cur.allow, sizeof(cur.allow), "%s", meta.allow);
            }
        }
        cur.updated_at = now;
        if (store_session_put(&cur) < 0) {
            json_decref(body);
            return api_error(r, 500, "internal", "database error");
        }
    } else if (ticket_new_session(r, l, &meta, NULL, n == 0 ? &cur : NULL, &cur) < 0) {
        json_decref(body);
        return r->status;
    }
    json_decref(body);

    if (egress_token_new(ticket, sizeof(ticket), "egt_", COORD_SECRET_BYTES, NULL) < 0) {
        return api_error(r, 500, "internal", "no randomness");
    }
    egress_sha256_hex(hash, ticket, strlen(ticket));
    memset(&t, 0, sizeof(t));
    snprintf(t.lease_id, sizeof(t.lease_id), "%s", l->id);
    snprintf(t.session_id, sizeof(t.session_id), "%s", cur.session_id);
    snprintf(t.role, sizeof(t.role), "%s", role);
    snprintf(t.owner, sizeof(t.owner), "%s", tok->owner);
    snprintf(t.org, sizeof(t.org), "%s", tok->org);
    t.expires_at = now + coord_cfg.ticket_ttl;
    if (store_ticket_insert(hash, &t) < 0) {
        return api_error(r, 500, "internal", "database error");
    }
    api_stats.tickets_minted++;
    coord_log("ticket_minted", "lease=%s session=%s role=%s owner=%s", l->id, cur.session_id,
              role, tok->owner);
    coord_time_format(expires, sizeof(expires), t.expires_at);
    rc = api_json(r, 201,
                  json_pack("{s:s, s:s, s:s, s:s, s:s}", "ticket", ticket, "leaseID", l->id,
                            "role", role, "sessionID", cur.session_id, "expiresAt", expires));
    OPENSSL_cleanse(ticket, sizeof(ticket));
    return rc;
}

static int route_status(api_response_t *r, const store_lease_t *l)
{
    json_t *doc = NULL;
    int n = lease_status_json(l, &doc);

    if (n < 0) {
        return api_error(r, 500, "internal", "database error");
    }
    if (n == 1) {
        return api_error(r, 404, "not_found", "this lease has no egress session");
    }
    return api_json(r, 200, doc);
}

static int route_stop(api_response_t *r, const store_lease_t *l)
{
    store_session_t s;
    int n = lease_stop_session(l, &s);

    if (n < 0) {
        return api_error(r, 500, "internal", "database error");
    }
    if (n == 1) {
        return api_error(r, 404, "not_found", "this lease has no egress session");
    }
    return api_json(r, 200,
                    json_pack("{s:s, s:s, s:b}", "leaseID", l->id, "sessionID", s.session_id,
                              "stopped", 1));
}

int http_is_portal_path(const char *path)
{
    return strncmp(path, "/portal", 7) == 0 && (path[7] == '\0' || path[7] == '/');
}

int http_api_handle(const api_request_t *rq, api_response_t *r)
{
    store_token_t tok;
    store_lease_t l;
    char tok_hash[EGRESS_SHA256_HEX_LEN + 1], ref[COORD_ID_MAX + 2];
    const char *path = rq->path, *rest;
    int m = rq->method;

    memset(r, 0, sizeof(*r));
    if (strcmp(path, "/healthz") == 0) {
        return api_json(r, 200, json_pack("{s:b, s:s}", "ok", 1, "version", EGRESS_VERSION));
    }
    if (strcmp(path, "/metrics") == 0) {
        r->text = metrics_render(&r->text_len);
        r->ctype = "text/plain; version=0.0.4";
        r->status = r->text != NULL ? 200 : 500;
        return r->status;
    }
    if (strncmp(path, "/v1/leases", 10) != 0 || (path[10] != '\0' && path[10] != '/')) {
        return api_error(r, 404, "not_found", "no such route");
    }
    if (authenticate(r, rq->auth, &tok, tok_hash) < 0) {
        return r->status;
    }
    if (strcmp(path, "/v1/leases") == 0 || strcmp(path, "/v1/leases/") == 0) {
        if (m == LWSHUMETH_POST) {
            return route_lease_create(r, rq, &tok);
        }
        if (m == LWSHUMETH_GET) {
            return route_lease_list(r, &tok);
        }
        return api_error(r, 405, "method_not_allowed", "use GET or POST");
    }
    if (lease_ref_split(path + strlen("/v1/leases/"), ref, sizeof(ref), &rest) < 0) {
        return api_error(r, 404, "not_found", "no such lease");
    }
    if (*rest == '\0' && m == LWSHUMETH_GET) {
        if (load_lease(r, &tok, ref, ACCESS_READ, &l) < 0) {
            return r->status;
        }
        return api_json(r, 200, lease_json(&l));
    }
    if (strcmp(rest, "/release") == 0 && m == LWSHUMETH_POST) {
        if (load_lease(r, &tok, ref, ACCESS_MANAGE, &l) < 0) {
            return r->status;
        }
        return route_lease_release(r, &l);
    }
    if (strcmp(rest, "/egress/ticket") == 0 && m == LWSHUMETH_POST) {
        if (load_lease(r, &tok, ref, ACCESS_MANAGE, &l) < 0) {
            return r->status;
        }
        return route_ticket(r, rq, &tok, tok_hash, &l);
    }
    if (strcmp(rest, "/egress/allow") == 0 && m == LWSHUMETH_PUT) {
        if (load_lease(r, &tok, ref, ACCESS_MANAGE, &l) < 0) {
            return r->status;
        }
        return route_allow(r, rq, &l);
    }
    if (strcmp(rest, "/egress/status") == 0 && m == LWSHUMETH_GET) {
        if (load_lease(r, &tok, ref, ACCESS_READ, &l) < 0) {
            return r->status;
        }
        return route_status(r, &l);
    }
    if (strcmp(rest, "/egress") == 0 && m == LWSHUMETH_DELETE) {
        if (load_lease(r, &tok, ref, ACCESS_MANAGE, &l) < 0) {
            return r->status;
        }
        return route_stop(r, &l);
    }
    if (strcmp(rest, "/egress/host") == 0 || strcmp(rest, "/egress/client") == 0) {
        return api_error(r, 400, "bad_request", "this endpoint needs a WebSocket upgrade");
    }
    return api_error(r, 404, "not_found", "no such route");
}
