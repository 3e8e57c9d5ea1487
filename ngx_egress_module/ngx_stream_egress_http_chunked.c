
/*
 * The chunked request body (RFC 9112 7.1), walked as the proxy relays it:
 * ngx_stream_egress_chunked_parse says how many bytes belong to the body
 * and whether it ended, whatever pieces recv() cut it into.
 *
 * Strict on purpose: the origin and any other hop must find the same end
 * of the body, or the bytes after it become a smuggled request. So lines
 * end in CRLF only, a chunk size is 1-16 hex digits and below 2^48,
 * extensions and trailer fields are bounded and free of control bytes,
 * trailer lines are "name: value", and chunk data ends in CRLF.
 */


#include "ngx_stream_egress_http.h"


#define NGX_STREAM_EGRESS_CHUNK_LINE      4096
#define NGX_STREAM_EGRESS_CHUNK_DIGITS    16
#define NGX_STREAM_EGRESS_TRAILER_MAX     16384
#define NGX_STREAM_EGRESS_CHUNK_SIZE_MAX  ((uint64_t) 1 << 48)


/*
 * The states, in ck->state between calls; every byte but chunk data moves
 * through one of them:
 *
 *   size line:  size_start -> size [-> size_ws] [-> ext] -> size_lf
 *   data:       size_lf -> data -> data_cr -> data_lf -> size_start
 *   trailer:    size_lf (size 0) -> trailer_start
 *               trailer_start -> trailer_name -> trailer_value
 *                   -> trailer_lf -> trailer_start
 *   the end:    trailer_start (CR) -> last_lf -> ck->done
 *
 * A byte that fits no state sets ck->error and moves to invalid, for good.
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


static ngx_int_t ngx_stream_egress_chunked_size(
    ngx_stream_egress_chunked_t *ck, u_char ch);
static ngx_int_t ngx_stream_egress_chunked_size_line(
    ngx_stream_egress_chunked_t *ck, u_char ch);
static ngx_int_t ngx_stream_egress_chunked_data_end(
    ngx_stream_egress_chunked_t *ck, u_char ch);
static ngx_int_t ngx_stream_egress_chunked_trailer(
    ngx_stream_egress_chunked_t *ck, u_char ch);
static ngx_int_t ngx_stream_egress_chunked_error(
    ngx_stream_egress_chunked_t *ck, const char *error);
static ngx_uint_t ngx_stream_egress_is_ctl(u_char ch);


/*
 * Walks len bytes of a chunked body. Returns how many of them belong to
 * the body; *rc is NGX_DONE when the body ended there, NGX_OK when more is
 * needed, NGX_ERROR on malformed framing (ck->error says why, the return
 * value is the offset of the bad byte, and every later call fails too).
 */

size_t
ngx_stream_egress_chunked_parse(ngx_stream_egress_chunked_t *ck,
    const u_char *p, size_t len, ngx_int_t *rc)
{
    size_t         n;
    ngx_int_t      step;
    const u_char  *start, *last;

    start = p;
    last = p + len;
    *rc = NGX_OK;

    if (ck->state == ck_invalid) {
        *rc = NGX_ERROR;
        return 0;
    }

    while (p < last && !ck->done) {

        switch (ck->state) {

        case ck_data:
            /* chunk data passes as a whole, not byte by byte */
            n = ngx_min((uint64_t) (last - p), ck->size);
            ck->size -= n;
            p += n;

            if (ck->size == 0) {
                ck->state = ck_data_cr;
            }

            continue;

        case ck_size_start:
        case ck_size:
            step = ngx_stream_egress_chunked_size(ck, *p);
            break;

        case ck_size_ws:
        case ck_ext:
        case ck_size_lf:
            step = ngx_stream_egress_chunked_size_line(ck, *p);
            break;

        case ck_data_cr:
        case ck_data_lf:
            step = ngx_stream_egress_chunked_data_end(ck, *p);
            break;

        default:
            step = ngx_stream_egress_chunked_trailer(ck, *p);
            break;
        }

        if (step != NGX_OK) {
            *rc = NGX_ERROR;
            return p - start;
        }

        p++;
    }

    if (ck->done) {
        *rc = NGX_DONE;
    }

    return p - start;
}


/* size_start, size: the hex digits, then what may follow them */

static ngx_int_t
ngx_stream_egress_chunked_size(ngx_stream_egress_chunked_t *ck, u_char ch)
{
    u_char  d;

    d = (u_char) (ch | 0x20);

    if ((ch >= '0' && ch <= '9') || (d >= 'a' && d <= 'f')) {

        if (++ck->line > NGX_STREAM_EGRESS_CHUNK_DIGITS) {
            return ngx_stream_egress_chunked_error(ck,
                                           "chunk size has too many digits");
        }

        if (ck->size > (NGX_STREAM_EGRESS_CHUNK_SIZE_MAX >> 4)) {
            return ngx_stream_egress_chunked_error(ck, "chunk size too large");
        }

        ck->size = ck->size * 16 + ((ch <= '9') ? (ch - '0') : (d - 'a' + 10));

        if (ck->size > NGX_STREAM_EGRESS_CHUNK_SIZE_MAX) {
            return ngx_stream_egress_chunked_error(ck, "chunk size too large");
        }

        ck->state = ck_size;
        return NGX_OK;
    }

    if (ck->state == ck_size_start) {
        return ngx_stream_egress_chunked_error(ck,
                                   "chunk size is not a hexadecimal number");
    }

    switch (ch) {

    case ';':
        ck->state = ck_ext;
        return NGX_OK;

    case ' ':
    case '\t':
        ck->state = ck_size_ws;
        return NGX_OK;

    case CR:
        ck->state = ck_size_lf;
        return NGX_OK;

    case LF:
        return ngx_stream_egress_chunked_error(ck,
                                               "bare LF after a chunk size");

    default:
        return ngx_stream_egress_chunked_error(ck,
                                       "invalid character in a chunk size");
    }
}


