
/*
 * An open egress stream of one browser connection: the events the bridge
 * delivers (ngx_stream_egress_relay_ops), download, upload, and the end of
 * the exchange (drain, then the next request of a keep-alive connection or
 * the close).
 *
 * Upload (browser -> host): read only while the stream has send credit and
 * the bridge has room; absolute-form requests are framed (Content-Length or
 * chunked) so that a keep-alive client's next request is never sent on the
 * previous stream. Download (host -> browser): the response head is taken
 * out and rewritten for the browser's hop; the rest is written straight
 * from the bridge's message when the socket takes it, otherwise kept in a
 * chain of heap chunks; credit is granted back only for bytes the socket
 * accepted, so a stream never holds more than its window.
 *
 * v1 differs twice: it has no flow control (the flow is unlimited, and a
 * stream's unsent download is capped at NGX_STREAM_EGRESS_V1_PENDING_MAX
 * instead) and no half-close (a tunnel's browser EOF ends the stream).
 */


#include "ngx_stream_egress_proxy.h"


#define NGX_STREAM_EGRESS_UPLOAD_BURST   (512 * 1024)


/* the receive windows of this worker's streams share one budget */
static egress_window_pool_t  ngx_stream_egress_windows;


static void ngx_stream_egress_relay_open_ok(ngx_stream_egress_ctx_t *ctx,
    uint32_t window);
static void ngx_stream_egress_relay_open_error(ngx_stream_egress_ctx_t *ctx,
    egress_str_t *message);
static void ngx_stream_egress_relay_data(ngx_stream_egress_ctx_t *ctx,
    const u_char *data, size_t len);
static void ngx_stream_egress_relay_close(ngx_stream_egress_ctx_t *ctx,
    ngx_uint_t half);
static void ngx_stream_egress_relay_window(ngx_stream_egress_ctx_t *ctx,
    uint32_t increment);
static void ngx_stream_egress_relay_abort(ngx_stream_egress_ctx_t *ctx,
    ngx_str_t *reason);
static void ngx_stream_egress_relay_resume(ngx_stream_egress_ctx_t *ctx);
static ngx_int_t ngx_stream_egress_response_head(ngx_stream_egress_ctx_t *ctx,
    const u_char **data, size_t *len);
static void ngx_stream_egress_response_limit(ngx_stream_egress_ctx_t *ctx,
    const u_char *data, size_t *len);
