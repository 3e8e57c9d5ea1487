/*
 * owner.c: the ownership policy of owner.h on the lws loop; the statements
 * are in owner_pg.c.
 *
 * Timers: the heartbeat is sent every second (a third of --owner-lapse when
 * that is shorter) without waiting for its answer, and every 100 ms the
 * connection's socket is read without blocking for that answer and for
 * notifications. A notification "INSTANCE EPOCH LEASE VERSION" naming this
 * instance and epoch drops the record (if unchanged since the asker saw
 * it) and closes the lease's sockets with 1013 in the same step (transient:
 * the agents come back through the front, to the instance asking).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress.h"
#include "lease.h"
#include "owner.h"
#include "owner_counters.h"
#include "owner_notify.h"
#include "owner_pg.h"
#include "session.h"
#include "store.h"

#define OWNER_POLL_MS  100
#define OWNER_BEAT_MS  1000
#define OWNER_PURGE_MS 60000
#define OWNER_MOVED    "egress_lease_moved"

static struct lws_context *ctx;
static lws_sorted_usec_list_t poll_sul, beat_sul;
static int enabled, fenced, truncated_logged;
static int64_t epoch, last_purge;

/*
 * Asked to let go: the record goes first, and only if it is still the one
 * the asker saw (a socket admitted here since then claimed it again, and
 * the asker will ask again if it still wants it); then the sockets close
 * (1013). Nothing is relayed between the two: both happen in this one
 * callback on the only thread, before any other instance can have an
 * agent's upgrade through, so the lease is never relayed by two.
 */
static void on_notify(const char *payload, void *arg)
{
    owner_notify_t n;

    (void) arg;
    if (owner_notify_parse(payload, strlen(payload), &n) < 0 ||
        strcmp(n.instance, coord_cfg.instance) != 0 || n.epoch != epoch) {
        return; /* for another instance, or an older epoch of ours */
    }
    if (owner_pg_release(n.lease, coord_cfg.instance, epoch, n.version) == 0) {
        coord_log("owner_kept", "lease=%s instance=%s why=claimed_since_asked", n.lease,
                  coord_cfg.instance);
        return;
    }
    /* Released, or the database failed: the sockets close either way (the
     * asker then claims after our lapse, or asks again). */
    session_end(n.lease, EGRESS_CLOSE_TRY_AGAIN, OWNER_MOVED);
    coord_log("owner_released", "lease=%s instance=%s epoch=%" PRId64 " why=asked", n.lease,
              coord_cfg.instance, epoch);
}

/* ---- reconcile: after a lapse or a lost connection --------------------- */

typedef struct {
    char (*ids)[COORD_ID_MAX + 1];
    size_t n;
} owned_t;

static void mine_cb(const char *lease, void *arg)
{
    owned_t *o = arg;
    size_t i;

    for (i = 0; i < o->n; i++) {
        if (strcmp(o->ids[i], lease) == 0) {
            o->ids[i][0] = '\0'; /* still ours */
        }
    }
}

/*
 * Another instance may have taken leases while our heartbeat was late, and
 * notifications sent while the connection was down are lost: every live
 * session whose lease is no longer recorded as ours is closed.
 */
static void owner_reconcile(const char *why)
{
    owned_t o;
    session_t *s;
    size_t i = 0;

    o.n = 0;
    for (s = session_list(); s != NULL; s = s->next) {
        o.n++;
    }
    if (o.n == 0) {
        return;
    }
    o.ids = calloc(o.n, sizeof(*o.ids));
    if (o.ids == NULL) {
        return;
    }
    for (s = session_list(); s != NULL && i < o.n; s = s->next) {
        snprintf(o.ids[i++], sizeof(o.ids[0]), "%s", s->lease_id);
    }
    if (owner_pg_mine(coord_cfg.instance, epoch, mine_cb, &o) == 0) {
        for (i = 0; i < o.n; i++) {
            if (o.ids[i][0] != '\0') {
                session_end(o.ids[i], EGRESS_CLOSE_TRY_AGAIN, OWNER_MOVED);
                coord_log("owner_lost", "lease=%s instance=%s why=%s", o.ids[i],
                          coord_cfg.instance, why);
            }
        }
    }
    free(o.ids);
}

/* Our epoch is gone: another process registered our name. It owns what we
 * thought ours; every socket here is closed and nothing is admitted. */
