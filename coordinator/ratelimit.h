/*
 * ratelimit.h: token buckets keyed by string (ratelimit.c).
 */

#ifndef RATELIMIT_H
#define RATELIMIT_H

/* 1 = allowed (a token taken), 0 = limited. */
int ratelimit_take(const char *key, double rate, double burst);
/* 1 when the key has at least one token left (nothing taken). */
int ratelimit_peek(const char *key, double rate, double burst);

#endif /* RATELIMIT_H */
