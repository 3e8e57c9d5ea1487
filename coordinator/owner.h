/*
 * owner.h: which coordinator instance relays a lease (docs/scale-out.md,
 * "Ownership"). With PostgreSQL each instance registers under --instance
 * with a new epoch, refreshes a heartbeat every second, and owns the relay
 * of a lease through a record (lease, instance, epoch). A socket for a
 * lease owned by another live instance is refused with a transient answer
 * and that owner is asked (NOTIFY) to close its sockets of the lease and
 * give it up; a dead owner's leases are taken once its heartbeat lapses.
 * With SQLite there is one instance: every call admits at once.
 */

#ifndef OWNER_H
#define OWNER_H

#include <stddef.h>

#include <jansson.h>
#include <libwebsockets.h>

typedef enum {
    OWNER_ADMIT = 0,      /* this instance owns the lease now: go on */
    OWNER_ELSEWHERE,      /* another live instance owns it and was asked to let go: 503 */
    OWNER_BAD_CREDENTIAL, /* refused before asking anyone: no such ticket or resume secret */
    OWNER_ERROR,          /* database error: 500 */
} owner_verdict_e;

/* Registers the instance and starts the heartbeat and the notification
 * poll on the lws loop (PostgreSQL only). 0, or -1 (logged). */
int owner_start(struct lws_context *context);

/* Stops the timers and, at a clean stop, gives every lease up at once. */
void owner_stop(void);

/*
 * Called by the upgrade path before the credential is spent (hash: its
 * SHA-256 hex; via_resume: a resume secret, else a ticket). On
 * OWNER_ELSEWHERE, owner names the owner (for the log and the refusal).
 */
owner_verdict_e owner_admit(const char *lease_id, const char *role, const char *hash,
                            int via_resume, char *owner, size_t cap);

/*
 * Adds "relay": {"instance", "epoch", "live", "here", "counters", and
 * "countersAt", "countersAgeMs" when they are the owner's} to the status
 * document of session_id; on an instance that does not relay the lease,
 * the live members are replaced by the owner's published counters (or
 * false and zero when none are known).
 */
int owner_status_add(json_t *doc, const char *lease_id, const char *session_id);

#endif /* OWNER_H */
