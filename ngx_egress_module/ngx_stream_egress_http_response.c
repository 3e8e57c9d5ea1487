
/*
 * The head of the response flowing back to the browser: collected from
 * the download bytes, 1xx heads told apart, the final head rewritten for
 * the browser's hop. No I/O: ngx_stream_egress_relay.c feeds it.
 */


#include "ngx_stream_egress_http.h"


static ngx_uint_t ngx_stream_egress_ends_in_chunked(u_char *value,
    size_t len);


/*
 * Collects the head of the response flowing back to the browser. Returns
 * how many of the len bytes it took; then rs->head_len is set when rs->buf
 * holds a complete head (rs->interim for a 1xx one), or rs->overflow when
 * the head does not fit. The caller forwards or rewrites the head and
 * resets rs->len before feeding more.
 */

size_t
ngx_stream_egress_response_feed(ngx_stream_egress_response_t *rs,
    const u_char *p, size_t len)
{
    size_t   n, from, old;
    u_char  *e;

    n = ngx_min(len, rs->cap - rs->len);

    if (n == 0) {
        rs->overflow = 1;
        return 0;
    }

    old = rs->len;
    ngx_memcpy(rs->buf + rs->len, p, n);
    rs->len += n;

    from = old > 3 ? old - 3 : 0;

    e = ngx_stream_egress_find_head_end(rs->buf + from, rs->buf + rs->len);

    if (e == NULL) {
        if (rs->len == rs->cap) {
            rs->overflow = 1;
        }

        return n;
    }

    rs->head_len = e - rs->buf;
    rs->len = rs->head_len;

    /* a 1xx head other than 101 announces another head */

    rs->interim = (rs->head_len > 12 && rs->buf[9] == '1'
                   && !(rs->buf[10] == '0' && rs->buf[11] == '1'));

    return rs->head_len - old;
}


/*
 * Rewrites a complete final response head for the browser's hop: the
 * status line as is, end-to-end headers in order, hop-by-hop ones
 * (Connection and what it lists, Keep-Alive, Proxy-Connection) replaced by
 * our own Connection header. Sets rs->status and rs->delimited. out needs
 * ngx_stream_egress_response_rewrite_size(rs) bytes. Returns the end of the
 * output.
 */

