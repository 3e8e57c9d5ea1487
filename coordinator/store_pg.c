/*
 * store_pg.c: the PostgreSQL backend of store.h, for several coordinators
 * sharing one database. One libpq connection, used only from the service
 * thread. Each store_ call is one round trip (two where noted) of one
 * indexed statement. The calls are synchronous for their callers but never
 * wait on the server unbounded: the query is sent on a non-blocking
 * connection and its answer awaited with poll() up to PG_CALL_MS. A server
 * that stops answering (stopped, wedged, a dead host whose packets vanish)
 * costs one call PG_CALL_MS; the connection is then dropped and rebuilt
 * without blocking (PQconnectStart; the loop waits on it at most
 * PG_CONNECT_SLICE_MS a second) while the calls in between fail at once. docs/scale-out.md has
 * the costs. A call that fails is never retried (it may have committed).
 *
 * Whatever two instances may race on is decided by one statement: a ticket
 * is spent by "UPDATE ... WHERE used=0" and a resume secret taken by
 * "DELETE ... RETURNING", so exactly one of them wins.
 */

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "owner_pg.h"
#include "store_backend.h"
#include "store_pg.h"

/* Advisory lock key (any constant): serializes migrations of instances starting at once. */
#define PG_MIGRATE_LOCK "6645677265737300"

/* Server side bound of one statement (lock waits included). */
#define PG_STATEMENT_TIMEOUT "2s"
/* Client side bound of one call: the statement timeout plus a round trip. */
#define PG_CALL_MS 3000
/* Migrations wait for another instance's migrations on the advisory lock. */
#define PG_MIGRATE_MS 60000
/* A reconnect is given up after PG_CONNECT_MS; the next one starts
 * PG_RETRY_MS later. It may wait up to PG_CONNECT_SLICE_MS once every
 * PG_CONNECT_SLICE_EVERY_MS (the 1 s timer's call gets it); other calls
 * only look whether it can advance, without waiting. */
#define PG_CONNECT_MS             5000
#define PG_CONNECT_SLICE_MS       100
#define PG_CONNECT_SLICE_EVERY_MS 1000
#define PG_RETRY_MS               1000

static PGconn *conn;    /* connected, or NULL */
static PGconn *pending; /* a reconnect under way, or NULL */
static PostgresPollingStatusType pending_poll;
static int64_t pending_deadline, retry_at, slice_at;
static char *conn_uri;

/*
 * Migrations, applied in order on start under an advisory lock; entry i
 * takes the schema from version i to i + 1. Only ever append.
 */
static const char *const migrations[] = {
    /* 0 -> 1: the schema of store_sqlite.c, in PostgreSQL types. */
    "CREATE TABLE tokens ("
    "  hash TEXT PRIMARY KEY, id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL,"
    "  org TEXT NOT NULL, admin INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
    "  created_at BIGINT NOT NULL);"
    "CREATE TABLE leases ("
    "  id TEXT PRIMARY KEY, slug TEXT UNIQUE NOT NULL, owner TEXT NOT NULL,"
    "  org TEXT NOT NULL, ssh TEXT NOT NULL, state INTEGER NOT NULL,"
    "  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,"
    "  generation BIGINT NOT NULL, key BYTEA NOT NULL);"
    "CREATE INDEX leases_due ON leases(state, expires_at);"
    "CREATE INDEX leases_org ON leases(org);"
    "CREATE TABLE sessions ("
    "  lease_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, generation BIGINT NOT NULL,"
    "  profile TEXT NOT NULL, allow TEXT NOT NULL, state INTEGER NOT NULL,"
    "  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);"
    "CREATE TABLE tickets ("
    "  hash TEXT PRIMARY KEY, lease_id TEXT NOT NULL, session_id TEXT NOT NULL,"
    "  role TEXT NOT NULL, owner TEXT NOT NULL, org TEXT NOT NULL,"
    "  expires_at BIGINT NOT NULL, used INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX tickets_expiry ON tickets(expires_at);"
    "CREATE TABLE resume ("
    "  hash TEXT PRIMARY KEY, lease_id TEXT NOT NULL, session_id TEXT NOT NULL,"
    "  role TEXT NOT NULL, UNIQUE(lease_id, role));"
    "CREATE TABLE portal_sessions ("
    "  hash TEXT PRIMARY KEY, token_hash TEXT NOT NULL, expires_at BIGINT NOT NULL);",
    /* 1 -> 2: crabbox-proposed session ids, bound to their generation for good. */
    "CREATE TABLE session_names ("
    "  lease_id TEXT NOT NULL, name TEXT NOT NULL, generation BIGINT NOT NULL,"
    "  PRIMARY KEY (lease_id, name));",
    /* 2 -> 3: instances (epoch, heartbeat on the database's clock) and which
     * instance (at which epoch) relays each lease; see owner_pg.c. */
    "CREATE TABLE IF NOT EXISTS instances ("
    "  name TEXT PRIMARY KEY, epoch BIGINT NOT NULL, heartbeat TIMESTAMPTZ NOT NULL);"
    "CREATE TABLE IF NOT EXISTS lease_owners ("
    "  lease_id TEXT PRIMARY KEY, instance TEXT NOT NULL, epoch BIGINT NOT NULL,"
    "  since BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS lease_owners_instance ON lease_owners(instance, epoch);",
    /* 3 -> 4: rate-limit buckets shared by every instance (ratelimit_pg.c):
     * tokens left at `updated` (the database's clock), and when the bucket
     * is full again (a full bucket's row is garbage, purged by full_at). */
    "CREATE TABLE IF NOT EXISTS ratelimits ("
    "  key TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL,"
    "  updated TIMESTAMPTZ NOT NULL, full_at TIMESTAMPTZ NOT NULL);"
    "CREATE INDEX IF NOT EXISTS ratelimits_full ON ratelimits(full_at);",
    /* 4 -> 5: the live counters of the leases an instance relays, written
     * with its heartbeat (owner.c), read by the others for status. */
    "ALTER TABLE instances ADD COLUMN IF NOT EXISTS relays JSONB;",
};

