/*
 * egress_flow.c: per-stream credit accounting for v2 flow control.
 */

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "egress_flow.h"
#include "egress_frame.h"

uint64_t egress_flow_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

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
    fl->recv_total += n;
    return 0;
}

uint32_t egress_flow_on_drained(egress_flow_t *fl, size_t n)
{
    return egress_flow_on_drained_at(fl, n, 0, 0);
}

void egress_window_pool_init(egress_window_pool_t *pool, uint64_t budget)
{
    memset(pool, 0, sizeof(*pool));
    pool->budget = budget;
}

void egress_flow_tune(egress_flow_t *fl, egress_window_pool_t *pool, uint32_t max,
                      uint64_t now_ms)
{
    if (fl->unlimited || pool == NULL) {
        return;
    }
    if (max > EGRESS_MAX_WINDOW) {
        max = EGRESS_MAX_WINDOW;
    }
    fl->recv_base = fl->recv_window;
    fl->recv_peak = fl->recv_window;
    if (max <= fl->recv_window) {
        return;
    }
    fl->pool = pool;
    fl->recv_max = max;
    fl->epoch_start_ms = now_ms;
    fl->rtt_period_ms = now_ms;
}

void egress_flow_release(egress_flow_t *fl)
{
    egress_window_pool_t *pool = fl->pool;

    if (pool == NULL) {
        return;
    }
    pool->used -= fl->recv_window - fl->recv_base;
    if (fl->in_pool) {
        pool->members--;
    }
    fl->in_pool = 0;
    fl->pool = NULL;
}

/* What this stream may hold above its start window if it is (or becomes) a member. */
static uint64_t window_fair_share(const egress_flow_t *fl)
{
    const egress_window_pool_t *pool = fl->pool;

    return pool->budget / (pool->members + (fl->in_pool ? 0 : 1));
}

static void window_membership(egress_flow_t *fl, int member)
{
    if (member && !fl->in_pool) {
        fl->in_pool = 1;
        fl->pool->members++;
    } else if (!member && fl->in_pool) {
        fl->in_pool = 0;
        fl->pool->members--;
    }
}

/* Sets the window to w (recv_base <= w <= recv_max), keeping the pool and the grants true. */
static void window_resize(egress_flow_t *fl, uint32_t w)
{
    egress_window_pool_t *pool = fl->pool;
    uint64_t add, pay;

    if (w > fl->recv_window) {
        add = w - fl->recv_window;
        pool->used += add;
        /* The extra is credit to hand out now, as if it had drained; a debt is paid first. */
        pay = add < fl->recv_debt ? add : fl->recv_debt;
        fl->recv_debt -= pay;
        fl->recv_drained += add - pay;
        if (fl->recv_peak < w) {
            fl->recv_peak = w;
        }
    } else {
        /*
         * Never below the credit the peer holds (a shrink takes effect by
         * withholding grants): what is left comes off at later grants.
         */
        if (w < fl->recv_credit) {
            w = (uint32_t) fl->recv_credit;
        }
        pool->used -= fl->recv_window - w;
        /* Credit already out cannot be taken back: withhold that much of what drains. */
        add = fl->recv_window - w;
        pay = add < fl->recv_drained ? add : fl->recv_drained;
        fl->recv_drained -= pay;
        fl->recv_debt += add - pay;
    }
    fl->recv_window = w;
    window_membership(fl, w > fl->recv_base);
}

/*
 * Queueing delay allowed on the path: a quarter of the smallest round trip
 * (what a new stream's first byte may lose behind this one), never below
 * one tick of the millisecond clock the callers time round trips with.
 * The floor was 2 ms while the callers read their event loops' cached
 * clocks, whose staleness made samples jitter; it only matters where the
 * round trip is under 8 ms (a LAN, loopback).
 */
static uint32_t window_queue_tolerance(const egress_flow_t *fl)
{
    uint32_t tol = fl->rtt_base_ms / EGRESS_WINDOW_QUEUE_DIV;

    return tol > EGRESS_WINDOW_QUEUE_MIN_MS ? tol : EGRESS_WINDOW_QUEUE_MIN_MS;
}

