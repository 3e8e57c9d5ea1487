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

int egress_parse_port(const char *s, size_t len, uint16_t *port)
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
    if (v > 65535) {
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
    if (egress_parse_port(colon + 1, len - (size_t) (colon - s) - 1, port) < 0) {
        egress_error_excerpt(ex, sizeof(ex), s, len);
        return egress_error_set(err, EGRESS_ERR_PORT_RANGE,
                                "\"%s\": port must be an integer 1..65535", ex);
    }
    return kind;
}

/*
 * The address table: every range the host agent refuses unless --allow-private.
 *
 * Sources: the IANA "IPv4 Special-Purpose Address Registry" and "IPv6
 * Special-Purpose Address Registry" (RFC 6890 and its updates; every entry
 * whose "Globally Reachable" is False), plus multicast (224.0.0.0/4,
 * ff00::/8), the deprecated site-local fec0::/10 and everything outside
 * global unicast 2000::/3 that IANA has not allocated. Entries whose
 * "Globally Reachable" is True stay public even inside a refused block (the
 * anycast /32s in 192.0.0.0/24, AMT and ORCHIDv2 in 2001::/23). Prefixes
 * that wrap an IPv4 address are judged by that address: IPv4-mapped
 * ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16 and Teredo 2001::/32
 * (both its server and its de-obfuscated client address must be public).
 *
 * The first entry that matches wins, so a more specific entry comes before
 * the block it is carved from.
 */
typedef struct {
    uint8_t a[4];
    uint8_t bits;
    unsigned cls;
} v4_range_t;

static const v4_range_t v4_ranges[] = {
    {{0, 0, 0, 0}, 8, EGRESS_ADDR_UNSPECIFIED},         /* "this network" */
    {{10, 0, 0, 0}, 8, EGRESS_ADDR_PRIVATE},            /* RFC 1918 */
    {{100, 64, 0, 0}, 10, EGRESS_ADDR_CGNAT},           /* shared address space */
    {{127, 0, 0, 0}, 8, EGRESS_ADDR_LOOPBACK},          /* loopback */
    {{169, 254, 0, 0}, 16, EGRESS_ADDR_LINK_LOCAL},     /* link local, cloud metadata */
    {{172, 16, 0, 0}, 12, EGRESS_ADDR_PRIVATE},         /* RFC 1918 */
    {{192, 0, 0, 9}, 32, EGRESS_ADDR_PUBLIC},           /* PCP anycast: global */
    {{192, 0, 0, 10}, 32, EGRESS_ADDR_PUBLIC},          /* TURN anycast: global */
    {{192, 0, 0, 0}, 24, EGRESS_ADDR_RESERVED},         /* IETF protocol assignments */
    {{192, 0, 2, 0}, 24, EGRESS_ADDR_DOCUMENTATION},    /* TEST-NET-1 */
    {{192, 168, 0, 0}, 16, EGRESS_ADDR_PRIVATE},        /* RFC 1918 */
    {{198, 18, 0, 0}, 15, EGRESS_ADDR_BENCHMARK},       /* benchmarking */
    {{198, 51, 100, 0}, 24, EGRESS_ADDR_DOCUMENTATION}, /* TEST-NET-2 */
    {{203, 0, 113, 0}, 24, EGRESS_ADDR_DOCUMENTATION},  /* TEST-NET-3 */
    {{224, 0, 0, 0}, 4, EGRESS_ADDR_MULTICAST},         /* multicast */
    {{255, 255, 255, 255}, 32, EGRESS_ADDR_RESERVED},   /* limited broadcast */
    {{240, 0, 0, 0}, 4, EGRESS_ADDR_RESERVED},          /* reserved */
};

enum {
    EMBED_NONE = 0,
    EMBED_LOW32, /* the IPv4 address is the last 32 bits */
    EMBED_6TO4,  /* 2002:AABB:CCDD::/48 */
    EMBED_TEREDO /* server in bits 32..63, client inverted in the last 32 bits */
};

typedef struct {
    uint16_t w[8];
    uint8_t bits;
    uint8_t embed;
    unsigned cls;
} v6_range_t;

