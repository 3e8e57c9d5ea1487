/*
 * test_psl.c: the public suffix list reader and the wildcard rule
 * (egress_psl.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "egress_psl.h"

/* A small list in the real format: comments, blanks, trailing text, Unicode. */
static const char list_text[] = "// ===BEGIN ICANN DOMAINS===\n"
                                "com\n"
                                "uk\n"
                                "co.uk\n"
                                "\n"
                                "// ck : https://example.invalid\n"
                                "*.ck\n"
                                "!www.ck\n"
                                "cn\n"
                                "\xe5\x85\xac\xe5\x8f\xb8.cn\n" /* 公司.cn */
                                "a\xc3\xa9roport.ci\n"          /* aéroport.ci */
                                "\xd1\x80\xd1\x84\n"            /* рф */
                                "B\xc3\xbc\x63her.Example\r\n"  /* Bücher.Example */
                                "io\n"
                                "github.io and trailing words\n"
                                "s3.amazonaws.com\n"
                                "*.compute.amazonaws.com\n"
                                "bad_rule!.com\n"
                                "\xc3\x28.com\n" /* malformed UTF-8: skipped */
                                "a*b.com\n";

static egress_psl_t *small_list(void)
{
    egress_error_t err;
    egress_psl_t *psl = egress_psl_parse(list_text, sizeof(list_text) - 1, "test", &err);

    if (psl == NULL) {
        print_error("parse: %s\n", err.message);
        fail();
    }
    return psl;
}

static void expect(const egress_psl_t *psl, const char *name, int want, const char *want_rule)
{
    char rule[EGRESS_PSL_RULE_BUF] = "";
    int got = egress_psl_check(psl, name, rule);

    if (got != want) {
        print_error("%s (%s): got %d want %d\n", name, egress_psl_source(psl), got, want);
        fail();
    }
    if (want_rule != NULL) {
        assert_string_equal(rule, want_rule);
    }
}

static void test_list_rules(void **state)
{
    egress_psl_t *psl = small_list();

    (void) state;
    assert_string_equal(egress_psl_source(psl), "test");
    /* com uk co.uk *.ck !www.ck cn, three Unicode, bücher.example io github.io s3 compute */
    assert_int_equal(egress_psl_count(psl), 14);
    expect(psl, "com", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "example.com", EGRESS_PSL_OK, NULL);
    expect(psl, "uk", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "co.uk", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "bbc.co.uk", EGRESS_PSL_OK, NULL);
    expect(psl, "ac.uk", EGRESS_PSL_OK, NULL); /* not in this list */
    /* wildcard and exception rules */
    expect(psl, "foo.ck", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "www.ck", EGRESS_PSL_OK, NULL);
    expect(psl, "a.foo.ck", EGRESS_PSL_OK, NULL);
    expect(psl, "ck", EGRESS_PSL_IS_SUFFIX, NULL);
    /* Unicode rules in punycode form */
    expect(psl, "xn--55qx5d.cn", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "xn--aroport-bya.ci", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "xn--p1ai", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "xn--bcher-kva.example", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "shop.xn--55qx5d.cn", EGRESS_PSL_OK, NULL);
    /* a rule below the name */
    expect(psl, "github.io", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "amazonaws.com", EGRESS_PSL_BELOW, "s3.amazonaws.com");
    expect(psl, "compute.amazonaws.com", EGRESS_PSL_BELOW, "*.compute.amazonaws.com");
    expect(psl, "eu-1.compute.amazonaws.com", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "vm.eu-1.compute.amazonaws.com", EGRESS_PSL_OK, NULL);
    expect(psl, "bucket.s3.amazonaws.com", EGRESS_PSL_OK, NULL);
    /* the implicit "*" rule, and the special-use names */
    expect(psl, "zz", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "localhost", EGRESS_PSL_OK, NULL);
    expect(psl, "test", EGRESS_PSL_OK, NULL);
    expect(psl, "example", EGRESS_PSL_OK, NULL);
    expect(psl, "invalid", EGRESS_PSL_OK, NULL);
    expect(psl, "local", EGRESS_PSL_IS_SUFFIX, NULL);
    /* skipped lines left nothing behind */
    expect(psl, "a*b.com", EGRESS_PSL_OK, NULL);
    egress_psl_free(psl);
}

static void test_builtin_rule(void **state)
{
    (void) state;
    assert_string_equal(egress_psl_source(NULL), "built-in rule");
    expect(NULL, "com", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(NULL, "xn--p1ai", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(NULL, "co.uk", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(NULL, "com.au", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(NULL, "ac.jp", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(NULL, "a.de", EGRESS_PSL_IS_SUFFIX, NULL);
    /* just outside: a four-character first label, a longer or non-letter TLD, three labels */
    expect(NULL, "gouv.fr", EGRESS_PSL_OK, NULL);
    expect(NULL, "co.com", EGRESS_PSL_OK, NULL);
    expect(NULL, "co.u1", EGRESS_PSL_OK, NULL);
    expect(NULL, "bbc.co.uk", EGRESS_PSL_OK, NULL);
    expect(NULL, "example.com", EGRESS_PSL_OK, NULL);
    expect(NULL, "localhost", EGRESS_PSL_OK, NULL);
    expect(NULL, "test", EGRESS_PSL_OK, NULL);
}

static void test_bad_lists(void **state)
{
    egress_error_t err;
    char path[] = "/tmp/egress-psl-XXXXXX";
    int fd;

    (void) state;
    assert_null(egress_psl_parse("", 0, NULL, &err));
    assert_string_equal(err.message, "public suffix list has no rules");
    {
        static const char junk[] = "// only\n\n  \n*\n!\n*.\n..\n";
        assert_null(egress_psl_parse(junk, strlen(junk), NULL, &err));
    }
    assert_null(egress_psl_load("/nonexistent/psl.dat", &err));
    assert_non_null(strstr(err.message, "cannot read /nonexistent/psl.dat"));

    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "net\n", 4), 4);
    close(fd);
    {
        egress_psl_t *psl = egress_psl_load(path, &err);
        assert_non_null(psl);
        assert_string_equal(egress_psl_source(psl), path);
        expect(psl, "net", EGRESS_PSL_IS_SUFFIX, NULL);
        egress_psl_free(psl);
    }
    unlink(path);
    egress_psl_free(NULL);
}

/* The list Debian ships, when installed: the cases the allowlist cares about. */
static void test_system_list(void **state)
{
    const egress_psl_t *psl;

    (void) state;
    if (access(EGRESS_PSL_PATH, R_OK) != 0 || getenv("EGRESS_PUBLIC_SUFFIX_LIST") != NULL) {
        skip();
    }
    psl = egress_psl_system();
    assert_non_null(psl);
    assert_ptr_equal(psl, egress_psl_system()); /* loaded once */
    assert_true(egress_psl_count(psl) > 5000);
    expect(psl, "com", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "co.uk", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "github.io", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "xn--55qx5d.cn", EGRESS_PSL_IS_SUFFIX, NULL);
    expect(psl, "amazonaws.com", EGRESS_PSL_BELOW, NULL);
    expect(psl, "discord.com", EGRESS_PSL_OK, NULL);
    expect(psl, "slack-edge.com", EGRESS_PSL_OK, NULL);
    expect(psl, "bbc.co.uk", EGRESS_PSL_OK, NULL);
    expect(psl, "www.ck", EGRESS_PSL_OK, NULL);
    expect(psl, "localhost", EGRESS_PSL_OK, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_rules),
        cmocka_unit_test(test_builtin_rule),
        cmocka_unit_test(test_bad_lists),
        cmocka_unit_test(test_system_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