#define PG_SCHEMA_VERSION ((int) (sizeof(migrations) / sizeof(migrations[0])))

void pg_log_error(const char *what, const char *msg)
{
    char line[512];
    size_t i, n = 0;

    for (i = 0; msg != NULL && msg[i] != '\0' && n + 1 < sizeof(line); i++) {
        char ch = msg[i];
        line[n++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch == '"' ? '\'' : ch;
    }
    while (n > 0 && line[n - 1] == ' ') {
        n--;
    }
    line[n] = '\0';
    coord_log("store_error", "op=%s backend=postgresql error=\"%s\"", what, line);
}

/*
 * Connection parameters: defaults first, what the URI names overrides them
 * (expand_dbname). TCP keepalives and tcp_user_timeout let the kernel
 * notice a dead peer on an idle connection or unacknowledged data; a live
 * but silent server is the call deadline's job.
 */
static const char *const conn_keys[] = {"connect_timeout",
                                        "application_name",
                                        "keepalives",
                                        "keepalives_idle",
                                        "keepalives_interval",
                                        "keepalives_count",
                                        "tcp_user_timeout",
                                        "dbname",
                                        NULL};

static void pg_conn_vals(const char **vals, const char *uri)
{
    vals[0] = "5";
    vals[1] = "egress-coordinator";
    vals[2] = "1";
    vals[3] = "10";
    vals[4] = "5";
    vals[5] = "3";
    vals[6] = "10000";
    vals[7] = uri;
    vals[8] = NULL;
}

/* Waits for events on fd until deadline (coord_mono_ms): 1 ready, 0 timeout, -1 error. */
static int pg_poll(int fd, short events, int64_t deadline)
{
    struct pollfd pfd;
    int64_t left;
    int rc;

    if (fd < 0) {
        return -1;
    }
    for (;;) {
        left = deadline - coord_mono_ms();
        pfd.fd = fd;
        pfd.events = events;
        pfd.revents = 0;
        /* A deadline already past still gets one look (timeout 0). */
        rc = poll(&pfd, 1, left > 0 ? (int) left : 0);
        if (rc > 0) {
            return 1;
        }
        if (rc < 0 && errno != EINTR) {
            return -1;
        }
        if (rc == 0 && coord_mono_ms() >= deadline) {
            return 0;
        }
    }
}

/* Forgets the connection after a call saw it fail; the next call reconnects. */
static void pg_drop(const char *what, int timed_out)
{
    char msg[96];

    if (timed_out) {
        snprintf(msg, sizeof(msg), "no answer within %d ms; connection dropped, reconnecting",
                 PG_CALL_MS);
        pg_log_error(what, msg);
    } else {
        pg_log_error(what, PQerrorMessage(conn));
    }
    PQfinish(conn);
    conn = NULL;
    retry_at = 0;
}

/*
 * Waits until the query is sent and a whole result is in: 0, 1 timeout,
 * -1 broken connection.
 */
static int pg_wait_result(int64_t deadline)
{
    int flush, rc;

    for (;;) {
        flush = PQflush(conn);
        if (flush < 0) {
            return -1;
        }
        if (flush == 0 && !PQisBusy(conn)) {
            return 0;
        }
        rc = pg_poll(PQsocket(conn), flush ? POLLIN | POLLOUT : POLLIN, deadline);
        if (rc <= 0) {
            return rc == 0 ? 1 : -1;
        }
        if (!PQconsumeInput(conn)) {
            return -1;
        }
    }
}

static int result_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);

    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/*
 * Collects the results of the query just sent, within ms: the first failed
 * one, else the last. NULL when the connection failed or the server did not
 * answer in time (logged; the connection is dropped).
 */
