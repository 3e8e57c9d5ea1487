/*
 * http.c: coordinator URL parsing and a small blocking HTTP/1.1 client for
 * minting tickets. Blocking is acceptable here only: it runs before the event
 * loop starts, or on a libuv work thread when a reconnect needs a new ticket.
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "agent.h"

#define HTTP_RESPONSE_MAX (64 * 1024)

int url_parse(egress_url_t *u, const char *url, egress_error_t *err)
{
    const char *p, *hs, *he, *slash;
    char hostport[300];
    egress_error_t e;
    int kind;

    memset(u, 0, sizeof(*u));
    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
        u->port = 80;
    } else if (strncmp(url, "https://", 8) == 0) {
        p = url + 8;
        u->tls = 1;
        u->port = 443;
    } else {
        return egress_error_set(err, EGRESS_ERR_VALUE,
                                "coordinator URL must start with http:// or https://: %s", url);
    }
    slash = strchr(p, '/');
    hs = p;
    he = slash ? slash : p + strlen(p);
    if (he - hs == 0 || (size_t) (he - hs) >= sizeof(hostport)) {
        egress_error_set(err, EGRESS_ERR_VALUE, "coordinator URL has no valid host: %s", url);
        return -1;
    }
    if (memchr(hs, '@', he - hs) || memchr(hs, '?', he - hs)) {
        egress_error_set(err, EGRESS_ERR_VALUE,
                         "coordinator URL must not carry credentials or a query");
        return -1;
    }
    memcpy(hostport, hs, he - hs);
    hostport[he - hs] = '\0';
    kind = egress_hostport_parse(u->host, &u->port, hostport, strlen(hostport), u->port, &e);
    if (kind < 0) {
        egress_error_set(err, EGRESS_ERR_VALUE, "coordinator URL: %s", e.message);
        return -1;
    }
    if (slash) {
        size_t n = strlen(slash);
        while (n > 0 && slash[n - 1] == '/')
            n--;
        if (n >= sizeof(u->prefix) || strpbrk(slash, "?#")) {
            egress_error_set(err, EGRESS_ERR_VALUE, "coordinator URL path is not usable: %s",
                             slash);
            return -1;
        }
        memcpy(u->prefix, slash, n);
        u->prefix[n] = '\0';
    }
    return 0;
}

static int http_dial(const egress_url_t *u, int timeout_ms, egress_error_t *err)
{
    struct addrinfo hints = {0}, *ai, *a;
    char port[8];
    int fd = -1, rc;

    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", u->port);
    if ((rc = getaddrinfo(u->host, port, &hints, &ai)) != 0) {
        egress_error_set(err, EGRESS_ERR_SYSTEM, "cannot resolve %s: %s", u->host,
                         gai_strerror(rc));
        return -1;
    }
    for (a = ai; a; a = a->ai_next) {
        struct pollfd pfd;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS)
            goto next;
        pfd.fd = fd;
        pfd.events = POLLOUT;
        if (poll(&pfd, 1, timeout_ms) != 1) {
            errno = ETIMEDOUT;
            goto next;
        }
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            errno = soerr;
            goto next;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        freeaddrinfo(ai);
        return fd;
    next:
        egress_error_set(err, EGRESS_ERR_SYSTEM, "cannot connect to %s:%u: %s", u->host,
                         u->port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return -1;
}

/* One request, response read until close. Returns status or -1. */
static int http_exchange(const egress_url_t *u, const char *req, size_t reqlen, char *resp,
                         size_t cap, size_t *resplen, int timeout_ms, egress_error_t *err)
{
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int fd, status = -1;
    size_t off = 0;

    if ((fd = http_dial(u, timeout_ms, err)) < 0)
        return -1;
    if (u->tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) {
            egress_error_set(err, EGRESS_ERR_SYSTEM, "out of memory");
            goto out;
        }
        SSL_CTX_set_default_verify_paths(ctx);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, u->host);
        SSL_set1_host(ssl, u->host);
        if (SSL_connect(ssl) != 1) {
            egress_error_set(err, EGRESS_ERR_SYSTEM, "TLS handshake with %s failed: %s",
                             u->host, ERR_reason_error_string(ERR_get_error()));
            goto out;
        }
    }
    for (size_t w = 0; w < reqlen;) {
        ssize_t n =
            ssl ? SSL_write(ssl, req + w, (int) (reqlen - w)) : write(fd, req + w, reqlen - w);
        if (n <= 0) {
            egress_error_set(err, EGRESS_ERR_SYSTEM, "sending to coordinator failed");
            goto out;
        }
        w += (size_t) n;
    }
    for (;;) {
        ssize_t n;
        if (off + 1 >= cap) {
            egress_error_set(err, EGRESS_ERR_SYSTEM, "coordinator response too large");
            goto out;
        }
        n = ssl ? SSL_read(ssl, resp + off, (int) (cap - 1 - off))
                : read(fd, resp + off, cap - 1 - off);
        if (n <= 0)
            break;
        off += (size_t) n;
    }
    resp[off] = '\0';
    *resplen = off;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        egress_error_set(err, EGRESS_ERR_SYSTEM, "coordinator sent no HTTP response");
        status = -1;
    }
