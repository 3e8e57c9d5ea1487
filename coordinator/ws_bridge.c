/*
 * ws_bridge.c: agent WebSocket upgrades (authorization) and socket events.
 *
 * lws calls LWS_CALLBACK_HTTP_CONFIRM_UPGRADE on the HTTP protocol while the
 * request headers are still available; that is where the ticket or resume
 * secret is checked and consumed, and where a refusal is answered as a plain
 * HTTP response with a JSON body. The result waits in a small table keyed by
 * the wsi until LWS_CALLBACK_ESTABLISHED on the egress.v1/v2 protocol.
 */

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress.h"
#include "session.h"
#include "http_reply.h"
#include "lease.h"
#include "metrics.h"
#include "owner.h"
#include "ratelimit.h"
#include "ws_bridge.h"
#include "store.h"

#define PENDING_MAX 64

typedef struct {
    struct lws *wsi;
    char lease_id[COORD_ID_MAX + 1];
    char session_id[COORD_SESSION_MAX];
    int role;
    int64_t at_ms;
} pending_t;

static pending_t pending[PENDING_MAX];

static void pending_put(struct lws *wsi, const char *lease_id, const char *session_id, int role)
{
    pending_t *p = NULL, *oldest = &pending[0];
    int i;

    /* The same wsi, else a free slot, else the oldest (an abandoned upgrade). */
    for (i = 0; i < PENDING_MAX && p == NULL; i++) {
        if (pending[i].wsi == wsi) {
            p = &pending[i];
        }
    }
    for (i = 0; i < PENDING_MAX && p == NULL; i++) {
        if (pending[i].wsi == NULL) {
            p = &pending[i];
        } else if (pending[i].at_ms < oldest->at_ms) {
            oldest = &pending[i];
        }
    }
    if (p == NULL) {
        p = oldest;
    }
    p->wsi = wsi;
    snprintf(p->lease_id, sizeof(p->lease_id), "%s", lease_id);
    snprintf(p->session_id, sizeof(p->session_id), "%s", session_id);
    p->role = role;
    p->at_ms = coord_mono_ms();
}

/* An authorized upgrade becomes a socket within the same service pass;
 * anything older is an abandoned upgrade whose wsi address may be reused. */
#define PENDING_TTL_MS 5000

static int pending_take(struct lws *wsi, pending_t *out)
{
    int i;

    for (i = 0; i < PENDING_MAX; i++) {
        if (pending[i].wsi == wsi) {
            *out = pending[i];
            memset(&pending[i], 0, sizeof(pending[i]));
            return coord_mono_ms() - out->at_ms <= PENDING_TTL_MS ? 0 : -1;
        }
    }
    return -1;
}

void ws_forget_upgrade(struct lws *wsi)
{
    pending_t unused;

    pending_take(wsi, &unused);
}

/* ---- upgrade authorization --------------------------------------------- */

/*
 * Answers a refused upgrade. `lease` names the lease in the log (as written
 * when it resolved to none); `bucket` is the resolved lease id whose failure
 * bucket the refusal charges, NULL when the name is no lease: then only the
 * address pays, so junk for a name nobody holds cannot drain the bucket of
 * the lease that takes the name later.
 */
static int refuse_to(struct lws *wsi, const char *lease, const char *bucket, const char *role,
                     int status, const char *error, const char *message)
{
    char key[160], *text;
    json_t *j;
    int rc;
    char ip[64] = "";

    lws_get_peer_simple(wsi, ip, sizeof(ip));
    api_stats.upgrades_refused[metrics_status_index(status)]++;
    if (status == 429) {
        api_stats.rate_limited++;
    } else if (status != 400 && status != 503) {
        /* Failed attempts (not a lease moving between instances) feed the per-lease and
         * per-address limits. */
        if (bucket != NULL) {
            snprintf(key, sizeof(key), "fail:lease:%s", bucket);
            ratelimit_take(key, coord_cfg.fail_rate, coord_cfg.fail_burst);
        }
        snprintf(key, sizeof(key), "fail:addr:%s", ip);
        ratelimit_take(key, coord_cfg.fail_rate, coord_cfg.fail_burst);
    }
    coord_log("upgrade_refused", "lease=%s role=%s addr=%s status=%d error=%s reason=\"%s\"",
              lease, role, ip, status, error, message);
    j = json_pack("{s:s, s:s}", "error", error, "message", message);
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        return -1;
    }
    rc = http_write_response(wsi, status, "application/json", text, strlen(text));
    free(text);
    return rc < 0 ? -1 : 1;
}

