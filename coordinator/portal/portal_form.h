/*
 * portal_form.h: the two request parsers the portal needs: a field of an
 * application/x-www-form-urlencoded body, and a cookie of a Cookie header.
 * Pure functions over caller buffers; no allocation.
 */

#ifndef PORTAL_FORM_H
#define PORTAL_FORM_H

#include <stddef.h>

#define PORTAL_FORM_ABSENT    (-1) /* no such field or cookie */
#define PORTAL_FORM_MALFORMED (-2) /* bad %-escape, NUL byte, or longer than cap - 1 */

/*
 * Finds the first field `name` in the form body (len bytes, not necessarily
 * NUL-terminated) and writes its decoded value ('+' is a space, %XX a byte)
 * NUL-terminated to out. Returns the value's length or PORTAL_FORM_*.
 */
int portal_form_get(const char *body, size_t len, const char *name, char *out, size_t cap);

/*
 * Finds cookie `name` in a Cookie header value ("a=1; b=2") and copies its
 * value verbatim (surrounding double quotes removed) to out. Returns the
 * value's length or PORTAL_FORM_*.
 */
int portal_cookie_get(const char *header, size_t len, const char *name, char *out, size_t cap);

#endif /* PORTAL_FORM_H */
