/*
 * bridge.c: the host agent's one WebSocket to the coordinator (libwebsockets
 * client on the agent's libuv loop): upgrade with a ticket or resume secret,
 * the FIFO of outgoing messages, reassembly and dispatch of incoming frames,
 * and the reconnect policy (capped exponential backoff with jitter; fatal
 * answers end the agent).
 */

#include <stdlib.h>
#include <string.h>

#include "host.h"

#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS  15000

/* ---- messages -------------------------------------------------------------------- */

wsmsg_t *bridge_msg_new(agent_t *ag, size_t len)
{
    wsmsg_t *m;

    if (len <= EGRESS_CHUNK_CAP && ag->msgpool) {
        m = ag->msgpool;
        ag->msgpool = m->next;
        ag->nmsgpool--;
    } else {
        size_t cap = len <= EGRESS_CHUNK_CAP ? EGRESS_CHUNK_CAP : len;
        if ((m = malloc(sizeof(*m) + LWS_PRE + cap)) == NULL)
            return NULL;
        m->cap = (uint32_t) cap;
    }
    m->next = NULL;
    m->len = 0;
    m->binary = 0;
    m->stream_id = 0;
    return m;
}

void bridge_msg_free(agent_t *ag, wsmsg_t *m)
{
    if (m->cap == EGRESS_CHUNK_CAP && ag->nmsgpool < AGENT_POOL_MAX) {
        m->next = ag->msgpool;
        ag->msgpool = m;
        ag->nmsgpool++;
        return;
    }
    free(m);
}

void bridge_enqueue(agent_t *ag, wsmsg_t *m)
{
    if (!ag->wsi || !ag->established) {
        bridge_msg_free(ag, m);
        return;
    }
    m->next = NULL;
    if (ag->qtail)
        ag->qtail->next = m;
    else
        ag->qhead = m;
    ag->qtail = m;
    ag->qbytes += m->len;
    lws_callback_on_writable(ag->wsi);
}

int bridge_send_frame(agent_t *ag, const egress_frame_t *f)
{
    size_t max = egress_frame_encoded_max(f, ag->proto);
    egress_error_t err;
    wsmsg_t *m;
    int binary = 0;
    size_t n;

    if (max == 0) /* not expressible in this version (window on v1) */
        return 0;
    if ((m = bridge_msg_new(ag, max)) == NULL)
        return -1;
    n = egress_frame_encode(f, ag->proto, m->buf + LWS_PRE, m->cap, &binary, &err);
    if (n == 0) {
        agent_log("cannot encode %s frame: %s", egress_frame_type_name(f->type), err.message);
        bridge_msg_free(ag, m);
        return -1;
    }
    m->len = (uint32_t) n;
    m->binary = (uint8_t) binary;
    m->stream_id = f->id;
    bridge_enqueue(ag, m);
    return 0;
}

static void bridge_queue_clear(agent_t *ag)
{
    while (ag->qhead) {
        wsmsg_t *m = ag->qhead;
        ag->qhead = m->next;
        bridge_msg_free(ag, m);
    }
    ag->qtail = NULL;
    ag->qbytes = 0;
    ag->held = 0;
}

/* The peer left: its streams are dead, so are our queued frames for them. */
void bridge_purge_streams(agent_t *ag)
{
    wsmsg_t **pp = &ag->qhead, *m;

    ag->qtail = NULL;
    while ((m = *pp) != NULL) {
        if (m->stream_id) {
            *pp = m->next;
            ag->qbytes -= m->len;
            bridge_msg_free(ag, m);
        } else {
            ag->qtail = m;
            pp = &m->next;
        }
    }
}

/* ---- incoming ---------------------------------------------------------------------- */

static void bridge_on_hello(agent_t *ag, const egress_frame_t *f)
{
    int first = !ag->ever_connected;

    snprintf(ag->session, sizeof(ag->session), "%s", f->session_id.data);
    if (f->resume.len) {
        snprintf(ag->resume, sizeof(ag->resume), "%s", f->resume.data);
        agent_save_state(ag);
    }
    ag->peer = f->peer_connected;
    ag->ever_connected = 1;
    agent_log("%s: lease=%s session=%s protocol=egress.v2 client=%s",
              first ? "connected" : "reconnected", ag->o->lease, ag->session,
              ag->peer ? "connected" : "not connected");
}

