/*
 * ws_sock.c: TCP (+ TLS over memory BIOs) for the agent's WebSocket, on the
 * agent's libuv loop. Nothing here blocks: names resolve on libuv's thread
 * pool, OpenSSL only ever sees memory BIOs, writes go out with uv_try_write
 * and fall back to one uv_write at a time.
 */

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ws_sock.h"

#define WS_SOCK_PLAIN_SIZE (64 * 1024) /* decrypted bytes per SSL_read */
/* unsent bytes the kernel may hold on the bridge socket before it polls writable */
#define WS_SOCK_NOTSENT_LOWAT (128 * 1024)

enum { SOCK_TCP_NONE = 0, SOCK_TCP_OPEN, SOCK_TCP_CLOSING };

struct ws_sock_s {
    uv_loop_t *loop;
    const ws_sock_cb_t *cb;
    void *data;
    SSL *ssl;
    BIO *rbio, *wbio; /* network side: bytes read, bytes to write */
    int refs;         /* timer, tcp handle, getaddrinfo: freed at 0 once closing */
    uint8_t closing, failed, tls_up, tcp_state, writing, gai_pending;
    int last_err;
    uint16_t port;
    char host[256];
    char why[256];
    struct addrinfo *ai, *next_ai;
    unsigned char *rbuf;  /* WS_SOCK_READ_SIZE, lent to every uv read */
    unsigned char *plain; /* TLS: decrypted bytes */
    unsigned char *out;   /* staged: plaintext for TLS, wire bytes otherwise */
    size_t outlen;
    unsigned char *wire; /* bytes being written */
    size_t wirelen, wireoff;
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wreq;
    uv_timer_t timer;
};

static void ws_sock_try_next(ws_sock_t *s);

static void ws_sock_why(ws_sock_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ws_sock_why(ws_sock_t *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
}

static void ws_sock_unref(ws_sock_t *s)
{
    if (--s->refs > 0 || !s->closing)
        return;
    if (s->ssl)
        SSL_free(s->ssl); /* and both BIOs */
    if (s->ai)
        uv_freeaddrinfo(s->ai);
    free(s->rbuf);
    free(s->plain);
    free(s->out);
    free(s->wire);
    free(s);
}

/* Reports the failure once (reason already in s->why); the owner closes. */
static void ws_sock_fail(ws_sock_t *s)
{
    if (s->failed || s->closing)
        return;
    s->failed = 1;
    uv_timer_stop(&s->timer);
    if (s->tcp_state == SOCK_TCP_OPEN)
        uv_read_stop((uv_stream_t *) &s->tcp);
    s->cb->on_fail(s, s->why);
}

SSL_CTX *ws_sock_tls_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx)
        return NULL;
    SSL_CTX_set_default_verify_paths(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    return ctx;
}

void *ws_sock_data(ws_sock_t *s)
{
    return s->data;
}

const char *ws_sock_error(ws_sock_t *s)
{
    return s->why;
}

int ws_sock_writing(ws_sock_t *s)
{
    return s->writing;
}

size_t ws_sock_pending(ws_sock_t *s)
{
    return s->outlen + (s->wirelen - s->wireoff) + (s->ssl ? BIO_ctrl_pending(s->wbio) : 0);
}

void ws_sock_settle(ws_sock_t *s)
{
    uv_timer_stop(&s->timer);
}

size_t ws_sock_stage(ws_sock_t *s, const void *p, size_t n)
{
    size_t room = WS_SOCK_OUT_CAP - s->outlen;

    if (n > room)
        n = room;
    memcpy(s->out + s->outlen, p, n);
    s->outlen += n;
    return n;
}

unsigned char *ws_sock_room(ws_sock_t *s, size_t *room)
{
    *room = WS_SOCK_OUT_CAP - s->outlen;
    return s->out + s->outlen;
}

void ws_sock_staged(ws_sock_t *s, size_t n)
{
    s->outlen += n;
}

/* ---- writing ------------------------------------------------------------------------- */

static void ws_sock_on_write(uv_write_t *req, int status);