/* An epoch's delivery rate (bytes per ms); the largest of this period and the last is kept. */
static void window_rate_sample(egress_flow_t *fl, uint64_t rate)
{
    if (fl->rate_cur < rate) {
        fl->rate_cur = rate;
    }
}

/* What the fastest recent epoch moved per base round trip: a window that keeps the pipe full.
 */
static uint64_t window_bdp(const egress_flow_t *fl)
{
    uint64_t rate = fl->rate_cur > fl->rate_old ? fl->rate_cur : fl->rate_old;

    return rate * fl->rtt_base_ms;
}

/*
 * Streams that share a queue see the same round trips, so shrinking each in
 * proportion and growing each by a part of itself would keep whatever split
 * they started with: the stream that grew first would keep the path. So, as
 * TCP's additive increase and multiplicative decrease converge, a stream
 * holding more than the average of the pool's members probes by a fixed
 * step (half the start window) while the others probe by an eighth of
 * themselves, and on a standing queue it gives back the most an epoch
 * allows, with no floor.
 */
static int window_above_average(const egress_flow_t *fl)
{
    const egress_window_pool_t *pool = fl->pool;

    return pool->members > 1 && (uint64_t) (fl->recv_window - fl->recv_base) * pool->members >
                                    pool->used + pool->used / 8;
}

static uint32_t window_step(const egress_flow_t *fl)
{
    uint32_t part = fl->recv_window / 8;

    return window_above_average(fl) || part < fl->recv_base / 2 ? fl->recv_base / 2 : part;
}

/*
 * Judged once per window drained (an epoch), like quic-go's auto-tuning: a
 * reader that took a whole window within four round trips (half a window
 * per two) shows that the sender is held back by the window, not by the link
 * or by itself. What the
 * reader took is what drained less what piled up meanwhile in front of it,
 * so a socket buffer that swallows the first bytes does not look like a fast
 * reader, and a burst that the reader is still working through does not
 * look like a slow one. Half a window waiting at some point of an epoch,
 * taken slowly, is a slow reader: judged at once.
 *
 * The pace test alone lets a window grow far past what the path carries per
 * round trip when the path is slower than the window (CPU, a bottleneck
 * link): the excess waits in queues (relays, kernel buffers, a router) in
 * front of every other stream's bytes. So the round trip samples also steer
 * the window, as delay-based congestion control does (TCP Vegas, BBR's
 * bandwidth-delay product): the epoch's smallest sample over the smallest
 * one seen lately is the queue this window keeps standing. Growth needs that
 * queue at most half the tolerance; above the tolerance the window shrinks
 * in proportion, to what would have made the round trip the smallest one
 * plus half the tolerance.
 */
