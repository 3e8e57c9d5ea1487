/*
 * owner_counters.h: a lease's live counters (its sockets, streams and
 * bytes), as the status document shows them and as the instance relaying
 * the lease publishes them with its heartbeat, so that any instance can
 * answer status (docs/scale-out.md, "Status from any instance").
 */

#ifndef OWNER_COUNTERS_H
#define OWNER_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "coord.h"

/* At most this many leases in one heartbeat's document (about 150 bytes each). */
#define OWNER_COUNTERS_MAX 1000

typedef struct {
    char session_id[COORD_SESSION_MAX];
    int connected[2]; /* [ROLE_HOST], [ROLE_CLIENT] */
    int64_t since[2]; /* unix s of the role's last connect or disconnect; 0 unknown */
    int version[2];   /* the connected socket's protocol (1, 2), 0 none */
    uint64_t streams;
    uint64_t bytes_up; /* client -> host payload bytes */
    uint64_t bytes_down;
} owner_counters_t;

/*
 * The published form, one compact object per lease: {"sid": SESSION, "hc":
 * bool, "cc": bool, "hs": unix s, "cs": unix s, "hv": 0-2, "cv": 0-2, "st":
 * streams, "up": bytes, "dn": bytes}. NULL when out of memory.
 */
json_t *owner_counters_pack(const owner_counters_t *c);

/* Reads a published object back (it comes from another process through the
 * database: checked like any input). 0, or -1 when malformed. */
int owner_counters_parse(const char *text, size_t len, owner_counters_t *out);

/*
 * Sets the status document's live members from c: hostConnected,
 * clientConnected, hostSince, clientSince, protocol {host, client},
 * streams, bytesUp, bytesDown. c NULL: nothing live (false, null, 0).
 * Members already there keep their place. 0, or -1 when out of memory.
 */
int owner_counters_status(json_t *doc, const owner_counters_t *c);

#endif /* OWNER_COUNTERS_H */
