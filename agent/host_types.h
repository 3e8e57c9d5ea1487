/*
 * host_types.h: the host agent's data, shared by the files of `egress host`
 * (host.c, bridge.c, stream.c, resume.c, metrics.c): its options, the agent
 * in named parts, one stream, the queued messages, and the limits. Types
 * only: each file's functions are in its own header.
 */

#ifndef EGRESS_AGENT_HOST_TYPES_H
#define EGRESS_AGENT_HOST_TYPES_H

#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>
#include <wslay/wslay.h>

#include "agent.h"
#include "egress_crypto.h"
#include "egress_flow.h"
#include "egress_idmap.h"
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

/* `egress host`'s options, filled by cmd_host.c and read-only afterwards. */
typedef struct {
    const char *lease;
    const char *profile;
    const char *allow_arg;
    const char *ports_arg;
    const char *session;
    const char *audit_path;
    const char *metrics_addr;
    int allow_private;
    int daemon;
    int dial_timeout_ms;
    int verbose;
    int protocol;           /* 0: offer v2 then v1; else only that version */
    uint32_t window_max;    /* per-stream receive window cap (v2) */
    uint64_t window_budget; /* window above the start size, all streams */
    egress_url_t url;
    char coordinator[512];
    char *token;           /* may be NULL */
    char *ticket;          /* consumed by the first connect; may be NULL */
    egress_allow_t *allow; /* replaced whole by a reload (allow_file.c) */
    /* what the allowlist is built from, again on SIGHUP (allow_file.c) */
    const char *profiles[8];
    size_t nprofiles;
    const char *allow_args[32];
    size_t nallow_args;
    const char *allow_file; /* --allow-file, absolute; NULL without */
    int strict_reload;      /* a reload also ends open streams it refuses */
} host_opts_t;

typedef struct stream_s stream_t;
typedef struct agent_s agent_t;
typedef struct bridge_ops_s bridge_ops_t;

/* One message for the WebSocket: a frame's payload, masked when it is written. */
typedef struct wsmsg_s {
    struct wsmsg_s *next;
    uint32_t stream_id; /* 0 = session-level message (never purged) */
    uint32_t len;       /* payload bytes in buf */
    uint32_t cap;       /* payload capacity (pooled messages have EGRESS_CHUNK_CAP) */
    uint8_t binary;
    unsigned char buf[];
} wsmsg_t;

/* Bytes handed to a stream's TCP socket: one per data message received. */
typedef struct tcpchunk_s {
    uv_write_t req;
    struct tcpchunk_s *next; /* free list */
    stream_t *s;
    size_t len, cap;
    unsigned char data[];
} tcpchunk_t;

enum { ST_RESOLVING = 1, ST_CONNECTING, ST_OPEN, ST_DEAD };

/* One outbound TCP connection for one bridge stream (stream.c). */
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
    tcpchunk_t *early, *early_tail; /* data that came while dialing */
    size_t early_bytes;
    wsmsg_t *rdmsg; /* buffer lent to uv_read */
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_timer_t timer;
    uv_shutdown_t shut;
};

/* The host agent: one per process, on one libuv loop. */
struct agent_s {
    host_opts_t *o; /* the command line (cmd_host.c) */
    uv_loop_t loop;

    /* life cycle: host.c (signals, the clean stop, the exit code) */
    struct {
        int exit_code;
        int stopping; /* SIGTERM/SIGINT: flushing closes */
        int finished; /* host_finish() ran */
        uv_timer_t stop_timer;
        uv_idle_t finish_idle;
        uv_signal_t sigterm, sigint;
        uv_signal_t sighup; /* re-reads the allowlist (allow_file.c) */
    } life;
    unsigned allow_gen; /* allowlist loads so far (allow_file.c) */

