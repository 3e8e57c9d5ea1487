/*
 * test_crypto.c: secrets, comparison and digests (egress_crypto.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "egress_base64.h"
#include "egress_crypto.h"

static void test_sha256(void **state)
{
    uint8_t d[EGRESS_SHA256_LEN];
    char h[EGRESS_SHA256_HEX_LEN + 1];

    (void) state;
    /* FIPS 180-2 vectors. */
    egress_sha256_hex(h, "abc", 3);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    egress_sha256_hex(h, "", 0);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    egress_sha256_hex(h, NULL, 0);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    egress_sha256(d, "abc", 3);
    egress_hex_encode(h, d, sizeof(d));
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_hmac(void **state)
{
    uint8_t key[20], d[EGRESS_SHA256_LEN];
    char h[EGRESS_SHA256_HEX_LEN + 1];

    (void) state;
    /* RFC 4231 test cases 1 and 2. */
    memset(key, 0x0b, sizeof(key));
    egress_hmac_sha256(d, key, sizeof(key), "Hi There", 8);
    egress_hex_encode(h, d, sizeof(d));
    assert_string_equal(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    egress_hmac_sha256(d, "Jefe", 4, "what do ya want for nothing?", 28);
    egress_hex_encode(h, d, sizeof(d));
    assert_string_equal(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* Empty key and data are legal. */
    egress_hmac_sha256(d, NULL, 0, NULL, 0);
    egress_hex_encode(h, d, sizeof(d));
    assert_string_equal(h, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

static void test_ct(void **state)
{
    (void) state;
    assert_true(egress_ct_equal("abc", "abc", 3));
    assert_false(egress_ct_equal("abc", "abd", 3));
    assert_true(egress_ct_equal("x", "y", 0));
    assert_true(egress_ct_streq("secret", 6, "secret", 6));
    assert_false(egress_ct_streq("secret", 6, "secreT", 6));
    assert_false(egress_ct_streq("secret", 6, "secret1", 7));
    assert_false(egress_ct_streq("secret1", 7, "secret", 6));
    assert_false(egress_ct_streq("secret", 6, "", 0));
    assert_false(egress_ct_streq("", 0, "secret", 6));
    assert_true(egress_ct_streq("", 0, "", 0));
    /* Only the given lengths count. */
    assert_true(egress_ct_streq("abcX", 3, "abcY", 3));
}

static void test_random(void **state)
{
    uint8_t a[32], b[32];
    egress_error_t err;

    (void) state;
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_int_equal(egress_random_bytes(a, sizeof(a), &err), 0);
    assert_int_equal(egress_random_bytes(b, sizeof(b), &err), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(egress_random_bytes(a, 0, &err), 0);
}

/* Keys from the pool: fresh bytes across refills, wiped once handed out, never too many. */
static void test_random_pool(void **state)
{
    static egress_random_pool_t pool; /* zeroed: empty */
    uint8_t key[4], prev[4], zero[4] = {0}, big[EGRESS_RANDOM_POOL + 1];
    size_t i, same = 0, before;
    egress_error_t err;

    (void) state;
    assert_int_equal(pool.avail, 0);
    memset(prev, 0, sizeof(prev));
    /* three refills' worth */
    for (i = 0; i < 3 * EGRESS_RANDOM_POOL / sizeof(key); i++) {
        before = pool.avail;
        assert_int_equal(egress_random_pool_take(&pool, key, sizeof(key), &err), 0);
        assert_int_equal(pool.avail, (before < sizeof(key) ? EGRESS_RANDOM_POOL : before) - 4);
        /* the bytes just handed out are gone from the pool */
        assert_memory_equal(pool.bytes + EGRESS_RANDOM_POOL - pool.avail - 4, zero, 4);
        same += memcmp(key, prev, sizeof(key)) == 0;
        memcpy(prev, key, sizeof(key));
    }
    assert_true(same <= 1);
    assert_int_equal(egress_random_pool_take(&pool, big, sizeof(big), &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_NO_SPACE);
    egress_random_pool_empty(&pool);
    assert_int_equal(pool.avail, 0);
}

static void test_token(void **state)
{
    char t1[64], t2[64];
    uint8_t raw[64];
    size_t rawlen;
    egress_error_t err;
    int n;

    (void) state;
    n = egress_token_new(t1, sizeof(t1), "egt_", 32, &err);
    /* 32 bytes -> 43 base64url characters, plus the prefix. */
    assert_int_equal(n, 4 + 43);
    assert_int_equal(strlen(t1), (size_t) n);
    assert_memory_equal(t1, "egt_", 4);
    assert_int_equal(egress_base64url_decode(raw, sizeof(raw), &rawlen, t1 + 4, 43, &err), 0);
    assert_int_equal(rawlen, 32);
    assert_int_equal(egress_token_new(t2, sizeof(t2), "egt_", 32, &err), n);
    assert_string_not_equal(t1, t2);

    n = egress_token_new(t1, sizeof(t1), NULL, 3, &err);
    assert_int_equal(n, 4);
    /* Exactly enough room (prefix + 43 + NUL) works, one less fails. */
    assert_int_equal(egress_token_new(t1, 48, "egr_", 32, &err), 47);
    assert_int_equal(egress_token_new(t1, 47, "egr_", 32, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_NO_SPACE);
    assert_int_equal(egress_token_new(t1, sizeof(t1), "x", 0, &err), -1);
    assert_int_equal(egress_token_new(t1, sizeof(t1), "x", 100000, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),      cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_ct),          cmocka_unit_test(test_random),
        cmocka_unit_test(test_random_pool), cmocka_unit_test(test_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
