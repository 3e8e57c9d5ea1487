/*
 * session.c: pairing of the host and client sockets of a session, and the
 * relay between them (see session.h for the memory and copy rules).
 */

#include <stdlib.h>
#include <string.h>

#include "agent_sock.h"
#include "session.h"

session_stats_t session_stats;

static session_t *sessions;

session_t *session_list(void)
{
    return sessions;
}

session_t *session_find(const char *lease_id)
{
    session_t *s;

    for (s = sessions; s != NULL; s = s->next) {
        if (strcmp(s->lease_id, lease_id) == 0) {
            return s;
        }
    }
    return NULL;
}

/* A message left for c's socket. */
static void session_on_written(conn_t *c, const msg_t *m)
{
    session_stats.frames_out++;
    session_stats.bytes_out += m->len;
    if (m->credit_n && c->sess) {
        translate_on_written(c->sess, c, m);
    }
}

int session_on_writable(conn_t *c)
{
    if (conn_write(c, session_on_written) < 0) {
        return -1;
    }
    if (c->sess) {
        session_update_flow(c->sess);
    }
    return 0;
}

void session_update_flow(session_t *s)
{
    int r;

    for (r = 0; r < 2; r++) {
        conn_t *src = s->conn[r], *dst = s->conn[1 - r];
        size_t held;

        if (src == NULL) {
            continue;
        }
        held = dst ? dst->q_bytes + s->pend_bytes[dst->role] : 0;
        if (!src->paused && held > coord_cfg.queue_cap) {
            src->paused = 1;
            session_stats.rx_pauses++;
            agent_sock_rx(src->sock, 0);
        } else if (src->paused && held <= coord_cfg.queue_cap / 2) {
            src->paused = 0;
            /* We were not reading (not even pongs): do not count that time. */
            src->quiet_ticks = 0;
            agent_sock_rx(src->sock, 1);
        }
    }
}

/* ---- liveness ---------------------------------------------------------- */

void session_ping_tick(void)
{
    session_t *s, *next;
    conn_t *silent[2];
    int r;

    for (s = sessions; s != NULL; s = next) {
        next = s->next;
        for (r = 0; r < 2; r++) {
            silent[r] =
                s->conn[r] != NULL && conn_liveness_tick(s->conn[r]) ? s->conn[r] : NULL;
        }
        for (r = 0; r < 2; r++) {
            conn_t *c = silent[r];

            if (c == NULL) {
                continue;
            }
            coord_log("socket_silent", "lease=%s session=%s role=%s addr=%s pings=%d",
                      s->lease_id, s->session_id, role_name(c->role), c->peer_addr,
                      CONN_QUIET_TICKS - 1);
            session_stats.sockets_silent++;
            /* The peer hears at once; conn_close() gives the socket a deadline to end
             * the socket whatever the silent agent does. */
            session_detach(c);
            conn_close(c, EGRESS_CLOSE_GOING_AWAY, "no answer to pings");
        }
        /* s may be freed now; next was taken before. */
    }
}

/* ---- session lifecycle ------------------------------------------------- */

session_t *session_get(const char *lease_id, const char *session_id)
{
    session_t *s = session_find(lease_id);

    if (s != NULL && strcmp(s->session_id, session_id) == 0) {
        return s;
    }
    if (s != NULL) {
        session_end(lease_id, EGRESS_CLOSE_SESSION_REPLACED, "egress_session_replaced");
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    snprintf(s->lease_id, sizeof(s->lease_id), "%s", lease_id);
    snprintf(s->session_id, sizeof(s->session_id), "%s", session_id);
    egress_idmap_init(&s->v1ids, STREAMS_MAX);
    s->next = sessions;
    sessions = s;
    session_stats.sessions_live++;
    return s;
}

static void session_unlink(session_t *s)
{
    session_t **pp;

    for (pp = &sessions; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            session_stats.sessions_live--;
            return;
        }
    }
}

void session_maybe_free(session_t *s)
{
    if (s->conn[0] == NULL && s->conn[1] == NULL) {
        stream_clear_all(s);
        session_unlink(s);
        egress_idmap_free(&s->v1ids);
        free(s);
    }
}

