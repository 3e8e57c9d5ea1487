
/*
 * The proxy request head (CONNECT or absolute-form) and its rewrite to
 * origin-form for the host. No I/O: ngx_stream_egress_proxy.c reads the
 * head and hands it here.
 *
 * The parser is deliberately strict where leniency enables request
 * smuggling (Content-Length vs Transfer-Encoding, obs-fold, bare CR) and
 * lenient only where browsers differ harmlessly (LF-only line ends in the
 * head, which is rewritten with CRLF).
 */


#include "ngx_stream_egress_http.h"


#define NGX_STREAM_EGRESS_METHOD_MAX   32


/* hop-by-hop headers a proxy must not forward (RFC 9110, 7.6.1) */

static ngx_str_t  ngx_stream_egress_hop_headers[] = {
    ngx_string("Host"),               /* replaced by the URL authority */
    ngx_string("Connection"),
    ngx_string("Proxy-Connection"),
    ngx_string("Keep-Alive"),
    ngx_string("Proxy-Authorization"),
    ngx_string("Proxy-Authenticate"),
    ngx_string("TE"),
    ngx_string("Trailer"),
    ngx_string("Upgrade"),
    ngx_null_string
};


static ngx_int_t ngx_stream_egress_parse_request_line(
    ngx_stream_egress_request_t *r, u_char *p, u_char *last);
static ngx_int_t ngx_stream_egress_parse_url(ngx_stream_egress_request_t *r,
    u_char *p, u_char *last);
static ngx_int_t ngx_stream_egress_parse_headers(
    ngx_stream_egress_request_t *r, u_char *p, u_char *end);


/*
 * Parses a complete request head [start, end) (end is just past the empty
 * line). Returns NGX_OK, or NGX_STREAM_BAD_REQUEST with r->error set.
 */

