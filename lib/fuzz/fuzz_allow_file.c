/*
 * fuzz_allow_file.c: libFuzzer target for allow files
 * (egress_allow_add_lines()).
 *
 * A file is taken whole or not at all: on failure the list is as before and
 * the error names a line that exists; on success every pattern re-parses to
 * itself and the same text adds nothing new a second time.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_allow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    egress_allow_t *al = egress_allow_new(), *al2 = egress_allow_new();
    egress_error_t err;
    size_t i, n, lines = 1;

    for (i = 0; i < size; i++) {
        lines += data[i] == '\n';
    }
    (void) egress_allow_add(al, "before.example", 14, &err);
    if (egress_allow_add_lines(al, (const char *) data, size, "f", &err) == 0) {
        n = egress_allow_count(al);
        for (i = 0; i < n; i++) {
            const char *p = egress_allow_pattern(al, i);
            if (egress_allow_add(al2, p, strlen(p), &err) != 0) {
                abort();
            }
        }
        if (egress_allow_add_lines(al, (const char *) data, size, "f", &err) != 0 ||
            egress_allow_count(al) != n) {
            abort();
        }
    } else {
        size_t line = 0;

        if (egress_allow_count(al) != 1 || strncmp(err.message, "f line ", 7) != 0) {
            abort();
        }
        line = strtoul(err.message + 7, NULL, 10);
        if (line < 1 || line > lines) {
            abort();
        }
    }
    egress_allow_free(al);
    egress_allow_free(al2);
    return 0;
}