void session_end(const char *lease_id, int code, const char *reason)
{
    session_t *s = session_find(lease_id);
    int r;

    if (s == NULL) {
        return;
    }
    coord_log("session_end", "lease=%s session=%s code=%d reason=%s", s->lease_id,
              s->session_id, code, reason);
    for (r = 0; r < 2; r++) {
        conn_t *c = s->conn[r];
        if (c != NULL) {
            /* The socket lives until it has closed; it no longer belongs here. */
            c->sess = NULL;
            s->conn[r] = NULL;
            session_stats.sockets_live[r]--;
            if (c->paused) {
                c->paused = 0;
                agent_sock_rx(c->sock, 1);
            }
            conn_close(c, code, reason);
        }
    }
    session_maybe_free(s);
}

static void session_unplug(conn_t *c);
static int session_relay(session_t *s, conn_t *c, conn_t *peer, stream_t *st,
                         const egress_frame_t *f, msg_t *m);
static int early_wanted(const conn_t *c, const conn_t *peer, const stream_t *st,
                        const egress_frame_t *f);
static void early_hold(session_t *s, conn_t *c, conn_t *peer, stream_t *st,
                       const egress_frame_t *f, msg_t *m);
static int early_release(session_t *s, conn_t *client, conn_t *host, uint32_t id);

static void send_peer(conn_t *c, int connected)
{
    egress_frame_t f;

    if (c == NULL || c->version != EGRESS_PROTO_V2) {
        return;
    }
    memset(&f, 0, sizeof(f));
    f.type = EGRESS_FRAME_PEER;
    f.connected = connected ? 1 : 0;
    conn_send_frame(c, &f);
}

int session_attach(session_t *s, conn_t *c, const char *resume)
{
    conn_t *old = s->conn[c->role], *peer = s->conn[1 - c->role];
    egress_frame_t f;

    if (old != NULL) {
        coord_log("socket_replaced", "lease=%s session=%s role=%s", s->lease_id, s->session_id,
                  role_name(c->role));
        session_stats.sockets_replaced++;
        /* Not session_detach(): the old socket may be the session's only one,
         * and the session must outlive it to take the new socket. */
        session_unplug(old);
        conn_close(old, EGRESS_CLOSE_SOCKET_REPLACED, "egress_socket_replaced");
    }
    c->sess = s;
    s->conn[c->role] = c;
    s->since[c->role] = coord_now();
    session_stats.sockets_live[c->role]++;
    session_stats.sockets_accepted[c->role]++;
    if (c->version == EGRESS_PROTO_V2) {
        memset(&f, 0, sizeof(f));
        f.type = EGRESS_FRAME_HELLO;
        f.session_id.data = s->session_id;
        f.session_id.len = strlen(s->session_id);
        f.role.data = role_name(c->role);
        f.role.len = strlen(f.role.data);
        f.peer_connected = peer != NULL;
        f.resume.data = resume ? resume : "";
        f.resume.len = resume ? strlen(resume) : 0;
        if (conn_send_frame(c, &f) < 0) {
            return -1;
        }
    }
    send_peer(peer, 1);
    return 0;
}

/* Takes c out of its session (the peer hears of it) and leaves the session in
 * memory even when it has no socket left; the caller frees or refills it. */
static void session_unplug(conn_t *c)
{
    session_t *s = c->sess;
    conn_t *peer;

    if (s == NULL) {
        return;
    }
    c->sess = NULL;
    if (s->conn[c->role] != c) {
        return;
    }
    s->conn[c->role] = NULL;
    s->since[c->role] = coord_now();
    session_stats.sockets_live[c->role]--;
    peer = s->conn[1 - c->role];
    /* Every stream dies with either socket; both sides drop their streams. */
    stream_clear_all(s);
    traffic_advance(&s->traffic, coord_now(), 0);
    if (peer != NULL) {
        send_peer(peer, 0);
        if (peer->paused) {
            peer->paused = 0;
            agent_sock_rx(peer->sock, 1);
        }
    }
}

