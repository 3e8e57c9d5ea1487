
/*
 * ngx_stream_egress_module: a loopback HTTP proxy whose every connection
 * leaves through one WebSocket bridge to the egress coordinator.
 *
 *   ngx_stream_egress_module.c   directives, configuration checks, variables
 *   ngx_stream_egress_bridge.c   the per-worker WebSocket: connection, TLS,
 *                                reconnects (ngx_stream_egress_bridge.h
 *                                names its other files: upgrade, frames,
 *                                state)
 *   ngx_stream_egress_proxy.c    one browser connection: proxy request,
 *                                stream open (ngx_stream_egress_proxy.h
 *                                names its other files: relay, respond,
 *                                browser)
 *   ngx_stream_egress_http*.c    HTTP/1.x request head, chunked body and
 *                                response head parsers, no I/O
 *                                (ngx_stream_egress_http.h names them)
 *
 * The proxy calls the bridge; the bridge reaches a stream only through the
 * ngx_stream_egress_stream_ops_t the stream gave ngx_stream_egress_bridge_open.
 */


#ifndef _NGX_STREAM_EGRESS_MODULE_H_INCLUDED_
#define _NGX_STREAM_EGRESS_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <ngx_stream.h>

#include <wslay/wslay.h>

#include "egress.h"


#define NGX_STREAM_EGRESS_VERSION         "0.1.0"

#define NGX_STREAM_EGRESS_REQUEST_TIMEOUT  408
#define NGX_STREAM_EGRESS_GATEWAY_TIMEOUT  504
#define NGX_STREAM_EGRESS_HEADER_TOO_LARGE 431

/* bytes queued on the bridge above which streams stop reading browsers */
#define NGX_STREAM_EGRESS_BRIDGE_HIGH     (1024 * 1024)
#define NGX_STREAM_EGRESS_BRIDGE_LOW      (256 * 1024)

/* v1 has no flow control: a stream's unsent download is capped instead */
#define NGX_STREAM_EGRESS_V1_PENDING_MAX  (4 * 1024 * 1024)

#define NGX_STREAM_EGRESS_REASON_MAX      256


typedef struct {
    ngx_str_t                      url;          /* as configured */
    ngx_url_t                      u;            /* addresses, port */
    ngx_str_t                      tls_name;     /* SNI / verified name */
    ngx_str_t                      path;         /* request target */
    ngx_flag_t                     tls;

    ngx_str_t                      ticket_file;
    ngx_str_t                      state_file;
    ngx_str_t                      trusted_certificate;
    ngx_msec_t                     reconnect_max;
    ngx_msec_t                     ping_interval;
    ngx_uint_t                     protocol;     /* 0: v2 then v1; or v1/v2 */
    size_t                         window_max;   /* per-stream cap (v2) */
    size_t                         window_budget; /* above 256 KiB, all */

    ngx_ssl_t                     *ssl;

    ngx_uint_t                     proxies;      /* servers with egress_proxy */
    ngx_uint_t                     disabled;     /* refused at reload time */
} ngx_stream_egress_main_conf_t;


typedef struct {
    ngx_flag_t                     enable;
    ngx_msec_t                     open_timeout;
    ngx_msec_t                     header_timeout;
    size_t                         max_header_size;
    ngx_flag_t                     absolute_https_cleartext;
    ngx_uint_t                     early_data;   /* NGX_STREAM_EGRESS_EARLY_* */
} ngx_stream_egress_srv_conf_t;


/* egress_early_data: what may go out behind open, before open_ok */
#define NGX_STREAM_EGRESS_EARLY_OFF       0
#define NGX_STREAM_EGRESS_EARLY_REQUEST   1   /* absolute-form requests */
#define NGX_STREAM_EGRESS_EARLY_CONNECT   2   /* and CONNECT, 200 at once */


/* HTTP/1.x request head, as far as a forward proxy needs it */

typedef struct {
    ngx_str_t                      method;
    ngx_str_t                      authority;    /* host[:port] as written */
    ngx_str_t                      path;         /* origin-form target */
    u_char                         host[EGRESS_HOST_BUF]; /* normalized */
    size_t                         host_len;
    int                            host_kind;
    uint16_t                       port;
    ngx_uint_t                     http_minor;

    off_t                          content_length;  /* -1: none */
    unsigned                       connect:1;
    unsigned                       chunked:1;
    unsigned                       keepalive:1;
    unsigned                       head:1;          /* HEAD: no body back */
    unsigned                       https:1;         /* https:// absolute URL */

    const char                    *error;        /* reason of a 400 */
} ngx_stream_egress_request_t;