u_char *
ngx_stream_egress_rewrite_response(ngx_stream_egress_response_t *rs,
    ngx_uint_t head_request, ngx_uint_t *keep, u_char *out)
{
    u_char                      *p, *end, *next, *line_end;
    ngx_int_t                    status;
    off_t                        length, n;
    ngx_uint_t                   lengths, coded, chunked, drop;
    ngx_stream_egress_header_t   h;

    p = rs->buf;
    end = rs->buf + rs->head_len;

    next = ngx_stream_egress_next_line(p, end, &line_end);

    if (next == NULL || line_end - p < 12
        || ngx_strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
    {
        /* not HTTP/1.x: pass it on and let the connection close */
        *keep = 0;
        return ngx_cpymem(out, rs->buf, rs->head_len);
    }

    status = ngx_atoi(p + 9, 3);
    rs->status = (status == NGX_ERROR) ? 0 : status;

    out = ngx_cpymem(out, p, line_end - p);
    *out++ = CR;
    *out++ = LF;

    length = 0;
    lengths = 0;
    coded = 0;
    chunked = 0;

    for (p = next; ; p = next) {
        next = ngx_stream_egress_next_line(p, end, &line_end);
        if (next == NULL || line_end == p) {
            break;
        }

        if (ngx_stream_egress_split_header(p, line_end, &h) != NGX_OK) {
            continue;
        }

        drop = 0;

        if (ngx_stream_egress_header_is(&h, "Connection")
            || ngx_stream_egress_header_is(&h, "Keep-Alive")
            || ngx_stream_egress_header_is(&h, "Proxy-Connection"))
        {
            drop = 1;

        } else if (ngx_stream_egress_header_is(&h, "Content-Length")) {
            n = ngx_atoof(h.value, h.value_len);

            /* a second, different length is as bad as a broken one */
            if (n == NGX_ERROR || (lengths && n != length)) {
                length = NGX_ERROR;

            } else if (length != NGX_ERROR) {
                length = n;
            }

            lengths++;

        } else if (ngx_stream_egress_header_is(&h, "Transfer-Encoding")) {
            coded = 1;
            chunked = ngx_stream_egress_ends_in_chunked(h.value,
                                                        h.value_len);
        }

        if (!drop) {
            drop = ngx_stream_egress_connection_lists(rs->buf, end, &h, 0);
        }

        if (!drop) {
            out = ngx_cpymem(out, p, line_end - p);
            *out++ = CR;
            *out++ = LF;
        }
    }

    /*
     * Counted framing only: a length we cannot read, or a length beside a
     * coding, or a coding that does not end in chunked, ends at the close.
     */
    rs->body_rest = 0;
    rs->body_is_chunked = 0;

    if (status == 101) {
        rs->delimited = 0;

    } else if (head_request || status == 204 || status == 304) {
        rs->delimited = 1;

    } else if (coded) {
        rs->delimited = (chunked && lengths == 0);
        rs->body_is_chunked = chunked;

    } else {
        rs->delimited = (lengths && length != NGX_ERROR);
        rs->body_rest = rs->delimited ? length : 0;
    }

    ngx_memzero(&rs->body_chunked, sizeof(ngx_stream_egress_chunked_t));
    rs->body_done = (rs->delimited && !rs->body_is_chunked
                     && rs->body_rest == 0);
    rs->body_error = 0;

    if (!rs->delimited) {
        /* the body ends when the origin closes: so must the browser's */
        *keep = 0;
    }

    if (*keep) {
        out = ngx_cpymem(out, "Connection: keep-alive" CRLF CRLF,
                         sizeof("Connection: keep-alive" CRLF CRLF) - 1);

    } else {
        out = ngx_cpymem(out, "Connection: close" CRLF CRLF,
                         sizeof("Connection: close" CRLF CRLF) - 1);
    }

    return out;
}


/*
 * Of len download bytes after a delimited head, how many still belong to
 * the body its head declared. The rest must never reach a browser that
 * may reuse the connection: it would read them as the next response.
 */

size_t
ngx_stream_egress_response_body(ngx_stream_egress_response_t *rs,
    const u_char *p, size_t len)
{
    size_t     n;
    ngx_int_t  rc;

    if (rs->body_done || rs->body_error) {
        return 0;
    }

    if (!rs->body_is_chunked) {
        n = ((off_t) len < rs->body_rest) ? len : (size_t) rs->body_rest;
        rs->body_rest -= n;
        rs->body_done = (rs->body_rest == 0);
        return n;
    }

    n = ngx_stream_egress_chunked_parse(&rs->body_chunked, p, len, &rc);

    if (rc == NGX_DONE) {
        rs->body_done = 1;

    } else if (rc == NGX_ERROR) {
        rs->body_error = 1;
    }

    return n;
}


/* Transfer-Encoding's last coding is chunked (RFC 9112 6.3) */

static ngx_uint_t
ngx_stream_egress_ends_in_chunked(u_char *value, size_t len)
{
    u_char  *end, *start;

    end = value + len;

    while (end > value && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    start = end;

    while (start > value && start[-1] != ',' && start[-1] != ' '
           && start[-1] != '\t')
    {
        start--;
    }

    if (end - start != sizeof("chunked") - 1
        || ngx_strncasecmp(start, (u_char *) "chunked", end - start) != 0)
    {
        return 0;
    }

    /* only separators may stand between the previous coding and ours */
    while (start > value && (start[-1] == ' ' || start[-1] == '\t')) {
        start--;
    }

    return (start == value || start[-1] == ',');
}
