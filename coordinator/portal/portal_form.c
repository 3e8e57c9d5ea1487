/*
 * portal_form.c: urlencoded form fields and Cookie header values.
 */

#include <string.h>

#include "portal_form.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes s[0..n) into out; NUL bytes are refused (values end up in C strings). */
static int form_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t i, o = 0;
    int hi, lo;
    char c;

    for (i = 0; i < n; i++) {
        c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (n - i < 3) {
                return PORTAL_FORM_MALFORMED;
            }
            hi = hex_value(s[i + 1]);
            lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) {
                return PORTAL_FORM_MALFORMED;
            }
            c = (char) (hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap) {
            return PORTAL_FORM_MALFORMED;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (int) o;
}

int portal_form_get(const char *body, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name), pos = 0, end, klen;
    const char *amp, *eq;

    if (cap == 0) {
        return PORTAL_FORM_MALFORMED;
    }
    out[0] = '\0';
    while (pos < len) {
        amp = memchr(body + pos, '&', len - pos);
        end = amp ? (size_t) (amp - body) : len;
        eq = memchr(body + pos, '=', end - pos);
        klen = eq ? (size_t) (eq - body) - pos : end - pos;
        /* Field names are matched undecoded: ours are plain ASCII words. */
        if (klen == nlen && memcmp(body + pos, name, nlen) == 0) {
            if (eq == NULL) {
                return 0;
            }
            return form_decode(eq + 1, end - (size_t) (eq + 1 - body), out, cap);
        }
        pos = end + 1;
    }
    return PORTAL_FORM_ABSENT;
}

int portal_cookie_get(const char *header, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name), pos = 0, end, vb, ve, n;
    const char *semi;

    if (cap == 0) {
        return PORTAL_FORM_MALFORMED;
    }
    out[0] = '\0';
    while (pos < len) {
        semi = memchr(header + pos, ';', len - pos);
        end = semi ? (size_t) (semi - header) : len;
        while (pos < end && (header[pos] == ' ' || header[pos] == '\t')) {
            pos++;
        }
        if (end - pos > nlen && memcmp(header + pos, name, nlen) == 0 &&
            header[pos + nlen] == '=') {
            vb = pos + nlen + 1;
            ve = end;
            while (ve > vb && (header[ve - 1] == ' ' || header[ve - 1] == '\t')) {
                ve--;
            }
            if (ve - vb >= 2 && header[vb] == '"' && header[ve - 1] == '"') {
                vb++;
                ve--;
            }
            n = ve - vb;
            if (n + 1 > cap || memchr(header + vb, '\0', n) != NULL) {
                return PORTAL_FORM_MALFORMED;
            }
            memcpy(out, header + vb, n);
            out[n] = '\0';
            return (int) n;
        }
        pos = end + 1;
    }
    return PORTAL_FORM_ABSENT;
}
