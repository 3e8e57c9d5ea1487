/*
 * fuzz_upgrade.c: libFuzzer target for the WebSocket upgrade answer parser
 * (egress_upgrade_parse), the first bytes from the network the agent and
 * the module read, and a refusal's body (egress_upgrade_body,
 * egress_upgrade_refusal_text).
 *
 * The parser must never read past the input, must say "not yet" only below
 * the head bound, and a complete head must be inside the input and the bound,
 * with a three-digit status and a NUL-terminated subprotocol. Every prefix
 * of an input that parses must parse as "not yet" or as the same head.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_upgrade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    egress_upgrade_resp_t r, r2;
    egress_error_t err;
    char *buf;
    int rc, rc2;

    /* an exact-size copy, so ASan sees any read past the end */
    if ((buf = malloc(size ? size : 1)) == NULL)
        return 0;
    memcpy(buf, data, size);
    rc = egress_upgrade_parse(&r, buf, size, accept, &err);
    if (rc < -1 || rc > 1)
        abort();
    if (rc == 0 && size >= EGRESS_UPGRADE_HEAD_MAX)
        abort();
    if (rc == -1 && (err.code == EGRESS_OK || err.message[0] == '\0'))
        abort();
    if (rc == 1) {
        if (r.head_len < 4 || r.head_len > size || r.head_len > EGRESS_UPGRADE_HEAD_MAX)
            abort();
        if (r.status < 100 || r.status > 599)
            abort();
        if (memchr(r.subprotocol, '\0', sizeof(r.subprotocol)) == NULL)
            abort();
        if (memcmp(buf + r.head_len - 4, "\r\n\r\n", 4) != 0)
            abort();
        /* the head alone parses the same way */
        rc2 = egress_upgrade_parse(&r2, buf, r.head_len, accept, &err);
        if (rc2 != 1 || r2.status != r.status || r2.head_len != r.head_len ||
            strcmp(r2.subprotocol, r.subprotocol) != 0)
            abort();
        /* one byte short of the head is "not yet" */
        if (egress_upgrade_parse(&r2, buf, r.head_len - 1, accept, &err) != 0)
            abort();
        if (r.content_length < -1)
            abort();
    }
    if (rc == 1 && r.status != 101) {
        size_t body_len, n;
        char text[256];

        /* a complete body lies inside the input and its Content-Length */
        if (egress_upgrade_body(&r, size, size, 0, &body_len) != 1 ||
            r.head_len + body_len > size ||
            (r.content_length >= 0 && body_len > (size_t) r.content_length))
            abort();
        n = egress_upgrade_refusal_text(buf + r.head_len, body_len, text, sizeof(text));
        if (n >= sizeof(text) || strlen(text) != n)
            abort();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char) text[i] < ' ' || text[i] == 0x7f)
                abort();
    }
    free(buf);
    return 0;
}
