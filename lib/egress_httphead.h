/*
 * egress_httphead.h: an HTTP/1.x request head (request line and header
 * fields) found in a buffer, for the coordinator's front door: it reads
 * the head itself to tell an agent's WebSocket upgrade from the requests it
 * hands to libwebsockets. No copies: names and values point into the buffer.
 */

#ifndef EGRESS_HTTPHEAD_H
#define EGRESS_HTTPHEAD_H

#include <stddef.h>

#define EGRESS_HTTP_HEAD_FIELDS 64 /* more header fields: malformed */

typedef struct {
    const char *name, *value; /* value without surrounding blanks */
    size_t name_len, value_len;
} egress_http_field_t;

typedef struct {
    const char *method, *target;
    size_t method_len, target_len;
    int minor;       /* HTTP/1.<minor> */
    size_t head_len; /* bytes up to and with the blank line */
    size_t nfields;
    egress_http_field_t fields[EGRESS_HTTP_HEAD_FIELDS];
} egress_http_head_t;

/*
 * Looks for a whole head at the start of buf[0..len). Returns 1 with h
 * filled, 0 when the blank line has not come yet (and what came is not
 * already wrong), -1 when it is malformed: a bad request line, not HTTP/1.x,
 * a field without a colon or with blanks before it, an obsolete folded line,
 * a control character, a bare CR, or too many fields. Lines end in CRLF or
 * LF.
 */
int egress_http_head_parse(egress_http_head_t *h, const char *buf, size_t len);

/* The first field called name (case-insensitive), and how many there are;
 * NULL and 0 when there is none. */
const egress_http_field_t *egress_http_head_get(const egress_http_head_t *h, const char *name,
                                                int *count);

#endif /* EGRESS_HTTPHEAD_H */
