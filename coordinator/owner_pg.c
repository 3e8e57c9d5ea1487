/*
 * owner_pg.c: lease ownership in PostgreSQL (owner_pg.h). Tables (store_pg.c's
 * migration 2): instances(name, epoch, heartbeat) and lease_owners(lease_id,
 * instance, epoch, since). Heartbeats use the database's clock, so instances
 * whose clocks disagree still agree on who is late.
 *
 * Its own connection: it LISTENs, and its heartbeat is in flight while the
 * loop runs, which the store's strictly synchronous connection cannot do.
 * A synchronous call first waits for an unanswered heartbeat (one indexed
 * UPDATE, bounded by statement_timeout like every call).
 */

#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "owner_pg.h"

#define OWNER_PG_RETRY_MS   1000
#define OWNER_PG_CONNECT_MS 5000 /* like the store's connect_timeout */

/* "<ms> milliseconds ago", on the database's clock. */
#define AGO(param) "clock_timestamp() - " param "::bigint * interval '1 millisecond'"

static PGconn *oc;
static int hb_inflight;
static owner_hb_e hb_answer;

static void op_log_error(const char *what, const char *msg)
{
    char op[64];

    snprintf(op, sizeof(op), "owner_%s", what);
    pg_log_error(op, msg);
}
static int op_setup(void)
{
    PGresult *res;
    int ok;

    res = PQexec(oc, "SET statement_timeout = '5s'; SET client_min_messages = warning;"
                     "LISTEN " OWNER_PG_CHANNEL);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        op_log_error("setup", PQerrorMessage(oc));
    }
    PQclear(res);
    /* The heartbeat (with its counters, up to some 150 KB) is queued in
     * libpq and flushed as the socket takes it, never waiting on a server
     * that stopped reading; PQexec* calls still wait, as they always do. */
    if (ok && PQsetnonblocking(oc, 1) != 0) {
        op_log_error("setup", PQerrorMessage(oc));
        ok = 0;
    }
    return ok ? 0 : -1;
}

/*
 * A lost connection is re-established without blocking the loop: the reset
 * is started (PQresetStart) and then advanced by every later call whose
 * socket is ready (PQresetPoll after a zero-timeout poll()), the 100 ms
 * poll timer included. Calls fail while it is under way; an attempt that
 * fails or takes longer than OWNER_PG_CONNECT_MS is retried a second later.
 * 0 ready, 1 ready after a reset (notifications may have been lost), -1 not.
 */
static int op_ready(void)
{
    static int64_t retry_at, started_at;
    static int resetting;
    static PostgresPollingStatusType want;
    struct pollfd pfd;
    int64_t now;

    if (oc == NULL) {
        return -1;
    }
    if (!resetting && PQstatus(oc) == CONNECTION_OK) {
        return 0;
    }
    now = coord_mono_ms();
    if (!resetting) {
        if (now < retry_at) {
            return -1;
        }
        hb_inflight = 0;
        if (!PQresetStart(oc)) {
            retry_at = now + OWNER_PG_RETRY_MS;
            op_log_error("reconnect", PQerrorMessage(oc));
            return -1;
        }
        resetting = 1;
        started_at = now;
        want = PGRES_POLLING_WRITING;
    }
    while (want == PGRES_POLLING_READING || want == PGRES_POLLING_WRITING) {
        pfd.fd = PQsocket(oc);
        pfd.events = want == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        pfd.revents = 0;
        if (pfd.fd < 0 || poll(&pfd, 1, 0) == 0) {
            if (now - started_at < OWNER_PG_CONNECT_MS) {
                return -1; /* not ready yet: the next call goes on */
            }
            want = PGRES_POLLING_FAILED;
            break;
        }
        want = PQresetPoll(oc);
    }
    resetting = 0;
    if (want != PGRES_POLLING_OK || op_setup() < 0) {
        retry_at = now + OWNER_PG_RETRY_MS;
        op_log_error("reconnect",
                     PQstatus(oc) == CONNECTION_OK ? "setup failed" : PQerrorMessage(oc));
        return -1;
    }
    coord_log("owner_reconnected", "instance=%s", coord_cfg.instance);
    return 1;
}

