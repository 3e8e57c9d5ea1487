/*
 * host.h: internals of the host agent shared by host.c (lifecycle),
 * bridge.c (the WebSocket to the coordinator) and stream.c (one outbound TCP
 * connection per stream).
 */

#ifndef EGRESS_AGENT_HOST_H
#define EGRESS_AGENT_HOST_H

#include <netdb.h>
#include <netinet/in.h>

#include <wslay/wslay.h>

#include "agent.h"
#include "egress_upgrade.h"
#include "egress_wsframe.h"
#include "ws_sock.h"

/* Payload room of a pooled message: v2 header + one full data chunk. */
#define EGRESS_CHUNK_CAP (EGRESS_V2_DATA_HEADER + EGRESS_DATA_CHUNK)
#define AGENT_POOL_MAX   512 /* cached free chunks; beyond that they are freed */

/*
 * Whole-bridge backpressure: when the WebSocket cannot drain (slow
 * coordinator link) streams stop reading their sockets above the high mark
 * and resume below the low one, so the queue stays bounded even though each
 * stream is within its own credit.
 */
#define AGENT_QUEUE_HIGH (8u * 1024 * 1024)
#define AGENT_QUEUE_LOW  (2u * 1024 * 1024)

enum { ST_RESOLVING = 1, ST_CONNECTING, ST_OPEN, ST_DEAD };

/* Bytes handed to a stream's TCP socket: one per data message received. */
typedef struct tcpchunk_s {
    uv_write_t req;
    struct tcpchunk_s *next; /* free list */
    stream_t *s;
    size_t len, cap;
    unsigned char data[];
} tcpchunk_t;

struct stream_s {
    stream_t *hnext;
    agent_t *ag;
    uint32_t id;
    uint8_t state;
    uint8_t reading;     /* uv_read_start active */
    uint8_t rd_eof;      /* TCP peer sent FIN; we sent close{half} */
    uint8_t wr_half;     /* client sent close{half}: shut down our write side */
    uint8_t wr_shut;     /* uv_shutdown done */
    uint8_t tcp_open;    /* tcp handle initialized and not yet closed */
    uint8_t attempted;   /* at least one connect was tried */
    uint8_t held;        /* reading paused by whole-bridge backpressure */
    uint8_t gai_pending; /* uv_getaddrinfo in flight */
    int refs;            /* table + pending requests + open handles */
    int last_err;
    uint32_t writes_pending;
    uint16_t port;
    char host[EGRESS_HOST_BUF];
    char addr[INET6_ADDRSTRLEN];
    char refused_addr[INET6_ADDRSTRLEN];
    unsigned refused_cls; /* EGRESS_ADDR_* of refused_addr */
    struct addrinfo *ai, *next_ai;
    uint64_t t_start;
    uint64_t bytes_up, bytes_down;
    egress_flow_t flow;
    wsmsg_t *rdmsg; /* buffer lent to uv_read */
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_timer_t timer;
    uv_shutdown_t shut;
};

struct agent_s {
    host_opts_t *o;
    uv_loop_t loop;
    SSL_CTX *tls;                /* wss: one context for every attempt */
    ws_sock_t *ws;               /* the bridge socket; NULL between attempts */
    wslay_event_context_ptr wsl; /* framing, once the upgrade is accepted */
    uv_idle_t pump_idle;         /* one write pass per loop turn, not per message */
    int pump_on;
    uv_timer_t ping_timer; /* liveness pings while the WebSocket is open */
    int rx_seen;           /* bytes arrived since the last tick */
    int ping_quiet;        /* ticks in a row without a byte */
    int close_queued;      /* our close frame is queued (stopping) */
    int proto;             /* negotiated version once established, else 0 */
    int established;       /* WebSocket open */
    int ever_connected;
    int peer;         /* client leg attached (v2 peer/hello) */
    int http_status;  /* status of the last upgrade answer */
    int close_code;   /* close code the coordinator sent, 0 if none */
    int using_resume; /* the current attempt authenticates with the resume secret */
    int using_ticket;
    int exit_code;
    int stopping; /* SIGTERM/SIGINT: flushing closes */
    int finished; /* agent_finish() ran */
    int minting;
    char subproto[64];
    int active; /* a connection attempt or socket exists */
    char session[EGRESS_MAX_TOKEN_TEXT + 1];
    char resume[EGRESS_MAX_TOKEN_TEXT + 1];
    char ticket[EGRESS_MAX_TOKEN_TEXT + 1];
    egress_error_t mint_err;
    int mint_status;
    char state_path[1024];
    unsigned attempts; /* consecutive failed connects, for backoff */

