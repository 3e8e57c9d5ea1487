/*
 * test_owner_notify.c: the ownership notification payload parser.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "owner_notify.h"

static int parse(const char *s, owner_notify_t *n)
{
    return owner_notify_parse(s, strlen(s), n);
}

static void test_good(void **state)
{
    owner_notify_t n;

    (void) state;
    assert_int_equal(parse("c1 3 lease_Ab-9 4711", &n), 0);
    assert_string_equal(n.instance, "c1");
    assert_int_equal(n.epoch, 3);
    assert_string_equal(n.lease, "lease_Ab-9");
    assert_string_equal(n.version, "4711");
    assert_int_equal(parse("host.example:8080 9223372036854775807 x 4294967295", &n), 0);
    assert_string_equal(n.instance, "host.example:8080");
    assert_int_equal(n.epoch, INT64_MAX);
}

static void test_bad(void **state)
{
    static const char *const bad[] = {
        "",
        " ",
        "c1",
        "c1 ",
        "c1 3",
        "c1 3 ",
        "c1 3 L",
        "c1 3 L ",
        " c1 3 L 9",
        "c1  3 L 9",
        "c1 3  L 9",
        "c1 3 L  9",
        "c1 3 L 9 ",
        "c1 0 L 9",
        "c1 03 L 9",
        "c1 -3 L 9",
        "c1 +3 L 9",
        "c1 3x L 9",
        "c1 9223372036854775808 L 9",
        "c 1 3 L 9",
        "c1 3 L/x 9",
        "c1 3 L.x 9",
        "c\"1 3 L 9",
        "c1\t3 L 9",
        "c1 3 L 09",
        "c1 3 L 9x",
        "c1 3 L 12345678901",
    };
    owner_notify_t n;
    char big[200];
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i], &n), -1);
    }
    /* 63 name bytes pass, 64 do not; 64 lease bytes pass, 65 do not */
    memset(big, 'a', 63);
    memcpy(big + 63, " 1 L 9", 7);
    assert_int_equal(parse(big, &n), 0);
    memset(big, 'a', 64);
    memcpy(big + 64, " 1 L 9", 7);
    assert_int_equal(parse(big, &n), -1);
    memcpy(big, "c 1 ", 4);
    memset(big + 4, 'b', 64);
    memcpy(big + 68, " 9", 3);
    assert_int_equal(parse(big, &n), 0);
    memset(big + 4, 'b', 65);
    memcpy(big + 69, " 9", 3);
    assert_int_equal(parse(big, &n), -1);
    /* an embedded NUL inside len is not a terminator */
    assert_int_equal(owner_notify_parse("c1 3 L 9\0x", 10, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