static void hb_result(PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        op_log_error("heartbeat", PQresultErrorMessage(res));
        return;
    }
    if (PQntuples(res) == 0) {
        hb_answer = OWNER_HB_FENCED;
    } else if (hb_answer != OWNER_HB_FENCED) {
        hb_answer = strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? OWNER_HB_LAPSED : OWNER_HB_OK;
    }
}

/* Waits for an unanswered heartbeat, so the connection takes a new statement. */
static void hb_drain(void)
{
    PGresult *res;

    while (hb_inflight && (res = PQgetResult(oc)) != NULL) {
        hb_result(res);
        PQclear(res);
    }
    hb_inflight = 0;
}

static PGresult *op_exec(const char *what, const char *sql, int n, const char *const *vals)
{
    PGresult *res;
    ExecStatusType st;

    if (op_ready() < 0) {
        return NULL;
    }
    hb_drain();
    res = PQexecParams(oc, sql, n, NULL, vals, NULL, NULL, 0);
    st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return res;
    }
    op_log_error(what, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(oc));
    PQclear(res);
    return NULL;
}

/* Rows returned (or changed), or -1. */
static long op_rows(const char *what, const char *sql, int n, const char *const *vals)
{
    PGresult *res = op_exec(what, sql, n, vals);
    long rows;

    if (res == NULL) {
        return -1;
    }
    rows = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res)
                                                  : strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return rows;
}

#define I64(buf, v) snprintf((buf), sizeof(buf), "%" PRId64, (int64_t) (v))

int owner_pg_open(const char *uri)
{
    static const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"5", "egress-coordinator-owner", uri, NULL};

    oc = PQconnectdbParams(keys, vals, 1);
    if (oc == NULL || PQstatus(oc) != CONNECTION_OK) {
        /* The store opened this URI a moment ago: libpq's message here is
         * about the server (host, port, authentication), not the URI. */
        op_log_error("open", oc != NULL ? PQerrorMessage(oc) : "out of memory");
        owner_pg_close();
        return -1;
    }
    if (op_setup() < 0) {
        owner_pg_close();
        return -1;
    }
    return 0;
}

void owner_pg_close(void)
{
    if (oc != NULL) {
        PQfinish(oc);
        oc = NULL;
    }
    hb_inflight = 0;
}

int owner_pg_register(const char *name, int64_t *epoch)
{
    const char *v[1] = {name};
    PGresult *res = op_exec("register",
                            "INSERT INTO instances(name, epoch, heartbeat) "
                            "VALUES($1, 1, clock_timestamp()) ON CONFLICT (name) DO UPDATE "
                            "SET epoch=instances.epoch+1, heartbeat=clock_timestamp() "
                            "RETURNING epoch",
                            1, v);

    if (res == NULL) {
        return -1;
    }
    *epoch = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return *epoch > 0 ? 0 : -1;
}

int owner_pg_heartbeat_send(const char *name, int64_t epoch, int lapse_ms, const char *relays)
{
    char e[24], lapse[24];
    const char *v[4] = {name, e, lapse, relays};

    if (hb_inflight) {
        return 1;
    }
    if (op_ready() < 0) {
        return -1;
    }
    I64(e, epoch);
    I64(lapse, lapse_ms);
    /* Answers whether the previous beat had lapsed (then others may have
     * taken our leases); no row when our epoch is gone. The live counters
     * ride along: one statement, one round trip a beat. */
    if (!PQsendQueryParams(oc,
                           "WITH old AS (SELECT heartbeat FROM instances WHERE name=$1 AND "
                           "epoch=$2::bigint) "
                           "UPDATE instances SET heartbeat=clock_timestamp(), "
                           "relays=$4::jsonb FROM old "
                           "WHERE name=$1 AND epoch=$2::bigint "
                           "RETURNING old.heartbeat < " AGO("$3"),
                           4, NULL, v, NULL, NULL, 0)) {
        op_log_error("heartbeat", PQerrorMessage(oc));
        return -1;
    }
    hb_inflight = 1;
    /* What the socket does not take now, owner_pg_poll() sends later. */
    if (PQflush(oc) < 0) {
        op_log_error("heartbeat", PQerrorMessage(oc));
        return -1;
    }
    return 0;
}

