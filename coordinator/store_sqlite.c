/*
 * store_sqlite.c: the SQLite backend of store.h (the embedded default). One
 * connection, used only from the service thread; WAL so that a kill -9
 * loses at most the transaction in flight. The database files are 0600
 * (store_private_files()).
 */

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_backend.h"

static sqlite3 *db;

static const char *schema_sql =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tokens ("
    "  hash TEXT PRIMARY KEY, id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL,"
    "  org TEXT NOT NULL, admin INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS leases ("
    "  id TEXT PRIMARY KEY, slug TEXT UNIQUE NOT NULL, owner TEXT NOT NULL,"
    "  org TEXT NOT NULL, ssh TEXT NOT NULL, state INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
    "  generation INTEGER NOT NULL, key BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS leases_due ON leases(state, expires_at);"
    "CREATE TABLE IF NOT EXISTS sessions ("
    "  lease_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, generation INTEGER NOT NULL,"
    "  profile TEXT NOT NULL, allow TEXT NOT NULL, state INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tickets ("
    "  hash TEXT PRIMARY KEY, lease_id TEXT NOT NULL, session_id TEXT NOT NULL,"
    "  role TEXT NOT NULL, owner TEXT NOT NULL, org TEXT NOT NULL,"
    "  expires_at INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS resume ("
    "  hash TEXT PRIMARY KEY, lease_id TEXT NOT NULL, session_id TEXT NOT NULL,"
    "  role TEXT NOT NULL, UNIQUE(lease_id, role));"
    "CREATE TABLE IF NOT EXISTS portal_sessions ("
    "  hash TEXT PRIMARY KEY, token_hash TEXT NOT NULL, expires_at INTEGER NOT NULL);"
    /* Added later: IF NOT EXISTS gives older databases the table too. */
    "CREATE TABLE IF NOT EXISTS session_names ("
    "  lease_id TEXT NOT NULL, name TEXT NOT NULL, generation INTEGER NOT NULL,"
    "  PRIMARY KEY (lease_id, name));";

static int fail(const char *what)
{
    coord_log("store_error", "op=%s error=\"%s\"", what, sqlite3_errmsg(db));
    return -1;
}

static sqlite3_stmt *prep(const char *sql)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail("prepare");
        return NULL;
    }
    return st;
}

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", s ? (const char *) s : "");
}

