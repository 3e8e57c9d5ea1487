/*
 * test_view.c: the destination table (bounded, LRU eviction, refusal
 * classes) and the traffic ring (one sample per second, fixed memory).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "destinations.h"
#include "traffic.h"

static dest_table_t *table_new(void)
{
    dest_table_t *t = calloc(1, sizeof(*t));

    assert_non_null(t);
    return t;
}

static void test_counts(void **state)
{
    dest_table_t *t = table_new();
    dest_ref_t a, b, c;
    const dest_t *out[DEST_MAX];

    (void) state;
    a = dest_open(t, "Example.COM.", 12, 443, 100);
    dest_opened(t, a, 100);
    dest_bytes(t, a, 1, 10, 101);
    dest_bytes(t, a, 0, 2000, 101);
    b = dest_open(t, "example.com", 11, 443, 102);
    assert_int_equal(a.idx, b.idx);
    assert_int_equal(a.gen, b.gen);
    c = dest_open(t, "evil.example", 12, 443, 103);
    dest_refused(
        t, c, dest_classify("not allowed: evil.example:443 is not on the allowlist", 52), 103);
    assert_int_equal(t->n, 2);
    assert_int_equal(dest_sorted(t, out), 2);
    assert_string_equal(out[0]->host, "evil.example");
    assert_int_equal(out[0]->refused, 1);
    assert_int_equal(out[0]->reason, DEST_REASON_ALLOWLIST);
    assert_true(dest_is_refused(out[0]));
    assert_string_equal(out[1]->host, "example.com");
    assert_int_equal(out[1]->opens, 2);
    assert_int_equal(out[1]->opened, 1);
    assert_int_equal(out[1]->bytes_up, 10);
    assert_int_equal(out[1]->bytes_down, 2000);
    assert_false(dest_is_refused(out[1]));
    /* allowed later: no longer listed as refused */
    c = dest_open(t, "evil.example", 12, 443, 110);
    dest_opened(t, c, 110);
    assert_false(dest_is_refused(dest_get(t, c)));
    /* other port, other destination */
    c = dest_open(t, "example.com", 11, 8443, 111);
    assert_int_not_equal(c.idx, a.idx);
    /* bad input: empty or too long hosts are not recorded */
    c = dest_open(t, "", 0, 443, 111);
    assert_int_equal(c.gen, 0);
    assert_null(dest_get(t, c));
    dest_bytes(t, c, 1, 5, 111); /* harmless */
    free(t);
}

static void test_bounded(void **state)
{
    dest_table_t *t = table_new();
    dest_ref_t first, keep, r;
    const dest_t *out[DEST_MAX];
    char host[64];
    int i, n;

    (void) state;
    first = dest_open(t, "first.example", 13, 443, 1);
    keep = dest_open(t, "keep.example", 12, 443, 1);
    for (i = 0; i < 10000; i++) {
        n = snprintf(host, sizeof(host), "h%d.example", i);
        r = dest_open(t, host, (size_t) n, 443, 2 + i);
        dest_refused(t, r, DEST_REASON_ALLOWLIST, 2 + i);
        if (i % 50 == 0) {
            dest_bytes(t, keep, 0, 1, 2 + i); /* in use: never the oldest */
        }
    }
    assert_int_equal(t->n, DEST_MAX);
    assert_int_equal(t->evicted, 10002 - DEST_MAX);
    /* a stream of an evicted destination no longer counts anywhere */
    assert_null(dest_get(t, first));
    dest_bytes(t, first, 1, 99, 20000);
    assert_non_null(dest_get(t, keep));
    n = (int) dest_sorted(t, out);
    assert_int_equal(n, DEST_MAX);
    assert_string_equal(out[0]->host, "h9999.example");
    for (i = 1; i < n; i++) {
        assert_true(out[i - 1]->last_seen >= out[i]->last_seen);
        assert_int_not_equal(out[i]->bytes_up, 99);
    }
    free(t);
}