static PGresult *pg_collect(const char *what, int ms)
{
    int64_t deadline = coord_mono_ms() + ms;
    PGresult *res, *out = NULL;
    int rc;

    for (;;) {
        rc = pg_wait_result(deadline);
        if (rc != 0) {
            PQclear(out);
            pg_drop(what, rc > 0);
            return NULL;
        }
        res = PQgetResult(conn);
        if (res == NULL) {
            break;
        }
        if (out != NULL && !result_ok(out)) {
            PQclear(res);
        } else {
            PQclear(out);
            out = res;
        }
    }
    if (out == NULL) {
        pg_log_error(what, "no result");
    }
    return out;
}

/* Runs SQL text (may be several statements) on the connection: 0, or -1 logged. */
static int pg_query(const char *what, const char *sql, int ms)
{
    PGresult *res;
    int ok;

    if (conn == NULL) {
        return -1;
    }
    if (!PQsendQuery(conn, sql)) {
        pg_drop(what, 0);
        return -1;
    }
    res = pg_collect(what, ms);
    if (res == NULL) {
        return -1;
    }
    ok = result_ok(res);
    if (!ok) {
        pg_log_error(what, PQresultErrorMessage(res));
    }
    PQclear(res);
    return ok ? 0 : -1;
}

static int pg_session_setup(void)
{
    if (PQsetnonblocking(conn, 1) != 0) {
        pg_log_error("session_setup", PQerrorMessage(conn));
        return -1;
    }
    /* Bounds how long one call can hold the event loop (lock waits included). */
    return pg_query("session_setup",
                    "SET statement_timeout = '" PG_STATEMENT_TIMEOUT
                    "'; SET client_min_messages = warning;",
                    PG_CALL_MS);
}

/* Gives the reconnect under way until slice_end: 0 connected, -1 not (yet). */
static int pg_reconnect_step(int64_t slice_end)
{
    int64_t until;
    int rc;

    for (;;) {
        if (pending_poll == PGRES_POLLING_OK) {
            conn = pending;
            pending = NULL;
            coord_log("store_reconnected", "backend=postgresql");
            return pg_session_setup();
        }
        if (pending_poll == PGRES_POLLING_FAILED) {
            pg_log_error("reconnect", PQerrorMessage(pending));
            break;
        }
        until = slice_end < pending_deadline ? slice_end : pending_deadline;
        rc = pg_poll(PQsocket(pending),
                     pending_poll == PGRES_POLLING_READING ? POLLIN : POLLOUT, until);
        if (rc < 0) {
            pg_log_error("reconnect", "poll failed");
            break;
        }
        if (rc == 0) {
            if (coord_mono_ms() < pending_deadline) {
                return -1; /* still connecting: this call fails fast */
            }
            coord_log("store_error",
                      "op=reconnect backend=postgresql error=\"no answer within %d ms\"",
                      PG_CONNECT_MS);
            break;
        }
        pending_poll = PQconnectPoll(pending);
    }
    PQfinish(pending);
    pending = NULL;
    retry_at = coord_mono_ms() + PG_RETRY_MS;
    return -1;
}

/*
 * Ready for a call: 0, or -1 while the connection is being rebuilt. A lost
 * connection is reconnected without blocking the loop for long: calls
 * advance the attempt (waiting at most PG_CONNECT_SLICE_MS once a second,
 * otherwise not at all) and fail if it has not completed; an attempt is
 * abandoned after PG_CONNECT_MS and the next starts PG_RETRY_MS after that.
 */
static int pg_ready(void)
{
    const char *vals[sizeof(conn_keys) / sizeof(conn_keys[0])];
    int64_t now;

    if (conn != NULL) {
        if (PQstatus(conn) == CONNECTION_OK) {
            return 0;
        }
        PQfinish(conn);
        conn = NULL;
    }
    if (conn_uri == NULL) {
        return -1;
    }
    now = coord_mono_ms();
    if (pending == NULL) {
        if (now < retry_at) {
            return -1;
        }
        pg_conn_vals(vals, conn_uri);
        pending = PQconnectStartParams(conn_keys, vals, 1);
        if (pending == NULL || PQstatus(pending) == CONNECTION_BAD) {
            pg_log_error("reconnect",
                         pending != NULL ? PQerrorMessage(pending) : "out of memory");
            PQfinish(pending);
            pending = NULL;
            retry_at = now + PG_RETRY_MS;
            return -1;
        }
        pending_poll = PGRES_POLLING_WRITING;
        pending_deadline = now + PG_CONNECT_MS;
        slice_at = now;
    }
    if (now < slice_at) {
        return pg_reconnect_step(now); /* a look, no wait */
    }
    slice_at = now + PG_CONNECT_SLICE_EVERY_MS;
    return pg_reconnect_step(now + PG_CONNECT_SLICE_MS);
}

/*
 * Runs one statement with text parameters. Returns the result (rows or
 * none) for the caller to PQclear, or NULL after logging. When unique is
 * not NULL a unique violation sets it and is not logged.
 */
