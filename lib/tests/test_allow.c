/*
 * test_allow.c: allowlist patterns, profiles and matching (egress_allow.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "egress_allow.h"

static egress_allow_t *list_of(const char *csv)
{
    egress_allow_t *al = egress_allow_new();
    egress_error_t err;

    assert_non_null(al);
    if (egress_allow_add_list(al, csv, &err) != 0) {
        print_error("add_list \"%s\": %s\n", csv, err.message);
        fail();
    }
    return al;
}

static int match(const egress_allow_t *al, const char *host, uint16_t port)
{
    return egress_allow_match(al, host, strlen(host), port);
}

static void test_exact_and_wildcard(void **state)
{
    egress_allow_t *al = list_of("example.com,*.discord.com");

    (void) state;
    assert_true(match(al, "example.com", 443));
    assert_true(match(al, "example.com", 80));
    assert_true(match(al, "EXAMPLE.com.", 443));
    assert_false(match(al, "example.com", 8443));
    assert_false(match(al, "www.example.com", 443));
    assert_false(match(al, "xexample.com", 443));
    assert_false(match(al, "example.co", 443));
    assert_false(match(al, "example.com.evil", 443));
    assert_true(match(al, "discord.com", 443));
    assert_true(match(al, "gateway.discord.com", 443));
    assert_true(match(al, "a.b.c.discord.com", 80));
    assert_true(match(al, "Gateway.Discord.Com.", 443));
    assert_false(match(al, "baddiscord.com", 443));
    assert_false(match(al, "discord.com.evil.net", 443));
    assert_false(match(al, "discord.co", 443));
    assert_false(match(al, "gateway.discord.com", 22));
    assert_false(match(al, "discord.com", 0));
    assert_false(match(al, "", 443));
    assert_false(match(al, "a..discord.com", 443));
    assert_false(match(al, "[discord.com]", 443));
    assert_false(egress_allow_match(al, "example.com\0x", 13, 443));
    egress_allow_free(al);
}

static void test_ports(void **state)
{
    egress_allow_t *al = list_of("a.example:8443,*.b.example:22,c.example");
    egress_error_t err;
    uint16_t ports[3] = {8080, 8080, 9000};
    char buf[64];

    (void) state;
    assert_true(match(al, "a.example", 8443));
    assert_false(match(al, "a.example", 443));
    assert_true(match(al, "x.b.example", 22));
    assert_true(match(al, "b.example", 22));
    assert_false(match(al, "b.example", 80));
    assert_true(match(al, "c.example", 80));
    assert_true(match(al, "c.example", 443));
    assert_false(match(al, "c.example", 8080));

    assert_int_equal(egress_allow_ports_format(al, buf, sizeof(buf)), 6);
    assert_string_equal(buf, "80,443");
    assert_int_equal(egress_allow_set_ports(al, ports, 3, &err), 0);
    assert_int_equal(egress_allow_ports_format(al, buf, sizeof(buf)), 9);
    assert_string_equal(buf, "8080,9000");
    assert_true(match(al, "c.example", 8080));
    assert_false(match(al, "c.example", 443));
    /* Explicit ports are unaffected by the default set. */
    assert_true(match(al, "a.example", 8443));

    assert_int_equal(egress_allow_set_ports_list(al, "1, 65535,443", &err), 0);
    assert_int_equal(egress_allow_ports_format(al, buf, sizeof(buf)), 11);
    assert_string_equal(buf, "1,65535,443");
    /* Truncation keeps the NUL and reports the full length. */
    assert_int_equal(egress_allow_ports_format(al, buf, 4), 11);
    assert_string_equal(buf, "1,6");
    assert_int_equal(egress_allow_ports_format(al, buf, 0), 11);

    assert_int_equal(egress_allow_set_ports(al, ports, 0, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_PORT_RANGE);
    ports[1] = 0;
    assert_int_equal(egress_allow_set_ports(al, ports, 3, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_PORT_RANGE);
    assert_int_equal(egress_allow_set_ports(al, ports, EGRESS_ALLOW_MAX_PORTS + 1, &err), -1);
    assert_int_equal(egress_allow_set_ports_list(al, "80,,443", &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_PORT_RANGE);
    assert_non_null(strstr(err.message, "invalid port \"\""));
    assert_int_equal(egress_allow_set_ports_list(al, "0", &err), -1);
    assert_int_equal(egress_allow_set_ports_list(al, "65536", &err), -1);
    assert_int_equal(egress_allow_set_ports_list(al, "http", &err), -1);
    assert_non_null(strstr(err.message, "invalid port \"http\""));
    assert_int_equal(egress_allow_set_ports_list(al, "", &err), -1);
    /* Failed calls left the previous set in place. */
    assert_int_equal(egress_allow_ports_format(al, buf, sizeof(buf)), 11);
    {
        char many[400] = "";
        size_t i;
        for (i = 0; i < EGRESS_ALLOW_MAX_PORTS + 1; i++) {
            snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s%zu", i ? "," : "",
                     i + 1);
        }
        assert_int_equal(egress_allow_set_ports_list(al, many, &err), -1);
        assert_int_equal(err.code, EGRESS_ERR_PORT_RANGE);
    }
    egress_allow_free(al);
}

static void test_ip_literals(void **state)
{
    egress_allow_t *al = list_of("203.0.113.7,[2001:db8::1],[::1]:8080,2001:DB8::2");

    (void) state;
    assert_true(match(al, "203.0.113.7", 443));
    assert_false(match(al, "203.0.113.8", 443));
    assert_false(match(al, "203.0.113.7", 8080));
    assert_true(match(al, "2001:db8::1", 443));
    assert_true(match(al, "[2001:DB8:0::1]", 80));
    assert_true(match(al, "2001:db8::2", 80));
    assert_true(match(al, "::1", 8080));
    assert_false(match(al, "::1", 443));
    /* IP literals only match literally: no mapped or name equivalence. */
    assert_false(match(al, "::ffff:203.0.113.7", 443));
    assert_string_equal(egress_allow_pattern(al, 0), "203.0.113.7");
    assert_string_equal(egress_allow_pattern(al, 1), "[2001:db8::1]");
    assert_string_equal(egress_allow_pattern(al, 2), "[::1]:8080");
    assert_string_equal(egress_allow_pattern(al, 3), "[2001:db8::2]");
    egress_allow_free(al);

    /* Wildcards never match IPs. */
    al = list_of("*.example.com");
    assert_false(match(al, "203.0.113.7", 443));
    egress_allow_free(al);
}

static void bad_pattern(const char *pat, const char *msg)
{
    egress_allow_t *al = egress_allow_new();
    egress_error_t err;

    memset(&err, 0, sizeof(err));
    if (egress_allow_add(al, pat, strlen(pat), &err) != -1) {
        print_error("pattern \"%s\" accepted\n", pat);
        fail();
    }
    assert_int_equal(err.code, EGRESS_ERR_PATTERN);
    if (strcmp(err.message, msg) != 0) {
        print_error("pattern \"%s\": message\n  \"%s\", want\n  \"%s\"\n", pat, err.message,
                    msg);
        fail();
    }
    assert_int_equal(egress_allow_count(al), 0);
    egress_allow_free(al);
}

static void test_malformed(void **state)
{
    char long_pat[400];

    (void) state;
    bad_pattern("a..b", "invalid allowlist pattern \"a..b\": empty label");
    bad_pattern("", "invalid allowlist pattern \"\": empty pattern");
    bad_pattern("exa mple.com",
                "invalid allowlist pattern \"exa mple.com\": contains white space");
    bad_pattern(" example.com",
                "invalid allowlist pattern \" example.com\": contains white space");
    bad_pattern("a.com\t", "invalid allowlist pattern \"a.com?\": contains white space");
    bad_pattern("*",
                "invalid allowlist pattern \"*\": '*' is only allowed as a leading \"*.\"");
    bad_pattern("*example.com",
                "invalid allowlist pattern \"*example.com\": '*' is only allowed as a leading "
                "\"*.\"");
    bad_pattern(
        "a.*.com",
        "invalid allowlist pattern \"a.*.com\": '*' is only allowed as a leading \"*.\"");
    bad_pattern(
        "*.*.com",
        "invalid allowlist pattern \"*.*.com\": '*' is only allowed as a leading \"*.\"");
    bad_pattern("example.*",
                "invalid allowlist pattern \"example.*\": '*' is only allowed as a leading "
                "\"*.\"");
    bad_pattern("*.", "invalid allowlist pattern \"*.\": no name after \"*.\"");
    bad_pattern("*..com", "invalid allowlist pattern \"*..com\": empty label");
    bad_pattern(".com", "invalid allowlist pattern \".com\": empty label");
    bad_pattern("-a.com", "invalid allowlist pattern \"-a.com\": label starts or ends with a "
                          "hyphen");
    bad_pattern("a_b!.com", "invalid allowlist pattern \"a_b!.com\": invalid character");
    bad_pattern("caf\xc3\xa9.com",
                "invalid allowlist pattern \"caf??.com\": invalid character");
    bad_pattern("a.com:0", "invalid allowlist pattern \"a.com:0\": port must be an integer "
                           "1..65535");
    bad_pattern("a.com:",
                "invalid allowlist pattern \"a.com:\": port must be an integer 1..65535");
    bad_pattern("a.com:65536",
                "invalid allowlist pattern \"a.com:65536\": port must be an integer 1..65535");
    bad_pattern("a.com:http",
                "invalid allowlist pattern \"a.com:http\": port must be an integer 1..65535");
    bad_pattern(":443", "invalid allowlist pattern \":443\": empty host");
    bad_pattern("*.203.0.113.7",
                "invalid allowlist pattern \"*.203.0.113.7\": a wildcard cannot apply to an IP "
                "address");
    bad_pattern("*.[::1]",
                "invalid allowlist pattern \"*.[::1]\": a wildcard cannot apply to an "
                "IP address");
    bad_pattern("[::1", "invalid allowlist pattern \"[::1\": unterminated '['");
    bad_pattern("[::1]x", "invalid allowlist pattern \"[::1]x\": junk after ']'");
    bad_pattern("[nothex]", "invalid allowlist pattern \"[nothex]\": not a valid IPv6 address");
    bad_pattern("fe80::1%eth0",
                "invalid allowlist pattern \"fe80::1%eth0\": IPv6 zone ids are not allowed");
    bad_pattern("1.2.3", "invalid allowlist pattern \"1.2.3\": not a valid IPv4 address");
    bad_pattern("a.com:80:90", "invalid allowlist pattern \"a.com:80:90\": not a valid IPv6 "
                               "address");
    bad_pattern("a\"b", "invalid allowlist pattern \"a?b\": invalid character");

    memset(long_pat, 'a', 64);
    long_pat[64] = '\0';
    strcat(long_pat, ".com");
    bad_pattern(long_pat,
                "invalid allowlist pattern "
                "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": "
                "label longer than 63 characters");
    memset(long_pat, 'a', sizeof(long_pat) - 1);
    long_pat[sizeof(long_pat) - 1] = '\0';
    bad_pattern(long_pat,
                "invalid allowlist pattern "
                "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": "
                "too long");
    {
        /* 127 labels "a." + "bb" = 256 characters > 253. */
        size_t i;
        for (i = 0; i < 254; i += 2) {
            long_pat[i] = 'a';
            long_pat[i + 1] = '.';
        }
        long_pat[254] = 'b';
        long_pat[255] = 'b';
        long_pat[256] = '\0';
        bad_pattern(long_pat,
                    "invalid allowlist pattern "
                    "\"a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a....\": "
                    "name longer than 253 characters");
    }
}

static void test_list(void **state)
{
    egress_allow_t *al = list_of("a.com");
    egress_error_t err;

    (void) state;
    /* All or nothing: b.com must not stay behind when the list fails. */
    assert_int_equal(egress_allow_add_list(al, "b.com,,c.com", &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_PATTERN);
    assert_non_null(strstr(err.message, "empty item"));
    assert_int_equal(egress_allow_count(al), 1);
    assert_int_equal(egress_allow_add_list(al, "b.com,c..com", &err), -1);
    assert_string_equal(err.message, "invalid allowlist pattern \"c..com\": empty label");
    assert_int_equal(egress_allow_count(al), 1);
    assert_int_equal(egress_allow_add_list(al, "", &err), -1);
    assert_int_equal(egress_allow_add_list(al, ",", &err), -1);
    assert_int_equal(egress_allow_add_list(al, "b.com,", &err), -1);
    assert_int_equal(egress_allow_count(al), 1);
    assert_false(match(al, "b.com", 443));

    assert_int_equal(egress_allow_add_list(al, " b.com , *.C.com. ,A.com,c.com:8443", &err), 0);
    assert_int_equal(egress_allow_count(al), 4);
    assert_string_equal(egress_allow_pattern(al, 0), "a.com");
    assert_string_equal(egress_allow_pattern(al, 1), "b.com");
    assert_string_equal(egress_allow_pattern(al, 2), "*.c.com");
    assert_string_equal(egress_allow_pattern(al, 3), "c.com:8443");
    assert_null(egress_allow_pattern(al, 4));
    /* Dedup against normalized text. */
    assert_int_equal(egress_allow_add(al, "B.COM.", 6, &err), 0);
    assert_int_equal(egress_allow_count(al), 4);
    egress_allow_free(al);
}

static void test_capacity(void **state)
{
    egress_allow_t *al = egress_allow_new();
    egress_error_t err;
    char pat[32];
    int i, n;

    (void) state;
    for (i = 0; i < EGRESS_ALLOW_MAX_PATTERNS; i++) {
        n = snprintf(pat, sizeof(pat), "h%d.example", i);
        assert_int_equal(egress_allow_add(al, pat, (size_t) n, &err), 0);
    }
    assert_int_equal(egress_allow_count(al), EGRESS_ALLOW_MAX_PATTERNS);
    assert_int_equal(egress_allow_add(al, "one.more", 8, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_PATTERN);
    assert_non_null(strstr(err.message, "too many"));
    /* A duplicate is not "more". */
    assert_int_equal(egress_allow_add(al, "h5.example", 10, &err), 0);
    assert_true(match(al, "h1023.example", 443));
    assert_false(match(al, "h1024.example", 443));
    egress_allow_free(al);
}

static void test_profiles(void **state)
{
    static const char *const discord[] = {"discord.com",    "*.discord.com",
                                          "discordcdn.com", "*.discordcdn.com",
                                          "hcaptcha.com",   "*.hcaptcha.com"};
    static const char *const slack[] = {"slack.com", "*.slack.com", "slack-edge.com",
                                        "*.slack-edge.com"};
    const char *const *p;
    egress_allow_t *al = egress_allow_new();
    egress_error_t err;
    size_t i;

    (void) state;
    p = egress_profile_names();
    assert_string_equal(p[0], "discord");
    assert_string_equal(p[1], "slack");
    assert_null(p[2]);
    p = egress_profile_patterns("discord");
    for (i = 0; i < 6; i++) {
        assert_string_equal(p[i], discord[i]);
    }
    assert_null(p[6]);
    p = egress_profile_patterns("slack");
    for (i = 0; i < 4; i++) {
        assert_string_equal(p[i], slack[i]);
    }
    assert_null(p[4]);
    assert_null(egress_profile_patterns("Discord"));
    assert_null(egress_profile_patterns(NULL));

    assert_int_equal(egress_allow_add_profile(al, "discord", &err), 0);
    assert_int_equal(egress_allow_add_profile(al, "slack", &err), 0);
    assert_int_equal(egress_allow_add_profile(al, "discord", &err), 0);
    assert_int_equal(egress_allow_count(al), 10);
    assert_true(match(al, "gateway.discord.com", 443));
    assert_true(match(al, "cdn.discordcdn.com", 443));
    assert_true(match(al, "hcaptcha.com", 443));
    assert_true(match(al, "files.slack-edge.com", 443));
    assert_false(match(al, "discord.gg", 443));
    assert_false(match(al, "notslack.com", 443));
    assert_int_equal(egress_allow_add_profile(al, "teams", &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_PROFILE);
    assert_string_equal(err.message, "unknown profile \"teams\" (known: discord, slack)");
    assert_int_equal(egress_allow_add_profile(al, NULL, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_PROFILE);
    egress_allow_free(al);
}

static void test_empty(void **state)
{
    egress_allow_t *al = egress_allow_new();

    (void) state;
    assert_int_equal(egress_allow_count(al), 0);
    assert_false(match(al, "example.com", 443));
    assert_null(egress_allow_pattern(al, 0));
    egress_allow_free(al);
    egress_allow_free(NULL);
    assert_false(egress_allow_match(NULL, "a.com", 5, 443));
    assert_int_equal(egress_allow_count(NULL), 0);
}

static void test_match_host(void **state)
{
    egress_allow_t *al = list_of("a.example:8080,*.b.example,[::1]:9");

    (void) state;
    /* any port: tells "port not allowed" from "host not allowed" */
    assert_true(egress_allow_match_host(al, "a.example", 9));
    assert_true(egress_allow_match_host(al, "x.b.example", 11));
    assert_true(egress_allow_match_host(al, "::1", 3));
    assert_false(egress_allow_match_host(al, "c.example", 9));
    assert_false(egress_allow_match_host(al, "a.example.", 0));
    assert_false(match(al, "a.example", 443));
    assert_true(match(al, "a.example", 8080));
    assert_false(match(al, "a.example", 0));
    assert_false(egress_allow_match_host(NULL, "a.example", 9));
    egress_allow_free(al);
}

static void test_lines(void **state)
{
    static const char ok[] = "# the lease's CDN\n"
                             "example.com\n"
                             "  *.cdn.example.org:443   # images\r\n"
                             "\n"
                             "\t[::1]:8080";
    static const char bad[] = "a.example\n# fine so far\nb..example\nc.example\n";
    egress_allow_t *al = list_of("keep.example");
    egress_error_t err;

    (void) state;
    assert_int_equal(egress_allow_add_lines(al, ok, sizeof(ok) - 1, "allow.txt", &err), 0);
    assert_int_equal(egress_allow_count(al), 4);
    assert_string_equal(egress_allow_pattern(al, 2), "*.cdn.example.org:443");
    assert_true(match(al, "img.cdn.example.org", 443));
    assert_true(match(al, "::1", 8080));
    /* a bad line refuses the whole file and names the line */
    assert_int_equal(egress_allow_add_lines(al, bad, sizeof(bad) - 1, "allow.txt", &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_PATTERN);
    assert_non_null(strstr(err.message, "allow.txt line 3: "));
    assert_int_equal(egress_allow_count(al), 4);
    assert_false(match(al, "a.example", 443));
    /* a NUL byte is refused, not cut short */
    assert_int_equal(egress_allow_add_lines(al, "x.example\0y\n", 12, "f", &err), -1);
    assert_non_null(strstr(err.message, "f line 1: "));
    /* *.com is refused in a file as on the command line */
    assert_int_equal(egress_allow_add_lines(al, "\n\n*.com\n", 8, "f", &err), -1);
    assert_non_null(strstr(err.message, "f line 3: "));
    assert_int_equal(egress_allow_add_lines(al, "", 0, "f", &err), 0);
    egress_allow_free(al);
}

static void refused(egress_allow_t *al, const char *pattern, const char *want)
{
    egress_error_t err;

    memset(&err, 0, sizeof(err));
    if (egress_allow_add(al, pattern, strlen(pattern), &err) != -1) {
        print_error("\"%s\" accepted\n", pattern);
        fail();
    }
    assert_int_equal(err.code, EGRESS_ERR_PATTERN);
    assert_string_equal(err.message, want);
}

static void test_public_suffix(void **state)
{
    static const char text[] = "com\nuk\nco.uk\ngithub.io\ns3.amazonaws.com\n";
    egress_psl_t *psl = egress_psl_parse(text, strlen(text), "test", NULL);
    egress_allow_t *al = egress_allow_new();
    egress_error_t err;
    const char *const *names;
    size_t before;

    (void) state;
    assert_non_null(psl);
    egress_allow_set_psl(al, psl);
    refused(al, "*.com",
            "invalid allowlist pattern \"*.com\": the wildcard covers the whole public suffix "
            "\"com\"");
    refused(al, "*.CO.uk.:443",
            "invalid allowlist pattern \"*.CO.uk.:443\": the wildcard covers the whole public "
            "suffix \"co.uk\"");
    refused(al, "*.github.io",
            "invalid allowlist pattern \"*.github.io\": the wildcard covers the whole public "
            "suffix \"github.io\"");
    refused(al, "*.amazonaws.com",
            "invalid allowlist pattern \"*.amazonaws.com\": the wildcard covers the public "
            "suffix \"s3.amazonaws.com\"");
    refused(al, "*.zz",
            "invalid allowlist pattern \"*.zz\": the wildcard covers the whole "
            "public suffix \"zz\"");
    /* one level down is a registrable name; exact names are never refused */
    assert_int_equal(egress_allow_add_list(al,
                                           "*.example.com,*.bbc.co.uk,com,co.uk,"
                                           "*.bucket.s3.amazonaws.com,*.localhost,*.test",
                                           &err),
                     0);
    assert_true(match(al, "www.bbc.co.uk", 443));
    assert_false(match(al, "www.example.co.uk", 443));
    /* all or nothing: one public suffix in a list adds none of it */
    before = egress_allow_count(al);
    assert_int_equal(egress_allow_add_list(al, "a.example.org,*.uk", &err), -1);
    assert_non_null(strstr(err.message, "\"*.uk\""));
    assert_int_equal(egress_allow_count(al), before);

    /* the built-in rule when there is no list */
    egress_allow_set_psl(al, NULL);
    refused(al, "*.com",
            "invalid allowlist pattern \"*.com\": \"com\" looks like a public "
            "suffix (built-in rule; install publicsuffix for the exact list)");
    refused(al, "*.co.uk",
            "invalid allowlist pattern \"*.co.uk\": \"co.uk\" looks like a "
            "public suffix (built-in rule; install publicsuffix for the exact "
            "list)");
    assert_int_equal(egress_allow_add_list(al, "*.github.io,*.gouv.fr,*.localhost", &err), 0);

    /* the built-in profiles compile under the list, the built-in rule and the system list */
    for (names = egress_profile_names(); *names != NULL; names++) {
        egress_allow_t *p1 = egress_allow_new(), *p2 = egress_allow_new(),
                       *p3 = egress_allow_new();
        egress_allow_set_psl(p1, psl);
        egress_allow_set_psl(p2, NULL);
        assert_int_equal(egress_allow_add_profile(p1, *names, &err), 0);
        assert_int_equal(egress_allow_add_profile(p2, *names, &err), 0);
        assert_int_equal(egress_allow_add_profile(p3, *names, &err), 0);
        egress_allow_free(p1);
        egress_allow_free(p2);
        egress_allow_free(p3);
    }
    egress_allow_free(al);
    egress_psl_free(psl);
}

/* Items of a comma list, each "[text]" joined by '|', as egress_list_next yields them. */
static void split(const char *list, char *out, size_t cap)
{
    const char *cur = list, *item;
    size_t len, n = 0;

    out[0] = '\0';
    while (egress_list_next(&cur, &item, &len)) {
        n += (size_t) snprintf(out + n, cap - n, "%s[%.*s]", n ? "|" : "", (int) len, item);
    }
    assert_null(cur);
    assert_int_equal(egress_list_next(&cur, &item, &len), 0);
}

static void test_list_next(void **state)
{
    char buf[256];

    (void) state;
    split("a,b", buf, sizeof(buf));
    assert_string_equal(buf, "[a]|[b]");
    split(" a ,\tb\t, c d ", buf, sizeof(buf));
    assert_string_equal(buf, "[a]|[b]|[c d]");
    split("", buf, sizeof(buf));
    assert_string_equal(buf, "[]");
    split("a,,b,", buf, sizeof(buf));
    assert_string_equal(buf, "[a]|[]|[b]|[]");
    split(" , ", buf, sizeof(buf));
    assert_string_equal(buf, "[]|[]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_and_wildcard),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_ip_literals),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_profiles),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_public_suffix),
        cmocka_unit_test(test_list_next),
        cmocka_unit_test(test_match_host),
        cmocka_unit_test(test_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
