/*
 * fuzz_flow.c: libFuzzer target for flow-control accounting.
 *
 * Interprets the input as a script of operations on one egress_flow_t and
 * checks the invariants after each: the peer's outstanding credit never
 * exceeds the advertised window, send credit never exceeds
 * EGRESS_MAX_WINDOW, and every grant is one a peer could legally receive.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_flow.h"
#include "egress_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    egress_flow_t fl;
    egress_error_t err;
    uint64_t received = 0, drained = 0;
    size_t i;

    if (size < 9) {
        return 0;
    }
    if (data[0] & 1) {
        egress_flow_init_unlimited(&fl);
    } else {
        egress_flow_init(&fl, rd32(data + 1), rd32(data + 5));
    }
    for (i = 9; i + 5 <= size; i += 5) {
        uint32_t v = rd32(data + i + 1);
        size_t room = egress_flow_send_room(&fl);
        uint32_t inc;
        switch (data[i] & 3) {
        case 0:
            egress_flow_on_sent(&fl, v < room ? v : room);
            break;
        case 1:
            (void) egress_flow_on_window(&fl, v, &err);
            break;
        case 2:
            if (egress_flow_on_received(&fl, v, &err) == 0) {
                received += v;
            }
            break;
        case 3:
            /* A correct caller drains only what it received. */
            if (v > received - drained) {
                v = (uint32_t) (received - drained);
            }
            drained += v;
            inc = egress_flow_on_drained(&fl, v);
            if (fl.unlimited ? inc != 0 : inc > fl.recv_window) {
                abort();
            }
            break;
        }
        if (!fl.unlimited) {
            if (fl.recv_credit > fl.recv_window || fl.send_credit > EGRESS_MAX_WINDOW ||
                fl.recv_window == 0 || fl.recv_window > EGRESS_MAX_WINDOW) {
                abort();
            }
            /* Everything drained is granted back once half a window accumulates. */
            if (fl.recv_drained >= fl.recv_window / 2 && fl.recv_drained > 0) {
                abort();
            }
        } else if (egress_flow_send_room(&fl) != SIZE_MAX) {
            abort();
        }
    }
    return 0;
}
