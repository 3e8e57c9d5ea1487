/*
 * owner_counters.c: the live counters of a lease, packed for the heartbeat,
 * parsed back, and put into a status document (owner_counters.h).
 */

#include <string.h>

#include "egress_frame.h"
#include "owner_counters.h"

json_t *owner_counters_pack(const owner_counters_t *c)
{
    return json_pack("{s:s, s:b, s:b, s:I, s:I, s:i, s:i, s:I, s:I, s:I}", "sid", c->session_id,
                     "hc", c->connected[0], "cc", c->connected[1], "hs",
                     (json_int_t) c->since[0], "cs", (json_int_t) c->since[1], "hv",
                     c->version[0], "cv", c->version[1], "st", (json_int_t) c->streams, "up",
                     (json_int_t) c->bytes_up, "dn", (json_int_t) c->bytes_down);
}

/* A non-negative integer member: 0, or -1. */
static int get_count(const json_t *o, const char *key, json_int_t max, json_int_t *out)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

int owner_counters_parse(const char *text, size_t len, owner_counters_t *out)
{
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    const json_t *sid;
    json_int_t v[8];
    static const char *const counts[8] = {"hs", "cs", "hv", "cv", "st", "up", "dn", NULL};
    size_t i;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(o)) {
        goto done;
    }
    sid = json_object_get(o, "sid");
    if (!json_is_string(sid) || json_string_length(sid) == 0 ||
        json_string_length(sid) >= sizeof(out->session_id) ||
        strlen(json_string_value(sid)) != json_string_length(sid) ||
        !json_is_boolean(json_object_get(o, "hc")) ||
        !json_is_boolean(json_object_get(o, "cc"))) {
        goto done;
    }
    for (i = 0; counts[i] != NULL; i++) {
        if (get_count(o, counts[i],
                      (i == 2 || i == 3) ? EGRESS_PROTO_V2 : (json_int_t) INT64_MAX,
                      &v[i]) < 0) {
            goto done;
        }
    }
    memcpy(out->session_id, json_string_value(sid), json_string_length(sid) + 1);
    out->connected[0] = json_is_true(json_object_get(o, "hc"));
    out->connected[1] = json_is_true(json_object_get(o, "cc"));
    out->since[0] = v[0];
    out->since[1] = v[1];
    out->version[0] = (int) v[2];
    out->version[1] = (int) v[3];
    out->streams = (uint64_t) v[4];
    out->bytes_up = (uint64_t) v[5];
    out->bytes_down = (uint64_t) v[6];
    rc = 0;
done:
    json_decref(o);
    if (rc < 0) {
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

static json_t *since_json(const owner_counters_t *c, int role)
{
    char ts[32];

    if (c == NULL || c->since[role] == 0) {
        return json_null();
    }
    coord_time_format(ts, sizeof(ts), c->since[role]);
    return json_string(ts);
}

static json_t *proto_json(const owner_counters_t *c, int role)
{
    if (c == NULL || !c->connected[role] || c->version[role] == 0) {
        return json_null();
    }
    return json_string(c->version[role] == EGRESS_PROTO_V2 ? EGRESS_SUBPROTO_V2
                                                           : EGRESS_SUBPROTO_V1);
}

int owner_counters_status(json_t *doc, const owner_counters_t *c)
{
    json_t *proto =
        json_pack("{s:o, s:o}", "host", proto_json(c, 0), "client", proto_json(c, 1));

    if (proto == NULL ||
        json_object_set_new(doc, "hostConnected", json_boolean(c && c->connected[0])) < 0 ||
        json_object_set_new(doc, "clientConnected", json_boolean(c && c->connected[1])) < 0 ||
        json_object_set_new(doc, "hostSince", since_json(c, 0)) < 0 ||
        json_object_set_new(doc, "clientSince", since_json(c, 1)) < 0 ||
        json_object_set_new(doc, "protocol", proto) < 0 ||
        json_object_set_new(doc, "streams", json_integer((json_int_t) (c ? c->streams : 0))) <
            0 ||
        json_object_set_new(doc, "bytesUp", json_integer((json_int_t) (c ? c->bytes_up : 0))) <
            0 ||
        json_object_set_new(doc, "bytesDown",
                            json_integer((json_int_t) (c ? c->bytes_down : 0))) < 0) {
        return -1;
    }
    return 0;
}
