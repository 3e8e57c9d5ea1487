/*
 * portal_html.h: a bounded, growable output buffer for the portal's pages
 * and JSON, with HTML escaping. Writes after a failure (out of memory or over
 * the limit) are ignored and remembered, so callers check once at the end.
 */

#ifndef PORTAL_HTML_H
#define PORTAL_HTML_H

#include <stddef.h>

#define PORTAL_PAGE_MAX (256 * 1024)

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
    int failed;
} hbuf_t;

void hbuf_init(hbuf_t *b, size_t max);
void hbuf_free(hbuf_t *b);
/* Trusted template text, copied as is. */
void hbuf_raw(hbuf_t *b, const char *s);
/* Untrusted text: & < > " ' are escaped, so it is safe in text and in quoted attributes. */
void hbuf_text(hbuf_t *b, const char *s);
/* Trusted format; pass only numbers or text that went through hbuf_text elsewhere. */
void hbuf_printf(hbuf_t *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif /* PORTAL_HTML_H */
