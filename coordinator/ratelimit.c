/*
 * ratelimit.c: token buckets for ticket minting, failed upgrades and portal
 * sign-ins.
 *
 * With PostgreSQL every bucket is a row shared by all instances
 * (ratelimit_pg.c), so a limit holds however the front spreads the calls.
 * When the database does not answer (the call's deadline, a connection
 * being rebuilt), the call falls back to this process's own bucket: a limit
 * never vanishes, and an outage does not refuse everyone. The database is
 * not asked again for RL_RETRY_MS after a failure, so an outage costs at
 * most one bounded call a second here. The fallback is logged once per
 * outage (ratelimit_local), and its end too (ratelimit_global).
 *
 * The local buckets: a fixed open-addressed table (no allocation, bounded
 * memory); when a probe window is full the least recently used bucket is
 * recycled, which can only make a limit more lenient, never block a caller
 * it should not.
 */

#include <stdio.h>
#include <string.h>

#include "coord.h"
#include "ratelimit.h"
#include "ratelimit_pg.h"

#define RL_SLOTS 4096
#define RL_PROBE 8
#define RL_KEY   112

/* After a failed database call, buckets stay local this long. */
#define RL_RETRY_MS 1000
/* Purge: a batch of rows every RL_PURGE_EVERY_S, or at the next tick when
 * the previous batch was full. */
#define RL_PURGE_BATCH   1000
#define RL_PURGE_EVERY_S 10

typedef struct {
    char key[RL_KEY];
    double tokens;
    int64_t last_ms;
} rl_bucket_t;

static rl_bucket_t table[RL_SLOTS];

static int64_t outage_since = -1; /* coord_mono_ms() of the first failure, or -1 */
static int64_t retry_at;

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
    if (now > b->last_ms) {
        b->tokens += (double) (now - b->last_ms) / 1000.0 * rate;
    }
    if (b->tokens > burst) {
        b->tokens = burst;
    }
    b->last_ms = now;
    return b;
}

static int local_take(const char *key, double rate, double burst)
{
    rl_bucket_t *b = rl_lookup(key, rate, burst);

    if (b->tokens < 1.0) {
        return 0;
    }
    b->tokens -= 1.0;
    return 1;
}

static int local_peek(const char *key, double rate, double burst)
{
    return rl_lookup(key, rate, burst)->tokens >= 1.0;
}

/* 1 when the database is to be asked. */
static int global_on(void)
{
    return ratelimit_pg_enabled() && (outage_since < 0 || coord_mono_ms() >= retry_at);
}

/* Notes a database call's outcome (n < 0: failed); returns n. */
static int global_result(int n)
{
    int64_t now = coord_mono_ms();

    if (n < 0) {
        if (outage_since < 0) {
            outage_since = now;
            coord_log("ratelimit_local",
                      "error=\"the database did not answer: rate limits are per instance "
                      "until it does\"");
        }
        retry_at = now + RL_RETRY_MS;
    } else if (outage_since >= 0) {
        coord_log("ratelimit_global", "local_ms=%lld", (long long) (now - outage_since));
        outage_since = -1;
    }
    return n;
}

int ratelimit_take(const char *key, double rate, double burst)
{
    int n;

    if (global_on() && (n = global_result(ratelimit_pg_take(&key, 1, rate, burst))) >= 0) {
        return n > 0;
    }
    return local_take(key, rate, burst);
}

void ratelimit_charge(const char *const *keys, size_t n, double rate, double burst)
{
    size_t i;

    if (n <= RATELIMIT_PG_KEYS_MAX && global_on() &&
        global_result(ratelimit_pg_take(keys, n, rate, burst)) >= 0) {
        return;
    }
    for (i = 0; i < n; i++) {
        local_take(keys[i], rate, burst);
    }
}

int ratelimit_peek_all(const char *const *keys, size_t n, double rate, double burst)
{
    size_t i;
    int ok;

    if (n <= RATELIMIT_PG_KEYS_MAX && global_on() &&
        (ok = global_result(ratelimit_pg_peek(keys, n, rate, burst))) >= 0) {
        return ok;
    }
    for (i = 0; i < n; i++) {
        if (!local_peek(keys[i], rate, burst)) {
            return 0;
        }
    }
    return 1;
}

int ratelimit_peek(const char *key, double rate, double burst)
{
    return ratelimit_peek_all(&key, 1, rate, burst);
}

void ratelimit_tick(void)
{
    static int64_t next_purge;
    int64_t now = coord_mono_ms();
    long rows;

    if (now < next_purge || !global_on()) {
        return;
    }
    rows = ratelimit_pg_purge(RL_PURGE_BATCH);
    global_result(rows < 0 ? -1 : 0);
    next_purge = now + (rows == RL_PURGE_BATCH ? 1000 : RL_PURGE_EVERY_S * 1000);
}
