/*
 * ratelimit_pg.h: token buckets in PostgreSQL, shared by every instance on
 * the database (ratelimit_pg.c). Each call is one statement on the store's
 * connection, bounded like every store call (store_pg.h).
 *
 * Returns: as noted, or -1 when the database did not answer (the caller
 * then falls back to its own per-process bucket).
 */

#ifndef RATELIMIT_PG_H
#define RATELIMIT_PG_H

#include <stddef.h>

/* At most this many keys in one call. */
#define RATELIMIT_PG_KEYS_MAX 4

/* 1 when the store is PostgreSQL: the buckets live there. */
int ratelimit_pg_enabled(void);

/* Takes a token from the bucket of each of the n keys (distinct) that has
 * one: how many were taken (1 or 0 for one key), or -1. */
int ratelimit_pg_take(const char *const *keys, size_t n, double rate, double burst);

/* 1 when each of the n keys has a token left (nothing taken), 0 when one
 * has none, -1 error. */
int ratelimit_pg_peek(const char *const *keys, size_t n, double rate, double burst);

/* Deletes up to max rows of buckets that are full again (a missing row
 * means a full bucket): rows deleted, or -1. */
long ratelimit_pg_purge(int max);

#endif /* RATELIMIT_PG_H */
