/*
 * egress_upgrade.c: the RFC 6455 upgrade request and the check of the
 * answer's head (status, Upgrade, Connection, Sec-WebSocket-Accept, the
 * chosen subprotocol, no extension we did not offer).
 */

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "egress_upgrade.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int egress_upgrade_accept_for(const char *key, char accept[EGRESS_UPGRADE_ACCEPT_SZ])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char in[64];
    int n;

    n = snprintf(in, sizeof(in), "%s%s", key, WS_GUID);
    if (n < 0 || (size_t) n >= sizeof(in) ||
        EVP_Digest(in, (size_t) n, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *) accept, md, (int) mdlen);
    return 0;
}

int egress_upgrade_request(const egress_upgrade_req_t *rq, char *out, size_t cap,
                           char accept[EGRESS_UPGRADE_ACCEPT_SZ], egress_error_t *err)
{
    unsigned char rnd[16];
    char key[32], hostport[300];
    int v6 = strchr(rq->host, ':') != NULL, n;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return egress_error_set(err, EGRESS_ERR_SYSTEM,
                                "no random bytes for Sec-WebSocket-Key");
    EVP_EncodeBlock((unsigned char *) key, rnd, sizeof(rnd));
    if (egress_upgrade_accept_for(key, accept) < 0)
        return egress_error_set(err, EGRESS_ERR_SYSTEM, "cannot compute Sec-WebSocket-Accept");
    if (rq->port == (rq->tls ? 443u : 80u))
        n = snprintf(hostport, sizeof(hostport), v6 ? "[%s]" : "%s", rq->host);
    else
        n = snprintf(hostport, sizeof(hostport), v6 ? "[%s]:%u" : "%s:%u", rq->host, rq->port);
    if (n < 0 || (size_t) n >= sizeof(hostport))
        return egress_error_set(err, EGRESS_ERR_TOO_LARGE, "host name too long");
    n = snprintf(out, cap,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: %s\r\n"
                 "Origin: %s://%s\r\n"
                 "%s%s%s"
                 "%s%s%s"
                 "%s%s%s%s"
                 "\r\n",
                 rq->path, hostport, key, rq->protocols, rq->tls ? "https" : "http", hostport,
                 rq->user_agent ? "User-Agent: " : "", rq->user_agent ? rq->user_agent : "",
                 rq->user_agent ? "\r\n" : "", rq->features ? "X-Egress-Features: " : "",
                 rq->features ? rq->features : "", rq->features ? "\r\n" : "",
                 rq->cred_name ? rq->cred_name : "", rq->cred_name ? ": " : "",
                 rq->cred_name ? rq->cred_value : "", rq->cred_name ? "\r\n" : "");
    if (n < 0 || (size_t) n >= cap) {
        explicit_bzero(out, cap);
        return egress_error_set(err, EGRESS_ERR_NO_SPACE,
                                "upgrade request longer than %zu bytes", cap);
    }
    return n;
}

int egress_upgrade_has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i = 0;

    while (i < n) {
        size_t s, e;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return 1;
    }
    return 0;
}

