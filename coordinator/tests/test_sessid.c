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

static void test_foreign(void **state)
{
    static const char *good[] = {"egress_mq2f8k1x3b7c", /* crabbox CLI: base36 of unix nanos */
                                 "egress_0a1b2c3d4e5f", /* crabbox coordinator: 12 hex */
                                 "egress_manual",       "egress_abcdef",
                                 "egress_A.b:c-d_e",    NULL};
    static const char *bad[] = {"",
                                "egress_",
                                "egress_abcde",
                                "Egress_abcdef",
                                "egress-abcdef",
                                "egress_abc def",
                                "egress_abcdé",
                                "egress_abc/def",
                                "egress_1.2.abcdef",
                                "egress_1.",
                                "xegress_abcdef",
                                NULL};
    char id[128], longer[128];
    int i;

    (void) state;
    for (i = 0; good[i] != NULL; i++) {
        assert_int_equal(sessid_foreign_valid(good[i], strlen(good[i])), 1);
    }
    for (i = 0; bad[i] != NULL; i++) {
        assert_int_equal(sessid_foreign_valid(bad[i], strlen(bad[i])), 0);
    }
    /* 80 characters after the prefix are fine, 81 are not */
    memset(longer, 'z', sizeof(longer));
    memcpy(longer, "egress_", 7);
    assert_int_equal(sessid_foreign_valid(longer, 7 + 80), 1);
    assert_int_equal(sessid_foreign_valid(longer, 7 + 81), 0);
    /* a NUL inside is not a character of the id */
    assert_int_equal(sessid_foreign_valid("egress_abc\0def", 14), 0);
    /* our own ids are never foreign, whatever their MAC */
    assert_int_equal(sessid_make(id, sizeof(id), key1, "l", 3), 0);
    assert_int_equal(sessid_foreign_valid(id, strlen(id)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),      cmocka_unit_test(test_unique),
        cmocka_unit_test(test_forgery),        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bad_generation), cmocka_unit_test(test_foreign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
