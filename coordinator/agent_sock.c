/*
 * agent_sock.c: an agent's WebSocket on our own framing. Reads go through
 * the lib reader (mask required, control frames checked, fragments under
 * EGRESS_MAX_MESSAGE); a bad frame is answered with a close frame that
 * names it (1002, 1009) while what the agent still sends is read and
 * dropped, so the close is not lost in a reset. Writes never block: the
 * kernel's leftovers wait here and go first on the next writable event.
 */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_sock.h"
#include "conn.h"
#include "egress.h"
#include "egress_wsserver.h"
#include "front.h"
#include "session.h"
#include "ws_bridge.h"

/* Bytes the kernel may hold unsent on an agent socket: what is beyond stays
 * in our queue, where control frames can still pass it (conn_enqueue). */
#define AS_NOTSENT_LOWAT (128 * 1024)

struct agent_sock_s {
    front_obj_t obj; /* FRONT_AGENT */
    int fd;
    SSL *ssl;
    uint32_t events; /* epoll interest */
    conn_t *conn;
    egress_ws_reader_t rd;
    unsigned char *out; /* bytes the kernel has not taken yet */
    size_t out_off, out_len, out_cap;
    unsigned char pong[EGRESS_WS_SERVER_HDR_MAX + EGRESS_WS_CONTROL_MAX];
    size_t pong_len;
    int64_t deadline; /* monotonic ms; 0: none */
    struct agent_sock_s *next, *prev, *kick_next, *write_next;
    unsigned rx_off : 1;
    unsigned want_out : 1;
    unsigned close_sent : 1;
    unsigned peer_closed : 1;
    unsigned write_shut : 1;
    unsigned dead : 1;
    unsigned kicked : 1;
    unsigned write_queued : 1; /* in writers */
    unsigned in_event : 1;
};

/*
 * kicks: to read outside an epoll batch; writers: to write outside one (a
 * frame relayed from another socket goes out in the loop turn it came in,
 * not a turn later after two epoll_ctl calls to ask for EPOLLOUT).
 */
static agent_sock_t *socks, *kicks, *writers;
static unsigned char rbuf[COORD_READ_BUF];

static void as_update(agent_sock_t *s)
{
    uint32_t ev = 0;

    if (s->dead) {
        return;
    }
    if (!s->rx_off) {
        ev |= EPOLLIN;
    }
    if (s->want_out || s->pong_len > 0 || s->out_off < s->out_len) {
        ev |= EPOLLOUT;
    }
    if (front_watch(s->fd, &s->obj, &s->events, ev) < 0) {
        s->dead = 1;
    }
}

agent_sock_t *agent_sock_new(int fd, SSL *ssl)
{
    agent_sock_t *s = calloc(1, sizeof(*s));
    int v;

    if (s == NULL) {
        return NULL;
    }
    s->obj.kind = FRONT_AGENT;
    s->fd = fd;
    s->ssl = ssl;
    /* A message's buffer is a msg_t: its header, then MSG_PRE bytes free. */
    egress_ws_reader_init(&s->rd, EGRESS_MAX_MESSAGE, offsetof(msg_t, buf) + MSG_PRE);
    v = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v));
#ifdef TCP_NOTSENT_LOWAT
    /* best effort: without it the order is only kept in our own queue */
    v = AS_NOTSENT_LOWAT;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v));
#endif
    s->next = socks;
    if (socks != NULL) {
        socks->prev = s;
    }
    socks = s;
    as_update(s);
    return s;
}

void agent_sock_set_conn(agent_sock_t *s, conn_t *c)
{
    s->conn = c;
}

static void as_unkick(agent_sock_t *s)
{
    agent_sock_t **pp;

    for (pp = &kicks; *pp != NULL; pp = &(*pp)->kick_next) {
        if (*pp == s) {
            *pp = s->kick_next;
            break;
        }
    }
}

static void as_unqueue_write(agent_sock_t *s)
{
    agent_sock_t **pp;

    for (pp = &writers; *pp != NULL; pp = &(*pp)->write_next) {
        if (*pp == s) {
            *pp = s->write_next;
            break;
        }
    }
    s->write_queued = 0;
}

void agent_sock_destroy(agent_sock_t *s)
{
    if (s->conn != NULL) {
        ws_on_gone(s->conn); /* leaves the session, frees the conn */
        s->conn = NULL;
    }
    if (s->kicked) {
        as_unkick(s);
    }
    if (s->write_queued) {
        as_unqueue_write(s);
    }
    front_watch(s->fd, &s->obj, &s->events, 0);
    if (s->ssl != NULL) {
        SSL_free(s->ssl);
    }
    close(s->fd);
    egress_ws_reader_free(&s->rd);
    free(s->out);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        socks = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    free(s);
}

