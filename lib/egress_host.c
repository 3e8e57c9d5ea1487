/*
 * egress_host.c: destination host validation/normalization, host:port
 * parsing and address classification.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "egress_host.h"

#define EXCERPT_BUF 72

static int host_fail(egress_error_t *err, const char *host, size_t len, const char *why)
{
    char ex[EXCERPT_BUF];

    egress_error_excerpt(ex, sizeof(ex), host, len);
    return egress_error_set(err, EGRESS_ERR_HOST, "invalid host \"%s\": %s", ex, why);
}

static int reason_fail(const char **reason, const char *why)
{
    if (reason != NULL) {
        *reason = why;
    }
    return -1;
}

/* Strict dotted quad: four decimal octets 0..255, no leading zeros, no sign. */
static int parse_ipv4_strict(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    unsigned part;

    for (part = 0; part < 4; part++) {
        unsigned v = 0;
        size_t digits = 0;
        if (part > 0) {
            if (i >= len || s[i] != '.') {
                return -1;
            }
            i++;
        }
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (digits > 0 && v == 0) {
                return -1; /* leading zero */
            }
            v = v * 10 + (unsigned) (s[i] - '0');
            if (v > 255) {
                return -1;
            }
            digits++;
            i++;
        }
        if (digits == 0) {
            return -1;
        }
        out[part] = (uint8_t) v;
    }
    return i == len ? 0 : -1;
}

static int is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Validates an already lower-cased DNS name (no trailing dot). Returns NULL
 * when valid, else the reason.
 */
static const char *check_name(const char *s, size_t len)
{
    size_t i, label_start = 0;
    int all_digits = 1;

    if (len > EGRESS_HOST_MAX) {
        return "name longer than 253 characters";
    }
    for (i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            size_t llen = i - label_start;
            if (llen == 0) {
                return "empty label";
            }
            if (llen > 63) {
                return "label longer than 63 characters";
            }
            if (s[label_start] == '-' || s[i - 1] == '-') {
                return "label starts or ends with a hyphen";
            }
            if (i < len) {
                label_start = i + 1;
                all_digits = 1;
            }
            continue;
        }
        if (!is_name_char((unsigned char) s[i])) {
            return "invalid character";
        }
        if (s[i] < '0' || s[i] > '9') {
            all_digits = 0;
        }
    }
    /* An all-numeric last label only makes sense as (a typo of) an IPv4 address. */
    if (all_digits) {
        return "not a valid IPv4 address";
    }
    return NULL;
}

static int normalize_ipv6(char *out, const char *host, size_t len, const char **reason)
{
    char tmp[64];
    struct in6_addr a6;

    if (len == 0 || len >= sizeof(tmp) || memchr(host, '\0', len) != NULL) {
        return reason_fail(reason, "not a valid IPv6 address");
    }
    if (memchr(host, '%', len) != NULL) {
        return reason_fail(reason, "IPv6 zone ids are not allowed");
    }
    memcpy(tmp, host, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET6, tmp, &a6) != 1 ||
        inet_ntop(AF_INET6, &a6, out, EGRESS_HOST_BUF) == NULL) {
        return reason_fail(reason, "not a valid IPv6 address");
    }
    return EGRESS_HOST_IPV6;
}

int egress_host_normalize_reason(char *out, const char *host, size_t len, const char **reason)
{
    const char *why;
    uint8_t a4[4];
    struct in_addr a4n;
    size_t i;
    int dot = 0;

    if (len == 0) {
        return reason_fail(reason, "empty host");
    }
    if (host[0] == '[') {
        if (len < 2 || host[len - 1] != ']') {
            return reason_fail(reason, "unterminated '['");
        }
        return normalize_ipv6(out, host + 1, len - 2, reason);
    }
    if (memchr(host, ':', len) != NULL) {
        return normalize_ipv6(out, host, len, reason);
    }
    if (host[len - 1] == '.') {
        len--;
        dot = 1;
        if (len == 0) {
            return reason_fail(reason, "empty label");
        }
    }
    if (len > EGRESS_HOST_MAX) {
        return reason_fail(reason, "name longer than 253 characters");
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) host[i];
        out[i] = (char) ((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
    }
    out[len] = '\0';
    if (parse_ipv4_strict(out, len, a4) == 0) {
        if (dot) {
            return reason_fail(reason, "IPv4 address with a trailing dot");
        }
        return EGRESS_HOST_IPV4;
    }
    why = check_name(out, len);
    if (why != NULL) {
        return reason_fail(reason, why);
    }
    /* Resolvers read "0x7f000001" or "0x7f.1" as numbers: never treat those as names. */
    if (inet_aton(out, &a4n) != 0) {
        return reason_fail(reason, "ambiguous numeric address");
    }
    return EGRESS_HOST_NAME;
}

int egress_host_normalize(char *out, const char *host, size_t len, egress_error_t *err)
{
    const char *why = NULL;
    int kind = egress_host_normalize_reason(out, host, len, &why);

    if (kind < 0) {
        return host_fail(err, host, len, why);
    }
    return kind;
}

static int parse_port(const char *s, size_t len, uint16_t *port)
{
    unsigned v = 0;
    size_t i;

    if (len == 0 || len > 5 || s[0] == '0') {
        return -1;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned) (s[i] - '0');
    }
    if (v < 1 || v > 65535) {
        return -1;
    }
    *port = (uint16_t) v;
    return 0;
}

