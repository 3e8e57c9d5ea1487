/*
 * test_ratelimit.c: the token buckets of ratelimit.c, local and global, and
 * the fall back to the local bucket while the database does not answer.
 * The clock, the log and ratelimit_pg.c are fakes.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "coord.h"
#include "ratelimit.h"
#include "ratelimit_pg.h"

static int64_t now_ms = 1000000;
static int pg_on, pg_fail, pg_takes, pg_peeks, pg_purges;
static int pg_take_answer = 1, pg_peek_answer = 1;
static long pg_purge_answer;
static char last_log[64];
static int logs;

int64_t coord_now_ms(void)
{
    return now_ms;
}

int64_t coord_mono_ms(void)
{
    return now_ms;
}

void coord_log(const char *event, const char *fmt, ...)
{
    (void) fmt;
    snprintf(last_log, sizeof(last_log), "%s", event);
    logs++;
}

int ratelimit_pg_enabled(void)
{
    return pg_on;
}

int ratelimit_pg_take(const char *const *keys, size_t n, double rate, double burst)
{
    (void) keys, (void) rate, (void) burst;
    pg_takes++;
    return pg_fail ? -1 : pg_take_answer ? (int) n : 0;
}

int ratelimit_pg_peek(const char *const *keys, size_t n, double rate, double burst)
{
    (void) keys, (void) n, (void) rate, (void) burst;
    pg_peeks++;
    return pg_fail ? -1 : pg_peek_answer;
}

long ratelimit_pg_purge(int max)
{
    (void) max;
    pg_purges++;
    return pg_fail ? -1 : pg_purge_answer;
}

static int setup(void **state)
{
    (void) state;
    now_ms += 3600 * 1000; /* every local bucket of an earlier test is full again */
    pg_on = pg_fail = pg_takes = pg_peeks = pg_purges = logs = 0;
    pg_take_answer = pg_peek_answer = 1;
    pg_purge_answer = 0;
    last_log[0] = '\0';
    return 0;
}

static void test_local_bucket(void **state)
{
    int i;

    (void) state;
    for (i = 0; i < 3; i++) {
        assert_int_equal(ratelimit_take("mint:token:a", 1, 3), 1);
    }
    assert_int_equal(ratelimit_take("mint:token:a", 1, 3), 0);
    assert_int_equal(ratelimit_peek("mint:token:a", 1, 3), 0);
    assert_int_equal(ratelimit_peek("mint:token:b", 1, 3), 1);
    now_ms += 999;
    assert_int_equal(ratelimit_take("mint:token:a", 1, 3), 0);
    now_ms += 1;
    assert_int_equal(ratelimit_take("mint:token:a", 1, 3), 1);
    /* a clock step back refills nothing and takes nothing away */
    now_ms -= 5000;
    assert_int_equal(ratelimit_take("mint:token:a", 1, 3), 0);
    now_ms += 5000;
    assert_int_equal(pg_takes + pg_peeks, 0);
    assert_int_equal(logs, 0);
}

static void test_peek_all_local(void **state)
{
    const char *keys[2] = {"fail:addr:192.0.2.1", "fail:lease:L1"};

    (void) state;
    assert_int_equal(ratelimit_peek_all(keys, 2, 0.5, 1), 1);
    assert_int_equal(ratelimit_take(keys[1], 0.5, 1), 1);
    assert_int_equal(ratelimit_peek_all(keys, 2, 0.5, 1), 0);
    assert_int_equal(ratelimit_peek_all(keys, 1, 0.5, 1), 1);
}

static void test_global(void **state)
{
    const char *keys[2] = {"fail:addr:192.0.2.2", "fail:lease:L2"};

    (void) state;
    pg_on = 1;
    /* the database decides; the local buckets are not drawn on */
    assert_int_equal(ratelimit_take("mint:lease:g", 1, 1), 1);
    assert_int_equal(ratelimit_take("mint:lease:g", 1, 1), 1);
    pg_take_answer = 0;
    assert_int_equal(ratelimit_take("mint:lease:g", 1, 1), 0);
    assert_int_equal(pg_takes, 3);
    pg_peek_answer = 0;
    assert_int_equal(ratelimit_peek_all(keys, 2, 1, 1), 0);
    assert_int_equal(pg_peeks, 1);
    assert_int_equal(logs, 0);
    /* more keys than one statement takes: looked at locally */
    {
        const char *many[5] = {"a", "b", "c", "d", "e"};
        assert_int_equal(ratelimit_peek_all(many, 5, 1, 1), 1);
        assert_int_equal(pg_peeks, 1);
    }
}

