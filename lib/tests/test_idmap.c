/* test_idmap.c: v1 wire ids <-> internal ids, bounded, with reuse and growth. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "egress_frame.h"
#include "egress_idmap.h"

static void decode(egress_frame_t *f, const char *json)
{
    egress_error_t err;

    assert_int_equal(
        egress_frame_decode(f, EGRESS_PROTO_V1, (const uint8_t *) json, strlen(json), 0, &err),
        0);
}

static void test_peer_ids(void **state)
{
    egress_idmap_t m;
    egress_frame_t f, g;
    egress_error_t err;
    uint8_t buf[256];
    uint32_t a, b;
    int binary;
    size_t n;

    (void) state;
    egress_idmap_init(&m, 8);
    decode(&f,
           "{\"type\":\"open\",\"id\":\"conn_lr3x9k2a1q\",\"host\":\"a.b\",\"port\":\"443\"}");
    assert_int_equal(egress_idmap_resolve(&m, &f, &err), 0);
    a = f.id;
    assert_true(a != 0);
    egress_frame_release(&f);
    decode(&f, "{\"type\":\"open\",\"id\":\"other\",\"host\":\"a.b\",\"port\":\"443\"}");
    assert_int_equal(egress_idmap_resolve(&m, &f, &err), 0);
    b = f.id;
    assert_true(b != 0 && b != a);
    egress_frame_release(&f);

    /* a repeated open gets the live id; other frames look up */
    decode(&f, "{\"type\":\"open\",\"id\":\"other\",\"host\":\"a.b\",\"port\":\"1\"}");
    assert_int_equal(egress_idmap_resolve(&m, &f, &err), 0);
    assert_int_equal(f.id, b);
    egress_frame_release(&f);
    decode(&f, "{\"type\":\"data\",\"id\":\"conn_lr3x9k2a1q\",\"body\":\"aGk=\"}");
    assert_int_equal(egress_idmap_resolve(&m, &f, &err), 0);
    assert_int_equal(f.id, a);
    egress_frame_release(&f);

    /* answers go back with the peer's text */
    memset(&g, 0, sizeof(g));
    g.type = EGRESS_FRAME_OPEN_OK;
    g.id = a;
    egress_idmap_label(&m, &g);
    n = egress_frame_encode(&g, EGRESS_PROTO_V1, buf, sizeof(buf), &binary, &err);
    assert_int_equal(n, strlen("{\"type\":\"open_ok\",\"id\":\"conn_lr3x9k2a1q\"}"));
    assert_memory_equal(buf, "{\"type\":\"open_ok\",\"id\":\"conn_lr3x9k2a1q\"}", n);

    /* after forget: unknown (late frame), the text can be opened again */
    egress_idmap_forget(&m, a);
    egress_idmap_forget(&m, a);
    decode(&f, "{\"type\":\"close\",\"id\":\"conn_lr3x9k2a1q\"}");
    assert_int_equal(egress_idmap_resolve(&m, &f, &err), 0);
    assert_int_equal(f.id, 0);
    egress_frame_release(&f);
    assert_int_equal(egress_idmap_lookup(&m, "other", 5), b);

    /* own shape without an entry keeps the decoder's value */
    decode(&f, "{\"type\":\"close\",\"id\":\"conn_k3\"}");
    assert_int_equal(egress_idmap_resolve(&m, &f, &err), 0);
    assert_int_equal(f.id, 723);
    egress_frame_release(&f);
    decode(&f, "{\"type\":\"close\",\"id\":\"conn_k3\"}");
    assert_int_equal(egress_idmap_resolve(NULL, &f, &err), 0);
    assert_int_equal(f.id, 723);
    egress_frame_release(&f);

    /* an open in our own shape keeps its number when it is free... */
    decode(&f, "{\"type\":\"open\",\"id\":\"conn_zz\",\"host\":\"a.b\",\"port\":\"1\"}");
    assert_int_equal(egress_idmap_resolve(&m, &f, &err), 0);
    assert_int_equal(f.id, 1295);
    egress_frame_release(&f);
    /* ...and gets a fresh one when a peer's text holds it */
    {
        char json[128], own[16];
        egress_wire_id_format(own, b);
        snprintf(json, sizeof(json),
                 "{\"type\":\"open\",\"id\":\"%s\",\"host\":\"a.b\",\"port\":\"1\"}", own);
        decode(&f, json);
        assert_int_equal(f.id, b);
        assert_int_equal(egress_idmap_resolve(&m, &f, &err), 0);
        assert_true(f.id != b && f.id != 0);
        egress_frame_release(&f);
    }

    egress_idmap_clear(&m);
    assert_int_equal(egress_idmap_lookup(&m, "other", 5), 0);
    egress_idmap_free(&m);
}

static void test_bound_and_churn(void **state)
{
    egress_idmap_t m;
    egress_frame_t f;
    egress_error_t err;
    char json[128];
    uint32_t ids[100];
    int i, round;

    (void) state;
    egress_idmap_init(&m, 100);
    for (round = 0; round < 5; round++) {
        for (i = 0; i < 100; i++) {
            snprintf(json, sizeof(json),
                     "{\"type\":\"open\",\"id\":\"s%d-%d\",\"host\":\"a.b\",\"port\":\"1\"}",
                     round, i);
            decode(&f, json);
            assert_int_equal(egress_idmap_resolve(&m, &f, &err), 0);
            ids[i] = f.id;
            egress_frame_release(&f);
        }
        /* full: the next open fails cleanly */
        decode(&f, "{\"type\":\"open\",\"id\":\"one-more\",\"host\":\"a.b\",\"port\":\"1\"}");
        assert_int_equal(egress_idmap_resolve(&m, &f, &err), -1);
        assert_int_equal(err.code, EGRESS_ERR_TOO_LARGE);
        assert_int_equal(f.id, 0);
        egress_frame_release(&f);
        for (i = 0; i < 100; i++) {
            snprintf(json, sizeof(json), "s%d-%d", round, i);
            assert_int_equal(egress_idmap_lookup(&m, json, strlen(json)), ids[i]);
        }
        /* forget in an order that exercises the back-shift deletion */
        for (i = 0; i < 100; i += 2) {
            egress_idmap_forget(&m, ids[i]);
        }
        for (i = 1; i < 100; i += 2) {
            snprintf(json, sizeof(json), "s%d-%d", round, i);
            assert_int_equal(egress_idmap_lookup(&m, json, strlen(json)), ids[i]);
        }
        for (i = 99; i > 0; i -= 2) {
            egress_idmap_forget(&m, ids[i]);
        }
        assert_int_equal(m.count, 0);
    }
    egress_idmap_free(&m);
    egress_idmap_free(&m); /* idempotent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_ids),
        cmocka_unit_test(test_bound_and_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