typedef struct {
    ngx_uint_t                     state;
    uint64_t                       size;
    size_t                         line;          /* bytes of line/trailer */
    const char                    *error;         /* why framing is bad */
    unsigned                       done:1;
} ngx_stream_egress_chunked_t;


typedef struct {
    u_char                        *buf;           /* head bytes so far */
    size_t                         len;
    size_t                         cap;
    size_t                         head_len;      /* complete head in buf */
    ngx_uint_t                     status;        /* final status, 0 yet */
    unsigned                       interim:1;     /* head_len is a 1xx */
    unsigned                       overflow:1;    /* head too large */
    unsigned                       done:1;        /* final head forwarded */
    unsigned                       delimited:1;   /* body ends by framing */
    unsigned                       keep:1;        /* browser may reuse */

    /* the body as declared, counted while the browser may reuse: */
    off_t                          body_rest;     /* Content-Length left */
    ngx_stream_egress_chunked_t    body_chunked;
    unsigned                       body_is_chunked:1;
    unsigned                       body_done:1;   /* declared end reached */
    unsigned                       body_error:1;  /* framing broken */
    unsigned                       counted:1;     /* body is counted */
} ngx_stream_egress_response_t;


/* one chunk of download bytes not yet written to the browser */

typedef struct ngx_stream_egress_chunk_s  ngx_stream_egress_chunk_t;

struct ngx_stream_egress_chunk_s {
    ngx_stream_egress_chunk_t     *next;
    u_char                        *pos;
    u_char                        *last;
    ngx_uint_t                     credit;     /* counts for flow control */
    u_char                         data[1];
};


typedef struct ngx_stream_egress_stream_ops_s  ngx_stream_egress_stream_ops_t;


typedef enum {
    NGX_STREAM_EGRESS_HEAD = 0,      /* reading a request head */
    NGX_STREAM_EGRESS_OPENING,       /* open sent, waiting for the host */
    NGX_STREAM_EGRESS_RELAY,         /* stream open, relaying */
    NGX_STREAM_EGRESS_DRAIN,         /* stream over, flushing to browser */
    NGX_STREAM_EGRESS_RESPOND,       /* writing our own response */
    NGX_STREAM_EGRESS_LINGER         /* response sent, discarding input */
} ngx_stream_egress_state_e;


typedef struct {
    ngx_rbtree_node_t              node;         /* key: stream id */
    ngx_queue_t                    blocked;      /* waiting for bridge room */
    ngx_stream_egress_stream_ops_t *ops;         /* set by bridge_open */

    ngx_stream_session_t          *session;
    ngx_stream_egress_srv_conf_t  *conf;

    ngx_uint_t                     state;
    uint32_t                       id;           /* 0: no live stream */
    uint32_t                       last_id;      /* for $egress_stream_id */
    ngx_uint_t                     status;       /* for $egress_status */
    ngx_uint_t                     requests;

    ngx_stream_egress_request_t    req;
    u_char                         target[EGRESS_HOST_BUF + 8];
    size_t                         target_len;

    ngx_buf_t                     *in;           /* from the browser */
    u_char                        *hdr;          /* rewritten request head */
    u_char                        *hdr_pos;
    u_char                        *hdr_last;
    size_t                         hdr_cap;

    off_t                          body_rest;    /* Content-Length left */
    ngx_stream_egress_chunked_t    chunked;
    ngx_stream_egress_response_t   resp;

    egress_flow_t                  flow;

    ngx_stream_egress_chunk_t     *out;          /* to the browser */
    ngx_stream_egress_chunk_t     *out_tail;
    size_t                         out_bytes;

    ngx_event_t                    open_timer;
    size_t                         lingered;

    unsigned                       in_tree:1;
    unsigned                       is_blocked:1;
    unsigned                       request_done:1;  /* body fully sent */
    unsigned                       client_eof:1;
    unsigned                       sent_half:1;
    unsigned                       host_half:1;
    unsigned                       host_closed:1;
    unsigned                       shut_client:1;
    unsigned                       finalizing:1;
    unsigned                       early:1;         /* sending before open_ok */
} ngx_stream_egress_ctx_t;


