
/*
 * One browser connection on an "egress_proxy on" server.
 *
 *   HEAD --parsed--> OPENING --open_ok--> RELAY --host done--> DRAIN
 *     ^                 |  error/timeout     |                  |
 *     |                 v                    v                  |
 *     |              RESPOND --flushed--> LINGER --> close      |
 *     +----------- next request on a keep-alive connection -----+
 *
 * Upload (browser -> host): read only while the stream has send credit and
 * the bridge has room; absolute-form requests are framed (Content-Length or
 * chunked) so that a keep-alive client's next request is never sent on the
 * previous stream. Download (host -> browser): written straight from the
 * bridge's message when the socket takes it, otherwise kept in a chain of
 * heap chunks; credit is granted back only for bytes the socket accepted,
 * so a stream never holds more than its window.
 */


#include "ngx_stream_egress_module.h"


#define NGX_STREAM_EGRESS_UPLOAD_BURST   (512 * 1024)
#define NGX_STREAM_EGRESS_LINGER_TIME    5000
#define NGX_STREAM_EGRESS_LINGER_MAX     (1024 * 1024)
#define NGX_STREAM_EGRESS_IDLE_TIMEOUT   600000

#define NGX_STREAM_EGRESS_HTTPS_REFUSED                                      \
    "https:// URLs are not proxied in absolute form (they would travel "     \
    "unencrypted): use CONNECT host:443, as browsers do"


