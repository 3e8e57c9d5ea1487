/*
 * session.h: live egress sessions, their two sockets and the relay between them.
 *
 * A session_t exists in memory while at least one of its sockets is open
 * (the durable part lives in store.c). Each conn_t is one agent WebSocket.
 * Messages are assembled once into a msg_t (with MSG_PRE headroom) and, when
 * both sides speak the same protocol version, that same buffer is queued on
 * the peer: one copy per message, unmasked from the read buffer into ours.
 *
 * Memory bounds: each conn's outbound queue (plus bytes the coordinator
 * holds back for lack of v2 credit) is capped by coord_cfg.queue_cap; above
 * it the source socket's rx is paused with agent_sock_rx(), below half
 * of it reading resumes.
 */

#ifndef SESSION_H
#define SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "conn.h"
#include "destinations.h"
#include "traffic.h"
#include "egress_idmap.h"

typedef struct stream_s {
    struct stream_s *next;
    uint32_t id;
    unsigned half_client : 1;
    unsigned half_host : 1;
    unsigned opened : 1; /* open_ok seen */
    dest_ref_t dest;     /* its entry in the session's destination table */
    /* translation only: the coordinator is the v2 endpoint toward the v2 side */
    egress_flow_t fl;
    msg_t *pend_head, *pend_tail; /* data waiting for v2 credit */
    size_t pend_bytes;
    /* the client's frames held until open_ok, for a host that cannot take
     * data while it dials (see session.c, "early data") */
    msg_t *early_head, *early_tail;
    size_t early_bytes;
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
    size_t early_bytes;   /* client frames held until their stream's open_ok */
    uint64_t bytes_up;    /* client -> host payload bytes */
    uint64_t bytes_down;  /* host -> client */
    uint64_t frames;
    int64_t since[2];   /* when each role last connected or disconnected (unix s; 0 never) */
    dest_table_t dests; /* what the lease asked for (destinations.h) */
    traffic_ring_t traffic; /* the last 15 minutes, a sample per second (traffic.h) */
    egress_idmap_t v1ids;   /* string ids a v1 client chose <-> the session's stream ids */
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

/* c's socket is writable: writes its queue, then re-evaluates rx pausing.
 * -1 when the socket must close. */
int session_on_writable(conn_t *c);

/* Re-evaluates rx pausing of both sockets. */
void session_update_flow(session_t *s);

/* Liveness tick (every coord_cfg.ping_ms): pings quiet sockets and drops
 * those quiet for CONN_QUIET_TICKS ticks in a row, telling their peers. */
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
    uint64_t early_held; /* bytes of early data held for a host that cannot take them */
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

/* streams.c: the session's stream table. */
stream_t *stream_find(session_t *s, uint32_t id);
stream_t *stream_add(session_t *s, uint32_t id);
void stream_remove(session_t *s, uint32_t id);
/* Drops every stream and what it held back (either socket left). */
void stream_clear_all(session_t *s);

#endif /* SESSION_H */
