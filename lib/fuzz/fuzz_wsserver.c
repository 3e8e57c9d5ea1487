/*
 * fuzz_wsserver.c: libFuzzer target for the server-side frame reader.
 *
 * Byte 0 picks the message limit (up to 2 KiB), byte 1 the size of the
 * pieces the rest is fed in. The same input is read whole and in pieces:
 * both must yield the same events with the same payloads, every message
 * must fit the limit, and nothing may be read past the bytes given.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_wsserver.h"

#define HEADROOM 16

/* A running digest of the events (FNV-1a over type, code, length, payload). */
static uint64_t mix(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

static uint64_t run(const uint8_t *data, size_t size, size_t max, size_t step)
{
    egress_ws_reader_t r;
    egress_ws_event_t ev;
    uint64_t h = 1469598103934665603ull;
    size_t off = 0;

    egress_ws_reader_init(&r, max, HEADROOM);
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        size_t used = egress_ws_read(&r, data + off, n, &ev);
        int head[3];

        if (used > n) {
            abort();
        }
        off += used;
        if (ev.type == EGRESS_WS_EV_NONE) {
            if (used != n) {
                abort(); /* NONE means every byte given was taken */
            }
            continue;
        }
        head[0] = (int) ev.type;
        head[1] = ev.type == EGRESS_WS_EV_MESSAGE ? ev.binary : ev.code;
        head[2] = (int) ev.len;
        h = mix(h, (const unsigned char *) head, sizeof(head));
        if (ev.type == EGRESS_WS_EV_ERROR) {
            if (ev.code != EGRESS_WS_PROTOCOL_ERROR && ev.code != EGRESS_WS_TOO_BIG) {
                abort();
            }
            break;
        }
        if (ev.type == EGRESS_WS_EV_MESSAGE) {
            size_t cap;
            unsigned char *b = egress_ws_reader_take(&r, &cap);

            if (b == NULL || ev.len > max || ev.len > cap) {
                abort();
            }
            h = mix(h, b + HEADROOM, ev.len);
            free(b);
        } else {
            if (ev.len > EGRESS_WS_CONTROL_MAX) {
                abort();
            }
            h = mix(h, ev.data, ev.len);
        }
    }
    egress_ws_reader_free(&r);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t max, step;

    if (size < 2) {
        return 0;
    }
    max = (size_t) data[0] * 8;
    step = (size_t) data[1] % 17 + 1;
    if (run(data + 2, size - 2, max, size) != run(data + 2, size - 2, max, step)) {
        abort();
    }
    return 0;
}