/* Moves staged (for TLS: encrypted) bytes to the socket; never calls back. */
int ws_sock_flush(ws_sock_t *s)
{
    if (s->failed || s->closing)
        return -1;
    if (s->writing || s->tcp_state != SOCK_TCP_OPEN)
        return 0;
    for (;;) {
        uv_buf_t b;
        int n;
        if (s->wirelen == 0) {
            if (s->ssl) {
                if (s->outlen && s->tls_up) {
                    n = SSL_write(s->ssl, s->out, (int) s->outlen);
                    if (n <= 0 || (size_t) n != s->outlen) {
                        ws_sock_why(s, "SSL write failed: %s",
                                    ERR_reason_error_string(ERR_get_error()));
                        ERR_clear_error();
                        return -1;
                    }
                    s->outlen = 0;
                }
                n = BIO_read(s->wbio, s->wire, WS_SOCK_OUT_CAP);
                s->wirelen = n > 0 ? (size_t) n : 0;
            } else if (s->outlen) {
                unsigned char *t = s->wire; /* swap: the staged bytes become the write */
                s->wire = s->out;
                s->out = t;
                s->wirelen = s->outlen;
                s->outlen = 0;
            }
            s->wireoff = 0;
            if (s->wirelen == 0)
                return 0;
        }
        b = uv_buf_init((char *) s->wire + s->wireoff, (unsigned) (s->wirelen - s->wireoff));
        n = uv_try_write((uv_stream_t *) &s->tcp, &b, 1);
        if (n == UV_EAGAIN)
            n = 0;
        if (n < 0) {
            ws_sock_why(s, "connection lost: %s", uv_strerror(n));
            return -1;
        }
        s->wireoff += (size_t) n;
        if (s->wireoff == s->wirelen) {
            s->wirelen = s->wireoff = 0;
            continue;
        }
        b = uv_buf_init((char *) s->wire + s->wireoff, (unsigned) (s->wirelen - s->wireoff));
        if ((n = uv_write(&s->wreq, (uv_stream_t *) &s->tcp, &b, 1, ws_sock_on_write)) < 0) {
            ws_sock_why(s, "connection lost: %s", uv_strerror(n));
            return -1;
        }
        s->writing = 1;
        return 0;
    }
}

static void ws_sock_on_write(uv_write_t *req, int status)
{
    ws_sock_t *s = req->data;

    s->writing = 0;
    if (s->closing || s->failed)
        return;
    if (status < 0) {
        ws_sock_why(s, "connection lost: %s", uv_strerror(status));
        ws_sock_fail(s);
        return;
    }
    s->wirelen = s->wireoff = 0;
    if (ws_sock_flush(s) < 0) {
        ws_sock_fail(s);
        return;
    }
    s->cb->on_drain(s);
}

/* ---- reading ------------------------------------------------------------------------- */

static void ws_sock_tls_read(ws_sock_t *s)
{
    for (;;) {
        int n = SSL_read(s->ssl, s->plain, WS_SOCK_PLAIN_SIZE), e;
        if (n > 0) {
            s->cb->on_read(s, s->plain, (size_t) n);
            if (s->closing || s->failed)
                return;
            continue;
        }
        e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN)
            ws_sock_why(s, "connection lost (TLS close)");
        else
            ws_sock_why(s, "connection lost: SSL read failed: %s",
                        ERR_reason_error_string(ERR_get_error()));
        ERR_clear_error();
        ws_sock_fail(s);
        return;
    }
    if (ws_sock_flush(s) < 0) /* OpenSSL may have something to say (key update) */
        ws_sock_fail(s);
}

static void ws_sock_tls_step(ws_sock_t *s)
{
    int r = SSL_do_handshake(s->ssl), e;
    long v;

    if (r == 1) {
        s->tls_up = 1;
        if (ws_sock_flush(s) < 0) {
            ws_sock_fail(s);
            return;
        }
        s->cb->on_open(s);
        if (!s->closing && !s->failed)
            ws_sock_tls_read(s); /* records that came with the last flight */
        return;
    }
    e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (ws_sock_flush(s) < 0)
            ws_sock_fail(s);
        return;
    }
    v = SSL_get_verify_result(s->ssl);
    if (v != X509_V_OK)
        ws_sock_why(s, "SSL handshake with %s failed: certificate: %s", s->host,
                    X509_verify_cert_error_string(v));
    else
        ws_sock_why(s, "SSL handshake with %s failed: %s", s->host,
                    ERR_peek_last_error() ? ERR_reason_error_string(ERR_peek_last_error())
                                          : "connection closed");
    ERR_clear_error();
    ws_sock_fail(s);
}

