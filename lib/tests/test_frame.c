/*
 * test_frame.c: the bridge protocol codec (egress_frame.c).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "egress_frame.h"

/* Decodes a JSON text message; returns the decode result. */
static int dec_text(egress_frame_t *f, int version, const char *json, egress_error_t *err)
{
    return egress_frame_decode(f, version, (const uint8_t *) json, strlen(json), 0, err);
}

/* Asserts that json fails to decode with code, and that the message contains want. */
static void expect_fail(int version, const char *json, egress_err_e code, const char *want,
                        uint32_t want_id)
{
    egress_frame_t f;
    egress_error_t err;

    memset(&err, 0, sizeof(err));
    if (dec_text(&f, version, json, &err) == 0) {
        print_error("decoded unexpectedly: %s\n", json);
        egress_frame_release(&f);
        fail();
    }
    if (err.code != code) {
        print_error("%s: got %s (%s), want %s\n", json, egress_err_name(err.code), err.message,
                    egress_err_name(code));
        fail();
    }
    if (want != NULL && strstr(err.message, want) == NULL) {
        print_error("%s: message \"%s\" lacks \"%s\"\n", json, err.message, want);
        fail();
    }
    assert_int_equal(f.id, want_id);
    assert_null(f.owned_json);
    assert_null(f.owned_body);
}

static void assert_str_eq(egress_str_t a, egress_str_t b)
{
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_int_equal(a.data[a.len], '\0');
}

/* Encodes f, decodes the result and checks every field survived. */
static void round_trip(const egress_frame_t *f, int version)
{
    uint8_t buf[8192];
    egress_frame_t g;
    egress_error_t err;
    int binary = -1;
    size_t n, max;

    max = egress_frame_encoded_max(f, version);
    assert_true(max > 0);
    n = egress_frame_encode(f, version, buf, sizeof(buf), &binary, &err);
    if (n == 0) {
        print_error("encode failed: %s\n", err.message);
        fail();
    }
    assert_true(n <= max);
    assert_int_equal(binary, version == EGRESS_PROTO_V2 && f->type == EGRESS_FRAME_DATA);
    /* Exactly n bytes needed: one byte less must fail with no_space. */
    assert_int_equal(egress_frame_encode(f, version, buf, n - 1, &binary, &err), 0);
    assert_int_equal(err.code, EGRESS_ERR_NO_SPACE);
    n = egress_frame_encode(f, version, buf, n, &binary, &err);
    assert_true(n > 0);
    if (egress_frame_decode(&g, version, buf, n, binary, &err) != 0) {
        print_error("decode of %.*s failed: %s\n", (int) n, (const char *) buf, err.message);
        fail();
    }
    assert_int_equal(g.type, f->type);
    assert_int_equal(g.id, f->id);
    assert_str_eq(g.host, f->host);
    assert_int_equal(g.port, f->port);
    assert_int_equal(g.window, version == EGRESS_PROTO_V2 ? f->window : 0);
    assert_int_equal(g.increment, f->increment);
    assert_int_equal(g.half, f->half);
    assert_int_equal(g.peer_connected, f->peer_connected);
    assert_int_equal(g.connected, f->connected);
    assert_str_eq(g.message, f->message);
    assert_str_eq(g.session_id, f->session_id);
    assert_str_eq(g.role, f->role);
    assert_str_eq(g.resume, f->resume);
    assert_int_equal(g.body_len, f->body_len);
    if (f->body_len) {
        assert_memory_equal(g.body, f->body, f->body_len);
    }
    if (version == EGRESS_PROTO_V2 && f->type == EGRESS_FRAME_DATA) {
        /* Zero-copy: the body points into the message. */
        assert_ptr_equal(g.body, buf + EGRESS_V2_DATA_HEADER);
    }
    egress_frame_release(&g);
}

static egress_str_t S(const char *s)
{
    egress_str_t r = {s, strlen(s)};
    return r;
}

static void frame_init(egress_frame_t *f, egress_frame_type_e type, uint32_t id)
{
    memset(f, 0, sizeof(*f));
    f->type = type;
    f->id = id;
    f->host = S("");
    f->message = S("");
    f->session_id = S("");
    f->role = S("");
    f->resume = S("");
}