out:
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    if (ctx)
        SSL_CTX_free(ctx);
    close(fd);
    return status;
}

int http_mint_ticket(const egress_url_t *u, const mint_req_t *rq, char *ticket, size_t tcap,
                     char *session, size_t scap, egress_error_t *err)
{
    json_t *body = json_object(), *allow = json_array(), *resp = NULL;
    char *bodytxt, path[512];
    const char *t, *s;
    int status = -1;

    json_object_set_new(body, "role", json_string("host"));
    if (rq->session && *rq->session)
        json_object_set_new(body, "sessionID", json_string(rq->session));
    if (rq->profile && *rq->profile)
        json_object_set_new(body, "profile", json_string(rq->profile));
    for (size_t i = 0; i < rq->nallow; i++)
        json_array_append_new(allow, json_string(rq->allow[i]));
    json_object_set_new(body, "allow", allow);
    bodytxt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!bodytxt) {
        egress_error_set(err, EGRESS_ERR_SYSTEM, "out of memory");
        return -1;
    }
    snprintf(path, sizeof(path), "/v1/leases/%s/egress/ticket", rq->lease);
    status = http_api(u, "POST", path, rq->token, bodytxt, &resp, rq->timeout_ms, err);
    free(bodytxt);
    if (status < 0)
        goto out;
    if (status != 201 && status != 200) {
        const char *m = resp ? json_string_value(json_object_get(resp, "message")) : NULL;
        egress_error_set(err, EGRESS_ERR_VALUE, "coordinator answered %d%s%s", status,
                         m ? ": " : "", m ? m : "");
        goto out;
    }
    t = resp ? json_string_value(json_object_get(resp, "ticket")) : NULL;
    s = resp ? json_string_value(json_object_get(resp, "sessionID")) : NULL;
    if (!t || strlen(t) >= tcap || !s || strlen(s) >= scap) {
        egress_error_set(err, EGRESS_ERR_VALUE,
                         "coordinator ticket answer lacks ticket or sessionID");
        status = -1;
        goto out;
    }
    strcpy(ticket, t);
    strcpy(session, s);
    status = 0;
out:
    json_decref(resp);
    return status;
}

int http_api(const egress_url_t *u, const char *method, const char *path, const char *token,
             const char *body, json_t **resp, int timeout_ms, egress_error_t *err)
{
    char *req = NULL, *respbuf = NULL;
    const char *b;
    size_t resplen = 0;
    int status = -1, n;

    *resp = NULL;
    n = asprintf(&req,
                 "%s %s%s HTTP/1.1\r\n"
                 "Host: %s:%u\r\n"
                 "%s%s%s"
                 "Content-Type: application/json\r\n"
                 "Content-Length: %zu\r\n"
                 "Connection: close\r\n"
                 "User-Agent: egress/" EGRESS_VERSION "\r\n\r\n%s",
                 method, u->prefix, path, u->host, u->port,
                 token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "",
                 body ? strlen(body) : 0, body ? body : "");
    if (n < 0 || (respbuf = malloc(HTTP_RESPONSE_MAX)) == NULL) {
        egress_error_set(err, EGRESS_ERR_SYSTEM, "out of memory");
        goto out;
    }
    status = http_exchange(u, req, (size_t) n, respbuf, HTTP_RESPONSE_MAX, &resplen, timeout_ms,
                           err);
    if (status < 0)
        goto out;
    b = strstr(respbuf, "\r\n\r\n");
    b = b ? b + 4 : respbuf + resplen;
    *resp = json_loads(b, JSON_DISABLE_EOF_CHECK, NULL);
out:
    if (req) {
        explicit_bzero(req, strlen(req));
        free(req);
    }
    if (respbuf) {
        explicit_bzero(respbuf, HTTP_RESPONSE_MAX);
        free(respbuf);
    }
    return status;
}
