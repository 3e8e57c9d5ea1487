
/*
 * libFuzzer target for the module's chunked request body decoder
 * (ngx_stream_egress_chunked_parse). The input is the body; its first byte
 * seeds how it is cut into pieces. Fed whole or piece by piece, the decoder
 * must reach the same verdict at the same offset (it runs on whatever
 * recv() returned), a finished body ends in CRLF CRLF, an error says why
 * and sticks, and nothing is consumed past the end of the body.
 */


#include "ngx_stream_egress_module.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                       *body;
    size_t                        len, n, piece, used, whole;
    uint32_t                      seed;
    ngx_int_t                     rc, rc_whole;
    ngx_stream_egress_chunked_t   ck;

    if (size == 0) {
        return 0;
    }

    seed = data[0];
    len = size - 1;

    /* an exact copy: ASan sees any read past the end */
    body = malloc(len ? len : 1);
    if (body == NULL) {
        return 0;
    }

    memcpy(body, data + 1, len);

    ngx_memzero(&ck, sizeof(ngx_stream_egress_chunked_t));
    whole = ngx_stream_egress_chunked_parse(&ck, body, len, &rc_whole);

    if (whole > len) {
        abort();
    }

    switch (rc_whole) {

    case NGX_OK:
        if (whole != len || ck.done) {
            abort();
        }
        break;

    case NGX_DONE:
        if (!ck.done || whole < 5
            || memcmp(body + whole - 4, "\r\n\r\n", 4) != 0)
        {
            abort();
        }

        /* after the end nothing more belongs to the body */
        if (ngx_stream_egress_chunked_parse(&ck, body + whole, len - whole,
                                            &rc)
            != 0 || (whole < len && rc != NGX_DONE))
        {
            abort();
        }
        break;

    case NGX_ERROR:
        if (ck.error == NULL || whole >= len) {
            abort();
        }

        if (ngx_stream_egress_chunked_parse(&ck, body, len, &rc) != 0
            || rc != NGX_ERROR)
        {
            abort();
        }
        break;

    default:
        abort();
    }

    /* the same body in pieces of 1..64 bytes */

    ngx_memzero(&ck, sizeof(ngx_stream_egress_chunked_t));
    used = 0;
    rc = NGX_OK;

    while (used < len) {
        seed = seed * 1103515245 + 12345;
        piece = ngx_min(len - used, ((seed >> 16) & 63) + 1);

        n = ngx_stream_egress_chunked_parse(&ck, body + used, piece, &rc);

        if (n > piece) {
            abort();
        }

        used += n;

        if (rc != NGX_OK) {
            break;
        }

        if (n != piece) {
            abort();
        }
    }

    if (rc != rc_whole || used != whole) {
        abort();
    }

    free(body);

    return 0;
}