/* A refusal for the known lease lease_id. */
static int refuse(struct lws *wsi, const char *lease_id, const char *role, int status,
                  const char *error, const char *message)
{
    return refuse_to(wsi, lease_id, lease_id, role, status, error, message);
}

/* Copies a header value; "" when absent or too long. */
static void header(struct lws *wsi, enum lws_token_indexes tok, const char *custom, char *out,
                   size_t cap)
{
    int n;

    out[0] = '\0';
    if (custom != NULL) {
        n = lws_hdr_custom_length(wsi, custom, (int) strlen(custom));
        if (n <= 0 || (size_t) n >= cap) {
            return;
        }
        if (lws_hdr_custom_copy(wsi, out, (int) cap, custom, (int) strlen(custom)) < 0) {
            out[0] = '\0';
        }
        return;
    }
    n = lws_hdr_total_length(wsi, tok);
    if (n <= 0 || (size_t) n >= cap || lws_hdr_copy(wsi, out, (int) cap, tok) < 0) {
        out[0] = '\0';
    }
}

/* 1 when the Sec-WebSocket-Protocol list is absent or names an egress version. */
static int subprotocol_ok(struct lws *wsi)
{
    char buf[256];
    const char *p;

    if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) <= 0) {
        return 1;
    }
    header(wsi, WSI_TOKEN_PROTOCOL, NULL, buf, sizeof(buf));
    for (p = buf; (p = strstr(p, "egress.v")) != NULL; p++) {
        if ((p[8] == '1' || p[8] == '2') && (p[9] == '\0' || p[9] == ',' || p[9] == ' ')) {
            return 1;
        }
    }
    return 0;
}

/* Checks that the lease's current session is sid and active; else refuses. */
static int check_session(struct lws *wsi, const char *lease, const char *role, const char *sid,
                         int *rc)
{
    store_session_t s;
    int n = store_session_get(lease, &s);

    if (n < 0) {
        *rc = refuse(wsi, lease, role, 500, "internal", "database error");
        return -1;
    }
    if (n == 1 || strcmp(s.session_id, sid) != 0) {
        *rc = refuse(wsi, lease, role, 409, "egress_session_replaced",
                     "a newer egress session replaced this one");
        return -1;
    }
    if (s.state != SESSION_ACTIVE) {
        *rc = refuse(wsi, lease, role, 409, "egress_session_stopped",
                     "this egress session was stopped");
        return -1;
    }
    return 0;
}

