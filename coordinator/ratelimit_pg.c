/*
 * ratelimit_pg.c: the statements of ratelimit_pg.h. Table ratelimits(key,
 * tokens, updated, full_at), store_pg.c's migration 3. Times are the
 * database's clock, so instances whose clocks differ share one refill.
 *
 * A token is taken by one upsert: the row is locked, the refill since
 * `updated` computed on its newest version, and the row changed only when
 * at least one token is there; no row returned means limited. Two
 * instances racing on one bucket are serialized by the row lock, so they
 * can never both take its last token. A key seen for the first time
 * inserts a full bucket less one token (a concurrent insert of the same
 * key turns into the update).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit_pg.h"
#include "store_pg.h"

/* Tokens in bucket row b now: what was left, plus the refill since, capped
 * at the burst (rate and burst: parameter numbers). */
#define RL_LEVEL(rate, burst)                                                                  \
    "least(" burst "::float8, b.tokens + greatest(0, extract(epoch FROM clock_timestamp() - "  \
    "b.updated)::float8) * " rate "::float8)"
/* The same in the take ($2 rate, $3 burst) and the peek ($1, $2). */
#define RL_TAKE_LEVEL RL_LEVEL("$2", "$3")
#define RL_PEEK_LEVEL RL_LEVEL("$1", "$2")

int ratelimit_pg_enabled(void)
{
    return store_pg_in_use();
}

int ratelimit_pg_take(const char *key, double rate, double burst)
{
    char r[32], b[32];
    const char *v[3] = {key, r, b};
    PGresult *res;
    int taken;

    snprintf(r, sizeof(r), "%.17g", rate);
    snprintf(b, sizeof(b), "%.17g", burst);
    res = store_pg_exec("ratelimit_take",
                        "INSERT INTO ratelimits AS b (key, tokens, updated, full_at) "
                        "VALUES ($1, $3::float8 - 1, clock_timestamp(), "
                        "clock_timestamp() + make_interval(secs => 1 / $2::float8)) "
                        "ON CONFLICT (key) DO UPDATE SET tokens = " RL_TAKE_LEVEL " - 1, "
                        "updated = clock_timestamp(), "
                        "full_at = clock_timestamp() + make_interval(secs => "
                        "($3::float8 - (" RL_TAKE_LEVEL " - 1)) / $2::float8) "
                        "WHERE " RL_TAKE_LEVEL " >= 1 RETURNING 1",
                        3, v);
    if (res == NULL) {
        return -1;
    }
    taken = PQntuples(res) == 1;
    PQclear(res);
    return taken;
}

int ratelimit_pg_peek(const char *const *keys, size_t n, double rate, double burst)
{
    char r[32], b[32], sql[512];
    const char *v[2 + RATELIMIT_PG_PEEK_MAX];
    PGresult *res;
    size_t i, len;
    int ok;

    if (n == 0 || n > RATELIMIT_PG_PEEK_MAX) {
        return n == 0 ? 1 : -1;
    }
    snprintf(r, sizeof(r), "%.17g", rate);
    snprintf(b, sizeof(b), "%.17g", burst);
    v[0] = r;
    v[1] = b;
    len = (size_t) snprintf(sql, sizeof(sql),
                            "SELECT count(*) FROM ratelimits b WHERE " RL_PEEK_LEVEL
                            " < 1 AND key IN ($3");
    for (i = 0; i < n; i++) {
        v[2 + i] = keys[i];
        if (i > 0) {
            len += (size_t) snprintf(sql + len, sizeof(sql) - len, ", $%zu", i + 3);
        }
    }
    snprintf(sql + len, sizeof(sql) - len, ")");
    res = store_pg_exec("ratelimit_peek", sql, (int) (2 + n), v);
    if (res == NULL) {
        return -1;
    }
    ok = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") == 0;
    PQclear(res);
    return ok;
}

long ratelimit_pg_purge(int max)
{
    char m[16];
    const char *v[1] = {m};
    PGresult *res;
    long rows;

    snprintf(m, sizeof(m), "%d", max);
    /* full_at again on the outer DELETE: a row taken from since the inner
     * SELECT saw it is re-checked on its new version and kept. */
    res = store_pg_exec("ratelimit_purge",
                        "DELETE FROM ratelimits WHERE full_at <= clock_timestamp() AND key IN "
                        "(SELECT key FROM ratelimits WHERE full_at <= clock_timestamp() "
                        "LIMIT $1::int)",
                        1, v);
    if (res == NULL) {
        return -1;
    }
    rows = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return rows;
}