static PGresult *pg_exec_ms(const char *what, const char *sql, int n, const char *const *vals,
                            int *unique, int ms)
{
    PGresult *res;
    const char *state;

    if (pg_ready() < 0) {
        return NULL;
    }
    if (!PQsendQueryParams(conn, sql, n, NULL, vals, NULL, NULL, 0)) {
        pg_drop(what, 0);
        return NULL;
    }
    res = pg_collect(what, ms);
    if (res == NULL || result_ok(res)) {
        return res;
    }
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (unique != NULL && state != NULL && strcmp(state, "23505") == 0) {
        *unique = 1;
    } else {
        pg_log_error(what, PQresultErrorMessage(res));
    }
    PQclear(res);
    return NULL;
}

static PGresult *pg_exec(const char *what, const char *sql, int n, const char *const *vals,
                         int *unique)
{
    return pg_exec_ms(what, sql, n, vals, unique, PG_CALL_MS);
}

PGresult *store_pg_exec(const char *what, const char *sql, int n, const char *const *vals)
{
    return conn_uri != NULL ? pg_exec(what, sql, n, vals, NULL) : NULL;
}

int store_pg_in_use(void)
{
    return conn_uri != NULL;
}

/* A statement without rows: 0, or -1. */
static int pg_run(const char *what, const char *sql, int n, const char *const *vals)
{
    PGresult *res = pg_exec(what, sql, n, vals, NULL);

    if (res == NULL) {
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Rows a statement changed, or -1. */
static long pg_changes(const char *what, const char *sql, int n, const char *const *vals)
{
    PGresult *res = pg_exec(what, sql, n, vals, NULL);
    long changed;

    if (res == NULL) {
        return -1;
    }
    changed = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return changed;
}

static void copy_val(char *dst, size_t cap, const PGresult *res, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetvalue(res, row, col));
}

static int64_t int_val(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

#define I64(buf, v) snprintf((buf), sizeof(buf), "%" PRId64, (int64_t) (v))

/* ---- open, migrations ----------------------------------------------------- */

/* Migrations run at start, before the loop: they may wait on the lock. */
static int pg_migrate(void)
{
    PGresult *res;
    const char *v[1];
    char ver[16];
    int version = 0, i, rc = -1;

    res = pg_exec_ms("migrate_lock", "SELECT pg_advisory_lock(" PG_MIGRATE_LOCK ")", 0, NULL,
                     NULL, PG_MIGRATE_MS);
    if (res == NULL) {
        return -1;
    }
    PQclear(res);
    if (pg_query("migrate",
                 "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                 PG_MIGRATE_MS) < 0) {
        goto unlock;
    }
    res = pg_exec_ms("migrate", "SELECT value FROM meta WHERE key='schema_version'", 0, NULL,
                     NULL, PG_MIGRATE_MS);
    if (res == NULL) {
        goto unlock;
    }
    if (PQntuples(res) == 1) {
        version = atoi(PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    if (version > PG_SCHEMA_VERSION || version < 0) {
        coord_log("store_error",
                  "op=open backend=postgresql error=\"schema version %d, this build knows "
                  "up to %d\"",
                  version, PG_SCHEMA_VERSION);
        goto unlock;
    }
    for (i = version; i < PG_SCHEMA_VERSION; i++) {
        /* One migration and its version number commit together or not at all. */
        snprintf(ver, sizeof(ver), "%d", i + 1);
        v[0] = ver;
        if (pg_query("migrate", "BEGIN", PG_MIGRATE_MS) < 0) {
            goto unlock;
        }
        if (pg_query("migrate", migrations[i], PG_MIGRATE_MS) < 0 ||
            (res = pg_exec_ms("migrate",
                              "INSERT INTO meta(key, value) VALUES('schema_version', $1) "
                              "ON CONFLICT (key) DO UPDATE SET value=EXCLUDED.value",
                              1, v, NULL, PG_MIGRATE_MS)) == NULL) {
            pg_query("migrate", "ROLLBACK", PG_MIGRATE_MS);
            goto unlock;
        }
        PQclear(res);
        if (pg_query("migrate", "COMMIT", PG_MIGRATE_MS) < 0) {
            goto unlock;
        }
        coord_log("store_migrated", "backend=postgresql schema_version=%d", i + 1);
    }
    rc = 0;
unlock:
    pg_query("migrate", "SELECT pg_advisory_unlock(" PG_MIGRATE_LOCK ")", PG_MIGRATE_MS);
    return rc;
}

static void pg_close(void)
{
    PQfinish(conn);
    conn = NULL;
    PQfinish(pending);
    pending = NULL;
    free(conn_uri);
    conn_uri = NULL;
}

/*
 * libpq's open errors name host and port, but a malformed URI is quoted
 * back in pieces ("invalid percent-encoded token: ..."), which may be the
 * password: every copy of the URI's password is masked before logging.
 */
static void pg_log_open_error(const char *uri, const char *msg)
{
    char out[512], pw[256];
    const char *p, *at, *colon, *hit;
    size_t n = 0, len = 0;

    p = strstr(uri, "://");
    p = p != NULL ? p + 3 : uri;
    at = strchr(p, '@');
    colon = at != NULL ? memchr(p, ':', (size_t) (at - p)) : NULL;
    if (colon != NULL && (size_t) (at - colon - 1) < sizeof(pw)) {
        len = (size_t) (at - colon - 1);
        memcpy(pw, colon + 1, len);
    }
    pw[len] = '\0';
    while (msg != NULL && *msg != '\0' && n + 4 < sizeof(out)) {
        hit = len > 0 ? strstr(msg, pw) : NULL;
        if (hit == msg) {
            memcpy(out + n, "***", 3);
            n += 3;
            msg += len;
            continue;
        }
        out[n++] = *msg++;
    }
    out[n] = '\0';
    pg_log_error("open", out);
}

static int pg_open(const char *uri)
{
    const char *vals[sizeof(conn_keys) / sizeof(conn_keys[0])];
    char desc[256];

    /* The one blocking connect, at start (bounded by connect_timeout). */
    pg_conn_vals(vals, uri);
    conn = PQconnectdbParams(conn_keys, vals, 1);
    conn_uri = strdup(uri);
    if (conn == NULL || conn_uri == NULL) {
        coord_log("store_error", "op=open backend=postgresql error=\"out of memory\"");
        pg_close();
        return -1;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        pg_log_open_error(uri, PQerrorMessage(conn));
        pg_close();
        return -1;
    }
    snprintf(desc, sizeof(desc), "postgresql://%s:%s/%s", PQhost(conn), PQport(conn),
             PQdb(conn));
    store_set_description(desc);
    /* Migrations run without the statement timeout (they may wait on the
     * lock), but without NOTICEs on stderr already. */
    if (PQsetnonblocking(conn, 1) != 0 ||
        pg_query("session_setup", "SET client_min_messages = warning", PG_CALL_MS) < 0 ||
        pg_migrate() < 0 || conn == NULL || pg_session_setup() < 0) {
        pg_close();
        return -1;
    }
    return 0;
}

/* ---- tokens ------------------------------------------------------------ */

static int pg_token_add(const char *hash, const char *id, const char *owner, const char *org,
                        int admin)
{
    char now[24];
    const char *v[6] = {hash, id, owner, org, admin ? "1" : "0", now};

    I64(now, coord_now());
    return pg_run("token_add",
                  "INSERT INTO tokens(hash, id, owner, org, admin, created_at) "
                  "VALUES($1,$2,$3,$4,$5,$6)",
                  6, v);
}

static void token_row(const PGresult *res, int row, store_token_t *t)
{
    memset(t, 0, sizeof(*t));
    copy_val(t->id, sizeof(t->id), res, row, 0);
    copy_val(t->owner, sizeof(t->owner), res, row, 1);
    copy_val(t->org, sizeof(t->org), res, row, 2);
    t->admin = (int) int_val(res, row, 3);
    t->revoked = (int) int_val(res, row, 4);
    t->created_at = int_val(res, row, 5);
}

static int pg_token_get(const char *hash, store_token_t *out)
{
    const char *v[1] = {hash};
    PGresult *res = pg_exec("token_get",
                            "SELECT id, owner, org, admin, revoked, created_at FROM tokens "
                            "WHERE hash=$1",
                            1, v, NULL);
    int rc;

    if (res == NULL) {
        return -1;
    }
    rc = PQntuples(res) == 1 ? 0 : 1;
    if (rc == 0) {
        token_row(res, 0, out);
    }
    PQclear(res);
    return rc;
}

static int pg_token_list(store_token_cb cb, void *arg)
{
    store_token_t t;
    int i;
    PGresult *res = pg_exec("token_list",
                            "SELECT id, owner, org, admin, revoked, created_at FROM tokens "
                            "ORDER BY created_at, id COLLATE \"C\"",
                            0, NULL, NULL);
    if (res == NULL) {
        return -1;
    }
    for (i = 0; i < PQntuples(res); i++) {
        token_row(res, i, &t);
        cb(&t, arg);
    }
    PQclear(res);
    return 0;
}

static int pg_token_revoke(const char *id)
{
    const char *v[1] = {id};
    long n = pg_changes("token_revoke", "UPDATE tokens SET revoked=1 WHERE id=$1", 1, v);

    return n < 0 ? -1 : n > 0 ? 0 : 1;
}

/* ---- leases ------------------------------------------------------------ */

#define LEASE_COLS                                                                             \
    "id, slug, owner, org, ssh, state, created_at, expires_at, generation, encode(key, 'hex')"

static void lease_row(const PGresult *res, int row, store_lease_t *l)
{
    const char *hex;
    size_t i;

    memset(l, 0, sizeof(*l));
    copy_val(l->id, sizeof(l->id), res, row, 0);
    copy_val(l->slug, sizeof(l->slug), res, row, 1);
    copy_val(l->owner, sizeof(l->owner), res, row, 2);
    copy_val(l->org, sizeof(l->org), res, row, 3);
    copy_val(l->ssh, sizeof(l->ssh), res, row, 4);
    l->state = (lease_state_e) int_val(res, row, 5);
    l->created_at = int_val(res, row, 6);
    l->expires_at = int_val(res, row, 7);
    l->generation = int_val(res, row, 8);
    hex = PQgetvalue(res, row, 9);
    if (strlen(hex) == 2 * sizeof(l->key)) {
        for (i = 0; i < sizeof(l->key); i++) {
            unsigned int b;
            if (sscanf(hex + 2 * i, "%2x", &b) != 1) {
                memset(l->key, 0, sizeof(l->key));
                break;
            }
            l->key[i] = (uint8_t) b;
        }
    }
}

static int pg_lease_insert(const store_lease_t *l)
{
    char state[8], created[24], expires[24], gen[24], key[2 * sizeof(l->key) + 1];
    const char *v[10] = {l->id, l->slug, l->owner, l->org, l->ssh,
                         state, created, expires,  gen,    key};
    PGresult *res;
    size_t i;
    int unique = 0;

    snprintf(state, sizeof(state), "%d", (int) l->state);
    I64(created, l->created_at);
    I64(expires, l->expires_at);
    I64(gen, l->generation);
    for (i = 0; i < sizeof(l->key); i++) {
        snprintf(key + 2 * i, 3, "%02x", l->key[i]);
    }
    res = pg_exec("lease_insert",
                  "INSERT INTO leases(id, slug, owner, org, ssh, state, created_at, expires_at,"
                  " generation, key) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,decode($10, 'hex'))",
                  10, v, &unique);
    if (res == NULL) {
        return unique ? 1 : -1; /* slug taken */
    }
    PQclear(res);
    return 0;
}

static int pg_lease_get(const char *id_or_slug, store_lease_t *out)
{
    const char *v[1] = {id_or_slug};
    PGresult *res = pg_exec("lease_get",
                            "SELECT " LEASE_COLS " FROM leases WHERE id=$1 OR slug=$1 "
                            "ORDER BY id=$1 DESC LIMIT 1",
                            1, v, NULL);
    int rc;

    if (res == NULL) {
        return -1;
    }
    rc = PQntuples(res) == 1 ? 0 : 1;
    if (rc == 0) {
        lease_row(res, 0, out);
    }
    PQclear(res);
    return rc;
}

/* The rows are all in memory before cb runs, so cb may call store_ again. */
static int lease_iter(PGresult *res, store_lease_cb cb, void *arg)
{
    store_lease_t l;
    int i;

    if (res == NULL) {
        return -1;
    }
    for (i = 0; i < PQntuples(res); i++) {
        lease_row(res, i, &l);
        cb(&l, arg);
    }
    PQclear(res);
    return 0;
}

static int pg_lease_list_org(const char *org, store_lease_cb cb, void *arg)
{
    const char *v[1] = {org};

    return lease_iter(pg_exec("lease_list",
                              "SELECT " LEASE_COLS " FROM leases WHERE org=$1 "
                              "ORDER BY created_at, id COLLATE \"C\"",
                              1, v, NULL),
                      cb, arg);
}

static int pg_lease_due(int64_t since, const char *since_id, int64_t now, store_lease_cb cb,
                        void *arg)
{
    char t[24], s[24];
    const char *v[3] = {t, s, since_id};

    I64(t, now);
    I64(s, since);
    return lease_iter(
        pg_exec("lease_due",
                "SELECT " LEASE_COLS " FROM leases WHERE expires_at<=$1 AND "
                "(state=0 OR (state=2 AND (expires_at>$2 OR "
                "(expires_at=$2 AND $3<>'' AND id COLLATE \"C\">$3)))) "
                "ORDER BY expires_at, id COLLATE \"C\" LIMIT " COORD_STR(STORE_DUE_MAX),
                3, v, NULL),
        cb, arg);
}

static int pg_lease_set_state(const char *id, lease_state_e state)
{
    char s[8];
    const char *v[2] = {s, id};

    snprintf(s, sizeof(s), "%d", (int) state);
    return pg_run("lease_set_state", "UPDATE leases SET state=$1 WHERE id=$2 AND state=0", 2,
                  v);
}

static int pg_lease_set_generation(const char *id, int64_t generation)
{
    char g[24];
    const char *v[2] = {g, id};

    I64(g, generation);
    return pg_run("lease_set_generation",
                  "UPDATE leases SET generation=$1 WHERE id=$2 AND generation<$1", 2, v);
}

/* ---- sessions ---------------------------------------------------------- */

static int pg_session_put(const store_session_t *s)
{
    char gen[24], state[8], created[24], updated[24];
    const char *v[8] = {s->lease_id, s->session_id, gen,     s->profile,
                        s->allow,    state,         created, updated};

    I64(gen, s->generation);
    snprintf(state, sizeof(state), "%d", (int) s->state);
    I64(created, s->created_at);
    I64(updated, s->updated_at);
    return pg_run(
        "session_put",
        "INSERT INTO sessions(lease_id, session_id, generation, profile, allow, state,"
        " created_at, updated_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8) "
        "ON CONFLICT (lease_id) DO UPDATE SET session_id=EXCLUDED.session_id,"
        " generation=EXCLUDED.generation, profile=EXCLUDED.profile,"
        " allow=EXCLUDED.allow, state=EXCLUDED.state,"
        " created_at=EXCLUDED.created_at, updated_at=EXCLUDED.updated_at",
        8, v);
}

static int pg_session_get(const char *lease_id, store_session_t *out)
{
    const char *v[1] = {lease_id};
    PGresult *res = pg_exec("session_get",
                            "SELECT lease_id, session_id, generation, profile, allow, state, "
                            "created_at, updated_at FROM sessions WHERE lease_id=$1",
                            1, v, NULL);
    int rc;

    if (res == NULL) {
        return -1;
    }
    rc = PQntuples(res) == 1 ? 0 : 1;
    if (rc == 0) {
        memset(out, 0, sizeof(*out));
        copy_val(out->lease_id, sizeof(out->lease_id), res, 0, 0);
        copy_val(out->session_id, sizeof(out->session_id), res, 0, 1);
        out->generation = int_val(res, 0, 2);
        copy_val(out->profile, sizeof(out->profile), res, 0, 3);
        copy_val(out->allow, sizeof(out->allow), res, 0, 4);
        out->state = (session_state_e) int_val(res, 0, 5);
        out->created_at = int_val(res, 0, 6);
        out->updated_at = int_val(res, 0, 7);
    }
    PQclear(res);
    return rc;
}

static int pg_session_set_state(const char *lease_id, session_state_e state, int64_t now)
{
    char s[8], t[24];
    const char *v[3] = {s, t, lease_id};

    snprintf(s, sizeof(s), "%d", (int) state);
    I64(t, now);
    return pg_run("session_set_state",
                  "UPDATE sessions SET state=$1, updated_at=$2 WHERE lease_id=$3", 3, v);
}

static int pg_session_touch(const char *lease_id, int64_t now)
{
    char t[24];
    const char *v[2] = {t, lease_id};

    I64(t, now);
    return pg_run("session_touch", "UPDATE sessions SET updated_at=$1 WHERE lease_id=$2", 2, v);
}

static int pg_session_name_claim(const char *lease_id, const char *name, int64_t generation,
                                 int64_t *bound)
{
    char g[24];
    const char *v[3] = {lease_id, name, g};
    PGresult *res;
    long n;

    I64(g, generation);
    n = pg_changes("session_name_claim",
                   "INSERT INTO session_names(lease_id, name, generation) VALUES($1,$2,$3) "
                   "ON CONFLICT (lease_id, name) DO NOTHING",
                   3, v);
    if (n < 0) {
        return -1;
    }
    if (n > 0) {
        *bound = generation;
        return 0;
    }
    res = pg_exec("session_name_claim",
                  "SELECT generation FROM session_names WHERE lease_id=$1 AND name=$2", 2, v,
                  NULL);
    if (res == NULL) {
        return -1;
    }
    n = PQntuples(res);
    if (n == 1) {
        *bound = int_val(res, 0, 0);
    }
    PQclear(res);
    return n == 1 ? 1 : -1;
}

/* ---- tickets ----------------------------------------------------------- */

static int pg_ticket_insert(const char *hash, const store_ticket_t *t)
{
    char exp[24];
    const char *v[7] = {hash, t->lease_id, t->session_id, t->role, t->owner, t->org, exp};

    I64(exp, t->expires_at);
    return pg_run(
        "ticket_insert",
        "INSERT INTO tickets(hash, lease_id, session_id, role, owner, org, expires_at)"
        " VALUES($1,$2,$3,$4,$5,$6,$7)",
        7, v);
}

static void ticket_row(const PGresult *res, store_ticket_t *out)
{
    memset(out, 0, sizeof(*out));
    copy_val(out->lease_id, sizeof(out->lease_id), res, 0, 0);
    copy_val(out->session_id, sizeof(out->session_id), res, 0, 1);
    copy_val(out->role, sizeof(out->role), res, 0, 2);
    copy_val(out->owner, sizeof(out->owner), res, 0, 3);
    copy_val(out->org, sizeof(out->org), res, 0, 4);
    out->expires_at = int_val(res, 0, 5);
}

static int pg_ticket_consume(const char *hash, store_ticket_t *out)
{
    const char *v[1] = {hash};
    PGresult *res;

    /* The spend: of instances racing on one ticket, one updates the row and
     * the others (blocked on its row lock, then re-checking used=0) none. */
    res = pg_exec("ticket_consume",
                  "UPDATE tickets SET used=1 WHERE hash=$1 AND used=0 "
                  "RETURNING lease_id, session_id, role, owner, org, expires_at",
                  1, v, NULL);
    if (res == NULL) {
        return -1;
    }
    if (PQntuples(res) == 1) {
        ticket_row(res, out);
        PQclear(res);
        return 0;
    }
    PQclear(res);
    /* Lost or unknown: a second look only tells which, for the refusal. */
    res = pg_exec("ticket_get",
                  "SELECT lease_id, session_id, role, owner, org, expires_at FROM tickets "
                  "WHERE hash=$1",
                  1, v, NULL);
    if (res == NULL) {
        return -1;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        return 1;
    }
    ticket_row(res, out);
    out->used = 1;
    PQclear(res);
    return 0;
}

static int pg_ticket_purge(int64_t before)
{
    char t[24];
    const char *v[1] = {t};

    I64(t, before);
    return pg_run("ticket_purge", "DELETE FROM tickets WHERE expires_at<$1", 1, v);
}

/* ---- resume secrets ---------------------------------------------------- */

static int pg_resume_put(const char *hash, const store_resume_t *r)
{
    const char *v[4] = {hash, r->lease_id, r->session_id, r->role};

    return pg_run("resume_put",
                  "INSERT INTO resume(hash, lease_id, session_id, role) VALUES($1,$2,$3,$4) "
                  "ON CONFLICT (lease_id, role) DO UPDATE SET hash=EXCLUDED.hash,"
                  " session_id=EXCLUDED.session_id",
                  4, v);
}

static int pg_resume_take(const char *hash, store_resume_t *out)
{
    const char *v[1] = {hash};
    PGresult *res = pg_exec("resume_take",
                            "DELETE FROM resume WHERE hash=$1 "
                            "RETURNING lease_id, session_id, role",
                            1, v, NULL);
    int rc;

    if (res == NULL) {
        return -1;
    }
    rc = PQntuples(res) == 1 ? 0 : 1;
    if (rc == 0) {
        memset(out, 0, sizeof(*out));
        copy_val(out->lease_id, sizeof(out->lease_id), res, 0, 0);
        copy_val(out->session_id, sizeof(out->session_id), res, 0, 1);
        copy_val(out->role, sizeof(out->role), res, 0, 2);
    }
    PQclear(res);
    return rc;
}

static int pg_resume_drop_role(const char *lease_id, const char *role)
{
    const char *v[2] = {lease_id, role};

    return pg_run("resume_drop", "DELETE FROM resume WHERE lease_id=$1 AND role=$2", 2, v);
}

static int pg_resume_drop_lease(const char *lease_id)
{
    const char *v[1] = {lease_id};

    return pg_run("resume_drop", "DELETE FROM resume WHERE lease_id=$1", 1, v);
}

/* ---- portal sign-ins ---------------------------------------------------- */

static int pg_portal_put(const char *hash, const char *token_hash, int64_t expires_at)
{
    char t[24];
    const char *v[3] = {hash, token_hash, t};

    I64(t, expires_at);
    return pg_run("portal_put",
                  "INSERT INTO portal_sessions(hash, token_hash, expires_at) VALUES($1,$2,$3)",
                  3, v);
}

static int pg_portal_get(const char *hash, int64_t now, char *token_hash, size_t cap)
{
    char t[24];
    const char *v[2] = {hash, t};
    PGresult *res;
    int rc;

    I64(t, now);
    res = pg_exec("portal_get",
                  "SELECT token_hash FROM portal_sessions WHERE hash=$1 AND expires_at>$2", 2,
                  v, NULL);
    if (res == NULL) {
        return -1;
    }
    rc = PQntuples(res) == 1 ? 0 : 1;
    if (rc == 0) {
        copy_val(token_hash, cap, res, 0, 0);
    }
    PQclear(res);
    return rc;
}

static int pg_portal_delete(const char *hash)
{
    const char *v[1] = {hash};

    return pg_run("portal_delete", "DELETE FROM portal_sessions WHERE hash=$1", 1, v);
}

static int pg_portal_purge(int64_t now)
{
    char t[24];
    const char *v[1] = {t};

    I64(t, now);
    return pg_run("portal_purge", "DELETE FROM portal_sessions WHERE expires_at<=$1", 1, v);
}

const store_ops_t store_pg_ops = {
    "postgresql",
    pg_open,
    pg_close,
    pg_token_add,
    pg_token_get,
    pg_token_list,
    pg_token_revoke,
    pg_lease_insert,
    pg_lease_get,
    pg_lease_list_org,
    pg_lease_set_state,
    pg_lease_set_generation,
    pg_lease_due,
    pg_session_put,
    pg_session_get,
    pg_session_set_state,
    pg_session_touch,
    pg_session_name_claim,
    pg_ticket_insert,
    pg_ticket_consume,
    pg_ticket_purge,
    pg_resume_put,
    pg_resume_take,
    pg_resume_drop_lease,
    pg_resume_drop_role,
    pg_portal_put,
    pg_portal_get,
    pg_portal_delete,
    pg_portal_purge,
};
