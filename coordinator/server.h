/*
 * server.h: the lws server (server.c), the REST API (http_api.c), WebSocket
 * upgrade authorization and the agent sockets (ws_bridge.c), rate limits
 * (ratelimit.c) and metrics (metrics.c).
 */

#ifndef SERVER_H
#define SERVER_H

#include <stddef.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "store.h"

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

/* server.c: the lws context and the HTTP glue (framing, bodies, responses). */
int server_run(void);
void server_request_stop(void);
/* Writes the response but leaves the transaction to the caller (upgrade refusals). */
int http_write_response(struct lws *wsi, int status, const char *ctype, const char *body,
                        size_t len);
/* The same with extra headers: NULL-terminated {"name:", "value", ...}. */
int http_write_response_hdrs(struct lws *wsi, int status, const char *ctype,
                             const char *const *hdrs, const char *body, size_t len);
/* Ends the transaction after a written response; returns what the callback returns. */
int http_finish(struct lws *wsi, int rc);

/* http_api.c: the REST API, free of lws so that fuzz/fuzz_http_api.c can call
 * it without a socket. server.c fills an api_request_t from the wsi and
 * writes the api_response_t back. */
typedef enum { ACCESS_NONE = 0, ACCESS_READ, ACCESS_MANAGE } access_e;

typedef struct {
    int method;       /* LWSHUMETH_* */
    const char *path; /* without the query */
    const char *auth; /* the Authorization header, NULL when absent or unreadable */
    const char *body; /* body_len bytes, not NUL-terminated; NULL when empty */
    size_t body_len;
} api_request_t;

typedef struct {
    int status;
    json_t *json; /* the JSON body (owned), or NULL with text */
    char *text;   /* a non-JSON body (owned; /metrics) */
    size_t text_len;
    const char *ctype; /* of text */
} api_response_t;

/* The request framing headers lws leaves to us. */
typedef struct {
    const char *content_length; /* the value; NULL when absent or unreadable */
    int content_length_count;   /* Content-Length header lines (0 = absent) */
    int transfer_encoding;      /* any Transfer-Encoding header at all */
} http_framing_t;

/* Checks the framing: 0 with *len (the body length, 0 for none), or the
 * status to refuse with (400, 413) and *error, *message set; a refused
 * request's connection must be closed, since its body cannot be skipped. */
int http_framing_check(const http_framing_t *f, size_t *len, const char **error,
                       const char **message);
/* Handles one REST request (not /portal): fills *out, returns its status. */
int http_api_handle(const api_request_t *rq, api_response_t *out);
void api_response_free(api_response_t *r);
/* 1 when the path belongs to the portal (portal_handle, which needs the wsi). */
int http_is_portal_path(const char *path);
/* What a token may do with a lease (same org: read; owner or org admin: manage). */
access_e lease_access(const store_token_t *t, const store_lease_t *l);
/* Finds lease `ref` (id or slug) and what tok may do with it (ACCESS_NONE when
 * it does not exist or is another org's). 0, or -1 on a database error. */
int lease_lookup(const store_token_t *tok, const char *ref, store_lease_t *l, access_e *access);
/* Splits "REF" or "REF/REST" into ref (copied, cap bytes) and rest ("" or from the slash). */
int http_split_ref(const char *p, char *ref, size_t cap, const char **rest);
/* Releases an active lease and ends its egress: 0, 1 not active, -1 database error. */
int lease_release(const store_lease_t *l);
/* Stops the lease's egress session (s receives it): 0, 1 none, -1 database error. */
int lease_stop_session(const store_lease_t *l, store_session_t *s);
/* The GET .../egress/status document: 0 (*out set), 1 no session, -1 error. */
int lease_status_json(const store_lease_t *l, json_t **out);
/* Lease effective state (an active lease past expires_at is expired). */
lease_state_e lease_effective_state(const store_lease_t *l);
/* Timer: expire due leases and purge old tickets. */
void http_api_tick(void);

/* ws_bridge.c */
/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 accept, 1 refused (answered), -1 hang up. */
int ws_confirm_upgrade(struct lws *wsi, const char *upgrade);
/* Drops an authorized upgrade that never became a socket. */
void ws_forget_upgrade(struct lws *wsi);
int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                size_t len);

/* ratelimit.c: token buckets keyed by string. 1 = allowed (a token taken), 0 = limited. */
int ratelimit_take(const char *key, double rate, double burst);
/* 1 when the key has at least one token left (nothing taken). */
int ratelimit_peek(const char *key, double rate, double burst);

/* metrics.c */
typedef struct {
    unsigned long long tickets_minted;
    unsigned long long tickets_consumed;
    unsigned long long tickets_rejected;
    unsigned long long resumes_accepted;
    unsigned long long resumes_rejected;
    unsigned long long upgrades_refused[8]; /* by metrics_status_index() */
    unsigned long long rate_limited;
    unsigned long long http_requests;
} api_stats_t;
extern api_stats_t api_stats;
/* Prometheus text; caller frees. */
char *metrics_render(size_t *len);
/* Index of an upgrade refusal status in upgrades_refused (400 401 403 404 409 410 429, else 7).
 */
int metrics_status_index(int status);

#endif /* SERVER_H */
