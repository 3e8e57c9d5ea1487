/*
 * egress_crypto.c: CSPRNG secrets, constant-time comparison, SHA-256 and
 * HMAC-SHA-256 on top of OpenSSL 3.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "egress_base64.h"
#include "egress_crypto.h"

/* Largest secret egress_token_new() makes; tokens use 32 bytes. */
#define TOKEN_MAX_BYTES 256

int egress_random_bytes(void *buf, size_t n, egress_error_t *err)
{
    unsigned char *p = buf;

    /* RAND_bytes takes an int length; feed it in bounded slices. */
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int) n;
        if (RAND_bytes(p, chunk) != 1) {
            return egress_error_set(err, EGRESS_ERR_SYSTEM, "CSPRNG failure (RAND_bytes)");
        }
        p += chunk;
        n -= (size_t) chunk;
    }
    return 0;
}

void egress_random_pool_empty(egress_random_pool_t *pool)
{
    OPENSSL_cleanse(pool->bytes, sizeof(pool->bytes));
    pool->avail = 0;
}

int egress_random_pool_take(egress_random_pool_t *pool, void *buf, size_t n,
                            egress_error_t *err)
{
    unsigned char *p;

    if (n > sizeof(pool->bytes)) {
        return egress_error_set(err, EGRESS_ERR_NO_SPACE, "random pool: %zu bytes asked", n);
    }
    if (pool->avail < n) {
        if (egress_random_bytes(pool->bytes, sizeof(pool->bytes), err) != 0) {
            return -1;
        }
        pool->avail = sizeof(pool->bytes);
    }
    p = pool->bytes + sizeof(pool->bytes) - pool->avail;
    memcpy(buf, p, n);
    OPENSSL_cleanse(p, n);
    pool->avail -= n;
    return 0;
}

int egress_token_new(char *out, size_t cap, const char *prefix, size_t nbytes,
                     egress_error_t *err)
{
    uint8_t raw[TOKEN_MAX_BYTES];
    size_t plen = prefix != NULL ? strlen(prefix) : 0;
    size_t need, n;

    if (nbytes == 0 || nbytes > TOKEN_MAX_BYTES) {
        return egress_error_set(err, EGRESS_ERR_NO_SPACE,
                                "token size %zu is outside 1..%d bytes", nbytes,
                                TOKEN_MAX_BYTES);
    }
    /* Unpadded base64url: ceil(8 * nbytes / 6) characters. */
    need = plen + (nbytes * 4 + 2) / 3 + 1;
    if (out == NULL || need > cap) {
        return egress_error_set(err, EGRESS_ERR_NO_SPACE,
                                "token needs %zu bytes, buffer has %zu", need, cap);
    }
    if (egress_random_bytes(raw, nbytes, err) < 0) {
        return -1;
    }
    memcpy(out, prefix != NULL ? prefix : "", plen);
    n = egress_base64url_encode(out + plen, raw, nbytes);
    out[plen + n] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return (int) (plen + n);
}

int egress_ct_equal(const void *a, const void *b, size_t n)
{
    if (n == 0) {
        return 1;
    }
    return CRYPTO_memcmp(a, b, n) == 0;
}

int egress_ct_streq(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Compare over a's length whatever b is, so timing reveals only alen. */
    const volatile unsigned char *pa = (const unsigned char *) a;
    const volatile unsigned char *pb = (const unsigned char *) b;
    unsigned diff = (unsigned) (alen != blen);
    size_t i;

    for (i = 0; i < alen; i++) {
        unsigned char cb = blen > 0 ? pb[i < blen ? i : blen - 1] : 0;
        diff |= (unsigned) (pa[i] ^ cb);
    }
    return diff == 0;
}

void egress_sha256(uint8_t out[EGRESS_SHA256_LEN], const void *data, size_t len)
{
    unsigned int olen = 0;

    if (EVP_Digest(data != NULL ? data : "", len, out, &olen, EVP_sha256(), NULL) != 1 ||
        olen != EGRESS_SHA256_LEN) {
        /* Only possible when OpenSSL cannot allocate; a wrong digest would be worse. */
        abort();
    }
}

void egress_hex_encode(char *out, const uint8_t *in, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void egress_sha256_hex(char out[EGRESS_SHA256_HEX_LEN + 1], const void *data, size_t len)
{
    uint8_t d[EGRESS_SHA256_LEN];

    egress_sha256(d, data, len);
    egress_hex_encode(out, d, sizeof(d));
}

void egress_hmac_sha256(uint8_t out[EGRESS_SHA256_LEN], const void *key, size_t keylen,
                        const void *data, size_t len)
{
    static const unsigned char empty[1];
    unsigned int olen = 0;

    if (keylen > INT32_MAX ||
        HMAC(EVP_sha256(), key != NULL ? key : empty, (int) keylen, data != NULL ? data : empty,
             len, out, &olen) == NULL ||
        olen != EGRESS_SHA256_LEN) {
        /* Only possible when OpenSSL cannot allocate; a wrong MAC would be worse. */
        abort();
    }
}
