/*
 * translate.c: relay between a v1 and a v2 socket of one session.
 *
 * v1 has no credit, no half-close and base64 JSON data; v2 has per-stream
 * windows and binary data. Toward the v2 side the coordinator acts as the
 * v2 endpoint of every stream: it advertises EGRESS_INITIAL_WINDOW on the v1
 * side's behalf and grants it back as it writes to the v1 socket, and it
 * holds v1 data back until the v2 side grants credit (those bytes count in
 * the session's pend_bytes, which pause the v1 socket above the cap).
 */

#include <stdlib.h>
#include <string.h>

#include "session.h"

/* Marks a pending control message (close/error) that needs no credit. */
#define PEND_CONTROL 0

static int forward_copy(conn_t *dst, const egress_frame_t *f)
{
    return conn_send_frame(dst, f);
}

/* v2 data from src (the v2 side) toward dst (v1): base64 JSON in chunks. */
static int data_to_v1(session_t *s, conn_t *src, conn_t *dst, stream_t *st,
                      const egress_frame_t *f)
{
    egress_error_t err;
    egress_frame_t out;
    size_t off = 0;

    if (egress_flow_on_received(&st->fl, f->body_len, &err) < 0) {
        coord_log("frame_rejected", "lease=%s role=%s error=flow id=%u", s->lease_id,
                  role_name(src->role), f->id);
        return EGRESS_CLOSE_POLICY;
    }
    memset(&out, 0, sizeof(out));
    out.type = EGRESS_FRAME_DATA;
    out.id = f->id;
    egress_idmap_label(&s->v1ids, &out);
    do {
        size_t n = f->body_len - off;
        size_t max;
        msg_t *m;
        int binary;

        if (n > EGRESS_DATA_CHUNK) {
            n = EGRESS_DATA_CHUNK;
        }
        out.body = f->body + off;
        out.body_len = n;
        max = egress_frame_encoded_max(&out, EGRESS_PROTO_V1);
        if ((m = msg_new(max)) == NULL) {
            return EGRESS_CLOSE_POLICY;
        }
        m->len = egress_frame_encode(&out, EGRESS_PROTO_V1, MSG_DATA(m), max, &binary, &err);
        if (m->len == 0) {
            free(m);
            return EGRESS_CLOSE_POLICY;
        }
        m->credit_id = f->id;
        m->credit_n = (uint32_t) n;
        m->sid = f->id;
        conn_enqueue(dst, m);
        off += n;
    } while (off < f->body_len);
    return 0;
}

static void pend_push(session_t *s, stream_t *st, int to_role, msg_t *m)
{
    m->next = NULL;
    if (st->pend_tail) {
        st->pend_tail->next = m;
    } else {
        st->pend_head = m;
    }
    st->pend_tail = m;
    st->pend_bytes += m->len;
    s->pend_bytes[to_role] += m->len;
}

/* v1 data from src toward dst (v2): binary chunks, held until credit allows. */
static int data_to_v2(session_t *s, conn_t *dst, stream_t *st, const egress_frame_t *f)
{
    size_t off = 0;

    do {
        size_t n = f->body_len - off;
        msg_t *m;

        if (n > EGRESS_DATA_CHUNK) {
            n = EGRESS_DATA_CHUNK;
        }
        if ((m = msg_new(EGRESS_V2_DATA_HEADER + n)) == NULL) {
            return EGRESS_CLOSE_POLICY;
        }
        egress_frame_data_header(MSG_DATA(m), f->id);
        memcpy(MSG_DATA(m) + EGRESS_V2_DATA_HEADER, f->body + off, n);
        m->len = EGRESS_V2_DATA_HEADER + n;
        m->binary = 1;
        pend_push(s, st, dst->role, m);
        off += n;
    } while (off < f->body_len);
    return 0;
}

/* A control frame toward the v2 side that must stay behind held-back data. */
static int control_to_v2(session_t *s, conn_t *dst, stream_t *st, const egress_frame_t *f)
{
    egress_error_t err;
    size_t max = egress_frame_encoded_max(f, EGRESS_PROTO_V2);
    msg_t *m;
    int binary;

    if (max == 0 || (m = msg_new(max)) == NULL) {
        return EGRESS_CLOSE_POLICY;
    }
    m->len = egress_frame_encode(f, EGRESS_PROTO_V2, MSG_DATA(m), max, &binary, &err);
    if (m->len == 0) {
        free(m);
        return EGRESS_CLOSE_POLICY;
    }
    m->binary = PEND_CONTROL;
    /* Control bytes are not payload; keep them out of the credit sums. */
    pend_push(s, st, dst->role, m);
    st->pend_bytes -= m->len;
    s->pend_bytes[dst->role] -= m->len;
    return 0;
}

