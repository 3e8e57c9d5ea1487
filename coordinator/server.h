/*
 * server.h: the lws server (server.c): the context, the HTTP glue (framing,
 * bodies, dispatch to the REST API and the portal) and timers; front.c
 * accepts connections and answers agent upgrades.
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

/* Per-connection data of the HTTP protocol. */
typedef struct {
    http_req_t req;
} coord_psd_t;

int server_run(void);
void server_request_stop(void);
#endif /* SERVER_H */