owner_hb_e owner_pg_poll(owner_pg_notify_cb cb, void *arg, int *reconnected)
{
    PGnotify *n;
    PGresult *res;
    owner_hb_e out;
    int ready = op_ready();

    if (ready < 0) {
        return OWNER_HB_NONE;
    }
    if (ready == 1) {
        *reconnected = 1;
    }
    /* Sends what is left of the heartbeat and reads what arrived; the
     * connection is non-blocking, so neither waits. */
    if (PQflush(oc) < 0 || !PQconsumeInput(oc)) {
        op_log_error("poll", PQerrorMessage(oc));
        return OWNER_HB_NONE;
    }
    while (hb_inflight && !PQisBusy(oc)) {
        res = PQgetResult(oc);
        if (res == NULL) {
            hb_inflight = 0;
            break;
        }
        hb_result(res);
        PQclear(res);
    }
    while ((n = PQnotifies(oc)) != NULL) {
        cb(n->extra, arg);
        PQfreemem(n);
    }
    out = hb_answer;
    hb_answer = OWNER_HB_NONE;
    return out;
}

int owner_pg_claim(const char *lease, const char *name, int64_t epoch, int lapse_ms)
{
    char e[24], now[24], lapse[24];
    const char *v[5] = {lease, name, e, now, lapse};
    long rows;

    I64(e, epoch);
    I64(now, coord_now());
    I64(lapse, lapse_ms);
    /*
     * Inserted when nobody owns the lease; else the row is locked and the
     * WHERE re-checked on its newest version, so of two instances racing
     * the second sees the first's fresh record and changes nothing. An
     * instance whose own epoch is gone (a newer process took its name)
     * claims nothing.
     */
    rows = op_rows("claim",
                   "INSERT INTO lease_owners AS o (lease_id, instance, epoch, since) "
                   "SELECT $1, $2, $3::bigint, $4::bigint WHERE EXISTS "
                   "(SELECT 1 FROM instances WHERE name=$2 AND epoch=$3::bigint) "
                   "ON CONFLICT (lease_id) DO UPDATE SET instance=EXCLUDED.instance, "
                   "epoch=EXCLUDED.epoch, since=CASE WHEN o.instance=EXCLUDED.instance AND "
                   "o.epoch=EXCLUDED.epoch THEN o.since ELSE EXCLUDED.since END "
                   "WHERE o.instance=EXCLUDED.instance OR NOT EXISTS "
                   "(SELECT 1 FROM instances i WHERE i.name=o.instance AND i.epoch=o.epoch "
                   "AND i.heartbeat > " AGO("$5") ") "
                                                  "RETURNING o.epoch",
                   5, v);
    return rows < 0 ? -1 : rows == 1 ? 0 : 1;
}

int owner_pg_credential_ok(const char *lease, const char *role, const char *hash,
                           int via_resume, int64_t now)
{
    char t[24];
    const char *v[4] = {hash, lease, role, t};
    long rows;

    I64(t, now);
    rows = via_resume
               ? op_rows("credential",
                         "SELECT 1 FROM resume WHERE hash=$1 AND lease_id=$2 AND role=$3", 3, v)
               : op_rows("credential",
                         "SELECT 1 FROM tickets WHERE hash=$1 AND lease_id=$2 AND "
                         "role=$3 AND used=0 AND expires_at>$4::bigint",
                         4, v);
    return rows < 0 ? -1 : rows > 0;
}

