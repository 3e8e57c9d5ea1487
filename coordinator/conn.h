/*
 * conn.h: one agent WebSocket (conn_t) and the messages queued on it (msg_t).
 *
 * Ownership: a conn_t belongs to its agent socket (ws_open() allocates it
 * after the upgrade, ws_on_gone() frees it when agent_sock.c ends the
 * socket); sess points at the session it is
 * attached to, or is NULL once detached. A msg_t queued with conn_enqueue()
 * belongs to the conn until written or freed with the queue.
 */

#ifndef CONN_H
#define CONN_H

#include <stddef.h>
#include <stdint.h>

#include "coord.h"
#include "egress.h"

enum { ROLE_HOST = 0, ROLE_CLIENT = 1 };

typedef struct msg_s {
    struct msg_s *next;
    size_t len;         /* payload bytes */
    size_t off;         /* payload bytes already written */
    size_t cap;         /* payload capacity */
    uint32_t credit_id; /* translated data: stream to credit when written */
    uint32_t credit_n;  /* ... and the bytes to credit */
    uint32_t sid;       /* the frame's stream id (0: none), so urgent ones keep order */
    unsigned binary : 1;
    unsigned urgent : 1;  /* a control frame that may pass queued data */
    unsigned barrier : 1; /* nothing urgent passes it */
    unsigned char buf[];  /* MSG_PRE headroom, then the payload */
} msg_t;

/* Headroom before the payload: room for a frame header (at most 10 bytes),
 * which conn_write() puts right before the bytes it sends. */
#define MSG_PRE     16
#define MSG_DATA(m) ((m)->buf + MSG_PRE)

msg_t *msg_new(size_t cap);

struct session_s;
struct agent_sock_s;

typedef struct conn_s {
    struct agent_sock_s *sock;
    struct session_s *sess;
    int role;
    int version;
    char peer_addr[64];
    msg_t *q_head, *q_tail;
    msg_t *q_urgent; /* last urgent message in the run near the head, or NULL */
    size_t q_bytes;
    msg_t *rx; /* message being assembled */
    int close_code;
    const char *close_reason;
    unsigned paused : 1;     /* our rx is off because the peer's queue is full */
    unsigned early_data : 1; /* a host that holds data arriving before open_ok */
    unsigned heard : 1;      /* something arrived since the last liveness tick */
    unsigned ping_due : 1;   /* a ping waits for the writable callback */
    unsigned quiet_ticks;    /* liveness ticks in a row with nothing heard */
} conn_t;

/* Queues m (ownership passes) on c and asks for a writable callback. An
 * urgent message goes ahead of queued messages of other streams: behind
 * earlier urgent ones, behind the last barrier (peer), never into a message
 * already partly written and never past a message of its own stream (an id
 * reused after close must not overtake the old stream's end). */
void conn_enqueue(conn_t *c, msg_t *m);

/* Frames that may pass queued data (open, open_ok, window, hello: they move
 * no stream's bytes), and barriers nothing passes (peer: a stream opened
 * after the other side came back must not reach it before the news that the
 * old streams died). */
int conn_frame_urgent(egress_frame_type_e type);
int conn_frame_barrier(egress_frame_type_e type);

/* Sets m's ordering class from the frame it holds. */
void msg_classify(msg_t *m, const egress_frame_t *f);

/* Encodes f for c's version and queues it. */
int conn_send_frame(conn_t *c, const egress_frame_t *f);

/* Called for each message once its last byte went to the socket (m is freed after). */
typedef void (*conn_written_fn)(conn_t *c, const msg_t *m);

/* Writes a due ping and queued messages from c's writable event; returns
 * -1 when the socket failed. */
int conn_write(conn_t *c, conn_written_fn on_written);

/* Asks c's socket to close with code/reason (sent from its writable event;
 * the socket ends within 5 s whatever the agent does). */
void conn_close(conn_t *c, int code, const char *reason);

void conn_free_queues(conn_t *c);

/* Liveness: a socket quiet for CONN_QUIET_TICKS ticks in a row has gone. */
#define CONN_QUIET_TICKS 3

/* One liveness tick for c: resets on traffic, else asks for a ping; 1 when
 * c has been quiet for CONN_QUIET_TICKS ticks and must be dropped. */
int conn_liveness_tick(conn_t *c);

const char *role_name(int role);

#endif /* CONN_H */
