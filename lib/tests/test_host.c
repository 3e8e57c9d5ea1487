/*
 * test_host.c: host normalization, host:port parsing and address
 * classification (egress_host.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "egress_host.h"

static void ok(const char *in, int kind, const char *want)
{
    char out[EGRESS_HOST_BUF];
    egress_error_t err;
    int got = egress_host_normalize(out, in, strlen(in), &err);

    if (got != kind) {
        print_error("\"%s\": kind %d, want %d (%s)\n", in, got, kind,
                    got < 0 ? err.message : "");
        fail();
    }
    assert_string_equal(out, want);
}

static void bad(const char *in, size_t len, const char *why)
{
    char out[EGRESS_HOST_BUF];
    egress_error_t err;
    const char *reason = NULL;

    memset(&err, 0, sizeof(err));
    if (egress_host_normalize(out, in, len, &err) != -1) {
        print_error("\"%.*s\" accepted\n", (int) len, in);
        fail();
    }
    assert_int_equal(err.code, EGRESS_ERR_HOST);
    if (strstr(err.message, why) == NULL || strncmp(err.message, "invalid host \"", 14) != 0) {
        print_error("\"%.*s\": message \"%s\" lacks \"%s\"\n", (int) len, in, err.message, why);
        fail();
    }
    assert_int_equal(egress_host_normalize_reason(out, in, len, &reason), -1);
    assert_string_equal(reason, why);
}

#define BAD(s, why) bad((s), strlen(s), (why))

static void test_normalize_names(void **state)
{
    char long_label[80], long_name[300];
    int i;

    (void) state;
    ok("example.com", EGRESS_HOST_NAME, "example.com");
    ok("Example.COM.", EGRESS_HOST_NAME, "example.com");
    ok("localhost", EGRESS_HOST_NAME, "localhost");
    ok("_dmarc.example.com", EGRESS_HOST_NAME, "_dmarc.example.com");
    ok("a-b.c-d.e", EGRESS_HOST_NAME, "a-b.c-d.e");
    ok("123.example.com", EGRESS_HOST_NAME, "123.example.com");
    ok("1.2.3.com", EGRESS_HOST_NAME, "1.2.3.com");
    ok("xn--bcher-kva.example", EGRESS_HOST_NAME, "xn--bcher-kva.example");

    BAD("", "empty host");
    BAD(".", "empty label");
    BAD("a..b", "empty label");
    BAD(".a.b", "empty label");
    BAD("a.b..", "empty label");
    BAD("-a.com", "label starts or ends with a hyphen");
    BAD("a-.com", "label starts or ends with a hyphen");
    BAD("a.com-", "label starts or ends with a hyphen");
    BAD("a b.com", "invalid character");
    BAD("a*.com", "invalid character");
    BAD("a/b", "invalid character");
    BAD("caf\xc3\xa9.com", "invalid character");
    bad("a\0b.com", 7, "invalid character");
    BAD("example.123", "not a valid IPv4 address");
    BAD("1.2.3", "not a valid IPv4 address");
    BAD("01.2.3.4", "not a valid IPv4 address");
    BAD("1.2.3.04", "not a valid IPv4 address");
    BAD("1.2.3.256", "not a valid IPv4 address");
    BAD("1.2.3.4.5", "not a valid IPv4 address");
    BAD("4294967295", "not a valid IPv4 address");
    BAD("1.2.3.4.", "IPv4 address with a trailing dot");
    BAD("0x7f000001", "ambiguous numeric address");
    BAD("0x7f.0x1", "ambiguous numeric address");

    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    BAD(long_label, "label longer than 63 characters");
    long_label[63] = '\0';
    ok(long_label, EGRESS_HOST_NAME, long_label);

    /* 4 * 63 + 3 dots = 255 > 253; 253 exactly is fine. */
    long_name[0] = '\0';
    for (i = 0; i < 4; i++) {
        strcat(long_name, long_label);
        strcat(long_name, ".");
    }
    long_name[strlen(long_name) - 1] = '\0';
    BAD(long_name, "name longer than 253 characters");
    long_name[253] = '\0';
    ok(long_name, EGRESS_HOST_NAME, long_name);
    /* A trailing dot does not count against the limit. */
    {
        char dotted[310];
        snprintf(dotted, sizeof(dotted), "%s.", long_name);
        ok(dotted, EGRESS_HOST_NAME, long_name);
    }
}

