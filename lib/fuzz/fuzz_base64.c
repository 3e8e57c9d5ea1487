/*
 * fuzz_base64.c: libFuzzer target for strict base64/base64url.
 *
 * Canonical decoding means decode(s) succeeding implies encode(decode(s)) == s;
 * and decode(encode(b)) == b for any bytes b.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Room for decoding the input and for decoding the encoding of the input. */
    size_t cap = EGRESS_BASE64_DECODED_MAX(size) + size + 1;
    size_t enc_cap = EGRESS_BASE64_ENCODED_LEN(size) + 1;
    uint8_t *dec = malloc(cap);
    char *enc = malloc(enc_cap > cap * 2 ? enc_cap : cap * 2);
    size_t out = 0, n;

    if (egress_base64_decode(dec, cap, &out, (const char *) data, size, NULL) == 0) {
        n = egress_base64_encode(enc, dec, out);
        if (n != size || memcmp(enc, data, size) != 0) {
            abort();
        }
    }
    if (egress_base64url_decode(dec, cap, &out, (const char *) data, size, NULL) == 0) {
        n = egress_base64url_encode(enc, dec, out);
        if (n != size || memcmp(enc, data, size) != 0) {
            abort();
        }
    }
    free(enc);
    enc = malloc(enc_cap);
    n = egress_base64_encode(enc, data, size);
    if (n != EGRESS_BASE64_ENCODED_LEN(size) ||
        egress_base64_decode(dec, cap, &out, enc, n, NULL) != 0 || out != size ||
        (size && memcmp(dec, data, size) != 0)) {
        abort();
    }
    n = egress_base64url_encode(enc, data, size);
    if (egress_base64url_decode(dec, cap, &out, enc, n, NULL) != 0 || out != size ||
        (size && memcmp(dec, data, size) != 0)) {
        abort();
    }
    free(enc);
    free(dec);
    return 0;
}
