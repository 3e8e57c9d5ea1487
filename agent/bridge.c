/*
 * bridge.c: the host agent's one WebSocket to the coordinator (wslay framing
 * over ws_sock.c's TCP/TLS on the agent's libuv loop): upgrade with a ticket
 * or resume secret, the FIFO of outgoing messages, reassembly and dispatch of
 * incoming messages, and the reconnect policy (capped exponential backoff
 * with jitter; fatal answers end the agent).
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "host.h"

#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS  15000
/* TCP + TLS + upgrade must be done by then */
#define BRIDGE_CONNECT_TIMEOUT_MS 20000
/* below this much staging room, with a write in flight, wait for it */
#define BRIDGE_ROOM_MIN 64
/*
 * Liveness: a ping after each quiet interval; three quiet intervals in a row
 * (two pings unanswered) end the socket. Counting ticks, not elapsed time,
 * keeps a clock jump (VM pause) from dropping a healthy bridge.
 */
#define BRIDGE_PING_MS    30000
#define BRIDGE_PING_QUIET 3

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
        if ((m = malloc(sizeof(*m) + cap)) == NULL)
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
    if (!ag->ws || !ag->established) {
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
    bridge_kick(ag);
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
    n = egress_frame_encode(f, ag->proto, m->buf, m->cap, &binary, &err);
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

/* ---- connection outcome ------------------------------------------------------------- */

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
    case EGRESS_CLOSE_SESSION_REPLACED:
        return "session replaced by a newer one (egress_session_replaced)";
    case EGRESS_CLOSE_SOCKET_REPLACED:
        return "a newer host agent took over this session (egress_socket_replaced)";
    case EGRESS_CLOSE_LEASE_GONE:
        return "lease released or expired (egress_lease_gone)";
    case EGRESS_CLOSE_SESSION_STOPPED:
        return "session stopped (egress_session_stopped)";
    }
    return "error";
}

/* ---- the socket under the WebSocket ------------------------------------------------------ */

static void bridge_on_down(agent_t *ag, const char *why);

/* Drops the socket and the framing state of the current attempt. */
static void bridge_close_socket(agent_t *ag)
{
    if (ag->ws) {
        ws_sock_close(ag->ws);
        ag->ws = NULL;
    }
    if (ag->wsl) {
        wslay_event_context_free(ag->wsl);
        ag->wsl = NULL;
    }
    if (ag->txm) { /* half written: the socket is gone with it */
        bridge_msg_free(ag, ag->txm);
        ag->txm = NULL;
    }
    if (ag->pump_on) {
        uv_idle_stop(&ag->pump_idle);
        ag->pump_on = 0;
    }
    uv_timer_stop(&ag->ping_timer);
    ag->rxlen = 0;
    ag->hlen = 0;
}

/* Mask keys come from a RAND_bytes pool: one CSPRNG call per 1024 frames. */
static int bridge_mask_key(agent_t *ag, unsigned char *buf, size_t len)
{
    if (len > sizeof(ag->maskpool))
        return -1;
    if (ag->maskoff + len > sizeof(ag->maskpool)) {
        if (RAND_bytes(ag->maskpool, sizeof(ag->maskpool)) != 1)
            return -1;
        ag->maskoff = 0;
    }
    memcpy(buf, ag->maskpool + ag->maskoff, len);
    explicit_bzero(ag->maskpool + ag->maskoff, len);
    ag->maskoff += len;
    return 0;
}

/*
 * Our FIFO straight into the socket's staging buffer as masked frames, one
 * pass over each byte; a frame larger than the room left is finished on the
 * next pass (ag->txm), and wslay writes nothing until it is. With start 0
 * only that unfinished frame is completed.
 */