static void window_adjust(egress_flow_t *fl, uint64_t backlog, uint64_t now_ms)
{
    egress_window_pool_t *pool = fl->pool;
    uint64_t elapsed, share, want, room, taken, floor;
    uint32_t w = fl->recv_window, queued, tol;
    int fast, slow;

    share = window_fair_share(fl);
    if (fl->in_pool && w - fl->recv_base > share) {
        /* Others joined the pool: give back down to the fair share. */
        want = fl->recv_base + share;
        window_resize(fl, (uint32_t) (want > w / 2 ? want : w / 2));
        fl->resized_ms = now_ms;
        return;
    }
    elapsed = now_ms >= fl->epoch_start_ms ? now_ms - fl->epoch_start_ms : 0;
    taken = fl->epoch_drained + fl->epoch_backlog;
    taken = taken > backlog ? taken - backlog : 0;
    /* half a window per two round trips, as QUICHE and quic-go grow theirs */
    fast = fl->rtt_base_ms && elapsed * w < 4 * (uint64_t) fl->rtt_base_ms * taken;
    slow = !fast && fl->epoch_peak >= w / 2;
    if (!slow && (fl->epoch_drained < w || fl->rtt_base_ms == 0)) {
        return;
    }
    /* Only samples of grants sent since the last resize tell what this window does. */
    queued = fl->rtt_fresh_ms > fl->rtt_base_ms ? fl->rtt_fresh_ms - fl->rtt_base_ms : 0;
    tol = window_queue_tolerance(fl);
    if (slow) {
        if (w > fl->recv_base) {
            window_resize(fl, w / 2 > fl->recv_base ? w / 2 : fl->recv_base);
            fl->resized_ms = now_ms;
        } else {
            window_membership(fl, 0);
        }
    } else if (fl->rtt_fresh_ms && queued > tol) {
        /* A standing queue: w * (rtt + tol / 2) / sample would have avoided it. */
        fl->steady = 1;
        fl->calm = 0;
        if (w > fl->recv_base) {
            /*
             * At most a quarter per epoch, and never below what the fastest
             * recent epoch moved per base round trip: a round trip that one
             * busy moment stretched must not take the pipe's own bytes away.
             * A stream above the average gives back the whole quarter.
             */
            want = (uint64_t) w * (fl->rtt_base_ms + tol / 2) / fl->rtt_fresh_ms;
            floor = (uint64_t) w - w / 4;
            if (window_above_average(fl)) {
                want = floor;
            } else if (floor < window_bdp(fl)) {
                floor = window_bdp(fl) < w ? window_bdp(fl) : w;
            }
            if (want < floor) {
                want = floor;
            }
            if (want < w) {
                window_resize(fl, (uint32_t) (want > fl->recv_base ? want : fl->recv_base));
                fl->resized_ms = now_ms;
            }
        }
    } else if (fast && fl->epoch_peak < w / 2 && fl->rtt_fresh_ms && queued <= tol / 2 &&
               w < fl->recv_max) {
        /*
         * Double until the path's limit showed, then probe by an eighth, and
         * double again after four such steps without a queue (the path got
         * faster, or the queue was another stream's). Not while half a
         * window waited for the reader in this epoch: it may only be
         * catching up.
         */
        if (fl->steady && ++fl->calm > EGRESS_WINDOW_CALM_STEPS) {
            fl->steady = 0;
            fl->calm = 0;
        }
        want = (uint64_t) w + (fl->steady ? window_step(fl) : w);
        if (want > fl->recv_max) {
            want = fl->recv_max;
        }
        if (want - fl->recv_base > share) {
            want = fl->recv_base + share;
        }
        room = pool->budget > pool->used ? pool->budget - pool->used : 0;
        if (want - w > room) {
            want = w + room;
        }
        if (want > w) {
            window_resize(fl, (uint32_t) want);
            fl->resized_ms = now_ms;
        } else {
            /* Refused for lack of budget: counting it makes the others give back. */
            window_membership(fl, 1);
        }
    }
    if (elapsed && fl->epoch_drained >= w) {
        window_rate_sample(fl, fl->epoch_drained / elapsed);
    }
    fl->epoch_start_ms = now_ms;
    fl->epoch_drained = 0;
    fl->epoch_backlog = backlog;
    fl->epoch_peak = backlog;
    fl->rtt_fresh_ms = 0;
}

/*
 * One credit round trip sample. The window is steered by the smallest of a
 * sliding period (rtt_base_ms: between one and two
 * EGRESS_WINDOW_RTT_PERIOD_MS), as BBR keeps its minimum: one lucky early
 * sample must not make every later round trip look queued forever, and a
 * path whose base delay grew is followed. The period only moves on while
 * the reader keeps up: a slow reader's own backlog lengthens its samples
 * and must not pass for the path's delay (it would make the reader look
 * fast). rtt_ms, the smallest ever, is for logs.
 */
