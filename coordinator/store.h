/*
 * store.h: the coordinator's durable state, in SQLite (WAL mode, the
 * embedded default; store_sqlite.c) or PostgreSQL (several coordinators
 * sharing one database; store_pg.c). store.c picks one from --db.
 *
 * Tables: tokens, leases (with the per-lease session key and generation),
 * sessions (the current session of each lease), tickets, resume secrets and
 * portal sign-ins (all three only as SHA-256 hex). Every function returns 0 on success, 1 for
 * "not found" where that applies, and -1 on a database error (logged).
 */

#ifndef STORE_H
#define STORE_H

#include <stdint.h>

#include "coord.h"

#define STORE_SCHEMA_VERSION 1

typedef struct {
    char id[32];
    char owner[COORD_NAME_MAX + 1];
    char org[COORD_NAME_MAX + 1];
    int admin;
    int revoked;
    int64_t created_at;
} store_token_t;

typedef enum { LEASE_ACTIVE = 0, LEASE_RELEASED, LEASE_EXPIRED } lease_state_e;

typedef struct {
    char id[COORD_ID_MAX + 1];
    char slug[COORD_ID_MAX + 1];
    char owner[COORD_NAME_MAX + 1];
    char org[COORD_NAME_MAX + 1];
    char ssh[256];
    lease_state_e state;
    int64_t created_at;
    int64_t expires_at;
    int64_t generation; /* of the newest session ever issued */
    uint8_t key[32];    /* HMAC key for session ids */
} store_lease_t;

typedef enum { SESSION_ACTIVE = 0, SESSION_STOPPED } session_state_e;

typedef struct {
    char lease_id[COORD_ID_MAX + 1];
    char session_id[COORD_SESSION_MAX];
    int64_t generation;
    char profile[64];
    char allow[8192]; /* JSON array text */
    session_state_e state;
    int64_t created_at;
    int64_t updated_at;
} store_session_t;

typedef struct {
    char lease_id[COORD_ID_MAX + 1];
    char session_id[COORD_SESSION_MAX];
    char role[8];
    char owner[COORD_NAME_MAX + 1];
    char org[COORD_NAME_MAX + 1];
    int64_t expires_at;
    int used;
} store_ticket_t;

typedef struct {
    char lease_id[COORD_ID_MAX + 1];
    char session_id[COORD_SESSION_MAX];
    char role[8];
} store_resume_t;

/* path: a postgresql:// (or postgres://) URI, else a SQLite file name. */
int store_open(const char *path);
void store_close(void);
int store_is_postgres(const char *path);
/* What --db names, fit for logs: never a password (a URI is reduced to
 * host, port and database by the backend). */
const char *store_description(void);
void store_set_description(const char *text);

/* Tokens (hash = SHA-256 hex of the bearer token). */
int store_token_add(const char *hash, const char *id, const char *owner, const char *org,
                    int admin);
int store_token_get(const char *hash, store_token_t *out);
typedef void (*store_token_cb)(const store_token_t *t, void *arg);
int store_token_list(store_token_cb cb, void *arg);
int store_token_revoke(const char *id);

/* Leases. */
int store_lease_insert(const store_lease_t *l);
int store_lease_get(const char *id_or_slug, store_lease_t *out);
typedef void (*store_lease_cb)(const store_lease_t *l, void *arg);
int store_lease_list_org(const char *org, store_lease_cb cb, void *arg);
/* Ends an active lease (released or expired); one already ended keeps its
 * state, so of two instances ending it at once the first wins. */
int store_lease_set_state(const char *id, lease_state_e state);
int store_lease_set_generation(const char *id, int64_t generation);
/*
 * Calls cb for every lease whose expires_at <= now that is still active, and
 * for every one marked expired that comes after (since, since_id) in
 * (expires_at, id) order: another instance on the same database may have
 * marked it first, and this one must still close its own sockets. An empty
 * since_id means after the whole second since. At most STORE_DUE_MAX a
 * call, in (expires_at, id) order, so a caller that got a full page goes on
 * after its last row.
 */
#define STORE_DUE_MAX 256
int store_lease_due(int64_t since, const char *since_id, int64_t now, store_lease_cb cb,
                    void *arg);
const char *store_lease_state_name(lease_state_e s);

/* Sessions: at most one row per lease (the current one). */
int store_session_put(const store_session_t *s);
int store_session_get(const char *lease_id, store_session_t *out);
int store_session_set_state(const char *lease_id, session_state_e state, int64_t now);
int store_session_touch(const char *lease_id, int64_t now);
/*
 * Binds a client-proposed (crabbox) session id to the generation a new
 * session gets under it, once per lease and for good: 0 bound now, 1 bound
 * before (*bound receives that generation), -1 error.
 */
int store_session_name_claim(const char *lease_id, const char *name, int64_t generation,
                             int64_t *bound);

/* Tickets. consume returns 0 and marks the ticket used, 1 if unknown. */
int store_ticket_insert(const char *hash, const store_ticket_t *t);
int store_ticket_consume(const char *hash, store_ticket_t *out);
int store_ticket_purge(int64_t before);

/* Resume secrets: one live secret per (lease, role); put replaces it. */
int store_resume_put(const char *hash, const store_resume_t *r);
int store_resume_take(const char *hash, store_resume_t *out);
int store_resume_drop_lease(const char *lease_id);
/* Forgets the role's resume secret (a v1 socket, which gets none, took the role). */
int store_resume_drop_role(const char *lease_id, const char *role);

/* Portal sign-ins: the cookie's hash -> the bearer token's hash, until expires_at. */
int store_portal_put(const char *hash, const char *token_hash, int64_t expires_at);
/* 0 and token_hash filled, 1 unknown or expired, -1 error. */
int store_portal_get(const char *hash, int64_t now, char *token_hash, size_t cap);
int store_portal_delete(const char *hash);
int store_portal_purge(int64_t now);

#endif /* STORE_H */