static int bridge_write_frames(agent_t *ag, int start)
{
    for (;;) {
        size_t room, n;
        unsigned char *p = ws_sock_room(ag->ws, &room);
        if (!ag->txm) {
            wsmsg_t *m = ag->qhead;
            if (!m || !start || room < EGRESS_WS_HEADER_MAX)
                return 0;
            if (bridge_mask_key(ag, ag->txkey, sizeof(ag->txkey)) < 0)
                return -1;
            ag->qhead = m->next;
            if (!ag->qhead)
                ag->qtail = NULL;
            ag->qbytes -= m->len;
            ag->txm = m;
            ag->txoff = 0;
            n = egress_ws_frame_header(p, m->binary, m->len, ag->txkey);
            ws_sock_staged(ag->ws, n);
            p += n;
            room -= n;
        }
        n = ag->txm->len - ag->txoff;
        if (n > room)
            n = room;
        egress_ws_mask(p, ag->txm->buf + ag->txoff, n, ag->txkey, ag->txoff);
        ws_sock_staged(ag->ws, n);
        ag->txoff += n;
        if (ag->txoff < ag->txm->len)
            return 0; /* staging buffer full */
        bridge_msg_free(ag, ag->txm);
        ag->txm = NULL;
    }
}

/*
 * One write pass: wslay's own frames (pongs, close) between ours, never
 * inside one; our data frames; one flush per buffer-full. A write in flight
 * plus a full staging buffer ends the pass; on_drain starts the next.
 */
static void bridge_pump(agent_t *ag)
{
    ws_sock_t *s = ag->ws;
    size_t room;
    int closing;

    if (!s || !ag->wsl)
        return;
    for (;;) {
        if (!ag->txm && wslay_event_want_write(ag->wsl) && wslay_event_send(ag->wsl) != 0) {
            bridge_on_down(ag, "WebSocket send failed");
            return;
        }
        /* no new frame once closing, nor while wslay is inside one of its own */
        closing = ag->close_queued || wslay_event_get_close_sent(ag->wsl);
        if (bridge_write_frames(ag, !closing && !wslay_event_want_write(ag->wsl)) < 0) {
            bridge_on_down(ag, "no random bytes for frame masks");
            return;
        }
        if (ws_sock_flush(s) < 0) {
            bridge_on_down(ag, ws_sock_error(s));
            return;
        }
        if (!ag->txm && !wslay_event_want_write(ag->wsl) && (!ag->qhead || closing))
            break;
        ws_sock_room(s, &room);
        if (ws_sock_writing(s) && room < BRIDGE_ROOM_MIN)
            break;
    }
    if (ag->held && ag->qbytes < AGENT_QUEUE_LOW)
        stream_release_held(ag);
    if (ag->stopping && !ag->close_queued && !ag->qhead && !ag->txm) {
        /* every stream got its close: end the socket with a normal close */
        ag->close_queued = 1;
        wslay_event_queue_close(ag->wsl, WSLAY_CODE_NORMAL_CLOSURE,
                                (const uint8_t *) "agent stopping", 14);
        bridge_kick(ag);
    }
}

static void bridge_on_pump_idle(uv_idle_t *h)
{
    agent_t *ag = h->data;

    uv_idle_stop(h);
    ag->pump_on = 0;
    bridge_pump(ag);
}

void bridge_kick(agent_t *ag)
{
    if (ag->pump_on || !ag->wsl)
        return;
    ag->pump_on = 1;
    uv_idle_start(&ag->pump_idle, bridge_on_pump_idle);
}

/* EGRESS_PING_MS overrides the ping interval (tests): 100 ms to 10 min. */
static uint64_t bridge_ping_ms(void)
{
    const char *v = getenv("EGRESS_PING_MS");
    unsigned long long ms;
    char *end;

    if (v == NULL || *v == '\0')
        return BRIDGE_PING_MS;
    ms = strtoull(v, &end, 10);
    if (*end != '\0' || ms < 100 || ms > 600000)
        return BRIDGE_PING_MS;
    return ms;
}