static void window_rtt_sample(egress_flow_t *fl, uint32_t rtt, uint64_t now_ms)
{
    if (now_ms < fl->rtt_period_ms ||
        (now_ms - fl->rtt_period_ms >= EGRESS_WINDOW_RTT_PERIOD_MS &&
         fl->epoch_peak < fl->recv_window / 2)) {
        fl->rtt_old_ms = fl->rtt_cur_ms;
        fl->rtt_cur_ms = 0;
        fl->rate_old = fl->rate_cur;
        fl->rate_cur = 0;
        fl->rtt_period_ms = now_ms;
    }
    if (fl->rtt_cur_ms == 0 || rtt < fl->rtt_cur_ms) {
        fl->rtt_cur_ms = rtt;
    }
    fl->rtt_base_ms =
        fl->rtt_old_ms && fl->rtt_old_ms < fl->rtt_cur_ms ? fl->rtt_old_ms : fl->rtt_cur_ms;
    if (fl->rtt_ms == 0 || rtt < fl->rtt_ms) {
        fl->rtt_ms = rtt;
    }
    fl->rtt_last_ms = rtt;
    if (fl->rtt_start_ms >= fl->resized_ms &&
        (fl->rtt_fresh_ms == 0 || rtt < fl->rtt_fresh_ms)) {
        fl->rtt_fresh_ms = rtt;
    }
}

/*
 * Batch: one window frame per half window drained, not one per chunk. A
 * tuned window grants every eighth of itself (never less than a quarter of
 * the start window): a sender that waited for credit sends all of a grant at
 * once, so a grant is also the burst that lands in the path's queue, in
 * front of the other streams' bytes; and a window at its start size that
 * granted by halves would keep only half of itself moving, a quarter of
 * what a slightly larger one sharing the queue moves.
 */
static uint64_t window_grant_threshold(const egress_flow_t *fl)
{
    uint64_t threshold = fl->recv_window / 2, part;

    if (fl->pool) {
        part =
            fl->recv_window / 8 > fl->recv_base / 4 ? fl->recv_window / 8 : fl->recv_base / 4;
        if (part < threshold) {
            threshold = part;
        }
    }
    return threshold ? threshold : 1;
}

int egress_flow_wants_backlog(const egress_flow_t *fl, size_t n)
{
    uint64_t pay;

    if (fl->unlimited || fl->pool == NULL) {
        return 0;
    }
    pay = n < fl->recv_debt ? n : fl->recv_debt;
    return fl->recv_drained + (n - pay) >= window_grant_threshold(fl);
}

uint32_t egress_flow_on_drained_at(egress_flow_t *fl, size_t n, size_t backlog, uint64_t now_ms)
{
    uint64_t threshold, room, grant, pay;

    if (fl->unlimited) {
        return 0;
    }
    if (fl->pool) {
        fl->epoch_drained += n;
        if (fl->epoch_peak < backlog) {
            fl->epoch_peak = backlog;
        }
        /* The first byte beyond the credit the peer had at a grant was paid by that grant. */
        if (fl->rtt_pending && fl->recv_total > fl->rtt_mark) {
            uint64_t rtt = now_ms > fl->rtt_start_ms ? now_ms - fl->rtt_start_ms : 1;
            if (rtt > UINT32_MAX / 2) {
                rtt = UINT32_MAX / 2;
            }
            window_rtt_sample(fl, (uint32_t) rtt, now_ms);
            fl->rtt_pending = 0;
        }
    }
    pay = n < fl->recv_debt ? n : fl->recv_debt;
    fl->recv_debt -= pay;
    fl->recv_drained += n - pay;
    threshold = window_grant_threshold(fl);
    if (fl->recv_drained < threshold) {
        return 0;
    }
    if (fl->pool) {
        window_adjust(fl, backlog, now_ms);
        if (fl->recv_drained < window_grant_threshold(fl)) {
            return 0; /* shrunk: still withholding */
        }
    }
    /* Never grant beyond the advertised window, even if a caller over-reports. */
    room = fl->recv_window > fl->recv_credit ? fl->recv_window - fl->recv_credit : 0;
    grant = fl->recv_drained < room ? fl->recv_drained : room;
    fl->recv_drained = 0;
    fl->recv_credit += grant;
    if (fl->pool && grant && !fl->rtt_pending) {
        fl->rtt_pending = 1;
        fl->rtt_mark = fl->recv_total + (fl->recv_credit - grant);
        fl->rtt_start_ms = now_ms;
    }
    return (uint32_t) grant;
}
