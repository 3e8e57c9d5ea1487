/*
 * conn.c: one agent WebSocket's outbound queue, its writes and its liveness
 * pings. Knows nothing of sessions: what a written message means to the
 * relay is the caller's business (conn_write's callback).
 */

#include <stdlib.h>
#include <string.h>

#include "agent_sock.h"
#include "conn.h"
#include "egress_wsserver.h"
#include "session.h"

/* Largest piece of a message written as one frame, and the most
 * bytes written per writable callback so one busy socket cannot starve others. */
#define WRITE_PIECE  (64 * 1024)
#define WRITE_BUDGET (512 * 1024)

/* Messages up to WRITE_SMALL are copied together and leave in one send: an
 * open and the request behind it, or a burst of window frames, wake the
 * peer once instead of once each. */
#define WRITE_SMALL (4 * 1024)
#define WRITE_BATCH (16 * 1024)

static unsigned char batch[WRITE_BATCH];

const char *role_name(int role)
{
    return role == ROLE_HOST ? "host" : "client";
}

msg_t *msg_new(size_t cap)
{
    msg_t *m = malloc(sizeof(*m) + MSG_PRE + (cap ? cap : 1));

    if (m == NULL) {
        return NULL;
    }
    memset(m, 0, sizeof(*m));
    m->cap = cap;
    return m;
}

int conn_frame_urgent(egress_frame_type_e type)
{
    return type == EGRESS_FRAME_OPEN || type == EGRESS_FRAME_OPEN_OK ||
           type == EGRESS_FRAME_WINDOW || type == EGRESS_FRAME_HELLO;
}

int conn_frame_barrier(egress_frame_type_e type)
{
    return type == EGRESS_FRAME_PEER;
}

void msg_classify(msg_t *m, const egress_frame_t *f)
{
    m->urgent = conn_frame_urgent(f->type) ? 1 : 0;
    m->barrier = conn_frame_barrier(f->type) ? 1 : 0;
    m->sid = f->id;
}

/* Where urgent m goes: after the last urgent message or barrier, else after
 * a half-written head, else first; *waits set when a message of m's own
 * stream is queued past that point, and m must take its turn at the tail. */
static msg_t *conn_urgent_slot(conn_t *c, const msg_t *m, int *waits)
{
    msg_t *after, *q;

    after = c->q_urgent ? c->q_urgent : c->q_head->off > 0 ? c->q_head : NULL;
    *waits = 0;
    for (q = after ? after->next : c->q_head; q != NULL; q = q->next) {
        if (m->sid != 0 && q->sid == m->sid) {
            *waits = 1;
            return c->q_tail;
        }
    }
    return after;
}

void conn_enqueue(conn_t *c, msg_t *m)
{
    msg_t *after = c->q_tail;
    int waits = 0;

    m->next = NULL;
    m->off = 0;
    c->q_bytes += m->len;
    agent_sock_want_write(c->sock);
    if (m->urgent && c->q_head != NULL) {
        after = conn_urgent_slot(c, m, &waits);
    }
    if (after == NULL) {
        m->next = c->q_head;
        c->q_head = m;
    } else {
        m->next = after->next;
        after->next = m;
    }
    if (m->next == NULL) {
        c->q_tail = m;
    }
    /* later urgent messages go behind this one */
    if (m->barrier || (m->urgent && !waits)) {
        c->q_urgent = m;
    }
}

int conn_send_frame(conn_t *c, const egress_frame_t *frame)
{
    egress_error_t err;
    egress_frame_t v1 = *frame;
    const egress_frame_t *f = frame;
    size_t max = egress_frame_encoded_max(f, c->version), n;
    int binary = 0;
    msg_t *m;

    if (c->version == EGRESS_PROTO_V1 && c->sess != NULL) {
        /* toward a v1 client: the string id it chose for the stream */
        egress_idmap_label(&c->sess->v1ids, &v1);
        f = &v1;
    }

    if (max == 0 || (m = msg_new(max)) == NULL) {
        return -1;
    }
    n = egress_frame_encode(f, c->version, MSG_DATA(m), max, &binary, &err);
    if (n == 0) {
        coord_log("encode_error", "frame=%s error=\"%s\"", egress_frame_type_name(f->type),
                  err.message);
        free(m);
        return -1;
    }
    m->len = n;
    m->binary = binary ? 1 : 0;
    msg_classify(m, f);
    conn_enqueue(c, m);
    return 0;
}