static void ws_sock_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    ws_sock_t *s = h->data;

    *buf = uv_buf_init((char *) s->rbuf, WS_SOCK_READ_SIZE);
}

static void ws_sock_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    ws_sock_t *s = st->data;

    if (s->closing || s->failed || n == 0)
        return;
    if (n < 0) {
        if (n == UV_EOF)
            ws_sock_why(s, "connection lost");
        else
            ws_sock_why(s, "connection lost: %s", uv_strerror((int) n));
        ws_sock_fail(s);
        return;
    }
    if (!s->ssl) {
        s->cb->on_read(s, s->rbuf, (size_t) n);
        return;
    }
    if (BIO_write(s->rbio, s->rbuf, (int) n) != (int) n) {
        ws_sock_why(s, "out of memory");
        ws_sock_fail(s);
        return;
    }
    if (!s->tls_up)
        ws_sock_tls_step(s);
    else
        ws_sock_tls_read(s);
}

/* ---- connecting ---------------------------------------------------------------------- */

static void ws_sock_on_tcp_closed(uv_handle_t *h)
{
    ws_sock_t *s = h->data;

    s->tcp_state = SOCK_TCP_NONE;
    if (!s->closing && !s->failed)
        ws_sock_try_next(s);
    ws_sock_unref(s);
}

static void ws_sock_on_connect(uv_connect_t *req, int status)
{
    ws_sock_t *s = req->data;
    uv_os_fd_t fd;
    int r;

    if (s->closing || s->failed || status == UV_ECANCELED)
        return;
    if (status < 0) {
        s->last_err = status;
        s->tcp_state = SOCK_TCP_CLOSING;
        uv_close((uv_handle_t *) &s->tcp, ws_sock_on_tcp_closed); /* then the next address */
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    /* the agent's keepalive policy on the bridge socket: 30 s idle, 3 probes 10 s apart */
    uv_tcp_keepalive(&s->tcp, 1, 30);
    if (uv_fileno((uv_handle_t *) &s->tcp, &fd) == 0) {
        int intvl = 10, cnt = 3, lowat = WS_SOCK_NOTSENT_LOWAT;
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
#ifdef TCP_NOTSENT_LOWAT
        /*
         * Data stays in our queue, not unsent in the kernel, so an open_ok or
         * window frame waits behind at most this much (best effort).
         */
        setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
#endif
    }
    if ((r = uv_read_start((uv_stream_t *) &s->tcp, ws_sock_on_alloc, ws_sock_on_read)) < 0) {
        ws_sock_why(s, "cannot read from %s:%u: %s", s->host, s->port, uv_strerror(r));
        ws_sock_fail(s);
        return;
    }
    if (s->ssl)
        ws_sock_tls_step(s); /* sends the ClientHello */
    else
        s->cb->on_open(s);
}

static void ws_sock_try_next(ws_sock_t *s)
{
    while (s->next_ai) {
        struct addrinfo *a = s->next_ai;
        int r;
        s->next_ai = a->ai_next;
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        if ((r = uv_tcp_init(s->loop, &s->tcp)) < 0) {
            s->last_err = r;
            break;
        }
        s->refs++;
        s->tcp_state = SOCK_TCP_OPEN;
        s->tcp.data = s;
        s->conn.data = s;
        if ((r = uv_tcp_connect(&s->conn, &s->tcp, a->ai_addr, ws_sock_on_connect)) == 0)
            return;
        s->last_err = r;
        s->tcp_state = SOCK_TCP_CLOSING;
        uv_close((uv_handle_t *) &s->tcp, ws_sock_on_tcp_closed);
        return;
    }
    ws_sock_why(s, "cannot connect to %s:%u: %s", s->host, s->port,
                s->last_err ? uv_strerror(s->last_err) : "no usable address");
    ws_sock_fail(s);
}

static void ws_sock_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    ws_sock_t *s = req->data;

    s->gai_pending = 0;
    if (s->closing || s->failed) {
        if (res)
            uv_freeaddrinfo(res);
    } else if (status < 0) {
        ws_sock_why(s, "cannot resolve %s: %s", s->host, uv_strerror(status));
        ws_sock_fail(s);
    } else {
        s->ai = s->next_ai = res;
        ws_sock_try_next(s);
    }
    ws_sock_unref(s);
}