static void test_normalize_ips(void **state)
{
    (void) state;
    ok("203.0.113.7", EGRESS_HOST_IPV4, "203.0.113.7");
    ok("0.0.0.0", EGRESS_HOST_IPV4, "0.0.0.0");
    ok("255.255.255.255", EGRESS_HOST_IPV4, "255.255.255.255");
    ok("::1", EGRESS_HOST_IPV6, "::1");
    ok("[::1]", EGRESS_HOST_IPV6, "::1");
    ok("[2001:DB8:0:0:0:0:0:1]", EGRESS_HOST_IPV6, "2001:db8::1");
    ok("2001:0db8::0001", EGRESS_HOST_IPV6, "2001:db8::1");
    ok("::ffff:192.0.2.1", EGRESS_HOST_IPV6, "::ffff:192.0.2.1");
    BAD("[::1", "unterminated '['");
    BAD("[", "unterminated '['");
    BAD("[]", "not a valid IPv6 address");
    BAD("::1]", "not a valid IPv6 address");
    BAD("fe80::1%eth0", "IPv6 zone ids are not allowed");
    BAD("[fe80::1%25eth0]", "IPv6 zone ids are not allowed");
    BAD("1:2:3:4:5:6:7:8:9", "not a valid IPv6 address");
    BAD("[[::1]]", "not a valid IPv6 address");
    BAD("example.com:443", "not a valid IPv6 address");
    bad("::1\0junk", 8, "not a valid IPv6 address");
}

static void hp_ok(const char *in, uint16_t def, int kind, const char *host, uint16_t port)
{
    char out[EGRESS_HOST_BUF];
    uint16_t p = 0;
    egress_error_t err;
    int got = egress_hostport_parse(out, &p, in, strlen(in), def, &err);

    if (got != kind) {
        print_error("\"%s\": kind %d, want %d (%s)\n", in, got, kind,
                    got < 0 ? err.message : "");
        fail();
    }
    assert_string_equal(out, host);
    assert_int_equal(p, port);
}

static void hp_bad(const char *in, uint16_t def, egress_err_e code, const char *why)
{
    char out[EGRESS_HOST_BUF];
    uint16_t p = 0;
    egress_error_t err;

    memset(&err, 0, sizeof(err));
    if (egress_hostport_parse(out, &p, in, strlen(in), def, &err) != -1) {
        print_error("\"%s\" accepted\n", in);
        fail();
    }
    assert_int_equal(err.code, code);
    if (strstr(err.message, why) == NULL) {
        print_error("\"%s\": message \"%s\" lacks \"%s\"\n", in, err.message, why);
        fail();
    }
}

