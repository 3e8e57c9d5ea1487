
/*
 * Is a host agent there? v1 has no hello and no peer frames, and crabbox's
 * coordinator drops an open silently while no host is attached: without
 * help the browser would wait egress_open_timeout and get a 504.
 *
 * So on a v1 bridge, an open left unanswered for a second, with nothing
 * else heard from the host side meanwhile, makes the bridge send a probe:
 * an open to "egress-probe.invalid" port 9, which any host agent answers
 * at once (not on its allowlist, or a name that never resolves). An answer
 * means a host is there and the open just takes time; no answer means none
 * is: the streams still waiting for open_ok get 503 "host agent not
 * connected", and so do new requests at once, while a probe goes out every
 * two seconds until a host answers. Our coordinator answers the probe with
 * error "host agent not connected" itself, which counts as no host.
 *
 * Every frame from the host side counts as an answer, late probe answers
 * included; a late open_ok gets its close like any unknown stream.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_egress_bridge.h"


#define NGX_STREAM_EGRESS_PROBE_AFTER  1000   /* an open unanswered */
#define NGX_STREAM_EGRESS_PROBE_WAIT   1500   /* for the probe's answer */
#define NGX_STREAM_EGRESS_PROBE_EVERY  2000   /* while no host is there */

#define NGX_STREAM_EGRESS_NOT_CONNECTED  "host agent not connected"


static void ngx_stream_egress_probe_handler(ngx_event_t *ev);
static void ngx_stream_egress_probe_send(ngx_stream_egress_bridge_t *b,
    ngx_msec_t wait);
static void ngx_stream_egress_probe_absent(ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_probe_present(ngx_stream_egress_bridge_t *b);
static ngx_uint_t ngx_stream_egress_probe_opening(
    ngx_stream_egress_bridge_t *b);


void
ngx_stream_egress_probe_init(ngx_stream_egress_bridge_t *b)
{
    b->probe.handler = ngx_stream_egress_probe_handler;
    b->probe.data = b;
    b->probe.log = b->log;
    b->probe.cancelable = 1;
}


/* a new socket, a v1 fallback or a lost bridge: nothing known yet */

void
ngx_stream_egress_probe_reset(ngx_stream_egress_bridge_t *b)
{
    if (b->probe.timer_set) {
        ngx_del_timer(&b->probe);
    }

    b->probe_id = 0;
    b->host_absent = 0;
}


/* a stream's open went out on a v1 bridge */

void
ngx_stream_egress_probe_opened(ngx_stream_egress_bridge_t *b)
{
    if (b->version != EGRESS_PROTO_V1 || b->probe.timer_set
        || b->host_absent)
    {
        return;
    }

    b->probe_mark = b->host_frames;
    ngx_add_timer(&b->probe, NGX_STREAM_EGRESS_PROBE_AFTER);
}


/*
 * Every frame decoded on a v1 bridge, before dispatch. NGX_DONE when it
 * was the probe's answer (consumed here), else NGX_OK.
 */

ngx_int_t
ngx_stream_egress_probe_frame(ngx_stream_egress_bridge_t *b,
    egress_frame_t *f)
{
    ngx_uint_t  none;

    none = f->type == EGRESS_FRAME_ERROR
           && f->message.len == sizeof(NGX_STREAM_EGRESS_NOT_CONNECTED) - 1
           && ngx_strncmp(f->message.data, NGX_STREAM_EGRESS_NOT_CONNECTED,
                          f->message.len) == 0;

    if (b->probe_id != 0 && f->id == b->probe_id) {
        b->probe_id = 0;

        if (f->type == EGRESS_FRAME_OPEN_OK) {
            (void) ngx_stream_egress_bridge_send_close(f->id, 0);
        }

        if (none) {
            ngx_stream_egress_probe_absent(b);

        } else {
            b->host_frames++;
            ngx_stream_egress_probe_present(b);
        }

        return NGX_DONE;
    }

    if (!none) {
        b->host_frames++;

        if (b->host_absent) {
            ngx_stream_egress_probe_present(b);
        }
    }

    return NGX_OK;
}


static void
ngx_stream_egress_probe_handler(ngx_event_t *ev)
{
    ngx_stream_egress_bridge_t  *b;

    b = ev->data;

    if (b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN
        || b->version != EGRESS_PROTO_V1)
    {
        return;
    }

    if (b->host_frames != b->probe_mark && !b->host_absent) {
        /* the host side spoke since the timer was armed: it is there */
        b->probe_id = 0;

        if (ngx_stream_egress_probe_opening(b)) {
            b->probe_mark = b->host_frames;
            ngx_add_timer(&b->probe, NGX_STREAM_EGRESS_PROBE_AFTER);
        }

        return;
    }

    if (b->probe_id != 0) {
        /* the last probe went unanswered, and nothing else came */
        b->probe_id = 0;

        if (!b->host_absent) {
            ngx_stream_egress_probe_absent(b);
            return;
        }

        /* still nobody: ask again at once */

    } else if (!b->host_absent && ngx_stream_egress_probe_opening(b) == 0) {
        return;
    }

    ngx_stream_egress_probe_send(b, b->host_absent
                                    ? NGX_STREAM_EGRESS_PROBE_EVERY
                                    : NGX_STREAM_EGRESS_PROBE_WAIT);
}


static void
ngx_stream_egress_probe_send(ngx_stream_egress_bridge_t *b, ngx_msec_t wait)
{
    b->probe_id = ngx_stream_egress_bridge_send_probe(b);
    b->probe_mark = b->host_frames;

    if (b->probe_id == 0) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, b->log, 0,
                   "egress bridge: probe %uD for a host agent", b->probe_id);

    ngx_add_timer(&b->probe, wait);
}