static void test_round_trip_all(void **state)
{
    static uint8_t body[40000];
    egress_frame_t f;
    int v;
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(body); i++) {
        body[i] = (uint8_t) (i * 7 + 3);
    }
    for (v = EGRESS_PROTO_V1; v <= EGRESS_PROTO_V2; v++) {
        frame_init(&f, EGRESS_FRAME_OPEN, 1);
        f.host = S("example.com");
        f.port = 443;
        round_trip(&f, v);
        f.id = EGRESS_ID_MAX;
        f.host = S("2001:db8::1");
        f.port = 65535;
        f.window = EGRESS_INITIAL_WINDOW;
        round_trip(&f, v);
        f.host = S("203.0.113.7");
        f.window = EGRESS_MAX_WINDOW;
        round_trip(&f, v);

        frame_init(&f, EGRESS_FRAME_OPEN_OK, 7);
        round_trip(&f, v);
        f.window = 1;
        round_trip(&f, v);

        frame_init(&f, EGRESS_FRAME_CLOSE, 9);
        round_trip(&f, v);
        if (v == EGRESS_PROTO_V2) {
            f.half = 1;
            round_trip(&f, v);
        }

        frame_init(&f, EGRESS_FRAME_ERROR, 12);
        f.message = S("not allowed: evil.example:443 is not on the allowlist");
        round_trip(&f, v);
        f.message = S("quote \" backslash \\ ctl \x01\x1f\n\r\t\b\f del \x7f utf8 \xc3\xa9 "
                      "\xe2\x82\xac \xf0\x9f\x98\x80");
        round_trip(&f, v);
        f.message = S("");
        round_trip(&f, v);

        frame_init(&f, EGRESS_FRAME_DATA, 3);
        f.body = body;
        for (i = 0; i <= 5; i++) {
            f.body_len = i;
            round_trip(&f, v);
        }
        f.body_len = EGRESS_DATA_CHUNK;
        /* 32 KiB of base64 exceeds the local 8 KiB buffer: use a heap one. */
        {
            size_t cap = egress_frame_encoded_max(&f, v);
            uint8_t *big = malloc(cap);
            egress_frame_t g;
            egress_error_t err;
            int bin = 0;
            size_t n = egress_frame_encode(&f, v, big, cap, &bin, &err);
            assert_true(n > 0);
            assert_int_equal(egress_frame_decode(&g, v, big, n, bin, &err), 0);
            assert_int_equal(g.body_len, EGRESS_DATA_CHUNK);
            assert_memory_equal(g.body, body, EGRESS_DATA_CHUNK);
            egress_frame_release(&g);
            free(big);
        }
    }

    frame_init(&f, EGRESS_FRAME_WINDOW, 5);
    f.increment = 131072;
    round_trip(&f, EGRESS_PROTO_V2);
    f.increment = EGRESS_MAX_WINDOW;
    round_trip(&f, EGRESS_PROTO_V2);

    frame_init(&f, EGRESS_FRAME_HELLO, 0);
    f.session_id = S("egress_abc");
    f.role = S("host");
    f.resume = S("egr_xyz");
    f.peer_connected = 1;
    round_trip(&f, EGRESS_PROTO_V2);
    f.role = S("client");
    f.resume = S("");
    f.peer_connected = 0;
    round_trip(&f, EGRESS_PROTO_V2);

    frame_init(&f, EGRESS_FRAME_PEER, 0);
    round_trip(&f, EGRESS_PROTO_V2);
    f.connected = 1;
    round_trip(&f, EGRESS_PROTO_V2);
}

static void test_decode_basic(void **state)
{
    egress_frame_t f;
    egress_error_t err;

    (void) state;
    assert_int_equal(
        dec_text(&f, 1,
                 "{\"type\":\"open\",\"id\":5,\"host\":\"Example.COM.\",\"port\":80,"
                 "\"future\":[1,{\"x\":null}]}",
                 &err),
        0);
    assert_int_equal(f.type, EGRESS_FRAME_OPEN);
    assert_int_equal(f.id, 5);
    assert_string_equal(f.host.data, "example.com");
    assert_int_equal(f.host.len, 11);
    assert_int_equal(f.port, 80);
    assert_int_equal(f.window, 0);
    egress_frame_release(&f);
    egress_frame_release(&f); /* idempotent */

    assert_int_equal(
        dec_text(&f, 2,
                 "{\"id\":4294967295,\"type\":\"open\",\"host\":\"[::FFFF:1.2.3.4]\","
                 "\"port\":65535,\"window\":2147483647}",
                 &err),
        0);
    assert_int_equal(f.id, EGRESS_ID_MAX);
    assert_string_equal(f.host.data, "::ffff:1.2.3.4");
    assert_int_equal(f.window, EGRESS_MAX_WINDOW);
    egress_frame_release(&f);

    /* v1 ignores v2-only keys. */
    assert_int_equal(dec_text(&f, 1, "{\"type\":\"close\",\"id\":1,\"half\":true}", &err), 0);
    assert_int_equal(f.half, 0);
    egress_frame_release(&f);
    assert_int_equal(
        dec_text(&f, 1, "{\"type\":\"open_ok\",\"id\":1,\"window\":\"junk\"}", &err), 0);
    assert_int_equal(f.window, 0);
    egress_frame_release(&f);

    /* v1 data body decodes into owned memory. */
    assert_int_equal(
        dec_text(&f, 1, "{\"type\":\"data\",\"id\":2,\"body\":\"aGVsbG8=\"}", &err), 0);
    assert_int_equal(f.body_len, 5);
    assert_memory_equal(f.body, "hello", 5);
    egress_frame_release(&f);
    assert_int_equal(dec_text(&f, 1, "{\"type\":\"data\",\"id\":2,\"body\":\"\"}", &err), 0);
    assert_int_equal(f.body_len, 0);
    assert_non_null(f.body);
    egress_frame_release(&f);

    /* An "id" on a session frame is an ignored extra. */
    assert_int_equal(dec_text(&f, 2, "{\"type\":\"peer\",\"connected\":true,\"id\":3}", &err),
                     0);
    assert_int_equal(f.id, 0);
    assert_int_equal(f.connected, 1);
    egress_frame_release(&f);

    /* hello without resume. */
    assert_int_equal(dec_text(&f, 2,
                              "{\"type\":\"hello\",\"sessionID\":\"s\",\"role\":\"client\","
                              "\"peerConnected\":false}",
                              &err),
                     0);
    assert_string_equal(f.resume.data, "");
    egress_frame_release(&f);
}

