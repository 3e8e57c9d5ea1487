/*
 * test_portal.c: the portal's pure pieces: form and cookie parsing
 * (portal_form.c) and HTML escaping and buffer limits (portal_html.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "portal_form.h"
#include "portal_html.h"

static int form(const char *body, const char *name, char *out, size_t cap)
{
    return portal_form_get(body, strlen(body), name, out, cap);
}

static void test_form_fields(void **state)
{
    char out[64];

    (void) state;
    assert_int_equal(form("token=egk_abc&csrf=12", "token", out, sizeof(out)), 7);
    assert_string_equal(out, "egk_abc");
    assert_int_equal(form("token=egk_abc&csrf=12", "csrf", out, sizeof(out)), 2);
    assert_string_equal(out, "12");
    /* decoding: '+' is a space, %XX a byte, either case */
    assert_int_equal(form("a=x+y%2B%2bz%3C", "a", out, sizeof(out)), 7);
    assert_string_equal(out, "x y++z<");
    /* the first of two wins; a bare name is an empty value */
    assert_int_equal(form("a=1&a=2", "a", out, sizeof(out)), 1);
    assert_string_equal(out, "1");
    assert_int_equal(form("b&a", "b", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    /* names match whole, not as prefixes */
    assert_int_equal(form("tokens=1&xtoken=2", "token", out, sizeof(out)), PORTAL_FORM_ABSENT);
    assert_int_equal(form("", "token", out, sizeof(out)), PORTAL_FORM_ABSENT);
}

static void test_form_malformed(void **state)
{
    char out[4];

    (void) state;
    assert_int_equal(form("a=%zz", "a", out, sizeof(out)), PORTAL_FORM_MALFORMED);
    assert_int_equal(form("a=%4", "a", out, sizeof(out)), PORTAL_FORM_MALFORMED);
    assert_int_equal(form("a=%", "a", out, sizeof(out)), PORTAL_FORM_MALFORMED);
    assert_int_equal(form("a=%00", "a", out, sizeof(out)), PORTAL_FORM_MALFORMED);
    /* three bytes fit a 4-byte buffer, four do not */
    assert_int_equal(form("a=abc", "a", out, sizeof(out)), 3);
    assert_int_equal(form("a=abcd", "a", out, sizeof(out)), PORTAL_FORM_MALFORMED);
    /* the body is not NUL-terminated: parsing stops at len */
    assert_int_equal(portal_form_get("a=12345", 4, "a", out, sizeof(out)), 2);
    assert_string_equal(out, "12");
}

static void test_cookies(void **state)
{
    char out[32];
    const char *h = "theme=dark; egress_portal=egp_abc ;x=\"q\"";

    (void) state;
    assert_int_equal(portal_cookie_get(h, strlen(h), "egress_portal", out, sizeof(out)), 7);
    assert_string_equal(out, "egp_abc");
    assert_int_equal(portal_cookie_get(h, strlen(h), "x", out, sizeof(out)), 1);
    assert_string_equal(out, "q");
    assert_int_equal(portal_cookie_get(h, strlen(h), "egress", out, sizeof(out)),
                     PORTAL_FORM_ABSENT);
    assert_int_equal(portal_cookie_get("a=123456", 8, "a", out, 4), PORTAL_FORM_MALFORMED);
    assert_int_equal(portal_cookie_get("", 0, "a", out, sizeof(out)), PORTAL_FORM_ABSENT);
}

static void test_html_escape(void **state)
{
    hbuf_t b;

    (void) state;
    hbuf_init(&b, 1024);
    hbuf_raw(&b, "<p title=\"");
    hbuf_text(&b, "\"><script>alert('x')</script>&");
    hbuf_raw(&b, "\">");
    hbuf_printf(&b, "%d", 42);
    assert_false(b.failed);
    assert_string_equal(b.data, "<p title=\"&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;"
                                "/script&gt;&amp;\">42");
    hbuf_free(&b);
}

static void test_html_limit(void **state)
{
    hbuf_t b;
    int i;

    (void) state;
    hbuf_init(&b, 10);
    hbuf_raw(&b, "0123456789");
    assert_false(b.failed);
    assert_int_equal(b.len, 10);
    hbuf_raw(&b, "x"); /* over the limit: remembered, later writes ignored */
    assert_true(b.failed);
    hbuf_text(&b, "y");
    assert_int_equal(b.len, 10);
    hbuf_free(&b);

    hbuf_init(&b, 1 << 20);
    for (i = 0; i < 10000; i++) {
        hbuf_text(&b, "<>");
    }
    assert_false(b.failed);
    assert_int_equal(b.len, 80000);
    hbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_fields), cmocka_unit_test(test_form_malformed),
        cmocka_unit_test(test_cookies),     cmocka_unit_test(test_html_escape),
        cmocka_unit_test(test_html_limit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
