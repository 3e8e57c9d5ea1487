
/*
 * The HTTP/1.x grammar the module's parsers share: lines, header fields,
 * token lists. The parsers' API is in ngx_stream_egress_module.h; they do
 * no I/O (the event handling is the proxy's).
 *
 *   ngx_stream_egress_http.c           lines, header fields, token lists
 *   ngx_stream_egress_http_request.c   the proxy request head and its
 *                                      rewrite to origin-form
 *   ngx_stream_egress_http_chunked.c   chunked body framing
 *   ngx_stream_egress_http_response.c  the response head: collect, rewrite;
 *                                      the declared body: count
 *
 * The parsers use http.c; the response counts a chunked body with the
 * chunked parser, and nothing else uses another parser.
 */


#ifndef _NGX_STREAM_EGRESS_HTTP_H_INCLUDED_
#define _NGX_STREAM_EGRESS_HTTP_H_INCLUDED_


#include "ngx_stream_egress_module.h"


typedef struct {
    u_char      *name;
    size_t       name_len;
    u_char      *value;
    size_t       value_len;
} ngx_stream_egress_header_t;


u_char *ngx_stream_egress_next_line(u_char *p, u_char *end,
    u_char **line_end);
ngx_int_t ngx_stream_egress_split_header(u_char *p, u_char *last,
    ngx_stream_egress_header_t *h);
ngx_uint_t ngx_stream_egress_header_is(ngx_stream_egress_header_t *h,
    const char *name);
ngx_uint_t ngx_stream_egress_connection_lists(u_char *start, u_char *end,
    ngx_stream_egress_header_t *h, ngx_uint_t proxy_connection);
ngx_uint_t ngx_stream_egress_is_token_char(u_char ch);


#endif /* _NGX_STREAM_EGRESS_HTTP_H_INCLUDED_ */