static void test_classify(void **state)
{
    static const struct {
        const char *msg;
        dest_reason_e r;
    } cases[] = {
        {"not allowed: a.example:443 is not on the allowlist", DEST_REASON_ALLOWLIST},
        {"not allowed: a.example:8443 is not on the allowlist (port 8443 is not allowed for "
         "a.example)",
         DEST_REASON_PORT},
        {"not allowed: 10.0.0.1 is a private address (private)", DEST_REASON_PRIVATE},
        {"DNS lookup failed for a.example: unknown node or service", DEST_REASON_DNS},
        {"DNS lookup failed for a.example: timed out", DEST_REASON_DNS},
        {"connection to a.example:443 timed out", DEST_REASON_TIMEOUT},
        {"connection refused by a.example:443", DEST_REASON_REFUSED},
        {"network unreachable", DEST_REASON_UNREACHABLE},
        {"host agent not connected", DEST_REASON_NO_HOST},
        {"host agent out of memory", DEST_REASON_OTHER},
        {"", DEST_REASON_OTHER},
    };
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(dest_classify(cases[i].msg, strlen(cases[i].msg)), cases[i].r);
    }
    assert_int_equal(dest_classify(NULL, 0), DEST_REASON_OTHER);
    assert_string_equal(dest_reason_name(DEST_REASON_ALLOWLIST), "not_allowed");
    assert_string_equal(dest_reason_name((dest_reason_e) 1000), "other");
    assert_true(dest_reason_allowable(DEST_REASON_PORT));
    assert_false(dest_reason_allowable(DEST_REASON_PRIVATE));
}

static void test_ring(void **state)
{
    static traffic_ring_t r;
    static traffic_sample_t out[TRAFFIC_SECONDS];

    (void) state;
    memset(&r, 0, sizeof(r));
    traffic_read(&r, 1000, 3, out);
    assert_int_equal(out[2].up, 0);
    traffic_add(&r, 1000, 1, 100, 0);
    traffic_add(&r, 1000, 2, 0, 50);
    traffic_add(&r, 1003, 1, 7, 9); /* 1001, 1002 idle with one stream */
    traffic_read(&r, 1004, 5, out);
    assert_int_equal(out[0].up, 100);
    assert_int_equal(out[0].down, 50);
    assert_int_equal(out[0].streams, 2);
    assert_int_equal(out[1].up, 0);
    assert_int_equal(out[1].streams, 1);
    assert_int_equal(out[2].streams, 1);
    assert_int_equal(out[3].up, 7);
    assert_int_equal(out[3].down, 9);
    assert_int_equal(out[4].up, 0); /* after the newest event */
    assert_int_equal(out[4].streams, 1);
    /* a clock going back counts into the newest second */
    traffic_add(&r, 999, 1, 1, 0);
    traffic_read(&r, 1003, 1, out);
    assert_int_equal(out[0].up, 8);
    /* 15 minutes later the old seconds are gone, nothing else */
    traffic_advance(&r, 1003 + TRAFFIC_SECONDS - 1, 0);
    traffic_read(&r, 1003 + TRAFFIC_SECONDS - 1, TRAFFIC_SECONDS, out);
    assert_int_equal(out[0].up, 8);
    traffic_add(&r, 1003 + TRAFFIC_SECONDS, 0, 5, 0);
    traffic_read(&r, 1003 + TRAFFIC_SECONDS, TRAFFIC_SECONDS, out);
    assert_int_equal(out[0].up, 0);
    assert_int_equal(out[TRAFFIC_SECONDS - 1].up, 5);
    /* a long silence resets the ring */
    traffic_add(&r, 100000, 3, 1, 1);
    traffic_read(&r, 100000, TRAFFIC_SECONDS, out);
    assert_int_equal(out[TRAFFIC_SECONDS - 1].streams, 3);
    assert_int_equal(out[TRAFFIC_SECONDS - 2].up, 0);
    assert_int_equal(out[TRAFFIC_SECONDS - 2].streams, 0);
    /* more than the ring asked for is capped */
    traffic_read(&r, 100000, TRAFFIC_SECONDS + 5, out);
    assert_int_equal(out[TRAFFIC_SECONDS - 1].up, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_ring),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
