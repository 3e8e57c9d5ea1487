
/*
 * The browser's side of a connection: the chain of bytes waiting for its
 * socket (credit for the stream's window is granted back only as the
 * socket takes them), its idle timer while a stream is active, and the
 * end of the connection.
 */


#include "ngx_stream_egress_proxy.h"

#if (NGX_LINUX)
#include <linux/sockios.h>
#endif


static size_t ngx_stream_egress_unsent(ngx_connection_t *c);


#define NGX_STREAM_EGRESS_IDLE_TIMEOUT   600000


static void ngx_stream_egress_release(ngx_stream_egress_ctx_t *ctx);


/*
 * Queues len bytes for the browser (data NULL: the caller fills the chunk
 * and sets its last). credit: the bytes came from the stream's window and
 * are granted back as they are written.
 */

ngx_stream_egress_chunk_t *
ngx_stream_egress_append(ngx_stream_egress_ctx_t *ctx, const u_char *data,
    size_t len, ngx_uint_t credit)
{
    ngx_stream_egress_chunk_t  *ch;

    ch = ngx_alloc(offsetof(ngx_stream_egress_chunk_t, data) + len,
                   ctx->session->connection->log);
    if (ch == NULL) {
        return NULL;
    }

    ch->next = NULL;
    ch->credit = credit;
    ch->pos = ch->data;
    ch->last = data ? ngx_cpymem(ch->data, data, len) : ch->data + len;

    if (ctx->out_tail) {
        ctx->out_tail->next = ch;

    } else {
        ctx->out = ch;
    }

    ctx->out_tail = ch;
    ctx->out_bytes += len;

    return ch;
}


/*
 * Writes pending bytes to the browser. Returns NGX_OK when all is written,
 * NGX_AGAIN when the socket is full, NGX_ERROR after finalizing.
 */

ngx_int_t
ngx_stream_egress_flush(ngx_stream_egress_ctx_t *ctx)
{
    ssize_t                     n;
    ngx_connection_t           *c;
    ngx_stream_egress_chunk_t  *ch;

    c = ctx->session->connection;

    while (ctx->out) {
        ch = ctx->out;

        n = c->send(c, ch->pos, ch->last - ch->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_stream_egress_finalize(ctx,
                                           NGX_STREAM_INTERNAL_SERVER_ERROR);
                return NGX_ERROR;
            }

            return NGX_AGAIN;
        }

        if (n == NGX_ERROR) {
            ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
            return NGX_ERROR;
        }

        ch->pos += n;
        ctx->out_bytes -= n;

        if (ch->credit) {
            ngx_stream_egress_grant(ctx, n);
        }

        if (ch->pos == ch->last) {
            ctx->out = ch->next;

            if (ctx->out == NULL) {
                ctx->out_tail = NULL;
            }

            ngx_free(ch);
        }
    }

    if (c->write->timer_set && ctx->state != NGX_STREAM_EGRESS_RESPOND) {
        ngx_del_timer(c->write);
    }

    return NGX_OK;
}


void
ngx_stream_egress_grant(ngx_stream_egress_ctx_t *ctx, size_t n)
{
    size_t    backlog;
    uint32_t  inc, window;

    if (ctx->id == 0 || ctx->flow.unlimited) {
        return;
    }

    window = ctx->flow.recv_window;

    /*
     * what still waits for the browser, here and in the kernel: a slow
     * reader shows there, however fast its socket buffer took the first
     * bytes (the kernel is asked only when a grant is due: an ioctl a write)
     */
    backlog = ctx->out_bytes;

    if (egress_flow_wants_backlog(&ctx->flow, n)) {
        backlog += ngx_stream_egress_unsent(ctx->session->connection);
    }

    inc = egress_flow_on_drained_at(&ctx->flow, n, backlog,
                                    egress_flow_clock_ms());

    if (ctx->flow.recv_window != window) {
        ngx_log_error(NGX_LOG_INFO, ctx->session->connection->log, 0,
                      "egress stream %uD: receive window %uD (was %uD, "
                      "round trip %uD ms, lately %uD ms, last %uD ms)",
                      ctx->id, ctx->flow.recv_window, window,
                      ctx->flow.rtt_ms, ctx->flow.rtt_base_ms,
                      ctx->flow.rtt_last_ms);
    }

    if (inc) {
        (void) ngx_stream_egress_bridge_send_window(ctx->id, inc);
    }
}


/* bytes the kernel holds not yet sent to the browser (0 if unknown) */

static size_t
ngx_stream_egress_unsent(ngx_connection_t *c)
{
#if (NGX_LINUX) && defined(SIOCOUTQNSD)
    int  n;

    if (ioctl(c->fd, SIOCOUTQNSD, &n) == 0 && n > 0) {
        return (size_t) n;
    }
#endif

    return 0;
}


/* keeps an active stream's idle timer (and the worker, on reload) alive */

void
ngx_stream_egress_touch(ngx_stream_egress_ctx_t *ctx)
{
    ngx_add_timer(ctx->session->connection->read,
                  NGX_STREAM_EGRESS_IDLE_TIMEOUT);
}


/* frees what the pool does not own; safe to call twice */

static void
ngx_stream_egress_release(ngx_stream_egress_ctx_t *ctx)
{
    ngx_stream_egress_chunk_t  *ch;

    if (ctx->id) {
        (void) ngx_stream_egress_bridge_send_close(ctx->id, 0);
    }

    ngx_stream_egress_bridge_forget(ctx);
    egress_flow_release(&ctx->flow);

    if (ctx->open_timer.timer_set) {
        ngx_del_timer(&ctx->open_timer);
    }

    while (ctx->out) {
        ch = ctx->out;
        ctx->out = ch->next;
        ngx_free(ch);
    }

    ctx->out_tail = NULL;
    ctx->out_bytes = 0;

    if (ctx->hdr) {
        ngx_free(ctx->hdr);
        ctx->hdr = NULL;
        ctx->hdr_cap = 0;
    }

    ctx->hdr_pos = NULL;
    ctx->hdr_last = NULL;
}


void
ngx_stream_egress_cleanup(void *data)
{
    ngx_stream_egress_ctx_t  *ctx = data;

    ngx_stream_egress_release(ctx);
}


void
ngx_stream_egress_finalize(ngx_stream_egress_ctx_t *ctx, ngx_uint_t rc)
{
    if (ctx->finalizing) {
        return;
    }

    ctx->finalizing = 1;

    ngx_stream_egress_release(ctx);

    ngx_stream_finalize_session(ctx->session, rc);
}