static void test_decode_binary(void **state)
{
    static const uint8_t msg[] = {0x01, 0x02, 0x03, 0x04, 'h', 'i'};
    static const uint8_t zero[] = {0, 0, 0, 0, 'x'};
    egress_frame_t f;
    egress_error_t err;

    (void) state;
    assert_int_equal(egress_frame_decode(&f, 2, msg, sizeof(msg), 1, &err), 0);
    assert_int_equal(f.type, EGRESS_FRAME_DATA);
    assert_int_equal(f.id, 0x01020304);
    assert_ptr_equal(f.body, msg + 4);
    assert_int_equal(f.body_len, 2);
    egress_frame_release(&f);

    assert_int_equal(egress_frame_decode(&f, 2, msg, 4, 1, &err), 0);
    assert_int_equal(f.body_len, 0);
    egress_frame_release(&f);

    assert_int_equal(egress_frame_decode(&f, 2, msg, 3, 1, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_SHORT_BINARY);
    assert_int_equal(egress_frame_decode(&f, 2, msg, 0, 1, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_SHORT_BINARY);
    assert_int_equal(egress_frame_decode(&f, 2, zero, sizeof(zero), 1, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_ID_RANGE);
    assert_int_equal(egress_frame_decode(&f, 1, msg, sizeof(msg), 1, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_BINARY_IN_V1);
    assert_int_equal(egress_frame_decode(&f, 3, msg, sizeof(msg), 1, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_VALUE);
}

static void test_decode_errors(void **state)
{
    (void) state;
    expect_fail(1, "", EGRESS_ERR_JSON, "invalid JSON", 0);
    expect_fail(1, "{\"type\":\"open\"", EGRESS_ERR_JSON, "invalid JSON", 0);
    expect_fail(1, "{} x", EGRESS_ERR_JSON, NULL, 0);
    expect_fail(1, "\"\xff\"", EGRESS_ERR_JSON, NULL, 0);
    expect_fail(1, "[1,2]", EGRESS_ERR_NOT_OBJECT, "not a JSON object", 0);
    expect_fail(2, "42", EGRESS_ERR_NOT_OBJECT, NULL, 0);
    expect_fail(1, "{\"id\":1}", EGRESS_ERR_MISSING_FIELD, "missing field \"type\"", 1);
    expect_fail(1, "{\"type\":7,\"id\":1}", EGRESS_ERR_FIELD_TYPE, "\"type\" must be a string",
                1);
    expect_fail(1, "{\"type\":\"bogus\",\"id\":3}", EGRESS_ERR_UNKNOWN_TYPE,
                "unknown frame type \"bogus\"", 3);
    expect_fail(1, "{\"type\":\"OPEN\",\"id\":3}", EGRESS_ERR_UNKNOWN_TYPE, NULL, 3);
    expect_fail(1, "{\"type\":\"window\",\"id\":3,\"increment\":5}", EGRESS_ERR_UNKNOWN_TYPE,
                "in protocol v1", 3);
    expect_fail(1,
                "{\"type\":\"hello\",\"sessionID\":\"s\",\"role\":\"host\","
                "\"peerConnected\":true}",
                EGRESS_ERR_UNKNOWN_TYPE, NULL, 0);
    expect_fail(1, "{\"type\":\"peer\",\"connected\":true}", EGRESS_ERR_UNKNOWN_TYPE, NULL, 0);
    expect_fail(2, "{\"type\":\"data\",\"id\":4,\"body\":\"\"}", EGRESS_ERR_TEXT_DATA_IN_V2,
                "not allowed in protocol v2", 4);
    expect_fail(1, "{\"type\":\"open\",\"id\":1,\"id\":2,\"host\":\"a.b\",\"port\":1}",
                EGRESS_ERR_JSON, "duplicate", 0);

    /* ids */
    expect_fail(1, "{\"type\":\"close\"}", EGRESS_ERR_MISSING_FIELD,
                "close: missing field \"id\"", 0);
    expect_fail(2, "{\"type\":\"close\",\"id\":0}", EGRESS_ERR_ID_RANGE,
                "close: field \"id\" must be an integer 1..4294967295", 0);
    expect_fail(2, "{\"type\":\"close\",\"id\":-1}", EGRESS_ERR_ID_RANGE, NULL, 0);
    expect_fail(2, "{\"type\":\"close\",\"id\":4294967296}", EGRESS_ERR_ID_RANGE, NULL, 0);
    expect_fail(2, "{\"type\":\"close\",\"id\":1.0}", EGRESS_ERR_FIELD_TYPE,
                "must be an integer", 0);
    expect_fail(2, "{\"type\":\"close\",\"id\":1e2}", EGRESS_ERR_FIELD_TYPE, NULL, 0);
    expect_fail(2, "{\"type\":\"close\",\"id\":\"1\"}", EGRESS_ERR_FIELD_TYPE, NULL, 0);
    expect_fail(2, "{\"type\":\"close\",\"id\":true}", EGRESS_ERR_FIELD_TYPE, NULL, 0);
    expect_fail(2, "{\"type\":\"close\",\"id\":null}", EGRESS_ERR_FIELD_TYPE, NULL, 0);
    /* v1 ids are crabbox's strings: 1..64 printable bytes (integers still read) */
    expect_fail(1, "{\"type\":\"close\",\"id\":\"\"}", EGRESS_ERR_ID_RANGE,
                "close: field \"id\" must be a string of 1..64 printable characters", 0);
    expect_fail(1, "{\"type\":\"close\",\"id\":\"a\\u0001\"}", EGRESS_ERR_ID_RANGE, NULL, 0);
    expect_fail(1, "{\"type\":\"close\",\"id\":\"a\\u00e9\"}", EGRESS_ERR_ID_RANGE, NULL, 0);
    expect_fail(1,
                "{\"type\":\"close\",\"id\":"
                "\"conn_0123456789012345678901234567890123456789012345678901234567890\"}",
                EGRESS_ERR_ID_RANGE, NULL, 0);
    expect_fail(1, "{\"type\":\"close\",\"id\":0}", EGRESS_ERR_ID_RANGE, NULL, 0);
    expect_fail(1, "{\"type\":\"close\",\"id\":true}", EGRESS_ERR_FIELD_TYPE, NULL, 0);
    expect_fail(1, "{\"type\":\"close\",\"id\":1.0}", EGRESS_ERR_FIELD_TYPE, NULL, 0);
    /* a failed frame still names its stream: our own shape reads back as its id */
    expect_fail(1, "{\"type\":\"open\",\"id\":\"conn_a\",\"host\":\"a..b\",\"port\":\"1\"}",
                EGRESS_ERR_HOST, NULL, 10);
    expect_fail(1, "{\"type\":\"open\",\"id\":\"conn_k3\",\"host\":\"a.b\",\"port\":\"0\"}",
                EGRESS_ERR_PORT_RANGE, "open: field \"port\" must be 1..65535", 723);
    expect_fail(1, "{\"type\":\"open\",\"id\":\"x\",\"host\":\"a.b\",\"port\":\"80a\"}",
                EGRESS_ERR_PORT_RANGE, NULL, 0);
    expect_fail(1, "{\"type\":\"open\",\"id\":\"x\",\"host\":\"a.b\",\"port\":\" 80\"}",
                EGRESS_ERR_PORT_RANGE, NULL, 0);
    expect_fail(1, "{\"type\":\"open\",\"id\":\"x\",\"host\":\"a.b\",\"port\":\"65536\"}",
                EGRESS_ERR_PORT_RANGE, NULL, 0);
    expect_fail(1, "{\"type\":\"open\",\"id\":\"x\",\"host\":\"a.b\",\"port\":\"\"}",
                EGRESS_ERR_PORT_RANGE, NULL, 0);
    expect_fail(1, "{\"type\":\"error\",\"id\":\"x\",\"error\":5}", EGRESS_ERR_FIELD_TYPE,
                "error: field \"error\" must be a string", 0);
    expect_fail(2, "{\"type\":\"close\",\"id\":1,\"half\":1}", EGRESS_ERR_FIELD_TYPE,
                "close: field \"half\" must be a boolean", 1);

    /* open */
    expect_fail(1, "{\"type\":\"open\",\"id\":1,\"port\":80}", EGRESS_ERR_MISSING_FIELD,
                "open: missing field \"host\"", 1);
    expect_fail(1, "{\"type\":\"open\",\"id\":1,\"host\":\"a.com\"}", EGRESS_ERR_MISSING_FIELD,
                "open: missing field \"port\"", 1);
    expect_fail(1, "{\"type\":\"open\",\"id\":1,\"host\":5,\"port\":80}", EGRESS_ERR_FIELD_TYPE,
                "open: field \"host\" must be a string", 1);
    expect_fail(1, "{\"type\":\"open\",\"id\":1,\"host\":\"a..com\",\"port\":80}",
                EGRESS_ERR_HOST, "open: invalid host \"a..com\": empty label", 1);
    expect_fail(1, "{\"type\":\"open\",\"id\":1,\"host\":\"a\\u0000b\",\"port\":80}",
                EGRESS_ERR_VALUE, "open: field \"host\" contains a NUL byte", 1);
    expect_fail(1, "{\"type\":\"open\",\"id\":1,\"host\":\"a.com\",\"port\":0}",
                EGRESS_ERR_PORT_RANGE, "open: field \"port\" must be an integer 1..65535", 1);
    expect_fail(1, "{\"type\":\"open\",\"id\":1,\"host\":\"a.com\",\"port\":65536}",
                EGRESS_ERR_PORT_RANGE, NULL, 1);
    expect_fail(2, "{\"type\":\"open\",\"id\":1,\"host\":\"a.com\",\"port\":\"80\"}",
                EGRESS_ERR_FIELD_TYPE, "open: field \"port\" must be an integer 1..65535", 1);
    expect_fail(1, "{\"type\":\"open\",\"id\":1,\"host\":\"a.com\",\"port\":80.5}",
                EGRESS_ERR_FIELD_TYPE, NULL, 1);
    expect_fail(2, "{\"type\":\"open\",\"id\":1,\"host\":\"a.com\",\"port\":80,\"window\":0}",
                EGRESS_ERR_WINDOW_RANGE, "open: field \"window\" must be an integer 1..", 1);
    expect_fail(2,
                "{\"type\":\"open\",\"id\":1,\"host\":\"a.com\",\"port\":80,"
                "\"window\":2147483648}",
                EGRESS_ERR_WINDOW_RANGE, NULL, 1);
    expect_fail(2, "{\"type\":\"open_ok\",\"id\":1,\"window\":\"x\"}", EGRESS_ERR_FIELD_TYPE,
                "open_ok: field \"window\"", 1);

    /* data v1 */
    expect_fail(2, "{\"type\":\"data\",\"id\":2}", EGRESS_ERR_TEXT_DATA_IN_V2, NULL, 2);
    expect_fail(1, "{\"type\":\"data\",\"id\":2,\"body\":null}", EGRESS_ERR_FIELD_TYPE, NULL,
                2);
    expect_fail(1, "{\"type\":\"data\",\"id\":2,\"body\":\"aGVsbG8\"}", EGRESS_ERR_BASE64,
                "data: field \"body\" is not canonical padded base64", 2);
    expect_fail(1, "{\"type\":\"data\",\"id\":2,\"body\":\"aGVsbG9=\"}", EGRESS_ERR_BASE64,
                NULL, 2);
    expect_fail(1, "{\"type\":\"data\",\"id\":2,\"body\":\"aGVs bG8=\"}", EGRESS_ERR_BASE64,
                NULL, 2);
    expect_fail(1, "{\"type\":\"data\",\"id\":2,\"body\":\"aGVsbG8-\"}", EGRESS_ERR_BASE64,
                NULL, 2);

    /* error */
    expect_fail(2, "{\"type\":\"error\",\"id\":2}", EGRESS_ERR_MISSING_FIELD,
                "error: missing field \"message\"", 2);
    expect_fail(1, "{\"type\":\"error\",\"id\":2,\"message\":[]}", EGRESS_ERR_FIELD_TYPE,
                "error: field \"message\" must be a string", 2);
    expect_fail(1, "{\"type\":\"error\",\"id\":2,\"message\":\"a\\u0000\"}", EGRESS_ERR_VALUE,
                "NUL", 2);

    /* window */
    expect_fail(2, "{\"type\":\"window\",\"id\":2}", EGRESS_ERR_MISSING_FIELD,
                "window: missing field \"increment\"", 2);
    expect_fail(2, "{\"type\":\"window\",\"id\":2,\"increment\":0}", EGRESS_ERR_WINDOW_RANGE,
                "window: field \"increment\" must be an integer 1..2147483647", 2);
    expect_fail(2, "{\"type\":\"window\",\"id\":2,\"increment\":2147483648}",
                EGRESS_ERR_WINDOW_RANGE, NULL, 2);
    expect_fail(2, "{\"type\":\"window\",\"id\":2,\"increment\":-5}", EGRESS_ERR_WINDOW_RANGE,
                NULL, 2);

    /* hello / peer */
    expect_fail(2, "{\"type\":\"hello\",\"role\":\"host\",\"peerConnected\":true}",
                EGRESS_ERR_MISSING_FIELD, "hello: missing field \"sessionID\"", 0);
    expect_fail(2, "{\"type\":\"hello\",\"sessionID\":\"s\",\"peerConnected\":true}",
                EGRESS_ERR_MISSING_FIELD, "hello: missing field \"role\"", 0);
    expect_fail(2, "{\"type\":\"hello\",\"sessionID\":\"s\",\"role\":\"host\"}",
                EGRESS_ERR_MISSING_FIELD, "hello: missing field \"peerConnected\"", 0);
    expect_fail(2,
                "{\"type\":\"hello\",\"sessionID\":\"s\",\"role\":\"admin\","
                "\"peerConnected\":true}",
                EGRESS_ERR_VALUE, "hello: field \"role\" must be \"host\" or \"client\"", 0);
    expect_fail(2,
                "{\"type\":\"hello\",\"sessionID\":\"\",\"role\":\"host\","
                "\"peerConnected\":true}",
                EGRESS_ERR_VALUE, "must not be empty", 0);
    expect_fail(2,
                "{\"type\":\"hello\",\"sessionID\":\"s\",\"role\":\"host\","
                "\"peerConnected\":1}",
                EGRESS_ERR_FIELD_TYPE, "hello: field \"peerConnected\" must be a boolean", 0);
    expect_fail(2,
                "{\"type\":\"hello\",\"sessionID\":\"s\",\"role\":\"host\","
                "\"peerConnected\":true,\"resume\":7}",
                EGRESS_ERR_FIELD_TYPE, "hello: field \"resume\" must be a string", 0);
    expect_fail(2, "{\"type\":\"peer\"}", EGRESS_ERR_MISSING_FIELD,
                "peer: missing field \"connected\"", 0);
    expect_fail(2, "{\"type\":\"peer\",\"connected\":\"yes\"}", EGRESS_ERR_FIELD_TYPE, NULL, 0);
}

/* Asserts that encoding f under version fails with code and a message containing want. */
static void enc_fail(const egress_frame_t *f, int version, egress_err_e code, const char *want)
{
    uint8_t buf[4096];
    egress_error_t err;
    int binary = 7;

    memset(&err, 0, sizeof(err));
    if (egress_frame_encode(f, version, buf, sizeof(buf), &binary, &err) != 0) {
        print_error("encoded unexpectedly (type %d, v%d)\n", f->type, version);
        fail();
    }
    if (err.code != code || (want != NULL && strstr(err.message, want) == NULL)) {
        print_error("got %s \"%s\", want %s \"%s\"\n", egress_err_name(err.code), err.message,
                    egress_err_name(code), want ? want : "");
        fail();
    }
    assert_int_equal(binary, 0);
}

static void test_encode_refuses(void **state)
{
    static const uint8_t big_body[1];
    egress_frame_t f;
    char long_text[600];

    (void) state;
    memset(long_text, 'x', sizeof(long_text));

    frame_init(&f, EGRESS_FRAME_WINDOW, 1);
    f.increment = 5;
    enc_fail(&f, 1, EGRESS_ERR_UNKNOWN_TYPE,
             "frame type \"window\" does not exist in protocol v1");
    assert_int_equal(egress_frame_encoded_max(&f, 1), 0);
    f.increment = 0;
    enc_fail(&f, 2, EGRESS_ERR_WINDOW_RANGE, "window: field \"increment\" must be an integer");
    f.increment = EGRESS_MAX_WINDOW + 1u;
    enc_fail(&f, 2, EGRESS_ERR_WINDOW_RANGE, NULL);

    frame_init(&f, EGRESS_FRAME_PEER, 0);
    enc_fail(&f, 1, EGRESS_ERR_UNKNOWN_TYPE, NULL);
    frame_init(&f, (egress_frame_type_e) 0, 1);
    enc_fail(&f, 2, EGRESS_ERR_UNKNOWN_TYPE, NULL);
    assert_int_equal(egress_frame_encoded_max(&f, 2), 0);
    frame_init(&f, (egress_frame_type_e) 99, 1);
    enc_fail(&f, 2, EGRESS_ERR_UNKNOWN_TYPE, NULL);
    frame_init(&f, EGRESS_FRAME_CLOSE, 1);
    enc_fail(&f, 0, EGRESS_ERR_VALUE, "unsupported protocol version");
    enc_fail(&f, 3, EGRESS_ERR_VALUE, NULL);
    assert_int_equal(egress_frame_encoded_max(&f, 3), 0);
    f.id = 0;
    enc_fail(&f, 2, EGRESS_ERR_ID_RANGE,
             "close: field \"id\" must be an integer 1..4294967295");
    f.id = 1;
    f.half = 1;
    enc_fail(&f, 1, EGRESS_ERR_VALUE, "half-close cannot be expressed in protocol v1");

    frame_init(&f, EGRESS_FRAME_OPEN, 1);
    f.host = S("a..b");
    f.port = 80;
    enc_fail(&f, 1, EGRESS_ERR_HOST, "open: invalid host \"a..b\": empty label");
    f.host = S("");
    enc_fail(&f, 2, EGRESS_ERR_HOST, NULL);
    f.host.data = NULL;
    f.host.len = 3;
    enc_fail(&f, 2, EGRESS_ERR_VALUE, NULL);
    f.host = S("a.com");
    f.port = 0;
    enc_fail(&f, 2, EGRESS_ERR_PORT_RANGE, "open: field \"port\" must be an integer 1..65535");
    f.port = 1;
    f.window = EGRESS_MAX_WINDOW + 1u;
    enc_fail(&f, 2, EGRESS_ERR_WINDOW_RANGE, "open: field \"window\"");
    frame_init(&f, EGRESS_FRAME_OPEN_OK, 1);
    f.window = EGRESS_MAX_WINDOW + 1u;
    enc_fail(&f, 2, EGRESS_ERR_WINDOW_RANGE, "open_ok: field \"window\"");

    frame_init(&f, EGRESS_FRAME_ERROR, 1);
    f.message.data = long_text;
    f.message.len = EGRESS_MAX_ERROR_TEXT + 1;
    enc_fail(&f, 1, EGRESS_ERR_TOO_LARGE, "error: field \"message\" is longer than 512 bytes");
    f.message = S("bad \xc3 utf8");
    enc_fail(&f, 1, EGRESS_ERR_VALUE, "error: field \"message\" is not valid UTF-8");
    f.message = S("overlong \xc0\xaf");
    enc_fail(&f, 2, EGRESS_ERR_VALUE, "not valid UTF-8");
    f.message = S("surrogate \xed\xa0\x80");
    enc_fail(&f, 2, EGRESS_ERR_VALUE, "not valid UTF-8");
    f.message = S("too high \xf4\x90\x80\x80");
    enc_fail(&f, 2, EGRESS_ERR_VALUE, "not valid UTF-8");
    f.message = S("truncated \xe2\x82");
    enc_fail(&f, 2, EGRESS_ERR_VALUE, "not valid UTF-8");
    f.message.data = "nul\0byte";
    f.message.len = 8;
    enc_fail(&f, 2, EGRESS_ERR_VALUE, "error: field \"message\" contains a NUL byte");

    frame_init(&f, EGRESS_FRAME_HELLO, 0);
    f.session_id = S("s");
    f.role = S("admin");
    enc_fail(&f, 2, EGRESS_ERR_VALUE, "hello: field \"role\" must be \"host\" or \"client\"");
    f.role = S("host");
    f.session_id = S("");
    enc_fail(&f, 2, EGRESS_ERR_VALUE, "hello: field \"sessionID\" must not be empty");
    f.session_id = S("s");
    f.resume.data = long_text;
    f.resume.len = EGRESS_MAX_TOKEN_TEXT + 1;
    enc_fail(&f, 2, EGRESS_ERR_TOO_LARGE, "hello: field \"resume\" is longer than 256 bytes");
    f.resume = S("\xff");
    enc_fail(&f, 2, EGRESS_ERR_VALUE, "hello: field \"resume\" is not valid UTF-8");

    frame_init(&f, EGRESS_FRAME_DATA, 1);
    f.body = NULL;
    f.body_len = 1;
    enc_fail(&f, 1, EGRESS_ERR_VALUE, "data: body is NULL");
    enc_fail(&f, 2, EGRESS_ERR_VALUE, "data: body is NULL");
    /* Sizes are checked before the body is touched. */
    f.body = big_body;
    f.body_len = EGRESS_MAX_MESSAGE - EGRESS_V2_DATA_HEADER + 1;
    enc_fail(&f, 2, EGRESS_ERR_TOO_LARGE, "exceeds the message limit");
    f.body_len = EGRESS_MAX_MESSAGE / 4 * 3;
    enc_fail(&f, 1, EGRESS_ERR_TOO_LARGE, "exceeds the message limit");
}

static void test_encode_exact(void **state)
{
    uint8_t buf[512];
    egress_frame_t f;
    egress_error_t err;
    int binary;
    size_t n;

    (void) state;
    frame_init(&f, EGRESS_FRAME_OPEN, 1);
    f.host = S("Example.COM.");
    f.port = 443;
    f.window = EGRESS_INITIAL_WINDOW;
    n = egress_frame_encode(&f, 2, buf, sizeof(buf), &binary, &err);
    assert_int_equal(binary, 0);
    assert_int_equal(n,
                     strlen("{\"type\":\"open\",\"id\":1,\"host\":\"example.com\",\"port\":443,"
                            "\"window\":262144}"));
    assert_memory_equal(buf,
                        "{\"type\":\"open\",\"id\":1,\"host\":\"example.com\",\"port\":443,"
                        "\"window\":262144}",
                        n);
    /* v1 leaves the window out and speaks crabbox's shape: string id and port. */
    n = egress_frame_encode(&f, 1, buf, sizeof(buf), &binary, &err);
    assert_int_equal(n, strlen("{\"type\":\"open\",\"id\":\"conn_1\",\"host\":\"example.com\","
                               "\"port\":\"443\"}"));
    assert_memory_equal(buf,
                        "{\"type\":\"open\",\"id\":\"conn_1\",\"host\":\"example.com\","
                        "\"port\":\"443\"}",
                        n);
    /* a peer's id goes back as it came */
    f.wire_id = S("conn_lr3x9k2a1q");
    n = egress_frame_encode(&f, 1, buf, sizeof(buf), &binary, &err);
    assert_memory_equal(
        buf,
        "{\"type\":\"open\",\"id\":\"conn_lr3x9k2a1q\",\"host\":\"example.com\","
        "\"port\":\"443\"}",
        n);
    f.wire_id = S("a\"b");
    n = egress_frame_encode(&f, 1, buf, sizeof(buf), &binary, &err);
    assert_memory_equal(buf, "{\"type\":\"open\",\"id\":\"a\\\"b\",", 22);
    f.wire_id = S("a\nb");
    assert_int_equal(egress_frame_encode(&f, 1, buf, sizeof(buf), &binary, &err), 0);
    assert_int_equal(err.code, EGRESS_ERR_ID_RANGE);

    frame_init(&f, EGRESS_FRAME_ERROR, 4294967295u);
    f.message = S("a\"b\\c\n\x01\x7f\xc3\xa9");
    n = egress_frame_encode(&f, 2, buf, sizeof(buf), &binary, &err);
    assert_int_equal(n, strlen("{\"type\":\"error\",\"id\":4294967295,\"message\":"
                               "\"a\\\"b\\\\c\\n\\u0001\x7f\xc3\xa9\"}"));
    assert_memory_equal(buf,
                        "{\"type\":\"error\",\"id\":4294967295,\"message\":"
                        "\"a\\\"b\\\\c\\n\\u0001\x7f\xc3\xa9\"}",
                        n);
    /* v1: the text goes in "error" */
    n = egress_frame_encode(&f, 1, buf, sizeof(buf), &binary, &err);
    assert_int_equal(n, strlen("{\"type\":\"error\",\"id\":\"conn_1z141z3\",\"error\":"
                               "\"a\\\"b\\\\c\\n\\u0001\x7f\xc3\xa9\"}"));
    assert_memory_equal(buf,
                        "{\"type\":\"error\",\"id\":\"conn_1z141z3\",\"error\":"
                        "\"a\\\"b\\\\c\\n\\u0001\x7f\xc3\xa9\"}",
                        n);

    frame_init(&f, EGRESS_FRAME_DATA, 258);
    f.body = (const uint8_t *) "hello";
    f.body_len = 5;
    n = egress_frame_encode(&f, 1, buf, sizeof(buf), &binary, &err);
    assert_int_equal(binary, 0);
    assert_memory_equal(buf, "{\"type\":\"data\",\"id\":\"conn_76\",\"body\":\"aGVsbG8=\"}", n);
    n = egress_frame_encode(&f, 2, buf, sizeof(buf), &binary, &err);
    assert_int_equal(binary, 1);
    assert_int_equal(n, 9);
    assert_memory_equal(buf, "\x00\x00\x01\x02hello", 9);
    assert_int_equal(egress_frame_encoded_max(&f, 2), 9);
    /* binary may be NULL. */
    assert_int_equal(egress_frame_encode(&f, 2, buf, sizeof(buf), NULL, &err), 9);

    frame_init(&f, EGRESS_FRAME_CLOSE, 3);
    f.half = 1;
    n = egress_frame_encode(&f, 2, buf, sizeof(buf), &binary, &err);
    assert_memory_equal(buf, "{\"type\":\"close\",\"id\":3,\"half\":true}", n);
    frame_init(&f, EGRESS_FRAME_PEER, 0);
    n = egress_frame_encode(&f, 2, buf, sizeof(buf), &binary, &err);
    assert_memory_equal(buf, "{\"type\":\"peer\",\"connected\":false}", n);
}

/* The largest v1 data frame that fits the 2 MiB message limit, and one byte more. */
static void test_limits(void **state)
{
    egress_frame_t f, g;
    egress_error_t err;
    uint8_t *body, *buf;
    size_t cap = EGRESS_MAX_MESSAGE + 64, n, max_body;
    int binary;
    char text[1400];

    (void) state;
    body = calloc(1, EGRESS_MAX_MESSAGE);
    buf = malloc(cap);
    frame_init(&f, EGRESS_FRAME_DATA, 1);
    f.body = body;
    /* {"type":"data","id":"conn_1","body":"..."}: 39 bytes around the base64. */
    max_body = (EGRESS_MAX_MESSAGE - 39) / 4 * 3;
    f.body_len = max_body;
    n = egress_frame_encode(&f, 1, buf, cap, &binary, &err);
    assert_true(n > 0 && n <= EGRESS_MAX_MESSAGE);
    assert_int_equal(egress_frame_decode(&g, 1, buf, n, 0, &err), 0);
    assert_int_equal(g.body_len, max_body);
    egress_frame_release(&g);
    f.body_len = max_body + 1;
    assert_int_equal(egress_frame_encode(&f, 1, buf, cap, &binary, &err), 0);
    assert_int_equal(err.code, EGRESS_ERR_TOO_LARGE);

    /* v2: exactly 2 MiB with the header. */
    f.body_len = EGRESS_MAX_MESSAGE - EGRESS_V2_DATA_HEADER;
    n = egress_frame_encode(&f, 2, buf, cap, &binary, &err);
    assert_int_equal(n, EGRESS_MAX_MESSAGE);
    assert_int_equal(egress_frame_decode(&g, 2, buf, n, 1, &err), 0);
    egress_frame_release(&g);

    /* Decoders reject anything above 2 MiB, text or binary, before parsing. */
    memset(buf, ' ', cap);
    assert_int_equal(egress_frame_decode(&g, 2, buf, EGRESS_MAX_MESSAGE + 1, 1, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_TOO_LARGE);
    assert_int_equal(egress_frame_decode(&g, 1, buf, EGRESS_MAX_MESSAGE + 1, 0, &err), -1);
    assert_int_equal(err.code, EGRESS_ERR_TOO_LARGE);
    assert_non_null(strstr(err.message, "exceeds the 2097152-byte limit"));

    /* String limits. */
    snprintf(text, sizeof(text), "{\"type\":\"error\",\"id\":9,\"message\":\"%0513d\"}", 0);
    expect_fail(1, text, EGRESS_ERR_TOO_LARGE,
                "error: field \"message\" is longer than 512 bytes", 9);
    snprintf(text, sizeof(text), "{\"type\":\"error\",\"id\":9,\"message\":\"%0512d\"}", 0);
    assert_int_equal(egress_frame_decode(&g, 1, (const uint8_t *) text, strlen(text), 0, &err),
                     0);
    egress_frame_release(&g);
    snprintf(text, sizeof(text),
             "{\"type\":\"hello\",\"sessionID\":\"%0257d\",\"role\":\"host\","
             "\"peerConnected\":true}",
             0);
    expect_fail(2, text, EGRESS_ERR_TOO_LARGE, "hello: field \"sessionID\" is longer than 256",
                0);
    snprintf(text, sizeof(text), "{\"type\":\"open\",\"id\":1,\"host\":\"%01100d\",\"port\":1}",
             0);
    expect_fail(2, text, EGRESS_ERR_TOO_LARGE, NULL, 1);
    free(body);
    free(buf);
}

static void test_helpers(void **state)
{
    uint8_t h[4];

    (void) state;
    assert_string_equal(egress_frame_type_name(EGRESS_FRAME_OPEN), "open");
    assert_string_equal(egress_frame_type_name(EGRESS_FRAME_OPEN_OK), "open_ok");
    assert_string_equal(egress_frame_type_name(EGRESS_FRAME_DATA), "data");
    assert_string_equal(egress_frame_type_name(EGRESS_FRAME_CLOSE), "close");
    assert_string_equal(egress_frame_type_name(EGRESS_FRAME_ERROR), "error");
    assert_string_equal(egress_frame_type_name(EGRESS_FRAME_WINDOW), "window");
    assert_string_equal(egress_frame_type_name(EGRESS_FRAME_HELLO), "hello");
    assert_string_equal(egress_frame_type_name(EGRESS_FRAME_PEER), "peer");
    assert_string_equal(egress_frame_type_name((egress_frame_type_e) 0), "?");
    assert_string_equal(egress_frame_type_name((egress_frame_type_e) 42), "?");

    assert_int_equal(egress_proto_from_subprotocol("egress.v2"), EGRESS_PROTO_V2);
    assert_int_equal(egress_proto_from_subprotocol("egress.v1"), EGRESS_PROTO_V1);
    assert_int_equal(egress_proto_from_subprotocol(NULL), EGRESS_PROTO_V1);
    assert_int_equal(egress_proto_from_subprotocol(""), EGRESS_PROTO_V1);
    assert_int_equal(egress_proto_from_subprotocol("egress.v3"), 0);
    assert_int_equal(egress_proto_from_subprotocol("EGRESS.V2"), 0);

    egress_frame_data_header(h, 0xdeadbeef);
    assert_memory_equal(h, "\xde\xad\xbe\xef", 4);
    egress_frame_data_header(h, 1);
    assert_memory_equal(h, "\x00\x00\x00\x01", 4);

    /* release is safe on a zeroed frame and on NULL. */
    {
        egress_frame_t z;
        memset(&z, 0, sizeof(z));
        egress_frame_release(&z);
        egress_frame_release(NULL);
    }
}

/* Frames exactly as crabbox's Go CLI writes them (encoding/json, omitempty). */
static void test_decode_crabbox(void **state)
{
    egress_frame_t f;
    egress_error_t err;

    (void) state;
    assert_int_equal(dec_text(&f, 1,
                              "{\"type\":\"open\",\"id\":\"conn_1i4kq0x3n2bk\",\"host\":"
                              "\"example.com\",\"port\":\"443\"}",
                              &err),
                     0);
    assert_int_equal(f.type, EGRESS_FRAME_OPEN);
    assert_int_equal(f.id, 0); /* not our shape's range: the leg's map decides */
    assert_string_equal(f.wire_id.data, "conn_1i4kq0x3n2bk");
    assert_int_equal(f.wire_id.len, 17);
    assert_int_equal(f.port, 443);
    egress_frame_release(&f);

    /* a port as a number is accepted too */
    assert_int_equal(
        dec_text(&f, 1, "{\"type\":\"open\",\"id\":\"a b\",\"host\":\"a.b\",\"port\":8080}",
                 &err),
        0);
    assert_int_equal(f.port, 8080);
    assert_string_equal(f.wire_id.data, "a b");
    egress_frame_release(&f);

    assert_int_equal(dec_text(&f, 1, "{\"type\":\"open_ok\",\"id\":\"conn_k3\"}", &err), 0);
    assert_int_equal(f.id, 723);
    egress_frame_release(&f);

    /* an empty body is omitted */
    assert_int_equal(dec_text(&f, 1, "{\"type\":\"data\",\"id\":\"conn_1\"}", &err), 0);
    assert_int_equal(f.body_len, 0);
    assert_non_null(f.body);
    egress_frame_release(&f);

    /* error text in "error"; "message" accepted; both may be absent */
    assert_int_equal(
        dec_text(&f, 1, "{\"type\":\"error\",\"id\":\"conn_2\",\"error\":\"host not allowed\"}",
                 &err),
        0);
    assert_string_equal(f.message.data, "host not allowed");
    assert_int_equal(f.id, 2);
    egress_frame_release(&f);
    assert_int_equal(
        dec_text(&f, 1, "{\"type\":\"error\",\"id\":\"conn_2\",\"message\":\"m\"}", &err), 0);
    assert_string_equal(f.message.data, "m");
    egress_frame_release(&f);
    assert_int_equal(dec_text(&f, 1, "{\"type\":\"error\",\"id\":\"conn_2\"}", &err), 0);
    assert_string_equal(f.message.data, "");
    egress_frame_release(&f);

    /* Go escapes <, > and & in strings */
    assert_int_equal(dec_text(&f, 1, "{\"type\":\"close\",\"id\":\"x\\u003cy\"}", &err), 0);
    assert_string_equal(f.wire_id.data, "x<y");
    egress_frame_release(&f);

    /* our shape is canonical: no leading zero, lower case, at most 2^32 - 1 */
    assert_int_equal(egress_wire_id_parse("conn_01", 7), 0);
    assert_int_equal(egress_wire_id_parse("conn_A", 6), 0);
    assert_int_equal(egress_wire_id_parse("conn_", 5), 0);
    assert_int_equal(egress_wire_id_parse("conn_1z141z3", 12), 4294967295u);
    assert_int_equal(egress_wire_id_parse("conn_1z141z4", 12), 0);
    {
        char out[16];
        uint32_t ids[] = {1, 35, 36, 723, 65536, 4294967295u};
        size_t i, n;
        for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
            n = egress_wire_id_format(out, ids[i]);
            assert_int_equal(n, strlen(out));
            assert_int_equal(egress_wire_id_parse(out, n), ids[i]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_all), cmocka_unit_test(test_decode_basic),
        cmocka_unit_test(test_decode_binary),  cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_encode_refuses), cmocka_unit_test(test_encode_exact),
        cmocka_unit_test(test_limits),         cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_decode_crabbox),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
