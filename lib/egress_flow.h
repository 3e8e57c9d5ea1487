/*
 * egress_flow.h: per-stream credit accounting for v2 flow control.
 *
 * Each side of a stream owns one egress_flow_t. The send half counts the
 * credit the peer granted; the receive half counts bytes the peer sent that
 * we have not yet drained into our socket, and decides when to grant credit
 * back (batched: once half of the window has drained, so a bulk transfer
 * costs one window frame per 128 KiB, never one per chunk).
 *
 * On a v1 leg there is no credit: egress_flow_init_unlimited().
 */

#ifndef EGRESS_FLOW_H
#define EGRESS_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "egress_error.h"

typedef struct {
    uint64_t send_credit;  /* bytes we may send before the peer grants more */
    uint32_t recv_window;  /* window we advertised to the peer */
    uint64_t recv_credit;  /* bytes the peer may still send us */
    uint64_t recv_drained; /* drained since our last grant */
    unsigned unlimited : 1;
} egress_flow_t;

/*
 * send_window: what the peer advertised (taken literally: 0 means no credit
 * until a window grant or the caller sets send_credit, e.g. on open_ok; map
 * an absent "window" field to EGRESS_INITIAL_WINDOW yourself).
 * recv_window: what we advertised; 0 means EGRESS_INITIAL_WINDOW (the wire
 * cannot carry a zero window). Values above EGRESS_MAX_WINDOW are clamped.
 */
void egress_flow_init(egress_flow_t *fl, uint32_t send_window, uint32_t recv_window);
void egress_flow_init_unlimited(egress_flow_t *fl);

/*
 * Bytes we may send now (at most EGRESS_DATA_CHUNK per message is the caller's job).
 * SIZE_MAX in unlimited mode.
 */
size_t egress_flow_send_room(const egress_flow_t *fl);

/* We sent n bytes (n <= send room). */
void egress_flow_on_sent(egress_flow_t *fl, size_t n);

/* The peer granted increment. Returns 0, or -1 (EGRESS_ERR_FLOW) on overflow. */
int egress_flow_on_window(egress_flow_t *fl, uint32_t increment, egress_error_t *err);

/* The peer sent n bytes. Returns 0, or -1 (EGRESS_ERR_FLOW) if it exceeded its credit. */
int egress_flow_on_received(egress_flow_t *fl, size_t n, egress_error_t *err);

/*
 * n received bytes reached our socket. Returns the increment to grant now
 * (send a window frame with it), or 0 when it is not yet worth a frame.
 * A grant never raises the peer's outstanding credit above recv_window.
 */
uint32_t egress_flow_on_drained(egress_flow_t *fl, size_t n);

#endif /* EGRESS_FLOW_H */