/* Runs a statement that returns no rows; returns 0, or -1. Finalizes st. */
static int run_done(sqlite3_stmt *st, const char *what)
{
    int rc;

    if (st == NULL) {
        return -1;
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : fail(what);
}

/*
 * Makes path a 0600 file whatever the umask: creates it (when create is set)
 * or tightens an existing one that others could read, and logs that. A
 * missing file that need not be created is fine. Only regular files are
 * touched. Returns 0, or -1 after logging.
 */
static int store_private_file(const char *path, int create)
{
    struct stat sb;
    int fd, created = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ENOENT) {
        if (!create) {
            return 0;
        }
        fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
        created = 1;
    }
    if (fd < 0) {
        coord_log("store_error", "op=open path=%s error=\"%s\"", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 0777) != 0600 &&
        (created || (sb.st_mode & 0177) != 0)) {
        if (fchmod(fd, 0600) < 0) {
            coord_log("store_error", "op=chmod path=%s error=\"%s\"", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (!created) {
            coord_log("store_mode", "path=%s was=%04o now=0600", path,
                      (unsigned) (sb.st_mode & 0777));
        }
    }
    close(fd);
    return 0;
}

/*
 * The database and its -wal/-shm hold token, ticket, resume and cookie
 * hashes and the lease keys. SQLite gives -wal and -shm the permission bits
 * of the database file, so a 0600 database makes them 0600 too; ones left
 * behind wider by an older run are tightened here.
 */
static int store_private_files(const char *path)
{
    static const char *const sidecars[] = {"-wal", "-shm", "-journal"};
    char side[4096];
    size_t i;

    if (path[0] == '\0' || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) {
        return 0; /* no file, or a URI sqlite resolves itself */
    }
    if (store_private_file(path, 1) < 0) {
        return -1;
    }
    for (i = 0; i < sizeof(sidecars) / sizeof(sidecars[0]); i++) {
        if ((size_t) snprintf(side, sizeof(side), "%s%s", path, sidecars[i]) < sizeof(side) &&
            store_private_file(side, 0) < 0) {
            return -1;
        }
    }
    return 0;
}

static void sq_close(void)
{
    if (db != NULL) {
        sqlite3_close(db);
        db = NULL;
    }
}

static int sq_open(const char *path)
{
    char *msg = NULL;
    sqlite3_stmt *st;
    int version = 0;

    if (store_private_files(path) < 0) {
        return -1;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        coord_log("store_error", "op=open path=%s error=\"%s\"", path,
                  db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "PRAGMA foreign_keys=ON;",
                     NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        coord_log("store_error", "op=schema path=%s error=\"%s\"", path, msg ? msg : "?");
        sqlite3_free(msg);
        sq_close();
        return -1;
    }
    st = prep("SELECT value FROM meta WHERE key='schema_version'");
    if (st == NULL) {
        sq_close();
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    if (version == 0) {
        st = prep("INSERT INTO meta(key, value) VALUES('schema_version', ?)");
        if (st == NULL) {
            sq_close();
            return -1;
        }
        sqlite3_bind_int(st, 1, STORE_SCHEMA_VERSION);
        if (run_done(st, "schema_version") < 0) {
            sq_close();
            return -1;
        }
    } else if (version != STORE_SCHEMA_VERSION) {
        coord_log("store_error", "op=open path=%s error=\"schema version %d, expected %d\"",
                  path, version, STORE_SCHEMA_VERSION);
        sq_close();
        return -1;
    }
    return 0;
}

/* ---- tokens ------------------------------------------------------------ */

static int sq_token_add(const char *hash, const char *id, const char *owner, const char *org,
                        int admin)
{
    sqlite3_stmt *st = prep("INSERT INTO tokens(hash, id, owner, org, admin, created_at) "
                            "VALUES(?,?,?,?,?,?)");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, org, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, admin ? 1 : 0);
    sqlite3_bind_int64(st, 6, coord_now());
    return run_done(st, "token_add");
}

static void token_row(sqlite3_stmt *st, store_token_t *t)
{
    copy_col(t->id, sizeof(t->id), st, 0);
    copy_col(t->owner, sizeof(t->owner), st, 1);
    copy_col(t->org, sizeof(t->org), st, 2);
    t->admin = sqlite3_column_int(st, 3);
    t->revoked = sqlite3_column_int(st, 4);
    t->created_at = sqlite3_column_int64(st, 5);
}

static int sq_token_get(const char *hash, store_token_t *out)
{
    int rc;
    sqlite3_stmt *st = prep("SELECT id, owner, org, admin, revoked, created_at FROM tokens "
                            "WHERE hash=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        token_row(st, out);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : fail("token_get");
}

static int sq_token_list(store_token_cb cb, void *arg)
{
    store_token_t t;
    int rc;
    sqlite3_stmt *st = prep("SELECT id, owner, org, admin, revoked, created_at FROM tokens "
                            "ORDER BY created_at, id");
    if (st == NULL) {
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        token_row(st, &t);
        cb(&t, arg);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : fail("token_list");
}

static int sq_token_revoke(const char *id)
{
    sqlite3_stmt *st = prep("UPDATE tokens SET revoked=1 WHERE id=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (run_done(st, "token_revoke") < 0) {
        return -1;
    }
    return sqlite3_changes(db) > 0 ? 0 : 1;
}

/* ---- leases ------------------------------------------------------------ */

#define LEASE_COLS "id, slug, owner, org, ssh, state, created_at, expires_at, generation, key"

static void lease_row(sqlite3_stmt *st, store_lease_t *l)
{
    const void *key;
    int keylen;

    memset(l, 0, sizeof(*l));
    copy_col(l->id, sizeof(l->id), st, 0);
    copy_col(l->slug, sizeof(l->slug), st, 1);
    copy_col(l->owner, sizeof(l->owner), st, 2);
    copy_col(l->org, sizeof(l->org), st, 3);
    copy_col(l->ssh, sizeof(l->ssh), st, 4);
    l->state = (lease_state_e) sqlite3_column_int(st, 5);
    l->created_at = sqlite3_column_int64(st, 6);
    l->expires_at = sqlite3_column_int64(st, 7);
    l->generation = sqlite3_column_int64(st, 8);
    key = sqlite3_column_blob(st, 9);
    keylen = sqlite3_column_bytes(st, 9);
    if (key != NULL && keylen == (int) sizeof(l->key)) {
        memcpy(l->key, key, sizeof(l->key));
    }
}

static int sq_lease_insert(const store_lease_t *l)
{
    sqlite3_stmt *st = prep("INSERT INTO leases(" LEASE_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?)");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, l->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, l->slug, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, l->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, l->org, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, l->ssh, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, (int) l->state);
    sqlite3_bind_int64(st, 7, l->created_at);
    sqlite3_bind_int64(st, 8, l->expires_at);
    sqlite3_bind_int64(st, 9, l->generation);
    sqlite3_bind_blob(st, 10, l->key, sizeof(l->key), SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        int ext = sqlite3_extended_errcode(db);
        sqlite3_finalize(st);
        if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
            return 1; /* slug taken */
        }
        return fail("lease_insert");
    }
    sqlite3_finalize(st);
    return 0;
}

static int sq_lease_get(const char *id_or_slug, store_lease_t *out)
{
    int rc;
    sqlite3_stmt *st =
        prep("SELECT " LEASE_COLS " FROM leases WHERE id=?1 OR slug=?1 ORDER BY id=?1 DESC");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, id_or_slug, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        lease_row(st, out);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : fail("lease_get");
}

static int lease_iter(sqlite3_stmt *st, store_lease_cb cb, void *arg, const char *what)
{
    store_lease_t l;
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        lease_row(st, &l);
        cb(&l, arg);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : fail(what);
}

static int sq_lease_list_org(const char *org, store_lease_cb cb, void *arg)
{
    sqlite3_stmt *st =
        prep("SELECT " LEASE_COLS " FROM leases WHERE org=? ORDER BY created_at, id");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, org, -1, SQLITE_STATIC);
    return lease_iter(st, cb, arg, "lease_list");
}

static int sq_lease_due(int64_t since, const char *since_id, int64_t now, store_lease_cb cb,
                        void *arg)
{
    sqlite3_stmt *st = prep("SELECT " LEASE_COLS " FROM leases WHERE expires_at<=?1 AND "
                            "(state=0 OR (state=2 AND (expires_at>?2 OR "
                            "(expires_at=?2 AND ?3<>'' AND id>?3)))) "
                            "ORDER BY expires_at, id LIMIT " COORD_STR(STORE_DUE_MAX));
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, since);
    sqlite3_bind_text(st, 3, since_id, -1, SQLITE_STATIC);
    return lease_iter(st, cb, arg, "lease_due");
}

static int sq_lease_set_state(const char *id, lease_state_e state)
{
    sqlite3_stmt *st = prep("UPDATE leases SET state=? WHERE id=? AND state=0");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_int(st, 1, (int) state);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    return run_done(st, "lease_set_state");
}

static int sq_lease_set_generation(const char *id, int64_t generation)
{
    sqlite3_stmt *st = prep("UPDATE leases SET generation=? WHERE id=? AND generation<?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, generation);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, generation);
    return run_done(st, "lease_set_generation");
}

/* ---- sessions ---------------------------------------------------------- */

static int sq_session_put(const store_session_t *s)
{
    sqlite3_stmt *st = prep("INSERT OR REPLACE INTO sessions(lease_id, session_id, generation,"
                            " profile, allow, state, created_at, updated_at) "
                            "VALUES(?,?,?,?,?,?,?,?)");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, s->lease_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, s->generation);
    sqlite3_bind_text(st, 4, s->profile, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, s->allow, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, (int) s->state);
    sqlite3_bind_int64(st, 7, s->created_at);
    sqlite3_bind_int64(st, 8, s->updated_at);
    return run_done(st, "session_put");
}

static int sq_session_get(const char *lease_id, store_session_t *out)
{
    int rc;
    sqlite3_stmt *st = prep("SELECT lease_id, session_id, generation, profile, allow, state, "
                            "created_at, updated_at FROM sessions WHERE lease_id=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lease_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        copy_col(out->lease_id, sizeof(out->lease_id), st, 0);
        copy_col(out->session_id, sizeof(out->session_id), st, 1);
        out->generation = sqlite3_column_int64(st, 2);
        copy_col(out->profile, sizeof(out->profile), st, 3);
        copy_col(out->allow, sizeof(out->allow), st, 4);
        out->state = (session_state_e) sqlite3_column_int(st, 5);
        out->created_at = sqlite3_column_int64(st, 6);
        out->updated_at = sqlite3_column_int64(st, 7);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : fail("session_get");
}

static int sq_session_set_state(const char *lease_id, session_state_e state, int64_t now)
{
    sqlite3_stmt *st = prep("UPDATE sessions SET state=?, updated_at=? WHERE lease_id=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_int(st, 1, (int) state);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, lease_id, -1, SQLITE_STATIC);
    return run_done(st, "session_set_state");
}

static int sq_session_touch(const char *lease_id, int64_t now)
{
    sqlite3_stmt *st = prep("UPDATE sessions SET updated_at=? WHERE lease_id=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, lease_id, -1, SQLITE_STATIC);
    return run_done(st, "session_touch");
}

static int sq_session_name_claim(const char *lease_id, const char *name, int64_t generation,
                                 int64_t *bound)
{
    int rc;
    sqlite3_stmt *st = prep("INSERT INTO session_names(lease_id, name, generation) "
                            "VALUES(?,?,?) ON CONFLICT DO NOTHING");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lease_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, generation);
    if (run_done(st, "session_name_claim") < 0) {
        return -1;
    }
    if (sqlite3_changes(db) > 0) {
        *bound = generation;
        return 0;
    }
    st = prep("SELECT generation FROM session_names WHERE lease_id=? AND name=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lease_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *bound = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : fail("session_name_claim");
}

/* ---- tickets ----------------------------------------------------------- */

static int sq_ticket_insert(const char *hash, const store_ticket_t *t)
{
    sqlite3_stmt *st = prep("INSERT INTO tickets(hash, lease_id, session_id, role, owner, org,"
                            " expires_at) VALUES(?,?,?,?,?,?,?)");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->lease_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, t->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, t->org, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, t->expires_at);
    return run_done(st, "ticket_insert");
}

static int sq_ticket_consume(const char *hash, store_ticket_t *out)
{
    int rc;
    sqlite3_stmt *st = prep("SELECT lease_id, session_id, role, owner, org, expires_at, used "
                            "FROM tickets WHERE hash=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        copy_col(out->lease_id, sizeof(out->lease_id), st, 0);
        copy_col(out->session_id, sizeof(out->session_id), st, 1);
        copy_col(out->role, sizeof(out->role), st, 2);
        copy_col(out->owner, sizeof(out->owner), st, 3);
        copy_col(out->org, sizeof(out->org), st, 4);
        out->expires_at = sqlite3_column_int64(st, 5);
        out->used = sqlite3_column_int(st, 6);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) {
        return 1;
    }
    if (rc != SQLITE_ROW) {
        return fail("ticket_get");
    }
    if (out->used) {
        return 0;
    }
    /* "AND used=0": a second process on the same file that spent it first
     * leaves no change here, and this caller sees it as used. */
    st = prep("UPDATE tickets SET used=1 WHERE hash=? AND used=0");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    if (run_done(st, "ticket_consume") < 0) {
        return -1;
    }
    if (sqlite3_changes(db) == 0) {
        out->used = 1;
    }
    return 0;
}

static int sq_ticket_purge(int64_t before)
{
    sqlite3_stmt *st = prep("DELETE FROM tickets WHERE expires_at<?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, before);
    return run_done(st, "ticket_purge");
}

/* ---- resume secrets ---------------------------------------------------- */

static int sq_resume_put(const char *hash, const store_resume_t *r)
{
    sqlite3_stmt *st = prep("INSERT OR REPLACE INTO resume(hash, lease_id, session_id, role) "
                            "VALUES(?,?,?,?)");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->lease_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->role, -1, SQLITE_STATIC);
    return run_done(st, "resume_put");
}

static int sq_resume_take(const char *hash, store_resume_t *out)
{
    int rc;
    sqlite3_stmt *st = prep("SELECT lease_id, session_id, role FROM resume WHERE hash=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        copy_col(out->lease_id, sizeof(out->lease_id), st, 0);
        copy_col(out->session_id, sizeof(out->session_id), st, 1);
        copy_col(out->role, sizeof(out->role), st, 2);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) {
        return 1;
    }
    if (rc != SQLITE_ROW) {
        return fail("resume_get");
    }
    st = prep("DELETE FROM resume WHERE hash=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    return run_done(st, "resume_take");
}

static int sq_resume_drop_role(const char *lease_id, const char *role)
{
    sqlite3_stmt *st = prep("DELETE FROM resume WHERE lease_id=? AND role=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lease_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
    return run_done(st, "resume_drop");
}

static int sq_resume_drop_lease(const char *lease_id)
{
    sqlite3_stmt *st = prep("DELETE FROM resume WHERE lease_id=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lease_id, -1, SQLITE_STATIC);
    return run_done(st, "resume_drop");
}

/* ---- portal sign-ins ---------------------------------------------------- */

static int sq_portal_put(const char *hash, const char *token_hash, int64_t expires_at)
{
    sqlite3_stmt *st =
        prep("INSERT INTO portal_sessions(hash, token_hash, expires_at) VALUES(?,?,?)");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, token_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, expires_at);
    return run_done(st, "portal_put");
}

static int sq_portal_get(const char *hash, int64_t now, char *token_hash, size_t cap)
{
    int rc;
    sqlite3_stmt *st =
        prep("SELECT token_hash FROM portal_sessions WHERE hash=? AND expires_at>?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_col(token_hash, cap, st, 0);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) {
        return 0;
    }
    return rc == SQLITE_DONE ? 1 : fail("portal_get");
}

static int sq_portal_delete(const char *hash)
{
    sqlite3_stmt *st = prep("DELETE FROM portal_sessions WHERE hash=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    return run_done(st, "portal_delete");
}

static int sq_portal_purge(int64_t now)
{
    sqlite3_stmt *st = prep("DELETE FROM portal_sessions WHERE expires_at<=?");
    if (st == NULL) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, now);
    return run_done(st, "portal_purge");
}

const store_ops_t store_sqlite_ops = {
    "sqlite",
    sq_open,
    sq_close,
    sq_token_add,
    sq_token_get,
    sq_token_list,
    sq_token_revoke,
    sq_lease_insert,
    sq_lease_get,
    sq_lease_list_org,
    sq_lease_set_state,
    sq_lease_set_generation,
    sq_lease_due,
    sq_session_put,
    sq_session_get,
    sq_session_set_state,
    sq_session_touch,
    sq_session_name_claim,
    sq_ticket_insert,
    sq_ticket_consume,
    sq_ticket_purge,
    sq_resume_put,
    sq_resume_take,
    sq_resume_drop_lease,
    sq_resume_drop_role,
    sq_portal_put,
    sq_portal_get,
    sq_portal_delete,
    sq_portal_purge,
};