static void test_fallback(void **state)
{
    int i;

    (void) state;
    pg_on = 1;
    pg_fail = 1;
    /* an outage: the local bucket (burst 2) limits, logged once */
    assert_int_equal(ratelimit_take("mint:token:f", 1, 2), 1);
    assert_string_equal(last_log, "ratelimit_local");
    assert_int_equal(pg_takes, 1);
    assert_int_equal(ratelimit_take("mint:token:f", 1, 2), 1);
    assert_int_equal(ratelimit_take("mint:token:f", 1, 2), 0);
    assert_int_equal(ratelimit_peek("mint:token:f", 1, 2), 0);
    /* not asked again within a second of the failure */
    assert_int_equal(pg_takes, 1);
    assert_int_equal(pg_peeks, 0);
    for (i = 0; i < 3; i++) {
        now_ms += 1000;
        ratelimit_take("mint:token:x", 1, 2);
    }
    assert_int_equal(pg_takes, 4);
    assert_int_equal(logs, 1);
    /* the database answers again: global, and that is logged */
    now_ms += 1000;
    pg_fail = 0;
    pg_take_answer = 0;
    assert_int_equal(ratelimit_take("mint:token:f", 1, 2), 0);
    assert_string_equal(last_log, "ratelimit_global");
    assert_int_equal(logs, 2);
    assert_int_equal(ratelimit_take("mint:token:f", 1, 2), 0);
    assert_int_equal(logs, 2);
    /* a second outage is logged again */
    pg_fail = 1;
    ratelimit_peek("mint:token:f", 1, 2);
    assert_string_equal(last_log, "ratelimit_local");
    assert_int_equal(logs, 3);
}

static void test_charge(void **state)
{
    const char *keys[2] = {"fail:addr:192.0.2.3", "fail:lease:L3"};

    (void) state;
    /* locally: each bucket pays, and one that is empty stays empty */
    ratelimit_charge(keys, 2, 1, 2);
    assert_int_equal(ratelimit_peek_all(keys, 2, 1, 2), 1);
    ratelimit_charge(keys, 1, 1, 2);
    assert_int_equal(ratelimit_peek(keys[0], 1, 2), 0);
    assert_int_equal(ratelimit_peek(keys[1], 1, 2), 1);
    ratelimit_charge(keys, 2, 1, 2);
    assert_int_equal(ratelimit_peek(keys[1], 1, 2), 0);
    /* globally: one call for both */
    pg_on = 1;
    ratelimit_charge(keys, 2, 1, 2);
    assert_int_equal(pg_takes, 1);
    /* the database failing: the local buckets pay */
    pg_fail = 1;
    keys[0] = "fail:addr:192.0.2.4";
    ratelimit_charge(keys, 1, 1, 1);
    assert_int_equal(pg_takes, 2);
    assert_int_equal(ratelimit_peek(keys[0], 1, 1), 0);
}

static void test_sqlite(void **state)
{
    (void) state;
    ratelimit_tick();
    assert_int_equal(pg_purges, 0);
}

static void test_purge(void **state)
{
    (void) state;
    pg_on = 1;
    ratelimit_tick();
    assert_int_equal(pg_purges, 1);
    now_ms += 1000;
    ratelimit_tick(); /* a batch that was not full: the next in 10 s */
    assert_int_equal(pg_purges, 1);
    now_ms += 9000;
    pg_purge_answer = 1000;
    ratelimit_tick();
    assert_int_equal(pg_purges, 2);
    now_ms += 1000;
    ratelimit_tick(); /* a full batch: the next at the next tick */
    assert_int_equal(pg_purges, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_local_bucket, setup),
        cmocka_unit_test_setup(test_peek_all_local, setup),
        cmocka_unit_test_setup(test_global, setup),
        cmocka_unit_test_setup(test_fallback, setup),
        cmocka_unit_test_setup(test_charge, setup),
        cmocka_unit_test_setup(test_sqlite, setup),
        cmocka_unit_test_setup(test_purge, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
