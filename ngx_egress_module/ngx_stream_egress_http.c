
/*
 * HTTP/1.x parsing for the egress proxy: the proxy request head (CONNECT or
 * absolute-form), its rewrite to origin-form, the chunked request body
 * framing and a response-head scanner. Pure functions over buffers; the
 * event handling lives in ngx_stream_egress_proxy.c.
 *
 * The parser is deliberately strict where leniency enables request
 * smuggling (Content-Length vs Transfer-Encoding, obs-fold, bare CR, any
 * irregular chunk framing) and lenient only where browsers differ
 * harmlessly (LF-only line ends in the head, which is rewritten with CRLF).
 */


#include "ngx_stream_egress_module.h"


#define NGX_STREAM_EGRESS_METHOD_MAX   32
#define NGX_STREAM_EGRESS_CHUNK_LINE   4096
#define NGX_STREAM_EGRESS_CHUNK_DIGITS 16
#define NGX_STREAM_EGRESS_TRAILER_MAX  16384
#define NGX_STREAM_EGRESS_CHUNK_SIZE_MAX  ((uint64_t) 1 << 48)


typedef struct {
    u_char      *name;
    size_t       name_len;
    u_char      *value;
    size_t       value_len;
} ngx_stream_egress_header_t;


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
static u_char *ngx_stream_egress_next_line(u_char *p, u_char *end,
    u_char **line_end);
static ngx_int_t ngx_stream_egress_split_header(u_char *p, u_char *last,
    ngx_stream_egress_header_t *h);
static ngx_int_t ngx_stream_egress_parse_headers(
    ngx_stream_egress_request_t *r, u_char *p, u_char *end);
static ngx_uint_t ngx_stream_egress_listed(u_char *list, size_t list_len,
    u_char *name, size_t name_len);
static ngx_uint_t ngx_stream_egress_is_token_char(u_char ch);


u_char *
ngx_stream_egress_find_head_end(u_char *p, u_char *last)
{
    for ( /* void */ ; p < last; p++) {

        if (*p != LF) {
            continue;
        }

        if (p + 1 < last && p[1] == LF) {
            return p + 2;
        }

        if (p + 2 < last && p[1] == CR && p[2] == LF) {
            return p + 3;
        }
    }

    return NULL;
}


/*
 * Iterates the header lines of a head that starts at *pp (the first header
 * line); returns NGX_OK with name and value, NGX_DONE at the empty line,
 * NGX_ERROR on a malformed line.
 */

ngx_int_t
ngx_stream_egress_next_header(u_char **pp, u_char *end, ngx_str_t *name,
    ngx_str_t *value)
{
    u_char                      *line_end, *next;
    ngx_stream_egress_header_t   h;

    next = ngx_stream_egress_next_line(*pp, end, &line_end);

    if (next == NULL) {
        return NGX_ERROR;
    }

    if (line_end == *pp) {
        *pp = next;
        return NGX_DONE;
    }

    if (ngx_stream_egress_split_header(*pp, line_end, &h) != NGX_OK) {
        return NGX_ERROR;
    }

    *pp = next;

    name->data = h.name;
    name->len = h.name_len;
    value->data = h.value;
    value->len = h.value_len;

    return NGX_OK;
}


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


/* returns the start of the next line and sets *line_end (CR stripped) */

static u_char *
ngx_stream_egress_next_line(u_char *p, u_char *end, u_char **line_end)
{
    u_char  *lf;

    lf = ngx_strlchr(p, end, LF);
    if (lf == NULL) {
        return NULL;
    }

    *line_end = (lf > p && lf[-1] == CR) ? lf - 1 : lf;

    return lf + 1;
}