static void ws_sock_on_timer(uv_timer_t *t)
{
    ws_sock_t *s = t->data;

    if (!s->why[0])
        ws_sock_why(s, "timed out connecting to %s:%u", s->host, s->port);
    ws_sock_fail(s);
}

static void ws_sock_on_timer_closed(uv_handle_t *h)
{
    ws_sock_unref(h->data);
}

static int ws_sock_tls_new(ws_sock_t *s, SSL_CTX *tls)
{
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, s->host, ip) == 1 || inet_pton(AF_INET6, s->host, ip) == 1;

    if ((s->ssl = SSL_new(tls)) == NULL || (s->rbio = BIO_new(BIO_s_mem())) == NULL)
        return -1;
    if ((s->wbio = BIO_new(BIO_s_mem())) == NULL) {
        BIO_free(s->rbio);
        return -1;
    }
    BIO_set_mem_eof_return(s->rbio, -1); /* empty means "more later", not EOF */
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_connect_state(s->ssl);
    if (is_ip) {
        /* an IP literal: no SNI (RFC 6066), the certificate must name the address */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), s->host) != 1)
            return -1;
    } else {
        if (SSL_set_tlsext_host_name(s->ssl, s->host) != 1 ||
            SSL_set1_host(s->ssl, s->host) != 1)
            return -1;
    }
    return 0;
}

ws_sock_t *ws_sock_open(uv_loop_t *loop, SSL_CTX *tls, const char *host, uint16_t port,
                        uint64_t timeout_ms, const ws_sock_cb_t *cb, void *data)
{
    struct addrinfo hints;
    char portstr[8];
    ws_sock_t *s;
    int r;

    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->loop = loop;
    s->cb = cb;
    s->data = data;
    s->port = port;
    snprintf(s->host, sizeof(s->host), "%s", host);
    s->rbuf = malloc(WS_SOCK_READ_SIZE);
    s->out = malloc(WS_SOCK_OUT_CAP);
    s->wire = malloc(WS_SOCK_OUT_CAP);
    if (tls)
        s->plain = malloc(WS_SOCK_PLAIN_SIZE);
    if (!s->rbuf || !s->out || !s->wire ||
        (tls && (!s->plain || ws_sock_tls_new(s, tls) < 0))) {
        s->closing = 1;
        s->refs = 1;
        ws_sock_unref(s);
        return NULL;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->refs++;
    s->wreq.data = s;
    s->gai.data = s;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%u", port);
    if ((r = uv_getaddrinfo(loop, &s->gai, ws_sock_on_resolved, host, portstr, &hints)) < 0) {
        /* reported from the loop, like every other failure */
        ws_sock_why(s, "cannot resolve %s: %s", host, uv_strerror(r));
        uv_timer_start(&s->timer, ws_sock_on_timer, 0, 0);
        return s;
    }
    s->refs++;
    s->gai_pending = 1;
    uv_timer_start(&s->timer, ws_sock_on_timer, timeout_ms, 0);
    return s;
}

void ws_sock_close(ws_sock_t *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    if (s->gai_pending)
        uv_cancel((uv_req_t *) &s->gai); /* its callback still runs and drops its ref */
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *) &s->timer, ws_sock_on_timer_closed);
    if (s->tcp_state == SOCK_TCP_OPEN) {
        s->tcp_state = SOCK_TCP_CLOSING;
        uv_close((uv_handle_t *) &s->tcp, ws_sock_on_tcp_closed);
    }
}