/* size_ws, ext, size_lf: the rest of the size line */

static ngx_int_t
ngx_stream_egress_chunked_size_line(ngx_stream_egress_chunked_t *ck,
    u_char ch)
{
    switch (ck->state) {

    case ck_size_ws:
        /* BWS is allowed only in front of an extension */

        if (++ck->line > NGX_STREAM_EGRESS_CHUNK_LINE) {
            return ngx_stream_egress_chunked_error(ck,
                                                "chunk size line too long");
        }

        if (ch == ' ' || ch == '\t') {
            return NGX_OK;
        }

        if (ch == ';') {
            ck->state = ck_ext;
            return NGX_OK;
        }

        return ngx_stream_egress_chunked_error(ck,
                                  "invalid character in a chunk size line");

    case ck_ext:
        if (ch == CR) {
            ck->state = ck_size_lf;
            return NGX_OK;
        }

        if (++ck->line > NGX_STREAM_EGRESS_CHUNK_LINE) {
            return ngx_stream_egress_chunked_error(ck,
                                                "chunk extension too long");
        }

        if (ch == LF) {
            return ngx_stream_egress_chunked_error(ck,
                                         "bare LF after a chunk extension");
        }

        if (ngx_stream_egress_is_ctl(ch)) {
            return ngx_stream_egress_chunked_error(ck,
                                 "control character in a chunk extension");
        }

        return NGX_OK;

    default: /* ck_size_lf */
        if (ch != LF) {
            return ngx_stream_egress_chunked_error(ck,
                                      "CR without LF in a chunk size line");
        }

        ck->line = 0;
        ck->state = (ck->size == 0) ? ck_trailer_start : ck_data;
        return NGX_OK;
    }
}


/* data_cr, data_lf: the CRLF after chunk data */

static ngx_int_t
ngx_stream_egress_chunked_data_end(ngx_stream_egress_chunked_t *ck,
    u_char ch)
{
    if (ch != ((ck->state == ck_data_cr) ? CR : LF)) {
        return ngx_stream_egress_chunked_error(ck,
                                         "chunk data not followed by CRLF");
    }

    ck->state = (ck->state == ck_data_cr) ? ck_data_lf : ck_size_start;

    return NGX_OK;
}


/*
 * trailer_start, trailer_name, trailer_value, trailer_lf, last_lf: the
 * trailer fields after the last chunk and the empty line that ends the
 * body. ck->line counts the whole trailer section.
 */

static ngx_int_t
ngx_stream_egress_chunked_trailer(ngx_stream_egress_chunked_t *ck,
    u_char ch)
{
    switch (ck->state) {

    case ck_trailer_start:
        if (ch == CR) {
            ck->state = ck_last_lf;
            return NGX_OK;
        }

        if (ch == LF) {
            return ngx_stream_egress_chunked_error(ck,
                                            "bare LF after the last chunk");
        }

        if (!ngx_stream_egress_is_token_char(ch)) {
            return ngx_stream_egress_chunked_error(ck,
                                                  "malformed trailer field");
        }

        /* the byte is the name's first */
        ck->state = ck_trailer_name;

        /* fall through */

    case ck_trailer_name:
        if (++ck->line > NGX_STREAM_EGRESS_TRAILER_MAX) {
            return ngx_stream_egress_chunked_error(ck,
                                                "trailer section too large");
        }

        if (ch == ':') {
            ck->state = ck_trailer_value;
            return NGX_OK;
        }

        if (!ngx_stream_egress_is_token_char(ch)) {
            return ngx_stream_egress_chunked_error(ck,
                                                  "malformed trailer field");
        }

        return NGX_OK;

    case ck_trailer_value:
        if (ch == CR) {
            ck->state = ck_trailer_lf;
            return NGX_OK;
        }

        if (++ck->line > NGX_STREAM_EGRESS_TRAILER_MAX) {
            return ngx_stream_egress_chunked_error(ck,
                                                "trailer section too large");
        }

        if (ch == LF) {
            return ngx_stream_egress_chunked_error(ck,
                                               "bare LF in a trailer field");
        }

        if (ngx_stream_egress_is_ctl(ch)) {
            return ngx_stream_egress_chunked_error(ck,
                                     "control character in a trailer field");
        }

        return NGX_OK;

    case ck_trailer_lf:
        if (ch != LF) {
            return ngx_stream_egress_chunked_error(ck,
                                        "CR without LF in a trailer field");
        }

        ck->state = ck_trailer_start;
        return NGX_OK;

    default: /* ck_last_lf */
        if (ch != LF) {
            return ngx_stream_egress_chunked_error(ck,
                                      "CR without LF after the last chunk");
        }

        ck->done = 1;
        return NGX_OK;
    }
}


static ngx_int_t
ngx_stream_egress_chunked_error(ngx_stream_egress_chunked_t *ck,
    const char *error)
{
    ck->error = error;
    ck->state = ck_invalid;

    return NGX_ERROR;
}


/* a control byte other than HTAB */

static ngx_uint_t
ngx_stream_egress_is_ctl(u_char ch)
{
    return (ch < ' ' && ch != '\t') || ch == 0x7f;
}