static void bridge_dispatch(agent_t *ag, const unsigned char *msg, size_t len, int binary)
{
    egress_frame_t f;
    egress_error_t err;

    if (egress_frame_decode(&f, ag->proto, msg, len, binary, &err) < 0) {
        agent_log("undecodable message from coordinator (%s): %s", egress_err_name(err.code),
                  err.message);
        stream_t *s = f.id ? stream_find(ag, f.id) : NULL;
        if (s) {
            stream_on_close(ag, f.id, 0);
            egress_frame_t c = {0};
            c.type = EGRESS_FRAME_CLOSE;
            c.id = f.id;
            bridge_send_frame(ag, &c);
        } else if (f.id && err.code != EGRESS_ERR_TOO_LARGE) {
            /* a bad open: answer it so the client's request fails cleanly */
            egress_frame_t e = {0};
            e.type = EGRESS_FRAME_ERROR;
            e.id = f.id;
            e.message.data = "host agent rejected the request: malformed open";
            e.message.len = strlen(e.message.data);
            bridge_send_frame(ag, &e);
        }
        return;
    }
    switch (f.type) {
    case EGRESS_FRAME_OPEN:
        if (!ag->stopping) {
            stream_on_open(ag, &f);
        } else {
            egress_frame_t e = {0};
            e.type = EGRESS_FRAME_ERROR;
            e.id = f.id;
            e.message.data = "host agent stopping";
            e.message.len = strlen(e.message.data);
            bridge_send_frame(ag, &e);
        }
        break;
    case EGRESS_FRAME_DATA:
        stream_on_data(ag, f.id, f.body, f.body_len);
        break;
    case EGRESS_FRAME_WINDOW:
        stream_on_window(ag, f.id, f.increment);
        break;
    case EGRESS_FRAME_CLOSE:
        stream_on_close(ag, f.id, f.half);
        break;
    case EGRESS_FRAME_ERROR:
        stream_on_close(ag, f.id, 0);
        break;
    case EGRESS_FRAME_HELLO:
        bridge_on_hello(ag, &f);
        break;
    case EGRESS_FRAME_PEER:
        if (!f.connected && ag->peer) {
            agent_log("lease client disconnected; closing its %zu streams", ag->nstreams);
            stream_kill_all(ag, 0);
            bridge_purge_streams(ag);
        } else if (f.connected && !ag->peer) {
            agent_log("lease client connected");
        }
        ag->peer = f.connected;
        break;
    case EGRESS_FRAME_OPEN_OK:
        break; /* only the host sends it */
    }
    egress_frame_release(&f);
}

static int bridge_receive(agent_t *ag, struct lws *wsi, const void *in, size_t len)
{
    if (lws_is_first_fragment(wsi)) {
        ag->rxlen = 0;
        ag->rxbinary = lws_frame_is_binary(wsi);
    }
    if (ag->rxlen + len > EGRESS_MAX_MESSAGE) {
        agent_log("coordinator sent a message above %d bytes; reconnecting",
                  EGRESS_MAX_MESSAGE);
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi) && ag->rxlen == 0) {
        bridge_dispatch(ag, in, len, ag->rxbinary); /* common case: no copy */
        return 0;
    }
    if (ag->rxlen + len > ag->rxcap) {
        size_t cap = ag->rxcap ? ag->rxcap : 65536;
        while (cap < ag->rxlen + len)
            cap *= 2;
        unsigned char *p = realloc(ag->rx, cap);
        if (!p)
            return -1;
        ag->rx = p;
        ag->rxcap = cap;
    }
    memcpy(ag->rx + ag->rxlen, in, len);
    ag->rxlen += len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        bridge_dispatch(ag, ag->rx, ag->rxlen, ag->rxbinary);
        ag->rxlen = 0;
        if (ag->rxcap > 4 * 65536) { /* do not keep a 2 MiB buffer around */
            free(ag->rx);
            ag->rx = NULL;
            ag->rxcap = 0;
        }
    }
    return 0;
}

static int bridge_writeable(agent_t *ag, struct lws *wsi)
{
    int budget = 64; /* messages per callback, so reads are not starved */

    while (ag->qhead && budget-- > 0) {
        wsmsg_t *m = ag->qhead;
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len,
                          m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        if (n < (int) m->len) {
            agent_log("WebSocket write failed; reconnecting");
            return -1;
        }
        ag->qhead = m->next;
        if (!ag->qhead)
            ag->qtail = NULL;
        ag->qbytes -= m->len;
        bridge_msg_free(ag, m);
        if (lws_send_pipe_choked(wsi))
            break;
    }
    if (ag->held && ag->qbytes < AGENT_QUEUE_LOW)
        stream_release_held(ag);
    if (ag->qhead) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (ag->stopping) {
        /* every stream got its close: end the socket with a normal close */
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *) "agent stopping", 14);
        return -1;
    }
    return 0;
}

/* ---- connection outcome ------------------------------------------------------------- */

static int bridge_status_fatal(int status)
{
    return status == 403 || status == 404 || status == 409 || status == 410;
}