int ws_confirm_upgrade(struct lws *wsi, const char *upgrade)
{
    char uri[256], ref[COORD_ID_MAX + 2], key[160], ip[64] = "";
    char auth[512], cred[512], hash[EGRESS_SHA256_HEX_LEN + 1], other[COORD_INSTANCE_MAX];
    const char *p, *slash, *role;
    store_lease_t l;
    store_ticket_t t;
    store_resume_t r;
    const char *bucket;
    int role_id, n, rc, via_resume, owned;
    size_t len;

    /* Only HTTP/1.1 WebSocket upgrades; h2c would bypass this check. */
    if (upgrade == NULL || strcasecmp(upgrade, "websocket") != 0) {
        return refuse_to(wsi, "-", NULL, "-", 400, "bad_request",
                         "only WebSocket upgrades are served (no h2c)");
    }
    header(wsi, WSI_TOKEN_GET_URI, NULL, uri, sizeof(uri));
    if (strncmp(uri, "/v1/leases/", 11) != 0) {
        return refuse_to(wsi, "-", NULL, "-", 404, "not_found", "no such WebSocket endpoint");
    }
    p = uri + 11;
    slash = strchr(p, '/');
    len = slash ? (size_t) (slash - p) : 0;
    if (slash == NULL || !coord_id_valid(p, len) ||
        (strcmp(slash, "/egress/host") != 0 && strcmp(slash, "/egress/client") != 0)) {
        return refuse_to(wsi, "-", NULL, "-", 404, "not_found", "no such WebSocket endpoint");
    }
    memcpy(ref, p, len);
    ref[len] = '\0';
    role_id = strcmp(slash, "/egress/host") == 0 ? ROLE_HOST : ROLE_CLIENT;
    role = role_name(role_id);

    if (!subprotocol_ok(wsi)) {
        return refuse_to(wsi, ref, NULL, role, 400, "bad_request",
                         "Sec-WebSocket-Protocol must offer egress.v2 or egress.v1");
    }
    /* One failure bucket per lease, by id or slug alike (see refuse_to). */
    n = store_lease_get(ref, &l);
    if (n < 0) {
        return refuse_to(wsi, ref, NULL, role, 500, "internal", "database error");
    }
    bucket = n == 0 ? l.id : NULL;
    lws_get_peer_simple(wsi, ip, sizeof(ip));
    if (bucket != NULL) {
        snprintf(key, sizeof(key), "fail:lease:%s", bucket);
        if (!ratelimit_peek(key, coord_cfg.fail_rate, coord_cfg.fail_burst)) {
            return refuse_to(wsi, ref, bucket, role, 429, "rate_limited",
                             "too many failed upgrades");
        }
    }
    snprintf(key, sizeof(key), "fail:addr:%s", ip);
    if (!ratelimit_peek(key, coord_cfg.fail_rate, coord_cfg.fail_burst)) {
        return refuse_to(wsi, ref, bucket, role, 429, "rate_limited",
                         "too many failed upgrades");
    }

    /*
     * The credential: X-Egress-Ticket (or crabbox's X-Crabbox-Bridge-Ticket),
     * else X-Egress-Resume, else an egt_ ticket in Authorization. The
     * dedicated headers win because an access proxy in front may own
     * Authorization for its own token.
     */
    via_resume = 0;
    header(wsi, WSI_TOKEN_COUNT, "x-egress-ticket:", cred, sizeof(cred));
    if (cred[0] == '\0') {
        header(wsi, WSI_TOKEN_COUNT, "x-crabbox-bridge-ticket:", cred, sizeof(cred));
    }
    if (cred[0] == '\0') {
        header(wsi, WSI_TOKEN_COUNT, "x-egress-resume:", cred, sizeof(cred));
        via_resume = cred[0] != '\0';
    }
    header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, NULL, auth, sizeof(auth));
    if (cred[0] == '\0' && strncasecmp(auth, "Bearer egt_", 11) == 0) {
        snprintf(cred, sizeof(cred), "%s", auth + 7);
    }
    OPENSSL_cleanse(auth, sizeof(auth));
    if (cred[0] == '\0') {
        return refuse_to(wsi, ref, bucket, role, 401, "unauthorized",
                         "a ticket or resume secret is required");
    }
    egress_sha256_hex(hash, cred, strlen(cred));
    OPENSSL_cleanse(cred, sizeof(cred));
    if (bucket == NULL) {
        return refuse_to(wsi, ref, NULL, role, 404, "not_found", "no such lease");
    }
    if (lease_effective_state(&l) != LEASE_ACTIVE) {
        return refuse(wsi, l.id, role, 410, "lease_gone",
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
        return refuse(wsi, l.id, role, 503, "lease_moving", key);
    case OWNER_BAD_CREDENTIAL:
        owned = 0; /* the spend below fails and says why */
        break;
    default:
        return refuse(wsi, l.id, role, 500, "internal", "database error");
    }

    if (!via_resume) {
        n = store_ticket_consume(hash, &t);
        if (n < 0) {
            return refuse(wsi, l.id, role, 500, "internal", "database error");
        }
        if (n == 1 || t.used || t.expires_at <= coord_now()) {
            api_stats.tickets_rejected++;
            return refuse(wsi, l.id, role, 401, "unauthorized",
                          n == 1   ? "unknown ticket"
                          : t.used ? "ticket already used"
                                   : "ticket expired");
        }
        if (strcmp(t.lease_id, l.id) != 0) {
            api_stats.tickets_rejected++;
            return refuse(wsi, l.id, role, 403, "forbidden", "ticket is for another lease");
        }
        if (strcmp(t.role, role) != 0) {
            api_stats.tickets_rejected++;
            return refuse(wsi, l.id, role, 403, "forbidden", "ticket is for the other role");
        }
        if (strcmp(t.org, l.org) != 0) {
            api_stats.tickets_rejected++;
            return refuse(wsi, l.id, role, 403, "forbidden", "ticket owner has no access");
        }
        if (check_session(wsi, l.id, role, t.session_id, &rc) < 0) {
            return rc;
        }
        if (!owned) { /* a credential invalid a moment ago cannot be spent now */
            return refuse(wsi, l.id, role, 503, "lease_moving",
                          "lease ownership changed; retry");
        }
        api_stats.tickets_consumed++;
        pending_put(wsi, l.id, t.session_id, role_id);
        coord_log("ticket_consumed", "lease=%s session=%s role=%s addr=%s", l.id, t.session_id,
                  role, ip);
        return 0;
    }
    n = store_resume_take(hash, &r);
    if (n < 0) {
        return refuse(wsi, l.id, role, 500, "internal", "database error");
    }
    if (n == 1 || strcmp(r.lease_id, l.id) != 0 || strcmp(r.role, role) != 0) {
        api_stats.resumes_rejected++;
        return refuse(wsi, l.id, role, 401, "unauthorized", "unknown resume secret");
    }
    if (check_session(wsi, l.id, role, r.session_id, &rc) < 0) {
        api_stats.resumes_rejected++;
        return rc;
    }
    if (!owned) {
        return refuse(wsi, l.id, role, 503, "lease_moving", "lease ownership changed; retry");
    }
    api_stats.resumes_accepted++;
    pending_put(wsi, l.id, r.session_id, role_id);
    coord_log("resume_accepted", "lease=%s session=%s role=%s addr=%s", l.id, r.session_id,
              role, ip);
    return 0;
}

