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

/* Tokens in bucket row b now: what was left, plus the refill since
 * updated, capped at the burst ($1 rate, $2 burst). */
#define RL_LEVEL                                                                               \
    "least($2::float8, b.tokens + greatest(0, extract(epoch FROM clock_timestamp() - "         \
    "b.updated)::float8) * $1::float8)"

int ratelimit_pg_enabled(void)
{
    return store_pg_in_use();
}

/*
 * Statement text around the keys $3.. (one each, joined by ", "; each as
 * fmt formats its parameter number), and the parameters: rate, burst,
 * keys. 0, or -1 when there are too many keys.
 */
static int rl_statement(char *sql, size_t cap, const char *head, const char *key_fmt,
                        const char *tail, const char **v, char *r, char *b, size_t rb_cap,
                        const char *const *keys, size_t n, double rate, double burst)
{
    size_t i, len;

    if (n == 0 || n > RATELIMIT_PG_KEYS_MAX) {
        return -1;
    }
    snprintf(r, rb_cap, "%.17g", rate);
    snprintf(b, rb_cap, "%.17g", burst);
    v[0] = r;
    v[1] = b;
    len = (size_t) snprintf(sql, cap, "%s", head);
    for (i = 0; i < n && len < cap; i++) {
        v[2 + i] = keys[i];
        if (i > 0) {
            len += (size_t) snprintf(sql + len, cap - len, ", ");
        }
        len += (size_t) snprintf(sql + len, cap - len, key_fmt, (int) i + 3);
    }
    if (len >= cap || (size_t) snprintf(sql + len, cap - len, "%s", tail) >= cap - len) {
        return -1;
    }
    return 0;
}

int ratelimit_pg_take(const char *const *keys, size_t n, double rate, double burst)
{
    char r[32], b[32], sql[1024];
    const char *v[2 + RATELIMIT_PG_KEYS_MAX];
    PGresult *res;
    int taken;

    if (rl_statement(sql, sizeof(sql),
                     "INSERT INTO ratelimits AS b (key, tokens, updated, full_at) "
                     "SELECT k, $2::float8 - 1, clock_timestamp(), "
                     "clock_timestamp() + make_interval(secs => 1 / $1::float8) "
                     "FROM (VALUES ",
                     "($%d::text)",
                     ") AS new(k) "
                     "ON CONFLICT (key) DO UPDATE SET tokens = " RL_LEVEL " - 1, "
                     "updated = clock_timestamp(), "
                     "full_at = clock_timestamp() + make_interval(secs => "
                     "($2::float8 - (" RL_LEVEL " - 1)) / $1::float8) "
                     "WHERE " RL_LEVEL " >= 1 RETURNING 1",
                     v, r, b, sizeof(r), keys, n, rate, burst) < 0) {
        return -1;
    }
    res = store_pg_exec("ratelimit_take", sql, (int) (2 + n), v);
    if (res == NULL) {
        return -1;
    }
    taken = PQntuples(res);
    PQclear(res);
    return taken;
}

int ratelimit_pg_peek(const char *const *keys, size_t n, double rate, double burst)
{
    char r[32], b[32], sql[512];
    const char *v[2 + RATELIMIT_PG_KEYS_MAX];
    PGresult *res;
    int ok;

    if (rl_statement(sql, sizeof(sql),
                     "SELECT count(*) FROM ratelimits b WHERE " RL_LEVEL " < 1 AND key IN (",
                     "$%d", ")", v, r, b, sizeof(r), keys, n, rate, burst) < 0) {
        return -1;
    }
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
