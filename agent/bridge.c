/*
 * bridge.c: the host agent's one WebSocket to the coordinator (wslay framing
 * over ws_sock.c's TCP/TLS on the agent's libuv loop): upgrade with a ticket
 * or resume secret, the outgoing queues (open_ok and window ahead of data),
 * reassembly and dispatch of incoming messages, and the reconnect policy
 * (capped exponential backoff with jitter; fatal answers end the agent).
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "bridge.h"
#include "resume.h"

#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS  15000
/* TCP + TLS + upgrade must be done by then */
#define BRIDGE_CONNECT_TIMEOUT_MS 20000
/* below this much staging room, with a write in flight, wait for it */
#define BRIDGE_ROOM_MIN 64

/* live v1 streams whose string ids we map (more opens are refused) */
#define BRIDGE_V1_IDS_MAX 65536
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

    if (len <= EGRESS_CHUNK_CAP && ag->pool.msgs) {
        m = ag->pool.msgs;
        ag->pool.msgs = m->next;
        ag->pool.nmsgs--;
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
    if (m->cap == EGRESS_CHUNK_CAP && ag->pool.nmsgs < AGENT_POOL_MAX) {
        m->next = ag->pool.msgs;
        ag->pool.msgs = m;
        ag->pool.nmsgs++;
        return;
    }
    free(m);
}

static void bridge_push(agent_t *ag, wsmsg_t *m, wsmsg_t **head, wsmsg_t **tail)
{
    if (!ag->bridge.ws || !ag->bridge.established) {
        bridge_msg_free(ag, m);
        return;
    }
    m->next = NULL;
    if (*tail)
        (*tail)->next = m;
    else
        *head = m;
    *tail = m;
    ag->queue.bytes += m->len;
    bridge_kick(ag);
}

void bridge_enqueue(agent_t *ag, wsmsg_t *m)
{
    bridge_push(ag, m, &ag->queue.head, &ag->queue.tail);
}

static int bridge_queue_empty(const agent_t *ag)
{
    return !ag->queue.head && !ag->queue.urgent_head;
}

int bridge_send_frame(agent_t *ag, const egress_frame_t *frame)
{
    size_t max = egress_frame_encoded_max(frame, ag->bridge.proto);
    egress_frame_t v1 = *frame;
    const egress_frame_t *f = frame;
    egress_error_t err;
    wsmsg_t *m;
    int binary = 0;
    size_t n;

    if (ag->bridge.proto == EGRESS_PROTO_V1) {
        /* back with the text the client chose for the stream */
        egress_idmap_label(&ag->bridge.v1ids, &v1);
        f = &v1;
    }
    if (max == 0) /* not expressible in this version (window on v1) */
        return 0;
    if ((m = bridge_msg_new(ag, max)) == NULL)
        return -1;
    n = egress_frame_encode(f, ag->bridge.proto, m->buf, m->cap, &binary, &err);
    if (n == 0) {
        agent_log("cannot encode %s frame: %s", egress_frame_type_name(f->type), err.message);
        bridge_msg_free(ag, m);
        return -1;
    }
    m->len = (uint32_t) n;
    m->binary = (uint8_t) binary;
    m->stream_id = f->id;
    if (ag->bridge.proto == EGRESS_PROTO_V1 &&
        ((f->type == EGRESS_FRAME_CLOSE && !f->half) || f->type == EGRESS_FRAME_ERROR))
        egress_idmap_forget(&ag->bridge.v1ids, f->id); /* the stream is over */
    /*
     * open_ok and window jump queued data (no head-of-line blocking behind
     * megabytes of other streams); close and error stay behind their
     * stream's data.
     */
    if (f->type == EGRESS_FRAME_OPEN_OK || f->type == EGRESS_FRAME_WINDOW)
        bridge_push(ag, m, &ag->queue.urgent_head, &ag->queue.urgent_tail);
    else
        bridge_enqueue(ag, m);
    return 0;
}

static void bridge_list_free(agent_t *ag, wsmsg_t **head, wsmsg_t **tail)
{
    while (*head) {
        wsmsg_t *m = *head;
        *head = m->next;
        bridge_msg_free(ag, m);
    }
    *tail = NULL;
}

static void bridge_queue_clear(agent_t *ag)
{
    bridge_list_free(ag, &ag->queue.urgent_head, &ag->queue.urgent_tail);
    bridge_list_free(ag, &ag->queue.head, &ag->queue.tail);
    ag->queue.bytes = 0;
    ag->queue.held = 0;
}

