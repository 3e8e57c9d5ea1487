/*
 * fuzz_flow.c: libFuzzer target for flow-control accounting.
 *
 * Interprets the input as a script of operations on egress_flow_t and
 * checks the invariants after each: the peer's outstanding credit never
 * exceeds the advertised window, send credit never exceeds
 * EGRESS_MAX_WINDOW, and every grant is one a peer could legally receive.
 *
 * With bit 1 of the first byte set, two flows share one window pool and
 * tune their windows (egress_flow_tune) on a clock the script advances:
 * then also every byte is accounted for (the peer's credit, what waits to
 * drain, what drained but is not yet granted, less what a shrink withholds,
 * is always the window), each window stays within its start size and cap,
 * and the pool holds exactly what the windows hold above their start, never
 * more than its budget.
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

typedef struct {
    egress_flow_t fl;
    uint64_t received, drained;
} fz_flow_t;

static void check(const fz_flow_t *f, const egress_window_pool_t *pool, int tuned)
{
    const egress_flow_t *fl = &f->fl;

    if (fl->unlimited) {
        if (egress_flow_send_room(fl) != SIZE_MAX) {
            abort();
        }
        return;
    }
    if (fl->recv_credit > fl->recv_window || fl->send_credit > EGRESS_MAX_WINDOW ||
        fl->recv_window == 0 || fl->recv_window > EGRESS_MAX_WINDOW) {
        abort();
    }
    /* Everything drained is granted back once half a window accumulates. */
    if (fl->recv_drained >= fl->recv_window / 2 && fl->recv_drained > 0) {
        abort();
    }
    if (!tuned) {
        return;
    }
    if (fl->recv_credit + (f->received - f->drained) + fl->recv_drained - fl->recv_debt !=
        fl->recv_window) {
        abort();
    }
    if (fl->recv_debt && fl->recv_drained) {
        abort();
    }
    if (fl->pool && (fl->recv_window < fl->recv_base || fl->recv_window > fl->recv_max ||
                     fl->recv_peak < fl->recv_window || fl->pool != pool)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_flow_t f[2];
    egress_window_pool_t pool;
    egress_error_t err;
    uint64_t now = 1000;
    int tuned, nflows, k;
    size_t i;

    if (size < 9) {
        return 0;
    }
    memset(f, 0, sizeof(f));
    tuned = (data[0] & 3) == 2;
    nflows = tuned ? 2 : 1;
    egress_window_pool_init(&pool, (uint64_t) (data[0] >> 2) << 18); /* 0 .. 16 MiB */
    for (k = 0; k < nflows; k++) {
        if (data[0] & 1) {
            egress_flow_init_unlimited(&f[k].fl);
        } else {
            egress_flow_init(&f[k].fl, rd32(data + 1), rd32(data + 5) >> (tuned ? 12 : 0));
        }
        if (tuned) {
            egress_flow_tune(&f[k].fl, &pool, f[k].fl.recv_window << (data[1] & 7), now);
        }
    }
    for (i = 9; i + 5 <= size; i += 5) {
        fz_flow_t *z = &f[tuned ? (data[i] >> 7) : 0];
        egress_flow_t *fl = &z->fl;
        uint32_t v = rd32(data + i + 1);
        size_t room = egress_flow_send_room(fl);
        uint32_t inc;
        unsigned op = data[i] & (tuned ? 7 : 3);

        switch (op) {
        case 0:
            egress_flow_on_sent(fl, v < room ? v : room);
            break;
        case 1:
            (void) egress_flow_on_window(fl, v, &err);
            break;
        case 2:
            if (egress_flow_on_received(fl, v, &err) == 0) {
                z->received += v;
            }
            break;
        case 3:
        case 5:
            /* A correct caller drains only what it received. */
            if (v > z->received - z->drained) {
                v = (uint32_t) (z->received - z->drained);
            }
            z->drained += v;
            if (tuned) {
                /* case 5 passes the backlog only where it is asked for, as callers do */
                int wants = egress_flow_wants_backlog(fl, v);
                size_t backlog = op == 5 && !wants ? 0 : (size_t) (data[i] & 0x78) << 12;

                inc = egress_flow_on_drained_at(fl, v, backlog, now);
                if (inc != 0 && !wants && fl->pool != NULL) {
                    abort(); /* a grant from a drain that said it would not grant */
                }
            } else {
                inc = egress_flow_on_drained(fl, v);
            }
            if (fl->unlimited ? inc != 0 : inc > fl->recv_window) {
                abort();
            }
            break;
        case 4:
            now += v & 0xffff;
            break;
        case 6:
            /* The peer sends up to its credit, chunk by chunk, and we drain at once. */
            v %= 64;
            while (v-- && fl->recv_credit) {
                size_t n =
                    fl->recv_credit < EGRESS_DATA_CHUNK ? fl->recv_credit : EGRESS_DATA_CHUNK;
                if (egress_flow_on_received(fl, n, &err) != 0) {
                    abort();
                }
                z->received += n;
                z->drained += n;
                (void) egress_flow_on_drained_at(fl, n, 0, now);
                now += data[i] >> 3 & 3;
            }
            break;
        case 7:
            egress_flow_release(fl);
            break;
        }
        for (k = 0; k < nflows; k++) {
            check(&f[k], &pool, tuned);
        }
        if (tuned) {
            uint64_t used = 0;
            uint32_t members = 0;
            for (k = 0; k < nflows; k++) {
                if (f[k].fl.pool) {
                    used += f[k].fl.recv_window - f[k].fl.recv_base;
                    members += f[k].fl.in_pool;
                }
            }
            if (used != pool.used || members != pool.members || pool.used > pool.budget) {
                abort();
            }
        }
    }
    for (k = 0; k < nflows; k++) {
        egress_flow_release(&f[k].fl);
    }
    if (pool.used != 0 || pool.members != 0) {
        abort();
    }
    return 0;
}
