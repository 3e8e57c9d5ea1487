
/*
 * libFuzzer target for the module's response head handling: the bytes
 * from the origin, cut into pieces by the first input byte, go through
 * ngx_stream_egress_response_feed into a small buffer; interim heads are
 * dropped and the final head is rewritten, as ngx_stream_egress_proxy.c
 * does. The rewrite must fit in ngx_stream_egress_response_rewrite_size() and the feed must
 * never take more than it was given. The bytes after a delimited head go
 * through ngx_stream_egress_response_body in the same pieces: it must
 * never claim more than it was given, nor more than a declared length.
 */


#include "ngx_stream_egress_module.h"


#define FUZZ_RESPONSE_CAP  1024


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                        *in, *p, *out, *last;
    size_t                         len, used, piece;
    uint32_t                       seed;
    ngx_uint_t                     keep;
    ngx_stream_egress_response_t   rs;
    u_char                         buf[FUZZ_RESPONSE_CAP];

    if (size < 2) {
        return 0;
    }

    seed = data[0];
    keep = data[1] & 1;
    len = size - 2;

    in = malloc(len ? len : 1);
    if (in == NULL) {
        return 0;
    }

    memcpy(in, data + 2, len);

    ngx_memzero(&rs, sizeof(ngx_stream_egress_response_t));
    rs.buf = buf;
    rs.cap = sizeof(buf);

    p = in;

    while (p < in + len && !rs.done) {
        seed = seed * 1103515245 + 12345;
        piece = ngx_min((size_t) (in + len - p), ((seed >> 16) & 127) + 1);

        used = ngx_stream_egress_response_feed(&rs, p, piece);

        if (used > piece || rs.len > rs.cap || rs.head_len > rs.len) {
            abort();
        }

        p += used;

        if (rs.overflow) {
            break;
        }

        if (rs.head_len == 0) {
            if (used != piece) {
                abort();
            }

            continue;
        }

        if (rs.interim) {
            rs.len = 0;
            rs.head_len = 0;
            rs.interim = 0;
            continue;
        }

        out = malloc(ngx_stream_egress_response_rewrite_size(&rs));
        if (out == NULL) {
            break;
        }

        last = ngx_stream_egress_rewrite_response(&rs, data[1] & 2, &keep,
                                                  out);

        if (last < out || (size_t) (last - out) > ngx_stream_egress_response_rewrite_size(&rs)) {
            abort();
        }

        free(out);
        rs.done = 1;
    }

    if (rs.done && rs.delimited) {
        off_t  declared;

        declared = rs.body_rest;

        while (p < in + len) {
            seed = seed * 1103515245 + 12345;
            piece = ngx_min((size_t) (in + len - p), ((seed >> 16) & 127) + 1);

            used = ngx_stream_egress_response_body(&rs, p, piece);

            if (used > piece
                || (!rs.body_is_chunked && (off_t) used > declared))
            {
                abort();
            }

            declared -= rs.body_is_chunked ? 0 : (off_t) used;
            p += piece;
        }
    }

    free(in);

    return 0;
}