static const char *bridge_status_text(int status)
{
    switch (status) {
    case 403:
        return "lease forbidden for this credential";
    case 404:
        return "unknown lease";
    case 409:
        return "session replaced by a newer one";
    case 410:
        return "lease released or expired";
    case 4001:
        return "session replaced by a newer one (egress_session_replaced)";
    case 4002:
        return "a newer host agent took over this session (egress_socket_replaced)";
    case 4003:
        return "lease released or expired (egress_lease_gone)";
    case 4004:
        return "session stopped (egress_session_stopped)";
    }
    return "error";
}

/* The socket is gone (refused, dropped or closed): fatal, or try again. */
static void bridge_on_down(agent_t *ag, const char *why)
{
    int was_up = ag->established;

    if (!ag->active)
        return; /* lws reported the same end twice */
    ag->active = 0;
    ag->wsi = NULL;
    ag->established = 0;
    ag->peer = 0;
    stream_kill_all(ag, 0);
    bridge_queue_clear(ag);
    ag->proto = 0;
    if (ag->finished)
        return;
    if (ag->stopping) {
        agent_finish(ag, EXIT_OK);
        return;
    }
    if (ag->close_code >= 4001 && ag->close_code <= 4004) {
        agent_log("fatal: coordinator closed the bridge: %s; not reconnecting",
                  bridge_status_text(ag->close_code));
        agent_finish(ag, EXIT_FATAL);
        return;
    }
    if (bridge_status_fatal(ag->http_status)) {
        agent_log("fatal: coordinator refused the bridge (%d): %s; not reconnecting",
                  ag->http_status, bridge_status_text(ag->http_status));
        agent_finish(ag, EXIT_FATAL);
        return;
    }
    if (ag->http_status == 401) {
        /* that credential is spent; fall through to the next one */
        if (ag->using_resume) {
            agent_log("resume secret refused (401); trying a fresh ticket");
            ag->resume[0] = '\0';
            agent_save_state(ag);
        } else if (ag->using_ticket) {
            agent_log("ticket refused (401: unknown, expired or already used)");
            explicit_bzero(ag->ticket, sizeof(ag->ticket));
        }
    }
    if (was_up)
        agent_log("bridge down (%s); reconnecting", why);
    else
        agent_log("cannot connect to coordinator (%s); retrying", why);
    bridge_schedule_reconnect(ag, 0);
}

int bridge_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    agent_t *ag = lws_context_user(ctx);
    char buf[128];

    if (!ag)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = (unsigned char **) in, *end = (*p) + len;
        char hv[EGRESS_MAX_TOKEN_TEXT + 16];
        int rc;
        if (ag->using_resume) {
            rc = lws_add_http_header_by_name(
                wsi, (const unsigned char *) "x-egress-resume:", (unsigned char *) ag->resume,
                (int) strlen(ag->resume), p, end);
        } else {
            snprintf(hv, sizeof(hv), "Bearer %s", ag->ticket);
            rc = lws_add_http_header_by_name(wsi, (const unsigned char *) "authorization:",
                                             (unsigned char *) hv, (int) strlen(hv), p, end);
            explicit_bzero(hv, sizeof(hv));
        }
        return rc ? -1 : 0;
    }
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        ag->http_status = (int) lws_http_client_http_response(wsi);
        /* the selected subprotocol; the header is gone by CLIENT_ESTABLISHED */
        if (lws_hdr_copy(wsi, ag->subproto, sizeof(ag->subproto), WSI_TOKEN_PROTOCOL) < 0)
            ag->subproto[0] = '\0';
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        ag->established = 1;
        ag->attempts = 0;
        ag->http_status = 101;
        if (ag->using_ticket) /* one-use: it is spent now */
            explicit_bzero(ag->ticket, sizeof(ag->ticket));
        ag->proto = egress_proto_from_subprotocol(ag->subproto);
        if (ag->proto == 0 || (ag->o->protocol && ag->proto != ag->o->protocol)) {
            agent_log("coordinator selected unusable subprotocol '%s'", ag->subproto);
            return -1;
        }
        if (ag->proto == EGRESS_PROTO_V1) {
            ag->ever_connected = 1;
            ag->peer = 1; /* v1 has no peer notices */
            agent_log("connected: lease=%s protocol=egress.v1 (no flow control, no resume)",
                      ag->o->lease);
        }
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return bridge_receive(ag, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return bridge_writeable(ag, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *c = in;
            ag->close_code = (c[0] << 8) | c[1];
        }
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (wsi == ag->wsi || !ag->established) {
            snprintf(buf, sizeof(buf), "%s", in ? (const char *) in : "connection failed");
            if (ag->http_status && ag->http_status != 101)
                snprintf(buf, sizeof(buf), "HTTP %d", ag->http_status);
            bridge_on_down(ag, buf);
        }
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (ag->close_code)
            snprintf(buf, sizeof(buf), "close code %d", ag->close_code);
        else
            snprintf(buf, sizeof(buf), "connection lost");
        bridge_on_down(ag, buf);
        break;
    default:
        break;
    }
    return 0;
}

