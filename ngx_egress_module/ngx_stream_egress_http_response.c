
/*
 * The head of the response flowing back to the browser: collected from
 * the download bytes, 1xx heads told apart, the final head rewritten for
 * the browser's hop. No I/O: ngx_stream_egress_relay.c feeds it.
 */


#include "ngx_stream_egress_http.h"


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
    ngx_uint_t                   length, chunked, drop;
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
            length = 1;

        } else if (ngx_stream_egress_header_is(&h, "Transfer-Encoding")) {
            chunked = ngx_stream_egress_has_token(h.value, h.value_len,
                                                  "chunked");
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

    rs->delimited = (head_request || status == 204 || status == 304
                     || chunked || length);

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
