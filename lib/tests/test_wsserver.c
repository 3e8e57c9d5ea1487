/*
 * test_wsserver.c: the server-side frame reader (egress_wsserver.c): whole
 * and fragmented messages fed in every split, pings between fragments, and
 * each refusal with its close code (1002 protocol, 1009 too big).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "egress_wsframe.h"
#include "egress_wsserver.h"

#define HEADROOM 24

static const unsigned char key[4] = {0xa1, 0x02, 0xc3, 0x44};

/* One frame: b0 (FIN|opcode), masked or not, with payload p. */
static size_t frame(unsigned char *out, int b0, int masked, const void *p, size_t len)
{
    size_t n = 2;

    out[0] = (unsigned char) b0;
    if (len < 126) {
        out[1] = (unsigned char) len;
    } else if (len < 65536) {
        out[1] = 126;
        out[2] = (unsigned char) (len >> 8);
        out[3] = (unsigned char) len;
        n = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++) {
            out[2 + i] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
        }
        n = 10;
    }
    if (masked) {
        out[1] |= 0x80;
        memcpy(out + n, key, 4);
        n += 4;
        egress_ws_mask(out + n, p, len, key, 0);
    } else {
        memcpy(out + n, p, len);
    }
    return n + len;
}

/* Feeds in in pieces of at most step bytes; returns the first event that is
 * not NONE (and where it stopped in *at), or NONE when all was consumed. */
static egress_ws_event_t feed(egress_ws_reader_t *r, const unsigned char *in, size_t len,
                              size_t step, size_t *at)
{
    egress_ws_event_t ev;
    size_t off = 0;

    memset(&ev, 0, sizeof(ev));
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        size_t used = egress_ws_read(r, in + off, n, &ev);

        off += used;
        if (ev.type != EGRESS_WS_EV_NONE) {
            break;
        }
        assert_int_equal(used, n);
    }
    if (at != NULL) {
        *at = off;
    }
    return ev;
}

static void test_whole_message_any_split(void **state)
{
    unsigned char payload[70000], wire[70100];
    size_t steps[] = {1, 2, 3, 7, 13, 4096, sizeof(wire)};
    size_t lens[] = {0, 1, 125, 126, 65535, 65536, 70000};

    (void) state;
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (unsigned char) (i * 31 + 7);
    }
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        size_t n = frame(wire, 0x82, 1, payload, lens[l]);

        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
            egress_ws_reader_t r;
            egress_ws_event_t ev;
            unsigned char *b;
            size_t at, cap;

            if (lens[l] > 1000 && steps[s] < 13) {
                continue; /* byte at a time over 64 KiB adds nothing but time */
            }
            egress_ws_reader_init(&r, 1 << 20, HEADROOM);
            ev = feed(&r, wire, n, steps[s], &at);
            assert_int_equal(ev.type, EGRESS_WS_EV_MESSAGE);
            assert_int_equal(at, n);
            assert_int_equal(ev.binary, 1);
            assert_int_equal(ev.len, lens[l]);
            b = egress_ws_reader_take(&r, &cap);
            assert_non_null(b);
            assert_true(cap >= lens[l]);
            assert_memory_equal(b + HEADROOM, payload, lens[l]);
            free(b);
            egress_ws_reader_free(&r);
        }
    }
}

