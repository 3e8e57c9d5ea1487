/*
 * test_sessid.c: session id minting and verification.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sessid.h"

static const uint8_t key1[SESSID_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const uint8_t key2[SESSID_KEY_LEN] = {2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

static void test_roundtrip(void **state)
{
    char id[128];
    int64_t gen = 0;

    (void) state;
    assert_int_equal(sessid_make(id, sizeof(id), key1, "lease_a", 42), 0);
    assert_true(strncmp(id, "egress_1.42.", 12) == 0);
    assert_int_equal(strlen(id), 12 + 22 + 1 + 43);
    assert_int_equal(sessid_verify(id, strlen(id), key1, "lease_a", &gen), 0);
    assert_int_equal(gen, 42);
}

static void test_unique(void **state)
{
    char a[128], b[128];

    (void) state;
    assert_int_equal(sessid_make(a, sizeof(a), key1, "l", 1), 0);
    assert_int_equal(sessid_make(b, sizeof(b), key1, "l", 1), 0);
    assert_string_not_equal(a, b);
}

static void test_forgery(void **state)
{
    char id[128], bad[128];
    int64_t gen;
    size_t n;

    (void) state;
    assert_int_equal(sessid_make(id, sizeof(id), key1, "lease_a", 7), 0);
    n = strlen(id);
    /* other key, other lease */
    assert_int_equal(sessid_verify(id, n, key2, "lease_a", &gen), -2);
    assert_int_equal(sessid_verify(id, n, key1, "lease_b", &gen), -2);
    /* generation bumped without a new MAC */
    strcpy(bad, id);
    bad[9] = '8';
    assert_int_equal(sessid_verify(bad, n, key1, "lease_a", &gen), -2);
    /* last MAC character flipped */
    strcpy(bad, id);
    bad[n - 1] = bad[n - 1] == 'A' ? 'B' : 'A';
    assert_int_equal(sessid_verify(bad, n, key1, "lease_a", &gen), -2);
}

static void test_malformed(void **state)
{
    static const char *cases[] = {
        "",
        "egress_1.",
        "egress_2.1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "egress_1.0.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "egress_1.01.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "egress_1.-1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "egress_1.1.AAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "egress_1.1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "egress_1.1.AAAAAAAAAAAAAAAAAAAA=A.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "egress_1.99999999999999999999.AAAAAAAAAAAAAAAAAAAAAA."
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        NULL};
    int64_t gen;
    int i;

    (void) state;
    for (i = 0; cases[i] != NULL; i++) {
        assert_int_equal(sessid_verify(cases[i], strlen(cases[i]), key1, "l", &gen), -1);
    }
}

static void test_bad_generation(void **state)
{
    char id[128];

    (void) state;
    assert_int_equal(sessid_make(id, sizeof(id), key1, "l", 0), -1);
    assert_int_equal(sessid_make(id, 20, key1, "l", 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),      cmocka_unit_test(test_unique),
        cmocka_unit_test(test_forgery),        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bad_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
