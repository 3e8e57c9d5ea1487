/*
 * portal_html.c: the portal's output buffer and HTML escaping.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portal_html.h"

void hbuf_init(hbuf_t *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void hbuf_free(hbuf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* Makes room for n more bytes plus a NUL; 0 on success. */
static int hbuf_reserve(hbuf_t *b, size_t n)
{
    size_t want = b->len + n + 1, cap;
    char *nd;

    if (b->failed || n > b->max || want > b->max + 1) {
        b->failed = 1;
        return -1;
    }
    if (want <= b->cap) {
        return 0;
    }
    cap = b->cap ? b->cap : 4096;
    while (cap < want) {
        cap *= 2;
    }
    if ((nd = realloc(b->data, cap)) == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = nd;
    b->cap = cap;
    return 0;
}

static void hbuf_put(hbuf_t *b, const char *s, size_t n)
{
    if (hbuf_reserve(b, n) < 0) {
        return;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void hbuf_raw(hbuf_t *b, const char *s)
{
    hbuf_put(b, s, strlen(s));
}

void hbuf_text(hbuf_t *b, const char *s)
{
    const char *run = s, *rep;

    for (; *s; s++) {
        switch (*s) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        hbuf_put(b, run, (size_t) (s - run));
        hbuf_raw(b, rep);
        run = s + 1;
    }
    hbuf_put(b, run, (size_t) (s - run));
}

void hbuf_printf(hbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || hbuf_reserve(b, (size_t) n) < 0) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t) n;
}