void conn_free_queues(conn_t *c)
{
    msg_t *m, *n;

    for (m = c->q_head; m != NULL; m = n) {
        n = m->next;
        free(m);
    }
    c->q_head = c->q_tail = c->q_urgent = NULL;
    c->q_bytes = 0;
    free(c->rx);
    c->rx = NULL;
}

void conn_close(conn_t *c, int code, const char *reason)
{
    if (c->close_code == 0) {
        c->close_code = code;
        c->close_reason = reason;
        /* The close goes out from the writable event, which an agent that
         * stopped reading never lets come: the socket ends after 5 s. */
        agent_sock_close_within(c->sock, 5000);
    }
    agent_sock_want_write(c->sock);
}

int conn_write(conn_t *c, conn_written_fn on_written)
{
    size_t budget = WRITE_BUDGET, blen = 0;
    msg_t *m;

    if (c->ping_due) {
        /* A ping may go between the fragments of a message (RFC 6455 5.4). */
        unsigned char ping[2 + 4];
        size_t h = egress_ws_server_header(ping, EGRESS_WS_OP_PING, 1, 4);

        c->ping_due = 0;
        memcpy(ping + h, "egrs", 4);
        if (agent_sock_send(c->sock, ping, h + 4) < 0) {
            return -1;
        }
    }
    while ((m = c->q_head) != NULL && budget > 0 && !agent_sock_busy(c->sock)) {
        size_t piece = m->len - m->off, h;
        unsigned char hdr[EGRESS_WS_SERVER_HDR_MAX], *start;
        int op;

        if (piece > WRITE_PIECE) {
            piece = WRITE_PIECE;
        }
        /* Large messages go out as several fragments. The header goes right
         * before the piece: into the headroom, or over payload bytes of an
         * earlier piece, which the socket took or copied already. */
        op = m->off > 0  ? EGRESS_WS_OP_CONT
             : m->binary ? EGRESS_WS_OP_BINARY
                         : EGRESS_WS_OP_TEXT;
        h = egress_ws_server_header(hdr, op, m->off + piece == m->len, piece);
        if (m->off == 0 && m->len <= WRITE_SMALL && blen + h + m->len <= WRITE_BATCH) {
            memcpy(batch + blen, hdr, h);
            memcpy(batch + blen + h, MSG_DATA(m), m->len);
            blen += h + m->len;
        } else if (blen > 0) {
            /* what is batched goes first; then m, if the socket took it all */
            if (agent_sock_send(c->sock, batch, blen) < 0) {
                return -1;
            }
            blen = 0;
            continue;
        } else {
            start = MSG_DATA(m) + m->off - h;
            memcpy(start, hdr, h);
            if (agent_sock_send(c->sock, start, h + piece) < 0) {
                return -1;
            }
        }
        m->off += piece;
        budget = budget > piece ? budget - piece : 0;
        if (m->off == m->len) {
            c->q_head = m->next;
            if (c->q_head == NULL) {
                c->q_tail = NULL;
            }
            c->q_bytes -= m->len;
            if (c->q_urgent == m) {
                c->q_urgent = NULL;
            }
            on_written(c, m);
            free(m);
        }
    }
    if (blen > 0 && agent_sock_send(c->sock, batch, blen) < 0) {
        return -1;
    }
    if (c->q_head != NULL) {
        agent_sock_want_write(c->sock);
    }
    return 0;
}

/* Ticks are counted, not elapsed time, so a clock jump or a paused VM costs
 * one tick. */
int conn_liveness_tick(conn_t *c)
{
    if (c->heard || c->paused) {
        /* A paused socket is not read, so its pongs cannot arrive. */
        c->heard = 0;
        c->quiet_ticks = 0;
        return 0;
    }
    if (++c->quiet_ticks >= CONN_QUIET_TICKS) {
        return 1;
    }
    c->ping_due = 1;
    agent_sock_want_write(c->sock);
    return 0;
}
