/*
 * test_owner_counters.c: the live counters an instance publishes with its
 * heartbeat: packed, parsed back (strictly: they come from another
 * process), and put into a status document.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "owner_counters.h"

static owner_counters_t sample(void)
{
    owner_counters_t c;

    memset(&c, 0, sizeof(c));
    strcpy(c.session_id, "egress_1.3.abc.def");
    c.connected[0] = 1;
    c.since[0] = 1764720000;
    c.since[1] = 1764720005;
    c.version[0] = 2;
    c.streams = 3;
    c.bytes_up = 72;
    c.bytes_down = 5000000000ULL;
    return c;
}

static int parse(const char *s, owner_counters_t *c)
{
    return owner_counters_parse(s, strlen(s), c);
}

static void test_round_trip(void **state)
{
    owner_counters_t c = sample(), back;
    json_t *j = owner_counters_pack(&c);
    char *text = json_dumps(j, JSON_COMPACT);

    (void) state;
    assert_non_null(text);
    assert_string_equal(text, "{\"sid\":\"egress_1.3.abc.def\",\"hc\":true,\"cc\":false,"
                              "\"hs\":1764720000,\"cs\":1764720005,\"hv\":2,\"cv\":0,\"st\":3,"
                              "\"up\":72,\"dn\":5000000000}");
    assert_int_equal(parse(text, &back), 0);
    assert_memory_equal(&c, &back, sizeof(c));
    free(text);
    json_decref(j);
}

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "[]",
        "null",
        "{}",
        /* a member missing, of the wrong type, out of range, or twice */
        "{\"hc\":true,\"cc\":false,\"hs\":0,\"cs\":0,\"hv\":0,\"cv\":0,\"st\":0,\"up\":0,"
        "\"dn\":0}",
        "{\"sid\":\"\",\"hc\":true,\"cc\":false,\"hs\":0,\"cs\":0,\"hv\":0,\"cv\":0,\"st\":0,"
        "\"up\":0,\"dn\":0}",
        "{\"sid\":\"s\",\"hc\":1,\"cc\":false,\"hs\":0,\"cs\":0,\"hv\":0,\"cv\":0,\"st\":0,"
        "\"up\":0,\"dn\":0}",
        "{\"sid\":\"s\",\"hc\":true,\"cc\":false,\"hs\":0,\"cs\":0,\"hv\":3,\"cv\":0,\"st\":0,"
        "\"up\":0,\"dn\":0}",
        "{\"sid\":\"s\",\"hc\":true,\"cc\":false,\"hs\":0,\"cs\":0,\"hv\":0,\"cv\":0,\"st\":-1,"
        "\"up\":0,\"dn\":0}",
        "{\"sid\":\"s\",\"hc\":true,\"cc\":false,\"hs\":0,\"cs\":0,\"hv\":0,\"cv\":0,\"st\":0,"
        "\"up\":0.5,\"dn\":0}",
        "{\"sid\":\"s\",\"hc\":true,\"cc\":false,\"hs\":0,\"cs\":0,\"hv\":0,\"cv\":0,\"st\":0,"
        "\"up\":0}",
        "{\"sid\":\"s\",\"sid\":\"t\",\"hc\":true,\"cc\":false,\"hs\":0,\"cs\":0,\"hv\":0,"
        "\"cv\":0,\"st\":0,\"up\":0,\"dn\":0}",
        "{\"sid\":\"s\\u0000t\",\"hc\":true,\"cc\":false,\"hs\":0,\"cs\":0,\"hv\":0,\"cv\":0,"
        "\"st\":0,\"up\":0,\"dn\":0}",
    };
    owner_counters_t c;
    char big[400];
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c.streams = 7;
        assert_int_equal(parse(bad[i], &c), -1);
        assert_int_equal(c.streams, 0); /* cleared on failure */
    }
    /* a session id longer than ours */
    memset(big, 'a', sizeof(big));
    memcpy(big, "{\"sid\":\"", 8);
    strcpy(big + 8 + COORD_SESSION_MAX, "\",\"hc\":true,\"cc\":true,\"hs\":0,\"cs\":0,\"hv\":0,"
                                        "\"cv\":0,\"st\":0,\"up\":0,\"dn\":0}");
    assert_int_equal(parse(big, &c), -1);
}

static void test_status(void **state)
{
    owner_counters_t c = sample();
    json_t *doc = json_pack("{s:s, s:n, s:n}", "leaseID", "L", "hostConnected", "protocol");
    char *text;

    (void) state;
    assert_int_equal(owner_counters_status(doc, &c), 0);
    text = json_dumps(doc, JSON_COMPACT);
    /* members already there keep their place */
    assert_string_equal(text,
                        "{\"leaseID\":\"L\",\"hostConnected\":true,\"protocol\":{\"host\":"
                        "\"egress.v2\",\"client\":null},\"clientConnected\":false,"
                        "\"hostSince\":\"2025-12-03T00:00:00Z\",\"clientSince\":"
                        "\"2025-12-03T00:00:05Z\",\"streams\":3,\"bytesUp\":72,"
                        "\"bytesDown\":5000000000}");
    free(text);
    assert_int_equal(owner_counters_status(doc, NULL), 0);
    text = json_dumps(doc, JSON_COMPACT);
    assert_string_equal(text,
                        "{\"leaseID\":\"L\",\"hostConnected\":false,\"protocol\":{\"host\":"
                        "null,\"client\":null},\"clientConnected\":false,\"hostSince\":"
                        "null,\"clientSince\":null,\"streams\":0,\"bytesUp\":0,"
                        "\"bytesDown\":0}");
    free(text);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_status),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
