/*
 * front.c: the listening socket, TLS, the first request head of every
 * connection, and the hand-over to lws of what is not an agent upgrade.
 *
 * A connection starts as a head_t: TLS handshake (with --tls-cert), then
 * the request head is read (looked at with MSG_PEEK on a plain socket), at
 * most FRONT_HEAD_MAX bytes within FRONT_HEAD_MS. A head with an Upgrade header is an agent
 * upgrade: it is answered here and the socket becomes an agent_sock_t. Anything else goes to
 * lws: a plain socket is adopted as it is, the head still unread; a TLS one through a
 * socketpair (pump_t) whose other end we feed from the TLS stream and back, each way through a
 * bounded buffer, while a table by lws's descriptor keeps the client's address for
 * front_peer().
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_sock.h"
#include "coord.h"
#include "egress.h"
#include "egress_httphead.h"
#include "front.h"
#include "metrics.h"
#include "ws_bridge.h"

#define FRONT_HEAD_MAX 8192
#define FRONT_HEAD_MS  10000 /* the whole head (and TLS handshake) within this */
#define FRONT_DRAIN_MS 2000  /* a refused connection's leftovers read this long */
#define FRONT_ACCEPTS  64    /* accepts per readiness event */
#define FRONT_EVENTS   64
#define PUMP_BUF       (32 * 1024)
#define FRONT_FD_TABLE 65536

typedef struct head_s {
    front_obj_t obj; /* FRONT_HEAD */
    int fd;
    SSL *ssl;
    uint32_t events;
    int64_t deadline;
    char ip[64];
    unsigned handshaken : 1;
    unsigned draining : 1; /* answered and refused: reading until the end */
    size_t len;
    char buf[FRONT_HEAD_MAX];
    struct head_s *next, *prev;
} head_t;

typedef struct pump_s pump_t;
typedef struct {
    front_obj_t obj; /* FRONT_PUMP_TLS or FRONT_PUMP_LWS */
    pump_t *p;
} pump_end_t;

/* One buffered direction. */
typedef struct {
    unsigned char b[PUMP_BUF];
    size_t off, len;
} pump_buf_t;

struct pump_s {
    pump_end_t tls_end, lws_end;
    int fd;     /* the client's TLS socket */
    int sp;     /* our end of the socketpair */
    int lws_fd; /* lws's end (its number keys the address table) */
    SSL *ssl;
    uint32_t ev_tls, ev_sp;
    char ip[64];
    pump_buf_t up;   /* client -> lws */
    pump_buf_t down; /* lws -> client */
    unsigned tls_eof : 1, sp_eof : 1, dead : 1;
    pump_t *done_next;
    pump_t *next, *prev; /* every pump, for front_close() */
};

static int epfd = -1;
static int lfd = -1;
static front_obj_t listen_obj = {FRONT_LISTEN};
static uint32_t listen_events;
static SSL_CTX *tls_ctx;
static struct lws_vhost *vhost;
static struct lws *ep_wsi;
static head_t *heads;
static pump_t *pumps_done;
static pump_t *pumps;
static pump_t *pump_by_fd[FRONT_FD_TABLE];

/* ---- I/O ------------------------------------------------------------------ */

ssize_t front_io_read(int fd, SSL *ssl, void *buf, size_t n)
{
    ssize_t r;

    if (ssl != NULL) {
        int k = SSL_read(ssl, buf, n > INT32_MAX ? INT32_MAX : (int) n);

        if (k > 0) {
            return k;
        }
        k = SSL_get_error(ssl, k);
        ERR_clear_error();
        return k == SSL_ERROR_WANT_READ || k == SSL_ERROR_WANT_WRITE ? 0 : -1;
    }
    r = recv(fd, buf, n, 0);
    if (r > 0) {
        return r;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return 0;
    }
    return -1;
}