static void test_fragments_with_ping_between(void **state)
{
    unsigned char wire[256];
    egress_ws_reader_t r;
    egress_ws_event_t ev;
    unsigned char *b;
    size_t n = 0, used, cap;

    (void) state;
    n += frame(wire + n, 0x01, 1, "{\"ty", 4); /* text, no FIN */
    n += frame(wire + n, 0x89, 1, "egrs", 4);  /* ping inside the message */
    n += frame(wire + n, 0x00, 1, "pe\":", 4); /* continuation */
    n += frame(wire + n, 0x80, 1, "1}", 2);    /* last continuation */
    n += frame(wire + n, 0x8a, 1, "", 0);      /* empty pong */
    egress_ws_reader_init(&r, 1024, HEADROOM);

    used = egress_ws_read(&r, wire, n, &ev);
    assert_int_equal(ev.type, EGRESS_WS_EV_PING);
    assert_int_equal(ev.len, 4);
    assert_memory_equal(ev.data, "egrs", 4);
    used += egress_ws_read(&r, wire + used, n - used, &ev);
    assert_int_equal(ev.type, EGRESS_WS_EV_MESSAGE);
    assert_int_equal(ev.binary, 0);
    assert_int_equal(ev.len, 10);
    b = egress_ws_reader_take(&r, &cap);
    assert_memory_equal(b + HEADROOM, "{\"type\":1}", 10);
    free(b);
    used += egress_ws_read(&r, wire + used, n - used, &ev);
    assert_int_equal(ev.type, EGRESS_WS_EV_PONG);
    assert_int_equal(ev.len, 0);
    assert_int_equal(used, n);
    egress_ws_reader_free(&r);
}

/* Feeds wire whole to a fresh reader with limit max; returns the event. */
static egress_ws_event_t one(const unsigned char *wire, size_t n, size_t max)
{
    egress_ws_reader_t r;
    egress_ws_event_t ev, again;

    egress_ws_reader_init(&r, max, HEADROOM);
    ev = feed(&r, wire, n, n, NULL);
    if (ev.type == EGRESS_WS_EV_ERROR) {
        /* a failed reader stays failed */
        assert_int_equal(egress_ws_read(&r, wire, n, &again), 0);
        assert_int_equal(again.type, EGRESS_WS_EV_ERROR);
        assert_int_equal(again.code, ev.code);
    }
    egress_ws_reader_free(&r);
    return ev;
}

static void test_refusals(void **state)
{
    unsigned char wire[600], big[300];
    egress_ws_event_t ev;
    size_t n;

    (void) state;
    memset(big, 'p', sizeof(big));

    n = frame(wire, 0x82, 0, "abc", 3); /* unmasked */
    ev = one(wire, n, 1024);
    assert_int_equal(ev.type, EGRESS_WS_EV_ERROR);
    assert_int_equal(ev.code, 1002);
    assert_string_equal(ev.why, "unmasked");
    /* refused as soon as the second byte shows the missing mask bit */
    ev = one(wire, 2, 1024);
    assert_int_equal(ev.code, 1002);

    n = frame(wire, 0x89, 1, big, 126); /* ping above 125 */
    ev = one(wire, n, 1024);
    assert_int_equal(ev.code, 1002);
    assert_string_equal(ev.why, "control_too_big");

    n = frame(wire, 0x09, 1, "x", 1); /* fragmented ping */
    ev = one(wire, n, 1024);
    assert_int_equal(ev.code, 1002);
    assert_string_equal(ev.why, "fragmented_control");

    n = frame(wire, 0x80, 1, "x", 1); /* continuation of nothing */
    assert_string_equal(one(wire, n, 1024).why, "orphan_continuation");

    n = frame(wire, 0x02, 1, "x", 1); /* a new message inside one */
    n += frame(wire + n, 0x82, 1, "y", 1);
    assert_string_equal(one(wire, n, 1024).why, "message_in_message");

    n = frame(wire, 0xc2, 1, "x", 1); /* RSV1 without an extension */
    assert_string_equal(one(wire, n, 1024).why, "reserved_bits");

    n = frame(wire, 0x83, 1, "x", 1); /* reserved data opcode */
    assert_string_equal(one(wire, n, 1024).why, "bad_opcode");
    n = frame(wire, 0x8b, 1, "x", 1); /* reserved control opcode */
    assert_string_equal(one(wire, n, 1024).why, "bad_opcode");

    n = frame(wire, 0x82, 1, big, 200); /* one frame above the limit */
    ev = one(wire, n, 100);
    assert_int_equal(ev.code, 1009);

    n = frame(wire, 0x02, 1, big, 60); /* fragments above the limit together */
    n += frame(wire + n, 0x00, 1, big, 30);
    n += frame(wire + n, 0x80, 1, big, 30);
    ev = one(wire, n, 100);
    assert_int_equal(ev.type, EGRESS_WS_EV_ERROR);
    assert_int_equal(ev.code, 1009);
    n = frame(wire, 0x02, 1, big, 60); /* exactly at the limit is fine */
    n += frame(wire + n, 0x80, 1, big, 40);
    ev = one(wire, n, 100);
    assert_int_equal(ev.type, EGRESS_WS_EV_MESSAGE);
    assert_int_equal(ev.len, 100);

    /* a 64-bit length with the top bit set */
    memcpy(wire, "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04", 14);
    assert_string_equal(one(wire, 14, 1024).why, "bad_length");
}

