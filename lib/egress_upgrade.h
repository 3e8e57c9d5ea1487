/*
 * egress_upgrade.h: the client half of the RFC 6455 opening handshake: the
 * HTTP/1.1 upgrade request and the check of the answer's head. No I/O, no
 * logging: errors are returned in an egress_error_t.
 */

#ifndef EGRESS_UPGRADE_H
#define EGRESS_UPGRADE_H

#include <stddef.h>

#include "egress_error.h"

#define EGRESS_UPGRADE_HEAD_MAX  8192 /* a longer answer head is refused */
#define EGRESS_UPGRADE_ACCEPT_SZ 32   /* base64(SHA-1) is 28 characters */

typedef struct {
    const char *path;       /* request target, e.g. /v1/leases/L/egress/host */
    const char *host;       /* host name or IP literal (IPv6 without brackets) */
    unsigned port;          /* left out of Host when it is the scheme's default */
    int tls;                /* wss */
    const char *protocols;  /* Sec-WebSocket-Protocol offer */
    const char *user_agent; /* may be NULL */
    const char *cred_name;  /* one credential header (e.g. Authorization), may be NULL */
    const char *cred_value;
    const char *features; /* X-Egress-Features list (e.g. "early-data"), may be NULL */
} egress_upgrade_req_t;

typedef struct {
    int status;           /* HTTP status of the answer */
    size_t head_len;      /* bytes of the head, the final CRLFCRLF included */
    long content_length;  /* Content-Length, -1 if none or not a number */
    char subprotocol[64]; /* Sec-WebSocket-Protocol chosen, "" if none */
} egress_upgrade_resp_t;

/* Is tok one of the comma-separated, case-insensitive tokens in v[0..n)
 * (a header list such as Connection or X-Egress-Features)? */
int egress_upgrade_has_token(const char *v, size_t n, const char *tok);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)). 0, or -1. */
int egress_upgrade_accept_for(const char *key, char accept[EGRESS_UPGRADE_ACCEPT_SZ]);

/*
 * Writes the request into out (cap bytes) and the Sec-WebSocket-Accept value
 * the server must answer with into accept. Returns the request length, or -1
 * with err set (out is then wiped: it may hold part of the credential).
 */
int egress_upgrade_request(const egress_upgrade_req_t *rq, char *out, size_t cap,
                           char accept[EGRESS_UPGRADE_ACCEPT_SZ], egress_error_t *err);

/*
 * Parses the answer's head in buf[0..len). Returns 0 when the head is not
 * complete yet, 1 when it is (r filled; a 101 answer is also checked:
 * Upgrade, Connection, Sec-WebSocket-Accept against accept, no extension),
 * -1 with err set when it is malformed, longer than EGRESS_UPGRADE_HEAD_MAX
 * or not a valid WebSocket acceptance.
 */
int egress_upgrade_parse(egress_upgrade_resp_t *r, const char *buf, size_t len,
                         const char *accept, egress_error_t *err);

/*
 * For a refusal (a parsed head whose status is not 101) of which len bytes,
 * head included, are in a buffer of cap bytes: 1 when its body is complete,
 * with *body_len set (Content-Length bytes are there, or there is no
 * Content-Length, or eof: the peer closed, or the buffer is full; a body is
 * never longer than its Content-Length), 0 when more is to come.
 */
int egress_upgrade_body(const egress_upgrade_resp_t *r, size_t len, size_t cap, int eof,
                        size_t *body_len);

/*
 * The coordinator's refusal body {"error": CODE, "message": TEXT} as one
 * printable line "CODE: TEXT" (control characters become spaces) in out
 * (cap bytes, NUL-terminated). A body that is not such an object gives "".
 * Returns the length written.
 */
size_t egress_upgrade_refusal_text(const char *body, size_t len, char *out, size_t cap);

#endif /* EGRESS_UPGRADE_H */