ssize_t front_io_write(int fd, SSL *ssl, const void *buf, size_t n)
{
    ssize_t r;

    if (n == 0) {
        return 0;
    }
    if (ssl != NULL) {
        int k = SSL_write(ssl, buf, n > INT32_MAX ? INT32_MAX : (int) n);

        if (k > 0) {
            return k;
        }
        k = SSL_get_error(ssl, k);
        ERR_clear_error();
        return k == SSL_ERROR_WANT_READ || k == SSL_ERROR_WANT_WRITE ? 0 : -1;
    }
    r = send(fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) {
        return r;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

int front_watch(int fd, front_obj_t *o, uint32_t *cur, uint32_t events)
{
    struct epoll_event ev;
    int op;

    if (*cur == events) {
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = o;
    op = *cur == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    /* EPOLL_CTL_ADD with no events still tells us of errors and hang-ups */
    if (epoll_ctl(epfd, op, fd, &ev) < 0) {
        return -1;
    }
    *cur = events;
    return 0;
}

/* ---- the client's address for lws's connections ---------------------------- */

static pump_t *front_pump_of(struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);

    return fd >= 0 && fd < FRONT_FD_TABLE ? pump_by_fd[fd] : NULL;
}

void front_peer(struct lws *wsi, char *ip, size_t cap)
{
    pump_t *p = front_pump_of(wsi);

    if (p != NULL) {
        snprintf(ip, cap, "%s", p->ip);
        return;
    }
    lws_get_peer_simple(wsi, ip, cap);
}

int front_is_tls(struct lws *wsi)
{
    return front_pump_of(wsi) != NULL;
}

/* ---- heads ----------------------------------------------------------------- */

static void head_free(head_t *h, int close_fd)
{
    front_watch(h->fd, &h->obj, &h->events, 0);
    if (close_fd) {
        if (h->ssl != NULL) {
            SSL_free(h->ssl);
        }
        close(h->fd);
    }
    if (h->prev != NULL) {
        h->prev->next = h->next;
    } else {
        heads = h->next;
    }
    if (h->next != NULL) {
        h->next->prev = h->prev;
    }
    free(h);
}

/* Answers and then reads what the client still sends until it closes (or
 * FRONT_DRAIN_MS passed), so the answer is not lost in a reset. */
static void head_answer_close(head_t *h, const char *resp, size_t len)
{
    if (len > 0) {
        (void) front_io_write(h->fd, h->ssl, resp, len);
    }
    if (h->ssl != NULL) {
        (void) SSL_shutdown(h->ssl);
    } else {
        (void) shutdown(h->fd, SHUT_WR);
    }
    h->draining = 1;
    h->len = 0;
    h->deadline = coord_mono_ms() + FRONT_DRAIN_MS;
    if (front_watch(h->fd, &h->obj, &h->events, EPOLLIN) < 0) {
        head_free(h, 1);
    }
}

static void head_refuse(head_t *h, int status, const char *error, const char *message)
{
    char resp[512], body[256];
    int n, b;

    coord_log("http_refused", "addr=%s status=%d reason=\"%s\"", h->ip, status, message);
    b = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}", error, message);
    n = snprintf(resp, sizeof(resp),
                 "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                 "cache-control: no-store\r\nconnection: close\r\n\r\n%s",
                 status, status == 431 ? "Request Header Fields Too Large" : "Bad Request", b,
                 body);
    head_answer_close(h, resp, n > 0 && (size_t) n < sizeof(resp) ? (size_t) n : 0);
}

static void pump_start(head_t *h);

/* Not an agent upgrade: lws serves it (over TLS, with the bytes read so far). */
static void head_to_lws(head_t *h)
{
    struct lws *wsi;

    if (h->ssl != NULL) {
        pump_start(h);
        return;
    }
    if (h->fd < FRONT_FD_TABLE) {
        pump_by_fd[h->fd] = NULL; /* a number a pump had: not TLS now */
    }
    front_watch(h->fd, &h->obj, &h->events, 0);
    wsi = lws_adopt_socket_vhost(vhost, h->fd); /* the head is still in the socket */
    if (wsi == NULL) {
        coord_log("adopt_failed", "addr=%s", h->ip);
    }
    head_free(h, 0); /* lws owns (or closed) the socket */
}

/* An agent upgrade: answered here; accepted ones become agent sockets. */
static void head_upgrade(head_t *h, const egress_http_head_t *hd)
{
    ws_upgrade_t up;
    agent_sock_t *s;
    int fd = h->fd;

    memset(&up, 0, sizeof(up));
    up.head = hd;
    up.ip = h->ip;
    api_stats.http_requests++;
    if (ws_upgrade(&up) != 0) {
        head_answer_close(h, up.response, up.response_len);
        return;
    }
    if (h->ssl == NULL && recv(fd, h->buf, h->len, 0) != (ssize_t) h->len) {
        head_free(h, 1); /* the bytes looked at are there: read them now */
        return;
    }
    front_watch(h->fd, &h->obj, &h->events, 0);
    s = agent_sock_new(fd, h->ssl);
    if (s == NULL) {
        head_free(h, 1);
        return;
    }
    h->ssl = NULL; /* the socket's now */
    if (agent_sock_send(s, up.response, up.response_len) < 0 || ws_open(s, &up) < 0) {
        agent_sock_destroy(s);
        head_free(h, 0);
        return;
    }
    agent_sock_feed(s, (const unsigned char *) h->buf + hd->head_len, h->len - hd->head_len);
    head_free(h, 0);
}

static void head_read(head_t *h)
{
    egress_http_head_t hd;
    ssize_t n;
    int rc;

    if (h->ssl != NULL && !h->handshaken) {
        int k = SSL_accept(h->ssl);

        if (k != 1) {
            k = SSL_get_error(h->ssl, k);
            ERR_clear_error();
            if (k == SSL_ERROR_WANT_READ || k == SSL_ERROR_WANT_WRITE) {
                if (front_watch(h->fd, &h->obj, &h->events,
                                k == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT) < 0) {
                    head_free(h, 1);
                }
                return;
            }
            head_free(h, 1);
            return;
        }
        h->handshaken = 1;
        if (front_watch(h->fd, &h->obj, &h->events, EPOLLIN) < 0) {
            head_free(h, 1);
            return;
        }
    }
    if (h->ssl == NULL && !h->draining) {
        /* Plain: the head is only looked at, so that lws can read it from
         * the socket itself (edge-triggered: woken by new bytes only). */
        n = recv(h->fd, h->buf, sizeof(h->buf), MSG_PEEK);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            head_free(h, 1);
            return;
        }
        if (n < 0) {
            return;
        }
        h->len = (size_t) n;
    }
    while (h->ssl != NULL || h->draining) {
        n = front_io_read(h->fd, h->ssl, h->buf + h->len, sizeof(h->buf) - h->len);
        if (n < 0) {
            head_free(h, 1);
            return;
        }
        if (n == 0) {
            break;
        }
        if (h->draining) {
            continue; /* dropped */
        }
        h->len += (size_t) n;
        if (h->len == sizeof(h->buf) || SSL_pending(h->ssl) == 0) {
            break;
        }
    }
    if (h->draining) {
        return;
    }
    rc = egress_http_head_parse(&hd, h->buf, h->len);
    if (rc < 0) {
        head_refuse(h, 400, "bad_request", "malformed request head");
    } else if (rc == 0 && h->len == sizeof(h->buf)) {
        head_refuse(h, 431, "headers_too_large", "request head too large");
    } else if (rc == 1 && egress_http_head_get(&hd, "upgrade", NULL) != NULL) {
        head_upgrade(h, &hd);
    } else if (rc == 1) {
        head_to_lws(h);
    }
}