static void bridge_list_purge(agent_t *ag, wsmsg_t **head, wsmsg_t **tail)
{
    wsmsg_t **pp = head, *m;

    *tail = NULL;
    while ((m = *pp) != NULL) {
        if (m->stream_id) {
            *pp = m->next;
            ag->queue.bytes -= m->len;
            bridge_msg_free(ag, m);
        } else {
            *tail = m;
            pp = &m->next;
        }
    }
}

/* The peer left: its streams are dead, so are our queued frames for them. */
void bridge_purge_streams(agent_t *ag)
{
    bridge_list_purge(ag, &ag->queue.urgent_head, &ag->queue.urgent_tail);
    bridge_list_purge(ag, &ag->queue.head, &ag->queue.tail);
}

/* ---- incoming ---------------------------------------------------------------------- */

static void bridge_on_hello(agent_t *ag, const egress_frame_t *f)
{
    int first = !ag->bridge.ever_connected;

    snprintf(ag->cred.session, sizeof(ag->cred.session), "%s", f->session_id.data);
    if (f->resume.len) {
        snprintf(ag->cred.resume, sizeof(ag->cred.resume), "%s", f->resume.data);
        resume_save(ag);
    }
    ag->bridge.peer = f->peer_connected;
    ag->bridge.ever_connected = 1;
    ag->bridge.hello = 1;
    agent_log("%s: lease=%s session=%s protocol=egress.v2 client=%s",
              first ? "connected" : "reconnected", ag->o->lease, ag->cred.session,
              ag->bridge.peer ? "connected" : "not connected");
}

/*
 * auto: the coordinator selected egress.v2 but its first message is not a
 * hello: a relay that does not speak v2 (crabbox's echoes the first offered
 * subprotocol and passes the client's v1 frames through). Speak v1.
 */
static void bridge_maybe_fall_back(agent_t *ag, const unsigned char *msg, size_t len,
                                   int binary)
{
    egress_frame_t f;
    egress_error_t err;
    int hello;

    if (ag->bridge.proto != EGRESS_PROTO_V2 || ag->bridge.hello || ag->o->protocol != 0)
        return;
    hello = !binary && egress_frame_decode(&f, EGRESS_PROTO_V2, msg, len, 0, &err) == 0 &&
            f.type == EGRESS_FRAME_HELLO;
    if (!binary)
        egress_frame_release(&f);
    if (hello)
        return;
    ag->bridge.proto = EGRESS_PROTO_V1;
    ag->bridge.peer = 1; /* v1 has no peer notices */
    ag->bridge.ever_connected = 1;
    agent_log("%s: lease=%s protocol=egress.v1: the coordinator selected egress.v2 but sent "
              "a v1 frame instead of hello (a crabbox-style coordinator)",
              ag->bridge.fallback_logged ? "reconnected" : "connected", ag->o->lease);
    ag->bridge.fallback_logged = 1;
}

