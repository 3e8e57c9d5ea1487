/*
 * egress_crypto.h: secrets, ids and their comparison (OpenSSL underneath).
 */

#ifndef EGRESS_CRYPTO_H
#define EGRESS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "egress_error.h"

#define EGRESS_SHA256_LEN     32
#define EGRESS_SHA256_HEX_LEN 64

/* Fills buf with n bytes from OpenSSL's CSPRNG. Returns 0 or -1 (EGRESS_ERR_SYSTEM). */
int egress_random_bytes(void *buf, size_t n, egress_error_t *err);

/*
 * CSPRNG bytes handed out a few at a time (WebSocket mask keys): one
 * RAND_bytes call per EGRESS_RANDOM_POOL bytes instead of one per frame
 * (OpenSSL's fork check makes each call a getpid() system call). Bytes
 * handed out are wiped from the pool. A zeroed pool is empty; empty one in
 * a child process after fork() so that two processes never share bytes.
 */
#define EGRESS_RANDOM_POOL 4096

typedef struct {
    unsigned char bytes[EGRESS_RANDOM_POOL];
    size_t avail; /* unused bytes, at the end of bytes[] */
} egress_random_pool_t;

void egress_random_pool_empty(egress_random_pool_t *pool);

/* n <= EGRESS_RANDOM_POOL. Returns 0 or -1 (EGRESS_ERR_SYSTEM / EGRESS_ERR_NO_SPACE). */
int egress_random_pool_take(egress_random_pool_t *pool, void *buf, size_t n,
                            egress_error_t *err);

/*
 * Writes a fresh secret of nbytes random bytes as unpadded base64url, with an
 * optional prefix ("egt_" for tickets, ...), NUL-terminated, into out (cap bytes).
 * Returns the length, or -1 (EGRESS_ERR_NO_SPACE / EGRESS_ERR_SYSTEM).
 */
int egress_token_new(char *out, size_t cap, const char *prefix, size_t nbytes,
                     egress_error_t *err);

/* Constant-time equality of two equal-length buffers (1 equal, 0 not). */
int egress_ct_equal(const void *a, const void *b, size_t n);

/* Constant-time equality of two strings of possibly different lengths. */
int egress_ct_streq(const char *a, size_t alen, const char *b, size_t blen);

void egress_sha256(uint8_t out[EGRESS_SHA256_LEN], const void *data, size_t len);

/* Lower-case hex of n bytes plus NUL (out has 2 * n + 1 bytes). */
void egress_hex_encode(char *out, const uint8_t *in, size_t n);

/* Lower-case hex digest plus NUL (out has EGRESS_SHA256_HEX_LEN + 1 bytes). */
void egress_sha256_hex(char out[EGRESS_SHA256_HEX_LEN + 1], const void *data, size_t len);

void egress_hmac_sha256(uint8_t out[EGRESS_SHA256_LEN], const void *key, size_t keylen,
                        const void *data, size_t len);

#endif /* EGRESS_CRYPTO_H */