static void front_accept(void)
{
    int i;

    for (i = 0; i < FRONT_ACCEPTS; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *) &ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        head_t *h;
        int v = 1;

        if (fd < 0) {
            return;
        }
        h = calloc(1, sizeof(*h));
        if (h == NULL) {
            close(fd);
            continue;
        }
        h->obj.kind = FRONT_HEAD;
        h->fd = fd;
        h->deadline = coord_mono_ms() + FRONT_HEAD_MS;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v));
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a6 = (struct sockaddr_in6 *) &ss;

            if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
                inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], h->ip, sizeof(h->ip));
            } else {
                inet_ntop(AF_INET6, &a6->sin6_addr, h->ip, sizeof(h->ip));
            }
        } else {
            inet_ntop(AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, h->ip, sizeof(h->ip));
        }
        h->next = heads;
        if (heads != NULL) {
            heads->prev = h;
        }
        heads = h;
        if (tls_ctx != NULL) {
            h->ssl = SSL_new(tls_ctx);
            if (h->ssl == NULL || SSL_set_fd(h->ssl, fd) != 1) {
                head_free(h, 1);
                continue;
            }
            SSL_set_accept_state(h->ssl);
        }
        if (front_watch(fd, &h->obj, &h->events, h->ssl ? EPOLLIN : EPOLLIN | EPOLLET) < 0) {
            head_free(h, 1);
        }
    }
}

/* ---- TLS pumps ------------------------------------------------------------- */

