/*
 * egress_base64.h: strict RFC 4648 base64 and base64url.
 *
 * The decoder accepts only canonical text: padded standard alphabet for
 * egress_base64_decode(), unpadded url alphabet for egress_base64url_decode();
 * no whitespace, no stray padding, and zero unused bits in the last symbol.
 */

#ifndef EGRESS_BASE64_H
#define EGRESS_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "egress_error.h"

/* Encoded length of n bytes (padded standard form), without a trailing NUL. */
#define EGRESS_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/* Upper bound of the decoded length of n base64 characters. */
#define EGRESS_BASE64_DECODED_MAX(n) ((((n) + 3) / 4) * 3)

/* Writes EGRESS_BASE64_ENCODED_LEN(len) characters to dst (no NUL); returns that count. */
size_t egress_base64_encode(char *dst, const uint8_t *src, size_t len);

/* Writes the unpadded url-safe form; returns the character count (no NUL). */
size_t egress_base64url_encode(char *dst, const uint8_t *src, size_t len);

/*
 * Decodes len characters of src into dst, which has room for cap bytes.
 * Returns 0 and stores the decoded size in *out_len, or -1 with err set
 * (EGRESS_ERR_BASE64 or EGRESS_ERR_NO_SPACE).
 */
int egress_base64_decode(uint8_t *dst, size_t cap, size_t *out_len, const char *src, size_t len,
                         egress_error_t *err);
int egress_base64url_decode(uint8_t *dst, size_t cap, size_t *out_len, const char *src,
                            size_t len, egress_error_t *err);

#endif /* EGRESS_BASE64_H */
