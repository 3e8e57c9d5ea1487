/*
 * agent_sock.h: an agent's WebSocket after the upgrade (agent_sock.c): the
 * socket (plain or TLS), our own RFC 6455 framing (lib/egress_wsserver),
 * the bytes the kernel did not take yet, pongs, and the close handshake.
 * What the frames mean is ws_bridge.c's and session.c's business; what
 * goes out is conn.c's queue, written from the writable event.
 */

#ifndef AGENT_SOCK_H
#define AGENT_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

typedef struct agent_sock_s agent_sock_t;
struct conn_s;

/* Takes fd (and ssl) over; NULL when out of memory (fd and ssl untouched). */
agent_sock_t *agent_sock_new(int fd, SSL *ssl);
void agent_sock_set_conn(agent_sock_t *s, struct conn_s *c);
/* Ends the socket now (a failed open): conn must be unset. */
void agent_sock_destroy(agent_sock_t *s);

/* Writes bytes (whole frames) in order; what the kernel does not take now is
 * kept and goes first later. 0, or -1 when the socket failed. */
int agent_sock_send(agent_sock_t *s, const void *p, size_t n);
/* 1 while earlier bytes wait: the caller should stop and wait for writable. */
int agent_sock_busy(const agent_sock_t *s);
/* Asks for a writable event (conn_write through session_on_writable). */
void agent_sock_want_write(agent_sock_t *s);
/* Reading on (1) or off (0): flow control stops reading the source. */
void agent_sock_rx(agent_sock_t *s, int on);
/* The socket ends within ms whatever the peer does (a close was asked for). */
void agent_sock_close_within(agent_sock_t *s, int ms);
/* Bytes that came after the upgrade head, read as if from the socket. */
void agent_sock_feed(agent_sock_t *s, const unsigned char *p, size_t n);

/* From front.c: epoll events for s; then the sockets whose reading resumed
 * with TLS bytes already decrypted (epoll cannot see those), and those that
 * got something to send outside their own event (written at once; epoll is
 * asked for EPOLLOUT only for what the socket does not take). Also called
 * after every lws_service() turn. */
void agent_sock_event(agent_sock_t *s, uint32_t events);
void agent_sock_after_events(void);
/* Ends sockets past their close deadline; at shutdown every socket. */
void agent_sock_tick(void);
void agent_sock_close_all(void);

#endif /* AGENT_SOCK_H */