static void pump_free(pump_t *p)
{
    front_watch(p->fd, &p->tls_end.obj, &p->ev_tls, 0);
    front_watch(p->sp, &p->lws_end.obj, &p->ev_sp, 0);
    if (p->lws_fd >= 0 && p->lws_fd < FRONT_FD_TABLE && pump_by_fd[p->lws_fd] == p) {
        pump_by_fd[p->lws_fd] = NULL;
    }
    SSL_free(p->ssl);
    close(p->fd);
    close(p->sp);
    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else {
        pumps = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    }
    free(p);
}

/* Moves what can move, both ways; sets dead when the pump is done. */
static void pump_run(pump_t *p)
{
    int moved;

    do {
        ssize_t n;

        moved = 0;
        if (!p->tls_eof && p->up.len < PUMP_BUF) {
            n = front_io_read(p->fd, p->ssl, p->up.b + p->up.len, PUMP_BUF - p->up.len);
            if (n < 0) {
                p->tls_eof = 1;
            } else if (n > 0) {
                p->up.len += (size_t) n;
                moved = 1;
            }
        }
        if (p->up.off < p->up.len) {
            n = front_io_write(p->sp, NULL, p->up.b + p->up.off, p->up.len - p->up.off);
            if (n < 0) {
                p->dead = 1;
                return;
            }
            p->up.off += (size_t) n;
            moved |= n > 0;
            if (p->up.off == p->up.len) {
                p->up.off = p->up.len = 0;
            }
        }
        if (!p->sp_eof && p->down.len < PUMP_BUF) {
            n = front_io_read(p->sp, NULL, p->down.b + p->down.len, PUMP_BUF - p->down.len);
            if (n < 0) {
                p->sp_eof = 1;
            } else if (n > 0) {
                p->down.len += (size_t) n;
                moved = 1;
            }
        }
        if (p->down.off < p->down.len) {
            n = front_io_write(p->fd, p->ssl, p->down.b + p->down.off,
                               p->down.len - p->down.off);
            if (n < 0) {
                p->dead = 1;
                return;
            }
            p->down.off += (size_t) n;
            moved |= n > 0;
            if (p->down.off == p->down.len) {
                p->down.off = p->down.len = 0;
            }
        }
    } while (moved);
    if (p->sp_eof && p->down.len == 0) {
        (void) SSL_shutdown(p->ssl); /* lws is done: close_notify, then the end */
        p->dead = 1;
    } else if (p->tls_eof && p->up.len == 0) {
        p->dead = 1; /* the client went: lws sees its socket end */
    }
}

static void pump_update(pump_t *p)
{
    uint32_t et = 0, es = 0;

    if (!p->tls_eof && p->up.len < PUMP_BUF) {
        et |= EPOLLIN;
    }
    if (p->down.off < p->down.len) {
        et |= EPOLLOUT;
    }
    if (!p->sp_eof && p->down.len < PUMP_BUF) {
        es |= EPOLLIN;
    }
    if (p->up.off < p->up.len) {
        es |= EPOLLOUT;
    }
    if (front_watch(p->fd, &p->tls_end.obj, &p->ev_tls, et ? et : EPOLLERR) < 0 ||
        front_watch(p->sp, &p->lws_end.obj, &p->ev_sp, es ? es : EPOLLERR) < 0) {
        p->dead = 1;
    }
}

static void pump_start(head_t *h)
{
    pump_t *p = calloc(1, sizeof(*p));
    int sv[2];
    struct lws *wsi;

    if (p == NULL) {
        head_free(h, 1);
        return;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        free(p);
        head_free(h, 1);
        return;
    }
    p->next = pumps;
    if (pumps != NULL) {
        pumps->prev = p;
    }
    pumps = p;
    p->tls_end.obj.kind = FRONT_PUMP_TLS;
    p->tls_end.p = p;
    p->lws_end.obj.kind = FRONT_PUMP_LWS;
    p->lws_end.p = p;
    p->fd = h->fd;
    p->ssl = h->ssl;
    p->sp = sv[0];
    p->lws_fd = sv[1];
    snprintf(p->ip, sizeof(p->ip), "%s", h->ip);
    memcpy(p->up.b, h->buf, h->len); /* the head (and more) goes first */
    p->up.len = h->len;
    front_watch(h->fd, &h->obj, &h->events, 0);
    h->ssl = NULL;
    head_free(h, 0);
    if (sv[1] < FRONT_FD_TABLE) {
        pump_by_fd[sv[1]] = p;
    }
    wsi = lws_adopt_socket_vhost(vhost, sv[1]);
    if (wsi == NULL) {
        coord_log("adopt_failed", "addr=%s tls=1", p->ip);
        p->lws_fd = -1;
        pump_by_fd[sv[1]] = NULL;
        p->dead = 1;
    }
    if (!p->dead) {
        pump_run(p);
    }
    if (!p->dead) {
        pump_update(p);
    }
    if (p->dead) {
        pump_free(p);
    }
}

