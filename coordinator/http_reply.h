/*
 * http_reply.h: writing HTTP responses on an lws connection.
 */

#ifndef HTTP_REPLY_H
#define HTTP_REPLY_H

#include <stddef.h>

#include <libwebsockets.h>

/* Writes the response but leaves the transaction to the caller (upgrade refusals). */
int http_write_response(struct lws *wsi, int status, const char *ctype, const char *body,
                        size_t len);
/* The same with extra headers: NULL-terminated {"name:", "value", ...}. */
int http_write_response_hdrs(struct lws *wsi, int status, const char *ctype,
                             const char *const *hdrs, const char *body, size_t len);
/* Ends the transaction after a written response; returns what the callback returns. */
int http_finish(struct lws *wsi, int rc);

#endif /* HTTP_REPLY_H */