/* ---- agent sockets ----------------------------------------------------- */

/* Bytes the kernel may hold unsent on an agent socket: what is beyond stays
 * in our queue, where control frames can still pass it (conn_enqueue). */
#define WS_NOTSENT_LOWAT (128 * 1024)

static void ws_bound_unsent(struct lws *wsi)
{
#ifdef TCP_NOTSENT_LOWAT
    int v = WS_NOTSENT_LOWAT;

    /* best effort: without it the order is only kept in our own queue */
    (void) setsockopt(lws_get_socket_fd(wsi), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v));
#else
    (void) wsi;
#endif
}

/* X-Egress-Features names what an agent can do beyond the protocol's floor
 * (a comma-separated list; unknown names are ignored). */
static int ws_has_feature(struct lws *wsi, const char *name)
{
    char list[256];

    header(wsi, WSI_TOKEN_COUNT, "x-egress-features:", list, sizeof(list));
    return egress_upgrade_has_token(list, strlen(list), name);
}

static int ws_established(struct lws *wsi, conn_t **slot)
{
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    char resume[COORD_SECRET_BUF] = "", hash[EGRESS_SHA256_HEX_LEN + 1];
    store_session_t cur;
    store_resume_t r;
    pending_t pend;
    session_t *s;
    conn_t *c;

    if (pending_take(wsi, &pend) < 0) {
        return -1; /* no authorized upgrade behind this socket */
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -1;
    }
    c->wsi = wsi;
    c->role = pend.role;
    c->version =
        strcmp(proto->name, EGRESS_SUBPROTO_V2) == 0 ? EGRESS_PROTO_V2 : EGRESS_PROTO_V1;
    lws_get_peer_simple(wsi, c->peer_addr, sizeof(c->peer_addr));
    ws_bound_unsent(wsi);
    c->early_data = c->role == ROLE_HOST && ws_has_feature(wsi, "early-data");
    *slot = c;

    if (store_session_get(pend.lease_id, &cur) != 0 ||
        strcmp(cur.session_id, pend.session_id) != 0 || cur.state != SESSION_ACTIVE) {
        conn_close(c, EGRESS_CLOSE_SESSION_REPLACED, "egress_session_replaced");
        return 0;
    }
    s = session_get(pend.lease_id, pend.session_id);
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
        snprintf(r.lease_id, sizeof(r.lease_id), "%s", pend.lease_id);
        snprintf(r.session_id, sizeof(r.session_id), "%s", pend.session_id);
        snprintf(r.role, sizeof(r.role), "%s", role_name(c->role));
        if (store_resume_put(hash, &r) < 0) {
            OPENSSL_cleanse(resume, sizeof(resume));
            session_maybe_free(s);
            return -1;
        }
    } else if (store_resume_drop_role(pend.lease_id, role_name(c->role)) < 0) {
        /* v1 has no hello to carry a secret: the role's previous one dies. */
        session_maybe_free(s);
        return -1;
    }
    if (session_attach(s, c, c->version == EGRESS_PROTO_V2 ? resume : NULL) < 0) {
        OPENSSL_cleanse(resume, sizeof(resume));
        return -1; /* attached: LWS_CALLBACK_CLOSED detaches and frees */
    }
    OPENSSL_cleanse(resume, sizeof(resume));
    store_session_touch(pend.lease_id, coord_now());
    coord_log("socket_open", "lease=%s session=%s role=%s protocol=%s addr=%s", pend.lease_id,
              pend.session_id, role_name(c->role), proto->name, c->peer_addr);
    return 0;
}

