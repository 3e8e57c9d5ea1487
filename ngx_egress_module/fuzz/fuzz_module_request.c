
/*
 * libFuzzer target for the module's proxy request head parser: the head
 * end scanner, ngx_stream_egress_parse_request, the header iterator and
 * the origin-form rewrite, and the chunked check of body bytes buffered
 * with the head, in the order ngx_stream_egress_proxy.c calls them.
 *
 * A head that parses must rewrite into at most rewrite_size bytes, and
 * the rewritten head must be one clean request head: CRLF line ends only,
 * no bare CR or LF, and its only empty line at the end. Anything else
 * would let a client split one request into two on the origin's side.
 */


#include "ngx_stream_egress_module.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_head(u_char *p, u_char *last);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                       *in, *end, *out, *last, *h;
    size_t                        cap;
    ngx_int_t                     rc;
    ngx_str_t                     name, value;
    ngx_uint_t                    i;
    ngx_stream_egress_chunked_t   ck;
    ngx_stream_egress_request_t   r;

    in = malloc(size ? size : 1);
    if (in == NULL) {
        return 0;
    }

    memcpy(in, data, size);

    end = ngx_stream_egress_find_head_end(in, in + size);

    if (end == NULL) {
        free(in);
        return 0;
    }

    if (end < in + 2 || end > in + size || end[-1] != LF) {
        abort();
    }

    rc = ngx_stream_egress_parse_request(&r, in, end);

    if (rc != NGX_OK) {
        if (rc != NGX_STREAM_BAD_REQUEST || r.error == NULL) {
            abort();
        }

        free(in);
        return 0;
    }

    if (r.host_len == 0 || r.host_len >= EGRESS_HOST_BUF || r.port == 0
        || r.host[r.host_len] != '\0')
    {
        abort();
    }

    if (r.connect && (r.chunked || r.content_length != -1 || r.keepalive)) {
        abort();
    }

    if (r.chunked && r.content_length != -1) {
        abort();
    }

    /* the header iterator stops at the empty line */

    h = ngx_strlchr(in, end, LF) + 1;

    for (i = 0; i < 100000; i++) {
        rc = ngx_stream_egress_next_header(&h, end, &name, &value);

        if (rc != NGX_OK) {
            break;
        }

        if (name.len == 0 || name.data < in || value.data + value.len > end)
        {
            abort();
        }

        (void) ngx_stream_egress_has_token(value.data, value.len, "close");
    }

    if (!r.connect) {
        cap = ngx_stream_egress_rewrite_size(&r, in, end);

        out = malloc(cap);
        if (out == NULL) {
            free(in);
            return 0;
        }

        last = ngx_stream_egress_rewrite_request(&r, in, end, out);

        if (last < out || (size_t) (last - out) > cap) {
            abort();
        }

        fuzz_check_head(out, last);

        free(out);
    }

    if (r.chunked) {
        ngx_memzero(&ck, sizeof(ngx_stream_egress_chunked_t));
        (void) ngx_stream_egress_chunked_parse(&ck, end, in + size - end, &rc);
    }

    free(in);

    return 0;
}


static void
fuzz_check_head(u_char *p, u_char *last)
{
    u_char  *q;

    if (last - p < 4 || ngx_strncmp(last - 4, CRLF CRLF, 4) != 0) {
        abort();
    }

    for (q = p; q < last; q++) {
        if (*q == CR && (q + 1 == last || q[1] != LF)) {
            abort();
        }

        if (*q == LF && (q == p || q[-1] != CR)) {
            abort();
        }

        if (*q == '\0') {
            abort();
        }

        /* an empty line before the end would end the head early */
        if (*q == LF && q + 2 < last - 1 && q[1] == CR && q[2] == LF) {
            abort();
        }
    }
}
