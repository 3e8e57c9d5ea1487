/*
 * server.c: the lws context (one vhost, plain or TLS), the HTTP protocol
 * callback that dispatches to http_api.c and ws_bridge.c, and the 1 s timer.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress.h"
#include "server.h"
#include "session.h"

static struct lws_context *context;
static volatile sig_atomic_t stopping;
static lws_sorted_usec_list_t tick_sul;
static lws_sorted_usec_list_t ping_sul;

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len)
{
    http_req_t *req = (http_req_t *) user;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return ws_confirm_upgrade(wsi, (const char *) in);

    case LWS_CALLBACK_HTTP:
        return http_api_begin(wsi, req, (const char *) in);

    case LWS_CALLBACK_HTTP_BODY:
        return http_api_body(wsi, req, in, len);

    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        /* Completing the transaction frees req (lws's per-session data), so
         * the request is handled from a copy that owns the body. */
        http_req_t local = *req;
        int rc;

        req->body = NULL;
        req->body_len = 0;
        rc = http_api_complete(wsi, &local);
        http_req_free(&local);
        return rc;
    }

    case LWS_CALLBACK_CLOSED_HTTP:
        ws_forget_upgrade(wsi);
        /* fall through */
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (req != NULL) {
            http_req_free(req);
        }
        return 0;

    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/*
 * One callback for every protocol: lws binds new connections to the vhost's
 * default protocol (egress.v1, so that an upgrade without a subprotocol is
 * v1), which then also receives the HTTP and upgrade-confirmation events.
 */
static int any_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    coord_psd_t *psd = (coord_psd_t *) user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_RECEIVE_PONG:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLOSED:
        if (strcmp(lws_get_protocol(wsi)->name, "http") == 0) {
            return -1; /* a client that asked for subprotocol "http" */
        }
        return ws_callback(wsi, reason, psd ? &psd->conn : NULL, in, len);
    default:
        return http_callback(wsi, reason, psd ? &psd->req : NULL, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"http", any_callback, sizeof(coord_psd_t), 0, 0, NULL, 0},
    {EGRESS_SUBPROTO_V2, any_callback, sizeof(coord_psd_t), 64 * 1024, 0, NULL, 0},
    {EGRESS_SUBPROTO_V1, any_callback, sizeof(coord_psd_t), 64 * 1024, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* No Sec-WebSocket-Protocol header at all means v1. */
static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo_v1 = {NULL, &pvo_default, EGRESS_SUBPROTO_V1,
                                                         ""};

static void tick(lws_sorted_usec_list_t *sul)
{
    http_api_tick();
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
    char *end;
    long p;
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
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) {
        return -1;
    }
    *port = (int) p;
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
    info.port = port;
    info.iface = host[0] ? host : NULL;
    info.protocols = protocols;
    info.pvo = &pvo_v1;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    if (strchr(host, ':') != NULL) {
        info.options &= ~(uint64_t) LWS_SERVER_OPTION_DISABLE_IPV6;
        info.options |=
            LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY | LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE;
    }
    if (coord_cfg.tls_cert != NULL) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = coord_cfg.tls_cert;
        info.ssl_private_key_filepath = coord_cfg.tls_key;
        /* Upgrades are authorized on HTTP/1.1 only; never negotiate h2. */
        info.alpn = "http/1.1";
    }
    info.timeout_secs = 30;
    /* No lws idle pings (info.retry_and_idle_policy): they dropped live sockets
     * when the clock jumped; session_ping_tick() counts ticks instead. */
    info.max_http_header_data = 4096;
    /* lws reads every socket into this per-thread buffer: its 4 KiB default
     * meant eight recv() calls per 32 KiB data message. */
    info.pt_serv_buf_size = COORD_READ_BUF;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    context = lws_create_context(&info);
    if (context == NULL) {
        coord_log("listen_failed", "listen=%s", coord_cfg.listen);
        return 1;
    }
    coord_log("listening", "listen=%s tls=%s db=%s version=%s", coord_cfg.listen,
              coord_cfg.tls_cert ? "on" : "off", coord_cfg.db_path, EGRESS_VERSION);
    lws_sul_schedule(context, 0, &tick_sul, tick, 1 * LWS_US_PER_SEC);
    lws_sul_schedule(context, 0, &ping_sul, ping_tick, coord_cfg.ping_ms * LWS_US_PER_MS);

    while (!stopping && n >= 0) {
        n = lws_service(context, 0);
    }
    coord_log("stopping", "%s", "graceful=1");
    lws_sul_cancel(&tick_sul);
    lws_sul_cancel(&ping_sul);
    lws_context_destroy(context);
    context = NULL;
    return 0;
}
