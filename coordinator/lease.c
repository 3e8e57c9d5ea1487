/*
 * lease.c: what the REST API and the portal both do with a lease: find it and
 * say what a token may do with it, its effective state, its egress status
 * document, stopping its session, releasing it, and expiring it on time.
 */

#include <stdio.h>
#include <string.h>

#include "egress.h"
#include "lease.h"
#include "owner.h"
#include "ratelimit.h"
#include "session.h"
#include "view.h"

lease_state_e lease_effective_state(const store_lease_t *l)
{
    if (l->state == LEASE_ACTIVE && l->expires_at <= coord_now()) {
        return LEASE_EXPIRED;
    }
    return l->state;
}

access_e lease_access(const store_token_t *t, const store_lease_t *l)
{
    if (strcmp(t->org, l->org) != 0) {
        return ACCESS_NONE;
    }
    if (t->admin || strcmp(t->owner, l->owner) == 0) {
        return ACCESS_MANAGE;
    }
    return ACCESS_READ;
}

int lease_lookup(const store_token_t *tok, const char *ref, store_lease_t *l, access_e *access)
{
    int n = coord_id_valid(ref, strlen(ref)) ? store_lease_get(ref, l) : 1;

    *access = n == 0 ? lease_access(tok, l) : ACCESS_NONE;
    return n < 0 ? -1 : 0;
}

/* Tears down a lease's egress session (sockets, resume secrets). */
void lease_teardown(const char *lease_id, int code, const char *reason)
{
    session_end(lease_id, code, reason);
    store_resume_drop_lease(lease_id);
}

int lease_release(const store_lease_t *l)
{
    if (lease_effective_state(l) != LEASE_ACTIVE) {
        return 1;
    }
    if (store_lease_set_state(l->id, LEASE_RELEASED) < 0) {
        return -1;
    }
    lease_teardown(l->id, EGRESS_CLOSE_LEASE_GONE, "egress_lease_gone");
    coord_log("lease_released", "lease=%s", l->id);
    return 0;
}

void lease_counters_here(const session_t *live, owner_counters_t *out)
{
    int role;

    memset(out, 0, sizeof(*out));
    if (live == NULL) {
        return;
    }
    snprintf(out->session_id, sizeof(out->session_id), "%s", live->session_id);
    for (role = ROLE_HOST; role <= ROLE_CLIENT; role++) {
        out->connected[role] = live->conn[role] != NULL;
        out->since[role] = live->since[role];
        out->version[role] = live->conn[role] != NULL ? live->conn[role]->version : 0;
    }
    out->streams = live->nstreams;
    out->bytes_up = live->bytes_up;
    out->bytes_down = live->bytes_down;
}

int lease_status_json(const store_lease_t *l, json_t **out)
{
    store_session_t s;
    session_t *live;
    owner_counters_t here;
    json_t *allow;
    char created[32], updated[32];
    int n = store_session_get(l->id, &s);
    int active;

    if (n != 0) {
        return n;
    }
    live = session_find(l->id);
    if (live != NULL && strcmp(live->session_id, s.session_id) != 0) {
        live = NULL;
    }
    allow = json_loads(s.allow, 0, NULL);
    if (allow == NULL) {
        allow = json_array();
    }
    active = s.state == SESSION_ACTIVE && lease_effective_state(l) == LEASE_ACTIVE;
    coord_time_format(created, sizeof(created), s.created_at);
    coord_time_format(updated, sizeof(updated), s.updated_at);
    /* The live members (null here) are set in this order by owner_counters_status(). */
    *out =
        json_pack("{s:s, s:s, s:s, s:o, s:n, s:n, s:n, s:n, s:s, s:s, s:s, s:n, s:n, s:n, "
                  "s:n, s:s, s:b}",
                  "leaseID", l->id, "sessionID", s.session_id, "profile", s.profile, "allow",
                  allow, "hostConnected", "clientConnected", "hostSince", "clientSince",
                  "createdAt", created, "updatedAt", updated, "state",
                  active ? "active" : "stopped", "protocol", "streams", "bytesUp", "bytesDown",
                  /* crabbox's status names are a subset of ours: its CLI reads this too */
                  "slug", l->slug, "active", active);
    if (*out == NULL) {
        return -1;
    }
    lease_counters_here(live, &here);
    /* Another instance's counters replace these when it relays the lease. */
    if (owner_counters_status(*out, live != NULL ? &here : NULL) < 0 ||
        view_status_add(*out, l->id, live, coord_now()) < 0 ||
        owner_status_add(*out, l->id, s.session_id) < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return *out != NULL ? 0 : -1;
}

int lease_stop_session(const store_lease_t *l, store_session_t *s)
{
    int n = store_session_get(l->id, s);

    if (n != 0) {
        return n;
    }
    if (store_session_set_state(l->id, SESSION_STOPPED, coord_now()) < 0) {
        return -1;
    }
    lease_teardown(l->id, EGRESS_CLOSE_SESSION_STOPPED, "egress_session_stopped");
    coord_log("session_stopped", "lease=%s session=%s", l->id, s->session_id);
    return 0;
}

int lease_ref_split(const char *p, char *ref, size_t cap, const char **rest)
{
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t) (slash - p) : strlen(p);

    if (n == 0 || n >= cap) {
        return -1;
    }
    memcpy(ref, p, n);
    ref[n] = '\0';
    *rest = slash ? slash : "";
    return 0;
}

typedef struct {
    int rows;
    int64_t last_expires; /* the last row's (expires_at, id): the page's end */
    char last_id[COORD_ID_MAX + 1];
} expire_scan_t;

static void expire_cb(const store_lease_t *l, void *arg)
{
    expire_scan_t *scan = arg;
    int mark = l->state == LEASE_ACTIVE;

    scan->rows++;
    scan->last_expires = l->expires_at;
    snprintf(scan->last_id, sizeof(scan->last_id), "%s", l->id);
    if (mark && store_lease_set_state(l->id, LEASE_EXPIRED) < 0) {
        return;
    }
    /* Already expired by another instance on the database: close ours too. */
    lease_teardown(l->id, EGRESS_CLOSE_LEASE_GONE, "egress_lease_gone");
    if (mark) {
        coord_log("lease_expired", "lease=%s", l->id);
    }
}

/*
 * Where the next expiry scan starts, in (expires_at, id) order: leases
 * another instance marked expired after it may still have sockets here.
 * tick_since_id empty means after the whole second tick_since (the previous
 * scan covered up to its "now"); a page that came back full leaves the last
 * row it saw. It starts when the server does (lease_tick_start), not at the
 * first tick: sockets may open, and another instance may expire their
 * lease, before the timer first fires (or while this process is frozen
 * before it does).
 */
static int64_t tick_since = -1;
static char tick_since_id[COORD_ID_MAX + 1];

void lease_tick_start(void)
{
    tick_since = coord_now();
}

void lease_tick(void)
{
    static int64_t last_purge;
    expire_scan_t scan = {0, 0, ""};
    int64_t now = coord_now();

    if (tick_since < 0) {
        tick_since = now;
    }
    if (store_lease_due(tick_since, tick_since_id, now, expire_cb, &scan) == 0) {
        if (scan.rows < STORE_DUE_MAX) {
            tick_since = now;
            tick_since_id[0] = '\0';
        } else {
            tick_since = scan.last_expires;
            memcpy(tick_since_id, scan.last_id, sizeof(tick_since_id));
        }
    }
    if (now - last_purge >= 60) {
        last_purge = now;
        store_ticket_purge(now - 3600);
        store_portal_purge(now);
    }
    ratelimit_tick();
}