static void bridge_dispatch(agent_t *ag, const unsigned char *msg, size_t len, int binary)
{
    egress_frame_t f;
    egress_error_t err;

    bridge_maybe_fall_back(ag, msg, len, binary);
    if (egress_frame_decode(&f, ag->bridge.proto, msg, len, binary, &err) < 0) {
        agent_log("undecodable message from coordinator (%s): %s", egress_err_name(err.code),
                  err.message);
        if (f.wire_id.len) { /* v1: a live stream's text, else answer with the text itself */
            uint32_t id = egress_idmap_lookup(&ag->bridge.v1ids, f.wire_id.data, f.wire_id.len);
            f.id = id ? id : f.id;
        }
        if (f.id && ag->bridge.ops->reset_stream(ag, f.id)) {
            egress_frame_t c = {0};
            c.type = EGRESS_FRAME_CLOSE;
            c.id = f.id;
            bridge_send_frame(ag, &c);
        } else if ((f.id || f.wire_id.len) && err.code != EGRESS_ERR_TOO_LARGE) {
            /* a bad open: answer it so the client's request fails cleanly */
            egress_frame_t e = {0};
            e.type = EGRESS_FRAME_ERROR;
            e.id = f.id;
            e.wire_id = f.wire_id;
            e.message.data = "host agent rejected the request: malformed open";
            e.message.len = strlen(e.message.data);
            bridge_send_frame(ag, &e);
        }
        return;
    }
    if (ag->bridge.proto == EGRESS_PROTO_V1 && f.wire_id.len &&
        egress_idmap_resolve(&ag->bridge.v1ids, &f, &err) < 0) {
        egress_frame_t e = {0}; /* too many streams: refuse this open only */
        e.type = EGRESS_FRAME_ERROR;
        e.wire_id = f.wire_id;
        e.message.data = "host agent has too many streams";
        e.message.len = strlen(e.message.data);
        bridge_send_frame(ag, &e);
        egress_frame_release(&f);
        return;
    }
    if (f.type != EGRESS_FRAME_HELLO && f.type != EGRESS_FRAME_PEER && f.id == 0) {
        egress_frame_release(&f); /* v1: an id no live stream has, a late frame */
        return;
    }
    switch (f.type) {
    case EGRESS_FRAME_OPEN:
        if (!ag->life.stopping) {
            ag->bridge.ops->on_stream_frame(ag, &f);
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
    case EGRESS_FRAME_WINDOW:
    case EGRESS_FRAME_CLOSE:
    case EGRESS_FRAME_ERROR:
        ag->bridge.ops->on_stream_frame(ag, &f);
        break;
    case EGRESS_FRAME_HELLO:
        bridge_on_hello(ag, &f);
        break;
    case EGRESS_FRAME_PEER:
        if (!f.connected && ag->bridge.peer) {
            agent_log("lease client disconnected; closing its %zu streams", ag->streams.n);
            ag->bridge.ops->end_streams(ag, 0);
            bridge_purge_streams(ag);
            egress_idmap_clear(&ag->bridge.v1ids);
        } else if (f.connected && !ag->bridge.peer) {
            agent_log("lease client connected");
        }
        ag->bridge.peer = f.connected;
        break;
    case EGRESS_FRAME_OPEN_OK:
        break; /* only the host sends it */
    }
    if (ag->bridge.proto == EGRESS_PROTO_V1 &&
        ((f.type == EGRESS_FRAME_CLOSE && !f.half) || f.type == EGRESS_FRAME_ERROR))
        egress_idmap_forget(&ag->bridge.v1ids, f.id); /* the client ended the stream */
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
    case EGRESS_CLOSE_SERVICE_RESTART:
        return "replaced by a newer egress agent (1012, crabbox's coordinator)";
    case EGRESS_CLOSE_POLICY:
        return "lease ended, access revoked or a frame refused (1008)";
    }
    return "error";
}

/* ---- the socket under the WebSocket ------------------------------------------------------ */

static void bridge_on_down(agent_t *ag, const char *why);

/* Drops the socket and the framing state of the current attempt. */
static void bridge_close_socket(agent_t *ag)
{
    if (ag->bridge.ws) {
        ws_sock_close(ag->bridge.ws);
        ag->bridge.ws = NULL;
    }
    if (ag->bridge.wsl) {
        wslay_event_context_free(ag->bridge.wsl);
        ag->bridge.wsl = NULL;
    }
    if (ag->tx.m) { /* half written: the socket is gone with it */
        bridge_msg_free(ag, ag->tx.m);
        ag->tx.m = NULL;
    }
    if (ag->bridge.pump_on) {
        uv_idle_stop(&ag->bridge.pump_idle);
        ag->bridge.pump_on = 0;
    }
    uv_timer_stop(&ag->bridge.ping_timer);
    ag->rx.len = 0;
    ag->bridge.hlen = 0;
}

/*
 * Our FIFOs straight into the socket's staging buffer as masked frames, one
 * pass over each byte, the urgent one first; a frame larger than the room
 * left is finished on the next pass (ag->tx.m), and wslay writes nothing
 * until it is. With start 0 only that unfinished frame is completed.
 */
static int bridge_write_frames(agent_t *ag, int start)
{
    for (;;) {
        size_t room, n;
        unsigned char *p = ws_sock_room(ag->bridge.ws, &room);
        if (!ag->tx.m) {
            int urgent = ag->queue.urgent_head != NULL;
            wsmsg_t **head = urgent ? &ag->queue.urgent_head : &ag->queue.head;
            wsmsg_t **tail = urgent ? &ag->queue.urgent_tail : &ag->queue.tail;
            wsmsg_t *m = *head;
            if (!m || !start || room < EGRESS_WS_HEADER_MAX)
                return 0;
            if (egress_random_pool_take(&ag->tx.keys, ag->tx.key, sizeof(ag->tx.key), NULL) < 0)
                return -1;
            *head = m->next;
            if (!*head)
                *tail = NULL;
            ag->queue.bytes -= m->len;
            ag->tx.m = m;
            ag->tx.off = 0;
            n = egress_ws_frame_header(p, m->binary, m->len, ag->tx.key);
            ws_sock_staged(ag->bridge.ws, n);
            p += n;
            room -= n;
        }
        n = ag->tx.m->len - ag->tx.off;
        if (n > room)
            n = room;
        egress_ws_mask(p, ag->tx.m->buf + ag->tx.off, n, ag->tx.key, ag->tx.off);
        ws_sock_staged(ag->bridge.ws, n);
        ag->tx.off += n;
        if (ag->tx.off < ag->tx.m->len)
            return 0; /* staging buffer full */
        bridge_msg_free(ag, ag->tx.m);
        ag->tx.m = NULL;
    }
}