static void ngx_stream_egress_read_handler(ngx_event_t *rev);
static void ngx_stream_egress_write_handler(ngx_event_t *wev);
static void ngx_stream_egress_read_head(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_start_request(ngx_stream_egress_ctx_t *ctx,
    u_char *end);
static void ngx_stream_egress_upload(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_bad_body(ngx_stream_egress_ctx_t *ctx,
    const char *error);
static ngx_stream_egress_chunk_t *ngx_stream_egress_append(
    ngx_stream_egress_ctx_t *ctx, const u_char *data, size_t len,
    ngx_uint_t credit);
static ngx_int_t ngx_stream_egress_response_head(ngx_stream_egress_ctx_t *ctx,
    const u_char **data, size_t *len);
static void ngx_stream_egress_reset_response(ngx_stream_egress_ctx_t *ctx);
static ngx_int_t ngx_stream_egress_flush(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_after_flush(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_grant(ngx_stream_egress_ctx_t *ctx, size_t n);
static void ngx_stream_egress_send_half(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_next_request(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_respond(ngx_stream_egress_ctx_t *ctx,
    ngx_uint_t status, u_char *text, size_t len);
static void ngx_stream_egress_linger(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_open_timeout(ngx_event_t *ev);
static void ngx_stream_egress_release(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_cleanup(void *data);
static void ngx_stream_egress_finalize(ngx_stream_egress_ctx_t *ctx,
    ngx_uint_t rc);
static void ngx_stream_egress_touch(ngx_stream_egress_ctx_t *ctx);
static u_char *ngx_stream_egress_log_error(ngx_log_t *log, u_char *buf,
    size_t len);


/* the stream events the bridge delivers (see ngx_stream_egress_module.h) */

static ngx_stream_egress_stream_ops_t  ngx_stream_egress_proxy_ops = {
    ngx_stream_egress_proxy_open_ok,
    ngx_stream_egress_proxy_open_error,
    ngx_stream_egress_proxy_data,
    ngx_stream_egress_proxy_close,
    ngx_stream_egress_proxy_window,
    ngx_stream_egress_proxy_abort,
    ngx_stream_egress_proxy_resume
};


void
ngx_stream_egress_proxy_handler(ngx_stream_session_t *s)
{
    size_t                          size;
    ngx_connection_t               *c;
    ngx_pool_cleanup_t             *cln;
    ngx_stream_egress_ctx_t        *ctx;
    ngx_stream_egress_srv_conf_t   *escf;

    c = s->connection;

    escf = ngx_stream_get_module_srv_conf(s, ngx_stream_egress_module);

    ctx = ngx_pcalloc(c->pool, sizeof(ngx_stream_egress_ctx_t));
    if (ctx == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->session = s;
    ctx->conf = escf;
    ctx->state = NGX_STREAM_EGRESS_HEAD;

    size = ngx_max(escf->max_header_size, EGRESS_DATA_CHUNK);

    ctx->in = ngx_create_temp_buf(c->pool, size);
    if (ctx->in == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_stream_egress_cleanup;
    cln->data = ctx;

    ctx->open_timer.handler = ngx_stream_egress_open_timeout;
    ctx->open_timer.data = ctx;
    ctx->open_timer.log = c->log;

    ngx_stream_set_ctx(s, ctx, ngx_stream_egress_module);

    s->log_handler = ngx_stream_egress_log_error;

    /* bytes a preread phase may have consumed already */

    if (c->buffer && c->buffer->pos < c->buffer->last) {
        size = ngx_min((size_t) (c->buffer->last - c->buffer->pos), size);
        ctx->in->last = ngx_cpymem(ctx->in->last, c->buffer->pos, size);
        c->buffer->pos += size;
    }

    c->read->handler = ngx_stream_egress_read_handler;
    c->write->handler = ngx_stream_egress_write_handler;

    c->log->action = "reading proxy request";

    ngx_add_timer(c->read, escf->header_timeout);

    ngx_stream_egress_read_head(ctx);
}


static void
ngx_stream_egress_read_handler(ngx_event_t *rev)
{
    ngx_connection_t         *c;
    ngx_stream_session_t     *s;
    ngx_stream_egress_ctx_t  *ctx;

    c = rev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_egress_module);

    if (c->close) {
        /* worker shutdown: idle keep-alive connection */
        ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
        return;
    }

    if (rev->timedout) {
        rev->timedout = 0;

        switch (ctx->state) {

        case NGX_STREAM_EGRESS_HEAD:
            if (ctx->in->last > ctx->in->pos || ctx->requests == 0) {
                ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                              "client timed out sending the proxy request");
                ngx_stream_egress_respond(ctx,
                                          NGX_STREAM_EGRESS_REQUEST_TIMEOUT,
                                          (u_char *) "request header timeout",
                                          sizeof("request header timeout")
                                          - 1);
                return;
            }

            /* an idle keep-alive connection */
            ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
            return;

        case NGX_STREAM_EGRESS_RELAY:
        case NGX_STREAM_EGRESS_DRAIN:
            ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                          "egress stream idle for too long");
            ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
            return;

        default:
            ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
            return;
        }
    }

    switch (ctx->state) {

    case NGX_STREAM_EGRESS_HEAD:
        ngx_stream_egress_read_head(ctx);
        return;

    case NGX_STREAM_EGRESS_RELAY:
        ngx_stream_egress_upload(ctx);
        return;

    case NGX_STREAM_EGRESS_LINGER:
        ngx_stream_egress_linger(ctx);
        return;

    default:
        /* not reading now: the data waits in the socket */
        return;
    }
}


static void
ngx_stream_egress_write_handler(ngx_event_t *wev)
{
    ngx_connection_t         *c;
    ngx_stream_session_t     *s;
    ngx_stream_egress_ctx_t  *ctx;

    c = wev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_egress_module);

    if (c->close) {
        ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
        return;
    }

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out reading the response");
        ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
        return;
    }

    if (ngx_stream_egress_flush(ctx) != NGX_OK) {
        return;
    }

    ngx_stream_egress_after_flush(ctx);
}


static void
ngx_stream_egress_read_head(ngx_stream_egress_ctx_t *ctx)
{
    u_char            *e;
    ssize_t            n;
    ngx_buf_t         *in;
    ngx_connection_t  *c;

    c = ctx->session->connection;
    in = ctx->in;

    for ( ;; ) {

        /* RFC 9112 2.2: ignore empty lines before a request line */

        while (in->pos < in->last && (*in->pos == CR || *in->pos == LF)) {
            in->pos++;
        }

        if (in->pos == in->last) {
            in->pos = in->start;
            in->last = in->start;
        }

        e = ngx_stream_egress_find_head_end(in->pos, in->last);

        if (e && (size_t) (e - in->pos) <= ctx->conf->max_header_size) {
            c->idle = 0;

            if (c->read->timer_set) {
                ngx_del_timer(c->read);
            }

            ngx_stream_egress_start_request(ctx, e);
            return;
        }

        if (e || (size_t) (in->last - in->pos) >= ctx->conf->max_header_size)
        {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "proxy request header larger than %uz bytes",
                          ctx->conf->max_header_size);
            ngx_stream_egress_respond(ctx,
                                      NGX_STREAM_EGRESS_HEADER_TOO_LARGE,
                                      (u_char *) "request header too large",
                                      sizeof("request header too large") - 1);
            return;
        }

        if (in->last == in->end) {
            /* leftover of a previous request: make room */
            in->last = ngx_movemem(in->start, in->pos, in->last - in->pos);
            in->pos = in->start;
        }

        if (ctx->client_eof) {
            if (in->last > in->pos) {
                ngx_stream_egress_respond(ctx, NGX_STREAM_BAD_REQUEST,
                                          (u_char *) "incomplete request",
                                          sizeof("incomplete request") - 1);
                return;
            }

            ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
            return;
        }

        n = c->recv(c, in->last, in->end - in->last);

        if (n == NGX_AGAIN) {
            if (!c->read->timer_set) {
                ngx_add_timer(c->read, ctx->conf->header_timeout);
            }

            /* idle between requests: graceful shutdown may close us */
            c->idle = (ctx->requests > 0 && in->last == in->pos);

            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_stream_egress_finalize(ctx,
                                           NGX_STREAM_INTERNAL_SERVER_ERROR);
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_stream_egress_finalize(ctx, NGX_STREAM_OK);
            return;
        }

        if (n == 0) {
            ctx->client_eof = 1;
            continue;
        }

        in->last += n;
    }
}


static void
ngx_stream_egress_start_request(ngx_stream_egress_ctx_t *ctx, u_char *end)
{
    u_char                       *p;
    size_t                        size;
    ngx_int_t                     rc;
    ngx_str_t                     reason;
    ngx_connection_t             *c;
    ngx_stream_egress_chunked_t   ck;
    ngx_stream_egress_request_t  *r;

    c = ctx->session->connection;
    r = &ctx->req;

    if (ngx_stream_egress_parse_request(r, ctx->in->pos, end) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "bad proxy request: %s", r->error);
        ngx_stream_egress_respond(ctx, NGX_STREAM_BAD_REQUEST,
                                  (u_char *) r->error, ngx_strlen(r->error));
        return;
    }

    ctx->requests++;

    if (r->host_kind == EGRESS_HOST_IPV6) {
        p = ngx_sprintf(ctx->target, "[%*s]:%d", r->host_len, r->host,
                        (int) r->port);

    } else {
        p = ngx_sprintf(ctx->target, "%*s:%d", r->host_len, r->host,
                        (int) r->port);
    }

    ctx->target_len = p - ctx->target;

    if (r->https && !ctx->conf->absolute_https_cleartext) {
        /* it would leave unencrypted, whatever the browser believes */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "bad proxy request: absolute-form https:// URL "
                      "(only CONNECT is allowed for https)");
        ngx_stream_egress_respond(ctx, NGX_STREAM_BAD_REQUEST,
                                  (u_char *) NGX_STREAM_EGRESS_HTTPS_REFUSED,
                                  sizeof(NGX_STREAM_EGRESS_HTTPS_REFUSED)
                                  - 1);
        return;
    }

    if (r->chunked) {
        /*
         * Body bytes that came with the head are checked before anything
         * is forwarded, so that known-bad framing never reaches the origin.
         */
        ngx_memzero(&ck, sizeof(ngx_stream_egress_chunked_t));
        (void) ngx_stream_egress_chunked_parse(&ck, end, ctx->in->last - end,
                                               &rc);

        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "bad proxy request: malformed chunked request "
                          "body: %s", ck.error);
            ngx_stream_egress_bad_body(ctx, ck.error);
            return;
        }
    }

    if (!r->connect) {
        size = ngx_stream_egress_rewrite_size(r, ctx->in->pos, end);

        if (size > ctx->hdr_cap) {
            if (ctx->hdr) {
                ngx_free(ctx->hdr);
            }

            ctx->hdr = ngx_alloc(size, c->log);
            if (ctx->hdr == NULL) {
                ctx->hdr_cap = 0;
                ngx_stream_egress_finalize(ctx,
                                           NGX_STREAM_INTERNAL_SERVER_ERROR);
                return;
            }

            ctx->hdr_cap = size;
        }

        ctx->hdr_pos = ctx->hdr;
        ctx->hdr_last = ngx_stream_egress_rewrite_request(r, ctx->in->pos,
                                                          end, ctx->hdr);

        ctx->body_rest = r->chunked ? 0
                         : (r->content_length > 0 ? r->content_length : 0);
        ngx_memzero(&ctx->chunked, sizeof(ngx_stream_egress_chunked_t));
    }

    ctx->in->pos = end;

    if (ngx_stream_egress_bridge_available(&reason) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0, "egress unavailable: %V",
                      &reason);
        ngx_stream_egress_respond(ctx, NGX_STREAM_SERVICE_UNAVAILABLE,
                                  reason.data, reason.len);
        return;
    }

    if (ngx_stream_egress_bridge_open(ctx, &ngx_stream_egress_proxy_ops)
        != NGX_OK)
    {
        ngx_stream_egress_respond(ctx, NGX_STREAM_SERVICE_UNAVAILABLE,
                                  (u_char *) "egress bridge error",
                                  sizeof("egress bridge error") - 1);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0, "egress stream %uD: %V %*s",
                  ctx->id, &r->method, ctx->target_len, ctx->target);

    c->log->action = "opening egress stream";

    ctx->state = NGX_STREAM_EGRESS_OPENING;

    ngx_add_timer(&ctx->open_timer, ctx->conf->open_timeout);
}