static const v6_range_t v6_ranges[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0}, 128, EMBED_NONE, EGRESS_ADDR_UNSPECIFIED}, /* :: */
    {{0, 0, 0, 0, 0, 0, 0, 1}, 128, EMBED_NONE, EGRESS_ADDR_LOOPBACK},    /* ::1 */
    {{0, 0, 0, 0, 0, 0xffff, 0, 0}, 96, EMBED_LOW32, 0},                  /* IPv4-mapped */
    {{0, 0, 0, 0, 0, 0, 0, 0}, 96, EMBED_NONE, EGRESS_ADDR_RESERVED},     /* IPv4-compatible */
    {{0x64, 0xff9b, 0, 0, 0, 0, 0, 0}, 96, EMBED_LOW32, 0},               /* NAT64 */
    {{0x64, 0xff9b, 1, 0, 0, 0, 0, 0}, 48, EMBED_NONE, EGRESS_ADDR_PRIVATE}, /* local NAT64 */
    {{0x100, 0, 0, 0, 0, 0, 0, 0}, 64, EMBED_NONE, EGRESS_ADDR_RESERVED},    /* discard-only */
    {{0x100, 0, 0, 1, 0, 0, 0, 0}, 64, EMBED_NONE, EGRESS_ADDR_RESERVED},    /* dummy prefix */
    {{0x2001, 0, 0, 0, 0, 0, 0, 0}, 32, EMBED_TEREDO, 0},                    /* Teredo */
    {{0x2001, 1, 0, 0, 0, 0, 0, 1}, 128, EMBED_NONE, EGRESS_ADDR_PUBLIC},    /* PCP anycast */
    {{0x2001, 1, 0, 0, 0, 0, 0, 2}, 128, EMBED_NONE, EGRESS_ADDR_PUBLIC},    /* TURN anycast */
    {{0x2001, 1, 0, 0, 0, 0, 0, 3}, 128, EMBED_NONE, EGRESS_ADDR_PUBLIC},    /* DNS-SD SRP */
    {{0x2001, 2, 0, 0, 0, 0, 0, 0}, 48, EMBED_NONE, EGRESS_ADDR_BENCHMARK},  /* benchmarking */
    {{0x2001, 3, 0, 0, 0, 0, 0, 0}, 32, EMBED_NONE, EGRESS_ADDR_PUBLIC},     /* AMT */
    {{0x2001, 4, 0x112, 0, 0, 0, 0, 0}, 48, EMBED_NONE, EGRESS_ADDR_PUBLIC}, /* AS112-v6 */
    {{0x2001, 0x20, 0, 0, 0, 0, 0, 0}, 28, EMBED_NONE, EGRESS_ADDR_PUBLIC},  /* ORCHIDv2 */
    {{0x2001, 0x30, 0, 0, 0, 0, 0, 0}, 28, EMBED_NONE, EGRESS_ADDR_PUBLIC},  /* DRIP DETs */
    {{0x2001, 0, 0, 0, 0, 0, 0, 0}, 23, EMBED_NONE, EGRESS_ADDR_RESERVED},   /* IETF protocol */
    {{0x2001, 0xdb8, 0, 0, 0, 0, 0, 0}, 32, EMBED_NONE, EGRESS_ADDR_DOCUMENTATION},
    {{0x2002, 0, 0, 0, 0, 0, 0, 0}, 16, EMBED_6TO4, 0}, /* 6to4 */
    {{0x3fff, 0, 0, 0, 0, 0, 0, 0}, 20, EMBED_NONE, EGRESS_ADDR_DOCUMENTATION},
    {{0x5f00, 0, 0, 0, 0, 0, 0, 0}, 16, EMBED_NONE, EGRESS_ADDR_RESERVED}, /* SRv6 SIDs */
    {{0x2000, 0, 0, 0, 0, 0, 0, 0}, 3, EMBED_NONE, EGRESS_ADDR_PUBLIC},    /* global unicast */
    {{0xfc00, 0, 0, 0, 0, 0, 0, 0}, 7, EMBED_NONE, EGRESS_ADDR_PRIVATE},   /* unique local */
    {{0xfe80, 0, 0, 0, 0, 0, 0, 0}, 10, EMBED_NONE, EGRESS_ADDR_LINK_LOCAL},
    {{0xfec0, 0, 0, 0, 0, 0, 0, 0}, 10, EMBED_NONE, EGRESS_ADDR_PRIVATE}, /* site local */
    {{0xff00, 0, 0, 0, 0, 0, 0, 0}, 8, EMBED_NONE, EGRESS_ADDR_MULTICAST},
    {{0, 0, 0, 0, 0, 0, 0, 0}, 0, EMBED_NONE, EGRESS_ADDR_RESERVED}, /* not allocated */
};

/* 1 when the first bits of a equal those of prefix. */
static int prefix_match(const uint8_t *a, const uint8_t *prefix, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, prefix, whole) != 0) {
        return 0;
    }
    if (rest == 0) {
        return 1;
    }
    return ((a[whole] ^ prefix[whole]) & (uint8_t) (0xff00 >> rest)) == 0;
}

static unsigned classify_v4(const uint8_t a[4])
{
    size_t i;

    for (i = 0; i < sizeof(v4_ranges) / sizeof(v4_ranges[0]); i++) {
        if (prefix_match(a, v4_ranges[i].a, v4_ranges[i].bits)) {
            return v4_ranges[i].cls;
        }
    }
    return EGRESS_ADDR_PUBLIC;
}

/* An embedded IPv4 address; MAPPED marks it only when it makes the address non-public. */
static unsigned classify_embedded(const uint8_t v4[4])
{
    unsigned c = classify_v4(v4);

    return c == EGRESS_ADDR_PUBLIC ? c : (c | EGRESS_ADDR_MAPPED);
}

static unsigned classify_v6(const uint8_t a[16])
{
    const v6_range_t *r = NULL;
    uint8_t prefix[16], client[4];
    size_t i, k;

    for (i = 0; i < sizeof(v6_ranges) / sizeof(v6_ranges[0]); i++) {
        for (k = 0; k < 8; k++) {
            prefix[2 * k] = (uint8_t) (v6_ranges[i].w[k] >> 8);
            prefix[2 * k + 1] = (uint8_t) v6_ranges[i].w[k];
        }
        if (prefix_match(a, prefix, v6_ranges[i].bits)) {
            r = &v6_ranges[i];
            break;
        }
    }
    if (r == NULL) {
        return EGRESS_ADDR_RESERVED; /* unreachable: the last entry matches everything */
    }
    switch (r->embed) {
    case EMBED_LOW32:
        return classify_embedded(a + 12);
    case EMBED_6TO4:
        return classify_embedded(a + 2);
    case EMBED_TEREDO:
        for (k = 0; k < 4; k++) {
            client[k] = (uint8_t) ~a[12 + k];
        }
        return classify_embedded(a + 4) | classify_embedded(client);
    default:
        return r->cls;
    }
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
    if (classes & EGRESS_ADDR_DOCUMENTATION) {
        return "documentation";
    }
    if (classes & EGRESS_ADDR_BENCHMARK) {
        return "benchmarking";
    }
    if (classes & EGRESS_ADDR_RESERVED) {
        return "reserved";
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
