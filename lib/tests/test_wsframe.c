/*
 * test_wsframe.c: masked client frame headers and word-at-a-time masking
 * (egress_wsframe.c) against the byte-at-a-time definition in RFC 6455.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "egress_wsframe.h"

static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};

static void test_header_lengths(void **state)
{
    unsigned char h[EGRESS_WS_HEADER_MAX];

    (void) state;
    assert_int_equal(egress_ws_frame_header(h, 1, 125, key), 6);
    assert_int_equal(h[0], 0x82); /* FIN + binary */
    assert_int_equal(h[1], 0x80 | 125);
    assert_memory_equal(h + 2, key, 4);

    assert_int_equal(egress_ws_frame_header(h, 0, 126, key), 8);
    assert_int_equal(h[0], 0x81); /* FIN + text */
    assert_int_equal(h[1], 0x80 | 126);
    assert_int_equal(h[2] << 8 | h[3], 126);

    assert_int_equal(egress_ws_frame_header(h, 1, 65535, key), 8);
    assert_int_equal(h[2] << 8 | h[3], 65535);

    assert_int_equal(egress_ws_frame_header(h, 1, 65536, key), 14);
    assert_int_equal(h[1], 0x80 | 127);
    assert_int_equal(h[7], 1); /* 0x0000000000010000 big-endian */
    assert_int_equal(h[8], 0);
    assert_memory_equal(h + 10, key, 4);
}

static void test_mask_matches_rfc(void **state)
{
    unsigned char src[100], dst[100], want[100];
    size_t n, off, i;

    (void) state;
    for (i = 0; i < sizeof(src); i++) {
        src[i] = (unsigned char) (i * 7 + 3);
    }
    /* every length and phase, including the byte tail after whole words */
    for (off = 0; off < 8; off++) {
        for (n = 0; n <= 40; n++) {
            for (i = 0; i < n; i++) {
                want[i] = src[i] ^ key[(off + i) & 3];
            }
            egress_ws_mask(dst, src, n, key, off);
            assert_memory_equal(dst, want, n);
        }
    }
    /* in place, and masking twice restores the payload */
    memcpy(dst, src, sizeof(src));
    egress_ws_mask(dst, dst, sizeof(dst), key, 5);
    egress_ws_mask(dst, dst, sizeof(dst), key, 5);
    assert_memory_equal(dst, src, sizeof(src));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_lengths),
        cmocka_unit_test(test_mask_matches_rfc),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
