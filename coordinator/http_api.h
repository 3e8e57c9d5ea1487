/*
 * http_api.h: the REST API under /v1 (http_api.c), free of lws so that
 * fuzz/fuzz_http_api.c can call it without a socket. server.c fills an
 * api_request_t from the connection and writes the api_response_t back.
 */

#ifndef HTTP_API_H
#define HTTP_API_H

#include <stddef.h>

#include <jansson.h>

typedef struct {
    int method;       /* LWSHUMETH_* */
    const char *path; /* without the query */
    const char *auth; /* the Authorization header, NULL when absent or unreadable */
    const char *body; /* body_len bytes, not NUL-terminated; NULL when empty */
    size_t body_len;
} api_request_t;

typedef struct {
    int status;
    json_t *json; /* the JSON body (owned), or NULL with text */
    char *text;   /* a non-JSON body (owned; /metrics) */
    size_t text_len;
    const char *ctype; /* of text */
} api_response_t;

/* The request framing headers lws leaves to us. */
typedef struct {
    const char *content_length; /* the value; NULL when absent or unreadable */
    int content_length_count;   /* Content-Length header lines (0 = absent) */
    int transfer_encoding;      /* any Transfer-Encoding header at all */
} http_framing_t;

/* Checks the framing: 0 with *len (the body length, 0 for none), or the
 * status to refuse with (400, 413) and *error, *message set; a refused
 * request's connection must be closed, since its body cannot be skipped. */
int http_framing_check(const http_framing_t *f, size_t *len, const char **error,
                       const char **message);
/* Handles one REST request (not /portal): fills *out, returns its status. */
int http_api_handle(const api_request_t *rq, api_response_t *out);
void api_response_free(api_response_t *r);
/* 1 when the path belongs to the portal (portal_handle, which needs the wsi). */
int http_is_portal_path(const char *path);

#endif /* HTTP_API_H */
