/*
 * session.h: live egress sessions, their two sockets and the relay between them.
 *
 * A session_t exists in memory while at least one of its sockets is open
 * (the durable part lives in store.c). Each conn_t is one agent WebSocket.
 * Messages are assembled once into a msg_t (with LWS_PRE headroom) and, when
 * both sides speak the same protocol version, that same buffer is queued on
 * the peer: one copy per message, from the lws rx buffer into ours.
 *
 * Memory bounds: each conn's outbound queue (plus bytes the coordinator
 * holds back for lack of v2 credit) is capped by coord_cfg.queue_cap; above
 * it the source socket's rx is paused with lws_rx_flow_control(), below half
 * of it reading resumes.
 */

#ifndef SESSION_H
#define SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "coord.h"
#include "egress.h"

enum { ROLE_HOST = 0, ROLE_CLIENT = 1 };

/* WebSocket close codes (docs/coordinator.md): the shared ones of lib/egress_proto.h. */
#define CLOSE_SESSION_REPLACED EGRESS_CLOSE_SESSION_REPLACED
#define CLOSE_SOCKET_REPLACED  EGRESS_CLOSE_SOCKET_REPLACED
#define CLOSE_LEASE_GONE       EGRESS_CLOSE_LEASE_GONE
#define CLOSE_SESSION_STOPPED  EGRESS_CLOSE_SESSION_STOPPED
#define CLOSE_POLICY           EGRESS_CLOSE_POLICY
#define CLOSE_TOO_BIG          EGRESS_CLOSE_TOO_BIG

typedef struct msg_s {
    struct msg_s *next;
    size_t len;         /* payload bytes */
    size_t off;         /* payload bytes already written */
    size_t cap;         /* payload capacity */
    uint32_t credit_id; /* translated data: stream to credit when written */
    uint32_t credit_n;  /* ... and the bytes to credit */
    unsigned binary : 1;
    unsigned char buf[]; /* LWS_PRE headroom, then the payload */
} msg_t;

#define MSG_DATA(m) ((m)->buf + LWS_PRE)

msg_t *msg_new(size_t cap);

struct session_s;

typedef struct conn_s {
    struct lws *wsi;
    struct session_s *sess;
    int role;
    int version;
    char peer_addr[64];
    msg_t *q_head, *q_tail;
    size_t q_bytes;
    msg_t *rx; /* message being assembled */
    int close_code;
    const char *close_reason;
    unsigned paused : 1;   /* our rx is off because the peer's queue is full */
    unsigned heard : 1;    /* something arrived since the last liveness tick */
    unsigned ping_due : 1; /* a ping waits for the writable callback */
    unsigned quiet_ticks;  /* liveness ticks in a row with nothing heard */
} conn_t;

typedef struct stream_s {
    struct stream_s *next;
    uint32_t id;
    unsigned half_client : 1;
    unsigned half_host : 1;
    unsigned opened : 1; /* open_ok seen */
    /* translation only: the coordinator is the v2 endpoint toward the v2 side */
    egress_flow_t fl;
    msg_t *pend_head, *pend_tail; /* data waiting for v2 credit */
    size_t pend_bytes;
} stream_t;

#define STREAM_BUCKETS 256
#define STREAMS_MAX    65536 /* live streams per session; more opens get an error */

typedef struct session_s {
    struct session_s *next;
    char lease_id[COORD_ID_MAX + 1];
    char session_id[COORD_SESSION_MAX];
    conn_t *conn[2];
    stream_t *streams[STREAM_BUCKETS];
    size_t nstreams;
    size_t pend_bytes[2]; /* translated data held back toward conn[role] */
    uint64_t bytes_up;    /* client -> host payload bytes */
    uint64_t bytes_down;  /* host -> client */
    uint64_t frames;
    int64_t since[2]; /* when each role last connected or disconnected (unix s; 0 never) */
} session_t;

/* Live session of a lease, or NULL. */
session_t *session_find(const char *lease_id);

/* Live session for (lease, session id), created when absent (a different live one is ended). */
session_t *session_get(const char *lease_id, const char *session_id);

/* Closes both sockets with code/reason and forgets the in-memory session. */
void session_end(const char *lease_id, int code, const char *reason);

/* Attaches c (its role/version set) to s; an older socket of the role gets 4002. */
int session_attach(session_t *s, conn_t *c, const char *resume);

/* Frees s when neither role has a socket (a session that failed to take one). */
void session_maybe_free(session_t *s);

/* c's socket closed: detach it, tell the peer, drop every stream. */
void session_detach(conn_t *c);

/* A complete message arrived on c (ownership of m passes). 0, or a close code. */
int session_on_message(conn_t *c, msg_t *m);

/* Queues m (ownership passes) on c and asks for a writable callback. */
void conn_enqueue(conn_t *c, msg_t *m);

/* Encodes f for c's version and queues it. */
int conn_send_frame(conn_t *c, const egress_frame_t *f);

/* Writes queued messages; returns -1 when the socket must close. */
int conn_on_writable(conn_t *c);

/* Asks c's socket to close with code/reason (sent from its writable callback). */
void conn_close(conn_t *c, int code, const char *reason);

void conn_free_queues(conn_t *c);

const char *role_name(int role);

/* Re-evaluates rx pausing of both sockets. */
void session_update_flow(session_t *s);

/* Liveness tick (every coord_cfg.ping_ms): pings quiet sockets and drops
 * those quiet for SESSION_QUIET_TICKS ticks in a row. */
#define SESSION_QUIET_TICKS 3
void session_ping_tick(void);

/* Counters for /metrics. */
typedef struct {
    uint64_t sessions_created;
    uint64_t sockets_accepted[2];
    uint64_t sockets_replaced;
    uint64_t frames_in;
    uint64_t frames_out;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t frames_rejected;
    uint64_t opens_no_host;
    uint64_t rx_pauses;
    uint64_t sockets_silent; /* dropped for missing pongs */
    size_t sessions_live;
    size_t sockets_live[2];
} session_stats_t;

extern session_stats_t session_stats;

/* First session in the live list (for status/metrics iteration). */
session_t *session_list(void);

/* translate.c: forwards a decoded frame from src to a peer of the other version. */
int translate_forward(session_t *s, conn_t *src, conn_t *dst, stream_t *st,
                      const egress_frame_t *f);
/* translate.c: a translated data message toward a v1 side was written. */
void translate_on_written(session_t *s, conn_t *c, const msg_t *m);
/* translate.c: v2 credit arrived for a stream; flush what it allows. */
void translate_flush(session_t *s, stream_t *st, int to_role);

stream_t *stream_find(session_t *s, uint32_t id);
void stream_remove(session_t *s, uint32_t id);

#endif /* SESSION_H */