void session_detach(conn_t *c)
{
    session_t *s = c->sess;

    session_unplug(c);
    if (s != NULL) {
        session_maybe_free(s);
    }
}

/* ---- relay ------------------------------------------------------------- */

static int frame_allowed(int role, egress_frame_type_e t)
{
    switch (t) {
    case EGRESS_FRAME_DATA:
    case EGRESS_FRAME_CLOSE:
        return 1;
    case EGRESS_FRAME_WINDOW:
        return 1; /* only decodable on v2 */
    case EGRESS_FRAME_OPEN:
        return role == ROLE_CLIENT;
    case EGRESS_FRAME_OPEN_OK:
    case EGRESS_FRAME_ERROR:
        return role == ROLE_HOST;
    default:
        return 0;
    }
}

/* Answers the open of f with error (v1: under the open's own string id). */
static void answer_error(conn_t *c, const egress_frame_t *open, const char *msg)
{
    egress_frame_t f;

    memset(&f, 0, sizeof(f));
    f.type = EGRESS_FRAME_ERROR;
    f.id = open->id;
    f.wire_id = open->wire_id;
    f.message.data = msg;
    f.message.len = strlen(msg);
    conn_send_frame(c, &f);
}

/* Stream bookkeeping shared by both relay paths. Returns the stream or NULL
 * when the frame belongs to no live stream (then it is dropped). *fatal is set
 * on a protocol violation. */
static stream_t *track(session_t *s, conn_t *c, const egress_frame_t *f, int *fatal)
{
    stream_t *st = stream_find(s, f->id);

    switch (f->type) {
    case EGRESS_FRAME_OPEN:
        if (st != NULL) {
            *fatal = 1; /* ids are not reused while live */
            return NULL;
        }
        return stream_add(s, f->id);
    case EGRESS_FRAME_OPEN_OK:
        if (st != NULL) {
            st->opened = 1;
        }
        return st;
    default:
        return st;
    }
}

static void untrack(session_t *s, stream_t *st, conn_t *c, const egress_frame_t *f)
{
    if (st == NULL) {
        return;
    }
    if (f->type == EGRESS_FRAME_ERROR) {
        stream_remove(s, f->id);
    } else if (f->type == EGRESS_FRAME_CLOSE) {
        if (f->half) {
            if (c->role == ROLE_CLIENT) {
                st->half_client = 1;
            } else {
                st->half_host = 1;
            }
        }
        if (!f->half || (st->half_client && st->half_host)) {
            stream_remove(s, f->id);
        }
    }
}

/* What the operator's view keeps of a frame of a live stream: its
 * destination's counters and the traffic ring. */
static void session_note(session_t *s, conn_t *c, stream_t *st, const egress_frame_t *f)
{
    int64_t now = coord_now();

    switch (f->type) {
    case EGRESS_FRAME_OPEN:
        st->dest = dest_open(&s->dests, f->host.data, f->host.len, f->port, now);
        traffic_add(&s->traffic, now, (uint32_t) s->nstreams, 0, 0);
        break;
    case EGRESS_FRAME_OPEN_OK:
        dest_opened(&s->dests, st->dest, now);
        break;
    case EGRESS_FRAME_ERROR:
        if (!st->opened) {
            dest_refused(&s->dests, st->dest, dest_classify(f->message.data, f->message.len),
                         now);
        }
        break;
    case EGRESS_FRAME_DATA:
        dest_bytes(&s->dests, st->dest, c->role == ROLE_CLIENT, f->body_len, now);
        traffic_add(&s->traffic, now, (uint32_t) s->nstreams,
                    c->role == ROLE_CLIENT ? f->body_len : 0,
                    c->role == ROLE_CLIENT ? 0 : f->body_len);
        break;
    default:
        break;
    }
}

/* A stream may have ended: the ring keeps the count that holds from now. */
static void session_note_end(session_t *s, const egress_frame_t *f)
{
    if (f->type == EGRESS_FRAME_CLOSE || f->type == EGRESS_FRAME_ERROR) {
        traffic_advance(&s->traffic, coord_now(), (uint32_t) s->nstreams);
    }
}

