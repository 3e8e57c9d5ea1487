/*
 * lease.h: lease logic shared by the REST API (http_api.c) and the portal:
 * lookup and access, effective state, the egress status document, stop,
 * release, and the expiry timer.
 */

#ifndef LEASE_H
#define LEASE_H

#include <stddef.h>

#include <jansson.h>

#include "owner_counters.h"
#include "store.h"

struct session_s;

/* What a token may do with a lease. */
typedef enum { ACCESS_NONE = 0, ACCESS_READ, ACCESS_MANAGE } access_e;

/* Same org: read; the lease's owner or an org admin: manage. */
access_e lease_access(const store_token_t *t, const store_lease_t *l);
/* Finds lease `ref` (id or slug) and what tok may do with it (ACCESS_NONE when
 * it does not exist or is another org's). 0, or -1 on a database error. */
int lease_lookup(const store_token_t *tok, const char *ref, store_lease_t *l, access_e *access);
/* Splits "REF" or "REF/REST" into ref (copied, cap bytes) and rest ("" or from
 * the slash). 0, or -1 when REF is empty or too long. */
int lease_ref_split(const char *p, char *ref, size_t cap, const char **rest);
/* Lease effective state (an active lease past expires_at is expired). */
lease_state_e lease_effective_state(const store_lease_t *l);
/* Releases an active lease and ends its egress: 0, 1 not active, -1 database error. */
int lease_release(const store_lease_t *l);
/* Stops the lease's egress session (s receives it): 0, 1 none, -1 database error. */
int lease_stop_session(const store_lease_t *l, store_session_t *s);
/* The live counters of this instance's session of a lease (live NULL: none). */
void lease_counters_here(const struct session_s *live, owner_counters_t *out);
/* The GET .../egress/status document: 0 (*out set, owned), 1 no session, -1 error. */
int lease_status_json(const store_lease_t *l, json_t **out);
/* Ends the lease's egress: closes both sockets with code/reason and forgets
 * every resume secret (a new session, a stop, a release, an expiry). */
void lease_teardown(const char *lease_id, int code, const char *reason);
/* Called once before the server accepts sockets: expiry scans start from then. */
void lease_tick_start(void);
/* Timer (1 s): expires due leases and purges old tickets and portal sign-ins. */
void lease_tick(void);

#endif /* LEASE_H */
