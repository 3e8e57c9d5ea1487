/*
 * store_backend.h: what a storage backend provides to store.c. Each entry
 * has the contract of the store_ function of the same name in store.h.
 */

#ifndef STORE_BACKEND_H
#define STORE_BACKEND_H

#include "store.h"

typedef struct {
    const char *name;
    int (*open)(const char *path);
    void (*close)(void);
    int (*token_add)(const char *hash, const char *id, const char *owner, const char *org,
                     int admin);
    int (*token_get)(const char *hash, store_token_t *out);
    int (*token_list)(store_token_cb cb, void *arg);
    int (*token_revoke)(const char *id);
    int (*lease_insert)(const store_lease_t *l);
    int (*lease_get)(const char *id_or_slug, store_lease_t *out);
    int (*lease_list_org)(const char *org, store_lease_cb cb, void *arg);
    int (*lease_set_state)(const char *id, lease_state_e state);
    int (*lease_set_generation)(const char *id, int64_t generation);
    int (*lease_due)(int64_t since, const char *since_id, int64_t now, store_lease_cb cb,
                     void *arg);
    int (*session_put)(const store_session_t *s);
    int (*session_get)(const char *lease_id, store_session_t *out);
    int (*session_set_state)(const char *lease_id, session_state_e state, int64_t now);
    int (*session_touch)(const char *lease_id, int64_t now);
    int (*session_name_claim)(const char *lease_id, const char *name, int64_t generation,
                              int64_t *bound);
    int (*ticket_insert)(const char *hash, const store_ticket_t *t);
    int (*ticket_consume)(const char *hash, store_ticket_t *out);
    int (*ticket_purge)(int64_t before);
    int (*resume_put)(const char *hash, const store_resume_t *r);
    int (*resume_take)(const char *hash, store_resume_t *out);
    int (*resume_drop_lease)(const char *lease_id);
    int (*resume_drop_role)(const char *lease_id, const char *role);
    int (*portal_put)(const char *hash, const char *token_hash, int64_t expires_at);
    int (*portal_get)(const char *hash, int64_t now, char *token_hash, size_t cap);
    int (*portal_delete)(const char *hash);
    int (*portal_purge)(int64_t now);
} store_ops_t;

extern const store_ops_t store_sqlite_ops;
extern const store_ops_t store_pg_ops;

#endif /* STORE_BACKEND_H */
