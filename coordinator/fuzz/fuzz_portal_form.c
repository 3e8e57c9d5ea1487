/*
 * fuzz_portal_form.c: libFuzzer target for the portal's form and cookie
 * parsers. The input is tried as a form body and as a Cookie header; results
 * must stay inside the output buffer, be NUL-terminated and NUL-free.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portal_form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int n, const char *out, size_t cap)
{
    if (n == PORTAL_FORM_ABSENT || n == PORTAL_FORM_MALFORMED) {
        return;
    }
    if (n < 0 || (size_t) n >= cap || strlen(out) != (size_t) n) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *names[] = {"token", "csrf", "egress_portal", "a", ""};
    const char *s = (const char *) data;
    char small[8], big[256];
    size_t i;
    int n;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        n = portal_form_get(s, size, names[i], small, sizeof(small));
        check(n, small, sizeof(small));
        n = portal_form_get(s, size, names[i], big, sizeof(big));
        check(n, big, sizeof(big));
        n = portal_cookie_get(s, size, names[i], small, sizeof(small));
        check(n, small, sizeof(small));
        n = portal_cookie_get(s, size, names[i], big, sizeof(big));
        check(n, big, sizeof(big));
    }
    return 0;
}
