/*
 * owner_notify.c: parses "INSTANCE EPOCH LEASE VERSION" (owner_notify.h). Strict:
 * any other byte, a missing or doubled space, an empty or overlong field,
 * a zero, signed, zero-padded or out-of-range epoch is refused.
 */

#include <string.h>

#include "owner_notify.h"

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '-';
}

static int digit_char(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int lease_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* Copies the run of accepted bytes at p into out (cap with the NUL); the
 * number taken, or 0 when empty or too long. */
static size_t take_field(const char *p, size_t left, int (*ok)(unsigned char), char *out,
                         size_t cap)
{
    size_t n = 0;

    while (n < left && ok((unsigned char) p[n])) {
        if (n + 1 >= cap) {
            return 0;
        }
        n++;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

int owner_notify_parse(const char *payload, size_t len, owner_notify_t *out)
{
    size_t i = 0, n;
    int64_t e = 0;

    n = take_field(payload, len, name_char, out->instance, sizeof(out->instance));
    if (n == 0 || n == len || payload[n] != ' ') {
        return -1;
    }
    i = n + 1;
    if (i < len && payload[i] == '0') {
        return -1; /* no leading zero: one spelling per epoch */
    }
    for (n = 0; i < len && payload[i] >= '0' && payload[i] <= '9'; i++, n++) {
        int d = payload[i] - '0';
        if (e > (INT64_MAX - d) / 10) {
            return -1;
        }
        e = e * 10 + d;
    }
    if (n == 0 || e <= 0 || i >= len || payload[i] != ' ') {
        return -1;
    }
    i++;
    n = take_field(payload + i, len - i, lease_char, out->lease, sizeof(out->lease));
    if (n == 0 || i + n == len || payload[i + n] != ' ') {
        return -1;
    }
    i += n + 1;
    if (i < len && payload[i] == '0') {
        return -1;
    }
    n = take_field(payload + i, len - i, digit_char, out->version, sizeof(out->version));
    if (n == 0 || i + n != len) {
        return -1;
    }
    out->epoch = e;
    return 0;
}