static void
ngx_stream_egress_probe_absent(ngx_stream_egress_bridge_t *b)
{
    egress_str_t              message;
    ngx_rbtree_node_t        *node, *next;
    ngx_stream_egress_ctx_t  *ctx;

    if (!b->host_absent) {
        b->host_absent = 1;
        b->peer_connected = 0;

        ngx_log_error(NGX_LOG_NOTICE, b->log, 0,
                      "egress bridge: host agent not connected (no answer "
                      "on this v1 bridge; asking again every %M ms)",
                      (ngx_msec_t) NGX_STREAM_EGRESS_PROBE_EVERY);
    }

    message.data = NGX_STREAM_EGRESS_NOT_CONNECTED;
    message.len = sizeof(NGX_STREAM_EGRESS_NOT_CONNECTED) - 1;

    /* the opens nobody will answer; relaying streams carry on */

    if (b->streams.root != &b->sentinel) {
        node = ngx_rbtree_min(b->streams.root, &b->sentinel);

        while (node) {
            next = ngx_rbtree_next(&b->streams, node);
            ctx = (ngx_stream_egress_ctx_t *) node;

            if (ctx->state == NGX_STREAM_EGRESS_OPENING) {
                (void) ngx_stream_egress_bridge_send_close(ctx->id, 0);
                ngx_stream_egress_bridge_forget(ctx);
                ctx->ops->open_error(ctx, &message);
            }

            node = next;
        }
    }

    if (!b->probe.timer_set && b->probe_id == 0) {
        ngx_add_timer(&b->probe, NGX_STREAM_EGRESS_PROBE_EVERY);
    }
}


static void
ngx_stream_egress_probe_present(ngx_stream_egress_bridge_t *b)
{
    if (!b->host_absent) {
        return;
    }

    b->host_absent = 0;
    b->peer_connected = 1;

    if (b->probe.timer_set) {
        ngx_del_timer(&b->probe);
    }

    ngx_log_error(NGX_LOG_NOTICE, b->log, 0,
                  "egress bridge: host agent connected (it answered)");
}


static ngx_uint_t
ngx_stream_egress_probe_opening(ngx_stream_egress_bridge_t *b)
{
    ngx_rbtree_node_t        *node;
    ngx_stream_egress_ctx_t  *ctx;

    if (b->streams.root == &b->sentinel) {
        return 0;
    }

    for (node = ngx_rbtree_min(b->streams.root, &b->sentinel);
         node;
         node = ngx_rbtree_next(&b->streams, node))
    {
        ctx = (ngx_stream_egress_ctx_t *) node;

        if (ctx->state == NGX_STREAM_EGRESS_OPENING) {
            return 1;
        }
    }

    return 0;
}
