/*
 * ratelimit.h: token buckets keyed by string (ratelimit.c). With
 * PostgreSQL the buckets are shared by every instance on the database
 * (ratelimit_pg.c); while it does not answer, and with SQLite, each
 * process keeps its own.
 *
 * Keys name what is limited ("mint:token:HASH", "fail:addr:ADDRESS"):
 * hashes, ids and addresses only, never a secret, since they are stored.
 */

#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stddef.h>

/* 1 = allowed (a token taken), 0 = limited. */
int ratelimit_take(const char *key, double rate, double burst);
/* Takes a token from each of the n distinct keys (at most 4) that has one,
 * in one round trip: charges a failure to several buckets. */
void ratelimit_charge(const char *const *keys, size_t n, double rate, double burst);
/* 1 when the key has at least one token left (nothing taken). */
int ratelimit_peek(const char *key, double rate, double burst);
/* 1 when each of the n keys (at most 4) has a token left: one round trip. */
int ratelimit_peek_all(const char *const *keys, size_t n, double rate, double burst);
/* Timer (1 s): purges the database's rows of buckets full again, a
 * bounded batch now and then. */
void ratelimit_tick(void);

#endif /* RATELIMIT_H */
