/*
 * destinations.c: the bounded per-session destination table (destinations.h).
 */

#include <stdlib.h>
#include <string.h>

#include "destinations.h"

static char dest_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

/* a (stored, NUL-terminated, lower case) equals host[0..len) ignoring case. */
static int dest_host_eq(const char *a, const char *host, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (a[i] == '\0' || a[i] != dest_lower(host[i])) {
            return 0;
        }
    }
    return a[len] == '\0';
}

dest_ref_t dest_open(dest_table_t *t, const char *host, size_t len, uint16_t port, int64_t now)
{
    dest_ref_t ref = {0, 0};
    dest_t *d = NULL, *victim = NULL;
    size_t i;

    if (len > 0 && host[len - 1] == '.') {
        len--;
    }
    /* the frame decoder already checked the host; a NUL would empty the slot */
    if (len == 0 || len >= DEST_HOST_MAX || memchr(host, '\0', len) != NULL) {
        return ref;
    }
    for (i = 0; i < DEST_MAX; i++) {
        dest_t *e = &t->d[i];

        if (e->host[0] == '\0') {
            if (victim == NULL || victim->host[0] != '\0') {
                victim = e; /* a free slot beats any eviction */
            }
            continue;
        }
        if (e->port == port && dest_host_eq(e->host, host, len)) {
            d = e;
            break;
        }
        if (victim == NULL || (victim->host[0] != '\0' && e->seq < victim->seq)) {
            victim = e;
        }
    }
    if (d == NULL) {
        uint32_t gen;

        d = victim;
        if (d->host[0] != '\0') {
            t->evicted++;
        } else {
            t->n++;
        }
        gen = d->gen + 1 == 0 ? 1 : d->gen + 1;
        memset(d, 0, sizeof(*d));
        d->gen = gen;
        for (i = 0; i < len; i++) {
            d->host[i] = dest_lower(host[i]);
        }
        d->host[len] = '\0';
        d->port = port;
        d->first_seen = now;
    }
    d->opens++;
    d->last_seen = now;
    d->seq = ++t->seq;
    ref.idx = (uint32_t) (d - t->d);
    ref.gen = d->gen;
    return ref;
}

dest_t *dest_get(dest_table_t *t, dest_ref_t ref)
{
    dest_t *d;

    if (ref.gen == 0 || ref.idx >= DEST_MAX) {
        return NULL;
    }
    d = &t->d[ref.idx];
    return d->gen == ref.gen && d->host[0] != '\0' ? d : NULL;
}

void dest_opened(dest_table_t *t, dest_ref_t ref, int64_t now)
{
    dest_t *d = dest_get(t, ref);

    if (d != NULL) {
        d->opened++;
        d->last_seen = now;
        d->last_opened = now;
        d->refused_latest = 0;
        d->seq = ++t->seq;
    }
}

void dest_refused(dest_table_t *t, dest_ref_t ref, dest_reason_e why, int64_t now)
{
    dest_t *d = dest_get(t, ref);

    if (d != NULL) {
        d->refused++;
        d->reason = why;
        d->last_seen = now;
        d->last_refused = now;
        d->refused_latest = 1;
        d->seq = ++t->seq;
    }
}

void dest_bytes(dest_table_t *t, dest_ref_t ref, int up, uint64_t n, int64_t now)
{
    dest_t *d = dest_get(t, ref);

    if (d != NULL) {
        if (up) {
            d->bytes_up += n;
        } else {
            d->bytes_down += n;
        }
        d->last_seen = now;
        d->seq = ++t->seq;
    }
}

static int dest_has(const char *msg, size_t len, const char *needle)
{
    size_t n = strlen(needle), i;

    for (i = 0; i + n <= len; i++) {
        if (memcmp(msg + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static int dest_starts(const char *msg, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    return len >= n && memcmp(msg, prefix, n) == 0;
}

dest_reason_e dest_classify(const char *msg, size_t len)
{
    /* The host agent's texts (protocol.md); a port refusal says so in brackets. */
    if (msg == NULL) {
        return DEST_REASON_OTHER;
    }
    if (dest_starts(msg, len, "not allowed:")) {
        if (dest_has(msg, len, "private address")) {
            return DEST_REASON_PRIVATE;
        }
        if (dest_has(msg, len, "(port ")) {
            return DEST_REASON_PORT;
        }
        return DEST_REASON_ALLOWLIST;
    }
    if (dest_starts(msg, len, "DNS lookup failed")) {
        return DEST_REASON_DNS;
    }
    if (dest_starts(msg, len, "connection to ") && dest_has(msg, len, "timed out")) {
        return DEST_REASON_TIMEOUT;
    }
    if (dest_starts(msg, len, "connection refused")) {
        return DEST_REASON_REFUSED;
    }
    if (dest_starts(msg, len, "network unreachable")) {
        return DEST_REASON_UNREACHABLE;
    }
    if (dest_starts(msg, len, "host agent not connected")) {
        return DEST_REASON_NO_HOST;
    }
    return DEST_REASON_OTHER;
}

static const char *const dest_names[] = {
    "",        "not_allowed", "port",        "private_address", "dns_failed",
    "timeout", "refused",     "unreachable", "no_host_agent",   "other",
};

static const char *const dest_texts[] = {
    "",
    "not on the allowlist",
    "port not allowed for this host",
    "private address",
    "DNS lookup failed",
    "connect timed out",
    "connection refused by the destination",
    "network unreachable",
    "host agent not connected",
    "other error",
};

const char *dest_reason_name(dest_reason_e r)
{
    return (unsigned) r < sizeof(dest_names) / sizeof(dest_names[0]) ? dest_names[r] : "other";
}

const char *dest_reason_text(dest_reason_e r)
{
    return (unsigned) r < sizeof(dest_texts) / sizeof(dest_texts[0]) ? dest_texts[r]
                                                                     : "other error";
}

int dest_reason_allowable(dest_reason_e r)
{
    return r == DEST_REASON_ALLOWLIST || r == DEST_REASON_PORT;
}

int dest_is_refused(const dest_t *d)
{
    return d->refused_latest;
}

static int dest_cmp_recent(const void *a, const void *b)
{
    const dest_t *x = *(const dest_t *const *) a, *y = *(const dest_t *const *) b;

    return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
}

size_t dest_sorted(const dest_table_t *t, const dest_t **out)
{
    size_t i, n = 0;

    for (i = 0; i < DEST_MAX; i++) {
        if (t->d[i].host[0] != '\0') {
            out[n++] = &t->d[i];
        }
    }
    qsort(out, n, sizeof(*out), dest_cmp_recent);
    return n;
}
