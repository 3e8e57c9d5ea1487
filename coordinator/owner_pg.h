/*
 * owner_pg.h: the PostgreSQL statements behind lease ownership (owner.h),
 * on a libpq connection of their own (the store's connection stays as it
 * is). Blocking calls are one round trip of one statement each; the
 * heartbeat is sent without waiting and its answer, like notifications,
 * is read by owner_pg_poll(), which never blocks.
 *
 * Returns: 0 on success, 1 where noted, -1 on a database error (logged).
 */

#ifndef OWNER_PG_H
#define OWNER_PG_H

#include <stddef.h>
#include <stdint.h>

#include "coord.h"

/* The channel an instance LISTENs on; a payload is "INSTANCE EPOCH LEASE VERSION". */
#define OWNER_PG_CHANNEL "egress_owner"

/* Opens the connection (blocking, at start) and LISTENs. */
int owner_pg_open(const char *uri);
void owner_pg_close(void);

/* Registers name with a new epoch (one more than its last start). The
 * connection LISTENs from owner_pg_open() on (and again after a reconnect). */
int owner_pg_register(const char *name, int64_t *epoch);

/* Sends the heartbeat (not waiting) with the live counters of the leases
 * relayed here (relays: a JSON document, or NULL for none; see owner.c).
 * 1 when the previous one is unanswered. */
int owner_pg_heartbeat_send(const char *name, int64_t epoch, int lapse_ms, const char *relays);

typedef enum {
    OWNER_HB_NONE = 0, /* no answer read this time */
    OWNER_HB_OK,       /* refreshed in time */
    OWNER_HB_LAPSED,   /* refreshed, but the previous one had lapsed: others may have taken over
                        */
    OWNER_HB_FENCED,   /* our epoch is gone: another process started with our name */
} owner_hb_e;

typedef void (*owner_pg_notify_cb)(const char *payload, void *arg);

/*
 * Reads what the socket holds without blocking: the heartbeat's answer
 * (returned) and notifications (cb for each). A lost connection is
 * re-established without blocking, a step per call, an attempt at most
 * once a second; *reconnected is set when it is back, since notifications
 * sent meanwhile are lost.
 */
owner_hb_e owner_pg_poll(owner_pg_notify_cb cb, void *arg, int *reconnected);

/*
 * The claim, one statement: takes lease for (name, epoch) when nobody owns
 * it, we own it (any epoch of ours), or its owner's heartbeat is older than
 * lapse_ms or its epoch is not the owner's current one. 0 won, 1 lost.
 */
int owner_pg_claim(const char *lease, const char *name, int64_t epoch, int lapse_ms);

/* 1 when hash is an unused, unexpired ticket (or, via_resume, a resume
 * secret) of lease and role; 0 when not. Reads only. */
int owner_pg_credential_ok(const char *lease, const char *role, const char *hash,
                           int via_resume, int64_t now);

/* NOTIFYs the owner of lease to give it up, naming the record's version
 * (xmin); its name into owner. 1 when nobody owns it (any more). */
int owner_pg_ask_release(const char *lease, char *owner, size_t cap);

/* Drops our record of lease (ours, at our epoch, at that version): 1
 * dropped, 0 when it changed since (claimed again: keep it), -1 error. */
int owner_pg_release(const char *lease, const char *name, int64_t epoch, const char *version);

/* At a clean stop: every record of ours goes, and the heartbeat is marked dead. */
int owner_pg_release_all(const char *name, int64_t epoch);

/* What the database says about the instance relaying a lease. */
typedef struct {
    char instance[COORD_INSTANCE_MAX];
    int64_t epoch;
    int live;            /* its heartbeat is fresh (within the lapse) */
    int published;       /* live, and its last heartbeat carried counters */
    int truncated;       /* ... but not of every lease it relays */
    char counters[1024]; /* the lease's entry in them (owner_counters.h), or "" */
    char at[40];         /* when that heartbeat was written (database clock, RFC 3339, ms) */
    int64_t age_ms;      /* how long ago */
} owner_pg_record_t;

/* Who owns lease: 0 and out filled, 1 nobody. */
int owner_pg_lookup(const char *lease, int lapse_ms, owner_pg_record_t *out);

/* Calls cb for every lease (name, epoch) owns. */
typedef void (*owner_pg_lease_cb)(const char *lease, void *arg);
int owner_pg_mine(const char *name, int64_t epoch, owner_pg_lease_cb cb, void *arg);

/* Forgets records of leases no longer active. */
int owner_pg_purge(void);

/* Logs a libpq error as one store_error line (libpq's messages span lines
 * and may quote); defined in store_pg.c, shared by both connections. */
void pg_log_error(const char *what, const char *msg);

#endif /* OWNER_PG_H */
