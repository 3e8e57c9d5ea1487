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
 *
 * A receiver may size its window itself (egress_flow_tune()): it starts at
 * the advertised window and doubles, up to a per-stream cap, when the
 * reader took a whole window within four credit round trips (what drained,
 * less what piled up in front of the reader meanwhile: the caller reports
 * that backlog) and the round trip has not grown over the smallest one seen
 * (the window is not yet filling a queue on the path). A window whose round
 * trips show a queue of more than 1/EGRESS_WINDOW_QUEUE_DIV of the smallest
 * round trip shrinks in proportion, so that a new stream's bytes on the same
 * path wait behind little. What a process grants above
 * the start windows comes from one egress_window_pool_t shared fairly by its
 * streams. Growth is only ever a larger `window` increment, so the peer needs
 * no support for it; shrinking (over the fair share, or a reader that backs
 * up) withholds grants until the peer's credit fits the smaller window.
 * Time is the caller's monotonic milliseconds.
 */

#ifndef EGRESS_FLOW_H
#define EGRESS_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "egress_error.h"

/* Window above the start size granted by all tuned streams of a process. */
typedef struct {
    uint64_t budget;  /* most it may hold; 0: no stream grows */
    uint64_t used;    /* held now (sum of the members' recv_window - recv_base) */
    uint32_t members; /* streams holding some, or refused for lack of it */
} egress_window_pool_t;

#define EGRESS_WINDOW_MAX_DEFAULT    (16u * 1024 * 1024) /* per-stream cap */
#define EGRESS_WINDOW_BUDGET_DEFAULT (64u * 1024 * 1024) /* per process */
#ifndef EGRESS_WINDOW_QUEUE_DIV
#define EGRESS_WINDOW_QUEUE_DIV 4 /* queueing delay a window may keep: round trip / this */
#endif
#define EGRESS_WINDOW_QUEUE_MIN_MS  1     /* ... and at least this: one clock tick */
#define EGRESS_WINDOW_RTT_PERIOD_MS 10000 /* the smallest round trip is that of 10-20 s */
#define EGRESS_WINDOW_CALM_STEPS    4 /* eighth-steps without a queue before doubling again */

typedef struct {
    uint64_t send_credit;  /* bytes we may send before the peer grants more */
    uint32_t recv_window;  /* window we advertised to the peer */
    uint64_t recv_credit;  /* bytes the peer may still send us */
    uint64_t recv_drained; /* drained since our last grant */
    uint64_t recv_total;   /* bytes the peer sent us */

    /* Auto-tuning (egress_flow_tune); pool is NULL when the window is fixed. */
    egress_window_pool_t *pool;
    uint64_t recv_debt;      /* drained bytes to withhold after a shrink */
    uint32_t recv_base;      /* start window: never below it */
    uint32_t recv_max;       /* per-stream cap */
    uint32_t recv_peak;      /* largest window so far (for logs and metrics) */
    uint32_t rtt_ms;         /* smallest credit round trip seen; 0: none yet */
    uint32_t rtt_base_ms;    /* smallest of the last 10-20 s the reader kept up: the path
                                without a queue (what the window is steered by) */
    uint32_t rtt_old_ms;     /* smallest in the previous period (0: none) */
    uint32_t rtt_cur_ms;     /* smallest in this period (0: none yet) */
    uint64_t rtt_period_ms;  /* when this period began */
    uint32_t rtt_last_ms;    /* the latest sample */
    uint32_t rtt_fresh_ms;   /* smallest sample in this epoch of a grant sent since the last
                                resize; 0: none */
    uint64_t resized_ms;     /* when the window last grew or shrank */
    uint64_t rate_cur;       /* fastest epoch of this period, bytes per ms */
    uint64_t rate_old;       /* ... and of the previous period */
    uint64_t rtt_mark;       /* the sample ends when recv_total passes this */
    uint64_t rtt_start_ms;   /* when the grant being timed was sent */
    uint64_t epoch_start_ms; /* growth is judged per window drained */
    uint64_t epoch_drained;
    uint64_t epoch_backlog; /* bytes waiting for the reader when the epoch began */
    uint64_t epoch_peak;    /* most bytes waiting for the reader in the epoch */
    unsigned rtt_pending : 1;
    unsigned in_pool : 1;
    unsigned steady : 1; /* the round trips showed the path's limit: grow by 1/8, not 2x */
    unsigned calm : 3;   /* eighth-steps grown since the last queue */
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

void egress_window_pool_init(egress_window_pool_t *pool, uint64_t budget);

/*
 * Lets fl's receive window grow from its current size up to max (clamped to
 * EGRESS_MAX_WINDOW), drawing on pool. Call right after egress_flow_init();
 * a no-op on an unlimited flow or when max is not above the window.
 */
void egress_flow_tune(egress_flow_t *fl, egress_window_pool_t *pool, uint32_t max,
                      uint64_t now_ms);

/*
 * egress_flow_on_drained() for a tuned flow: backlog is what we still hold
 * for our socket after these n bytes (received, not yet accepted by it).
 * Returns the increment to grant now, or 0. Same as egress_flow_on_drained()
 * on a flow that is not tuned.
 */
uint32_t egress_flow_on_drained_at(egress_flow_t *fl, size_t n, size_t backlog,
                                   uint64_t now_ms);

/*
 * The clock for now_ms above and for egress_flow_tune(): CLOCK_MONOTONIC in
 * ms, read afresh. Not an event loop's cached time (uv_now(),
 * ngx_current_msec): that is when the loop last polled, up to 19 ms old
 * late in a busy iteration, and a round trip timed with it once came out at
 * 6 ms on a 12.6 ms path; as the base round trip it made every true one look
 * queued and held the window small for the rest of the transfer.
 */
uint64_t egress_flow_clock_ms(void);

/*
 * Whether egress_flow_on_drained_at() with these n bytes will grant or judge
 * the window, and so needs the true backlog. Where learning it costs a
 * system call (SIOCOUTQNSD), a caller may pass 0 when this says no: a
 * reader that backs up is still seen at the next grant, an eighth of the
 * window later.
 */
int egress_flow_wants_backlog(const egress_flow_t *fl, size_t n);

/* The stream is over: gives its share back to the pool. Safe to call twice. */
void egress_flow_release(egress_flow_t *fl);

#endif /* EGRESS_FLOW_H */