static void owner_fence(void)
{
    session_t *s;

    fenced = 1;
    coord_log("owner_fenced",
              "instance=%s epoch=%" PRId64
              " error=\"another process started with this --instance name\"",
              coord_cfg.instance, epoch);
    while ((s = session_list()) != NULL) {
        session_end(s->lease_id, EGRESS_CLOSE_TRY_AGAIN, OWNER_MOVED);
    }
}

/* ---- timers ------------------------------------------------------------ */

static void poll_tick(lws_sorted_usec_list_t *sul)
{
    int reconnected = 0;
    owner_hb_e hb;

    (void) sul;
    hb = owner_pg_poll(on_notify, NULL, &reconnected);
    if (hb == OWNER_HB_FENCED && !fenced) {
        owner_fence();
    } else if (!fenced && (hb == OWNER_HB_LAPSED || reconnected)) {
        owner_reconcile(reconnected ? "reconnected" : "heartbeat_lapsed");
    }
    lws_sul_schedule(ctx, 0, &poll_sul, poll_tick, OWNER_POLL_MS * LWS_US_PER_MS);
}

static int beat_interval_ms(void)
{
    int third = coord_cfg.owner_lapse_ms / 3;

    return third < OWNER_BEAT_MS ? third : OWNER_BEAT_MS;
}

/*
 * The live counters of every lease relayed here, for the heartbeat:
 * {"truncated": bool, "leases": {LEASE: owner_counters_pack(), ...}}, at
 * most OWNER_COUNTERS_MAX leases (then truncated is true). NULL when out
 * of memory (the heartbeat then says nothing about counters).
 */
