/*
 * ws_bridge.c: agent WebSocket upgrades (authorization) and socket events.
 *
 * front.c reads an upgrade request's head and calls ws_upgrade(), where the
 * ticket or resume secret is checked and consumed and the answer is made:
 * the 101 with the chosen subprotocol, or a refusal as a plain HTTP response
 * with a JSON body. ws_open() then joins the socket (agent_sock.c) to its
 * session; the socket's frames come back here as events.
 */

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent_sock.h"
#include "egress.h"
#include "egress_upgrade.h"
#include "session.h"
#include "lease.h"
#include "metrics.h"
#include "owner.h"
#include "ratelimit.h"
#include "ws_bridge.h"
#include "store.h"

/* ---- the answer -------------------------------------------------------- */

static const char *ws_status_text(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 429:
        return "Too Many Requests";
    default:
        return "Internal Server Error";
    }
}

/*
 * Makes the answer to a refused upgrade. `lease` names the lease in the log
 * (as written when it resolved to none); `bucket` is the resolved lease id
 * whose failure bucket the refusal charges, NULL when the name is no lease:
 * then only the address pays, so junk for a name nobody holds cannot drain
 * the bucket of the lease that takes the name later.
 */
static int refuse_to(ws_upgrade_t *up, const char *lease, const char *bucket, const char *role,
                     int status, const char *error, const char *message)
{
    char key[160], lkey[160], *text;
    const char *keys[2] = {key, lkey};
    json_t *j;
    int n;

    api_stats.upgrades_refused[metrics_status_index(status)]++;
    if (status == 429) {
        api_stats.rate_limited++;
    } else if (status != 400 && status != 503) {
        /* Failed attempts (not a lease moving between instances) feed the per-address and
         * per-lease limits (one round trip with PostgreSQL). */
        snprintf(key, sizeof(key), "fail:addr:%s", up->ip);
        if (bucket != NULL) {
            snprintf(lkey, sizeof(lkey), "fail:lease:%s", bucket);
        }
        ratelimit_charge(keys, bucket != NULL ? 2 : 1, coord_cfg.fail_rate,
                         coord_cfg.fail_burst);
    }
    coord_log("upgrade_refused", "lease=%s role=%s addr=%s status=%d error=%s reason=\"%s\"",
              lease, role, up->ip, status, error, message);
    j = json_pack("{s:s, s:s}", "error", error, "message", message);
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    n = snprintf(up->response, sizeof(up->response),
                 "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n"
                 "cache-control: no-store\r\nconnection: close\r\n\r\n%s",
                 status, ws_status_text(status), text ? strlen(text) : 0, text ? text : "");
    free(text);
    up->response_len = n > 0 && (size_t) n < sizeof(up->response) ? (size_t) n : 0;
    return 1;
}

/* A refusal for the known lease lease_id. */
static int refuse(ws_upgrade_t *up, const char *lease_id, const char *role, int status,
                  const char *error, const char *message)
{
    return refuse_to(up, lease_id, lease_id, role, status, error, message);
}

/* Copies the first header called name; "" when absent or too long. */
static void header(const ws_upgrade_t *up, const char *name, char *out, size_t cap)
{
    const egress_http_field_t *f = egress_http_head_get(up->head, name, NULL);

    out[0] = '\0';
    if (f != NULL && f->value_len < cap) {
        memcpy(out, f->value, f->value_len);
        out[f->value_len] = '\0';
    }
}

/*
 * The subprotocol: the first egress version the client offers (over all
 * its Sec-WebSocket-Protocol lines); v1 without the header. Returns the
 * version, 0 when the header offers none, and sets *named when one is to be
 * echoed in the 101.
 */