int session_on_message(conn_t *c, msg_t *m)
{
    session_t *s = c->sess;
    egress_frame_t f;
    egress_error_t err;
    conn_t *peer;
    stream_t *st;
    int fatal = 0, rc = 0;

    session_stats.frames_in++;
    session_stats.bytes_in += m->len;
    if (egress_frame_decode(&f, c->version, MSG_DATA(m), m->len, m->binary, &err) < 0) {
        session_stats.frames_rejected++;
        coord_log("frame_rejected", "lease=%s role=%s error=%s detail=\"%s\"",
                  s ? s->lease_id : "-", role_name(c->role), egress_err_name(err.code),
                  err.message);
        free(m);
        return err.code == EGRESS_ERR_TOO_LARGE ? EGRESS_CLOSE_TOO_BIG : EGRESS_CLOSE_POLICY;
    }
    if (!frame_allowed(c->role, f.type)) {
        session_stats.frames_rejected++;
        coord_log("frame_rejected", "lease=%s role=%s error=direction frame=%s",
                  s ? s->lease_id : "-", role_name(c->role), egress_frame_type_name(f.type));
        egress_frame_release(&f);
        free(m);
        return EGRESS_CLOSE_POLICY;
    }
    if (s == NULL) {
        /* Socket already detached (replaced/ended): drop quietly. */
        egress_frame_release(&f);
        free(m);
        return 0;
    }
    s->frames++;
    peer = s->conn[1 - c->role];
    if (f.type == EGRESS_FRAME_DATA) {
        if (c->role == ROLE_CLIENT) {
            s->bytes_up += f.body_len;
        } else {
            s->bytes_down += f.body_len;
        }
    }
    if (f.type == EGRESS_FRAME_OPEN && (peer == NULL || s->nstreams >= STREAMS_MAX)) {
        int64_t now = coord_now();
        dest_ref_t ref = dest_open(&s->dests, f.host.data, f.host.len, f.port, now);

        dest_refused(&s->dests, ref, peer == NULL ? DEST_REASON_NO_HOST : DEST_REASON_OTHER,
                     now);
        if (peer == NULL) {
            session_stats.opens_no_host++;
        }
        answer_error(c, &f, peer == NULL ? "host agent not connected" : "too many streams");
        egress_frame_release(&f);
        free(m);
        return 0;
    }
    if (c->version == EGRESS_PROTO_V1 && f.wire_id.len != 0 &&
        egress_idmap_resolve(&s->v1ids, &f, &err) < 0) {
        answer_error(c, &f, "too many streams");
        egress_frame_release(&f);
        free(m);
        return 0;
    }
    if (f.id == 0) {
        /* v1: an id no live stream has (a late frame): drop */
        egress_frame_release(&f);
        free(m);
        return 0;
    }
    st = track(s, c, &f, &fatal);
    if (fatal) {
        coord_log("frame_rejected", "lease=%s role=%s error=id_reused id=%u", s->lease_id,
                  role_name(c->role), f.id);
        session_stats.frames_rejected++;
        egress_frame_release(&f);
        free(m);
        return EGRESS_CLOSE_POLICY;
    }
    if (st != NULL) {
        session_note(s, c, st, &f);
    }
    if (peer == NULL || (st == NULL && f.type != EGRESS_FRAME_OPEN)) {
        /* No peer, or a frame for a stream that already died: drop. */
        egress_frame_release(&f);
        free(m);
        return 0;
    }
    if (st != NULL && early_wanted(c, peer, st, &f)) {
        early_hold(s, c, peer, st, &f, m);
        egress_frame_release(&f);
        session_update_flow(s);
        return 0;
    }
    rc = session_relay(s, c, peer, st, &f, m);
    if (rc == 0 && f.type == EGRESS_FRAME_OPEN_OK) {
        rc = early_release(s, peer, c, f.id);
    }
    egress_frame_release(&f);
    session_update_flow(s);
    return rc;
}

/* Sends m (its frame decoded in f) on to peer: untouched when both speak the
 * same version, else translated. Takes m. */
