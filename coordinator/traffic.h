/*
 * traffic.h: a session's throughput over the last TRAFFIC_SECONDS, one
 * sample per second (payload bytes each way, open streams), in a ring of
 * fixed size.
 *
 * No timer drives it: every event first advances the ring to the current
 * second, filling the seconds in between with zero bytes and the stream
 * count that held during them (it only changes on events).
 */

#ifndef TRAFFIC_H
#define TRAFFIC_H

#include <stddef.h>
#include <stdint.h>

#define TRAFFIC_SECONDS 900 /* 15 minutes */

typedef struct {
    uint64_t up;      /* client -> destination payload bytes in that second */
    uint64_t down;    /* destination -> client */
    uint32_t streams; /* the most streams open at once during that second */
} traffic_sample_t;

typedef struct {
    traffic_sample_t s[TRAFFIC_SECONDS];
    int64_t head_t; /* the second of s[head]; 0 before the first event */
    unsigned head;
} traffic_ring_t;

/* Moves the ring to second now (streams: open streams right now). A clock
 * that went back keeps counting into the newest second. */
void traffic_advance(traffic_ring_t *r, int64_t now, uint32_t streams);

/* Adds payload bytes and notes the stream count in second now. */
void traffic_add(traffic_ring_t *r, int64_t now, uint32_t streams, uint64_t up, uint64_t down);

/* The n seconds ending with second end (inclusive), oldest first, into out;
 * seconds the ring has no record of read as zero (streams: the count at the
 * oldest known second, or 0). n is at most TRAFFIC_SECONDS. */
void traffic_read(const traffic_ring_t *r, int64_t end, size_t n, traffic_sample_t *out);

#endif /* TRAFFIC_H */