static int subprotocol_pick(const ws_upgrade_t *up, int *named)
{
    size_t i;

    *named = 0;
    if (egress_http_head_get(up->head, "sec-websocket-protocol", NULL) == NULL) {
        return EGRESS_PROTO_V1;
    }
    for (i = 0; i < up->head->nfields; i++) {
        const egress_http_field_t *f = &up->head->fields[i];
        const char *p = f->value, *end = f->value + f->value_len;

        if (f->name_len != 22 || strncasecmp(f->name, "sec-websocket-protocol", 22) != 0) {
            continue;
        }
        while (p < end) {
            const char *q = memchr(p, ',', (size_t) (end - p));
            const char *e = q ? q : end;

            while (p < e && (*p == ' ' || *p == '\t')) {
                p++;
            }
            while (e > p && (e[-1] == ' ' || e[-1] == '\t')) {
                e--;
            }
            if (e - p == 9 && memcmp(p, "egress.v", 8) == 0 && (p[8] == '1' || p[8] == '2')) {
                *named = 1;
                return p[8] == '2' ? EGRESS_PROTO_V2 : EGRESS_PROTO_V1;
            }
            p = q ? q + 1 : end;
        }
    }
    return 0;
}

/* Checks that the lease's current session is sid and active; else refuses. */
static int check_session(ws_upgrade_t *up, const char *lease, const char *role, const char *sid,
                         int *rc)
{
    store_session_t s;
    int n = store_session_get(lease, &s);

    if (n < 0) {
        *rc = refuse(up, lease, role, 500, "internal", "database error");
        return -1;
    }
    if (n == 1 || strcmp(s.session_id, sid) != 0) {
        *rc = refuse(up, lease, role, 409, "egress_session_replaced",
                     "a newer egress session replaced this one");
        return -1;
    }
    if (s.state != SESSION_ACTIVE) {
        *rc = refuse(up, lease, role, 409, "egress_session_stopped",
                     "this egress session was stopped");
        return -1;
    }
    return 0;
}

/* The 101, with the subprotocol when the client named one. */
static int ws_accept(ws_upgrade_t *up, const char *lease_id, const char *session_id,
                     int role_id, int named)
{
    char key[128], accept[EGRESS_UPGRADE_ACCEPT_SZ], features[256];
    int n;

    header(up, "sec-websocket-key", key, sizeof(key));
    if (egress_upgrade_accept_for(key, accept) < 0) {
        return -1;
    }
    n = snprintf(
        up->response, sizeof(up->response),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
        accept, named ? "Sec-WebSocket-Protocol: " : "",
        named ? (up->version == EGRESS_PROTO_V2 ? EGRESS_SUBPROTO_V2 : EGRESS_SUBPROTO_V1) : "",
        named ? "\r\n" : "");
    if (n <= 0 || (size_t) n >= sizeof(up->response)) {
        return -1;
    }
    up->response_len = (size_t) n;
    snprintf(up->lease_id, sizeof(up->lease_id), "%s", lease_id);
    snprintf(up->session_id, sizeof(up->session_id), "%s", session_id);
    up->role = role_id;
    /* X-Egress-Features names what an agent can do beyond the protocol's
     * floor (a comma-separated list; unknown names are ignored). */
    header(up, "x-egress-features", features, sizeof(features));
    up->early_data = role_id == ROLE_HOST &&
                     egress_upgrade_has_token(features, strlen(features), "early-data");
    return 0;
}

/* Method, version and the WebSocket headers themselves; 0 when fine. */
static int ws_request_ok(const ws_upgrade_t *up, const char **message)
{
    const egress_http_head_t *h = up->head;
    const egress_http_field_t *f;
    char v[64];
    int count;

    if (h->method_len != 3 || memcmp(h->method, "GET", 3) != 0 || h->minor < 1) {
        *message = "a WebSocket upgrade is a GET over HTTP/1.1";
        return -1;
    }
    f = egress_http_head_get(h, "connection", NULL);
    if (f == NULL || !egress_upgrade_has_token(f->value, f->value_len, "upgrade")) {
        *message = "Connection: Upgrade is missing";
        return -1;
    }
    header(up, "sec-websocket-version", v, sizeof(v));
    if (strcmp(v, "13") != 0) {
        *message = "Sec-WebSocket-Version must be 13";
        return -1;
    }
    f = egress_http_head_get(h, "sec-websocket-key", &count);
    if (f == NULL || count != 1 || f->value_len != 24) {
        *message = "Sec-WebSocket-Key is missing or malformed";
        return -1;
    }
    return 0;
}

