/*
 * ratelimit.c: token buckets for ticket minting and failed upgrades.
 *
 * A fixed open-addressed table (no allocation, bounded memory); when a probe
 * window is full the least recently used bucket is recycled, which can only
 * make a limit more lenient, never block a caller it should not.
 */

#include <stdio.h>
#include <string.h>

#include "coord.h"
#include "ratelimit.h"

#define RL_SLOTS 4096
#define RL_PROBE 8
#define RL_KEY   112

typedef struct {
    char key[RL_KEY];
    double tokens;
    int64_t last_ms;
} rl_bucket_t;

static rl_bucket_t table[RL_SLOTS];

static uint32_t rl_hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s) {
        h = (h ^ (uint8_t) *s++) * 16777619u;
    }
    return h;
}

static rl_bucket_t *rl_lookup(const char *key, double rate, double burst)
{
    uint32_t h = rl_hash(key);
    rl_bucket_t *b, *victim = NULL;
    int64_t now = coord_now_ms();
    int i;

    for (i = 0; i < RL_PROBE; i++) {
        b = &table[(h + (uint32_t) i) % RL_SLOTS];
        if (b->key[0] == '\0' || strcmp(b->key, key) == 0) {
            victim = b;
            break;
        }
        if (victim == NULL || b->last_ms < victim->last_ms) {
            victim = b;
        }
    }
    b = victim;
    if (b->key[0] == '\0' || strcmp(b->key, key) != 0) {
        snprintf(b->key, sizeof(b->key), "%s", key);
        b->tokens = burst;
        b->last_ms = now;
        return b;
    }
    b->tokens += (double) (now - b->last_ms) / 1000.0 * rate;
    if (b->tokens > burst) {
        b->tokens = burst;
    }
    b->last_ms = now;
    return b;
}

int ratelimit_take(const char *key, double rate, double burst)
{
    rl_bucket_t *b = rl_lookup(key, rate, burst);

    if (b->tokens < 1.0) {
        return 0;
    }
    b->tokens -= 1.0;
    return 1;
}

int ratelimit_peek(const char *key, double rate, double burst)
{
    return rl_lookup(key, rate, burst)->tokens >= 1.0;
}
