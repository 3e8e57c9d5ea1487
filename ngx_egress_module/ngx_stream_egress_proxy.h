
/*
 * The proxy's insides, shared by the files that make one browser
 * connection; the rest of the module knows only
 * ngx_stream_egress_proxy_handler (ngx_stream_egress_module.h).
 *
 *   ngx_stream_egress_proxy.c    the connection's event handlers, the
 *                                proxy request head, the stream's start
 *   ngx_stream_egress_relay.c    the open stream: the bridge's events
 *                                (ngx_stream_egress_relay_ops), download,
 *                                upload, drain, keep-alive
 *   ngx_stream_egress_respond.c  our own 4xx/5xx answers, lingering close
 *   ngx_stream_egress_browser.c  bytes waiting for the browser, credit
 *                                back, idle timer, finalize
 *
 * Calls go down this list only: proxy.c uses the three others, relay.c
 * uses respond.c and browser.c, respond.c uses browser.c. A keep-alive
 * connection's next head is read through the connection's read handler.
 */


#ifndef _NGX_STREAM_EGRESS_PROXY_H_INCLUDED_
#define _NGX_STREAM_EGRESS_PROXY_H_INCLUDED_


#include "ngx_stream_egress_module.h"


/* ngx_stream_egress_relay.c */

extern ngx_stream_egress_stream_ops_t  ngx_stream_egress_relay_ops;

void ngx_stream_egress_upload(ngx_stream_egress_ctx_t *ctx);
void ngx_stream_egress_after_flush(ngx_stream_egress_ctx_t *ctx);


/* ngx_stream_egress_respond.c */

void ngx_stream_egress_respond(ngx_stream_egress_ctx_t *ctx,
    ngx_uint_t status, u_char *text, size_t len);
void ngx_stream_egress_bad_body(ngx_stream_egress_ctx_t *ctx,
    const char *error);
void ngx_stream_egress_linger(ngx_stream_egress_ctx_t *ctx);


/* ngx_stream_egress_browser.c */

ngx_stream_egress_chunk_t *ngx_stream_egress_append(
    ngx_stream_egress_ctx_t *ctx, const u_char *data, size_t len,
    ngx_uint_t credit);
ngx_int_t ngx_stream_egress_flush(ngx_stream_egress_ctx_t *ctx);
void ngx_stream_egress_grant(ngx_stream_egress_ctx_t *ctx, size_t n);
void ngx_stream_egress_touch(ngx_stream_egress_ctx_t *ctx);
void ngx_stream_egress_cleanup(void *data);
void ngx_stream_egress_finalize(ngx_stream_egress_ctx_t *ctx, ngx_uint_t rc);


#endif /* _NGX_STREAM_EGRESS_PROXY_H_INCLUDED_ */
