/*
 * egress_flow.c: per-stream credit accounting for v2 flow control.
 */

#include <stdint.h>
#include <string.h>

#include "egress_flow.h"
#include "egress_frame.h"

void egress_flow_init(egress_flow_t *fl, uint32_t send_window, uint32_t recv_window)
{
    /* A zero receive window cannot be advertised: it means the protocol default. */
    if (recv_window == 0) {
        recv_window = EGRESS_INITIAL_WINDOW;
    }
    if (send_window > EGRESS_MAX_WINDOW) {
        send_window = EGRESS_MAX_WINDOW;
    }
    if (recv_window > EGRESS_MAX_WINDOW) {
        recv_window = EGRESS_MAX_WINDOW;
    }
    memset(fl, 0, sizeof(*fl));
    fl->send_credit = send_window;
    fl->recv_window = recv_window;
    fl->recv_credit = recv_window;
}

void egress_flow_init_unlimited(egress_flow_t *fl)
{
    memset(fl, 0, sizeof(*fl));
    fl->unlimited = 1;
}

size_t egress_flow_send_room(const egress_flow_t *fl)
{
    if (fl->unlimited) {
        return SIZE_MAX;
    }
    return fl->send_credit > SIZE_MAX ? SIZE_MAX : (size_t) fl->send_credit;
}

void egress_flow_on_sent(egress_flow_t *fl, size_t n)
{
    if (fl->unlimited) {
        return;
    }
    /* Callers never send more than the room; clamp rather than wrap if one does. */
    fl->send_credit = (uint64_t) n >= fl->send_credit ? 0 : fl->send_credit - n;
}

int egress_flow_on_window(egress_flow_t *fl, uint32_t increment, egress_error_t *err)
{
    if (fl->unlimited) {
        return 0;
    }
    if (increment == 0 || increment > EGRESS_MAX_WINDOW) {
        return egress_error_set(err, EGRESS_ERR_FLOW, "window increment %u is outside 1..%u",
                                increment, EGRESS_MAX_WINDOW);
    }
    if (fl->send_credit + increment > EGRESS_MAX_WINDOW) {
        return egress_error_set(err, EGRESS_ERR_FLOW,
                                "window increment %u would raise the send credit above %u",
                                increment, EGRESS_MAX_WINDOW);
    }
    fl->send_credit += increment;
    return 0;
}

int egress_flow_on_received(egress_flow_t *fl, size_t n, egress_error_t *err)
{
    if (fl->unlimited) {
        return 0;
    }
    if ((uint64_t) n > fl->recv_credit) {
        return egress_error_set(err, EGRESS_ERR_FLOW,
                                "peer sent %zu bytes with only %llu bytes of credit left", n,
                                (unsigned long long) fl->recv_credit);
    }
    fl->recv_credit -= n;
    return 0;
}

uint32_t egress_flow_on_drained(egress_flow_t *fl, size_t n)
{
    uint64_t threshold, outstanding, grant;

    if (fl->unlimited) {
        return 0;
    }
    fl->recv_drained += n;
    /* Batch: one window frame per half window drained, not one per chunk. */
    threshold = fl->recv_window / 2;
    if (threshold == 0) {
        threshold = 1;
    }
    if (fl->recv_drained < threshold) {
        return 0;
    }
    /* Never grant beyond the advertised window, even if a caller over-reports. */
    outstanding = fl->recv_window - fl->recv_credit;
    grant = fl->recv_drained < outstanding ? fl->recv_drained : outstanding;
    fl->recv_drained = 0;
    fl->recv_credit += grant;
    return (uint32_t) grant;
}