/*
 * One write pass: wslay's own frames (pongs, close) between ours, never
 * inside one; our data frames; one flush per buffer-full. A write in flight
 * plus a full staging buffer ends the pass; on_drain starts the next.
 */
static void bridge_pump(agent_t *ag)
{
    ws_sock_t *s = ag->bridge.ws;
    size_t room;
    int closing;

    if (!s || !ag->bridge.wsl)
        return;
    for (;;) {
        if (!ag->tx.m && wslay_event_want_write(ag->bridge.wsl) &&
            wslay_event_send(ag->bridge.wsl) != 0) {
            bridge_on_down(ag, "WebSocket send failed");
            return;
        }
        /* no new frame once closing, nor while wslay is inside one of its own */
        closing = ag->bridge.close_queued || wslay_event_get_close_sent(ag->bridge.wsl);
        if (bridge_write_frames(ag, !closing && !wslay_event_want_write(ag->bridge.wsl)) < 0) {
            bridge_on_down(ag, "no random bytes for frame masks");
            return;
        }
        if (ws_sock_flush(s) < 0) {
            bridge_on_down(ag, ws_sock_error(s));
            return;
        }
        if (!ag->tx.m && !wslay_event_want_write(ag->bridge.wsl) &&
            (bridge_queue_empty(ag) || closing))
            break;
        ws_sock_room(s, &room);
        if (ws_sock_writing(s) && room < BRIDGE_ROOM_MIN)
            break;
    }
    if (ag->queue.held && ag->queue.bytes < AGENT_QUEUE_LOW)
        ag->bridge.ops->release_held(ag);
    if (ag->life.stopping && !ag->bridge.close_queued && bridge_queue_empty(ag) && !ag->tx.m) {
        /* every stream got its close: end the socket with a normal close */
        ag->bridge.close_queued = 1;
        wslay_event_queue_close(ag->bridge.wsl, WSLAY_CODE_NORMAL_CLOSURE,
                                (const uint8_t *) "agent stopping", 14);
        bridge_kick(ag);
    }
}

static void bridge_on_pump_idle(uv_idle_t *h)
{
    agent_t *ag = h->data;

    uv_idle_stop(h);
    ag->bridge.pump_on = 0;
    bridge_pump(ag);
}

void bridge_kick(agent_t *ag)
{
    if (ag->bridge.pump_on || !ag->bridge.wsl)
        return;
    ag->bridge.pump_on = 1;
    uv_idle_start(&ag->bridge.pump_idle, bridge_on_pump_idle);
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

    if (!ag->bridge.wsl)
        return;
    if (ag->bridge.rx_seen) {
        ag->bridge.rx_seen = 0;
        ag->bridge.ping_quiet = 0;
        return;
    }
    if (++ag->bridge.ping_quiet >= BRIDGE_PING_QUIET) {
        bridge_on_down(ag, "no answer to pings");
        return;
    }
    wslay_event_queue_msg(ag->bridge.wsl, &ping); /* fails only once closing: nothing to do */
    bridge_kick(ag);
}

/* ---- wslay callbacks -----------------------------------------------------------------------
 */

static ssize_t bridge_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                              void *user)
{
    agent_t *ag = user;

    if (ag->rx.inlen == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > ag->rx.inlen)
        len = ag->rx.inlen;
    memcpy(buf, ag->rx.in, len);
    ag->rx.in += len;
    ag->rx.inlen -= len;
    return (ssize_t) len;
}

static ssize_t bridge_ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                              int flags, void *user)
{
    agent_t *ag = user;
    size_t n = ws_sock_stage(ag->bridge.ws, data, len);

    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return (ssize_t) n;
}

