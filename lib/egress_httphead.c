/*
 * egress_httphead.c: request line and header fields of an HTTP/1.x head,
 * checked strictly (RFC 9112 syntax; what a proxy might read differently
 * is refused).
 */

#include <string.h>
#include <strings.h>

#include "egress_httphead.h"

static int http_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* One line from p (up to end); its length without the line end, and where
 * the next starts. 0 when no line end yet, -1 on a bare CR. */
static int http_line(const char *p, const char *end, size_t *n, const char **next)
{
    const char *lf = memchr(p, '\n', (size_t) (end - p));
    const char *cr;

    if (lf == NULL) {
        cr = memchr(p, '\r', (size_t) (end - p));
        return cr != NULL && cr + 1 < end ? -1 : 0;
    }
    *n = (size_t) (lf - p);
    if (*n > 0 && p[*n - 1] == '\r') {
        (*n)--;
    }
    if (memchr(p, '\r', *n) != NULL) {
        return -1;
    }
    *next = lf + 1;
    return 1;
}

static int http_request_line(egress_http_head_t *h, const char *p, size_t n)
{
    const char *sp1 = memchr(p, ' ', n), *sp2;
    size_t i;

    if (sp1 == NULL || sp1 == p) {
        return -1;
    }
    h->method = p;
    h->method_len = (size_t) (sp1 - p);
    for (i = 0; i < h->method_len; i++) {
        if (!http_tchar((unsigned char) p[i])) {
            return -1;
        }
    }
    sp2 = memchr(sp1 + 1, ' ', (size_t) (p + n - sp1 - 1));
    if (sp2 == NULL || sp2 == sp1 + 1) {
        return -1;
    }
    h->target = sp1 + 1;
    h->target_len = (size_t) (sp2 - sp1 - 1);
    for (i = 0; i < h->target_len; i++) {
        unsigned char c = (unsigned char) h->target[i];
        if (c <= 0x20 || c >= 0x7f) {
            return -1;
        }
    }
    if ((size_t) (p + n - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp2[8] < '0' ||
        sp2[8] > '9') {
        return -1;
    }
    h->minor = sp2[8] - '0';
    return 0;
}

static int http_field(egress_http_head_t *h, const char *p, size_t n)
{
    const char *colon = memchr(p, ':', n), *v, *e;
    egress_http_field_t *f;
    size_t i;

    if (colon == NULL || colon == p || h->nfields == EGRESS_HTTP_HEAD_FIELDS) {
        return -1;
    }
    for (i = 0; p + i < colon; i++) {
        if (!http_tchar((unsigned char) p[i])) {
            return -1; /* also a blank before the colon */
        }
    }
    for (i = (size_t) (colon - p) + 1; i < n; i++) {
        unsigned char c = (unsigned char) p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return -1;
        }
    }
    v = colon + 1;
    e = p + n;
    while (v < e && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }
    f = &h->fields[h->nfields++];
    f->name = p;
    f->name_len = (size_t) (colon - p);
    f->value = v;
    f->value_len = (size_t) (e - v);
    return 0;
}

int egress_http_head_parse(egress_http_head_t *h, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len, *next = NULL;
    size_t n = 0;
    int rc, first = 1;

    memset(h, 0, sizeof(*h));
    for (;;) {
        rc = http_line(p, end, &n, &next);
        if (rc <= 0) {
            return rc;
        }
        if (first) {
            if (http_request_line(h, p, n) < 0) {
                return -1;
            }
            first = 0;
        } else if (n == 0) {
            h->head_len = (size_t) (next - buf);
            return 1;
        } else if (p[0] == ' ' || p[0] == '\t' || http_field(h, p, n) < 0) {
            return -1; /* obs-fold, or a bad field */
        }
        p = next;
    }
}

const egress_http_field_t *egress_http_head_get(const egress_http_head_t *h, const char *name,
                                                int *count)
{
    const egress_http_field_t *first = NULL;
    size_t n = strlen(name), i;
    int c = 0;

    for (i = 0; i < h->nfields; i++) {
        if (h->fields[i].name_len == n && strncasecmp(h->fields[i].name, name, n) == 0) {
            if (first == NULL) {
                first = &h->fields[i];
            }
            c++;
        }
    }
    if (count != NULL) {
        *count = c;
    }
    return first;
}
