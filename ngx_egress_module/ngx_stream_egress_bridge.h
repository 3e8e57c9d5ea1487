
/*
 * The bridge's insides, shared by the files that make it up; streams and
 * the rest of the module use the API in ngx_stream_egress_module.h.
 *
 *   ngx_stream_egress_bridge.c   connection, TLS, upgrade I/O, events of
 *                                the open socket, reconnects, liveness
 *   ngx_stream_egress_upgrade.c  the upgrade request and the check of the
 *                                answer (lib/egress_upgrade.c), refusals
 *   ngx_stream_egress_frames.c   wslay and its callbacks, frames out and
 *                                in, dispatch, the stream table
 *   ngx_stream_egress_state.c    ticket, resume secret, state file, the
 *                                session end mark, the status reason
 *   ngx_stream_egress_probe.c    v1 only: whether a host agent is there
 *                                (probe opens), as peer frames tell in v2
 *
 * Calls go down this list only: bridge.c uses the three others, upgrade.c
 * and frames.c use state.c, frames.c and probe.c use each other (probe.c
 * sends its open through frames.c, which reports each frame); stream events reach the proxy through the
 * ngx_stream_egress_stream_ops_t each stream registers.
 */


#ifndef _NGX_STREAM_EGRESS_BRIDGE_H_INCLUDED_
#define _NGX_STREAM_EGRESS_BRIDGE_H_INCLUDED_


#include "ngx_stream_egress_module.h"


#define NGX_STREAM_EGRESS_BACKOFF_MIN       250
#define NGX_STREAM_EGRESS_HS_SIZE           16384   /* upgrade heads */
#define NGX_STREAM_EGRESS_IN_SIZE           65536   /* read-ahead once open */
#define NGX_STREAM_EGRESS_RECV_BUDGET       (1024 * 1024)
#define NGX_STREAM_EGRESS_SECRET_MAX        512


typedef enum {
    NGX_STREAM_EGRESS_BRIDGE_IDLE = 0,
    NGX_STREAM_EGRESS_BRIDGE_CONNECTING,
    NGX_STREAM_EGRESS_BRIDGE_TLS,
    NGX_STREAM_EGRESS_BRIDGE_UPGRADE,
    NGX_STREAM_EGRESS_BRIDGE_OPEN,
    NGX_STREAM_EGRESS_BRIDGE_STOPPED
} ngx_stream_egress_bridge_state_e;


typedef struct {
    ngx_stream_egress_main_conf_t  *conf;
    ngx_log_t                      *log;

    ngx_peer_connection_t           peer;
    ngx_connection_t               *connection;
    ngx_pool_t                     *pool;       /* per connection */
    ngx_uint_t                      state;
    ngx_uint_t                      next_addr;
    wslay_event_context_ptr         ws;
    int                             version;

    ngx_buf_t                       hs;         /* upgrade request/response,
                                                   then frame read-ahead */
    ngx_uint_t                      hs_sent;
    char                            accept[EGRESS_UPGRADE_ACCEPT_SZ];

    ngx_buf_t                       out;        /* frames -> socket */
    ngx_queue_t                     urgent;     /* control frames first */
    ngx_rbtree_t                    lanes;      /* per-stream frame queues */
    ngx_rbtree_node_t               lane_sentinel;
    ngx_queue_t                     ready;      /* lanes with frames, in
                                                   round-robin order */
    size_t                          queued;     /* bytes in urgent + lanes */
    ngx_queue_t                     spare;      /* freed data frames, reused */
    ngx_uint_t                      nspare;
    size_t                          recv_budget;

    ngx_event_t                     reconnect;
    ngx_event_t                     ping;
    ngx_msec_t                      backoff;
    ngx_msec_t                      last_recv;
    ngx_msec_t                      opened;     /* WebSocket open, for the hello wait */

    ngx_rbtree_t                    streams;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     blocked;
    ngx_uint_t                      nstreams;
    uint32_t                        next_id;

    ngx_event_t                     probe;      /* v1: a host agent there? */
    uint32_t                        probe_id;   /* its open, 0 none */
    ngx_uint_t                      host_frames; /* frames from the host side */
    ngx_uint_t                      probe_mark;  /* host_frames when armed */

    u_char                         *frame;      /* encode buffer */
    size_t                          frame_cap;

    /* masking keys; zeroed (empty) in each worker's bridge */
    egress_random_pool_t            keys;

    u_char                          reason[NGX_STREAM_EGRESS_REASON_MAX];
    size_t                          reason_len;
    u_char                          close_reason[128];
    size_t                          close_reason_len;
    /* a close frame's status read before wslay judges it (1012-1014) */
    u_char                          close_hdr[2];
    ngx_uint_t                      close_got;
    unsigned                        close_frame:1;

    u_char                          resume[EGRESS_MAX_TOKEN_TEXT + 1];
    size_t                          resume_len;
    u_char                          used_resume[EGRESS_SHA256_LEN];
    u_char                          dead_resume[EGRESS_SHA256_LEN];
    u_char                          used_ticket[EGRESS_SHA256_LEN];
    u_char                          spent_ticket[EGRESS_SHA256_LEN];

    ngx_err_t                       ticket_err;     /* last open() error */
    ngx_uint_t                      ended;          /* 4003/4004/404/410 */

    unsigned                        with_ticket:1;  /* this attempt */
    unsigned                        with_resume:1;
    unsigned                        has_dead_resume:1;
    unsigned                        has_spent_ticket:1;
    unsigned                        need_ticket:1;  /* fatal close seen */
    unsigned                        peer_connected:1;
    unsigned                        host_absent:1;  /* v1: probe unanswered */
    unsigned                        hello:1;
    unsigned                        fallback_logged:1;
    unsigned                        failed:1;
    unsigned                        eof:1;
    unsigned                        state_unsaved:1;
} ngx_stream_egress_bridge_t;


