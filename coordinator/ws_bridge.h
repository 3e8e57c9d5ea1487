/*
 * ws_bridge.h: agent WebSocket upgrades (authorization, the 101 or the
 * refusal) read from the request head front.c found, and the agent socket's
 * events from agent_sock.c.
 */

#ifndef WS_BRIDGE_H
#define WS_BRIDGE_H

#include <stddef.h>

#include "coord.h"
#include "egress_httphead.h"

struct agent_sock_s;
struct conn_s;
struct msg_s;

#define WS_RESPONSE_MAX 1024

typedef struct {
    const egress_http_head_t *head; /* in: the request */
    const char *ip;                 /* in: the client's address */
    /* out: what was authorized */
    char lease_id[COORD_ID_MAX + 1];
    char session_id[COORD_SESSION_MAX];
    int role;
    int version;
    unsigned early_data : 1;
    /* out: the whole answer to write, 101 or refusal */
    char response[WS_RESPONSE_MAX];
    size_t response_len;
} ws_upgrade_t;

/* Checks (and consumes) the ticket or resume secret of an upgrade request:
 * 0 accepted, 1 refused; either way up->response is the answer. */
int ws_upgrade(ws_upgrade_t *up);

/* Joins an accepted upgrade's socket to its session; -1 when the socket
 * must end (it is left without a conn). */
int ws_open(struct agent_sock_s *s, const ws_upgrade_t *up);

/* Events of an open agent socket (agent_sock.c). */
void ws_on_message(struct conn_s *c, struct msg_s *m);
void ws_on_bad_frame(struct conn_s *c, int code, const char *why);
void ws_on_peer_close(struct conn_s *c, int code);
/* The socket is gone: leaves the session and frees c. */
void ws_on_gone(struct conn_s *c);

#endif /* WS_BRIDGE_H */