static int egress_upgrade_name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* A Content-Length value: 1 to 9 digits, else -1 (a refusal body is small). */
static long egress_upgrade_number(const char *v, size_t n)
{
    long x = 0;

    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

int egress_upgrade_parse(egress_upgrade_resp_t *r, const char *buf, size_t len,
                         const char *accept, egress_error_t *err)
{
    const char *end = NULL, *p, *eol;
    int upgrade = 0, connection = 0, accept_ok = 0;

    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    for (size_t i = 0; i + 3 < len; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = buf + i + 2; /* the last header line's CRLF stays inside */
            r->head_len = i + 4;
            break;
        }
    }
    if (!end) {
        if (len >= EGRESS_UPGRADE_HEAD_MAX)
            return egress_error_set(err, EGRESS_ERR_TOO_LARGE,
                                    "upgrade answer head longer than %d bytes",
                                    EGRESS_UPGRADE_HEAD_MAX);
        return 0;
    }
    if (r->head_len > EGRESS_UPGRADE_HEAD_MAX)
        return egress_error_set(err, EGRESS_ERR_TOO_LARGE,
                                "upgrade answer head longer than %d bytes",
                                EGRESS_UPGRADE_HEAD_MAX);
    eol = memchr(buf, '\r', (size_t) (end - buf));
    if (!eol || eol - buf < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
        buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' ||
        buf[11] > '9' || (eol - buf > 12 && buf[12] != ' '))
        return egress_error_set(err, EGRESS_ERR_VALUE, "the answer is not HTTP/1.x");
    r->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    for (p = eol + 2; p < end; p = eol + 2) {
        const char *colon, *v, *ve;
        eol = memchr(p, '\r', (size_t) (end - p));
        if (!eol || eol[1] != '\n')
            return egress_error_set(err, EGRESS_ERR_VALUE, "malformed upgrade answer header");
        colon = memchr(p, ':', (size_t) (eol - p));
        if (!colon || colon == p)
            return egress_error_set(err, EGRESS_ERR_VALUE, "malformed upgrade answer header");
        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
            ;
        for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
            ;
        size_t nl = (size_t) (colon - p), vl = (size_t) (ve - v);
        if (egress_upgrade_name_is(p, nl, "Upgrade")) {
            upgrade = egress_upgrade_has_token(v, vl, "websocket");
        } else if (egress_upgrade_name_is(p, nl, "Connection")) {
            connection = egress_upgrade_has_token(v, vl, "upgrade");
        } else if (egress_upgrade_name_is(p, nl, "Sec-WebSocket-Accept")) {
            accept_ok = vl == strlen(accept) && memcmp(v, accept, vl) == 0;
        } else if (egress_upgrade_name_is(p, nl, "Sec-WebSocket-Protocol")) {
            if (vl >= sizeof(r->subprotocol) && r->status == 101)
                return egress_error_set(err, EGRESS_ERR_VALUE,
                                        "the server chose a subprotocol we did not offer");
            if (vl >= sizeof(r->subprotocol))
                vl = 0;
            memcpy(r->subprotocol, v, vl);
            r->subprotocol[vl] = '\0';
        } else if (egress_upgrade_name_is(p, nl, "Content-Length")) {
            r->content_length = egress_upgrade_number(v, vl);
        } else if (egress_upgrade_name_is(p, nl, "Sec-WebSocket-Extensions") &&
                   r->status == 101)
            return egress_error_set(err, EGRESS_ERR_VALUE,
                                    "the server chose a WebSocket extension we did not offer");
    }
    if (r->status != 101)
        return 1;
    if (!upgrade || !connection || !accept_ok)
        return egress_error_set(err, EGRESS_ERR_VALUE, "invalid WebSocket upgrade answer (%s)",
                                !accept_ok ? "Sec-WebSocket-Accept" : "Upgrade/Connection");
    return 1;
}

int egress_upgrade_body(const egress_upgrade_resp_t *r, size_t len, size_t cap, int eof,
                        size_t *body_len)
{
    size_t have = len > r->head_len ? len - r->head_len : 0;

    if (r->content_length > 0 && have < (size_t) r->content_length && !eof && len < cap)
        return 0;
    if (r->content_length >= 0 && have > (size_t) r->content_length)
        have = (size_t) r->content_length;
    *body_len = have;
    return 1;
}

size_t egress_upgrade_refusal_text(const char *body, size_t len, char *out, size_t cap)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *code = json_string_value(json_object_get(root, "error"));
    const char *msg = json_string_value(json_object_get(root, "message"));
    int n;

    if (cap == 0) {
        json_decref(root);
        return 0;
    }
    n = snprintf(out, cap, "%s%s%s", code ? code : "", msg && msg[0] ? ": " : "",
                 msg ? msg : "");
    json_decref(root);
    if (n < 0) {
        out[0] = '\0';
        return 0;
    }
    if ((size_t) n >= cap)
        n = (int) cap - 1;
    /* one line: it ends up in logs and 503 bodies */
    for (int i = 0; i < n; i++)
        if ((unsigned char) out[i] < ' ' || out[i] == 0x7f)
            out[i] = ' ';
    return (size_t) n;
}