ngx_int_t
ngx_stream_egress_parse_request(ngx_stream_egress_request_t *r,
    u_char *start, u_char *end)
{
    u_char  *line_end, *next;

    ngx_memzero(r, sizeof(ngx_stream_egress_request_t));
    r->content_length = -1;

    next = ngx_stream_egress_next_line(start, end, &line_end);
    if (next == NULL) {
        r->error = "malformed request line";
        return NGX_STREAM_BAD_REQUEST;
    }

    if (ngx_stream_egress_parse_request_line(r, start, line_end) != NGX_OK) {
        return NGX_STREAM_BAD_REQUEST;
    }

    if (ngx_stream_egress_parse_headers(r, next, end) != NGX_OK) {
        return NGX_STREAM_BAD_REQUEST;
    }

    if (r->connect) {
        /* a tunnel has no request body to frame */
        r->chunked = 0;
        r->content_length = -1;
        r->keepalive = 0;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_egress_parse_request_line(ngx_stream_egress_request_t *r,
    u_char *p, u_char *last)
{
    int             kind;
    u_char         *target;
    egress_error_t  err;

    r->method.data = p;

    while (p < last && ngx_stream_egress_is_token_char(*p)) {
        p++;
    }

    r->method.len = p - r->method.data;

    if (r->method.len == 0 || r->method.len > NGX_STREAM_EGRESS_METHOD_MAX
        || p == last || *p != ' ')
    {
        r->error = "malformed request line";
        return NGX_ERROR;
    }

    target = ++p;

    while (p < last && *p > ' ' && *p != 0x7f) {
        p++;
    }

    if (p == target || p == last || *p != ' ') {
        r->error = "malformed request line";
        return NGX_ERROR;
    }

    if (last - (p + 1) != 8
        || ngx_strncmp(p + 1, "HTTP/1.", 7) != 0
        || (p[8] != '0' && p[8] != '1'))
    {
        r->error = "unsupported HTTP version (HTTP/1.0 or HTTP/1.1 only)";
        return NGX_ERROR;
    }

    r->http_minor = p[8] - '0';

    if (r->method.len == 7 && ngx_strncmp(r->method.data, "CONNECT", 7) == 0) {
        r->connect = 1;
        r->authority.data = target;
        r->authority.len = p - target;

        kind = egress_hostport_parse((char *) r->host, &r->port,
                                     (const char *) target, p - target, 0,
                                     &err);
        if (kind < 0) {
            r->error = "CONNECT needs host:port";
            return NGX_ERROR;
        }

        r->host_kind = kind;
        r->host_len = ngx_strlen(r->host);

        return NGX_OK;
    }

    if (r->method.len == 4 && ngx_strncmp(r->method.data, "HEAD", 4) == 0) {
        r->head = 1;
    }

    return ngx_stream_egress_parse_url(r, target, p);
}


static ngx_int_t
ngx_stream_egress_parse_url(ngx_stream_egress_request_t *r, u_char *p,
    u_char *last)
{
    int             kind;
    u_char         *host, *q;
    uint16_t        default_port;
    egress_error_t  err;

    if (last - p > 7 && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0) {
        default_port = 80;
        p += 7;

    } else if (last - p > 8
               && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0)
    {
        /* forwarded only if egress_absolute_https_cleartext allows it */
        r->https = 1;
        default_port = 443;
        p += 8;

    } else {
        r->error = "a proxy request needs an absolute URL "
                   "(http://host/path) or CONNECT host:port";
        return NGX_ERROR;
    }

    host = p;

    while (p < last && *p != '/' && *p != '?' && *p != '#') {
        if (*p == '@') {
            r->error = "user information in URL";
            return NGX_ERROR;
        }

        p++;
    }

    if (p == host) {
        r->error = "empty host in URL";
        return NGX_ERROR;
    }

    kind = egress_hostport_parse((char *) r->host, &r->port,
                                 (const char *) host, p - host, default_port,
                                 &err);
    if (kind < 0) {
        r->error = "invalid host or port in URL";
        return NGX_ERROR;
    }

    r->host_kind = kind;
    r->host_len = ngx_strlen(r->host);
    r->authority.data = host;
    r->authority.len = p - host;

    /* the fragment is not part of a request */

    for (q = p; q < last; q++) {
        if (*q == '#') {
            break;
        }
    }

    r->path.data = p;
    r->path.len = q - p;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_egress_parse_headers(ngx_stream_egress_request_t *r, u_char *p,
    u_char *end)
{
    off_t                        cl;
    u_char                      *line_end, *next, *v, *last;
    ngx_uint_t                   close, keepalive, te, te_chunked;
    ngx_stream_egress_header_t   h;

    close = 0;
    keepalive = 0;
    te = 0;
    te_chunked = 0;

    for ( ;; ) {
        next = ngx_stream_egress_next_line(p, end, &line_end);
        if (next == NULL) {
            r->error = "malformed header";
            return NGX_ERROR;
        }

        if (line_end == p) {
            break;
        }

        if (*p == ' ' || *p == '\t') {
            r->error = "folded header lines are not allowed";
            return NGX_ERROR;
        }

        if (ngx_stream_egress_split_header(p, line_end, &h) != NGX_OK) {
            r->error = "malformed header line";
            return NGX_ERROR;
        }

        p = next;

        if (ngx_stream_egress_header_is(&h, "Content-Length")) {
            if (h.value_len == 0 || h.value_len > 18) {
                r->error = "invalid Content-Length";
                return NGX_ERROR;
            }

            cl = 0;
            last = h.value + h.value_len;

            for (v = h.value; v < last; v++) {
                if (*v < '0' || *v > '9') {
                    r->error = "invalid Content-Length";
                    return NGX_ERROR;
                }

                cl = cl * 10 + (*v - '0');
            }

            if (r->content_length != -1 && r->content_length != cl) {
                r->error = "conflicting Content-Length headers";
                return NGX_ERROR;
            }

            r->content_length = cl;
            continue;
        }

        if (ngx_stream_egress_header_is(&h, "Transfer-Encoding")) {
            /* only "chunked" (as the last coding) can be framed */
            te = 1;
            te_chunked = 0;

            last = h.value + h.value_len;
            v = h.value;

            while (last > v && (last[-1] == ' ' || last[-1] == '\t'
                                || last[-1] == ','))
            {
                last--;
            }

            if (last - v >= 7
                && ngx_strncasecmp(last - 7, (u_char *) "chunked", 7) == 0
                && (last - v == 7 || last[-8] == ' ' || last[-8] == ','
                    || last[-8] == '\t'))
            {
                te_chunked = 1;
            }

            continue;
        }

        if (ngx_stream_egress_header_is(&h, "Connection")
            || ngx_stream_egress_header_is(&h, "Proxy-Connection"))
        {
            if (ngx_stream_egress_has_token(h.value, h.value_len, "close")) {
                close = 1;
            }

            if (ngx_stream_egress_has_token(h.value, h.value_len,
                                            "keep-alive"))
            {
                keepalive = 1;
            }

            /*
             * The rewrite drops what Connection names: the origin would
             * lose the header that frames the body we forward.
             */
            if (ngx_stream_egress_has_token(h.value, h.value_len,
                                            "content-length")
                || ngx_stream_egress_has_token(h.value, h.value_len,
                                               "transfer-encoding"))
            {
                r->error = "Connection names a header that frames the body";
                return NGX_ERROR;
            }
        }
    }

    if (te) {
        if (!te_chunked || r->http_minor == 0) {
            r->error = "unsupported Transfer-Encoding";
            return NGX_ERROR;
        }

        if (r->content_length != -1) {
            r->error = "both Content-Length and Transfer-Encoding";
            return NGX_ERROR;
        }

        r->chunked = 1;
    }

    r->keepalive = r->http_minor ? !close : (keepalive && !close);

    return NGX_OK;
}


/*
 * Upper bound of the rewritten head of a parsed absolute-form request. A
 * header line can grow by two bytes ("a:b" LF becomes "a: b" CRLF), so
 * short LF-only lines almost double; every input byte yields at most two.
 */

size_t
ngx_stream_egress_rewrite_size(ngx_stream_egress_request_t *r, u_char *start,
    u_char *end)
{
    return 2 * (end - start) + r->authority.len + 64;
}


/*
 * Writes the origin-form request: request line with the path, Host from the
 * URL (RFC 9112 3.2.2: a proxy replaces Host with the target's authority),
 * end-to-end headers in their order, and "Connection: close" because the
 * module does not reuse origin connections.
 */

u_char *
ngx_stream_egress_rewrite_request(ngx_stream_egress_request_t *r,
    u_char *start, u_char *end, u_char *out)
{
    u_char                      *p, *next, *line_end;
    ngx_str_t                   *hop;
    ngx_uint_t                   drop;
    ngx_stream_egress_header_t   h;

    out = ngx_cpymem(out, r->method.data, r->method.len);
    *out++ = ' ';

    if (r->path.len == 0 || r->path.data[0] != '/') {
        *out++ = '/';
    }

    out = ngx_cpymem(out, r->path.data, r->path.len);
    out = ngx_sprintf(out, " HTTP/1.%ui" CRLF, r->http_minor);
    out = ngx_sprintf(out, "Host: %V" CRLF, &r->authority);

    p = ngx_stream_egress_next_line(start, end, &line_end);

    for ( ;; ) {
        next = ngx_stream_egress_next_line(p, end, &line_end);
        if (next == NULL || line_end == p) {
            break;
        }

        if (ngx_stream_egress_split_header(p, line_end, &h) != NGX_OK) {
            p = next;
            continue;
        }

        drop = 0;

        for (hop = ngx_stream_egress_hop_headers; hop->len; hop++) {
            if (h.name_len == hop->len
                && ngx_strncasecmp(h.name, hop->data, hop->len) == 0)
            {
                drop = 1;
                break;
            }
        }

        /* and whatever Connection (or Proxy-Connection) names */

        if (!drop) {
            drop = ngx_stream_egress_connection_lists(start, end, &h, 1);
        }

        if (!drop) {
            out = ngx_cpymem(out, h.name, h.name_len);
            *out++ = ':';
            *out++ = ' ';
            out = ngx_cpymem(out, h.value, h.value_len);
            *out++ = CR;
            *out++ = LF;
        }

        p = next;
    }

    out = ngx_cpymem(out, "Connection: close" CRLF CRLF,
                     sizeof("Connection: close" CRLF CRLF) - 1);

    return out;
}
