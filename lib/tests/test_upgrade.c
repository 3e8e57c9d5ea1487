/*
 * test_upgrade.c: the WebSocket upgrade request and the check of the
 * answer's head (egress_upgrade.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "egress_upgrade.h"

static const char rfc_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/* RFC 6455 section 1.3's example key and accept value. */
static void test_accept_vector(void **state)
{
    char accept[EGRESS_UPGRADE_ACCEPT_SZ];

    (void) state;
    assert_int_equal(egress_upgrade_accept_for("dGhlIHNhbXBsZSBub25jZQ==", accept), 0);
    assert_string_equal(accept, rfc_accept);
}

static void test_request(void **state)
{
    egress_upgrade_req_t rq = {.path = "/p/v1/leases/L/egress/host",
                               .host = "coord.example",
                               .port = 8443,
                               .tls = 1,
                               .protocols = "egress.v2, egress.v1",
                               .user_agent = "egress/test",
                               .cred_name = "Authorization",
                               .cred_value = "Bearer egt_x"};
    char out[1024], accept[EGRESS_UPGRADE_ACCEPT_SZ], want[EGRESS_UPGRADE_ACCEPT_SZ], key[32];
    const char *k;
    egress_error_t err;
    int n;

    (void) state;
    n = egress_upgrade_request(&rq, out, sizeof(out), accept, &err);
    assert_true(n > 0);
    assert_int_equal((size_t) n, strlen(out));
    assert_non_null(strstr(out, "GET /p/v1/leases/L/egress/host HTTP/1.1\r\n"));
    assert_non_null(strstr(out, "\r\nHost: coord.example:8443\r\n"));
    assert_non_null(strstr(out, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(out, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Protocol: egress.v2, egress.v1\r\n"));
    assert_non_null(strstr(out, "\r\nUser-Agent: egress/test\r\n"));
    assert_non_null(strstr(out, "\r\nAuthorization: Bearer egt_x\r\n\r\n"));
    /* the accept value belongs to the key that was sent */
    k = strstr(out, "\r\nSec-WebSocket-Key: ");
    assert_non_null(k);
    k += 21;
    assert_int_equal(strcspn(k, "\r"), 24);
    memcpy(key, k, 24);
    key[24] = '\0';
    assert_int_equal(egress_upgrade_accept_for(key, want), 0);
    assert_string_equal(accept, want);

    /* default ports stay out of Host; IPv6 literals get brackets */
    rq.port = 443;
    assert_true(egress_upgrade_request(&rq, out, sizeof(out), accept, &err) > 0);
    assert_non_null(strstr(out, "\r\nHost: coord.example\r\n"));
    rq.host = "::1";
    rq.tls = 0;
    rq.port = 80;
    rq.cred_name = NULL;
    rq.user_agent = NULL;
    assert_true(egress_upgrade_request(&rq, out, sizeof(out), accept, &err) > 0);
    assert_non_null(strstr(out, "\r\nHost: [::1]\r\n"));
    assert_null(strstr(out, "User-Agent"));
    assert_null(strstr(out, "Authorization"));
    rq.port = 9000;
    assert_true(egress_upgrade_request(&rq, out, sizeof(out), accept, &err) > 0);
    assert_non_null(strstr(out, "\r\nHost: [::1]:9000\r\n"));
}

static void test_request_no_space(void **state)
{
    egress_upgrade_req_t rq = {.path = "/x",
                               .host = "h",
                               .port = 80,
                               .protocols = "egress.v2",
                               .cred_name = "X-Egress-Resume",
                               .cred_value = "egr_secret"};
    char out[200], accept[EGRESS_UPGRADE_ACCEPT_SZ];
    egress_error_t err;

    (void) state;
    memset(&err, 0, sizeof(err));
    assert_int_equal(egress_upgrade_request(&rq, out, sizeof(out), accept, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_NO_SPACE);
    for (size_t i = 0; i < sizeof(out); i++) /* no piece of the secret left behind */
        assert_int_equal(out[i], 0);
}

static int parse(const char *head, egress_upgrade_resp_t *r, egress_error_t *err)
{
    memset(err, 0, sizeof(*err));
    return egress_upgrade_parse(r, head, strlen(head), rfc_accept, err);
}

static void test_parse_ok(void **state)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "upgrade: WebSocket\r\n"
                               "Connection: keep-alive, Upgrade\r\n"
                               "Sec-WebSocket-Accept:   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  \r\n"
                               "Sec-WebSocket-Protocol: egress.v2\r\n"
                               "\r\n";
    char buf[256];
    egress_upgrade_resp_t r;
    egress_error_t err;

    (void) state;
    assert_int_equal(parse(head, &r, &err), 1);
    assert_int_equal(r.status, 101);
    assert_int_equal(r.head_len, strlen(head));
    assert_string_equal(r.subprotocol, "egress.v2");
    /* bytes after the head (the first frames) are not part of it */
    snprintf(buf, sizeof(buf), "%s\x82\x05hello", head);
    assert_int_equal(parse(buf, &r, &err), 1);
    assert_int_equal(r.head_len, strlen(head));
    /* every prefix is "not yet" */
    for (size_t i = 0; i < strlen(head); i++)
        assert_int_equal(egress_upgrade_parse(&r, head, i, rfc_accept, &err), 0);
    /* no subprotocol chosen */
    assert_int_equal(parse("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                           &r, &err),
                     1);
    assert_string_equal(r.subprotocol, "");
}

static void test_parse_refused(void **state)
{
    egress_upgrade_resp_t r;
    egress_error_t err;

    (void) state;
    assert_int_equal(
        parse("HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}", &r, &err), 1);
    assert_int_equal(r.status, 401);
    assert_int_equal(parse("HTTP/1.0 410 Gone\r\n\r\n", &r, &err), 1);
    assert_int_equal(r.status, 410);
    assert_int_equal(parse("HTTP/1.1 404\r\n\r\n", &r, &err), 1);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.content_length, -1);
    /* a refusal may name a subprotocol or an extension: it is still a refusal */
    assert_int_equal(
        parse("HTTP/1.1 403 Forbidden\r\nSec-WebSocket-Extensions: x\r\n\r\n", &r, &err), 1);
    assert_int_equal(r.status, 403);
}

/* how much of a refusal's body is there, and whether to wait for more */
static void test_refusal_body(void **state)
{
    static const char full[] =
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 10\r\n\r\n0123456789xx";
    egress_upgrade_resp_t r;
    egress_error_t err;
    size_t head, body = 99;

    (void) state;
    assert_int_equal(parse(full, &r, &err), 1);
    assert_int_equal(r.content_length, 10);
    head = r.head_len;
    /* part of the body: wait, unless the peer closed or the buffer is full */
    assert_int_equal(egress_upgrade_body(&r, head + 4, 4096, 0, &body), 0);
    assert_int_equal(egress_upgrade_body(&r, head + 4, 4096, 1, &body), 1);
    assert_int_equal(body, 4);
    assert_int_equal(egress_upgrade_body(&r, head + 4, head + 4, 0, &body), 1);
    assert_int_equal(body, 4);
    /* all of it, and what follows is not part of it */
    assert_int_equal(egress_upgrade_body(&r, strlen(full), 4096, 0, &body), 1);
    assert_int_equal(body, 10);
    /* no Content-Length: what is there */
    assert_int_equal(parse("HTTP/1.1 403 Forbidden\r\n\r\nab", &r, &err), 1);
    assert_int_equal(egress_upgrade_body(&r, r.head_len + 2, 4096, 0, &body), 1);
    assert_int_equal(body, 2);
    /* a Content-Length that is no number counts as none */
    assert_int_equal(parse("HTTP/1.1 403 Forbidden\r\nContent-Length: -5\r\n\r\n", &r, &err),
                     1);
    assert_int_equal(r.content_length, -1);
    assert_int_equal(
        parse("HTTP/1.1 403 Forbidden\r\nContent-Length: 99999999999\r\n\r\n", &r, &err), 1);
    assert_int_equal(r.content_length, -1);
    assert_int_equal(parse("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\nzz", &r, &err),
                     1);
    assert_int_equal(egress_upgrade_body(&r, r.head_len + 2, 4096, 0, &body), 1);
    assert_int_equal(body, 0);
}

static void test_refusal_text(void **state)
{
    static const char both[] = "{\"error\": \"forbidden\", \"message\": \"lease\\nnot yours\"}";
    char out[64];
    size_t n;

    (void) state;
    n = egress_upgrade_refusal_text(both, strlen(both), out, sizeof(out));
    assert_string_equal(out, "forbidden: lease not yours");
    assert_int_equal(n, strlen(out));
    assert_int_equal(egress_upgrade_refusal_text("{\"error\": \"gone\"}", 17, out, sizeof(out)),
                     4);
    assert_string_equal(out, "gone");
    assert_int_equal(egress_upgrade_refusal_text("{\"message\": \"m\"}", 16, out, sizeof(out)),
                     3);
    assert_string_equal(out, ": m");
    assert_int_equal(egress_upgrade_refusal_text("<html>", 6, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(egress_upgrade_refusal_text("{\"error\": 5}", 12, out, sizeof(out)), 0);
    /* cut to the buffer, still one terminated line */
    n = egress_upgrade_refusal_text(both, strlen(both), out, 10);
    assert_int_equal(n, 9);
    assert_string_equal(out, "forbidden");
    assert_int_equal(egress_upgrade_refusal_text(both, strlen(both), out, 0), 0);
}

static void bad(const char *head, egress_err_e code, const char *why)
{
    egress_upgrade_resp_t r;
    egress_error_t err;

    if (parse(head, &r, &err) != -1) {
        print_error("accepted: %s\n", head);
        fail();
    }
    assert_int_equal(err.code, code);
    if (!strstr(err.message, why)) {
        print_error("\"%s\" does not say \"%s\"\n", err.message, why);
        fail();
    }
}

static void test_parse_bad(void **state)
{
    char big[EGRESS_UPGRADE_HEAD_MAX + 64];

    (void) state;
    bad("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        EGRESS_ERR_VALUE, "Sec-WebSocket-Accept");
    bad("HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        EGRESS_ERR_VALUE, "Upgrade/Connection");
    bad("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: close\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        EGRESS_ERR_VALUE, "Upgrade/Connection");
    bad("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        EGRESS_ERR_VALUE, "extension");
    bad("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Protocol: "
        "egress.v2egress.v2egress.v2egress.v2egress.v2egress.v2egress.v2egress.v2\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        EGRESS_ERR_VALUE, "subprotocol");
    bad("SSH-2.0-OpenSSH\r\n\r\n", EGRESS_ERR_VALUE, "not HTTP");
    bad("HTTP/1.1 1010 OK\r\n\r\n", EGRESS_ERR_VALUE, "not HTTP");
    bad("HTTP/1.1 099 OK\r\n\r\n", EGRESS_ERR_VALUE, "not HTTP");
    bad("HTTP/1.1 101 OK\r\nno colon here\r\n\r\n", EGRESS_ERR_VALUE, "malformed");
    bad("HTTP/1.1 101 OK\r\n: empty name\r\n\r\n", EGRESS_ERR_VALUE, "malformed");
    bad("HTTP/1.1 101 OK\r\nX: a\rb\r\n\r\n", EGRESS_ERR_VALUE, "malformed");
    /* a head that never ends is cut off at the bound */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    bad(big, EGRESS_ERR_TOO_LARGE, "longer than 8192");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_vector),    cmocka_unit_test(test_request),
        cmocka_unit_test(test_request_no_space), cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_refused),    cmocka_unit_test(test_refusal_body),
        cmocka_unit_test(test_refusal_text),     cmocka_unit_test(test_parse_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