/* ---- connecting ------------------------------------------------------------------------- */

static void bridge_after_mint(uv_work_t *w, int status)
{
    agent_t *ag = w->data;

    ag->minting = 0;
    if (ag->finished)
        return;
    if (ag->mint_status == 0) {
        bridge_connect(ag);
        return;
    }
    agent_log("cannot mint a ticket: %s", ag->mint_err);
    if (bridge_status_fatal(ag->mint_status)) {
        agent_finish(ag, EXIT_FATAL);
        return;
    }
    if (ag->mint_status == 401) {
        agent_log("fatal: the bearer token was refused; not retrying");
        agent_finish(ag, EXIT_AUTH);
        return;
    }
    bridge_schedule_reconnect(ag, 0);
}

static void bridge_mint_work(uv_work_t *w)
{
    agent_t *ag = w->data;
    host_opts_t *o = ag->o;
    const char *allow[EGRESS_ALLOW_MAX_PATTERNS + 1];
    size_t n = egress_allow_count(o->allow);
    char session[sizeof(ag->session)];

    for (size_t i = 0; i < n; i++)
        allow[i] = egress_allow_pattern(o->allow, i);
    mint_req_t rq = {.lease = o->lease,
                     .token = o->token,
                     .session = ag->session[0] ? ag->session : o->session,
                     .profile = o->profile,
                     .allow = allow,
                     .nallow = n,
                     .timeout_ms = 10000};
    ag->mint_status = http_mint_ticket(&o->url, &rq, ag->ticket, sizeof(ag->ticket), session,
                                       sizeof(session), ag->mint_err, sizeof(ag->mint_err));
}

int bridge_connect(agent_t *ag)
{
    host_opts_t *o = ag->o;
    struct lws_client_connect_info i;
    char path[512];

    if (ag->finished || ag->stopping)
        return 0;
    ag->using_resume = ag->resume[0] != '\0';
    ag->using_ticket = !ag->using_resume && ag->ticket[0] != '\0';
    if (!ag->using_resume && !ag->using_ticket) {
        if (!o->token) {
            agent_log("fatal: no credential left to reconnect (the ticket is spent and no "
                      "resume secret is held); set EGRESS_TOKEN so the agent can mint tickets");
            agent_finish(ag, EXIT_AUTH);
            return -1;
        }
        if (!ag->minting) {
            ag->minting = 1;
            ag->mint_work.data = ag;
            uv_queue_work(&ag->loop, &ag->mint_work, bridge_mint_work, bridge_after_mint);
        }
        return 0;
    }
    snprintf(path, sizeof(path), "%s/v1/leases/%s/egress/host", o->url.prefix, o->lease);
    memset(&i, 0, sizeof(i));
    i.context = ag->ctx;
    i.address = o->url.host;
    i.port = o->url.port;
    i.path = path;
    i.host = o->url.host;
    i.origin = o->url.host;
    i.protocol = ag->o->protocol == EGRESS_PROTO_V1   ? EGRESS_SUBPROTO_V1
                 : ag->o->protocol == EGRESS_PROTO_V2 ? EGRESS_SUBPROTO_V2
                                                      : EGRESS_SUBPROTO_V2
                     ", " EGRESS_SUBPROTO_V1;
    i.local_protocol_name = "egress";
    i.ssl_connection = o->url.tls ? LCCSCF_USE_SSL : 0;
    i.pwsi = &ag->wsi;
    ag->http_status = 0;
    ag->close_code = 0;
    ag->subproto[0] = '\0';
    ag->established = 0;
    ag->active = 1;
    if (!lws_client_connect_via_info(&i)) {
        ag->active = 0;
        ag->wsi = NULL;
        agent_log("cannot start a connection to %s", o->coordinator);
        bridge_schedule_reconnect(ag, 0);
        return -1;
    }
    return 0;
}

static void bridge_on_retry(uv_timer_t *t)
{
    bridge_connect(t->data);
}

void bridge_schedule_reconnect(agent_t *ag, int immediate)
{
    uint64_t delay = 0;

    if (!immediate) {
        unsigned shift = ag->attempts < 10 ? ag->attempts : 10;
        uint64_t d = (uint64_t) BACKOFF_BASE_MS << shift;
        if (d > BACKOFF_CAP_MS)
            d = BACKOFF_CAP_MS;
        /* "equal jitter": half fixed, half random, so agents do not retry in lockstep */
        uint32_t r = 0;
        egress_random_bytes(&r, sizeof(r), NULL);
        delay = d / 2 + r % (d / 2 + 1);
        ag->attempts++;
    }
    uv_timer_start(&ag->retry_timer, bridge_on_retry, delay, 0);
}