static void pump_event(pump_t *p)
{
    if (p->dead) {
        return; /* its other end's event ended it in this batch */
    }
    pump_run(p);
    if (!p->dead) {
        pump_update(p);
    }
    if (p->dead) {
        p->done_next = pumps_done;
        pumps_done = p;
    }
}

/* ---- the loop ------------------------------------------------------------ */

void front_service(void)
{
    struct epoll_event evs[FRONT_EVENTS];
    int n, i;

    n = epoll_wait(epfd, evs, FRONT_EVENTS, 0);
    for (i = 0; i < n; i++) {
        front_obj_t *o = evs[i].data.ptr;

        switch (o->kind) {
        case FRONT_LISTEN:
            front_accept();
            break;
        case FRONT_HEAD:
            head_read((head_t *) o);
            break;
        case FRONT_AGENT:
            agent_sock_event((agent_sock_t *) o, evs[i].events);
            break;
        case FRONT_PUMP_TLS:
        case FRONT_PUMP_LWS:
            pump_event(((pump_end_t *) o)->p);
            break;
        default:
            break;
        }
    }
    /* A pump has two descriptors, so it may have two events in evs: it is
     * freed only once the whole batch is handled. */
    while (pumps_done != NULL) {
        pump_t *p = pumps_done;

        pumps_done = p->done_next;
        pump_free(p);
    }
    agent_sock_after_events();
}

void front_after_turn(void)
{
    agent_sock_after_events();
}

void front_tick(void)
{
    int64_t now = coord_mono_ms();
    head_t *h, *next;

    for (h = heads; h != NULL; h = next) {
        next = h->next;
        if (now >= h->deadline) {
            if (!h->draining) {
                coord_log("head_timeout", "addr=%s bytes=%zu", h->ip, h->len);
            }
            head_free(h, 1);
        }
    }
    agent_sock_tick();
    /* reading resumed outside an epoll batch (a session's end, a timer) */
    agent_sock_after_events();
}

/* ---- setup ------------------------------------------------------------- */

static int front_tls_open(void)
{
    tls_ctx = SSL_CTX_new(TLS_server_method());
    if (tls_ctx == NULL) {
        return -1;
    }
    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(tls_ctx, SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(tls_ctx, coord_cfg.tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls_ctx, coord_cfg.tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tls_ctx) != 1) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

int front_open(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int one = 1, v6 = strchr(host, ':') != NULL;

    memset(&ss, 0, sizeof(ss));
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t) port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            return -1;
        }
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *) &ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t) port);
        if (host[0] != '\0' && inet_pton(AF_INET, host, &a->sin_addr) != 1) {
            return -1;
        }
        sl = sizeof(*a);
    }
    if (coord_cfg.tls_cert != NULL && front_tls_open() < 0) {
        coord_log("tls_failed", "cert=%s", coord_cfg.tls_cert);
        return -1;
    }
    lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        return -1;
    }
    (void) setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (v6) {
        (void) setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(lfd, (struct sockaddr *) &ss, sl) < 0 || listen(lfd, 512) < 0) {
        return -1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0 || front_watch(lfd, &listen_obj, &listen_events, EPOLLIN) < 0) {
        return -1;
    }
    return 0;
}

int front_attach(struct lws_vhost *vh, const char *proto)
{
    lws_sock_file_fd_type u;

    vhost = vh;
    u.filefd = epfd;
    ep_wsi = lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, u, proto, NULL);
    return ep_wsi != NULL ? 0 : -1;
}

void front_close(void)
{
    while (heads != NULL) {
        head_free(heads, 1);
    }
    agent_sock_close_all();
    while (pumps != NULL) {
        pump_free(pumps);
    }
    if (lfd >= 0) {
        close(lfd);
        lfd = -1;
    }
    if (tls_ctx != NULL) {
        SSL_CTX_free(tls_ctx);
        tls_ctx = NULL;
    }
}
