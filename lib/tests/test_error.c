/*
 * test_error.c: error values (egress_error.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "egress_error.h"

static void test_names(void **state)
{
    int c;

    (void) state;
    assert_string_equal(egress_err_name(EGRESS_OK), "ok");
    assert_string_equal(egress_err_name(EGRESS_ERR_JSON), "json");
    assert_string_equal(egress_err_name(EGRESS_ERR_ID_RANGE), "id_range");
    assert_string_equal(egress_err_name(EGRESS_ERR_TEXT_DATA_IN_V2), "text_data_in_v2");
    assert_string_equal(egress_err_name(EGRESS_ERR_SYSTEM), "system");
    assert_string_equal(egress_err_name((egress_err_e) 999), "unknown");
    /* Every code has its own name. */
    for (c = EGRESS_OK; c <= EGRESS_ERR_SYSTEM; c++) {
        int d;
        assert_string_not_equal(egress_err_name((egress_err_e) c), "unknown");
        for (d = EGRESS_OK; d < c; d++) {
            assert_string_not_equal(egress_err_name((egress_err_e) c),
                                    egress_err_name((egress_err_e) d));
        }
    }
}

static void test_set(void **state)
{
    egress_error_t err;
    char big[400];

    (void) state;
    assert_int_equal(egress_error_set(&err, EGRESS_ERR_PORT_RANGE, "port %d bad", 0), -1);
    assert_int_equal(err.code, EGRESS_ERR_PORT_RANGE);
    assert_string_equal(err.message, "port 0 bad");
    assert_int_equal(egress_error_set(NULL, EGRESS_ERR_JSON, "x"), -1);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    egress_error_set(&err, EGRESS_ERR_VALUE, "%s", big);
    assert_int_equal(strlen(err.message), EGRESS_ERROR_MESSAGE_MAX - 1);
}

static void test_excerpt(void **state)
{
    char out[72], small[8];
    char long_in[100];

    (void) state;
    egress_error_excerpt(out, sizeof(out), "abc", 3);
    assert_string_equal(out, "abc");
    egress_error_excerpt(out, sizeof(out), "a\"b\\c\n\x01\xff", 8);
    assert_string_equal(out, "a?b?c???");
    egress_error_excerpt(out, sizeof(out), "a\0b", 3);
    assert_string_equal(out, "a?b");
    egress_error_excerpt(out, sizeof(out), "", 0);
    assert_string_equal(out, "");
    memset(long_in, 'z', sizeof(long_in));
    egress_error_excerpt(out, sizeof(out), long_in, sizeof(long_in));
    assert_int_equal(strlen(out), 67);
    assert_string_equal(out + 64, "...");
    egress_error_excerpt(out, sizeof(out), long_in, 64);
    assert_int_equal(strlen(out), 64);
    egress_error_excerpt(small, sizeof(small), long_in, sizeof(long_in));
    assert_true(strlen(small) < sizeof(small));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_excerpt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
