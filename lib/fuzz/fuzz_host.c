/*
 * fuzz_host.c: libFuzzer target for host normalization and host:port parsing.
 *
 * Normalization must be idempotent, and its output must be short, NUL-free
 * and lower case.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[EGRESS_HOST_BUF], again[EGRESS_HOST_BUF];
    const char *s = (const char *) data;
    egress_error_t err;
    uint16_t port = 0;
    size_t i, len;
    int kind, kind2;

    kind = egress_host_normalize(out, s, size, &err);
    if (kind > 0) {
        len = strlen(out);
        if (len == 0 || len > EGRESS_HOST_MAX) {
            abort();
        }
        for (i = 0; i < len; i++) {
            if (out[i] >= 'A' && out[i] <= 'Z') {
                abort();
            }
        }
        kind2 = egress_host_normalize(again, out, len, &err);
        if (kind2 != kind || strcmp(out, again) != 0) {
            abort();
        }
        (void) egress_host_is_loopback(out, len);
    } else if (kind != -1 || err.code != EGRESS_ERR_HOST) {
        abort();
    }
    kind = egress_hostport_parse(out, &port, s, size, 0, &err);
    if (kind > 0 && port == 0) {
        abort();
    }
    kind = egress_hostport_parse(out, &port, s, size, 443, &err);
    if (kind > 0 && port == 0) {
        abort();
    }
    (void) egress_host_is_loopback(s, size);
    return 0;
}
