/*
 * server.c: the lws context (one vhost that listens nowhere: front.c accepts
 * and hands connections over), the 1 s timer, and the HTTP glue: the
 * protocol callback reads a request's framing headers and body off the
 * socket, hands /portal/ to portal.c and everything else to
 * http_api_handle(), and writes the response.
 */

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress.h"
#include "front.h"
#include "portal.h"
#include "server.h"
#include "session.h"
#include "http_api.h"
#include "http_reply.h"
#include "lease.h"
#include "metrics.h"
#include "owner.h"
#include "store.h"

static struct lws_context *context;
static volatile sig_atomic_t stopping;
static lws_sorted_usec_list_t tick_sul;
static lws_sorted_usec_list_t ping_sul;

/* ---- responses --------------------------------------------------------- */

/* Writes an API response; 0, or -1 when it could not be written. */
static int http_write_api(struct lws *wsi, const api_response_t *r, const char *const *hdrs)
{
    static const char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
    char *text;
    int rc;

    if (r->text != NULL) {
        return http_write_response_hdrs(wsi, r->status, r->ctype, hdrs, r->text, r->text_len);
    }
    text = r->json != NULL ? json_dumps(r->json, JSON_COMPACT) : NULL;
    if (text == NULL) {
        return http_write_response_hdrs(wsi, 500, "application/json", hdrs, oom,
                                        sizeof(oom) - 1);
    }
    rc = http_write_response_hdrs(wsi, r->status, "application/json", hdrs, text, strlen(text));
    free(text);
    return rc;
}

/* Refuses a request whose body cannot be read safely, and closes the
 * connection: whatever follows the head is never parsed as a request. */
static int http_refuse_close(struct lws *wsi, int status, const char *error,
                             const char *message)
{
    api_response_t r;
    char ip[64] = "";

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.json = json_pack("{s:s, s:s}", "error", error, "message", message);
    front_peer(wsi, ip, sizeof(ip));
    coord_log("http_refused", "addr=%s status=%d reason=\"%s\"", ip, status, message);
    http_write_api(wsi, &r, NULL); /* every response closes */
    api_response_free(&r);
    return -1;
}

/* ---- requests ---------------------------------------------------------- */

static void http_req_free(http_req_t *req)
{
    free(req->body);
    req->body = NULL;
    req->body_len = 0;
}

static int http_complete(struct lws *wsi, http_req_t *req)
{
    api_request_t rq;
    api_response_t r;
    char auth[512];
    int rc;

    if (req->too_big) {
        return http_refuse_close(wsi, 413, "payload_too_large", "request body exceeds 64 KiB");
    }
    if (http_is_portal_path(req->path)) {
        return portal_handle(wsi, req);
    }
    memset(&rq, 0, sizeof(rq));
    rq.method = req->method;
    rq.path = req->path;
    rq.auth =
        lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION) > 0 ? auth : NULL;
    rq.body = req->body;
    rq.body_len = req->body_len;
    http_api_handle(&rq, &r);
    rc = http_write_api(wsi, &r, NULL);
    api_response_free(&r);
    OPENSSL_cleanse(auth, sizeof(auth));
    return http_finish(wsi, rc);
}

/* How many times a header came (its fragments); 0 when absent. */
static int header_count(struct lws *wsi, enum lws_token_indexes h)
{
    int n = 1;

    if (lws_hdr_total_length(wsi, h) <= 0) {
        return 0;
    }
    while (n < 16 && lws_hdr_fragment_length(wsi, h, n) > 0) {
        n++;
    }
    return n;
}

static int http_begin(struct lws *wsi, http_req_t *req, const char *path)
{
    http_framing_t f;
    char cl[32], *uri;
    const char *error, *message;
    size_t len;
    int urilen, status;

    api_stats.http_requests++;
    http_req_free(req); /* a keep-alive connection's previous request */
    memset(req, 0, sizeof(*req));
    req->method = lws_http_get_uri_and_method(wsi, &uri, &urilen);

    memset(&f, 0, sizeof(f));
    f.transfer_encoding = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    f.content_length_count = header_count(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (f.content_length_count > 0 &&
        lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        f.content_length = cl;
    }
    status = http_framing_check(&f, &len, &error, &message);
    if (status != 0) {
        return http_refuse_close(wsi, status, error, message);
    }
    /* lws reads up to 100 MiB of "body" after a POST without a length and
     * would swallow the next request on the connection with it. */
    if (f.content_length_count == 0 &&
        (req->method == LWSHUMETH_POST || req->method == LWSHUMETH_PUT ||
         req->method == LWSHUMETH_PATCH)) {
        return http_refuse_close(wsi, 411, "length_required",
                                 "a request body needs Content-Length");
    }
    if (path == NULL || strlen(path) >= sizeof(req->path)) {
        return http_refuse_close(wsi, 414, "uri_too_long", "request path too long");
    }
    snprintf(req->path, sizeof(req->path), "%s", path);
    if (len > 0) {
        return 0; /* wait for LWS_CALLBACK_HTTP_BODY_COMPLETION */
    }
    return http_complete(wsi, req);
}

static int http_body(http_req_t *req, const void *in, size_t len)
{
    char *nb;

    /* lws reads Content-Length bytes; more would be a bug, not a client's. */
    if (req->too_big || req->body_len + len > COORD_BODY_MAX) {
        req->too_big = 1;
        return 0;
    }
    nb = realloc(req->body, req->body_len + len + 1);
    if (nb == NULL) {
        return -1;
    }
    req->body = nb;
    memcpy(req->body + req->body_len, in, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len)
{
    http_req_t *req = (http_req_t *) user;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* front.c answers upgrades in a connection's first request; a later
         * one on a keep-alive connection would get lws's framing. */
        return http_refuse_close(wsi, 400, "bad_request",
                                 "an upgrade must be the first request on its connection");

    case LWS_CALLBACK_HTTP:
        return http_begin(wsi, req, (const char *) in);

    case LWS_CALLBACK_HTTP_BODY:
        return http_body(req, in, len);

    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        /* Completing the transaction frees req (lws's per-session data), so
         * the request is handled from a copy that owns the body. */
        http_req_t local = *req;
        int rc;

        req->body = NULL;
        req->body_len = 0;
        rc = http_complete(wsi, &local);
        http_req_free(&local);
        return rc;
    }

    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (req != NULL) {
            http_req_free(req);
        }
        return 0;

    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* The epoll set of front.c, polled by lws as a raw file. */
static int front_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                          void *in, size_t len)
{
    if (reason == LWS_CALLBACK_RAW_RX_FILE) {
        front_service();
    }
    return 0;
}

static int any_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    coord_psd_t *psd = (coord_psd_t *) user;

    return http_callback(wsi, reason, psd ? &psd->req : NULL, in, len);
}

