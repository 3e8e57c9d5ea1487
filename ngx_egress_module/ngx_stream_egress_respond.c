
/*
 * The module's own answers to the browser (400, 403, 408, 431, 502, 503,
 * 504 and 500) with a one-line plain-text reason, and the lingering close
 * that follows each of them.
 */


#include "ngx_stream_egress_proxy.h"


#define NGX_STREAM_EGRESS_LINGER_TIME    5000
#define NGX_STREAM_EGRESS_LINGER_MAX     (1024 * 1024)


void
ngx_stream_egress_respond(ngx_stream_egress_ctx_t *ctx, ngx_uint_t status,
    u_char *text, size_t len)
{
    u_char            *p, *last;
    const char        *phrase;
    ngx_connection_t  *c;
    u_char             buf[1024];

    c = ctx->session->connection;

    if (ctx->early && ctx->req.connect) {
        /* "200" went out already (egress_early_data connect): no page */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "egress tunnel answered early ends: %*s", len, text);
        ngx_stream_egress_finalize(ctx, status);
        return;
    }

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
 * Malformed request body framing: 400 while the browser has no response
 * byte yet, otherwise the connection closes; either way the stream ends.
 */

void
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


/*
 * After our own response: half-close, then read and discard what the
 * client still sends for a while, so that closing with unread data does
 * not reset the connection before the client read the response.
 */

void
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
