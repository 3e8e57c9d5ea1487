/*
 * destinations.h: per session, the destinations the lease asked for and what
 * became of them (opens, refusals and why, bytes each way, last use).
 *
 * Fixed memory whatever the number of hosts: DEST_MAX entries, the least
 * recently used one is evicted to make room for a new destination. Only host,
 * port, counters, the refusal's class and times are kept: never the refusal's
 * text (it may carry a resolved address) nor anything of the payload.
 */

#ifndef DESTINATIONS_H
#define DESTINATIONS_H

#include <stddef.h>
#include <stdint.h>

#define DEST_MAX      100
#define DEST_HOST_MAX 256 /* a host of the protocol is at most 253 characters plus a dot */

typedef enum {
    DEST_REASON_NONE = 0,
    DEST_REASON_ALLOWLIST,   /* not on the allowlist */
    DEST_REASON_PORT,        /* the host is listed, but not for that port */
    DEST_REASON_PRIVATE,     /* resolves to a private or special address */
    DEST_REASON_DNS,         /* name lookup failed */
    DEST_REASON_TIMEOUT,     /* connect timed out */
    DEST_REASON_REFUSED,     /* connection refused by the destination */
    DEST_REASON_UNREACHABLE, /* network unreachable */
    DEST_REASON_NO_HOST,     /* no host agent was connected */
    DEST_REASON_OTHER
} dest_reason_e;

typedef struct {
    char host[DEST_HOST_MAX]; /* lower case, no trailing dot; "" marks a free slot */
    uint16_t port;
    uint32_t gen; /* bumped when the slot is reused, so stale references miss */
    uint64_t opens;
    uint64_t opened; /* open_ok seen */
    uint64_t refused;
    dest_reason_e reason; /* of the latest refusal */
    uint64_t bytes_up;    /* client -> destination */
    uint64_t bytes_down;
    int64_t first_seen, last_seen, last_opened, last_refused; /* unix seconds */
    uint64_t seq;                /* the table's use counter at the last use (LRU order) */
    unsigned refused_latest : 1; /* the latest attempt was refused */
} dest_t;

typedef struct {
    dest_t d[DEST_MAX];
    size_t n;         /* slots in use */
    uint64_t evicted; /* destinations forgotten to make room */
    uint64_t seq;     /* bumped at every use */
} dest_table_t;

/* What a stream remembers of its destination; gen 0 is no destination. */
typedef struct {
    uint32_t idx;
    uint32_t gen;
} dest_ref_t;

/* Records an open of host:port (compared case-insensitively without a
 * trailing dot) and returns its reference; the least recently used entry
 * makes room when the table is full. */
dest_ref_t dest_open(dest_table_t *t, const char *host, size_t len, uint16_t port, int64_t now);

/* The entry behind ref, or NULL when it was evicted since. */
dest_t *dest_get(dest_table_t *t, dest_ref_t ref);

/* The stream of ref was established. */
void dest_opened(dest_table_t *t, dest_ref_t ref, int64_t now);

/* The stream of ref was refused before it was established. */
void dest_refused(dest_table_t *t, dest_ref_t ref, dest_reason_e why, int64_t now);

/* Payload bytes of ref's stream (up: client -> destination). */
void dest_bytes(dest_table_t *t, dest_ref_t ref, int up, uint64_t n, int64_t now);

/* The class of an `error` frame's message (protocol.md, open_ok / error). */
dest_reason_e dest_classify(const char *msg, size_t len);

/* Stable machine name ("not_allowed", "port", ...) and a short sentence. */
const char *dest_reason_name(dest_reason_e r);
const char *dest_reason_text(dest_reason_e r);

/* 1 when adding the host to the allowlist would let the destination through. */
int dest_reason_allowable(dest_reason_e r);

/* 1 when d's latest attempt was refused (no success since). */
int dest_is_refused(const dest_t *d);

/* Entries in use, most recently used first, into out (room for DEST_MAX). */
size_t dest_sorted(const dest_table_t *t, const dest_t **out);

#endif /* DESTINATIONS_H */
