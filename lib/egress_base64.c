/*
 * egress_base64.c: strict, table-driven RFC 4648 base64 (padded) and
 * base64url (unpadded). Decoding rejects anything that is not the one
 * canonical encoding of some byte string, so every body has exactly one
 * spelling on the wire.
 */

#include <string.h>

#include "egress_base64.h"

static const char b64_std[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63 for alphabet symbols, 0xff for everything else (including '='). */
#define X 0xff
/* clang-format off */
static const uint8_t dec_std[256] = {
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, 62, X, X, X, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X, X, X, X, X, X,
    X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X, X, X, X, X,
    X, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
};
static const uint8_t dec_url[256] = {
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, 62, X, X,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X, X, X, X, X, X,
    X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X, X, X, X, 63,
    X, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
};
/* clang-format on */
#undef X

static size_t b64_encode(char *dst, const uint8_t *src, size_t len, const char *alpha, int pad)
{
    char *p = dst;
    size_t i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8 | src[i + 2];
        p[0] = alpha[v >> 18];
        p[1] = alpha[(v >> 12) & 63];
        p[2] = alpha[(v >> 6) & 63];
        p[3] = alpha[v & 63];
        p += 4;
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t) src[i] << 16;
        *p++ = alpha[v >> 18];
        *p++ = alpha[(v >> 12) & 63];
        if (pad) {
            *p++ = '=';
            *p++ = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8;
        *p++ = alpha[v >> 18];
        *p++ = alpha[(v >> 12) & 63];
        *p++ = alpha[(v >> 6) & 63];
        if (pad) {
            *p++ = '=';
        }
    }
    return (size_t) (p - dst);
}

size_t egress_base64_encode(char *dst, const uint8_t *src, size_t len)
{
    return b64_encode(dst, src, len, b64_std, 1);
}

size_t egress_base64url_encode(char *dst, const uint8_t *src, size_t len)
{
    return b64_encode(dst, src, len, b64_url, 0);
}

/*
 * Decodes full quads of symbols (len a multiple of 4, no padding) and then
 * a tail of 2 or 3 symbols; rem is the tail length (0, 2 or 3).
 */
static int b64_decode(uint8_t *dst, size_t cap, size_t *out_len, const char *src, size_t len,
                      size_t rem, const uint8_t *tab, egress_error_t *err)
{
    const uint8_t *s = (const uint8_t *) src;
    size_t quads = (len - rem) / 4;
    size_t need = quads * 3 + (rem ? rem - 1 : 0);
    uint8_t *d = dst;
    size_t i;

    if (need > cap) {
        return egress_error_set(err, EGRESS_ERR_NO_SPACE,
                                "base64: %zu decoded bytes do not fit in %zu", need, cap);
    }
    for (i = 0; i < quads; i++, s += 4) {
        uint32_t a = tab[s[0]], b = tab[s[1]], c = tab[s[2]], e = tab[s[3]];
        uint32_t v;
        if ((a | b | c | e) & 0x80) {
            goto bad_symbol;
        }
        v = a << 18 | b << 12 | c << 6 | e;
        d[0] = (uint8_t) (v >> 16);
        d[1] = (uint8_t) (v >> 8);
        d[2] = (uint8_t) v;
        d += 3;
    }
    if (rem == 2) {
        uint32_t a = tab[s[0]], b = tab[s[1]];
        if ((a | b) & 0x80) {
            goto bad_symbol;
        }
        if (b & 0x0f) {
            goto bad_bits;
        }
        *d++ = (uint8_t) (a << 2 | b >> 4);
    } else if (rem == 3) {
        uint32_t a = tab[s[0]], b = tab[s[1]], c = tab[s[2]];
        if ((a | b | c) & 0x80) {
            goto bad_symbol;
        }
        if (c & 0x03) {
            goto bad_bits;
        }
        *d++ = (uint8_t) (a << 2 | b >> 4);
        *d++ = (uint8_t) ((b & 0x0f) << 4 | c >> 2);
    }
    *out_len = (size_t) (d - dst);
    return 0;

bad_symbol:
    return egress_error_set(err, EGRESS_ERR_BASE64, "base64: invalid character");
bad_bits:
    return egress_error_set(err, EGRESS_ERR_BASE64,
                            "base64: non-canonical encoding (unused bits are not zero)");
}

int egress_base64_decode(uint8_t *dst, size_t cap, size_t *out_len, const char *src, size_t len,
                         egress_error_t *err)
{
    size_t rem = 0;

    if (len % 4 != 0) {
        return egress_error_set(err, EGRESS_ERR_BASE64,
                                "base64: length %zu is not a multiple of 4", len);
    }
    /* Padding may only close the last quad: "xx==" or "xxx=". */
    if (len > 0 && src[len - 1] == '=') {
        rem = src[len - 2] == '=' ? 2 : 3;
        len -= 4 - rem;
    }
    return b64_decode(dst, cap, out_len, src, len, rem, dec_std, err);
}

int egress_base64url_decode(uint8_t *dst, size_t cap, size_t *out_len, const char *src,
                            size_t len, egress_error_t *err)
{
    if (len % 4 == 1) {
        return egress_error_set(err, EGRESS_ERR_BASE64, "base64url: impossible length %zu",
                                len);
    }
    return b64_decode(dst, cap, out_len, src, len, len % 4, dec_url, err);
}
