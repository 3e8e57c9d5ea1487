/*
 * traffic.c: the per-session throughput ring (traffic.h).
 */

#include <string.h>

#include "traffic.h"

void traffic_advance(traffic_ring_t *r, int64_t now, uint32_t streams)
{
    int64_t steps;

    if (r->head_t == 0 || now - r->head_t >= TRAFFIC_SECONDS) {
        memset(r->s, 0, sizeof(r->s));
        r->head = 0;
        r->head_t = now;
        r->s[0].streams = streams;
        return;
    }
    for (steps = now - r->head_t; steps > 0; steps--) {
        r->head = (r->head + 1) % TRAFFIC_SECONDS;
        r->s[r->head].up = 0;
        r->s[r->head].down = 0;
        r->s[r->head].streams = streams;
    }
    if (now > r->head_t) {
        r->head_t = now;
    }
}

void traffic_add(traffic_ring_t *r, int64_t now, uint32_t streams, uint64_t up, uint64_t down)
{
    traffic_sample_t *s;

    traffic_advance(r, now, streams);
    s = &r->s[r->head];
    s->up += up;
    s->down += down;
    if (streams > s->streams) {
        s->streams = streams;
    }
}

void traffic_read(const traffic_ring_t *r, int64_t end, size_t n, traffic_sample_t *out)
{
    size_t i;

    if (n > TRAFFIC_SECONDS) {
        n = TRAFFIC_SECONDS;
    }
    for (i = 0; i < n; i++) {
        int64_t t = end - (int64_t) (n - 1 - i), age;

        memset(&out[i], 0, sizeof(out[i]));
        if (r->head_t == 0) {
            continue;
        }
        age = r->head_t - t;
        if (age < 0) {
            /* after the newest event: nothing moved, the streams stayed open */
            out[i].streams = r->s[r->head].streams;
        } else if (age < TRAFFIC_SECONDS) {
            out[i] = r->s[(r->head + TRAFFIC_SECONDS - (unsigned) age) % TRAFFIC_SECONDS];
        }
    }
}