/*
 * What the bridge tells a stream, in the bridge's event handlers: the host
 * opened it (with its initial send window) or could not (with the host's
 * message), download bytes, a close or half-close, more send credit, the
 * end of the stream with the bridge or the host agent (the stream is already
 * forgotten), and room again after ngx_stream_egress_bridge_wait.
 */

struct ngx_stream_egress_stream_ops_s {
    void  (*open_ok)(ngx_stream_egress_ctx_t *ctx, uint32_t window);
    void  (*open_error)(ngx_stream_egress_ctx_t *ctx, egress_str_t *message);
    void  (*data)(ngx_stream_egress_ctx_t *ctx, const u_char *data,
                  size_t len);
    void  (*close)(ngx_stream_egress_ctx_t *ctx, ngx_uint_t half);
    void  (*window)(ngx_stream_egress_ctx_t *ctx, uint32_t increment);
    void  (*abort)(ngx_stream_egress_ctx_t *ctx, ngx_str_t *reason);
    void  (*resume)(ngx_stream_egress_ctx_t *ctx);
};


extern ngx_module_t  ngx_stream_egress_module;


/* bridge (one per worker) */

ngx_int_t ngx_stream_egress_bridge_init(ngx_cycle_t *cycle,
    ngx_stream_egress_main_conf_t *emcf);
void ngx_stream_egress_bridge_exit(ngx_cycle_t *cycle);
ngx_int_t ngx_stream_egress_bridge_available(ngx_str_t *reason);
int ngx_stream_egress_bridge_version(void);
ngx_int_t ngx_stream_egress_bridge_open(ngx_stream_egress_ctx_t *ctx,
    ngx_stream_egress_stream_ops_t *ops);
void ngx_stream_egress_bridge_forget(ngx_stream_egress_ctx_t *ctx);
void ngx_stream_egress_bridge_send_later(void);
size_t ngx_stream_egress_bridge_room(void);
void ngx_stream_egress_bridge_wait(ngx_stream_egress_ctx_t *ctx);
void ngx_stream_egress_bridge_unwait(ngx_stream_egress_ctx_t *ctx);
ngx_int_t ngx_stream_egress_bridge_send_data(ngx_stream_egress_ctx_t *ctx,
    const u_char *data, size_t len);
ngx_int_t ngx_stream_egress_bridge_send_close(uint32_t id, ngx_uint_t half);
ngx_int_t ngx_stream_egress_bridge_send_window(uint32_t id,
    uint32_t increment);


/* proxy (one per browser connection); the bridge calls the stream events
 * through ngx_stream_egress_stream_ops_t */

void ngx_stream_egress_proxy_handler(ngx_stream_session_t *s);


/* HTTP parsing, no I/O */

u_char *ngx_stream_egress_find_head_end(u_char *p, u_char *last);
ngx_int_t ngx_stream_egress_next_header(u_char **pp, u_char *end,
    ngx_str_t *name, ngx_str_t *value);
ngx_uint_t ngx_stream_egress_has_token(u_char *p, size_t len,
    const char *token);
ngx_int_t ngx_stream_egress_parse_request(ngx_stream_egress_request_t *r,
    u_char *start, u_char *end);
size_t ngx_stream_egress_rewrite_size(ngx_stream_egress_request_t *r,
    u_char *start, u_char *end);
u_char *ngx_stream_egress_rewrite_request(ngx_stream_egress_request_t *r,
    u_char *start, u_char *end, u_char *out);
size_t ngx_stream_egress_chunked_parse(ngx_stream_egress_chunked_t *ck,
    const u_char *p, size_t len, ngx_int_t *rc);
size_t ngx_stream_egress_response_feed(ngx_stream_egress_response_t *rs,
    const u_char *p, size_t len);
/*
 * Room the rewritten response head needs: a line that ended in a bare LF
 * ends in CRLF, "a:\n" becomes "a: \r\n", so the head can nearly double;
 * plus our Connection header.
 */
#define ngx_stream_egress_response_rewrite_size(rs)  (2 * (rs)->head_len + 64)
u_char *ngx_stream_egress_rewrite_response(ngx_stream_egress_response_t *rs,
    ngx_uint_t head_request, ngx_uint_t *keep, u_char *out);
size_t ngx_stream_egress_response_body(ngx_stream_egress_response_t *rs,
    const u_char *p, size_t len);


#endif /* _NGX_STREAM_EGRESS_MODULE_H_INCLUDED_ */