static char *relays_json(void)
{
    owner_counters_t c;
    session_t *s;
    json_t *doc, *leases = json_object(), *one;
    size_t n = 0;
    int truncated = 0;
    char *text;

    for (s = session_list(); s != NULL && leases != NULL; s = s->next) {
        if (n == OWNER_COUNTERS_MAX) {
            truncated = 1;
            break;
        }
        lease_counters_here(s, &c);
        one = owner_counters_pack(&c);
        if (one == NULL || json_object_set_new(leases, s->lease_id, one) < 0) {
            json_decref(leases);
            return NULL;
        }
        n++;
    }
    doc = json_pack("{s:b, s:o}", "truncated", truncated, "leases", leases);
    if (doc == NULL) {
        return NULL;
    }
    if (truncated && !truncated_logged) {
        truncated_logged = 1;
        coord_log("owner_counters_truncated", "instance=%s published=%d", coord_cfg.instance,
                  OWNER_COUNTERS_MAX);
    }
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static void beat_tick(lws_sorted_usec_list_t *sul)
{
    int64_t now = coord_mono_ms();
    char *relays;

    (void) sul;
    if (!fenced) {
        relays = relays_json();
        owner_pg_heartbeat_send(coord_cfg.instance, epoch, coord_cfg.owner_lapse_ms, relays);
        free(relays);
        if (now - last_purge >= OWNER_PURGE_MS) {
            last_purge = now;
            owner_pg_purge();
        }
    }
    lws_sul_schedule(ctx, 0, &beat_sul, beat_tick, beat_interval_ms() * LWS_US_PER_MS);
}

int owner_start(struct lws_context *context)
{
    if (coord_cfg.db_path == NULL || !store_is_postgres(coord_cfg.db_path)) {
        return 0; /* SQLite: one instance, which owns everything */
    }
    if (owner_pg_open(coord_cfg.db_path) < 0 ||
        owner_pg_register(coord_cfg.instance, &epoch) < 0) {
        owner_pg_close();
        return -1;
    }
    ctx = context;
    enabled = 1;
    last_purge = coord_mono_ms();
    coord_log("owner_registered", "instance=%s epoch=%" PRId64 " lapse_ms=%d",
              coord_cfg.instance, epoch, coord_cfg.owner_lapse_ms);
    lws_sul_schedule(ctx, 0, &beat_sul, beat_tick, beat_interval_ms() * LWS_US_PER_MS);
    lws_sul_schedule(ctx, 0, &poll_sul, poll_tick, OWNER_POLL_MS * LWS_US_PER_MS);
    return 0;
}

void owner_stop(void)
{
    if (!enabled) {
        return;
    }
    lws_sul_cancel(&beat_sul);
    lws_sul_cancel(&poll_sul);
    /* The loop has stopped: nothing relays here any more, so the leases
     * can go to others now instead of after a heartbeat lapse. */
    if (!fenced) {
        owner_pg_release_all(coord_cfg.instance, epoch);
    }
    owner_pg_close();
    enabled = 0;
}

/* ---- admission --------------------------------------------------------- */

owner_verdict_e owner_admit(const char *lease_id, const char *role, const char *hash,
                            int via_resume, char *owner, size_t cap)
{
    int n, tries;

    snprintf(owner, cap, "-");
    if (!enabled) {
        return OWNER_ADMIT;
    }
    if (fenced) {
        snprintf(owner, cap, "(this instance is fenced)");
        return OWNER_ELSEWHERE;
    }
    for (tries = 0; tries < 2; tries++) {
        n = owner_pg_claim(lease_id, coord_cfg.instance, epoch, coord_cfg.owner_lapse_ms);
        if (n < 0) {
            return OWNER_ERROR;
        }
        if (n == 0) {
            if (session_find(lease_id) == NULL) {
                coord_log("owner_claimed", "lease=%s instance=%s epoch=%" PRId64, lease_id,
                          coord_cfg.instance, epoch);
            }
            return OWNER_ADMIT;
        }
        /* Only a caller holding a live credential makes the owner let go. */
        if (tries == 0) {
            n = owner_pg_credential_ok(lease_id, role, hash, via_resume, coord_now());
            if (n < 0) {
                return OWNER_ERROR;
            }
            if (n == 0) {
                return OWNER_BAD_CREDENTIAL;
            }
        }
        n = owner_pg_ask_release(lease_id, owner, cap);
        if (n < 0) {
            return OWNER_ERROR;
        }
        if (n == 0) {
            coord_log("owner_elsewhere", "lease=%s owner=%s role=%s", lease_id, owner, role);
            return OWNER_ELSEWHERE;
        }
        /* released between the claim and the question: claim again */
    }
    return OWNER_ELSEWHERE;
}

/* ---- status ------------------------------------------------------------ */

/*
 * The live members of a status answered by an instance that does not
 * relay the lease: the owner's, from its last heartbeat, when it is live
 * and published them; else false and zero. 1 when the owner's are known
 * (a lease missing from a complete list means it has no socket of it;
 * entries of an older session of the lease say nothing of this one), 0
 * when not, -1 out of memory.
 */
static int status_from_owner(json_t *doc, const owner_pg_record_t *rec, const char *session_id)
{
    owner_counters_t c;
    const owner_counters_t *use = NULL;
    int known = 0;

    if (rec->published && rec->counters[0] == '\0') {
        known = !rec->truncated;
    } else if (rec->published &&
               owner_counters_parse(rec->counters, strlen(rec->counters), &c) == 0) {
        known = 1;
        use = strcmp(c.session_id, session_id) == 0 ? &c : NULL;
    }
    return owner_counters_status(doc, use) < 0 ? -1 : known;
}

/*
 * "relay" says which instance relays the lease and where the live members
 * come from ("counters"): "here" (this instance's own), "owner" (the live
 * owner's, from its last heartbeat, countersAt / countersAgeMs old) or
 * "none" (no live owner, or it did not publish this lease: nothing live
 * is known, the members say false and zero).
 */
int owner_status_add(json_t *doc, const char *lease_id, const char *session_id)
{
    owner_pg_record_t rec;
    const char *from = "here";
    int n, here, known = 0;
    json_t *relay;

    if (!enabled) {
        relay = json_pack("{s:s?, s:b, s:b, s:s}", "instance", coord_cfg.instance, "live", 1,
                          "here", 1, "counters", from);
    } else {
        n = owner_pg_lookup(lease_id, coord_cfg.owner_lapse_ms, &rec);
        if (n < 0) {
            return -1;
        }
        here = n == 0 && strcmp(rec.instance, coord_cfg.instance) == 0 && rec.epoch == epoch;
        if (!here) {
            known = status_from_owner(doc, &rec, session_id);
            if (known < 0) {
                return -1;
            }
            from = known ? "owner" : "none";
        }
        relay = n == 1 ? json_pack("{s:n, s:b, s:b, s:s}", "instance", "live", 0, "here", 0,
                                   "counters", from)
                       : json_pack("{s:s, s:I, s:b, s:b, s:s}", "instance", rec.instance,
                                   "epoch", (json_int_t) rec.epoch, "live", rec.live, "here",
                                   here, "counters", from);
        if (relay != NULL && known) {
            json_object_set_new(relay, "countersAt", json_string(rec.at));
            json_object_set_new(relay, "countersAgeMs", json_integer((json_int_t) rec.age_ms));
        }
    }
    if (relay == NULL) {
        return -1;
    }
    json_object_set_new(doc, "relay", relay);
    return 0;
}
