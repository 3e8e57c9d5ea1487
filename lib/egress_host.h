/*
 * egress_host.h: destination names and addresses.
 *
 * One definition of "a valid destination host" shared by the proxy request
 * parser (module), the frame decoder and the allowlist, plus the address
 * classification the host agent applies to resolved addresses.
 */

#ifndef EGRESS_HOST_H
#define EGRESS_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "egress_error.h"

/* Longest DNS name we accept, without the optional trailing dot. */
#define EGRESS_HOST_MAX 253

/* Large enough for any normalized host plus NUL (an IPv6 literal is shorter). */
#define EGRESS_HOST_BUF (EGRESS_HOST_MAX + 1)

typedef enum {
    EGRESS_HOST_NAME = 1, /* DNS name: LDH labels (and '_'), 1..63 chars each */
    EGRESS_HOST_IPV4,     /* dotted quad, four decimal octets, no leading zeros */
    EGRESS_HOST_IPV6      /* IPv6 literal without brackets and without zone */
} egress_host_kind_e;

/*
 * Validates and normalizes a destination host: lower-cases it, drops one
 * trailing dot, and for IPv6 strips surrounding brackets and rewrites it in
 * canonical (inet_ntop) form. Writes a NUL-terminated result to out (at least
 * EGRESS_HOST_BUF bytes). Returns the kind, or -1 with err = EGRESS_ERR_HOST.
 */
int egress_host_normalize(char *out, const char *host, size_t len, egress_error_t *err);

/*
 * The same, but on failure stores only the bare reason ("empty label", a
 * static string) in *reason, for callers that phrase their own message.
 */
int egress_host_normalize_reason(char *out, const char *host, size_t len, const char **reason);

/*
 * A port as written after "host:", in an allowlist pattern or in a port list:
 * decimal 1..65535 without sign or leading zero. Returns 0, or -1 (then *port
 * is untouched).
 */
int egress_parse_port(const char *s, size_t len, uint16_t *port);

/*
 * Splits "host:port", "[v6]:port" or a bare host (when default_port is not 0)
 * as found in a CONNECT line or URL authority; normalizes the host into out.
 * Returns the host kind, or -1 with err set (EGRESS_ERR_HOST or
 * EGRESS_ERR_PORT_RANGE).
 */
int egress_hostport_parse(char *out, uint16_t *port, const char *s, size_t len,
                          uint16_t default_port, egress_error_t *err);

/*
 * Address classes; an address may be "public" only when no other bit is set.
 * egress_host.c holds the table of ranges behind them, drawn from the IANA
 * IPv4 and IPv6 special-purpose address registries.
 */
enum {
    EGRESS_ADDR_PUBLIC = 0,
    EGRESS_ADDR_LOOPBACK = 1 << 0,      /* 127/8, ::1 */
    EGRESS_ADDR_PRIVATE = 1 << 1,       /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10,
                                           64:ff9b:1::/48 */
    EGRESS_ADDR_LINK_LOCAL = 1 << 2,    /* 169.254/16 (incl. metadata), fe80::/10 */
    EGRESS_ADDR_CGNAT = 1 << 3,         /* 100.64/10 */
    EGRESS_ADDR_MULTICAST = 1 << 4,     /* 224/4, ff00::/8 */
    EGRESS_ADDR_UNSPECIFIED = 1 << 5,   /* 0/8, :: */
    EGRESS_ADDR_MAPPED = 1 << 6,        /* an IPv4 inside IPv6 made it non-public */
    EGRESS_ADDR_DOCUMENTATION = 1 << 7, /* 192.0.2/24, 198.51.100/24, 203.0.113/24,
                                           2001:db8::/32, 3fff::/20 */
    EGRESS_ADDR_BENCHMARK = 1 << 8,     /* 198.18/15, 2001:2::/48 */
    EGRESS_ADDR_RESERVED = 1 << 9       /* 240/4, 255.255.255.255, 192.0.0/24, 100::/64,
                                           2001::/23, 5f00::/16, ::/96, outside 2000::/3 */
};

/*
 * Classifies a resolved address (AF_INET or AF_INET6). Returns a bit set of
 * EGRESS_ADDR_*; EGRESS_ADDR_PUBLIC (0) means dialable without
 * --allow-private, i.e. globally reachable per the IANA special-purpose
 * registries. IPv6 addresses that wrap an IPv4 address (IPv4-mapped, NAT64
 * 64:ff9b::/96, 6to4, Teredo) are judged by it; EGRESS_ADDR_MAPPED is added
 * only to a non-public one (::ffff:127.0.0.1 is LOOPBACK|MAPPED,
 * ::ffff:8.8.8.8 is PUBLIC). Documentation and benchmarking ranges are not
 * public: tests that use them as the internet pass --allow-private. Other
 * families are UNSPECIFIED.
 */
unsigned egress_addr_classify(const struct sockaddr *sa);

/* Human word for the most significant class bit ("loopback", "private", ...). */
const char *egress_addr_class_name(unsigned classes);

/* Returns 1 when the textual address is loopback (127.0.0.0/8, ::1) or "localhost". */
int egress_host_is_loopback(const char *host, size_t len);

#endif /* EGRESS_HOST_H */
