/*
 * fuzz_state.c: libFuzzer target for the resume state file parser
 * (egress_state_parse), which reads a file a previous run, another version
 * or anyone with write access to the runtime directory left behind.
 *
 * The parser must never read past the input; a failure must say why and
 * leave nothing half-read; what it accepts must be written back by
 * egress_state_format and parse again to the same state.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    egress_state_t st, back;
    egress_error_t err;
    char out[EGRESS_STATE_MAX], *buf;
    int rc, n;

    /* an exact-size copy, so ASan sees any read past the end */
    if ((buf = malloc(size ? size : 1)) == NULL)
        return 0;
    memcpy(buf, data, size);
    rc = egress_state_parse(&st, buf, size, &err);
    free(buf);
    if (rc != 0 && rc != -1)
        abort();
    if (rc == -1) {
        if (err.code == EGRESS_OK || err.message[0] == '\0' || !all_zero(&st, sizeof(st)))
            abort();
        return 0;
    }
    if (!memchr(st.session, '\0', sizeof(st.session)) ||
        !memchr(st.resume, '\0', sizeof(st.resume)))
        abort();
    if (st.resume[0] &&
        !egress_state_secret_ok(st.resume, strlen(st.resume), sizeof(st.resume)))
        abort();
    if (st.ended != 0 && (st.ended < 100 || st.ended > 9999))
        abort();
    n = egress_state_format(&st, out, sizeof(out), &err);
    if (n < 0 || egress_state_parse(&back, out, (size_t) n, &err) != 0 ||
        memcmp(&st, &back, sizeof(st)) != 0)
        abort();
    return 0;
}