static const struct lws_protocols protocols[] = {
    {"http", any_callback, sizeof(coord_psd_t), 0, 0, NULL, 0},
    {"egress-front", front_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static void tick(lws_sorted_usec_list_t *sul)
{
    lease_tick();
    front_tick();
    lws_sul_schedule(context, 0, &tick_sul, tick, 1 * LWS_US_PER_SEC);
}

static void ping_tick(lws_sorted_usec_list_t *sul)
{
    session_ping_tick();
    lws_sul_schedule(context, 0, &ping_sul, ping_tick, coord_cfg.ping_ms * LWS_US_PER_MS);
}

static void on_signal(int sig)
{
    (void) sig;
    stopping = 1;
    if (context != NULL) {
        lws_cancel_service(context);
    }
}

void server_request_stop(void)
{
    on_signal(0);
}

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);

    /* lws lines end in a newline; keep our one-line-per-event format. */
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        n--;
    }
    coord_log("lws", "level=%s msg=\"%.*s\"", level == LLL_ERR ? "err" : "warn", (int) n, line);
}

/* Splits "host:port" / "[v6]:port" into iface (NULL = any) and port. */
static int parse_listen(const char *s, char *host, size_t cap, int *port)
{
    const char *colon;
    uint16_t p;
    size_t n;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':') {
            return -1;
        }
        n = (size_t) (rb - s - 1);
        colon = rb + 1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            return -1;
        }
        n = (size_t) (colon - s);
    }
    if (n >= cap) {
        return -1;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    if (egress_parse_port(colon + 1, strlen(colon + 1), &p) < 0) {
        return -1;
    }
    *port = p;
    return 0;
}

/* lws binds to an IP literal or an interface name; accept IPs and "localhost". */
static int normalize_listen_host(char *host, size_t cap)
{
    unsigned char buf[sizeof(struct in6_addr)];

    if (strcmp(host, "localhost") == 0) {
        snprintf(host, cap, "127.0.0.1");
        return 0;
    }
    if (host[0] == '\0' || inet_pton(AF_INET, host, buf) == 1 ||
        inet_pton(AF_INET6, host, buf) == 1) {
        return 0;
    }
    return -1;
}

int server_run(void)
{
    struct lws_context_creation_info info;
    char host[128];
    int port, n = 0;
    struct sigaction sa;

    if (parse_listen(coord_cfg.listen, host, sizeof(host), &port) < 0 ||
        normalize_listen_host(host, sizeof(host)) < 0) {
        fprintf(stderr,
                "egress-coordinator: --listen wants IP:PORT, [V6]:PORT, localhost:PORT or "
                ":PORT (all addresses), got %s\n",
                coord_cfg.listen);
        return 2;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);

    memset(&info, 0, sizeof(info));
    /* lws listens nowhere: front.c accepts, terminates TLS and hands lws
     * the connections that are not agent upgrades. */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    info.timeout_secs = 30;
    /* No lws idle pings (info.retry_and_idle_policy): they dropped live sockets
     * when the clock jumped; session_ping_tick() counts ticks instead. */
    info.max_http_header_data = 4096;
    info.pt_serv_buf_size = 16 * 1024;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (front_open(host, port) < 0) {
        coord_log("listen_failed", "listen=%s", coord_cfg.listen);
        front_close();
        return 1;
    }
    context = lws_create_context(&info);
    if (context == NULL ||
        front_attach(lws_get_vhost_by_name(context, "default"), "egress-front") < 0) {
        coord_log("listen_failed", "listen=%s", coord_cfg.listen);
        front_close();
        if (context != NULL) {
            lws_context_destroy(context);
            context = NULL;
        }
        return 1;
    }
    coord_log("listening", "instance=%s listen=%s tls=%s db=%s version=%s", coord_cfg.instance,
              coord_cfg.listen, coord_cfg.tls_cert ? "on" : "off", store_description(),
              EGRESS_VERSION);
    if (owner_start(context) < 0) {
        lws_context_destroy(context);
        context = NULL;
        return 1;
    }
    lws_sul_schedule(context, 0, &tick_sul, tick, 1 * LWS_US_PER_SEC);
    lws_sul_schedule(context, 0, &ping_sul, ping_tick, coord_cfg.ping_ms * LWS_US_PER_MS);

    while (!stopping && n >= 0) {
        n = lws_service(context, 0);
        /* frames queued by lws's callbacks and timers go out before the next poll */
        front_after_turn();
    }
    coord_log("stopping", "%s", "graceful=1");
    lws_sul_cancel(&tick_sul);
    lws_sul_cancel(&ping_sul);
    front_close();
    owner_stop();
    lws_context_destroy(context);
    context = NULL;
    return 0;
}
