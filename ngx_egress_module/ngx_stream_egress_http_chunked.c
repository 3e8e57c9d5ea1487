
/*
 * The chunked request body (RFC 9112 7.1), walked as the proxy relays it.
 */


#include "ngx_stream_egress_http.h"


#define NGX_STREAM_EGRESS_CHUNK_LINE   4096
#define NGX_STREAM_EGRESS_CHUNK_DIGITS 16
#define NGX_STREAM_EGRESS_TRAILER_MAX  16384
#define NGX_STREAM_EGRESS_CHUNK_SIZE_MAX  ((uint64_t) 1 << 48)


/*
 * Walks a chunked body (RFC 9112 7.1). Returns how many of the len bytes
 * belong to the body; *rc is NGX_DONE when the body ended there, NGX_OK
 * when more is needed, NGX_ERROR on malformed framing (ck->error says
 * why, and every later call fails too).
 *
 * Strict on purpose: the origin and any other hop must find the same end
 * of the body, or the bytes after it become a smuggled request. So lines
 * end in CRLF only, a chunk size is 1-16 hex digits and below 2^48,
 * extensions and trailer fields are bounded and free of control bytes,
 * trailer lines are "name: value", and chunk data ends in CRLF.
 */

enum {
    ck_size_start = 0,
    ck_size,
    ck_size_ws,
    ck_ext,
    ck_size_lf,
    ck_data,
    ck_data_cr,
    ck_data_lf,
    ck_trailer_start,
    ck_trailer_name,
    ck_trailer_value,
    ck_trailer_lf,
    ck_last_lf,
    ck_invalid
};


size_t
ngx_stream_egress_chunked_parse(ngx_stream_egress_chunked_t *ck,
    const u_char *p, size_t len, ngx_int_t *rc)
{
    size_t         n;
    u_char         ch, d;
    const u_char  *start, *last;

    start = p;
    last = p + len;
    *rc = NGX_OK;

    if (ck->state == ck_invalid) {
        *rc = NGX_ERROR;
        return 0;
    }

    while (p < last) {

        if (ck->done) {
            *rc = NGX_DONE;
            return p - start;
        }

        ch = *p;

        switch (ck->state) {

        case ck_size_start:
        case ck_size:
            d = (u_char) (ch | 0x20);

            if ((ch >= '0' && ch <= '9') || (d >= 'a' && d <= 'f')) {

                if (++ck->line > NGX_STREAM_EGRESS_CHUNK_DIGITS) {
                    ck->error = "chunk size has too many digits";
                    goto invalid;
                }

                if (ck->size > (NGX_STREAM_EGRESS_CHUNK_SIZE_MAX >> 4)) {
                    ck->error = "chunk size too large";
                    goto invalid;
                }

                ck->size = ck->size * 16
                           + ((ch <= '9') ? (ch - '0') : (d - 'a' + 10));

                if (ck->size > NGX_STREAM_EGRESS_CHUNK_SIZE_MAX) {
                    ck->error = "chunk size too large";
                    goto invalid;
                }

                ck->state = ck_size;
                break;
            }

            if (ck->state == ck_size_start) {
                ck->error = "chunk size is not a hexadecimal number";
                goto invalid;
            }

            if (ch == ';') {
                ck->state = ck_ext;
                break;
            }

            if (ch == ' ' || ch == '\t') {
                ck->state = ck_size_ws;
                break;
            }

            if (ch == CR) {
                ck->state = ck_size_lf;
                break;
            }

            ck->error = (ch == LF) ? "bare LF after a chunk size"
                                   : "invalid character in a chunk size";
            goto invalid;

        case ck_size_ws:
            /* BWS is allowed only in front of an extension */

            if (++ck->line > NGX_STREAM_EGRESS_CHUNK_LINE) {
                ck->error = "chunk size line too long";
                goto invalid;
            }

            if (ch == ' ' || ch == '\t') {
                break;
            }

            if (ch == ';') {
                ck->state = ck_ext;
                break;
            }

            ck->error = "invalid character in a chunk size line";
            goto invalid;

        case ck_ext:
            if (ch == CR) {
                ck->state = ck_size_lf;
                break;
            }

            if (++ck->line > NGX_STREAM_EGRESS_CHUNK_LINE) {
                ck->error = "chunk extension too long";
                goto invalid;
            }

            if ((ch < ' ' && ch != '\t') || ch == 0x7f) {
                ck->error = (ch == LF) ? "bare LF after a chunk extension"
                                       : "control character in a chunk "
                                         "extension";
                goto invalid;
            }

            break;

        case ck_size_lf:
            if (ch != LF) {
                ck->error = "CR without LF in a chunk size line";
                goto invalid;
            }

            ck->line = 0;
            ck->state = (ck->size == 0) ? ck_trailer_start : ck_data;
            break;

        case ck_data:
            n = ngx_min((uint64_t) (last - p), ck->size);
            ck->size -= n;
            p += n;

            if (ck->size == 0) {
                ck->state = ck_data_cr;
            }

            continue;

        case ck_data_cr:
            if (ch != CR) {
                ck->error = "chunk data not followed by CRLF";
                goto invalid;
            }

            ck->state = ck_data_lf;
            break;

        case ck_data_lf:
            if (ch != LF) {
                ck->error = "chunk data not followed by CRLF";
                goto invalid;
            }

            ck->state = ck_size_start;
            break;

        case ck_trailer_start:
            if (ch == CR) {
                ck->state = ck_last_lf;
                break;
            }

            if (!ngx_stream_egress_is_token_char(ch)) {
                ck->error = (ch == LF) ? "bare LF after the last chunk"
                                       : "malformed trailer field";
                goto invalid;
            }

            ck->state = ck_trailer_name;

            /* fall through */

        case ck_trailer_name:
            if (++ck->line > NGX_STREAM_EGRESS_TRAILER_MAX) {
                ck->error = "trailer section too large";
                goto invalid;
            }

            if (ch == ':') {
                ck->state = ck_trailer_value;
                break;
            }

            if (!ngx_stream_egress_is_token_char(ch)) {
                ck->error = "malformed trailer field";
                goto invalid;
            }

            break;

        case ck_trailer_value:
            if (ch == CR) {
                ck->state = ck_trailer_lf;
                break;
            }

            if (++ck->line > NGX_STREAM_EGRESS_TRAILER_MAX) {
                ck->error = "trailer section too large";
                goto invalid;
            }

            if ((ch < ' ' && ch != '\t') || ch == 0x7f) {
                ck->error = (ch == LF) ? "bare LF in a trailer field"
                                       : "control character in a trailer "
                                         "field";
                goto invalid;
            }

            break;

        case ck_trailer_lf:
            if (ch != LF) {
                ck->error = "CR without LF in a trailer field";
                goto invalid;
            }

            ck->state = ck_trailer_start;
            break;

        case ck_last_lf:
            if (ch != LF) {
                ck->error = "CR without LF after the last chunk";
                goto invalid;
            }

            ck->done = 1;
            break;
        }

        p++;
    }

    if (ck->done) {
        *rc = NGX_DONE;
    }

    return p - start;

invalid:

    ck->state = ck_invalid;
    *rc = NGX_ERROR;

    return p - start;
}
