
/*
 * HTTP/1.x lines, header fields and token lists, for the module's parsers
 * (ngx_stream_egress_http.h names them).
 *
 * Lines end in LF, with an optional CR in front; a header field is a token,
 * a colon and a value without CR or NUL, its surrounding blanks dropped.
 */


#include "ngx_stream_egress_http.h"


static ngx_uint_t ngx_stream_egress_listed(u_char *list, size_t list_len,
    u_char *name, size_t name_len);


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


/* returns the start of the next line and sets *line_end (CR stripped) */

u_char *
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


ngx_int_t
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


/* case-insensitive: whether header h is called name */

ngx_uint_t
ngx_stream_egress_header_is(ngx_stream_egress_header_t *h, const char *name)
{
    size_t  len;

    len = ngx_strlen(name);

    return h->name_len == len
           && ngx_strncasecmp(h->name, (u_char *) name, len) == 0;
}


/*
 * Whether a Connection header (or, with proxy_connection, a
 * Proxy-Connection header) of the head [start, end) lists h's name, which
 * makes h hop-by-hop too (RFC 9110 7.6.1). The head's first line is the
 * request or status line.
 */

ngx_uint_t
ngx_stream_egress_connection_lists(u_char *start, u_char *end,
    ngx_stream_egress_header_t *h, ngx_uint_t proxy_connection)
{
    u_char                      *q, *qnext, *qend;
    ngx_stream_egress_header_t   c;

    for (q = ngx_stream_egress_next_line(start, end, &qend); q; q = qnext) {

        qnext = ngx_stream_egress_next_line(q, end, &qend);
        if (qnext == NULL || qend == q) {
            break;
        }

        if (ngx_stream_egress_split_header(q, qend, &c) != NGX_OK) {
            continue;
        }

        if ((ngx_stream_egress_header_is(&c, "Connection")
             || (proxy_connection
                 && ngx_stream_egress_header_is(&c, "Proxy-Connection")))
            && ngx_stream_egress_listed(c.value, c.value_len, h->name,
                                        h->name_len))
        {
            return 1;
        }
    }

    return 0;
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


ngx_uint_t
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
