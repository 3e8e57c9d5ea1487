/*
 * ws_upgrade.h: the client half of the RFC 6455 opening handshake: the
 * HTTP/1.1 upgrade request and the parsing of the answer's head. No I/O;
 * errors are returned, not printed.
 */

#ifndef EGRESS_AGENT_WS_UPGRADE_H
#define EGRESS_AGENT_WS_UPGRADE_H

#include <stddef.h>

#define WS_UPGRADE_HEAD_MAX  8192 /* a longer answer head is refused */
#define WS_UPGRADE_ACCEPT_SZ 32   /* base64(SHA-1) is 28 characters */

typedef struct {
    const char *path;      /* request target, e.g. /v1/leases/L/egress/host */
    const char *host;      /* host name or IP literal (no brackets) */
    unsigned port;         /* omitted from Host when it is the scheme's default */
    int tls;               /* wss */
    const char *protocols; /* Sec-WebSocket-Protocol offer */
    const char *cred_name; /* one credential header, e.g. Authorization */
    const char *cred_value;
} ws_upgrade_req_t;

typedef struct {
    int status;           /* HTTP status of the answer */
    size_t head_len;      /* bytes of the head, CRLFCRLF included */
    char subprotocol[64]; /* Sec-WebSocket-Protocol chosen, "" if none */
} ws_upgrade_resp_t;

/*
 * Writes the request into out (cap bytes) and the Sec-WebSocket-Accept value
 * the server must answer with into accept. Returns the request length, or
 * -1 with err set.
 */
int ws_upgrade_request(const ws_upgrade_req_t *rq, char *out, size_t cap,
                       char accept[WS_UPGRADE_ACCEPT_SZ], char *err, size_t errcap);

/*
 * Parses the answer's head in buf[0..len). Returns 0 when the head is not
 * complete yet, 1 when it is (r filled; a 101 answer is also checked against
 * accept), -1 with err set when it is malformed, too long or not a valid
 * WebSocket acceptance.
 */
int ws_upgrade_parse(ws_upgrade_resp_t *r, const char *buf, size_t len, const char *accept,
                     char *err, size_t errcap);

#endif /* EGRESS_AGENT_WS_UPGRADE_H */