static void ngx_stream_egress_reset_response(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_send_half(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_next_request(ngx_stream_egress_ctx_t *ctx);


/* the stream events the bridge delivers (see ngx_stream_egress_module.h) */

ngx_stream_egress_stream_ops_t  ngx_stream_egress_relay_ops = {
    ngx_stream_egress_relay_open_ok,
    ngx_stream_egress_relay_open_error,
    ngx_stream_egress_relay_data,
    ngx_stream_egress_relay_close,
    ngx_stream_egress_relay_window,
    ngx_stream_egress_relay_abort,
    ngx_stream_egress_relay_resume
};


static void
ngx_stream_egress_relay_open_ok(ngx_stream_egress_ctx_t *ctx,
    uint32_t window)
{
    static u_char  established[] = "HTTP/1.1 200 Connection Established"
                                   CRLF CRLF;

    size_t                          early;
    ngx_connection_t               *c;
    ngx_stream_egress_main_conf_t  *emcf;

    c = ctx->session->connection;

    if (ctx->open_timer.timer_set) {
        ngx_del_timer(&ctx->open_timer);
    }

    /* bytes sent behind open took their credit from the initial window */
    early = ctx->early ? EGRESS_INITIAL_WINDOW
                         - ngx_min(egress_flow_send_room(&ctx->flow),
                                   (size_t) EGRESS_INITIAL_WINDOW)
                       : 0;

    /* a keep-alive connection's previous stream gives its share back */
    egress_flow_release(&ctx->flow);

    if (ngx_stream_egress_bridge_version() == EGRESS_PROTO_V2) {
        egress_flow_init(&ctx->flow, window ? window : EGRESS_INITIAL_WINDOW,
                         EGRESS_INITIAL_WINDOW);

        emcf = ngx_stream_get_module_main_conf(ctx->session,
                                               ngx_stream_egress_module);
        ngx_stream_egress_windows.budget = emcf->window_budget;
        egress_flow_tune(&ctx->flow, &ngx_stream_egress_windows,
                         (uint32_t) emcf->window_max, egress_flow_clock_ms());

    } else {
        egress_flow_init_unlimited(&ctx->flow);
    }

    egress_flow_on_sent(&ctx->flow, early);

    ctx->state = NGX_STREAM_EGRESS_RELAY;
    c->log->action = "relaying egress stream";

    ngx_stream_egress_reset_response(ctx);

    if (ctx->req.connect && !ctx->early) {
        ctx->status = 200;

        if (ngx_stream_egress_append(ctx, established, sizeof(established) - 1,
                                     0)
            == NULL)
        {
            ngx_stream_egress_finalize(ctx, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

        if (ngx_stream_egress_flush(ctx) == NGX_ERROR) {
            return;
        }
    }

    ngx_stream_egress_touch(ctx);

    /* the request head, the body or early tunnel bytes go out now */
    ngx_post_event(c->read, &ngx_posted_events);
}


static void
ngx_stream_egress_relay_open_error(ngx_stream_egress_ctx_t *ctx,
    egress_str_t *message)
{
    ngx_uint_t         status;
    ngx_connection_t  *c;

    c = ctx->session->connection;

    if (ctx->state != NGX_STREAM_EGRESS_OPENING) {
        /* an error on an open stream ends it */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "egress stream ended by the host agent: %s",
                      message->data);
        ngx_stream_egress_relay_close(ctx, 0);
        return;
    }

    /* ours: "not allowed: ..."; crabbox's host agent: "host not allowed" */
    if ((message->len >= 11
         && ngx_strncmp(message->data, "not allowed", 11) == 0)
        || (message->len == sizeof("host not allowed") - 1
            && ngx_strncmp(message->data, "host not allowed", message->len)
               == 0))
    {
        status = NGX_STREAM_FORBIDDEN;

    } else if (message->len == sizeof("host agent not connected") - 1
               && ngx_strncmp(message->data, "host agent not connected",
                              message->len) == 0)
    {
        status = NGX_STREAM_SERVICE_UNAVAILABLE;

    } else {
        status = NGX_STREAM_BAD_GATEWAY;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0, "egress open failed: %s",
                  message->data);

    ngx_stream_egress_respond(ctx, status, (u_char *) message->data,
                              message->len);
}


static void
ngx_stream_egress_relay_data(ngx_stream_egress_ctx_t *ctx,
    const u_char *data, size_t len)
{
    ssize_t            n;
    egress_error_t     err;
    ngx_connection_t  *c;

    c = ctx->session->connection;

    if (ctx->state != NGX_STREAM_EGRESS_RELAY || ctx->host_closed
        || ctx->host_half)
    {
        /* late bytes for a stream we are already ending */
        return;
    }

    if (egress_flow_on_received(&ctx->flow, len, &err) != 0) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "egress stream %uD: %s", ctx->id, err.message);
        ngx_stream_egress_finalize(ctx, NGX_STREAM_BAD_GATEWAY);
        return;
    }

    ngx_stream_egress_touch(ctx);

    if (!ctx->req.connect && !ctx->resp.done) {
        if (ngx_stream_egress_response_head(ctx, &data, &len) != NGX_OK) {
            ngx_stream_egress_finalize(ctx, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    if (ctx->resp.counted) {
        ngx_stream_egress_response_limit(ctx, data, &len);
    }

    /* zero-copy: straight from the WebSocket message when possible */

    if (ctx->out == NULL && len && c->write->ready) {
        n = c->send(c, (u_char *) data, len);

        if (n == NGX_ERROR) {
            ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
            return;
        }

        if (n > 0) {
            data += n;
            len -= n;
            ngx_stream_egress_grant(ctx, n);
        }
    }

    if (len && ngx_stream_egress_append(ctx, data, len, 1) == NULL) {
        ngx_stream_egress_finalize(ctx, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ctx->out == NULL) {
        return;
    }

    if (!c->write->ready) {
        if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
            ngx_stream_egress_finalize(ctx, NGX_STREAM_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    /* a rewritten head may precede the bytes: write what the socket takes */
    if (ngx_stream_egress_flush(ctx) == NGX_ERROR) {
        return;
    }

    if (ctx->flow.unlimited
        && ctx->out_bytes > NGX_STREAM_EGRESS_V1_PENDING_MAX)
    {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "egress stream %uD: client too slow for a v1 bridge "
                      "without flow control", ctx->id);
        ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
    }
}


/*
 * Takes the response head out of the download bytes (*data, *len), passes
 * 1xx heads on unchanged and the final head rewritten for the browser's
 * hop. Head bytes are credited back at once: they sit in a bounded buffer.
 */

static ngx_int_t
ngx_stream_egress_response_head(ngx_stream_egress_ctx_t *ctx,
    const u_char **data, size_t *len)
{
    size_t                        used, size;
    ngx_uint_t                    keep;
    ngx_connection_t             *c;
    ngx_stream_egress_chunk_t    *ch;
    ngx_stream_egress_response_t *rs;

    c = ctx->session->connection;
    rs = &ctx->resp;

    if (rs->buf == NULL) {
        rs->cap = ngx_min(ngx_max(ctx->conf->max_header_size, 16384), 65536);
        rs->buf = ngx_palloc(c->pool, rs->cap);

        if (rs->buf == NULL) {
            return NGX_ERROR;
        }
    }

    while (*len && !rs->done) {

        used = ngx_stream_egress_response_feed(rs, *data, *len);
        *data += used;
        *len -= used;

        if (rs->overflow) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "response header larger than %uz bytes, passed on "
                          "unchanged", rs->cap);

            if (ngx_stream_egress_append(ctx, rs->buf, rs->len, 0) == NULL) {
                return NGX_ERROR;
            }

            ngx_stream_egress_grant(ctx, rs->len);
            rs->done = 1;
            rs->keep = 0;
            break;
        }

        if (rs->head_len == 0) {
            continue;
        }

        if (rs->interim) {
            if (ngx_stream_egress_append(ctx, rs->buf, rs->head_len, 0)
                == NULL)
            {
                return NGX_ERROR;
            }

            ngx_stream_egress_grant(ctx, rs->head_len);
            rs->len = 0;
            rs->head_len = 0;
            rs->interim = 0;
            continue;
        }

        size = ngx_stream_egress_response_rewrite_size(rs);

        ch = ngx_stream_egress_append(ctx, NULL, size, 0);
        if (ch == NULL) {
            return NGX_ERROR;
        }

        keep = ctx->req.keepalive && ctx->request_done && !ngx_exiting;

        ch->last = ngx_stream_egress_rewrite_response(rs, ctx->req.head, &keep,
                                                      ch->pos);
        ctx->out_bytes -= (ch->pos + size) - ch->last;

        ngx_stream_egress_grant(ctx, rs->head_len);

        rs->keep = keep;
        rs->counted = keep;
        rs->done = 1;

        if (rs->status) {
            ctx->status = rs->status;
        }
    }

    return NGX_OK;
}


/*
 * A browser that may reuse the connection gets exactly the body the head
 * declared: what the origin sends beyond it (or after broken chunked
 * framing) is dropped and the connection closes after this response.
 */

static void
ngx_stream_egress_response_limit(ngx_stream_egress_ctx_t *ctx,
    const u_char *data, size_t *len)
{
    size_t                         body;
    ngx_stream_egress_response_t  *rs;

    rs = &ctx->resp;

    body = ngx_stream_egress_response_body(rs, data, *len);

    if (body == *len) {
        return;
    }

    if (rs->keep) {
        ngx_log_error(NGX_LOG_WARN, ctx->session->connection->log, 0,
                      "egress stream %uD: the origin sent bytes %s; they "
                      "are dropped and the browser connection closes after "
                      "this response", ctx->id,
                      rs->body_error ? "that break its chunked framing"
                                     : "beyond the body its head declared");
        rs->keep = 0;
    }

    /* dropped bytes count as drained: the host gets its credit back */
    ngx_stream_egress_grant(ctx, *len - body);
    *len = body;
}


static void
ngx_stream_egress_reset_response(ngx_stream_egress_ctx_t *ctx)
{
    ngx_stream_egress_response_t  *rs;

    /* the head buffer is kept for the next request */

    rs = &ctx->resp;

    rs->len = 0;
    rs->head_len = 0;
    rs->status = 0;
    rs->interim = 0;
    rs->overflow = 0;
    rs->done = 0;
    rs->delimited = 0;
    rs->keep = 0;
    rs->counted = 0;
    rs->body_done = 0;
    rs->body_error = 0;
}


/* the host ended its side: close {half} (its write side) or close */

static void
ngx_stream_egress_relay_close(ngx_stream_egress_ctx_t *ctx, ngx_uint_t half)
{
    ngx_connection_t  *c;

    c = ctx->session->connection;

    if (ctx->state == NGX_STREAM_EGRESS_OPENING) {
        ngx_stream_egress_bridge_forget(ctx);
        ngx_stream_egress_respond(ctx, NGX_STREAM_BAD_GATEWAY,
                                  (u_char *) "the host agent closed the "
                                  "stream", sizeof("the host agent closed "
                                  "the stream") - 1);
        return;
    }

    if (ctx->state != NGX_STREAM_EGRESS_RELAY) {
        return;
    }

    if (half) {
        ctx->host_half = 1;

    } else {
        ctx->host_closed = 1;
        ngx_stream_egress_bridge_forget(ctx);
    }

    if (!ctx->req.connect && ctx->resp.len == 0 && !ctx->resp.done
        && ctx->out == NULL)
    {
        /* not a single byte of response: tell the browser why */
        ngx_stream_egress_bridge_forget(ctx);
        ngx_stream_egress_respond(ctx, NGX_STREAM_BAD_GATEWAY,
                                  (u_char *) "the origin closed the "
                                  "connection without a response",
                                  sizeof("the origin closed the connection "
                                         "without a response") - 1);
        return;
    }

    if (!ctx->req.connect) {
        /*
         * The origin finished its response (we asked for Connection:
         * close), so this stream is over; what the browser still has to
         * read is flushed first, then the next request may come.
         */
        if (ctx->id) {
            (void) ngx_stream_egress_bridge_send_close(ctx->id, 0);
            ngx_stream_egress_bridge_forget(ctx);
        }

        ctx->state = NGX_STREAM_EGRESS_DRAIN;
        c->log->action = "sending the response";

        if (ctx->out == NULL) {
            ngx_stream_egress_next_request(ctx);
        }

        return;
    }

    if (ctx->host_closed) {
        ctx->state = NGX_STREAM_EGRESS_DRAIN;
    }

    if (ctx->out == NULL) {
        ngx_stream_egress_after_flush(ctx);
    }
}


static void
ngx_stream_egress_relay_window(ngx_stream_egress_ctx_t *ctx,
    uint32_t increment)
{
    egress_error_t     err;
    ngx_connection_t  *c;

    c = ctx->session->connection;

    if (egress_flow_on_window(&ctx->flow, increment, &err) != 0) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0, "egress stream %uD: %s",
                      ctx->id, err.message);
        ngx_stream_egress_finalize(ctx, NGX_STREAM_BAD_GATEWAY);
        return;
    }

    if (ctx->state == NGX_STREAM_EGRESS_RELAY) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/* the bridge has room again */

static void
ngx_stream_egress_relay_resume(ngx_stream_egress_ctx_t *ctx)
{
    ngx_connection_t  *c;

    c = ctx->session->connection;

    if (ctx->state == NGX_STREAM_EGRESS_RELAY) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/* the bridge or the host agent went away; ctx is no longer in the table */

static void
ngx_stream_egress_relay_abort(ngx_stream_egress_ctx_t *ctx,
    ngx_str_t *reason)
{
    ngx_connection_t  *c;

    c = ctx->session->connection;

    ngx_log_error(NGX_LOG_INFO, c->log, 0, "egress stream aborted: %V",
                  reason);

    if (ctx->state == NGX_STREAM_EGRESS_OPENING
        || (ctx->state == NGX_STREAM_EGRESS_RELAY && !ctx->req.connect
            && ctx->resp.len == 0 && !ctx->resp.done && ctx->out == NULL))
    {
        ngx_stream_egress_respond(ctx, NGX_STREAM_SERVICE_UNAVAILABLE,
                                  reason->data, reason->len);
        return;
    }

    ngx_stream_egress_finalize(ctx, NGX_STREAM_BAD_GATEWAY);
}


/*
 * Moves browser bytes to the host while the stream has credit and the
 * bridge has room: the rewritten head first, then exactly the request body
 * (absolute-form) or everything (CONNECT).
 */

void
ngx_stream_egress_upload(ngx_stream_egress_ctx_t *ctx)
{
    u_char            *p;
    size_t             avail, room, n, burst;
    ssize_t            rn;
    ngx_int_t          rc;
    ngx_buf_t         *in;
    ngx_uint_t         from_hdr;
    ngx_connection_t  *c;

    c = ctx->session->connection;
    in = ctx->in;
    burst = 0;

    for ( ;; ) {

        if ((ctx->state != NGX_STREAM_EGRESS_RELAY
             && !(ctx->state == NGX_STREAM_EGRESS_OPENING && ctx->early))
            || ctx->id == 0)
        {
            return;
        }

        from_hdr = 0;

        if (ctx->hdr_pos < ctx->hdr_last) {
            p = ctx->hdr_pos;
            avail = ctx->hdr_last - ctx->hdr_pos;
            from_hdr = 1;

        } else if (!ctx->req.connect
                   && (ctx->request_done
                       || (!ctx->req.chunked && ctx->body_rest == 0)
                       || ctx->chunked.done))
        {
            /* the request is complete; later bytes are the next request */
            ctx->request_done = 1;
            return;

        } else if (in->pos < in->last) {
            p = in->pos;
            avail = in->last - in->pos;

            if (!ctx->req.connect && !ctx->req.chunked) {
                avail = ngx_min(avail, (size_t) ctx->body_rest);
            }

        } else {
            if (ctx->client_eof) {
                if (ctx->req.connect
                    && ctx->state == NGX_STREAM_EGRESS_OPENING)
                {
                    /* a half-close before open_ok abandons the open */
                    return;
                }

                if (ctx->req.connect) {
                    ngx_stream_egress_send_half(ctx);
                    return;
                }

                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "client closed the connection in the middle "
                              "of the request body");
                ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
                return;
            }

            if (burst >= NGX_STREAM_EGRESS_UPLOAD_BURST) {
                /* let other connections run */
                ngx_post_event(c->read, &ngx_posted_events);
                return;
            }

            in->pos = in->start;
            in->last = in->start;

            rn = c->recv(c, in->last, in->end - in->last);

            if (rn == NGX_AGAIN) {
                if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                    ngx_stream_egress_finalize(ctx,
                                              NGX_STREAM_INTERNAL_SERVER_ERROR);
                }

                return;
            }

            if (rn == NGX_ERROR) {
                ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
                return;
            }

            if (rn == 0) {
                ctx->client_eof = 1;
                continue;
            }

            in->last += rn;
            ngx_stream_egress_touch(ctx);
            continue;
        }

        room = ngx_stream_egress_bridge_room();

        if (room == 0) {
            ngx_stream_egress_bridge_wait(ctx);
            return;
        }

        room = ngx_min(room, egress_flow_send_room(&ctx->flow));

        if (room == 0) {
            /* a window frame will post the read event */
            return;
        }

        n = ngx_min(ngx_min(avail, room), EGRESS_DATA_CHUNK);

        if (!from_hdr && ctx->req.chunked) {
            n = ngx_stream_egress_chunked_parse(&ctx->chunked, p, n, &rc);

            if (rc == NGX_ERROR) {
                /*
                 * The head has gone out already: the stream ends here and
                 * nothing after the bad byte is read as a next request.
                 */
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "egress stream %uD: malformed chunked request "
                              "body: %s, stream closed", ctx->id,
                              ctx->chunked.error);
                ngx_stream_egress_bad_body(ctx, ctx->chunked.error);
                return;
            }
        }

        if (n && ngx_stream_egress_bridge_send_data(ctx, p, n) != NGX_OK) {
            ngx_stream_egress_finalize(ctx, NGX_STREAM_BAD_GATEWAY);
            return;
        }

        egress_flow_on_sent(&ctx->flow, n);
        burst += n;

        if (from_hdr) {
            ctx->hdr_pos += n;

        } else {
            in->pos += n;

            if (!ctx->req.connect && !ctx->req.chunked) {
                ctx->body_rest -= n;
            }
        }
    }
}


/* browser EOF on a tunnel: our write side is done */

static void
ngx_stream_egress_send_half(ngx_stream_egress_ctx_t *ctx)
{
    if (ctx->sent_half || ctx->id == 0) {
        return;
    }

    ctx->sent_half = 1;

    if (ngx_stream_egress_bridge_version() != EGRESS_PROTO_V2) {
        /* v1 has no half-close: the stream simply ends */
        (void) ngx_stream_egress_bridge_send_close(ctx->id, 0);
        ngx_stream_egress_bridge_forget(ctx);
        ctx->state = NGX_STREAM_EGRESS_DRAIN;

        if (ctx->out == NULL) {
            ngx_stream_egress_after_flush(ctx);
        }

        return;
    }

    (void) ngx_stream_egress_bridge_send_close(ctx->id, 1);

    if (ctx->host_half && ctx->out == NULL) {
        ngx_stream_egress_after_flush(ctx);
    }
}


/* everything pending reached the browser: take the next step */

void
ngx_stream_egress_after_flush(ngx_stream_egress_ctx_t *ctx)
{
    ngx_connection_t  *c;

    c = ctx->session->connection;

    switch (ctx->state) {

    case NGX_STREAM_EGRESS_RESPOND:
        ngx_stream_egress_linger(ctx);
        return;

    case NGX_STREAM_EGRESS_RELAY:
        if (ctx->req.connect && ctx->host_half && !ctx->shut_client) {
            /* the origin's EOF, passed on after its last byte */
            ctx->shut_client = 1;

            if (ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1) {
                ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
                return;
            }
        }

        if (ctx->host_half && ctx->sent_half) {
            /* both directions done */
            (void) ngx_stream_egress_bridge_send_close(ctx->id, 0);
            ngx_stream_egress_bridge_forget(ctx);
            ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
        }

        return;

    case NGX_STREAM_EGRESS_DRAIN:
        if (ctx->req.connect) {
            ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
            return;
        }

        ngx_stream_egress_next_request(ctx);
        return;

    default:
        return;
    }
}


/*
 * An absolute-form exchange is over and flushed. The browser may reuse the
 * connection only if the response was delimited by its own framing, the
 * request body was fully consumed and nobody asked for close; otherwise
 * closing is the only way to tell the browser the response ended.
 */

static void
ngx_stream_egress_next_request(ngx_stream_egress_ctx_t *ctx)
{
    ngx_uint_t         keep;
    ngx_connection_t  *c;

    c = ctx->session->connection;

    keep = ctx->resp.done && ctx->resp.keep && ctx->request_done
           && !ctx->client_eof && !ngx_exiting && !ngx_terminate;

    if (!keep) {
        ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "egress: keep-alive, request %ui done", ctx->requests);

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    ctx->state = NGX_STREAM_EGRESS_HEAD;
    ctx->request_done = 0;
    ctx->sent_half = 0;
    ctx->host_half = 0;
    ctx->host_closed = 0;
    ctx->body_rest = 0;
    ctx->hdr_pos = ctx->hdr;
    ctx->hdr_last = ctx->hdr;
    ngx_stream_egress_reset_response(ctx);

    c->log->action = "reading proxy request";

    ngx_add_timer(c->read, ctx->conf->header_timeout);

    /* the connection's read handler takes the next head, if any is there */
    c->read->handler(c->read);
}