static void test_hostport(void **state)
{
    (void) state;
    hp_ok("example.com:443", 0, EGRESS_HOST_NAME, "example.com", 443);
    hp_ok("Example.com.:8080", 0, EGRESS_HOST_NAME, "example.com", 8080);
    hp_ok("example.com", 80, EGRESS_HOST_NAME, "example.com", 80);
    hp_ok("203.0.113.7:1", 0, EGRESS_HOST_IPV4, "203.0.113.7", 1);
    hp_ok("[::1]:443", 0, EGRESS_HOST_IPV6, "::1", 443);
    hp_ok("[2001:db8::1]", 443, EGRESS_HOST_IPV6, "2001:db8::1", 443);
    hp_ok("a.b:65535", 0, EGRESS_HOST_NAME, "a.b", 65535);

    hp_bad("example.com", 0, EGRESS_ERR_PORT_RANGE, "missing port");
    hp_bad("[::1]", 0, EGRESS_ERR_PORT_RANGE, "missing port");
    hp_bad("example.com:", 0, EGRESS_ERR_PORT_RANGE, "port must be an integer 1..65535");
    hp_bad("example.com:0", 0, EGRESS_ERR_PORT_RANGE, "port must be an integer 1..65535");
    hp_bad("example.com:65536", 0, EGRESS_ERR_PORT_RANGE, "1..65535");
    hp_bad("example.com:0443", 0, EGRESS_ERR_PORT_RANGE, "1..65535");
    hp_bad("example.com:+443", 0, EGRESS_ERR_PORT_RANGE, "1..65535");
    hp_bad("example.com:44a", 0, EGRESS_ERR_PORT_RANGE, "1..65535");
    hp_bad("example.com:443 ", 0, EGRESS_ERR_PORT_RANGE, "1..65535");
    hp_bad("example.com:123456", 0, EGRESS_ERR_PORT_RANGE, "1..65535");
    hp_bad("::1:443", 0, EGRESS_ERR_HOST, "IPv6 address must be in brackets");
    hp_bad("[::1]443", 0, EGRESS_ERR_HOST, "junk after ']'");
    hp_bad("[::1:443", 0, EGRESS_ERR_HOST, "unterminated '['");
    hp_bad(":443", 0, EGRESS_ERR_HOST, "empty host");
    hp_bad("", 443, EGRESS_ERR_HOST, "empty host");
    hp_bad("a..b:443", 0, EGRESS_ERR_HOST, "empty label");
    hp_bad("[example.com]:443", 0, EGRESS_ERR_HOST, "not a valid IPv6 address");
}

static unsigned classify4(const char *s)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, s, &sin.sin_addr), 1);
    return egress_addr_classify((struct sockaddr *) &sin);
}

static unsigned classify6(const char *s)
{
    struct sockaddr_in6 sin6;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, s, &sin6.sin6_addr), 1);
    return egress_addr_classify((struct sockaddr *) &sin6);
}

/*
 * Both sides of every boundary of the address table in egress_host.c: the
 * address just below a range, its first and last address, and the one just
 * above.
 */