    /* streams by id */
    stream_t **buckets;
    size_t nbuckets, nstreams;
    uint64_t streams_total;

    /* WebSocket send queue (FIFO) */
    wsmsg_t *qhead, *qtail;
    size_t qbytes;
    int held; /* streams are held by backpressure */

    /* pools */
    wsmsg_t *msgpool;
    size_t nmsgpool;
    tcpchunk_t *chunkpool;
    size_t nchunkpool;

    /* the upgrade answer until its head is complete */
    char hbuf[EGRESS_UPGRADE_HEAD_MAX];
    size_t hlen;
    char accept[EGRESS_UPGRADE_ACCEPT_SZ];

    /* bytes being fed to wslay (wslay pulls them through its recv callback) */
    const unsigned char *rin;
    size_t rinlen;

    /* reassembly of one incoming WebSocket message */
    unsigned char *rx;
    size_t rxlen, rxcap;
    int rxbinary;
    int rx_ctrl, rx_fin, rx_done, rx_too_large;
    uint64_t rx_frame_len, rx_frame_off;

    /* masking keys: RAND_bytes in batches, 4 bytes per frame */
    unsigned char maskpool[4096];
    size_t maskoff;

    /* the data frame being written into the staging buffer */
    wsmsg_t *txm;
    size_t txoff;
    unsigned char txkey[4];

    FILE *audit;

    /* metrics (metrics.c) */
    uint64_t bytes_up_total, bytes_down_total, reconnects;
    uint64_t results[16]; /* by index in metrics_results[] */
    uv_tcp_t metrics_srv;
    int metrics_on;

    uv_timer_t retry_timer;
    uv_timer_t stop_timer;
    uv_idle_t finish_idle;
    uv_signal_t sigterm, sigint;
    uv_work_t mint_work;
};

/* bridge.c */
int bridge_connect(agent_t *ag);
void bridge_schedule_reconnect(agent_t *ag, int immediate);
wsmsg_t *bridge_msg_new(agent_t *ag, size_t len);
void bridge_msg_free(agent_t *ag, wsmsg_t *m);
void bridge_enqueue(agent_t *ag, wsmsg_t *m);
int bridge_send_frame(agent_t *ag, const egress_frame_t *f);
void bridge_purge_streams(agent_t *ag);
/* Loop resources of the bridge (call once before bridge_connect). */
int bridge_init(agent_t *ag);
/* Closes the socket and the bridge's handles (agent_finish, outside callbacks). */
void bridge_stop(agent_t *ag);
/* Queued messages exist: write them on this loop turn. */
void bridge_kick(agent_t *ag);

/* stream.c */
stream_t *stream_find(agent_t *ag, uint32_t id);
void stream_on_open(agent_t *ag, const egress_frame_t *f);
void stream_on_data(agent_t *ag, uint32_t id, const uint8_t *body, size_t len);
void stream_on_window(agent_t *ag, uint32_t id, uint32_t increment);
void stream_on_close(agent_t *ag, uint32_t id, int half);
/* Ends every stream; with_frames sends close/error for each (shutdown). */
void stream_kill_all(agent_t *ag, int with_frames);
void stream_pool_free(agent_t *ag);
/* The send queue drained below AGENT_QUEUE_LOW: held streams read again. */
void stream_release_held(agent_t *ag);

/* metrics.c */
int metrics_start(agent_t *ag, const char *addr, egress_error_t *err);
void metrics_stop(agent_t *ag);
void metrics_count_result(agent_t *ag, const char *result);

/* host.c */
void agent_finish(agent_t *ag, int code);
void agent_save_state(agent_t *ag);
uint64_t agent_now_ms(agent_t *ag);

#endif /* EGRESS_AGENT_HOST_H */
