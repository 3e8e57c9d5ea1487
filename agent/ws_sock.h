/*
 * ws_sock.h: the byte transport under the agent's WebSocket: a non-blocking
 * TCP connection on the agent's libuv loop (uv_getaddrinfo, every address in
 * turn), optionally TLS through OpenSSL memory BIOs, with bounded buffers:
 * one large read buffer and a staging buffer that is written with one
 * uv_try_write (then uv_write for the rest) per flush.
 */

#ifndef EGRESS_AGENT_WS_SOCK_H
#define EGRESS_AGENT_WS_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#define WS_SOCK_READ_SIZE (256 * 1024) /* one uv read */
#define WS_SOCK_OUT_CAP   (256 * 1024) /* staged bytes; also the write size */

typedef struct ws_sock_s ws_sock_t;

/*
 * Called from the loop only (never from inside a ws_sock_* call). After
 * on_fail nothing else is called; the owner then calls ws_sock_close().
 */
typedef struct {
    void (*on_open)(ws_sock_t *s); /* connected; for TLS the peer is verified */
    void (*on_read)(ws_sock_t *s, const unsigned char *p, size_t n); /* plaintext */
    void (*on_drain)(ws_sock_t *s); /* a pending write finished: stage more */
    void (*on_fail)(ws_sock_t *s, const char *why);
} ws_sock_cb_t;

/* SSL_CTX for wss: OpenSSL's default trust (SSL_CERT_FILE/SSL_CERT_DIR), peer verified. */
SSL_CTX *ws_sock_tls_ctx(void);

/* Starts resolving and connecting; tls may be NULL (ws://). NULL if out of memory. */
ws_sock_t *ws_sock_open(uv_loop_t *loop, SSL_CTX *tls, const char *host, uint16_t port,
                        uint64_t timeout_ms, const ws_sock_cb_t *cb, void *data);
void *ws_sock_data(ws_sock_t *s);
/* The opening handshake is over: stop the connect timer. */
void ws_sock_settle(ws_sock_t *s);
/* Copies up to n bytes into the staging buffer; returns how many fitted. */
size_t ws_sock_stage(ws_sock_t *s, const void *p, size_t n);
/* Free room in the staging buffer, for writing in place, then ws_sock_staged(). */
unsigned char *ws_sock_room(ws_sock_t *s, size_t *room);
void ws_sock_staged(ws_sock_t *s, size_t n);
/* Writes staged bytes. Returns -1 (reason in ws_sock_error) when the socket failed. */
int ws_sock_flush(ws_sock_t *s);
/* A write is in flight: wait for on_drain before flushing again. */
int ws_sock_writing(ws_sock_t *s);
/* Bytes staged or in flight. */
size_t ws_sock_pending(ws_sock_t *s);
const char *ws_sock_error(ws_sock_t *s);
/* No callback after this; the memory goes when libuv has closed the handles. */
void ws_sock_close(ws_sock_t *s);

#endif /* EGRESS_AGENT_WS_SOCK_H */