static const struct {
    const char *addr;
    unsigned classes;
} class_table[] = {
    {"8.8.8.8", EGRESS_ADDR_PUBLIC},
    {"1.1.1.1", EGRESS_ADDR_PUBLIC},
    {"169.254.169.254", EGRESS_ADDR_LINK_LOCAL},
    {"0.0.0.0", EGRESS_ADDR_UNSPECIFIED},
    {"0.255.255.255", EGRESS_ADDR_UNSPECIFIED},
    {"1.0.0.0", EGRESS_ADDR_PUBLIC},
    {"9.255.255.255", EGRESS_ADDR_PUBLIC},
    {"10.0.0.0", EGRESS_ADDR_PRIVATE},
    {"10.255.255.255", EGRESS_ADDR_PRIVATE},
    {"11.0.0.0", EGRESS_ADDR_PUBLIC},
    {"100.63.255.255", EGRESS_ADDR_PUBLIC},
    {"100.64.0.0", EGRESS_ADDR_CGNAT},
    {"100.127.255.255", EGRESS_ADDR_CGNAT},
    {"100.128.0.0", EGRESS_ADDR_PUBLIC},
    {"126.255.255.255", EGRESS_ADDR_PUBLIC},
    {"127.0.0.0", EGRESS_ADDR_LOOPBACK},
    {"127.255.255.255", EGRESS_ADDR_LOOPBACK},
    {"128.0.0.0", EGRESS_ADDR_PUBLIC},
    {"169.253.255.255", EGRESS_ADDR_PUBLIC},
    {"169.254.0.0", EGRESS_ADDR_LINK_LOCAL},
    {"169.254.255.255", EGRESS_ADDR_LINK_LOCAL},
    {"169.255.0.0", EGRESS_ADDR_PUBLIC},
    {"172.15.255.255", EGRESS_ADDR_PUBLIC},
    {"172.16.0.0", EGRESS_ADDR_PRIVATE},
    {"172.31.255.255", EGRESS_ADDR_PRIVATE},
    {"172.32.0.0", EGRESS_ADDR_PUBLIC},
    {"192.0.0.8", EGRESS_ADDR_RESERVED},
    {"192.0.0.9", EGRESS_ADDR_PUBLIC},
    {"192.0.0.10", EGRESS_ADDR_PUBLIC},
    {"192.0.0.11", EGRESS_ADDR_RESERVED},
    {"191.255.255.255", EGRESS_ADDR_PUBLIC},
    {"192.0.0.0", EGRESS_ADDR_RESERVED},
    {"192.0.0.255", EGRESS_ADDR_RESERVED},
    {"192.0.1.0", EGRESS_ADDR_PUBLIC},
    {"192.0.1.255", EGRESS_ADDR_PUBLIC},
    {"192.0.2.0", EGRESS_ADDR_DOCUMENTATION},
    {"192.0.2.255", EGRESS_ADDR_DOCUMENTATION},
    {"192.0.3.0", EGRESS_ADDR_PUBLIC},
    {"192.167.255.255", EGRESS_ADDR_PUBLIC},
    {"192.168.0.0", EGRESS_ADDR_PRIVATE},
    {"192.168.255.255", EGRESS_ADDR_PRIVATE},
    {"192.169.0.0", EGRESS_ADDR_PUBLIC},
    {"198.17.255.255", EGRESS_ADDR_PUBLIC},
    {"198.18.0.0", EGRESS_ADDR_BENCHMARK},
    {"198.19.255.255", EGRESS_ADDR_BENCHMARK},
    {"198.20.0.0", EGRESS_ADDR_PUBLIC},
    {"198.51.99.255", EGRESS_ADDR_PUBLIC},
    {"198.51.100.0", EGRESS_ADDR_DOCUMENTATION},
    {"198.51.100.255", EGRESS_ADDR_DOCUMENTATION},
    {"198.51.101.0", EGRESS_ADDR_PUBLIC},
    {"203.0.112.255", EGRESS_ADDR_PUBLIC},
    {"203.0.113.0", EGRESS_ADDR_DOCUMENTATION},
    {"203.0.113.255", EGRESS_ADDR_DOCUMENTATION},
    {"203.0.114.0", EGRESS_ADDR_PUBLIC},
    {"223.255.255.255", EGRESS_ADDR_PUBLIC},
    {"224.0.0.0", EGRESS_ADDR_MULTICAST},
    {"239.255.255.255", EGRESS_ADDR_MULTICAST},
    {"240.0.0.0", EGRESS_ADDR_RESERVED},
    {"255.255.255.254", EGRESS_ADDR_RESERVED},
    {"255.255.255.255", EGRESS_ADDR_RESERVED},
};