static ngx_int_t
ngx_stream_egress_split_header(u_char *p, u_char *last,
    ngx_stream_egress_header_t *h)
{
    u_char  *q;

    for (q = p; q < last; q++) {
        if (*q == CR || *q == '\0') {
            return NGX_ERROR;
        }
    }

    h->name = p;

    while (p < last && ngx_stream_egress_is_token_char(*p)) {
        p++;
    }

    h->name_len = p - h->name;

    if (h->name_len == 0 || p == last || *p != ':') {
        return NGX_ERROR;
    }

    p++;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    h->value = p;
    h->value_len = last - p;

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

        if (h.name_len == 14
            && ngx_strncasecmp(h.name, (u_char *) "Content-Length", 14) == 0)
        {
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

        if (h.name_len == 17
            && ngx_strncasecmp(h.name, (u_char *) "Transfer-Encoding", 17)
               == 0)
        {
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

        if ((h.name_len == 10
             && ngx_strncasecmp(h.name, (u_char *) "Connection", 10) == 0)
            || (h.name_len == 16
                && ngx_strncasecmp(h.name, (u_char *) "Proxy-Connection", 16)
                   == 0))
        {
            if (ngx_stream_egress_has_token(h.value, h.value_len, "close")) {
                close = 1;
            }

            if (ngx_stream_egress_has_token(h.value, h.value_len,
                                            "keep-alive"))
            {
                keepalive = 1;
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


/* case-insensitive search for token in a comma-separated list */

ngx_uint_t
ngx_stream_egress_has_token(u_char *p, size_t len, const char *token)
{
    size_t   tlen;
    u_char  *last, *s;

    tlen = ngx_strlen(token);
    last = p + len;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        s = p;

        while (p < last && *p != ',') {
            p++;
        }

        len = p - s;

        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
            len--;
        }

        if (len == tlen && ngx_strncasecmp(s, (u_char *) token, tlen) == 0) {
            return 1;
        }
    }

    return 0;
}


static ngx_uint_t
ngx_stream_egress_listed(u_char *list, size_t list_len, u_char *name,
    size_t name_len)
{
    u_char  token[64];

    if (name_len >= sizeof(token)) {
        return 0;
    }

    ngx_memcpy(token, name, name_len);
    token[name_len] = '\0';

    return ngx_stream_egress_has_token(list, list_len, (char *) token);
}


static ngx_uint_t
ngx_stream_egress_is_token_char(u_char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
        || (ch >= '0' && ch <= '9'))
    {
        return 1;
    }

    switch (ch) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
        return 1;
    }

    return 0;
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
    u_char                      *p, *next, *line_end, *q, *qnext, *qend;
    ngx_str_t                   *hop;
    ngx_uint_t                   drop;
    ngx_stream_egress_header_t   h, c;

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

        for (q = ngx_stream_egress_next_line(start, end, &qend);
             !drop && q;
             q = qnext)
        {
            qnext = ngx_stream_egress_next_line(q, end, &qend);
            if (qnext == NULL || qend == q) {
                break;
            }

            if (ngx_stream_egress_split_header(q, qend, &c) != NGX_OK) {
                continue;
            }

            if (((c.name_len == 10
                  && ngx_strncasecmp(c.name, (u_char *) "Connection", 10)
                     == 0)
                 || (c.name_len == 16
                     && ngx_strncasecmp(c.name,
                                        (u_char *) "Proxy-Connection", 16)
                        == 0))
                && ngx_stream_egress_listed(c.value, c.value_len, h.name,
                                            h.name_len))
            {
                drop = 1;
            }
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
 * rs->head_len + 32 bytes. Returns the end of the output.
 */

u_char *
ngx_stream_egress_rewrite_response(ngx_stream_egress_response_t *rs,
    ngx_uint_t head_request, ngx_uint_t *keep, u_char *out)
{
    u_char                      *p, *end, *next, *line_end, *q, *qend;
    u_char                      *qnext;
    ngx_int_t                    status;
    ngx_uint_t                   length, chunked, drop;
    ngx_stream_egress_header_t   h, c;

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

        if ((h.name_len == 10
             && ngx_strncasecmp(h.name, (u_char *) "Connection", 10) == 0)
            || (h.name_len == 10
                && ngx_strncasecmp(h.name, (u_char *) "Keep-Alive", 10) == 0)
            || (h.name_len == 16
                && ngx_strncasecmp(h.name, (u_char *) "Proxy-Connection", 16)
                   == 0))
        {
            drop = 1;

        } else if (h.name_len == 14
                   && ngx_strncasecmp(h.name, (u_char *) "Content-Length",
                                      14) == 0)
        {
            length = 1;

        } else if (h.name_len == 17
                   && ngx_strncasecmp(h.name, (u_char *) "Transfer-Encoding",
                                      17) == 0)
        {
            chunked = ngx_stream_egress_has_token(h.value, h.value_len,
                                                  "chunked");
        }

        for (q = ngx_stream_egress_next_line(rs->buf, end, &qend);
             !drop && q;
             q = qnext)
        {
            qnext = ngx_stream_egress_next_line(q, end, &qend);
            if (qnext == NULL || qend == q) {
                break;
            }

            if (ngx_stream_egress_split_header(q, qend, &c) == NGX_OK
                && c.name_len == 10
                && ngx_strncasecmp(c.name, (u_char *) "Connection", 10) == 0
                && ngx_stream_egress_listed(c.value, c.value_len, h.name,
                                            h.name_len))
            {
                drop = 1;
            }
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
