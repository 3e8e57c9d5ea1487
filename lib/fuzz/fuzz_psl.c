/*
 * fuzz_psl.c: libFuzzer target for the public suffix list reader.
 *
 * The input is list text; every line of it is then also checked as a name,
 * with the list and with the built-in rule. A name that a rule of the list
 * names exactly must never come back as EGRESS_PSL_OK (unless some "!"
 * exception rule may have undone it).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_host.h"
#include "egress_psl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *) data, *end = s + size;
    char rule[EGRESS_PSL_RULE_BUF], name[EGRESS_HOST_BUF];
    egress_error_t err;
    egress_psl_t *psl = egress_psl_parse(s, size, "fuzz", &err);
    int exceptions = memchr(data, '!', size) != NULL;

    if (psl == NULL && err.code != EGRESS_ERR_VALUE && err.code != EGRESS_ERR_SYSTEM) {
        abort();
    }
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t) (end - s));
        size_t len = nl != NULL ? (size_t) (nl - s) : (size_t) (end - s);
        int plain = len > 0 && s[0] != '!' && s[0] != '*' && s[0] != '/';
        if (egress_host_normalize_reason(name, s, len, NULL) == EGRESS_HOST_NAME) {
            int r = egress_psl_check(psl, name, rule);
            if (r < EGRESS_PSL_OK || r > EGRESS_PSL_BELOW) {
                abort();
            }
            /* a valid, lower-case rule line names a public suffix */
            if (psl != NULL && plain && memcmp(name, s, len) == 0 && name[len] == '\0' &&
                r == EGRESS_PSL_OK && strcmp(name, "localhost") != 0 &&
                strcmp(name, "test") != 0 && strcmp(name, "example") != 0 &&
                strcmp(name, "invalid") != 0 && !exceptions) {
                abort();
            }
            (void) egress_psl_check(NULL, name, rule);
        }
        s += len + 1;
    }
    egress_psl_free(psl);
    return 0;
}