int ws_upgrade(ws_upgrade_t *up)
{
    char uri[256], ref[COORD_ID_MAX + 2], key[160], lkey[160], upgrade[64];
    char auth[512], cred[512], hash[EGRESS_SHA256_HEX_LEN + 1], other[COORD_INSTANCE_MAX];
    const char *p, *slash, *role, *message;
    const egress_http_head_t *h = up->head;
    store_lease_t l;
    store_ticket_t t;
    store_resume_t r;
    const char *bucket, *keys[2];
    int role_id, n, rc, via_resume, named, owned;
    size_t len;

    /* Only HTTP/1.1 WebSocket upgrades; h2c would bypass this check. */
    header(up, "upgrade", upgrade, sizeof(upgrade));
    if (strcasecmp(upgrade, "websocket") != 0) {
        return refuse_to(up, "-", NULL, "-", 400, "bad_request",
                         "only WebSocket upgrades are served (no h2c)");
    }
    if (ws_request_ok(up, &message) < 0) {
        return refuse_to(up, "-", NULL, "-", 400, "bad_request", message);
    }
    if (h->target_len >= sizeof(uri)) {
        return refuse_to(up, "-", NULL, "-", 404, "not_found", "no such WebSocket endpoint");
    }
    memcpy(uri, h->target, h->target_len);
    uri[h->target_len] = '\0';
    if (strncmp(uri, "/v1/leases/", 11) != 0) {
        return refuse_to(up, "-", NULL, "-", 404, "not_found", "no such WebSocket endpoint");
    }
    p = uri + 11;
    slash = strchr(p, '/');
    len = slash ? (size_t) (slash - p) : 0;
    if (slash == NULL || !coord_id_valid(p, len) ||
        (strcmp(slash, "/egress/host") != 0 && strcmp(slash, "/egress/client") != 0)) {
        return refuse_to(up, "-", NULL, "-", 404, "not_found", "no such WebSocket endpoint");
    }
    memcpy(ref, p, len);
    ref[len] = '\0';
    role_id = strcmp(slash, "/egress/host") == 0 ? ROLE_HOST : ROLE_CLIENT;
    role = role_name(role_id);

    up->version = subprotocol_pick(up, &named);
    if (up->version == 0) {
        return refuse_to(up, ref, NULL, role, 400, "bad_request",
                         "Sec-WebSocket-Protocol must offer egress.v2 or egress.v1");
    }
    /* One failure bucket per lease, by id or slug alike (see refuse_to). */
    n = store_lease_get(ref, &l);
    if (n < 0) {
        return refuse_to(up, ref, NULL, role, 500, "internal", "database error");
    }
    bucket = n == 0 ? l.id : NULL;
    /* Both buckets in one look (one round trip with PostgreSQL). */
    snprintf(key, sizeof(key), "fail:addr:%s", up->ip);
    keys[0] = key;
    if (bucket != NULL) {
        snprintf(lkey, sizeof(lkey), "fail:lease:%s", bucket);
        keys[1] = lkey;
    }
    if (!ratelimit_peek_all(keys, bucket != NULL ? 2 : 1, coord_cfg.fail_rate,
                            coord_cfg.fail_burst)) {
        return refuse_to(up, ref, bucket, role, 429, "rate_limited",
                         "too many failed upgrades");
    }

    /*
     * The credential: X-Egress-Ticket (or crabbox's X-Crabbox-Bridge-Ticket),
     * else X-Egress-Resume, else an egt_ ticket in Authorization. The
     * dedicated headers win because an access proxy in front may own
     * Authorization for its own token.
     */
    via_resume = 0;
    header(up, "x-egress-ticket", cred, sizeof(cred));
    if (cred[0] == '\0') {
        header(up, "x-crabbox-bridge-ticket", cred, sizeof(cred));
    }
    if (cred[0] == '\0') {
        header(up, "x-egress-resume", cred, sizeof(cred));
        via_resume = cred[0] != '\0';
    }
    header(up, "authorization", auth, sizeof(auth));
    if (cred[0] == '\0' && strncasecmp(auth, "Bearer egt_", 11) == 0) {
        snprintf(cred, sizeof(cred), "%s", auth + 7);
    }
    OPENSSL_cleanse(auth, sizeof(auth));
    if (cred[0] == '\0') {
        return refuse_to(up, ref, bucket, role, 401, "unauthorized",
                         "a ticket or resume secret is required");
    }
    egress_sha256_hex(hash, cred, strlen(cred));
    OPENSSL_cleanse(cred, sizeof(cred));
    if (bucket == NULL) {
        return refuse_to(up, ref, NULL, role, 404, "not_found", "no such lease");
    }
    if (lease_effective_state(&l) != LEASE_ACTIVE) {
        return refuse(up, l.id, role, 410, "lease_gone",
                      lease_effective_state(&l) == LEASE_RELEASED ? "lease was released"
                                                                  : "lease expired");
    }
    /* Before the credential is spent: a refusal here leaves it valid for the retry. */
    switch (owner_admit(l.id, role, hash, via_resume, other, sizeof(other))) {
    case OWNER_ADMIT:
        owned = 1;
        break;
    case OWNER_ELSEWHERE:
        snprintf(key, sizeof(key), "lease is moving from instance %s; retry", other);
        return refuse(up, l.id, role, 503, "lease_moving", key);
    case OWNER_BAD_CREDENTIAL:
        owned = 0; /* the spend below fails and says why */
        break;
    default:
        return refuse(up, l.id, role, 500, "internal", "database error");
    }

    if (!via_resume) {
        n = store_ticket_consume(hash, &t);
        if (n < 0) {
            return refuse(up, l.id, role, 500, "internal", "database error");
        }
        if (n == 1 || t.used || t.expires_at <= coord_now()) {
            api_stats.tickets_rejected++;
            return refuse(up, l.id, role, 401, "unauthorized",
                          n == 1   ? "unknown ticket"
                          : t.used ? "ticket already used"
                                   : "ticket expired");
        }
        if (strcmp(t.lease_id, l.id) != 0) {
            api_stats.tickets_rejected++;
            return refuse(up, l.id, role, 403, "forbidden", "ticket is for another lease");
        }
        if (strcmp(t.role, role) != 0) {
            api_stats.tickets_rejected++;
            return refuse(up, l.id, role, 403, "forbidden", "ticket is for the other role");
        }
        if (strcmp(t.org, l.org) != 0) {
            api_stats.tickets_rejected++;
            return refuse(up, l.id, role, 403, "forbidden", "ticket owner has no access");
        }
        if (check_session(up, l.id, role, t.session_id, &rc) < 0) {
            return rc;
        }
        if (!owned) { /* a credential invalid a moment ago cannot be spent now */
            return refuse(up, l.id, role, 503, "lease_moving",
                          "lease ownership changed; retry");
        }
        if (ws_accept(up, l.id, t.session_id, role_id, named) < 0) {
            return refuse(up, l.id, role, 400, "bad_request", "Sec-WebSocket-Key is malformed");
        }
        api_stats.tickets_consumed++;
        coord_log("ticket_consumed", "lease=%s session=%s role=%s addr=%s", l.id, t.session_id,
                  role, up->ip);
        return 0;
    }
    n = store_resume_take(hash, &r);
    if (n < 0) {
        return refuse(up, l.id, role, 500, "internal", "database error");
    }
    if (n == 1 || strcmp(r.lease_id, l.id) != 0 || strcmp(r.role, role) != 0) {
        api_stats.resumes_rejected++;
        return refuse(up, l.id, role, 401, "unauthorized", "unknown resume secret");
    }
    if (check_session(up, l.id, role, r.session_id, &rc) < 0) {
        api_stats.resumes_rejected++;
        return rc;
    }
    if (!owned) {
        return refuse(up, l.id, role, 503, "lease_moving", "lease ownership changed; retry");
    }
    if (ws_accept(up, l.id, r.session_id, role_id, named) < 0) {
        return refuse(up, l.id, role, 400, "bad_request", "Sec-WebSocket-Key is malformed");
    }
    api_stats.resumes_accepted++;
    coord_log("resume_accepted", "lease=%s session=%s role=%s addr=%s", l.id, r.session_id,
              role, up->ip);
    return 0;
}

