/*
 * test_flow.c: per-stream credit accounting (egress_flow.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "egress_flow.h"
#include "egress_frame.h"

static void test_send_side(void **state)
{
    egress_flow_t fl;
    egress_error_t err;

    (void) state;
    egress_flow_init(&fl, 100, 200);
    assert_int_equal(egress_flow_send_room(&fl), 100);
    egress_flow_on_sent(&fl, 60);
    assert_int_equal(egress_flow_send_room(&fl), 40);
    egress_flow_on_sent(&fl, 40);
    assert_int_equal(egress_flow_send_room(&fl), 0);
    /* Over-send by a buggy caller clamps at zero instead of wrapping. */
    egress_flow_on_sent(&fl, 5);
    assert_int_equal(egress_flow_send_room(&fl), 0);
    assert_int_equal(egress_flow_on_window(&fl, 50, &err), 0);
    assert_int_equal(egress_flow_send_room(&fl), 50);

    /* Credit may never exceed EGRESS_MAX_WINDOW. */
    assert_int_equal(egress_flow_on_window(&fl, EGRESS_MAX_WINDOW - 50, &err), 0);
    assert_int_equal(egress_flow_send_room(&fl), EGRESS_MAX_WINDOW);
    assert_int_equal(egress_flow_on_window(&fl, 1, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_FLOW);
    assert_non_null(strstr(err.message, "above"));
    assert_int_equal(egress_flow_send_room(&fl), EGRESS_MAX_WINDOW);
    assert_int_equal(egress_flow_on_window(&fl, 0, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_FLOW);
    assert_int_equal(egress_flow_on_window(&fl, EGRESS_MAX_WINDOW + 1u, &err), -1);
}

static void test_defaults(void **state)
{
    egress_flow_t fl;

    (void) state;
    /* send window 0 is literal (no credit yet); receive window 0 is the default. */
    egress_flow_init(&fl, 0, 0);
    assert_int_equal(egress_flow_send_room(&fl), 0);
    assert_int_equal(fl.recv_window, EGRESS_INITIAL_WINDOW);
    assert_int_equal(fl.recv_credit, EGRESS_INITIAL_WINDOW);
    assert_false(fl.unlimited);
}

static void test_receive_and_batching(void **state)
{
    egress_flow_t fl;
    egress_error_t err;
    uint32_t grants = 0, total = 0, inc;
    int i;

    (void) state;
    egress_flow_init(&fl, EGRESS_INITIAL_WINDOW, EGRESS_INITIAL_WINDOW);
    /* A bulk transfer of 2 MiB in 32 KiB chunks: receive, drain, grant. */
    for (i = 0; i < 64; i++) {
        assert_int_equal(egress_flow_on_received(&fl, EGRESS_DATA_CHUNK, &err), 0);
        inc = egress_flow_on_drained(&fl, EGRESS_DATA_CHUNK);
        if (inc != 0) {
            grants++;
            total += inc;
            /* One window frame per half window, never one per chunk. */
            assert_int_equal(inc, EGRESS_INITIAL_WINDOW / 2);
        }
    }
    assert_int_equal(grants, 16);
    assert_int_equal(total, 64 * EGRESS_DATA_CHUNK);
    assert_int_equal(fl.recv_credit, EGRESS_INITIAL_WINDOW);
    assert_int_equal(fl.recv_drained, 0);
}

static void test_receive_overflow(void **state)
{
    egress_flow_t fl;
    egress_error_t err;

    (void) state;
    egress_flow_init(&fl, 1000, 1000);
    assert_int_equal(egress_flow_on_received(&fl, 999, &err), 0);
    assert_int_equal(egress_flow_on_received(&fl, 1, &err), 0);
    /* The peer exceeded its credit: a flow-control violation. */
    assert_int_equal(egress_flow_on_received(&fl, 1, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_FLOW);
    assert_non_null(strstr(err.message, "credit"));
    assert_int_equal(fl.recv_credit, 0);
    /* Draining below half grants nothing; reaching half grants what drained. */
    assert_int_equal(egress_flow_on_drained(&fl, 499), 0);
    assert_int_equal(egress_flow_on_drained(&fl, 1), 500);
    assert_int_equal(fl.recv_credit, 500);
    assert_int_equal(egress_flow_on_received(&fl, 501, &err), -1);
    assert_int_equal(egress_flow_on_received(&fl, 500, &err), 0);
    /* A caller that over-reports drained bytes still cannot grant past the window. */
    assert_int_equal(egress_flow_on_drained(&fl, 5000), 1000);
    assert_int_equal(fl.recv_credit, 1000);
    assert_int_equal(egress_flow_on_drained(&fl, 600), 0);
}

static void test_small_window(void **state)
{
    egress_flow_t fl;
    egress_error_t err;

    (void) state;
    egress_flow_init(&fl, 1, 1);
    assert_int_equal(egress_flow_on_received(&fl, 1, &err), 0);
    assert_int_equal(egress_flow_on_drained(&fl, 0), 0);
    assert_int_equal(egress_flow_on_drained(&fl, 1), 1);
    egress_flow_init(&fl, 1, EGRESS_MAX_WINDOW);
    assert_int_equal(fl.recv_credit, EGRESS_MAX_WINDOW);
}

static void test_unlimited(void **state)
{
    egress_flow_t fl;
    egress_error_t err;

    (void) state;
    egress_flow_init_unlimited(&fl);
    assert_true(fl.unlimited);
    assert_int_equal(egress_flow_send_room(&fl), SIZE_MAX);
    egress_flow_on_sent(&fl, 1u << 30);
    assert_int_equal(egress_flow_send_room(&fl), SIZE_MAX);
    assert_int_equal(egress_flow_on_received(&fl, 1u << 30, &err), 0);
    assert_int_equal(egress_flow_on_received(&fl, 1u << 30, &err), 0);
    assert_int_equal(egress_flow_on_drained(&fl, 1u << 30), 0);
    assert_int_equal(egress_flow_on_window(&fl, 5, &err), 0);
    assert_int_equal(egress_flow_send_room(&fl), SIZE_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_side),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_receive_and_batching),
        cmocka_unit_test(test_receive_overflow),
        cmocka_unit_test(test_small_window),
        cmocka_unit_test(test_unlimited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