/* The socket is going away (lws may wait for the close handshake): leave the
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
 * out from the writable callback while lws keeps reading (and we drop) what
 * the agent still sends; closing at once would reset the connection over
 * that unread input and the agent would never see the close code. */
static void ws_refuse(conn_t *c, int code, const char *reason, const char *why)
{
    ws_leave(c, why);
    free(c->rx);
    c->rx = NULL;
    conn_close(c, code, reason);
}

static int ws_receive(conn_t *c, struct lws *wsi, const void *in, size_t len)
{
    size_t remaining = lws_remaining_packet_payload(wsi);
    msg_t *m = c->rx;
    int code;

    c->heard = 1; /* any traffic proves the agent alive, not only a pong */

    if (m == NULL) {
        size_t want = len + remaining;
        if (want > EGRESS_MAX_MESSAGE) {
            want = EGRESS_MAX_MESSAGE;
        }
        m = c->rx = msg_new(want < 256 ? 256 : want);
        if (m == NULL) {
            return -1;
        }
        m->binary = lws_frame_is_binary(wsi) ? 1 : 0;
    }
    if (m->len + len > EGRESS_MAX_MESSAGE) {
        coord_log("frame_rejected", "lease=%s role=%s error=too_large",
                  c->sess ? c->sess->lease_id : "-", role_name(c->role));
        session_stats.frames_rejected++;
        ws_refuse(c, EGRESS_CLOSE_TOO_BIG, "message too big", "too_big");
        return 0;
    }
    if (m->len + len > m->cap) {
        size_t cap = m->cap * 2;
        msg_t *nm;
        if (cap < m->len + len + remaining) {
            cap = m->len + len + remaining;
        }
        if (cap > EGRESS_MAX_MESSAGE) {
            cap = EGRESS_MAX_MESSAGE;
        }
        nm = realloc(m, sizeof(*m) + LWS_PRE + cap);
        if (nm == NULL) {
            return -1;
        }
        m = c->rx = nm;
        m->cap = cap;
    }
    memcpy(MSG_DATA(m) + m->len, in, len);
    m->len += len;
    if (!lws_is_final_fragment(wsi) || remaining != 0) {
        return 0;
    }
    c->rx = NULL;
    code = session_on_message(c, m);
    if (code != 0) {
        ws_refuse(c, code, code == EGRESS_CLOSE_TOO_BIG ? "message too big" : "malformed frame",
                  code == EGRESS_CLOSE_TOO_BIG ? "too_big" : "policy");
        return 0;
    }
    return 0;
}

int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                size_t len)
{
    conn_t **slot = (conn_t **) user;
    conn_t *c = slot ? *slot : NULL;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        return ws_established(wsi, slot);

    case LWS_CALLBACK_RECEIVE:
        if (c == NULL) {
            return -1;
        }
        if (c->close_code) {
            return 0; /* closing: ignore what is still in flight */
        }
        return ws_receive(c, wsi, in, len);

    case LWS_CALLBACK_RECEIVE_PONG:
        if (c != NULL) {
            c->heard = 1;
        }
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (c == NULL) {
            return -1;
        }
        return session_on_writable(c);

    case LWS_CALLBACK_CLOSED:
        if (c != NULL) {
            ws_leave(c, "closed");
            conn_free_queues(c);
            free(c);
            *slot = NULL;
        }
        return 0;

    default:
        return 0;
    }
}