/* ---- agent sockets ----------------------------------------------------- */

int ws_open(agent_sock_t *sock, const ws_upgrade_t *up)
{
    char resume[COORD_SECRET_BUF] = "", hash[EGRESS_SHA256_HEX_LEN + 1];
    store_session_t cur;
    store_resume_t r;
    session_t *s;
    conn_t *c;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -1;
    }
    c->sock = sock;
    c->role = up->role;
    c->version = up->version;
    snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", up->ip);
    c->early_data = up->early_data;
    agent_sock_set_conn(sock, c);

    if (store_session_get(up->lease_id, &cur) != 0 ||
        strcmp(cur.session_id, up->session_id) != 0 || cur.state != SESSION_ACTIVE) {
        conn_close(c, EGRESS_CLOSE_SESSION_REPLACED, "egress_session_replaced");
        return 0;
    }
    s = session_get(up->lease_id, up->session_id);
    if (s == NULL) {
        return -1;
    }
    if (c->version == EGRESS_PROTO_V2) {
        /* A fresh resume secret replaces the previous one of this role. */
        if (egress_token_new(resume, sizeof(resume), "egr_", COORD_SECRET_BYTES, NULL) < 0) {
            session_maybe_free(s);
            return -1;
        }
        egress_sha256_hex(hash, resume, strlen(resume));
        memset(&r, 0, sizeof(r));
        snprintf(r.lease_id, sizeof(r.lease_id), "%s", up->lease_id);
        snprintf(r.session_id, sizeof(r.session_id), "%s", up->session_id);
        snprintf(r.role, sizeof(r.role), "%s", role_name(c->role));
        if (store_resume_put(hash, &r) < 0) {
            OPENSSL_cleanse(resume, sizeof(resume));
            session_maybe_free(s);
            return -1;
        }
    } else if (store_resume_drop_role(up->lease_id, role_name(c->role)) < 0) {
        /* v1 has no hello to carry a secret: the role's previous one dies. */
        session_maybe_free(s);
        return -1;
    }
    if (session_attach(s, c, c->version == EGRESS_PROTO_V2 ? resume : NULL) < 0) {
        OPENSSL_cleanse(resume, sizeof(resume));
        return -1; /* attached: the socket's end detaches and frees */
    }
    OPENSSL_cleanse(resume, sizeof(resume));
    store_session_touch(up->lease_id, coord_now());
    coord_log("socket_open", "lease=%s session=%s role=%s protocol=%s addr=%s", up->lease_id,
              up->session_id, role_name(c->role),
              c->version == EGRESS_PROTO_V2 ? EGRESS_SUBPROTO_V2 : EGRESS_SUBPROTO_V1,
              c->peer_addr);
    return 0;
}