static const struct {
    const char *addr;
    unsigned classes;
} class6_table[] = {
    {"2606:4700::1111", EGRESS_ADDR_PUBLIC},
    {"::", EGRESS_ADDR_UNSPECIFIED},
    {"::1", EGRESS_ADDR_LOOPBACK},
    {"::2", EGRESS_ADDR_RESERVED},
    /* IPv4-compatible ::/96 (deprecated) */
    {"::7f00:1", EGRESS_ADDR_RESERVED},
    {"::808:808", EGRESS_ADDR_RESERVED},
    {"::ffff:ffff", EGRESS_ADDR_RESERVED},
    {"::1:0:0", EGRESS_ADDR_RESERVED},
    /* IPv4-mapped ::ffff:0:0/96: judged by the IPv4 address */
    {"::fffe:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"::ffff:0.0.0.0", EGRESS_ADDR_UNSPECIFIED | EGRESS_ADDR_MAPPED},
    {"::ffff:8.8.8.8", EGRESS_ADDR_PUBLIC},
    {"::ffff:127.0.0.1", EGRESS_ADDR_LOOPBACK | EGRESS_ADDR_MAPPED},
    {"::ffff:10.1.2.3", EGRESS_ADDR_PRIVATE | EGRESS_ADDR_MAPPED},
    {"::ffff:169.254.169.254", EGRESS_ADDR_LINK_LOCAL | EGRESS_ADDR_MAPPED},
    {"::ffff:203.0.113.7", EGRESS_ADDR_DOCUMENTATION | EGRESS_ADDR_MAPPED},
    {"::ffff:198.18.0.1", EGRESS_ADDR_BENCHMARK | EGRESS_ADDR_MAPPED},
    {"::ffff:255.255.255.255", EGRESS_ADDR_RESERVED | EGRESS_ADDR_MAPPED},
    {"::1:0:0:0", EGRESS_ADDR_RESERVED},
    /* NAT64 64:ff9b::/96: judged by the IPv4 address */
    {"64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"64:ff9b::", EGRESS_ADDR_UNSPECIFIED | EGRESS_ADDR_MAPPED},
    {"64:ff9b::8.8.8.8", EGRESS_ADDR_PUBLIC},
    {"64:ff9b::127.0.0.1", EGRESS_ADDR_LOOPBACK | EGRESS_ADDR_MAPPED},
    {"64:ff9b::192.168.0.1", EGRESS_ADDR_PRIVATE | EGRESS_ADDR_MAPPED},
    {"64:ff9b::c612:1", EGRESS_ADDR_BENCHMARK | EGRESS_ADDR_MAPPED},
    {"64:ff9b::ffff:ffff", EGRESS_ADDR_RESERVED | EGRESS_ADDR_MAPPED},
    {"64:ff9b::1:0:0", EGRESS_ADDR_RESERVED},
    /* local-use NAT64 64:ff9b:1::/48: not global whatever it wraps */
    {"64:ff9b:0:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"64:ff9b:1::", EGRESS_ADDR_PRIVATE},
    {"64:ff9b:1::808:808", EGRESS_ADDR_PRIVATE},
    {"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PRIVATE},
    {"64:ff9b:2::", EGRESS_ADDR_RESERVED},
    /* discard-only 100::/64 and dummy 100:0:0:1::/64 */
    {"ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"100::", EGRESS_ADDR_RESERVED},
    {"100::ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"100:0:0:1::", EGRESS_ADDR_RESERVED},
    {"100:0:0:1:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"100:0:0:2::", EGRESS_ADDR_RESERVED},
    /* global unicast 2000::/3 starts */
    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"2000::", EGRESS_ADDR_PUBLIC},
    {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PUBLIC},
    /* Teredo 2001::/32: server and (inverted) client IPv4 both judged */
    {"2001::", EGRESS_ADDR_UNSPECIFIED | EGRESS_ADDR_MAPPED | EGRESS_ADDR_RESERVED},
    {"2001:0:808:808::f7f7:f7f7", EGRESS_ADDR_PUBLIC},
    {"2001:0:808:808::80ff:fffe", EGRESS_ADDR_LOOPBACK | EGRESS_ADDR_MAPPED},
    {"2001:0:808:808::3f57:fefe", EGRESS_ADDR_PRIVATE | EGRESS_ADDR_MAPPED},
    {"2001:0:c0a8:101::f7f7:f7f7", EGRESS_ADDR_PRIVATE | EGRESS_ADDR_MAPPED},
    {"2001:0:ffff:ffff:ffff:ffff:f7f7:f7f7", EGRESS_ADDR_RESERVED | EGRESS_ADDR_MAPPED},
    /* IETF protocol assignments 2001::/23 and its globally reachable parts */
    {"2001:1::", EGRESS_ADDR_RESERVED},
    {"2001:1::1", EGRESS_ADDR_PUBLIC},
    {"2001:1::2", EGRESS_ADDR_PUBLIC},
    {"2001:1::3", EGRESS_ADDR_PUBLIC},
    {"2001:1::4", EGRESS_ADDR_RESERVED},
    {"2001:1:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"2001:2::", EGRESS_ADDR_BENCHMARK},
    {"2001:2:0:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_BENCHMARK},
    {"2001:2:1::", EGRESS_ADDR_RESERVED},
    {"2001:2:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"2001:3::", EGRESS_ADDR_PUBLIC},
    {"2001:3:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PUBLIC},
    {"2001:4::", EGRESS_ADDR_RESERVED},
    {"2001:4:111:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"2001:4:112::", EGRESS_ADDR_PUBLIC},
    {"2001:4:112:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PUBLIC},
    {"2001:4:113::", EGRESS_ADDR_RESERVED},
    {"2001:10::", EGRESS_ADDR_RESERVED},
    {"2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"2001:20::", EGRESS_ADDR_PUBLIC},
    {"2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PUBLIC},
    {"2001:30::", EGRESS_ADDR_PUBLIC},
    {"2001:3f:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PUBLIC},
    {"2001:40::", EGRESS_ADDR_RESERVED},
    {"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"2001:200::", EGRESS_ADDR_PUBLIC},
    /* documentation 2001:db8::/32 */
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PUBLIC},
    {"2001:db8::", EGRESS_ADDR_DOCUMENTATION},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_DOCUMENTATION},
    {"2001:db9::", EGRESS_ADDR_PUBLIC},
    /* 6to4 2002::/16: judged by the IPv4 address */
    {"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PUBLIC},
    {"2002::", EGRESS_ADDR_UNSPECIFIED | EGRESS_ADDR_MAPPED},
    {"2002:808:808::1", EGRESS_ADDR_PUBLIC},
    {"2002:c0a8:101::1", EGRESS_ADDR_PRIVATE | EGRESS_ADDR_MAPPED},
    {"2002:7f00:1::", EGRESS_ADDR_LOOPBACK | EGRESS_ADDR_MAPPED},
    {"2002:a9fe:a9fe::", EGRESS_ADDR_LINK_LOCAL | EGRESS_ADDR_MAPPED},
    {"2002:c612::1", EGRESS_ADDR_BENCHMARK | EGRESS_ADDR_MAPPED},
    {"2002:cb00:7107::", EGRESS_ADDR_DOCUMENTATION | EGRESS_ADDR_MAPPED},
    {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED | EGRESS_ADDR_MAPPED},
    {"2003::", EGRESS_ADDR_PUBLIC},
    /* documentation 3fff::/20, then the end of 2000::/3 */
    {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PUBLIC},
    {"3fff::", EGRESS_ADDR_DOCUMENTATION},
    {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_DOCUMENTATION},
    {"3fff:1000::", EGRESS_ADDR_PUBLIC},
    {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PUBLIC},
    {"4000::", EGRESS_ADDR_RESERVED},
    /* segment routing 5f00::/16 */
    {"5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"5f00::", EGRESS_ADDR_RESERVED},
    {"5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    /* unique local fc00::/7 */
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"fc00::", EGRESS_ADDR_PRIVATE},
    {"fd12:3456::1", EGRESS_ADDR_PRIVATE},
    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PRIVATE},
    {"fe00::", EGRESS_ADDR_RESERVED},
    /* link local fe80::/10, site local fec0::/10 */
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_RESERVED},
    {"fe80::", EGRESS_ADDR_LINK_LOCAL},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_LINK_LOCAL},
    {"fec0::", EGRESS_ADDR_PRIVATE},
    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_PRIVATE},
    /* multicast ff00::/8 */
    {"ff00::", EGRESS_ADDR_MULTICAST},
    {"ff02::1", EGRESS_ADDR_MULTICAST},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGRESS_ADDR_MULTICAST},
};

static void test_classify(void **state)
{
    struct sockaddr sa;
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(class_table) / sizeof(class_table[0]); i++) {
        unsigned got = classify4(class_table[i].addr);
        if (got != class_table[i].classes) {
            print_error("%s: got %#x want %#x\n", class_table[i].addr, got,
                        class_table[i].classes);
            fail();
        }
    }
    for (i = 0; i < sizeof(class6_table) / sizeof(class6_table[0]); i++) {
        unsigned got = classify6(class6_table[i].addr);
        if (got != class6_table[i].classes) {
            print_error("%s: got %#x want %#x\n", class6_table[i].addr, got,
                        class6_table[i].classes);
            fail();
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_family = AF_UNIX;
    assert_int_equal(egress_addr_classify(&sa), EGRESS_ADDR_UNSPECIFIED);
    assert_int_equal(egress_addr_classify(NULL), EGRESS_ADDR_UNSPECIFIED);
}

static void test_class_name(void **state)
{
    (void) state;
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_PUBLIC), "public");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_LOOPBACK), "loopback");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_LOOPBACK | EGRESS_ADDR_MAPPED),
                        "loopback");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_PRIVATE), "private");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_LINK_LOCAL), "link-local");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_CGNAT), "carrier-grade NAT");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_MULTICAST), "multicast");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_UNSPECIFIED), "unspecified");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_DOCUMENTATION), "documentation");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_BENCHMARK), "benchmarking");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_RESERVED), "reserved");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_DOCUMENTATION | EGRESS_ADDR_MAPPED),
                        "documentation");
    assert_string_equal(egress_addr_class_name(EGRESS_ADDR_MAPPED), "IPv4-mapped");
}