int translate_forward(session_t *s, conn_t *src, conn_t *dst, stream_t *st,
                      const egress_frame_t *f)
{
    egress_frame_t out = *f;
    egress_error_t err;
    int rc;

    switch (f->type) {
    case EGRESS_FRAME_OPEN:
        if (dst->version == EGRESS_PROTO_V1) {
            /* v2 client: its window is our send credit toward it. */
            egress_flow_init(&st->fl, f->window ? f->window : EGRESS_INITIAL_WINDOW,
                             EGRESS_INITIAL_WINDOW);
            out.window = 0;
        } else {
            /* v1 client: the host's credit arrives with open_ok. */
            egress_flow_init(&st->fl, 0, EGRESS_INITIAL_WINDOW);
            out.window = EGRESS_INITIAL_WINDOW;
        }
        return forward_copy(dst, &out) < 0 ? EGRESS_CLOSE_POLICY : 0;

    case EGRESS_FRAME_OPEN_OK:
        if (dst->version == EGRESS_PROTO_V2) {
            out.window = EGRESS_INITIAL_WINDOW;
            return forward_copy(dst, &out) < 0 ? EGRESS_CLOSE_POLICY : 0;
        }
        st->fl.send_credit = f->window ? f->window : EGRESS_INITIAL_WINDOW;
        out.window = 0;
        if (forward_copy(dst, &out) < 0) {
            return EGRESS_CLOSE_POLICY;
        }
        translate_flush(s, st, src->role);
        return 0;

    case EGRESS_FRAME_DATA:
        if (src->version == EGRESS_PROTO_V2) {
            return data_to_v1(s, src, dst, st, f);
        }
        rc = data_to_v2(s, dst, st, f);
        if (rc == 0) {
            translate_flush(s, st, dst->role);
        }
        return rc;

    case EGRESS_FRAME_WINDOW:
        /* Only the v2 side sends window; it credits the coordinator. */
        if (egress_flow_on_window(&st->fl, f->increment, &err) < 0) {
            return EGRESS_CLOSE_POLICY;
        }
        translate_flush(s, st, src->role);
        return 1;

    case EGRESS_FRAME_CLOSE:
    case EGRESS_FRAME_ERROR:
        if (dst->version == EGRESS_PROTO_V1) {
            if (f->type == EGRESS_FRAME_CLOSE && f->half) {
                /*
                 * v1 knows only the full close, and a v1 peer (crabbox's
                 * client) waits for it to end its socket: the stream ends
                 * here for both sides, and the v2 side is told so.
                 */
                out.half = 0;
                if (forward_copy(dst, &out) < 0) {
                    return EGRESS_CLOSE_POLICY;
                }
                conn_send_frame(src, &out);
                stream_remove(s, f->id);
                return 1;
            }
            out.half = 0;
            return forward_copy(dst, &out) < 0 ? EGRESS_CLOSE_POLICY : 0;
        }
        if (st->pend_head == NULL) {
            return forward_copy(dst, &out) < 0 ? EGRESS_CLOSE_POLICY : 0;
        }
        /* Held-back data first: the stream ends when its queue drains. */
        if (control_to_v2(s, dst, st, &out) != 0) {
            return EGRESS_CLOSE_POLICY;
        }
        return 1;

    default:
        return EGRESS_CLOSE_POLICY;
    }
}

void translate_flush(session_t *s, stream_t *st, int to_role)
{
    conn_t *dst = s->conn[to_role];
    msg_t *m;
    int ended = 0;

    if (dst == NULL) {
        return;
    }
    while ((m = st->pend_head) != NULL) {
        if (m->binary) {
            size_t body = m->len - EGRESS_V2_DATA_HEADER;
            size_t room = egress_flow_send_room(&st->fl);

            if (room == 0) {
                break;
            }
            if (room < body) {
                /* A tiny window: send what fits, keep the rest queued. */
                msg_t *part = msg_new(EGRESS_V2_DATA_HEADER + room);
                if (part == NULL) {
                    break;
                }
                memcpy(MSG_DATA(part), MSG_DATA(m), EGRESS_V2_DATA_HEADER + room);
                memmove(MSG_DATA(m) + EGRESS_V2_DATA_HEADER,
                        MSG_DATA(m) + EGRESS_V2_DATA_HEADER + room, body - room);
                m->len -= room;
                part->len = EGRESS_V2_DATA_HEADER + room;
                part->binary = 1;
                /* Only payload moved: the header stays counted with m. */
                st->pend_bytes -= room;
                s->pend_bytes[to_role] -= room;
                egress_flow_on_sent(&st->fl, room);
                part->sid = st->id;
                conn_enqueue(dst, part);
                break;
            }
            st->pend_head = m->next;
            st->pend_bytes -= m->len;
            s->pend_bytes[to_role] -= m->len;
            egress_flow_on_sent(&st->fl, body);
        } else {
            st->pend_head = m->next;
            ended = 1; /* a close or error: the stream is over */
        }
        if (st->pend_head == NULL) {
            st->pend_tail = NULL;
        }
        m->sid = st->id;
        conn_enqueue(dst, m);
        if (ended) {
            stream_remove(s, st->id);
            return;
        }
    }
}

void translate_on_written(session_t *s, conn_t *c, const msg_t *m)
{
    stream_t *st = stream_find(s, m->credit_id);
    conn_t *v2 = s->conn[1 - c->role];
    egress_frame_t f;
    uint32_t inc;

    if (st == NULL || v2 == NULL || v2->version != EGRESS_PROTO_V2) {
        return;
    }
    inc = egress_flow_on_drained(&st->fl, m->credit_n);
    if (inc) {
        memset(&f, 0, sizeof(f));
        f.type = EGRESS_FRAME_WINDOW;
        f.id = m->credit_id;
        f.increment = inc;
        conn_send_frame(v2, &f);
    }
}