int egress_hostport_parse(char *out, uint16_t *port, const char *s, size_t len,
                          uint16_t default_port, egress_error_t *err)
{
    const char *colon = NULL;
    size_t hlen;
    int kind;
    char ex[EXCERPT_BUF];

    if (len > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (rb == NULL) {
            return host_fail(err, s, len, "unterminated '['");
        }
        hlen = (size_t) (rb - s) + 1;
        if (hlen < len) {
            if (s[hlen] != ':') {
                return host_fail(err, s, len, "junk after ']'");
            }
            colon = s + hlen;
        }
    } else {
        colon = memchr(s, ':', len);
        if (colon != NULL && memchr(colon + 1, ':', len - (size_t) (colon - s) - 1) != NULL) {
            return host_fail(err, s, len, "IPv6 address must be in brackets");
        }
        hlen = colon != NULL ? (size_t) (colon - s) : len;
    }
    kind = egress_host_normalize(out, s, hlen, err);
    if (kind < 0) {
        return -1;
    }
    if (colon == NULL) {
        if (default_port == 0) {
            egress_error_excerpt(ex, sizeof(ex), s, len);
            return egress_error_set(err, EGRESS_ERR_PORT_RANGE, "\"%s\": missing port", ex);
        }
        *port = default_port;
        return kind;
    }
    if (parse_port(colon + 1, len - (size_t) (colon - s) - 1, port) < 0) {
        egress_error_excerpt(ex, sizeof(ex), s, len);
        return egress_error_set(err, EGRESS_ERR_PORT_RANGE,
                                "\"%s\": port must be an integer 1..65535", ex);
    }
    return kind;
}

static unsigned classify_v4(const uint8_t a[4])
{
    if (a[0] == 0) {
        return EGRESS_ADDR_UNSPECIFIED;
    }
    if (a[0] == 127) {
        return EGRESS_ADDR_LOOPBACK;
    }
    if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168)) {
        return EGRESS_ADDR_PRIVATE;
    }
    if (a[0] == 169 && a[1] == 254) {
        return EGRESS_ADDR_LINK_LOCAL;
    }
    if (a[0] == 100 && (a[1] & 0xc0) == 64) {
        return EGRESS_ADDR_CGNAT;
    }
    if ((a[0] & 0xf0) == 224) {
        return EGRESS_ADDR_MULTICAST;
    }
    if ((a[0] & 0xf0) == 240) {
        return EGRESS_ADDR_UNSPECIFIED; /* 240/4 reserved, incl. 255.255.255.255 */
    }
    return EGRESS_ADDR_PUBLIC;
}

static int all_zero(const uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static unsigned classify_v6(const uint8_t a[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    unsigned c;

    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0) {
        /* Judged by the embedded IPv4; MAPPED marks that only when it matters. */
        c = classify_v4(a + 12);
        return c == EGRESS_ADDR_PUBLIC ? c : (c | EGRESS_ADDR_MAPPED);
    }
    if (all_zero(a, 15)) {
        if (a[15] == 1) {
            return EGRESS_ADDR_LOOPBACK;
        }
        return EGRESS_ADDR_UNSPECIFIED;
    }
    if (all_zero(a, 12)) {
        return EGRESS_ADDR_UNSPECIFIED; /* deprecated IPv4-compatible ::a.b.c.d */
    }
    if ((a[0] & 0xfe) == 0xfc) {
        return EGRESS_ADDR_PRIVATE;
    }
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) {
        return EGRESS_ADDR_LINK_LOCAL;
    }
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) {
        return EGRESS_ADDR_PRIVATE; /* deprecated site-local fec0::/10 */
    }
    if (a[0] == 0xff) {
        return EGRESS_ADDR_MULTICAST;
    }
    return EGRESS_ADDR_PUBLIC;
}

unsigned egress_addr_classify(const struct sockaddr *sa)
{
    if (sa == NULL) {
        return EGRESS_ADDR_UNSPECIFIED;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) (const void *) sa;
        uint8_t a[4];
        memcpy(a, &sin->sin_addr, 4);
        return classify_v4(a);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) (const void *) sa;
        uint8_t a[16];
        memcpy(a, &sin6->sin6_addr, 16);
        return classify_v6(a);
    }
    return EGRESS_ADDR_UNSPECIFIED;
}

const char *egress_addr_class_name(unsigned classes)
{
    if (classes & EGRESS_ADDR_LOOPBACK) {
        return "loopback";
    }
    if (classes & EGRESS_ADDR_PRIVATE) {
        return "private";
    }
    if (classes & EGRESS_ADDR_LINK_LOCAL) {
        return "link-local";
    }
    if (classes & EGRESS_ADDR_CGNAT) {
        return "carrier-grade NAT";
    }
    if (classes & EGRESS_ADDR_MULTICAST) {
        return "multicast";
    }
    if (classes & EGRESS_ADDR_UNSPECIFIED) {
        return "unspecified";
    }
    if (classes & EGRESS_ADDR_MAPPED) {
        return "IPv4-mapped";
    }
    return "public";
}

int egress_host_is_loopback(const char *host, size_t len)
{
    char buf[EGRESS_HOST_BUF];
    struct in6_addr a6;
    uint8_t a4[4];
    int kind;

    kind = egress_host_normalize(buf, host, len, NULL);
    if (kind == EGRESS_HOST_NAME) {
        return strcmp(buf, "localhost") == 0;
    }
    if (kind == EGRESS_HOST_IPV4) {
        parse_ipv4_strict(buf, strlen(buf), a4);
        return classify_v4(a4) == EGRESS_ADDR_LOOPBACK;
    }
    if (kind == EGRESS_HOST_IPV6 && inet_pton(AF_INET6, buf, &a6) == 1) {
        return (classify_v6(a6.s6_addr) & EGRESS_ADDR_LOOPBACK) != 0;
    }
    return 0;
}