static int session_relay(session_t *s, conn_t *c, conn_t *peer, stream_t *st,
                         const egress_frame_t *f, msg_t *m)
{
    int rc;

    if (peer->version == c->version) {
        /* Pass-through: the assembled buffer goes out untouched. */
        untrack(s, st, c, f);
        session_note_end(s, f);
        msg_classify(m, f);
        conn_enqueue(peer, m);
        return 0;
    }
    rc = translate_forward(s, c, peer, st, f);
    if (rc == 0) {
        untrack(s, stream_find(s, f->id), c, f);
        session_note_end(s, f);
    }
    free(m);
    return rc == 1 ? 0 : rc; /* 1: translate_forward owns the stream's end */
}

/*
 * Early data. A client may send a request's bytes right behind its open
 * (one round trip instead of two, docs/protocol.md "Early data"). Our host
 * agent holds them while it dials and says so in its upgrade
 * (X-Egress-Features: early-data); any other host (an older egress, or
 * crabbox's agent) drops data for a connection it has not finished, so for
 * it the coordinator holds the client's frames of a stream until open_ok
 * and drops them on error. Bounded per stream and per session.
 */
#define EARLY_STREAM_MAX  (1024 * 1024) /* a v2 sender stops at 256 KiB */
#define EARLY_SESSION_MAX (16 * 1024 * 1024)

static int early_wanted(const conn_t *c, const conn_t *peer, const stream_t *st,
                        const egress_frame_t *f)
{
    if (c->role != ROLE_CLIENT || st->opened || peer->early_data) {
        return 0;
    }
    /* behind held data, a half-close waits too; a full close ends the stream */
    return f->type == EGRESS_FRAME_DATA || (f->type == EGRESS_FRAME_CLOSE && f->half);
}

static void early_hold(session_t *s, conn_t *c, conn_t *peer, stream_t *st,
                       const egress_frame_t *f, msg_t *m)
{
    egress_frame_t cl;
    uint32_t id = st->id;

    if (st->early_bytes + m->len > EARLY_STREAM_MAX ||
        s->early_bytes + m->len > EARLY_SESSION_MAX) {
        coord_log("early_data_refused", "lease=%s id=%u held=%zu", s->lease_id, id,
                  st->early_bytes);
        free(m);
        /* both ends hear the stream is over; it never reached the host's dial */
        answer_error(c, f, "too much data before the host agent connected");
        memset(&cl, 0, sizeof(cl));
        cl.type = EGRESS_FRAME_CLOSE;
        cl.id = id;
        (void) conn_send_frame(peer, &cl);
        stream_remove(s, id);
        return;
    }
    m->next = NULL;
    if (st->early_tail != NULL) {
        st->early_tail->next = m;
    } else {
        st->early_head = m;
    }
    st->early_tail = m;
    st->early_bytes += m->len;
    s->early_bytes += m->len;
    session_stats.early_held += m->len;
}

/* open_ok for id came from the host: what the client sent early follows it. */
static int early_release(session_t *s, conn_t *client, conn_t *host, uint32_t id)
{
    egress_frame_t f;
    egress_error_t err;
    stream_t *st = stream_find(s, id);
    msg_t *m;
    int rc = 0;

    while (rc == 0 && st != NULL && (m = st->early_head) != NULL) {
        st->early_head = m->next;
        if (st->early_head == NULL) {
            st->early_tail = NULL;
        }
        m->next = NULL;
        st->early_bytes -= m->len;
        s->early_bytes -= m->len;
        if (egress_frame_decode(&f, client->version, MSG_DATA(m), m->len, m->binary, &err) <
            0) {
            free(m); /* it decoded when it arrived */
            continue;
        }
        if (client->version == EGRESS_PROTO_V1 && f.wire_id.len != 0 &&
            egress_idmap_resolve(&s->v1ids, &f, &err) < 0) {
            egress_frame_release(&f);
            free(m); /* its id resolved when it arrived */
            continue;
        }
        rc = session_relay(s, client, host, st, &f, m);
        egress_frame_release(&f);
        st = stream_find(s, id);
    }
    return rc;
}