    /* credentials and session: bridge.c spends and mints them, resume.c keeps them on disk */
    struct {
        char session[EGRESS_MAX_TOKEN_TEXT + 1];
        char resume[EGRESS_MAX_TOKEN_TEXT + 1];
        char ticket[EGRESS_MAX_TOKEN_TEXT + 1];
        char state_path[1024]; /* "" without --daemon: nothing is kept on disk */
        int using_resume;      /* the current attempt authenticates with the resume secret */
        int using_ticket;
        int minting; /* a ticket is being minted on a work thread */
        int mint_status;
        egress_error_t mint_err;
        uv_work_t mint_work;
    } cred;

    /* the WebSocket to the coordinator and its attempts: bridge.c */
    struct {
        const bridge_ops_t *ops;     /* the layers above (host.c sets it) */
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
        egress_idmap_t v1ids;  /* v1: the client's string ids <-> our stream ids */
        int hello;             /* v2: hello seen on this socket */
        int fallback_logged;   /* auto fell back to v1 once (logged then) */
        int established;       /* WebSocket open */
        int ever_connected;
        int peer;        /* client leg attached (v2 peer/hello) */
        int http_status; /* status of the last upgrade answer */
        int close_code;  /* close code the coordinator sent, 0 if none */
        int active;      /* a connection attempt or socket exists */
        char subproto[64];
        unsigned attempts; /* consecutive failed connects, for backoff */
        uv_timer_t retry_timer;
        /* the upgrade answer until its head is complete */
        char hbuf[EGRESS_UPGRADE_HEAD_MAX];
        size_t hlen;
        char accept[EGRESS_UPGRADE_ACCEPT_SZ];
    } bridge;

    /*
     * The WebSocket send queue (FIFO): bridge.c writes it; stream.c adds to
     * it and holds its streams while it is above AGENT_QUEUE_HIGH. open_ok and
     * window frames go to the urgent FIFO, written ahead of queued data (after
     * the frame being written): open_ok is a stream's first frame and window
     * speaks of the other direction, so no stream's own order changes. bytes
     * counts both.
     */
    struct {
        wsmsg_t *head, *tail;
        wsmsg_t *urgent_head, *urgent_tail;
        size_t bytes;
        int held; /* streams are held by backpressure */
    } queue;

    /* incoming messages: bridge.c (wslay pulls bytes, the frame callbacks reassemble) */
    struct {
        const unsigned char *in; /* bytes being fed to wslay */
        size_t inlen;
        unsigned char *buf; /* one message being reassembled */
        size_t len, cap;
        int binary;
        int ctrl, fin, done, too_large;
        /* a close frame's status, read before wslay judges it (1012-1014) */
        int close_frame;
        unsigned char close_hdr[2];
        size_t close_got;
        uint64_t close_len;
        uint64_t frame_len, frame_off;
    } rx;

    /* outgoing frames: bridge.c (masking keys, the data frame being staged) */
    struct {
        egress_random_pool_t keys; /* masking keys, 4 bytes per frame */
        wsmsg_t *m;                /* the data frame being written into the staging buffer */
        size_t off;
        unsigned char key[4];
    } tx;

    /* streams by id and their audit log: stream.c (host.c opens the log) */
    struct {
        stream_t **buckets;
        size_t nbuckets, n;
        uint64_t total;
        FILE *audit;
        egress_window_pool_t windows; /* shared by the streams' receive windows */
    } streams;

    /* free lists: messages (bridge.c) and TCP write chunks (stream.c) */
    struct {
        wsmsg_t *msgs;
        size_t nmsgs;
        tcpchunk_t *chunks;
        size_t nchunks;
    } pool;

    /* counters and the --metrics listener: metrics.c (stream.c counts) */
    struct {
        uint64_t bytes_up, bytes_down;
        uint64_t results[16]; /* by index in metrics_results[] */
        uv_tcp_t srv;
        int on;
    } metrics;
};

static inline uint64_t agent_now_ms(agent_t *ag)
{
    return uv_now(&ag->loop);
}

#endif /* EGRESS_AGENT_HOST_TYPES_H */