void
ngx_stream_egress_proxy_open_ok(ngx_stream_egress_ctx_t *ctx,
    uint32_t window)
{
    static u_char  established[] = "HTTP/1.1 200 Connection Established"
                                   CRLF CRLF;

    ngx_connection_t  *c;

    c = ctx->session->connection;

    if (ctx->open_timer.timer_set) {
        ngx_del_timer(&ctx->open_timer);
    }

    if (ngx_stream_egress_bridge_version() == EGRESS_PROTO_V2) {
        egress_flow_init(&ctx->flow, window ? window : EGRESS_INITIAL_WINDOW,
                         EGRESS_INITIAL_WINDOW);

    } else {
        egress_flow_init_unlimited(&ctx->flow);
    }

    ctx->state = NGX_STREAM_EGRESS_RELAY;
    c->log->action = "relaying egress stream";

    ngx_stream_egress_reset_response(ctx);

    if (ctx->req.connect) {
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


void
ngx_stream_egress_proxy_open_error(ngx_stream_egress_ctx_t *ctx,
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
        ngx_stream_egress_proxy_close(ctx, 0);
        return;
    }

    if (message->len >= 11 && ngx_strncmp(message->data, "not allowed", 11)
                              == 0)
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


void
ngx_stream_egress_proxy_data(ngx_stream_egress_ctx_t *ctx,
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
    size_t                        used;
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

        ch = ngx_stream_egress_append(ctx, NULL, rs->head_len + 64, 0);
        if (ch == NULL) {
            return NGX_ERROR;
        }

        keep = ctx->req.keepalive && ctx->request_done && !ngx_exiting;

        ch->last = ngx_stream_egress_rewrite_response(rs, ctx->req.head, &keep,
                                                      ch->pos);
        ctx->out_bytes -= (ch->pos + rs->head_len + 64) - ch->last;

        ngx_stream_egress_grant(ctx, rs->head_len);

        rs->keep = keep;
        rs->done = 1;

        if (rs->status) {
            ctx->status = rs->status;
        }
    }

    return NGX_OK;
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
}


/* the host ended its side: close {half} (its write side) or close */

void
ngx_stream_egress_proxy_close(ngx_stream_egress_ctx_t *ctx, ngx_uint_t half)
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


void
ngx_stream_egress_proxy_window(ngx_stream_egress_ctx_t *ctx,
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

void
ngx_stream_egress_proxy_resume(ngx_stream_egress_ctx_t *ctx)
{
    ngx_connection_t  *c;

    c = ctx->session->connection;

    if (ctx->state == NGX_STREAM_EGRESS_RELAY) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/* the bridge or the host agent went away; ctx is no longer in the table */

void
ngx_stream_egress_proxy_abort(ngx_stream_egress_ctx_t *ctx,
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

static void
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

        if (ctx->state != NGX_STREAM_EGRESS_RELAY || ctx->id == 0) {
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


/*
 * Malformed request body framing: 400 while the browser has no response
 * byte yet, otherwise the connection closes; either way the stream ends.
 */

static void
ngx_stream_egress_bad_body(ngx_stream_egress_ctx_t *ctx, const char *error)
{
    u_char  *p;
    u_char   text[128];

    if (ctx->resp.len || ctx->resp.done || ctx->out) {
        ngx_stream_egress_finalize(ctx, NGX_STREAM_BAD_REQUEST);
        return;
    }

    p = ngx_snprintf(text, sizeof(text), "malformed chunked request body: %s",
                     error);

    ngx_stream_egress_respond(ctx, NGX_STREAM_BAD_REQUEST, text, p - text);
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


/*
 * Queues len bytes for the browser (data NULL: the caller fills the chunk
 * and sets its last). credit: the bytes came from the stream's window and
 * are granted back as they are written.
 */

static ngx_stream_egress_chunk_t *
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

static ngx_int_t
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


/* everything pending reached the browser: take the next step */

static void
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


static void
ngx_stream_egress_grant(ngx_stream_egress_ctx_t *ctx, size_t n)
{
    uint32_t  inc;

    if (ctx->id == 0 || ctx->flow.unlimited) {
        return;
    }

    inc = egress_flow_on_drained(&ctx->flow, n);

    if (inc) {
        (void) ngx_stream_egress_bridge_send_window(ctx->id, inc);
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

    ngx_stream_egress_read_head(ctx);
}


static void
ngx_stream_egress_respond(ngx_stream_egress_ctx_t *ctx, ngx_uint_t status,
    u_char *text, size_t len)
{
    u_char            *p, *last;
    const char        *phrase;
    ngx_connection_t  *c;
    u_char             buf[1024];

    c = ctx->session->connection;

    if (ctx->open_timer.timer_set) {
        ngx_del_timer(&ctx->open_timer);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (ctx->id) {
        (void) ngx_stream_egress_bridge_send_close(ctx->id, 0);
        ngx_stream_egress_bridge_forget(ctx);
    }

    switch (status) {
    case NGX_STREAM_BAD_REQUEST:
        phrase = "Bad Request";
        break;
    case NGX_STREAM_FORBIDDEN:
        phrase = "Forbidden";
        break;
    case NGX_STREAM_EGRESS_REQUEST_TIMEOUT:
        phrase = "Request Timeout";
        break;
    case NGX_STREAM_EGRESS_HEADER_TOO_LARGE:
        phrase = "Request Header Fields Too Large";
        break;
    case NGX_STREAM_BAD_GATEWAY:
        phrase = "Bad Gateway";
        break;
    case NGX_STREAM_SERVICE_UNAVAILABLE:
        phrase = "Service Unavailable";
        break;
    case NGX_STREAM_EGRESS_GATEWAY_TIMEOUT:
        phrase = "Gateway Timeout";
        break;
    default:
        phrase = "Internal Server Error";
        break;
    }

    len = ngx_min(len, 512);

    p = ngx_snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %ui %s" CRLF
                     "Content-Type: text/plain; charset=utf-8" CRLF
                     "Content-Length: %uz" CRLF
                     "Connection: close" CRLF
                     "Proxy-Agent: ngx_stream_egress_module" CRLF CRLF,
                     status, phrase, len + 1);

    last = ngx_cpymem(p, text, len);

    /* one line of plain text, whatever the host agent sent */

    for ( /* void */ ; p < last; p++) {
        if (*p < ' ' || *p == 0x7f) {
            *p = ' ';
        }
    }

    *last++ = LF;

    ctx->status = status;
    ctx->state = NGX_STREAM_EGRESS_RESPOND;
    c->log->action = "sending the proxy response";

    if (ngx_stream_egress_append(ctx, buf, last - buf, 0) == NULL) {
        ngx_stream_egress_finalize(ctx, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_add_timer(c->write, ctx->conf->header_timeout);

    if (ngx_stream_egress_flush(ctx) != NGX_OK) {
        return;
    }

    ngx_stream_egress_linger(ctx);
}


/*
 * After our own response: half-close, then read and discard what the
 * client still sends for a while, so that closing with unread data does
 * not reset the connection before the client read the response.
 */

static void
ngx_stream_egress_linger(ngx_stream_egress_ctx_t *ctx)
{
    ssize_t            n;
    ngx_buf_t         *in;
    ngx_connection_t  *c;

    c = ctx->session->connection;
    in = ctx->in;

    if (ctx->state != NGX_STREAM_EGRESS_LINGER) {
        ctx->state = NGX_STREAM_EGRESS_LINGER;
        c->log->action = "closing";

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        if (ctx->client_eof
            || ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1)
        {
            ngx_stream_egress_finalize(ctx, ctx->status);
            return;
        }

        ngx_add_timer(c->read, NGX_STREAM_EGRESS_LINGER_TIME);
    }

    for ( ;; ) {
        n = c->recv(c, in->start, in->end - in->start);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_stream_egress_finalize(ctx, ctx->status);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_stream_egress_finalize(ctx, ctx->status);
            return;
        }

        ctx->lingered += n;

        if (ctx->lingered > NGX_STREAM_EGRESS_LINGER_MAX) {
            ngx_stream_egress_finalize(ctx, ctx->status);
            return;
        }
    }
}


static void
ngx_stream_egress_open_timeout(ngx_event_t *ev)
{
    u_char                   *p;
    ngx_stream_egress_ctx_t  *ctx;
    u_char                    text[128];

    ctx = ev->data;

    ngx_log_error(NGX_LOG_INFO, ctx->session->connection->log, 0,
                  "egress stream %uD: no answer from the host agent",
                  ctx->id);

    p = ngx_snprintf(text, sizeof(text), "no answer from the host agent "
                     "within %M ms", ctx->conf->open_timeout);

    ngx_stream_egress_respond(ctx, NGX_STREAM_EGRESS_GATEWAY_TIMEOUT, text,
                              p - text);
}


/* keeps an active stream's idle timer (and the worker, on reload) alive */

static void
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


static void
ngx_stream_egress_cleanup(void *data)
{
    ngx_stream_egress_ctx_t  *ctx = data;

    ngx_stream_egress_release(ctx);
}


static void
ngx_stream_egress_finalize(ngx_stream_egress_ctx_t *ctx, ngx_uint_t rc)
{
    if (ctx->finalizing) {
        return;
    }

    ctx->finalizing = 1;

    ngx_stream_egress_release(ctx);

    ngx_stream_finalize_session(ctx->session, rc);
}


static u_char *
ngx_stream_egress_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                   *p;
    ngx_stream_session_t     *s;
    ngx_stream_egress_ctx_t  *ctx;

    s = log->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_egress_module);

    p = buf;

    if (ctx == NULL) {
        return p;
    }

    if (ctx->last_id) {
        p = ngx_snprintf(p, len, ", egress stream: %uD", ctx->last_id);
        len -= p - buf;
        buf = p;
    }

    if (ctx->target_len) {
        p = ngx_snprintf(p, len, ", target: %*s", ctx->target_len,
                         ctx->target);
    }

    return p;
}
