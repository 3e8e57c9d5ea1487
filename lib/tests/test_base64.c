/*
 * test_base64.c: strict base64 / base64url (egress_base64.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "egress_base64.h"

/* RFC 4648 section 10 test vectors. */
static const char *const vec_plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const vec_std[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *const vec_url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

static void test_vectors(void **state)
{
    char enc[32];
    uint8_t dec[32];
    size_t i, n, out = 99;
    egress_error_t err;

    (void) state;
    for (i = 0; i < sizeof(vec_plain) / sizeof(vec_plain[0]); i++) {
        size_t plen = strlen(vec_plain[i]);
        n = egress_base64_encode(enc, (const uint8_t *) vec_plain[i], plen);
        assert_int_equal(n, strlen(vec_std[i]));
        assert_int_equal(n, EGRESS_BASE64_ENCODED_LEN(plen));
        assert_memory_equal(enc, vec_std[i], n);
        n = egress_base64url_encode(enc, (const uint8_t *) vec_plain[i], plen);
        assert_int_equal(n, strlen(vec_url[i]));
        assert_memory_equal(enc, vec_url[i], n);

        assert_int_equal(
            egress_base64_decode(dec, sizeof(dec), &out, vec_std[i], strlen(vec_std[i]), &err),
            0);
        assert_int_equal(out, plen);
        assert_memory_equal(dec, vec_plain[i], plen);
        assert_true(out <= EGRESS_BASE64_DECODED_MAX(strlen(vec_std[i])));
        assert_int_equal(egress_base64url_decode(dec, sizeof(dec), &out, vec_url[i],
                                                 strlen(vec_url[i]), &err),
                         0);
        assert_int_equal(out, plen);
        assert_memory_equal(dec, vec_plain[i], plen);
    }
}

static void test_alphabets(void **state)
{
    static const uint8_t all[] = {0xfb, 0xff, 0xbf, 0x00, 0x10, 0x83};
    char enc[16];
    uint8_t dec[16];
    size_t n, out;
    egress_error_t err;

    (void) state;
    n = egress_base64_encode(enc, all, sizeof(all));
    assert_memory_equal(enc, "+/+/ABCD", n);
    n = egress_base64url_encode(enc, all, sizeof(all));
    assert_memory_equal(enc, "-_-_ABCD", n);
    assert_int_equal(egress_base64url_decode(dec, sizeof(dec), &out, enc, n, &err), 0);
    assert_memory_equal(dec, all, sizeof(all));
    /* Each alphabet rejects the other's two special symbols. */
    assert_int_equal(egress_base64_decode(dec, sizeof(dec), &out, "-_-_ABCD", 8, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_BASE64);
    assert_int_equal(egress_base64url_decode(dec, sizeof(dec), &out, "+/+/ABCD", 8, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_BASE64);
}

static void test_round_trip_random(void **state)
{
    uint8_t src[300], dec[300];
    char enc[500];
    size_t len, i, n, out;
    egress_error_t err;

    (void) state;
    srand(7);
    for (len = 0; len < sizeof(src); len++) {
        for (i = 0; i < len; i++) {
            src[i] = (uint8_t) rand();
        }
        n = egress_base64_encode(enc, src, len);
        assert_int_equal(egress_base64_decode(dec, len, &out, enc, n, &err), 0);
        assert_int_equal(out, len);
        assert_memory_equal(dec, src, len);
        n = egress_base64url_encode(enc, src, len);
        assert_int_equal(egress_base64url_decode(dec, len, &out, enc, n, &err), 0);
        assert_int_equal(out, len);
        assert_memory_equal(dec, src, len);
    }
}

static void reject(const char *s, egress_err_e code, int url)
{
    uint8_t dec[64];
    size_t out = 12345;
    egress_error_t err;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = url ? egress_base64url_decode(dec, sizeof(dec), &out, s, strlen(s), &err)
             : egress_base64_decode(dec, sizeof(dec), &out, s, strlen(s), &err);
    if (rc != -1 || err.code != code) {
        print_error("\"%s\" (%s): rc %d code %s\n", s, url ? "url" : "std", rc,
                    egress_err_name(err.code));
        fail();
    }
    assert_int_equal(out, 12345);
}

static void test_reject_non_canonical(void **state)
{
    (void) state;
    /* Standard alphabet: padding required, exact length, zero unused bits. */
    reject("Zg", EGRESS_ERR_BASE64, 0);
    reject("Zg=", EGRESS_ERR_BASE64, 0);
    reject("Zg===", EGRESS_ERR_BASE64, 0);
    reject("Zh==", EGRESS_ERR_BASE64, 0); /* unused bits set */
    reject("Zm9=", EGRESS_ERR_BASE64, 0); /* unused bits set */
    reject("Z===", EGRESS_ERR_BASE64, 0);
    reject("====", EGRESS_ERR_BASE64, 0);
    reject("=Zg=", EGRESS_ERR_BASE64, 0);
    reject("Zg==Zg==", EGRESS_ERR_BASE64, 0); /* padding in the middle */
    reject("Z=g=", EGRESS_ERR_BASE64, 0);
    reject("Zm9v\n", EGRESS_ERR_BASE64, 0);
    reject("Zm 9v", EGRESS_ERR_BASE64, 0);
    reject("Zm9 ", EGRESS_ERR_BASE64, 0);
    reject("Zm9\x80", EGRESS_ERR_BASE64, 0);
    reject("Zm9\xff", EGRESS_ERR_BASE64, 0);
    reject("Zm.v", EGRESS_ERR_BASE64, 0);
    /* url: no padding, no impossible length, zero unused bits. */
    reject("Zg==", EGRESS_ERR_BASE64, 1);
    reject("Zm8=", EGRESS_ERR_BASE64, 1);
    reject("Z", EGRESS_ERR_BASE64, 1);
    reject("Zm9vY", EGRESS_ERR_BASE64, 1);
    reject("Zh", EGRESS_ERR_BASE64, 1);
    reject("Zm9", EGRESS_ERR_BASE64, 1);
    reject("Zm+v", EGRESS_ERR_BASE64, 1);
    reject("Zm/v", EGRESS_ERR_BASE64, 1);
}

static void test_no_space(void **state)
{
    uint8_t dec[8];
    size_t out = 0;
    egress_error_t err;

    (void) state;
    assert_int_equal(egress_base64_decode(dec, 5, &out, "Zm9vYmFy", 8, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_NO_SPACE);
    assert_int_equal(egress_base64_decode(dec, 6, &out, "Zm9vYmFy", 8, &err), 0);
    assert_int_equal(out, 6);
    assert_int_equal(egress_base64_decode(dec, 3, &out, "Zm9vYg==", 8, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_NO_SPACE);
    assert_int_equal(egress_base64_decode(dec, 4, &out, "Zm9vYg==", 8, &err), 0);
    assert_int_equal(out, 4);
    assert_int_equal(egress_base64url_decode(dec, 4, &out, "Zm9vYmE", 7, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_NO_SPACE);
    assert_int_equal(egress_base64url_decode(dec, 5, &out, "Zm9vYmE", 7, &err), 0);
    assert_int_equal(out, 5);
    /* err may be NULL. */
    assert_int_equal(egress_base64_decode(dec, sizeof(dec), &out, "!", 1, NULL), -1);
}

/* Every one of the 256 byte values is accepted only where the alphabet has it. */
static void test_every_symbol(void **state)
{
    static const char std[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t dec[8];
    size_t out;
    int c;

    (void) state;
    for (c = 0; c < 256; c++) {
        char q[4] = {(char) c, 'A', 'A', 'A'};
        int in_std = c != 0 && strchr(std, c) != NULL;
        int in_url = c != 0 && strchr(url, c) != NULL;
        assert_int_equal(egress_base64_decode(dec, sizeof(dec), &out, q, 4, NULL) == 0, in_std);
        assert_int_equal(egress_base64url_decode(dec, sizeof(dec), &out, q, 4, NULL) == 0,
                         in_url);
        if (in_std) {
            assert_int_equal(dec[0] >> 2, (int) (strchr(std, c) - std));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),           cmocka_unit_test(test_alphabets),
        cmocka_unit_test(test_round_trip_random), cmocka_unit_test(test_reject_non_canonical),
        cmocka_unit_test(test_no_space),          cmocka_unit_test(test_every_symbol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
