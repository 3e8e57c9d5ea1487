/*
 * store.c: picks the storage backend from --db (a postgresql:// URI or a
 * SQLite file) and forwards every store_ call to it.
 */

#include <stdio.h>
#include <string.h>

#include "store_backend.h"

static const store_ops_t *ops;
static char where[256];

int store_is_postgres(const char *path)
{
    return strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0;
}

int store_open(const char *path)
{
    const store_ops_t *o = store_is_postgres(path) ? &store_pg_ops : &store_sqlite_ops;

    if (o->open(path) < 0) {
        return -1;
    }
    ops = o;
    if (o == &store_sqlite_ops) {
        snprintf(where, sizeof(where), "%s", path);
    }
    return 0;
}

void store_close(void)
{
    if (ops != NULL) {
        ops->close();
        ops = NULL;
    }
}

void store_set_description(const char *text)
{
    snprintf(where, sizeof(where), "%s", text);
}

const char *store_description(void)
{
    return where;
}

int store_token_add(const char *hash, const char *id, const char *owner, const char *org,
                    int admin)
{
    return ops->token_add(hash, id, owner, org, admin);
}

int store_token_get(const char *hash, store_token_t *out)
{
    return ops->token_get(hash, out);
}

int store_token_list(store_token_cb cb, void *arg)
{
    return ops->token_list(cb, arg);
}

int store_token_revoke(const char *id)
{
    return ops->token_revoke(id);
}

int store_lease_insert(const store_lease_t *l)
{
    return ops->lease_insert(l);
}

int store_lease_get(const char *id_or_slug, store_lease_t *out)
{
    return ops->lease_get(id_or_slug, out);
}

int store_lease_list_org(const char *org, store_lease_cb cb, void *arg)
{
    return ops->lease_list_org(org, cb, arg);
}

int store_lease_set_state(const char *id, lease_state_e state)
{
    return ops->lease_set_state(id, state);
}

int store_lease_set_generation(const char *id, int64_t generation)
{
    return ops->lease_set_generation(id, generation);
}

int store_lease_due(int64_t since, const char *since_id, int64_t now, store_lease_cb cb,
                    void *arg)
{
    return ops->lease_due(since, since_id, now, cb, arg);
}

const char *store_lease_state_name(lease_state_e s)
{
    switch (s) {
    case LEASE_ACTIVE:
        return "active";
    case LEASE_RELEASED:
        return "released";
    case LEASE_EXPIRED:
        return "expired";
    }
    return "unknown";
}

int store_session_put(const store_session_t *s)
{
    return ops->session_put(s);
}

int store_session_get(const char *lease_id, store_session_t *out)
{
    return ops->session_get(lease_id, out);
}

int store_session_set_state(const char *lease_id, session_state_e state, int64_t now)
{
    return ops->session_set_state(lease_id, state, now);
}

int store_session_touch(const char *lease_id, int64_t now)
{
    return ops->session_touch(lease_id, now);
}

int store_session_name_claim(const char *lease_id, const char *name, int64_t generation,
                             int64_t *bound)
{
    return ops->session_name_claim(lease_id, name, generation, bound);
}

int store_ticket_insert(const char *hash, const store_ticket_t *t)
{
    return ops->ticket_insert(hash, t);
}

int store_ticket_consume(const char *hash, store_ticket_t *out)
{
    return ops->ticket_consume(hash, out);
}

int store_ticket_purge(int64_t before)
{
    return ops->ticket_purge(before);
}

int store_resume_put(const char *hash, const store_resume_t *r)
{
    return ops->resume_put(hash, r);
}

int store_resume_take(const char *hash, store_resume_t *out)
{
    return ops->resume_take(hash, out);
}

int store_resume_drop_lease(const char *lease_id)
{
    return ops->resume_drop_lease(lease_id);
}

int store_resume_drop_role(const char *lease_id, const char *role)
{
    return ops->resume_drop_role(lease_id, role);
}

int store_portal_put(const char *hash, const char *token_hash, int64_t expires_at)
{
    return ops->portal_put(hash, token_hash, expires_at);
}

int store_portal_get(const char *hash, int64_t now, char *token_hash, size_t cap)
{
    return ops->portal_get(hash, now, token_hash, cap);
}

int store_portal_delete(const char *hash)
{
    return ops->portal_delete(hash);
}

int store_portal_purge(int64_t now)
{
    return ops->portal_purge(now);
}