static int bridge_ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    agent_t *ag = user;

    /* mask keys come from a pool: one CSPRNG call per EGRESS_RANDOM_POOL / 4 frames */
    if (egress_random_pool_take(&ag->tx.keys, buf, len, NULL) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

/*
 * wslay runs without buffering: the frame callbacks below reassemble data
 * messages into ag->rx.buf (or hand a message that arrived in one piece straight
 * to bridge_dispatch); wslay still buffers and answers control frames.
 */
static void bridge_ws_frame_start(wslay_event_context_ptr ctx,
                                  const struct wslay_event_on_frame_recv_start_arg *a,
                                  void *user)
{
    agent_t *ag = user;

    ag->rx.ctrl = (a->opcode & 0x8) != 0;
    if (a->opcode == WSLAY_CONNECTION_CLOSE) {
        ag->rx.close_frame = 1;
        ag->rx.close_got = 0;
        ag->rx.close_len = a->payload_length;
    }
    if (ag->rx.ctrl)
        return;
    if (a->opcode != WSLAY_CONTINUATION_FRAME) {
        ag->rx.len = 0;
        ag->rx.binary = a->opcode == WSLAY_BINARY_FRAME;
    }
    ag->rx.fin = a->fin;
    ag->rx.frame_len = a->payload_length;
    ag->rx.frame_off = 0;
    ag->rx.done = 0;
    if (ag->rx.len + a->payload_length > EGRESS_MAX_MESSAGE)
        ag->rx.too_large = 1;
}

static void bridge_ws_frame_chunk(wslay_event_context_ptr ctx,
                                  const struct wslay_event_on_frame_recv_chunk_arg *a,
                                  void *user)
{
    agent_t *ag = user;

    if (ag->rx.ctrl && ag->rx.close_frame) {
        for (size_t i = 0; i < a->data_length && ag->rx.close_got < 2; i++)
            ag->rx.close_hdr[ag->rx.close_got++] = a->data[i];
        return;
    }
    if (ag->rx.ctrl || ag->rx.too_large)
        return;
    if (ag->rx.len == 0 && ag->rx.fin && ag->rx.frame_off == 0 &&
        a->data_length == ag->rx.frame_len) {
        ag->rx.done = 1; /* the whole message in one piece: no copy */
        ag->rx.frame_off = a->data_length;
        bridge_dispatch(ag, a->data, a->data_length, ag->rx.binary);
        return;
    }
    if (ag->rx.len + a->data_length > ag->rx.cap) {
        size_t cap = ag->rx.cap ? ag->rx.cap : 65536;
        unsigned char *p;
        while (cap < ag->rx.len + a->data_length)
            cap *= 2;
        if ((p = realloc(ag->rx.buf, cap)) == NULL) {
            ag->rx.too_large = 2;
            return;
        }
        ag->rx.buf = p;
        ag->rx.cap = cap;
    }
    memcpy(ag->rx.buf + ag->rx.len, a->data, a->data_length);
    ag->rx.len += a->data_length;
    ag->rx.frame_off += a->data_length;
}

static void bridge_ws_frame_end(wslay_event_context_ptr ctx, void *user)
{
    agent_t *ag = user;

    if (ag->rx.ctrl || ag->rx.too_large || !ag->rx.fin)
        return;
    if (!ag->rx.done)
        bridge_dispatch(ag, ag->rx.buf ? ag->rx.buf : (const unsigned char *) "", ag->rx.len,
                        ag->rx.binary);
    ag->rx.len = 0;
    if (ag->rx.cap > 4 * 65536) { /* do not keep a 2 MiB buffer around */
        free(ag->rx.buf);
        ag->rx.buf = NULL;
        ag->rx.cap = 0;
    }
}

static void bridge_ws_on_msg(wslay_event_context_ptr ctx,
                             const struct wslay_event_on_msg_recv_arg *a, void *user)
{
    agent_t *ag = user;

    /* data messages went through the frame callbacks; pings are answered by wslay */
    if (a->opcode == WSLAY_CONNECTION_CLOSE)
        ag->bridge.close_code = a->status_code;
}

static const struct wslay_event_callbacks bridge_ws_callbacks = {
    bridge_ws_recv,        bridge_ws_send,      bridge_ws_genmask, bridge_ws_frame_start,
    bridge_ws_frame_chunk, bridge_ws_frame_end, bridge_ws_on_msg};

/* Bytes after the upgrade: through wslay, then act on what it found. */
static void bridge_ws_feed(agent_t *ag, const unsigned char *p, size_t n)
{
    char why[64];
    int rc;

    ag->rx.in = p;
    ag->rx.inlen = n;
    rc = wslay_event_recv(ag->bridge.wsl);
    ag->rx.in = NULL;
    ag->rx.inlen = 0;
    if (rc != 0) {
        bridge_on_down(ag, "WebSocket receive failed");
        return;
    }
    if (ag->rx.too_large) {
        if (ag->rx.too_large == 1)
            agent_log("coordinator sent a message above %d bytes; reconnecting",
                      EGRESS_MAX_MESSAGE);
        wslay_event_queue_close(ag->bridge.wsl,
                                ag->rx.too_large == 1 ? WSLAY_CODE_MESSAGE_TOO_BIG
                                                      : WSLAY_CODE_INTERNAL_SERVER_ERROR,
                                NULL, 0);
        bridge_pump(ag);
        bridge_on_down(ag, ag->rx.too_large == 1 ? "message too large" : "out of memory");
        return;
    }
    if (wslay_event_get_close_received(ag->bridge.wsl)) {
        /* wslay queued our close reply: best effort, then the socket is done */
        bridge_pump(ag);
        if (ag->bridge.close_code)
            snprintf(why, sizeof(why), "close code %d", ag->bridge.close_code);
        else
            snprintf(why, sizeof(why), "connection lost");
        bridge_on_down(ag, why);
        return;
    }
    if (!wslay_event_get_read_enabled(ag->bridge.wsl) && ag->rx.close_frame &&
        ag->rx.close_got == 2 && ag->rx.close_len >= 2) {
        /*
         * wslay (1.1) refuses the RFC 6455 registry's 1012-1014 as invalid;
         * crabbox's coordinator sends 1012 when a newer agent replaced this
         * one. Read the code ourselves and act on it like any close.
         */
        int code = ag->rx.close_hdr[0] << 8 | ag->rx.close_hdr[1];
        if (code >= 1012 && code <= 1014) {
            ag->bridge.close_code = code;
            bridge_pump(ag);
            snprintf(why, sizeof(why), "close code %d", code);
            bridge_on_down(ag, why);
            return;
        }
    }
    if (!wslay_event_get_read_enabled(ag->bridge.wsl)) {
        /* a protocol error: wslay queued a close with its code */
        int code = wslay_event_get_status_code_sent(ag->bridge.wsl);
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
    ag->bridge.established = 1;
    ag->bridge.attempts = 0;
    ag->bridge.http_status = 101;
    if (ag->cred.using_ticket) /* one-use: it is spent now */
        explicit_bzero(ag->cred.ticket, sizeof(ag->cred.ticket));
    ag->bridge.proto = egress_proto_from_subprotocol(ag->bridge.subproto);
    if (ag->bridge.proto == 0 || (ag->o->protocol && ag->bridge.proto != ag->o->protocol)) {
        agent_log("coordinator selected unusable subprotocol '%s'", ag->bridge.subproto);
        bridge_on_down(ag, "unusable subprotocol");
        return -1;
    }
    if (wslay_event_context_client_init(&ag->bridge.wsl, &bridge_ws_callbacks, ag) != 0) {
        ag->bridge.wsl = NULL;
        bridge_on_down(ag, "out of memory");
        return -1;
    }
    wslay_event_config_set_no_buffering(ag->bridge.wsl, 1);
    wslay_event_config_set_max_recv_msg_length(ag->bridge.wsl, EGRESS_MAX_MESSAGE);
    ws_sock_settle(ag->bridge.ws);
    ag->bridge.rx_seen = 0;
    ag->bridge.ping_quiet = 0;
    uv_timer_start(&ag->bridge.ping_timer, bridge_on_ping, bridge_ping_ms(), bridge_ping_ms());
    if (ag->bridge.proto == EGRESS_PROTO_V1) {
        ag->bridge.ever_connected = 1;
        ag->bridge.peer = 1; /* v1 has no peer notices */
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

    if (ag->bridge.ws != s)
        return;
    snprintf(path, sizeof(path), "%s/v1/leases/%s/egress/host", o->url.prefix, o->lease);
    if (ag->cred.using_resume)
        snprintf(cred, sizeof(cred), "%s", ag->cred.resume);
    else
        snprintf(cred, sizeof(cred), "Bearer %s", ag->cred.ticket);
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
    /* we hold data that comes before a dial ends (stream.c), so the
     * coordinator need not hold it for us */
    rq.features = "early-data";
    rq.cred_name = ag->cred.using_resume ? "X-Egress-Resume" : "Authorization";
    rq.cred_value = cred;
    n = egress_upgrade_request(&rq, req, sizeof(req), ag->bridge.accept, &err);
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

    if (ag->bridge.ws != s)
        return;
    if (ag->bridge.wsl) {
        ag->bridge.rx_seen = 1;
        bridge_ws_feed(ag, p, n);
        return;
    }
    /* the upgrade answer: bounded head buffer */
    take = sizeof(ag->bridge.hbuf) - ag->bridge.hlen;
    if (take > n)
        take = n;
    memcpy(ag->bridge.hbuf + ag->bridge.hlen, p, take);
    ag->bridge.hlen += take;
    rc = egress_upgrade_parse(&r, ag->bridge.hbuf, ag->bridge.hlen, ag->bridge.accept, &err);
    if (rc == 0)
        return;
    if (rc < 0) {
        bridge_on_down(ag, err.message);
        return;
    }
    ag->bridge.http_status = r.status;
    if (r.status != 101) {
        snprintf(why, sizeof(why), "HTTP %d", r.status);
        bridge_on_down(ag, why);
        return;
    }
    snprintf(ag->bridge.subproto, sizeof(ag->bridge.subproto), "%s", r.subprotocol);
    if (bridge_ws_open(ag) < 0)
        return;
    /* frames may already follow the head */
    if (ag->bridge.hlen > r.head_len)
        bridge_ws_feed(ag, (const unsigned char *) ag->bridge.hbuf + r.head_len,
                       ag->bridge.hlen - r.head_len);
    if (take < n && ag->bridge.ws == s)
        bridge_ws_feed(ag, p + take, n - take);
}

static void bridge_sock_drain(ws_sock_t *s)
{
    agent_t *ag = ws_sock_data(s);

    if (ag->bridge.ws == s)
        bridge_pump(ag);
}

static void bridge_sock_fail(ws_sock_t *s, const char *why)
{
    agent_t *ag = ws_sock_data(s);
    char buf[300];

    if (ag->bridge.ws != s)
        return;
    if (ag->bridge.established && ag->bridge.close_code)
        snprintf(buf, sizeof(buf), "close code %d", ag->bridge.close_code);
    else
        snprintf(buf, sizeof(buf), "%s", why);
    bridge_on_down(ag, buf);
}

static const ws_sock_cb_t bridge_sock_cb = {bridge_sock_open, bridge_sock_read,
                                            bridge_sock_drain, bridge_sock_fail};

/* The socket is gone (refused, dropped or closed): fatal, or try again. */
static void bridge_on_down(agent_t *ag, const char *why)
{
    int was_up = ag->bridge.established;

    if (!ag->bridge.active)
        return; /* this attempt already ended */
    ag->bridge.active = 0;
    bridge_close_socket(ag);
    ag->bridge.established = 0;
    ag->bridge.peer = 0;
    ag->bridge.ops->end_streams(ag, 0);
    bridge_queue_clear(ag);
    egress_idmap_clear(&ag->bridge.v1ids);
    ag->bridge.proto = 0;
    if (ag->life.finished)
        return;
    if (ag->life.stopping) {
        ag->bridge.ops->finish(ag, EXIT_OK);
        return;
    }
    if (egress_close_is_fatal(ag->bridge.close_code)) {
        agent_log("fatal: coordinator closed the bridge: %s; not reconnecting",
                  bridge_status_text(ag->bridge.close_code));
        ag->bridge.ops->finish(ag, EXIT_FATAL);
        return;
    }
    if (egress_http_status_fatal(ag->bridge.http_status)) {
        agent_log("fatal: coordinator refused the bridge (%d): %s; not reconnecting",
                  ag->bridge.http_status, bridge_status_text(ag->bridge.http_status));
        ag->bridge.ops->finish(ag, EXIT_FATAL);
        return;
    }
    if (ag->bridge.http_status == 401) {
        /* that credential is spent; fall through to the next one */
        if (ag->cred.using_resume) {
            agent_log("resume secret refused (401); trying a fresh ticket");
            ag->cred.resume[0] = '\0';
            resume_save(ag);
        } else if (ag->cred.using_ticket) {
            agent_log("ticket refused (401: unknown, expired or already used)");
            explicit_bzero(ag->cred.ticket, sizeof(ag->cred.ticket));
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

    ag->cred.minting = 0;
    if (ag->life.finished)
        return;
    if (ag->cred.mint_status == 0) {
        bridge_connect(ag);
        return;
    }
    agent_log("cannot mint a ticket: %s", ag->cred.mint_err.message);
    if (egress_http_status_fatal(ag->cred.mint_status)) {
        ag->bridge.ops->finish(ag, EXIT_FATAL);
        return;
    }
    if (ag->cred.mint_status == 401) {
        agent_log("fatal: the bearer token was refused; not retrying");
        ag->bridge.ops->finish(ag, EXIT_AUTH);
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
    char session[sizeof(ag->cred.session)];

    for (size_t i = 0; i < n; i++)
        allow[i] = egress_allow_pattern(o->allow, i);
    mint_req_t rq = {.lease = o->lease,
                     .token = o->token,
                     .session = ag->cred.session[0] ? ag->cred.session : o->session,
                     .profile = o->profile,
                     .allow = allow,
                     .nallow = n,
                     .timeout_ms = 10000};
    ag->cred.mint_status =
        http_mint_ticket(&o->url, &rq, ag->cred.ticket, sizeof(ag->cred.ticket), session,
                         sizeof(session), &ag->cred.mint_err);
}

int bridge_connect(agent_t *ag)
{
    host_opts_t *o = ag->o;

    if (ag->life.finished || ag->life.stopping)
        return 0;
    ag->cred.using_resume = ag->cred.resume[0] != '\0';
    ag->cred.using_ticket = !ag->cred.using_resume && ag->cred.ticket[0] != '\0';
    if (!ag->cred.using_resume && !ag->cred.using_ticket) {
        if (!o->token) {
            agent_log("fatal: no credential left to reconnect (the ticket is spent and no "
                      "resume secret is held); set EGRESS_TOKEN so the agent can mint tickets");
            ag->bridge.ops->finish(ag, EXIT_AUTH);
            return -1;
        }
        if (!ag->cred.minting) {
            ag->cred.minting = 1;
            ag->cred.mint_work.data = ag;
            uv_queue_work(&ag->loop, &ag->cred.mint_work, bridge_mint_work, bridge_after_mint);
        }
        return 0;
    }
    ag->bridge.http_status = 0;
    ag->bridge.close_code = 0;
    ag->bridge.subproto[0] = '\0';
    ag->bridge.established = 0;
    ag->bridge.close_queued = 0;
    ag->bridge.hlen = 0;
    ag->rx.len = 0;
    ag->rx.too_large = 0;
    ag->rx.ctrl = ag->rx.fin = ag->rx.done = 0;
    ag->rx.close_frame = 0;
    ag->bridge.hello = 0;
    ag->bridge.active = 1;
    ag->bridge.ws = ws_sock_open(&ag->loop, o->url.tls ? ag->bridge.tls : NULL, o->url.host,
                                 o->url.port, BRIDGE_CONNECT_TIMEOUT_MS, &bridge_sock_cb, ag);
    if (!ag->bridge.ws) {
        ag->bridge.active = 0;
        agent_log("cannot start a connection to %s", o->coordinator);
        bridge_schedule_reconnect(ag, 0);
        return -1;
    }
    return 0;
}

int bridge_init(agent_t *ag, const bridge_ops_t *ops)
{
    ag->bridge.ops = ops;
    egress_idmap_init(&ag->bridge.v1ids, BRIDGE_V1_IDS_MAX);
    uv_timer_init(&ag->loop, &ag->bridge.retry_timer);
    ag->bridge.retry_timer.data = ag;
    uv_idle_init(&ag->loop, &ag->bridge.pump_idle);
    ag->bridge.pump_idle.data = ag;
    uv_timer_init(&ag->loop, &ag->bridge.ping_timer);
    ag->bridge.ping_timer.data = ag;
    egress_random_pool_empty(&ag->tx.keys); /* the first frame fills it */
    if (ag->o->url.tls && (ag->bridge.tls = ws_sock_tls_ctx()) == NULL) {
        agent_log("cannot create the TLS context: %s",
                  ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    return 0;
}

void bridge_stop(agent_t *ag)
{
    ag->bridge.active = 0;
    bridge_close_socket(ag);
    uv_close((uv_handle_t *) &ag->bridge.pump_idle, NULL);
    uv_close((uv_handle_t *) &ag->bridge.ping_timer, NULL);
}

void bridge_free(agent_t *ag)
{
    for (wsmsg_t *m = ag->pool.msgs, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    ag->pool.msgs = NULL;
    ag->pool.nmsgs = 0;
    egress_idmap_free(&ag->bridge.v1ids);
    free(ag->rx.buf);
    ag->rx.buf = NULL;
    if (ag->bridge.tls)
        SSL_CTX_free(ag->bridge.tls);
    ag->bridge.tls = NULL;
}

static void bridge_on_retry(uv_timer_t *t)
{
    bridge_connect(t->data);
}

void bridge_schedule_reconnect(agent_t *ag, int immediate)
{
    uint64_t delay = 0;

    if (!immediate) {
        unsigned shift = ag->bridge.attempts < 10 ? ag->bridge.attempts : 10;
        uint64_t d = (uint64_t) BACKOFF_BASE_MS << shift;
        if (d > BACKOFF_CAP_MS)
            d = BACKOFF_CAP_MS;
        /* "equal jitter": half fixed, half random, so agents do not retry in lockstep */
        uint32_t r = 0;
        egress_random_bytes(&r, sizeof(r), NULL);
        delay = d / 2 + r % (d / 2 + 1);
        ag->bridge.attempts++;
    }
    uv_timer_start(&ag->bridge.retry_timer, bridge_on_retry, delay, 0);
}
