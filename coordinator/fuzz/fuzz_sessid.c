/*
 * fuzz_sessid.c: libFuzzer target for the two session id parsers.
 *
 * sessid_verify() must never accept an input it did not mint (the MAC is
 * checked against a fixed key), and an id it accepts is never foreign;
 * sessid_foreign_valid() accepts only "egress_" + 6..80 of [A-Za-z0-9_.:-]
 * and nothing with our prefix.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sessid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int foreign_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == ':' || c == '-';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[SESSID_KEY_LEN] = {7};
    const char *s = (const char *) data;
    int64_t gen = 0;
    size_t i;
    int v = sessid_verify(s, size, key, "lease_fuzz", &gen);
    int f = sessid_foreign_valid(s, size);

    if (v != 0 && v != -1 && v != -2) {
        abort();
    }
    if (v == 0 && (gen < 1 || f)) {
        abort();
    }
    if (f) {
        if (size < 7 + 6 || size > 7 + 80 || memcmp(s, "egress_", 7) != 0 ||
            (size >= 9 && memcmp(s, SESSID_PREFIX, 9) == 0)) {
            abort();
        }
        for (i = 7; i < size; i++) {
            if (!foreign_char(s[i])) {
                abort();
            }
        }
    }
    return 0;
}