/*
 * With "egress_bridge_protocol auto", a coordinator that selected egress.v2
 * but sent no hello within this long (crabbox's echoes the first offered
 * subprotocol and never sends one) is spoken to in v1.
 */
#define NGX_STREAM_EGRESS_HELLO_WAIT  2000


/* the worker's one bridge, NULL outside a worker */
extern ngx_stream_egress_bridge_t  *ngx_stream_egress_bridge;


/* ngx_stream_egress_upgrade.c */

ngx_int_t ngx_stream_egress_upgrade_request(ngx_stream_egress_bridge_t *b,
    const char *cred_name, u_char *cred_value);
ngx_int_t ngx_stream_egress_upgrade_process(ngx_stream_egress_bridge_t *b);


/* ngx_stream_egress_frames.c */

ngx_int_t ngx_stream_egress_bridge_ws_create(ngx_stream_egress_bridge_t *b);
void ngx_stream_egress_bridge_ws_free(ngx_stream_egress_bridge_t *b);
ngx_int_t ngx_stream_egress_bridge_send(ngx_stream_egress_bridge_t *b);
ngx_uint_t ngx_stream_egress_bridge_pending(ngx_stream_egress_bridge_t *b);
void ngx_stream_egress_bridge_message(ngx_stream_egress_bridge_t *b,
    const uint8_t *msg, size_t len, ngx_uint_t binary);
void ngx_stream_egress_bridge_abort_all(ngx_stream_egress_bridge_t *b,
    ngx_str_t *reason);
void ngx_stream_egress_bridge_wake(ngx_stream_egress_bridge_t *b);
ngx_int_t ngx_stream_egress_bridge_flush(ngx_stream_egress_bridge_t *b);
void ngx_stream_egress_bridge_kick(ngx_stream_egress_bridge_t *b);
void ngx_stream_egress_bridge_fall_back_v1(ngx_stream_egress_bridge_t *b,
    const char *why);
uint32_t ngx_stream_egress_bridge_send_probe(ngx_stream_egress_bridge_t *b);


/* ngx_stream_egress_probe.c */

void ngx_stream_egress_probe_init(ngx_stream_egress_bridge_t *b);
void ngx_stream_egress_probe_reset(ngx_stream_egress_bridge_t *b);
void ngx_stream_egress_probe_opened(ngx_stream_egress_bridge_t *b);
ngx_int_t ngx_stream_egress_probe_frame(ngx_stream_egress_bridge_t *b,
    egress_frame_t *f);


/* ngx_stream_egress_state.c */

ngx_int_t ngx_stream_egress_bridge_credentials(ngx_stream_egress_bridge_t *b,
    u_char *value, size_t size, const char **name);
void ngx_stream_egress_bridge_spend_ticket(ngx_stream_egress_bridge_t *b);
void ngx_stream_egress_bridge_set_resume(ngx_stream_egress_bridge_t *b,
    egress_str_t *secret);
void ngx_stream_egress_bridge_end_session(ngx_stream_egress_bridge_t *b,
    ngx_uint_t code);
void ngx_stream_egress_bridge_save_state(ngx_stream_egress_bridge_t *b);
void ngx_stream_egress_bridge_set_reason(ngx_stream_egress_bridge_t *b,
    const char *fmt, ...);


#endif /* _NGX_STREAM_EGRESS_BRIDGE_H_INCLUDED_ */
