/*
 * sessid.c: session id minting and verification (see sessid.h).
 */

#include <stdio.h>
#include <string.h>

#include "egress.h"
#include "sessid.h"

#define SESSID_RANDOM_BYTES 16
#define SESSID_RANDOM_CHARS 22                 /* base64url of 16 bytes, unpadded */
#define SESSID_MAC_CHARS    43                 /* base64url of 32 bytes, unpadded */
#define SESSID_GEN_MAX      9007199254740992LL /* 2^53: exact in JSON numbers */
#define SESSID_FOREIGN_MIN  6                  /* crabbox: ^egress_[A-Za-z0-9_.:-]{6,80}$ */
#define SESSID_FOREIGN_MAX  80

static void sessid_mac(char out[SESSID_MAC_CHARS + 1], const uint8_t *key, const char *head,
                       size_t headlen, const char *lease_id)
{
    uint8_t mac[EGRESS_SHA256_LEN];
    char msg[256];
    int n;

    n = snprintf(msg, sizeof(msg), "%.*s:%s", (int) headlen, head, lease_id);
    if (n < 0 || (size_t) n >= sizeof(msg)) {
        n = (int) sizeof(msg) - 1;
    }
    egress_hmac_sha256(mac, key, SESSID_KEY_LEN, msg, (size_t) n);
    out[egress_base64url_encode(out, mac, sizeof(mac))] = '\0';
}

int sessid_make(char *out, size_t cap, const uint8_t key[SESSID_KEY_LEN], const char *lease_id,
                int64_t generation)
{
    uint8_t rnd[SESSID_RANDOM_BYTES];
    char rtxt[SESSID_RANDOM_CHARS + 1], mac[SESSID_MAC_CHARS + 1];
    int n;

    if (generation < 1 || generation > SESSID_GEN_MAX ||
        egress_random_bytes(rnd, sizeof(rnd), NULL) < 0) {
        return -1;
    }
    rtxt[egress_base64url_encode(rtxt, rnd, sizeof(rnd))] = '\0';
    n = snprintf(out, cap, SESSID_PREFIX "%lld.%s", (long long) generation, rtxt);
    if (n < 0 || (size_t) n + 1 + SESSID_MAC_CHARS >= cap) {
        return -1;
    }
    sessid_mac(mac, key, out, (size_t) n, lease_id);
    snprintf(out + n, cap - (size_t) n, ".%s", mac);
    return 0;
}

static int b64url_chars(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

int sessid_verify(const char *s, size_t len, const uint8_t key[SESSID_KEY_LEN],
                  const char *lease_id, int64_t *generation)
{
    const char *p = s + sizeof(SESSID_PREFIX) - 1, *end = s + len, *dot;
    char mac[SESSID_MAC_CHARS + 1];
    int64_t gen = 0;

    if (len < sizeof(SESSID_PREFIX) - 1 ||
        memcmp(s, SESSID_PREFIX, sizeof(SESSID_PREFIX) - 1)) {
        return -1;
    }
    /* generation: decimal, no leading zero, no sign */
    if (p >= end || *p < '1' || *p > '9') {
        return -1;
    }
    while (p < end && *p >= '0' && *p <= '9') {
        gen = gen * 10 + (*p - '0');
        if (gen > SESSID_GEN_MAX) {
            return -1;
        }
        p++;
    }
    if (p >= end || *p != '.') {
        return -1;
    }
    p++;
    if ((size_t) (end - p) != SESSID_RANDOM_CHARS + 1 + SESSID_MAC_CHARS) {
        return -1;
    }
    dot = p + SESSID_RANDOM_CHARS;
    if (*dot != '.' || !b64url_chars(p, SESSID_RANDOM_CHARS) ||
        !b64url_chars(dot + 1, SESSID_MAC_CHARS)) {
        return -1;
    }
    sessid_mac(mac, key, s, (size_t) (dot - s), lease_id);
    if (!egress_ct_equal(mac, dot + 1, SESSID_MAC_CHARS)) {
        return -2;
    }
    *generation = gen;
    return 0;
}

int sessid_foreign_valid(const char *s, size_t len)
{
    static const char head[] = "egress_";
    size_t i, n = sizeof(head) - 1;

    if (len < n + SESSID_FOREIGN_MIN || len > n + SESSID_FOREIGN_MAX || memcmp(s, head, n) ||
        (len >= sizeof(SESSID_PREFIX) - 1 &&
         memcmp(s, SESSID_PREFIX, sizeof(SESSID_PREFIX) - 1) == 0)) {
        return 0;
    }
    for (i = n; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-')) {
            return 0;
        }
    }
    return 1;
}
