/*
 * fuzz_frame.c: libFuzzer target for the frame codec.
 *
 * Input byte 0 selects the protocol version (bit 0: v1/v2) and the message
 * opcode (bit 1: text/binary); the rest is the WebSocket message. Whatever
 * decodes must re-encode, and the re-encoding must decode to the same frame.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_frame.h"
#include "egress_idmap.h"

/* One v1 leg's id map across inputs, so opens, lookups and forgets interleave. */
static egress_idmap_t idmap;
static int idmap_ready;

static void same_str(egress_str_t a, egress_str_t b)
{
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0 || b.data[b.len] != '\0') {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    egress_frame_t f, g;
    egress_error_t err;
    int version, binary, binary2 = 0;
    uint8_t *buf;
    size_t max, n;

    if (size < 1) {
        return 0;
    }
    version = (data[0] & 1) ? EGRESS_PROTO_V2 : EGRESS_PROTO_V1;
    binary = (data[0] & 2) ? 1 : 0;
    if (egress_frame_decode(&f, version, data + 1, size - 1, binary, &err) != 0) {
        /* Nothing to release after a failure, and the message must be terminated. */
        if (f.owned_json != NULL || f.owned_body != NULL || err.code == EGRESS_OK ||
            strlen(err.message) >= sizeof(err.message)) {
            abort();
        }
        return 0;
    }
    if (f.type == EGRESS_FRAME_DATA && version == EGRESS_PROTO_V2 &&
        f.body != data + 1 + EGRESS_V2_DATA_HEADER) {
        abort(); /* v2 data must be zero-copy */
    }
    max = egress_frame_encoded_max(&f, version);
    if (max == 0) {
        abort();
    }
    buf = malloc(max);
    n = egress_frame_encode(&f, version, buf, max, &binary2, &err);
    if (n == 0 || n > max || binary2 != (f.type == EGRESS_FRAME_DATA && version == 2)) {
        abort();
    }
    if (egress_frame_decode(&g, version, buf, n, binary2, &err) != 0) {
        abort();
    }
    if (g.type != f.type || g.id != f.id || g.port != f.port || g.window != f.window ||
        g.increment != f.increment || g.half != f.half ||
        g.peer_connected != f.peer_connected || g.connected != f.connected ||
        g.body_len != f.body_len || (f.body_len && memcmp(g.body, f.body, f.body_len) != 0)) {
        abort();
    }
    same_str(f.host, g.host);
    same_str(f.message, g.message);
    same_str(f.session_id, g.session_id);
    same_str(f.role, g.role);
    same_str(f.resume, g.resume);
    if (f.wire_id.len != 0) {
        same_str(f.wire_id, g.wire_id);
    }
    if (version == EGRESS_PROTO_V1) {
        egress_frame_t h = f;

        if (!idmap_ready) {
            egress_idmap_init(&idmap, 64);
            idmap_ready = 1;
        }
        if (egress_idmap_resolve(&idmap, &h, &err) == 0 && h.wire_id.len != 0 &&
            h.type == EGRESS_FRAME_OPEN &&
            egress_idmap_lookup(&idmap, h.wire_id.data, h.wire_id.len) != h.id) {
            abort();
        }
        h.wire_id.len = 0;
        egress_idmap_label(&idmap, &h);
        if (h.type == EGRESS_FRAME_CLOSE || h.type == EGRESS_FRAME_ERROR) {
            egress_idmap_forget(&idmap, h.id);
        }
    }
    egress_frame_release(&g);
    egress_frame_release(&f);
    free(buf);
    return 0;
}
