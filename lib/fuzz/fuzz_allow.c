/*
 * fuzz_allow.c: libFuzzer target for allowlist patterns and matching.
 *
 * The first line is a comma-separated pattern list; every following line is
 * a "host:port" query. Accepted patterns must re-parse to themselves, and a
 * list must match each exact pattern's own host.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_allow.h"
#include "egress_host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    egress_allow_t *al = egress_allow_new(), *al2 = egress_allow_new();
    egress_error_t err;
    const char *s = (const char *) data, *nl;
    char *list;
    char host[EGRESS_HOST_BUF], ports[512];
    size_t i, first;
    uint16_t port;

    nl = memchr(s, '\n', size);
    first = nl != NULL ? (size_t) (nl - s) : size;
    list = malloc(first + 1);
    memcpy(list, s, first);
    list[first] = '\0';
    if (egress_allow_add_list(al, list, &err) == 0) {
        for (i = 0; i < egress_allow_count(al); i++) {
            const char *p = egress_allow_pattern(al, i);
            if (egress_allow_add(al2, p, strlen(p), &err) != 0 ||
                strcmp(egress_allow_pattern(al2, i), p) != 0) {
                abort();
            }
            /* An exact pattern without a port matches its host on port 443. */
            if (p[0] != '*' && strchr(p, ']') == NULL && strchr(p, ':') == NULL &&
                !egress_allow_match(al, p, strlen(p), 443)) {
                abort();
            }
        }
    } else if (egress_allow_count(al) != 0) {
        abort(); /* a failed list adds nothing */
    }
    (void) egress_allow_add(al2, s, first, &err);
    (void) egress_allow_set_ports_list(al, list, &err);
    (void) egress_allow_ports_format(al, ports, sizeof(ports));
    free(list);

    while (nl != NULL) {
        const char *line = nl + 1;
        size_t rest = size - (size_t) (line - s);
        size_t llen;
        nl = memchr(line, '\n', rest);
        llen = nl != NULL ? (size_t) (nl - line) : rest;
        if (egress_hostport_parse(host, &port, line, llen, 443, &err) > 0) {
            (void) egress_allow_match(al, host, strlen(host), port);
        }
        (void) egress_allow_match(al, line, llen, 443);
    }
    egress_allow_free(al);
    egress_allow_free(al2);
    return 0;
}
