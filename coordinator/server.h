/*
 * server.h: the lws server (server.c): the context, the HTTP glue (framing,
 * bodies, dispatch to the REST API, the portal and ws_bridge.c) and timers.
 */

#ifndef SERVER_H
#define SERVER_H

#include <stddef.h>

#include <libwebsockets.h>

/* Per-HTTP-request state (protocol 0's per-session data), kept by server.c
 * while the body arrives. */
typedef struct {
    int method; /* LWSHUMETH_* */
    char path[256];
    char *body;
    size_t body_len;
    unsigned too_big : 1;
} http_req_t;

/* Per-connection data of every protocol: HTTP request, then the agent socket. */
struct conn_s;
typedef struct {
    http_req_t req;
    struct conn_s *conn;
} coord_psd_t;

int server_run(void);
void server_request_stop(void);
#endif /* SERVER_H */