static void bridge_on_ping(uv_timer_t *t)
{
    agent_t *ag = t->data;
    struct wslay_event_msg ping = {WSLAY_PING, (const uint8_t *) "", 0};

    if (!ag->wsl)
        return;
    if (ag->rx_seen) {
        ag->rx_seen = 0;
        ag->ping_quiet = 0;
        return;
    }
    if (++ag->ping_quiet >= BRIDGE_PING_QUIET) {
        bridge_on_down(ag, "no answer to pings");
        return;
    }
    wslay_event_queue_msg(ag->wsl, &ping); /* fails only once closing: nothing to do */
    bridge_kick(ag);
}

/* ---- wslay callbacks -----------------------------------------------------------------------
 */

static ssize_t bridge_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                              void *user)
{
    agent_t *ag = user;

    if (ag->rinlen == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > ag->rinlen)
        len = ag->rinlen;
    memcpy(buf, ag->rin, len);
    ag->rin += len;
    ag->rinlen -= len;
    return (ssize_t) len;
}

static ssize_t bridge_ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                              int flags, void *user)
{
    agent_t *ag = user;
    size_t n = ws_sock_stage(ag->ws, data, len);

    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return (ssize_t) n;
}

static int bridge_ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    if (bridge_mask_key(user, buf, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

/*
 * wslay runs without buffering: the frame callbacks below reassemble data
 * messages into ag->rx (or hand a message that arrived in one piece straight
 * to bridge_dispatch); wslay still buffers and answers control frames.
 */
static void bridge_ws_frame_start(wslay_event_context_ptr ctx,
                                  const struct wslay_event_on_frame_recv_start_arg *a,
                                  void *user)
{
    agent_t *ag = user;

    ag->rx_ctrl = (a->opcode & 0x8) != 0;
    if (ag->rx_ctrl)
        return;
    if (a->opcode != WSLAY_CONTINUATION_FRAME) {
        ag->rxlen = 0;
        ag->rxbinary = a->opcode == WSLAY_BINARY_FRAME;
    }
    ag->rx_fin = a->fin;
    ag->rx_frame_len = a->payload_length;
    ag->rx_frame_off = 0;
    ag->rx_done = 0;
    if (ag->rxlen + a->payload_length > EGRESS_MAX_MESSAGE)
        ag->rx_too_large = 1;
}

static void bridge_ws_frame_chunk(wslay_event_context_ptr ctx,
                                  const struct wslay_event_on_frame_recv_chunk_arg *a,
                                  void *user)
{
    agent_t *ag = user;

    if (ag->rx_ctrl || ag->rx_too_large)
        return;
    if (ag->rxlen == 0 && ag->rx_fin && ag->rx_frame_off == 0 &&
        a->data_length == ag->rx_frame_len) {
        ag->rx_done = 1; /* the whole message in one piece: no copy */
        ag->rx_frame_off = a->data_length;
        bridge_dispatch(ag, a->data, a->data_length, ag->rxbinary);
        return;
    }
    if (ag->rxlen + a->data_length > ag->rxcap) {
        size_t cap = ag->rxcap ? ag->rxcap : 65536;
        unsigned char *p;
        while (cap < ag->rxlen + a->data_length)
            cap *= 2;
        if ((p = realloc(ag->rx, cap)) == NULL) {
            ag->rx_too_large = 2;
            return;
        }
        ag->rx = p;
        ag->rxcap = cap;
    }
    memcpy(ag->rx + ag->rxlen, a->data, a->data_length);
    ag->rxlen += a->data_length;
    ag->rx_frame_off += a->data_length;
}

static void bridge_ws_frame_end(wslay_event_context_ptr ctx, void *user)
{
    agent_t *ag = user;

    if (ag->rx_ctrl || ag->rx_too_large || !ag->rx_fin)
        return;
    if (!ag->rx_done)
        bridge_dispatch(ag, ag->rx ? ag->rx : (const unsigned char *) "", ag->rxlen,
                        ag->rxbinary);
    ag->rxlen = 0;
    if (ag->rxcap > 4 * 65536) { /* do not keep a 2 MiB buffer around */
        free(ag->rx);
        ag->rx = NULL;
        ag->rxcap = 0;
    }
}

static void bridge_ws_on_msg(wslay_event_context_ptr ctx,
                             const struct wslay_event_on_msg_recv_arg *a, void *user)
{
    agent_t *ag = user;

    /* data messages went through the frame callbacks; pings are answered by wslay */
    if (a->opcode == WSLAY_CONNECTION_CLOSE)
        ag->close_code = a->status_code;
}

static const struct wslay_event_callbacks bridge_ws_callbacks = {
    bridge_ws_recv,        bridge_ws_send,      bridge_ws_genmask, bridge_ws_frame_start,
    bridge_ws_frame_chunk, bridge_ws_frame_end, bridge_ws_on_msg};

/* Bytes after the upgrade: through wslay, then act on what it found. */
static void bridge_ws_feed(agent_t *ag, const unsigned char *p, size_t n)
{
    char why[64];
    int rc;

    ag->rin = p;
    ag->rinlen = n;
    rc = wslay_event_recv(ag->wsl);
    ag->rin = NULL;
    ag->rinlen = 0;
    if (rc != 0) {
        bridge_on_down(ag, "WebSocket receive failed");
        return;
    }
    if (ag->rx_too_large) {
        if (ag->rx_too_large == 1)
            agent_log("coordinator sent a message above %d bytes; reconnecting",
                      EGRESS_MAX_MESSAGE);
        wslay_event_queue_close(ag->wsl,
                                ag->rx_too_large == 1 ? WSLAY_CODE_MESSAGE_TOO_BIG
                                                      : WSLAY_CODE_INTERNAL_SERVER_ERROR,
                                NULL, 0);
        bridge_pump(ag);
        bridge_on_down(ag, ag->rx_too_large == 1 ? "message too large" : "out of memory");
        return;
    }
    if (wslay_event_get_close_received(ag->wsl)) {
        /* wslay queued our close reply: best effort, then the socket is done */
        bridge_pump(ag);
        if (ag->close_code)
            snprintf(why, sizeof(why), "close code %d", ag->close_code);
        else
            snprintf(why, sizeof(why), "connection lost");
        bridge_on_down(ag, why);
        return;
    }
    if (!wslay_event_get_read_enabled(ag->wsl)) {
        /* a protocol error: wslay queued a close with its code */
        int code = wslay_event_get_status_code_sent(ag->wsl);
        if (code == WSLAY_CODE_MESSAGE_TOO_BIG)
            agent_log("coordinator sent a message above %d bytes; reconnecting",
                      EGRESS_MAX_MESSAGE);
        bridge_pump(ag);
        snprintf(why, sizeof(why), "WebSocket protocol error (close %d)", code);
        bridge_on_down(ag, why);
        return;
    }
    /* pongs, windows and stream answers queued while reading */
    bridge_kick(ag);
}

/* The coordinator accepted the upgrade. Returns -1 when the attempt ended. */
static int bridge_ws_open(agent_t *ag)
{
    ag->established = 1;
    ag->attempts = 0;
    ag->http_status = 101;
    if (ag->using_ticket) /* one-use: it is spent now */
        explicit_bzero(ag->ticket, sizeof(ag->ticket));
    ag->proto = egress_proto_from_subprotocol(ag->subproto);
    if (ag->proto == 0 || (ag->o->protocol && ag->proto != ag->o->protocol)) {
        agent_log("coordinator selected unusable subprotocol '%s'", ag->subproto);
        bridge_on_down(ag, "unusable subprotocol");
        return -1;
    }
    if (wslay_event_context_client_init(&ag->wsl, &bridge_ws_callbacks, ag) != 0) {
        ag->wsl = NULL;
        bridge_on_down(ag, "out of memory");
        return -1;
    }
    wslay_event_config_set_no_buffering(ag->wsl, 1);
    wslay_event_config_set_max_recv_msg_length(ag->wsl, EGRESS_MAX_MESSAGE);
    ws_sock_settle(ag->ws);
    ag->rx_seen = 0;
    ag->ping_quiet = 0;
    uv_timer_start(&ag->ping_timer, bridge_on_ping, bridge_ping_ms(), bridge_ping_ms());
    if (ag->proto == EGRESS_PROTO_V1) {
        ag->ever_connected = 1;
        ag->peer = 1; /* v1 has no peer notices */
        agent_log("connected: lease=%s protocol=egress.v1 (no flow control, no resume)",
                  ag->o->lease);
    }
    return 0;
}

static void bridge_sock_open(ws_sock_t *s)
{
    agent_t *ag = ws_sock_data(s);
    host_opts_t *o = ag->o;
    char path[512], cred[EGRESS_MAX_TOKEN_TEXT + 16];
    char req[2048 + sizeof(cred)];
    egress_upgrade_req_t rq;
    egress_error_t err;
    int n;

    if (ag->ws != s)
        return;
    snprintf(path, sizeof(path), "%s/v1/leases/%s/egress/host", o->url.prefix, o->lease);
    if (ag->using_resume)
        snprintf(cred, sizeof(cred), "%s", ag->resume);
    else
        snprintf(cred, sizeof(cred), "Bearer %s", ag->ticket);
    memset(&rq, 0, sizeof(rq));
    rq.path = path;
    rq.host = o->url.host;
    rq.port = o->url.port;
    rq.tls = o->url.tls;
    rq.protocols = o->protocol == EGRESS_PROTO_V1   ? EGRESS_SUBPROTO_V1
                   : o->protocol == EGRESS_PROTO_V2 ? EGRESS_SUBPROTO_V2
                                                    : EGRESS_SUBPROTO_V2
                       ", " EGRESS_SUBPROTO_V1;
    rq.user_agent = "egress/" EGRESS_VERSION;
    rq.cred_name = ag->using_resume ? "X-Egress-Resume" : "Authorization";
    rq.cred_value = cred;
    n = egress_upgrade_request(&rq, req, sizeof(req), ag->accept, &err);
    explicit_bzero(cred, sizeof(cred));
    if (n < 0) {
        bridge_on_down(ag, err.message);
        return;
    }
    if (ws_sock_stage(s, req, (size_t) n) != (size_t) n) {
        explicit_bzero(req, sizeof(req));
        bridge_on_down(ag, "upgrade request does not fit");
        return;
    }
    explicit_bzero(req, sizeof(req));
    if (ws_sock_flush(s) < 0)
        bridge_on_down(ag, ws_sock_error(s));
}

static void bridge_sock_read(ws_sock_t *s, const unsigned char *p, size_t n)
{
    agent_t *ag = ws_sock_data(s);
    egress_upgrade_resp_t r;
    egress_error_t err;
    char why[32];
    size_t take;
    int rc;

    if (ag->ws != s)
        return;
    if (ag->wsl) {
        ag->rx_seen = 1;
        bridge_ws_feed(ag, p, n);
        return;
    }
    /* the upgrade answer: bounded head buffer */
    take = sizeof(ag->hbuf) - ag->hlen;
    if (take > n)
        take = n;
    memcpy(ag->hbuf + ag->hlen, p, take);
    ag->hlen += take;
    rc = egress_upgrade_parse(&r, ag->hbuf, ag->hlen, ag->accept, &err);
    if (rc == 0)
        return;
    if (rc < 0) {
        bridge_on_down(ag, err.message);
        return;
    }
    ag->http_status = r.status;
    if (r.status != 101) {
        snprintf(why, sizeof(why), "HTTP %d", r.status);
        bridge_on_down(ag, why);
        return;
    }
    snprintf(ag->subproto, sizeof(ag->subproto), "%s", r.subprotocol);
    if (bridge_ws_open(ag) < 0)
        return;
    /* frames may already follow the head */
    if (ag->hlen > r.head_len)
        bridge_ws_feed(ag, (const unsigned char *) ag->hbuf + r.head_len,
                       ag->hlen - r.head_len);
    if (take < n && ag->ws == s)
        bridge_ws_feed(ag, p + take, n - take);
}

static void bridge_sock_drain(ws_sock_t *s)
{
    agent_t *ag = ws_sock_data(s);

    if (ag->ws == s)
        bridge_pump(ag);
}

static void bridge_sock_fail(ws_sock_t *s, const char *why)
{
    agent_t *ag = ws_sock_data(s);
    char buf[300];

    if (ag->ws != s)
        return;
    if (ag->established && ag->close_code)
        snprintf(buf, sizeof(buf), "close code %d", ag->close_code);
    else
        snprintf(buf, sizeof(buf), "%s", why);
    bridge_on_down(ag, buf);
}

static const ws_sock_cb_t bridge_sock_cb = {bridge_sock_open, bridge_sock_read,
                                            bridge_sock_drain, bridge_sock_fail};

/* The socket is gone (refused, dropped or closed): fatal, or try again. */
static void bridge_on_down(agent_t *ag, const char *why)
{
    int was_up = ag->established;

    if (!ag->active)
        return; /* this attempt already ended */
    ag->active = 0;
    bridge_close_socket(ag);
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
    if (egress_close_is_fatal(ag->close_code)) {
        agent_log("fatal: coordinator closed the bridge: %s; not reconnecting",
                  bridge_status_text(ag->close_code));
        agent_finish(ag, EXIT_FATAL);
        return;
    }
    if (egress_http_status_fatal(ag->http_status)) {
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
    agent_log("cannot mint a ticket: %s", ag->mint_err.message);
    if (egress_http_status_fatal(ag->mint_status)) {
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
                                       sizeof(session), &ag->mint_err);
}

int bridge_connect(agent_t *ag)
{
    host_opts_t *o = ag->o;

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
    ag->http_status = 0;
    ag->close_code = 0;
    ag->subproto[0] = '\0';
    ag->established = 0;
    ag->close_queued = 0;
    ag->hlen = 0;
    ag->rxlen = 0;
    ag->rx_too_large = 0;
    ag->rx_ctrl = ag->rx_fin = ag->rx_done = 0;
    ag->active = 1;
    ag->ws = ws_sock_open(&ag->loop, o->url.tls ? ag->tls : NULL, o->url.host, o->url.port,
                          BRIDGE_CONNECT_TIMEOUT_MS, &bridge_sock_cb, ag);
    if (!ag->ws) {
        ag->active = 0;
        agent_log("cannot start a connection to %s", o->coordinator);
        bridge_schedule_reconnect(ag, 0);
        return -1;
    }
    return 0;
}

int bridge_init(agent_t *ag)
{
    uv_idle_init(&ag->loop, &ag->pump_idle);
    ag->pump_idle.data = ag;
    uv_timer_init(&ag->loop, &ag->ping_timer);
    ag->ping_timer.data = ag;
    ag->maskoff = sizeof(ag->maskpool); /* empty: the first frame fills it */
    if (ag->o->url.tls && (ag->tls = ws_sock_tls_ctx()) == NULL) {
        agent_log("cannot create the TLS context: %s",
                  ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    return 0;
}

void bridge_stop(agent_t *ag)
{
    ag->active = 0;
    bridge_close_socket(ag);
    uv_close((uv_handle_t *) &ag->pump_idle, NULL);
    uv_close((uv_handle_t *) &ag->ping_timer, NULL);
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
