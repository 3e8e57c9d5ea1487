/*
 * front.h: the coordinator's front door (front.c). It owns the listening
 * sockets, accepts, terminates TLS when --tls-cert is given, and reads each
 * connection's first request head (bounded in size and time). An agent's
 * WebSocket upgrade is answered here (ws_bridge.c) and the socket then runs
 * on agent_sock.c's framing; every other connection is handed to lws: the
 * socket itself when plain, else the plaintext side of a socketpair pumped
 * to and from the TLS stream.
 *
 * Every socket of ours sits on one epoll set, whose descriptor lws polls as
 * a raw file: lws's loop stays the only loop.
 */

#ifndef FRONT_H
#define FRONT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

/* The first member of every object on the epoll set. */
enum { FRONT_LISTEN = 1, FRONT_HEAD, FRONT_AGENT, FRONT_PUMP_TLS, FRONT_PUMP_LWS };
typedef struct {
    int kind;
} front_obj_t;

/* Opens the listening socket (host "" = every IPv4 address) and the TLS
 * context; 0, or -1 (logged when TLS failed). */
int front_open(const char *host, int port);
/* Puts the epoll set on lws's loop (vhost vh, raw-file protocol proto). */
int front_attach(struct lws_vhost *vh, const char *proto);
void front_close(void);

/* The epoll set is readable: handles what is ready (from lws's callback). */
void front_service(void);
/* After each lws_service() turn: what lws's callbacks and timers queued for
 * agent sockets is written now, not after the next poll. */
void front_after_turn(void);
/* Once a second: heads, drains and closing sockets past their deadline. */
void front_tick(void);

/* Sets fd's interest (0: off the set, kept open). */
int front_watch(int fd, front_obj_t *o, uint32_t *cur, uint32_t events);

/* Plain or TLS I/O: bytes moved, 0 when it would block, -1 at the end or on error. */
ssize_t front_io_read(int fd, SSL *ssl, void *buf, size_t n);
ssize_t front_io_write(int fd, SSL *ssl, const void *buf, size_t n);

/* The client's address for a connection lws serves, and whether it came over TLS. */
void front_peer(struct lws *wsi, char *ip, size_t cap);
int front_is_tls(struct lws *wsi);

#endif /* FRONT_H */
