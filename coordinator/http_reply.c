/*
 * http_reply.c: writing an HTTP response on an lws connection (the REST API,
 * the portal and refused WebSocket upgrades all answer through it).
 */

#include <stdlib.h>
#include <string.h>

#include "http_reply.h"

int http_write_response_hdrs(struct lws *wsi, int status, const char *ctype,
                             const char *const *hdrs, const char *body, size_t len)
{
    size_t cap = LWS_PRE + 2048 + len;
    unsigned char *buf = malloc(cap), *start, *p, *end;
    int rc = -1, ok;

    if (buf == NULL) {
        return -1;
    }
    start = p = buf + LWS_PRE;
    end = buf + cap - len - 1;
    ok = lws_add_http_common_headers(wsi, (unsigned int) status, ctype, (lws_filepos_t) len, &p,
                                     end) == 0 &&
         lws_add_http_header_by_name(wsi, (const unsigned char *) "cache-control:",
                                     (const unsigned char *) "no-store", 8, &p, end) == 0 &&
         /* one request per connection (http_finish) */
         lws_add_http_header_by_name(wsi, (const unsigned char *) "connection:",
                                     (const unsigned char *) "close", 5, &p, end) == 0;
    for (; ok && hdrs != NULL && hdrs[0] != NULL; hdrs += 2) {
        ok = lws_add_http_header_by_name(wsi, (const unsigned char *) hdrs[0],
                                         (const unsigned char *) hdrs[1], (int) strlen(hdrs[1]),
                                         &p, end) == 0;
    }
    if (ok && lws_finalize_http_header(wsi, &p, end) == 0) {
        memcpy(p, body, len);
        p += len;
        if (lws_write(wsi, start, (size_t) (p - start), LWS_WRITE_HTTP_FINAL) ==
            (int) (p - start)) {
            rc = 0;
        }
    }
    free(buf);
    return rc;
}

int http_write_response(struct lws *wsi, int status, const char *ctype, const char *body,
                        size_t len)
{
    return http_write_response_hdrs(wsi, status, ctype, NULL, body, len);
}

int http_finish(struct lws *wsi, int rc)
{
    /* The connection ends after one request (lws flushes what it still
     * holds first): the next request comes through front.c again, the only
     * place where agent upgrades are answered. A keep-alive connection
     * (a proxy's pool) would otherwise bring its upgrade to lws. */
    (void) wsi;
    (void) rc;
    return -1;
}
