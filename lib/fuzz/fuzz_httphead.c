/*
 * fuzz_httphead.c: libFuzzer target for the request-head parser. Whatever
 * parses must point inside the input, and a prefix of a complete head must
 * never parse as complete (a head is only ever found whole).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_httphead.h"

static void inside(const char *p, size_t n, const uint8_t *data, size_t size)
{
    if (p < (const char *) data || p + n > (const char *) data + size) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    egress_http_head_t h, g;
    const egress_http_field_t *f;
    int rc = egress_http_head_parse(&h, (const char *) data, size), count;

    if (rc != 1) {
        return 0;
    }
    if (h.head_len == 0 || h.head_len > size) {
        abort();
    }
    inside(h.method, h.method_len, data, size);
    inside(h.target, h.target_len, data, size);
    for (size_t i = 0; i < h.nfields; i++) {
        inside(h.fields[i].name, h.fields[i].name_len, data, size);
        inside(h.fields[i].value, h.fields[i].value_len, data, size);
    }
    if (h.head_len > 1 &&
        egress_http_head_parse(&g, (const char *) data, h.head_len - 1) == 1) {
        abort();
    }
    f = egress_http_head_get(&h, "upgrade", &count);
    if ((f == NULL) != (count == 0)) {
        abort();
    }
    return 0;
}
