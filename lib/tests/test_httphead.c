/*
 * test_httphead.c: the request-head parser (egress_httphead.c): complete,
 * incomplete and malformed heads, field lookup.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "egress_httphead.h"

static int parse(egress_http_head_t *h, const char *s)
{
    return egress_http_head_parse(h, s, strlen(s));
}

static void test_upgrade_head(void **state)
{
    static const char req[] = "GET /v1/leases/L/egress/host HTTP/1.1\r\n"
                              "Host: x\r\nUpgrade:  websocket \r\nX-Egress-Features: a\r\n"
                              "x-egress-features: b\r\n\r\nrest";
    egress_http_head_t h;
    const egress_http_field_t *f;
    int n;

    (void) state;
    assert_int_equal(parse(&h, req), 1);
    assert_int_equal(h.head_len, strlen(req) - 4);
    assert_int_equal(h.method_len, 3);
    assert_memory_equal(h.target, "/v1/leases/L/egress/host", h.target_len);
    assert_int_equal(h.minor, 1);
    f = egress_http_head_get(&h, "upgrade", &n);
    assert_non_null(f);
    assert_int_equal(n, 1);
    assert_int_equal(f->value_len, 9); /* blanks trimmed */
    assert_memory_equal(f->value, "websocket", 9);
    f = egress_http_head_get(&h, "X-EGRESS-FEATURES", &n);
    assert_int_equal(n, 2);
    assert_memory_equal(f->value, "a", 1);
    assert_null(egress_http_head_get(&h, "cookie", &n));
    assert_int_equal(n, 0);
    /* bare LF line ends */
    assert_int_equal(parse(&h, "GET / HTTP/1.0\nA: b\n\n"), 1);
    assert_int_equal(h.minor, 0);
}

static void test_incomplete(void **state)
{
    egress_http_head_t h;

    (void) state;
    assert_int_equal(parse(&h, ""), 0);
    assert_int_equal(parse(&h, "GET / HTTP/1.1\r\nHost: x\r\n"), 0);
    assert_int_equal(parse(&h, "GET / HTTP/1.1\r\nHost: x\r\n\r"), 0);
    assert_int_equal(parse(&h, "GET / HT"), 0);
}

static void test_malformed(void **state)
{
    static const char *bad[] = {
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
        "GET / HTTP/1.1\r\n: b\r\n\r\n",
    };
    egress_http_head_t h;
    char many[64 * 8 + 64];
    size_t i, n;

    (void) state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&h, bad[i]), -1);
    }
    n = (size_t) snprintf(many, sizeof(many), "GET / HTTP/1.1\r\n");
    for (i = 0; i <= EGRESS_HTTP_HEAD_FIELDS; i++) {
        n += (size_t) snprintf(many + n, sizeof(many) - n, "A: %zu\r\n", i % 10);
    }
    snprintf(many + n, sizeof(many) - n, "\r\n");
    assert_int_equal(parse(&h, many), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upgrade_head),
        cmocka_unit_test(test_incomplete),
        cmocka_unit_test(test_malformed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