static void test_close_frames(void **state)
{
    unsigned char wire[200], p[130];
    egress_ws_event_t ev;
    size_t n;

    (void) state;
    n = frame(wire, 0x88, 1, "", 0);
    ev = one(wire, n, 1024);
    assert_int_equal(ev.type, EGRESS_WS_EV_CLOSE);
    assert_int_equal(ev.code, 1005);

    n = frame(wire, 0x88, 1, p, egress_ws_close_payload(p, 4001, "replaced"));
    ev = one(wire, n, 1024);
    assert_int_equal(ev.type, EGRESS_WS_EV_CLOSE);
    assert_int_equal(ev.code, 4001);
    assert_int_equal(ev.len, 8);
    assert_memory_equal(ev.data, "replaced", 8);

    n = frame(wire, 0x88, 1, "\x03", 1); /* one byte: no room for a code */
    assert_int_equal(one(wire, n, 1024).code, 1002);
    n = frame(wire, 0x88, 1, "\x03\xed", 2); /* 1005 may not be sent */
    assert_int_equal(one(wire, n, 1024).code, 1002);
    n = frame(wire, 0x88, 1, "\x03\xe8", 2); /* 1000 */
    assert_int_equal(one(wire, n, 1024).code, 1000);

    assert_int_equal(egress_ws_close_code_valid(1000), 1);
    assert_int_equal(egress_ws_close_code_valid(1004), 0);
    assert_int_equal(egress_ws_close_code_valid(1006), 0);
    assert_int_equal(egress_ws_close_code_valid(2999), 0);
    assert_int_equal(egress_ws_close_code_valid(4999), 1);
    assert_int_equal(egress_ws_close_code_valid(5000), 0);

    /* a long reason is cut so the payload stays a legal control frame */
    memset(wire, 'r', 199);
    wire[199] = '\0';
    assert_int_equal(egress_ws_close_payload(p, 1002, (char *) wire), 125);
}

static void test_server_header(void **state)
{
    unsigned char h[EGRESS_WS_SERVER_HDR_MAX];

    (void) state;
    assert_int_equal(egress_ws_server_header(h, EGRESS_WS_OP_BINARY, 1, 5), 2);
    assert_int_equal(h[0], 0x82);
    assert_int_equal(h[1], 5); /* no mask bit from a server */
    assert_int_equal(egress_ws_server_header(h, EGRESS_WS_OP_TEXT, 0, 300), 4);
    assert_int_equal(h[0], 0x01);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2] << 8 | h[3], 300);
    assert_int_equal(egress_ws_server_header(h, EGRESS_WS_OP_CONT, 1, 70000), 10);
    assert_int_equal(h[0], 0x80);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7], 1);
    assert_int_equal(h[8], 0x11);
    assert_int_equal(h[9], 0x70);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_message_any_split),
        cmocka_unit_test(test_fragments_with_ping_between),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_server_header),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