static void test_is_loopback(void **state)
{
    static const char *const yes[] = {"localhost", "LOCALHOST.", "127.0.0.1",       "127.1.2.3",
                                      "::1",       "[::1]",      "::ffff:127.0.0.1"};
    static const char *const no[] = {"localhost.localdomain",
                                     "example.com",
                                     "0.0.0.0",
                                     "::",
                                     "10.0.0.1",
                                     "",
                                     "127.0.0.01",
                                     "[::1",
                                     "128.0.0.1"};
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!egress_host_is_loopback(yes[i], strlen(yes[i]))) {
            print_error("%s should be loopback\n", yes[i]);
            fail();
        }
    }
    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (egress_host_is_loopback(no[i], strlen(no[i]))) {
            print_error("%s should not be loopback\n", no[i]);
            fail();
        }
    }
}

static void test_parse_port(void **state)
{
    static const char *const bad[] = {"",      "0",      "00",  "0443", "+443", "-1",
                                      "65536", "123456", "44a", " 443", "443 ", "4 3"};
    uint16_t p = 7;
    size_t i;

    (void) state;
    assert_int_equal(egress_parse_port("1", 1, &p), 0);
    assert_int_equal(p, 1);
    assert_int_equal(egress_parse_port("65535", 5, &p), 0);
    assert_int_equal(p, 65535);
    /* len bounds the digits: "4430" read as its first three */
    assert_int_equal(egress_parse_port("4430", 3, &p), 0);
    assert_int_equal(p, 443);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = 7;
        if (egress_parse_port(bad[i], strlen(bad[i]), &p) != -1 || p != 7) {
            print_error("\"%s\" accepted or port changed (%u)\n", bad[i], p);
            fail();
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_names), cmocka_unit_test(test_normalize_ips),
        cmocka_unit_test(test_hostport),        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_class_name),      cmocka_unit_test(test_is_loopback),
        cmocka_unit_test(test_parse_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
