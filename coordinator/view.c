/*
 * view.c: destinations, refusals and the traffic ring as status JSON.
 */

#include <stdio.h>
#include <string.h>

#include "coord.h"
#include "view.h"

void view_allow_pattern(char *out, size_t cap, const dest_t *d)
{
    int v6 = strchr(d->host, ':') != NULL;

    if (d->reason == DEST_REASON_PORT || (d->port != 80 && d->port != 443)) {
        snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", d->host, (unsigned) d->port);
    } else {
        snprintf(out, cap, v6 ? "[%s]" : "%s", d->host);
    }
}

static json_t *view_time(int64_t t)
{
    char ts[32];

    if (t == 0) {
        return json_null();
    }
    coord_time_format(ts, sizeof(ts), t);
    return json_string(ts);
}

static json_t *view_destination(const dest_t *d)
{
    return json_pack("{s:s, s:i, s:I, s:I, s:I, s:o, s:I, s:I, s:o, s:o}", "host", d->host,
                     "port", (int) d->port, "opens", (json_int_t) d->opens, "opened",
                     (json_int_t) d->opened, "refused", (json_int_t) d->refused, "reason",
                     d->refused ? json_string(dest_reason_name(d->reason)) : json_null(),
                     "bytesUp", (json_int_t) d->bytes_up, "bytesDown",
                     (json_int_t) d->bytes_down, "firstSeen", view_time(d->first_seen),
                     "lastSeen", view_time(d->last_seen));
}

static json_t *view_refusal(const char *lease_id, const dest_t *d)
{
    char pattern[DEST_HOST_MAX + 16], cmd[DEST_HOST_MAX + 128];
    json_t *command = json_null();

    if (dest_reason_allowable(d->reason)) {
        view_allow_pattern(pattern, sizeof(pattern), d);
        snprintf(cmd, sizeof(cmd), "egress allow --id %s add %s", lease_id, pattern);
        command = json_string(cmd);
    }
    return json_pack("{s:s, s:i, s:I, s:s, s:s, s:o, s:o}", "host", d->host, "port",
                     (int) d->port, "count", (json_int_t) d->refused, "reason",
                     dest_reason_name(d->reason), "reasonText", dest_reason_text(d->reason),
                     "lastRefused", view_time(d->last_refused), "allowCommand", command);
}

static json_t *view_traffic(session_t *live, int64_t now)
{
    static traffic_sample_t samples[TRAFFIC_SECONDS];
    json_t *up = json_array(), *down = json_array(), *streams = json_array();
    size_t i;

    /* whole seconds only: the one under way is not over */
    if (live != NULL) {
        traffic_advance(&live->traffic, now, (uint32_t) live->nstreams);
        traffic_read(&live->traffic, now - 1, TRAFFIC_SECONDS, samples);
    } else {
        memset(samples, 0, sizeof(samples));
    }
    for (i = 0; i < TRAFFIC_SECONDS && up && down && streams; i++) {
        json_array_append_new(up, json_integer((json_int_t) samples[i].up));
        json_array_append_new(down, json_integer((json_int_t) samples[i].down));
        json_array_append_new(streams, json_integer((json_int_t) samples[i].streams));
    }
    return json_pack("{s:i, s:o, s:I, s:o, s:o, s:o}", "interval", 1, "end", view_time(now - 1),
                     "endUnix", (json_int_t) (now - 1), "up", up, "down", down, "streams",
                     streams);
}

int view_status_add(json_t *doc, const char *lease_id, session_t *live, int64_t now)
{
    const dest_t *sorted[DEST_MAX];
    json_t *dests = json_array(), *refused = json_array(), *traffic;
    size_t i, n = live ? dest_sorted(&live->dests, sorted) : 0;

    for (i = 0; i < n && dests && refused; i++) {
        json_array_append_new(dests, view_destination(sorted[i]));
        if (dest_is_refused(sorted[i])) {
            json_array_append_new(refused, view_refusal(lease_id, sorted[i]));
        }
    }
    traffic = view_traffic(live, now);
    if (dests == NULL || refused == NULL || traffic == NULL) {
        json_decref(dests);
        json_decref(refused);
        json_decref(traffic);
        return -1;
    }
    json_object_set_new(doc, "destinations", dests);
    json_object_set_new(doc, "destinationsEvicted",
                        json_integer((json_int_t) (live ? live->dests.evicted : 0)));
    json_object_set_new(doc, "refused", refused);
    json_object_set_new(doc, "traffic", traffic);
    return 0;
}
