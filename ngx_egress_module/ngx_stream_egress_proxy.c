
/*
 * One browser connection on an "egress_proxy on" server: its event
 * handlers, the proxy request head (read, parsed, checked) and the start
 * of its egress stream. ngx_stream_egress_proxy.h names the other files.
 *
 *   HEAD --parsed--> OPENING --open_ok--> RELAY --host done--> DRAIN
 *     ^                 |  error/timeout     |                  |
 *     |                 v                    v                  |
 *     |              RESPOND --flushed--> LINGER --> close      |
 *     +----------- next request on a keep-alive connection -----+
 */


#include "ngx_stream_egress_proxy.h"


#define NGX_STREAM_EGRESS_HTTPS_REFUSED                                      \
    "https:// URLs are not proxied in absolute form (they would travel "     \
    "unencrypted): use CONNECT host:443, as browsers do"


static void ngx_stream_egress_read_handler(ngx_event_t *rev);
static void ngx_stream_egress_write_handler(ngx_event_t *wev);
static void ngx_stream_egress_read_head(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_start_request(ngx_stream_egress_ctx_t *ctx,
    u_char *end);
static void ngx_stream_egress_start_early(ngx_stream_egress_ctx_t *ctx);
static void ngx_stream_egress_open_timeout(ngx_event_t *ev);
static u_char *ngx_stream_egress_log_error(ngx_log_t *log, u_char *buf,
    size_t len);


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

    case NGX_STREAM_EGRESS_OPENING:
        if (ctx->early) {
            ngx_stream_egress_upload(ctx);
        }

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

    if (ngx_stream_egress_bridge_open(ctx, &ngx_stream_egress_relay_ops)
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

    ngx_stream_egress_start_early(ctx);
}


/*
 * Early data (docs/protocol.md): on a v2 bridge the request goes out right
 * behind open, within the initial window the host's receive window already
 * allows; the host agent holds it until its connection is up. v1 legs wait
 * for open_ok as before. No response byte has gone out, so a failed open
 * still gets its 403/502/504 page; except with "connect", where the 200 goes
 * out at once and a refused destination looks like a closed connection.
 */

static void
ngx_stream_egress_start_early(ngx_stream_egress_ctx_t *ctx)
{
    static u_char  established[] = "HTTP/1.1 200 Connection Established"
                                   CRLF CRLF;

    ngx_connection_t  *c;

    c = ctx->session->connection;

    ctx->early = 0;

    if (ngx_stream_egress_bridge_version() != EGRESS_PROTO_V2
        || ctx->conf->early_data == NGX_STREAM_EGRESS_EARLY_OFF
        || (ctx->req.connect
            && ctx->conf->early_data != NGX_STREAM_EGRESS_EARLY_CONNECT))
    {
        return;
    }

    ctx->early = 1;

    /* the previous stream of a keep-alive connection may hold a share */
    egress_flow_release(&ctx->flow);
    egress_flow_init(&ctx->flow, EGRESS_INITIAL_WINDOW, EGRESS_INITIAL_WINDOW);

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

    ngx_post_event(c->read, &ngx_posted_events);

    /* the open waits for the request bytes: one segment, not two */
    ngx_stream_egress_bridge_send_later();
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