/* The socket is going away (we may wait for the close handshake): leave the
 * session now so the peer hears about it at once. */
static void ws_leave(conn_t *c, const char *why)
{
    if (c->sess != NULL) {
        coord_log("socket_closed", "lease=%s session=%s role=%s addr=%s why=%s",
                  c->sess->lease_id, c->sess->session_id, role_name(c->role), c->peer_addr,
                  why);
        store_session_touch(c->sess->lease_id, coord_now());
        session_detach(c);
    }
}

/* Ends c for a bad message: the peer hears at once, and the close frame goes
 * out from the writable event while what the agent still sends is read and
 * dropped; closing at once would reset the connection over that unread
 * input and the agent would never see the close code. */
static void ws_refuse(conn_t *c, int code, const char *reason, const char *why)
{
    ws_leave(c, why);
    conn_close(c, code, reason);
}

void ws_on_message(conn_t *c, msg_t *m)
{
    int code = session_on_message(c, m);

    if (code != 0) {
        ws_refuse(c, code, code == EGRESS_CLOSE_TOO_BIG ? "message too big" : "malformed frame",
                  code == EGRESS_CLOSE_TOO_BIG ? "too_big" : "policy");
    }
}

void ws_on_bad_frame(conn_t *c, int code, const char *why)
{
    coord_log("frame_rejected", "lease=%s role=%s error=%s", c->sess ? c->sess->lease_id : "-",
              role_name(c->role), why);
    session_stats.frames_rejected++;
    ws_refuse(c, code, code == EGRESS_CLOSE_TOO_BIG ? "message too big" : "protocol error",
              code == EGRESS_CLOSE_TOO_BIG ? "too_big" : "protocol");
}

void ws_on_peer_close(conn_t *c, int code)
{
    ws_leave(c, "closed");
    /* echo the agent's code, as RFC 6455 5.5.1 asks */
    conn_close(c, code == 1005 ? EGRESS_CLOSE_NORMAL : code, "");
}

void ws_on_gone(conn_t *c)
{
    ws_leave(c, "closed");
    conn_free_queues(c);
    free(c);
}