int owner_pg_ask_release(const char *lease, char *owner, size_t cap)
{
    const char *v[1] = {lease};
    PGresult *res = op_exec("ask_release",
                            "SELECT instance, pg_notify('" OWNER_PG_CHANNEL "', "
                            "instance || ' ' || epoch || ' ' || lease_id || ' ' || xmin::text) "
                            "FROM lease_owners WHERE lease_id=$1",
                            1, v);
    int rc;

    if (res == NULL) {
        return -1;
    }
    rc = PQntuples(res) == 1 ? 0 : 1;
    if (rc == 0) {
        snprintf(owner, cap, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return rc;
}

int owner_pg_release(const char *lease, const char *name, int64_t epoch, const char *version)
{
    char e[24];
    const char *v[4] = {lease, name, e, version};

    I64(e, epoch);
    /* xmin changes with every claim, ours included: a record claimed again
     * since the asker looked is not the one it asked about. */
    return (int) op_rows("release",
                         "DELETE FROM lease_owners WHERE lease_id=$1 AND instance=$2 AND "
                         "epoch=$3::bigint AND xmin::text=$4",
                         4, v);
}

int owner_pg_release_all(const char *name, int64_t epoch)
{
    char e[24];
    const char *v[2] = {name, e};

    I64(e, epoch);
    if (op_rows("release", "DELETE FROM lease_owners WHERE instance=$1 AND epoch=$2::bigint", 2,
                v) < 0) {
        return -1;
    }
    return op_rows("release",
                   "UPDATE instances SET heartbeat='-infinity', relays=NULL WHERE name=$1 AND "
                   "epoch=$2::bigint",
                   2, v) < 0
               ? -1
               : 0;
}

int owner_pg_lookup(const char *lease, int lapse_ms, owner_pg_record_t *out)
{
    char lapse[24];
    const char *v[2] = {lease, lapse};
    PGresult *res;
    int rc;

    I64(lapse, lapse_ms);
    /* The counters, their time and age only from a live owner (a dead
     * one's are not live, and a clean stop's '-infinity' has no age). */
    res =
        op_exec("lookup",
                "SELECT o.instance, o.epoch, f.live, f.live AND i.relays IS NOT NULL, "
                "CASE WHEN f.live THEN coalesce((i.relays->>'truncated')::boolean, false) "
                "END, CASE WHEN f.live THEN coalesce((i.relays->'leases'->$1)::text, '') END, "
                "CASE WHEN f.live THEN to_char(i.heartbeat AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END, "
                "CASE WHEN f.live THEN (extract(epoch FROM clock_timestamp() - i.heartbeat) "
                "* 1000)::bigint END "
                "FROM lease_owners o LEFT JOIN instances i ON i.name=o.instance AND "
                "i.epoch=o.epoch CROSS JOIN LATERAL (SELECT coalesce(i.heartbeat > " AGO(
                    "$2") ", false) AS live) f WHERE o.lease_id=$1",
                2, v);
    if (res == NULL) {
        return -1;
    }
    rc = PQntuples(res) == 1 ? 0 : 1;
    memset(out, 0, sizeof(*out));
    if (rc == 0) {
        snprintf(out->instance, sizeof(out->instance), "%s", PQgetvalue(res, 0, 0));
        out->epoch = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        out->live = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
        out->published = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
        out->truncated = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
        if (PQgetlength(res, 0, 5) < (int) sizeof(out->counters)) {
            memcpy(out->counters, PQgetvalue(res, 0, 5), (size_t) PQgetlength(res, 0, 5) + 1);
        } else {
            snprintf(out->counters, sizeof(out->counters), "?"); /* not ours: malformed */
        }
        snprintf(out->at, sizeof(out->at), "%s", PQgetvalue(res, 0, 6));
        out->age_ms = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
    }
    PQclear(res);
    return rc;
}

int owner_pg_mine(const char *name, int64_t epoch, owner_pg_lease_cb cb, void *arg)
{
    char e[24];
    const char *v[2] = {name, e};
    PGresult *res;
    int i;

    I64(e, epoch);
    res = op_exec("mine",
                  "SELECT lease_id FROM lease_owners WHERE instance=$1 AND epoch=$2::bigint", 2,
                  v);
    if (res == NULL) {
        return -1;
    }
    for (i = 0; i < PQntuples(res); i++) {
        cb(PQgetvalue(res, i, 0), arg);
    }
    PQclear(res);
    return 0;
}

int owner_pg_purge(void)
{
    return op_rows("purge",
                   "DELETE FROM lease_owners o USING leases l WHERE l.id=o.lease_id AND "
                   "l.state<>0",
                   0, NULL) < 0
               ? -1
               : 0;
}