/* Writes what waits; 0 (maybe still busy), or -1. */
static int as_flush(agent_sock_t *s)
{
    while (s->out_off < s->out_len) {
        ssize_t n = front_io_write(s->fd, s->ssl, s->out + s->out_off, s->out_len - s->out_off);

        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            return 0;
        }
        s->out_off += (size_t) n;
    }
    s->out_off = s->out_len = 0;
    return 0;
}

static int as_keep(agent_sock_t *s, const unsigned char *p, size_t n)
{
    if (s->out_off > 0 && s->out_off == s->out_len) {
        s->out_off = s->out_len = 0;
    }
    if (s->out_len + n > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 4096;
        unsigned char *nb;

        while (cap < s->out_len + n) {
            cap *= 2;
        }
        nb = realloc(s->out, cap);
        if (nb == NULL) {
            return -1;
        }
        s->out = nb;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
    return 0;
}

int agent_sock_send(agent_sock_t *s, const void *p, size_t n)
{
    const unsigned char *b = p;
    ssize_t w;

    if (s->dead) {
        return -1;
    }
    if (s->out_off == s->out_len) {
        w = front_io_write(s->fd, s->ssl, b, n);
        if (w < 0) {
            s->dead = 1;
            return -1;
        }
        b += w;
        n -= (size_t) w;
    }
    if (n > 0) {
        if (as_keep(s, b, n) < 0) {
            s->dead = 1;
            return -1;
        }
        if (!s->in_event) {
            as_update(s);
        }
    }
    return 0;
}

int agent_sock_busy(const agent_sock_t *s)
{
    return s->out_off < s->out_len;
}

void agent_sock_want_write(agent_sock_t *s)
{
    if (!s->want_out) {
        s->want_out = 1;
        /* in its own event, agent_sock_event() asks for EPOLLOUT if still needed */
        if (!s->in_event && !s->write_queued) {
            s->write_queued = 1;
            s->write_next = writers;
            writers = s;
        }
    }
}

void agent_sock_rx(agent_sock_t *s, int on)
{
    if (s->rx_off == !on) {
        return;
    }
    s->rx_off = !on;
    if (on && s->ssl != NULL && SSL_pending(s->ssl) > 0 && !s->kicked) {
        /* decrypted bytes wait inside OpenSSL: epoll will not say so */
        s->kicked = 1;
        s->kick_next = kicks;
        kicks = s;
    }
    if (!s->in_event) {
        as_update(s);
    }
}

void agent_sock_close_within(agent_sock_t *s, int ms)
{
    if (s->deadline == 0) {
        s->deadline = coord_mono_ms() + ms;
    }
}

/* Handles bytes read from the agent. */
static void as_input(agent_sock_t *s, const unsigned char *p, size_t n)
{
    egress_ws_event_t ev;
    conn_t *c;
    size_t used;

    for (;;) {
        c = s->conn;
        if (c != NULL) {
            c->heard = 1; /* any traffic proves the agent alive, not only a pong */
        }
        used = egress_ws_read(&s->rd, p, n, &ev);
        p += used;
        n -= used;
        switch (ev.type) {
        case EGRESS_WS_EV_NONE:
            return;
        case EGRESS_WS_EV_MESSAGE: {
            size_t cap;
            msg_t *m = (msg_t *) egress_ws_reader_take(&s->rd, &cap);

            if (m == NULL) {
                s->dead = 1;
                return;
            }
            memset(m, 0, offsetof(msg_t, buf));
            m->len = ev.len;
            m->cap = cap;
            m->binary = ev.binary ? 1 : 0;
            if (c == NULL || c->close_code || s->close_sent) {
                free(m); /* closing: drop what is still in flight */
            } else {
                ws_on_message(c, m);
            }
            break;
        }
        case EGRESS_WS_EV_PING:
            if (!s->close_sent) {
                size_t h = egress_ws_server_header(s->pong, EGRESS_WS_OP_PONG, 1, ev.len);

                memcpy(s->pong + h, ev.data, ev.len);
                s->pong_len = h + ev.len;
            }
            break;
        case EGRESS_WS_EV_PONG:
            break;
        case EGRESS_WS_EV_CLOSE:
            s->peer_closed = 1;
            if (s->close_sent || c == NULL) {
                s->dead = 1;
                return;
            }
            ws_on_peer_close(c, ev.code);
            return;
        case EGRESS_WS_EV_ERROR:
            /* A reader that failed stays failed: the rest is dropped unread. */
            if (c != NULL && !c->close_code && !s->close_sent) {
                ws_on_bad_frame(c, ev.code, ev.why);
            }
            return;
        }
    }
}

void agent_sock_feed(agent_sock_t *s, const unsigned char *p, size_t n)
{
    if (n > 0) {
        s->in_event = 1;
        as_input(s, p, n);
        s->in_event = 0;
        if (s->dead) {
            agent_sock_destroy(s);
            return;
        }
        as_update(s);
    }
}

static void as_read(agent_sock_t *s)
{
    ssize_t n;

    do {
        n = front_io_read(s->fd, s->ssl, rbuf, sizeof(rbuf));
        if (n < 0) {
            s->dead = 1;
            return;
        }
        if (n == 0) {
            return;
        }
        as_input(s, rbuf, (size_t) n);
    } while (!s->dead && !s->rx_off && s->ssl != NULL && SSL_pending(s->ssl) > 0);
}

/* Our close frame is out: wait for the agent's (or its FIN), not longer than
 * the deadline. */
static void as_after_close(agent_sock_t *s)
{
    if (s->peer_closed) {
        s->dead = 1;
        return;
    }
    if (!s->write_shut) {
        s->write_shut = 1;
        if (s->ssl != NULL) {
            (void) SSL_shutdown(s->ssl);
        } else {
            (void) shutdown(s->fd, SHUT_WR);
        }
    }
}

static void as_writable(agent_sock_t *s)
{
    conn_t *c = s->conn;

    s->want_out = 0;
    if (as_flush(s) < 0) {
        s->dead = 1;
        return;
    }
    if (agent_sock_busy(s)) {
        return;
    }
    if (s->pong_len > 0) {
        size_t n = s->pong_len;

        s->pong_len = 0;
        if (agent_sock_send(s, s->pong, n) < 0 || agent_sock_busy(s)) {
            return;
        }
    }
    if (s->close_sent) {
        as_after_close(s);
        return;
    }
    if (c == NULL) {
        return;
    }
    if (c->close_code) {
        unsigned char f[EGRESS_WS_SERVER_HDR_MAX + EGRESS_WS_CONTROL_MAX];
        size_t h = egress_ws_server_header(f, EGRESS_WS_OP_CLOSE, 1, 0), n;

        n = egress_ws_close_payload(f + h, c->close_code, c->close_reason);
        egress_ws_server_header(f, EGRESS_WS_OP_CLOSE, 1, n); /* n <= 125: still 2 bytes */
        s->close_sent = 1;
        agent_sock_close_within(s, 5000);
        if (agent_sock_send(s, f, h + n) < 0 || agent_sock_busy(s)) {
            return;
        }
        as_after_close(s);
        return;
    }
    if (session_on_writable(c) < 0) {
        s->dead = 1;
    }
}

void agent_sock_event(agent_sock_t *s, uint32_t events)
{
    s->in_event = 1;
    /* A hang-up or an error is read even while paused: epoll repeats it. */
    if ((events & (EPOLLHUP | EPOLLERR)) || ((events & EPOLLIN) && !s->rx_off)) {
        as_read(s);
    }
    if (!s->dead && (events & EPOLLOUT)) {
        as_writable(s);
    }
    s->in_event = 0;
    if (s->dead) {
        agent_sock_destroy(s);
        return;
    }
    as_update(s);
}

void agent_sock_after_events(void)
{
    while (kicks != NULL || writers != NULL) {
        agent_sock_t *s;

        if (kicks != NULL) {
            s = kicks;
            kicks = s->kick_next;
            s->kicked = 0;
            if (!s->rx_off) {
                agent_sock_event(s, EPOLLIN);
            }
            continue;
        }
        /* as if writable: what the socket does not take waits for EPOLLOUT */
        s = writers;
        writers = s->write_next;
        s->write_queued = 0;
        agent_sock_event(s, EPOLLOUT);
    }
}

void agent_sock_tick(void)
{
    int64_t now = coord_mono_ms();
    agent_sock_t *s, *next;

    for (s = socks; s != NULL; s = next) {
        next = s->next;
        if (s->deadline != 0 && now >= s->deadline) {
            agent_sock_destroy(s);
        }
    }
}

void agent_sock_close_all(void)
{
    while (socks != NULL) {
        agent_sock_destroy(socks);
    }
}
