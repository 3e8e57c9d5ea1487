
/*
 * The bridge: one WebSocket per nginx worker to the egress coordinator,
 * living entirely in nginx's event loop.
 *
 *   idle --timer--> connecting --> (tls) --> upgrade --> open
 *     ^                                                   |
 *     +---------- failure / close, capped backoff --------+
 *
 * This file holds the connection: connect, TLS, the upgrade's I/O (its
 * request and answer are ngx_stream_egress_upgrade.c's), the read and write
 * events of the open WebSocket, liveness pings, failures and reconnects.
 * wslay, frames and streams are ngx_stream_egress_frames.c's, credentials
 * and the state file ngx_stream_egress_state.c's (see
 * ngx_stream_egress_bridge.h).
 */


#include "ngx_stream_egress_bridge.h"


#define NGX_STREAM_EGRESS_CONNECT_TIMEOUT   10000
#define NGX_STREAM_EGRESS_TICKET_POLL       1000
#define NGX_STREAM_EGRESS_NOTSENT_LOWAT     (128 * 1024)


static void ngx_stream_egress_bridge_reconnect_handler(ngx_event_t *ev);
static void ngx_stream_egress_bridge_connect(ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_connect_handler(ngx_event_t *ev);
static void ngx_stream_egress_bridge_connected(ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_tls_handshake(ngx_connection_t *c);
static void ngx_stream_egress_bridge_upgrade_start(
    ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_upgrade_handler(ngx_event_t *ev);
static ngx_int_t ngx_stream_egress_bridge_upgraded(
    ngx_stream_egress_bridge_t *b);
static ngx_int_t ngx_stream_egress_bridge_ws_init(
    ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_read_handler(ngx_event_t *ev);
static void ngx_stream_egress_bridge_write_handler(ngx_event_t *ev);
static void ngx_stream_egress_bridge_closed(ngx_stream_egress_bridge_t *b,
    uint16_t code);
static void ngx_stream_egress_bridge_ping_handler(ngx_event_t *ev);
static void ngx_stream_egress_bridge_fail(ngx_stream_egress_bridge_t *b,
    ngx_uint_t retry);
static void ngx_stream_egress_bridge_close_connection(
    ngx_stream_egress_bridge_t *b);



ngx_int_t
ngx_stream_egress_bridge_init(ngx_cycle_t *cycle,
    ngx_stream_egress_main_conf_t *emcf)
{
    egress_frame_t               f;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_pcalloc(cycle->pool, sizeof(ngx_stream_egress_bridge_t));
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->conf = emcf;
    b->log = cycle->log;
    b->backoff = NGX_STREAM_EGRESS_BACKOFF_MIN;
    b->next_id = 1;

    ngx_rbtree_init(&b->streams, &b->sentinel, ngx_rbtree_insert_value);
    ngx_queue_init(&b->blocked);

    /* the largest frame we encode: a v1 data frame of a full chunk */

    ngx_memzero(&f, sizeof(egress_frame_t));
    f.type = EGRESS_FRAME_DATA;
    f.id = EGRESS_ID_MAX;
    f.body_len = EGRESS_DATA_CHUNK;

    b->frame_cap = ngx_max(egress_frame_encoded_max(&f, EGRESS_PROTO_V1),
                           EGRESS_V2_DATA_HEADER + EGRESS_DATA_CHUNK)
                   + 4096;

    b->frame = ngx_palloc(cycle->pool, b->frame_cap);
    if (b->frame == NULL) {
        return NGX_ERROR;
    }

    b->reconnect.handler = ngx_stream_egress_bridge_reconnect_handler;
    b->reconnect.data = b;
    b->reconnect.log = cycle->log;
    b->reconnect.cancelable = 1;

    b->ping.handler = ngx_stream_egress_bridge_ping_handler;
    b->ping.data = b;
    b->ping.log = cycle->log;
    b->ping.cancelable = 1;

    ngx_stream_egress_probe_init(b);

    ngx_stream_egress_bridge_set_reason(b, "connecting");

    ngx_stream_egress_bridge = b;

    ngx_add_timer(&b->reconnect, 1);

    return NGX_OK;
}


void
ngx_stream_egress_bridge_exit(ngx_cycle_t *cycle)
{
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL) {
        return;
    }

    b->state = NGX_STREAM_EGRESS_BRIDGE_STOPPED;

    if (b->reconnect.timer_set) {
        ngx_del_timer(&b->reconnect);
    }

    if (b->ping.timer_set) {
        ngx_del_timer(&b->ping);
    }

    ngx_stream_egress_probe_reset(b);

    if (b->ws && b->connection) {
        /* best effort: tell the coordinator we are going away */
        (void) wslay_event_queue_close(b->ws, EGRESS_CLOSE_GOING_AWAY,
                                       (const uint8_t *) "worker exiting",
                                       sizeof("worker exiting") - 1);
        (void) wslay_event_send(b->ws);
        (void) ngx_stream_egress_bridge_flush(b);
    }

    ngx_stream_egress_bridge_close_connection(b);

    ngx_stream_egress_bridge = NULL;
}


/* NGX_OK when a new stream can be opened now; otherwise a one-line reason */

ngx_int_t
ngx_stream_egress_bridge_available(ngx_str_t *reason)
{
    ngx_stream_egress_bridge_t  *b;

    static u_char  buf[NGX_STREAM_EGRESS_REASON_MAX + 64];

    b = ngx_stream_egress_bridge;

    if (b == NULL) {
        ngx_str_set(reason, "egress bridge is not running in this process "
                            "(worker_processes must be 1)");
        return NGX_DECLINED;
    }

    if (b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        reason->data = buf;
        reason->len = ngx_snprintf(buf, sizeof(buf),
                                   "egress bridge to the coordinator is "
                                   "down: %*s", b->reason_len, b->reason)
                      - buf;
        return NGX_DECLINED;
    }

    if (b->version == EGRESS_PROTO_V2 && !b->hello) {
        ngx_str_set(reason, "egress bridge is connecting "
                            "(waiting for hello)");
        return NGX_DECLINED;
    }

    if (!b->peer_connected) {
        ngx_str_set(reason, "host agent not connected");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


int
ngx_stream_egress_bridge_version(void)
{
    return ngx_stream_egress_bridge ? ngx_stream_egress_bridge->version
                                    : EGRESS_PROTO_V1;
}


static void
ngx_stream_egress_bridge_reconnect_handler(ngx_event_t *ev)
{
    ngx_stream_egress_bridge_t  *b;

    b = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate
        || b->state == NGX_STREAM_EGRESS_BRIDGE_STOPPED)
    {
        return;
    }

    ngx_stream_egress_bridge_connect(b);
}


static void
ngx_stream_egress_bridge_schedule(ngx_stream_egress_bridge_t *b,
    ngx_msec_t delay)
{
    if (b->state == NGX_STREAM_EGRESS_BRIDGE_STOPPED
        || ngx_exiting || ngx_quit || ngx_terminate)
    {
        return;
    }

    b->state = NGX_STREAM_EGRESS_BRIDGE_IDLE;

    if (b->reconnect.timer_set) {
        ngx_del_timer(&b->reconnect);
    }

    ngx_add_timer(&b->reconnect, delay);
}


/* next retry delay: capped exponential backoff with +-25% jitter */

static ngx_msec_t
ngx_stream_egress_bridge_backoff(ngx_stream_egress_bridge_t *b)
{
    ngx_msec_t  delay, jitter;

    delay = b->backoff;
    jitter = delay / 4;

    if (jitter) {
        delay = delay - jitter + (ngx_msec_t) ngx_random() % (2 * jitter + 1);
    }

    b->backoff = ngx_min(b->backoff * 2, b->conf->reconnect_max);

    return delay ? delay : 1;
}


static void
ngx_stream_egress_bridge_connect(ngx_stream_egress_bridge_t *b)
{
    ngx_int_t                       rc;
    ngx_addr_t                     *addr;
    const char                     *cred_name;
    ngx_connection_t               *c;
    ngx_stream_egress_main_conf_t  *conf;
    u_char                          cred[NGX_STREAM_EGRESS_SECRET_MAX + 16];

    conf = b->conf;

    rc = ngx_stream_egress_bridge_credentials(b, cred, sizeof(cred),
                                              &cred_name);
    if (rc != NGX_OK) {
        /* nothing to authenticate with: poll the ticket file */
        ngx_stream_egress_bridge_schedule(b, NGX_STREAM_EGRESS_TICKET_POLL);
        return;
    }

    b->pool = ngx_create_pool(2048, b->log);

    if (b->pool == NULL) {
        ngx_stream_egress_bridge_set_reason(b, "out of memory");
        rc = NGX_ERROR;

    } else {
        /* written into the handshake buffer now, sent once connected */
        rc = ngx_stream_egress_upgrade_request(b, cred_name, cred);
    }

    ngx_explicit_memzero(cred, sizeof(cred));

    if (rc != NGX_OK) {
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    addr = &conf->u.addrs[b->next_addr++ % conf->u.naddrs];

    ngx_memzero(&b->peer, sizeof(ngx_peer_connection_t));

    b->peer.sockaddr = addr->sockaddr;
    b->peer.socklen = addr->socklen;
    b->peer.name = &addr->name;
    b->peer.get = ngx_event_get_peer;
    b->peer.log = b->log;
    b->peer.log_error = NGX_ERROR_INFO;

    b->ws = NULL;
    b->version = 0;
    b->hello = 0;
    b->peer_connected = 0;
    b->failed = 0;
    b->eof = 0;
    b->close_reason_len = 0;
    b->close_frame = 0;
    b->close_got = 0;

    b->state = NGX_STREAM_EGRESS_BRIDGE_CONNECTING;

    rc = ngx_event_connect_peer(&b->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_stream_egress_bridge_set_reason(b, "cannot connect to %V",
                                            b->peer.name);
        b->peer.connection = NULL;
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    c = b->peer.connection;
    b->connection = c;

    c->data = b;
    c->pool = b->pool;
    c->read->handler = ngx_stream_egress_bridge_connect_handler;
    c->write->handler = ngx_stream_egress_bridge_connect_handler;

    ngx_add_timer(c->write, NGX_STREAM_EGRESS_CONNECT_TIMEOUT);

    if (rc == NGX_OK) {
        ngx_stream_egress_bridge_connected(b);
    }
}


static void
ngx_stream_egress_bridge_connect_handler(ngx_event_t *ev)
{
    int                          err;
    socklen_t                    len;
    ngx_connection_t            *c;
    ngx_stream_egress_bridge_t  *b;

    c = ev->data;
    b = c->data;

    if (ev->timedout) {
        ngx_stream_egress_bridge_set_reason(b, "connect to %V timed out",
                                            b->peer.name);
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_log_error(NGX_LOG_ERR, b->log, err,
                      "egress bridge: connect() to %V failed", b->peer.name);
        ngx_stream_egress_bridge_set_reason(b, "cannot connect to %V (%s)",
                                            b->peer.name, strerror(err));
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    ngx_stream_egress_bridge_connected(b);
}


static void
ngx_stream_egress_bridge_connected(ngx_stream_egress_bridge_t *b)
{
    u_char            *name;
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = b->connection;

    (void) ngx_tcp_nodelay(c);

#ifdef TCP_NOTSENT_LOWAT
    {
        int  lowat = NGX_STREAM_EGRESS_NOTSENT_LOWAT;

        /*
         * what waits stays in the send queue, where control frames can pass
         * it, not in the kernel (best effort)
         */
        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT,
                          (const void *) &lowat, sizeof(int));
    }
#endif

    if (!b->conf->tls) {
        ngx_stream_egress_bridge_upgrade_start(b);
        return;
    }

    b->state = NGX_STREAM_EGRESS_BRIDGE_TLS;

    if (ngx_ssl_create_connection(b->conf->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        ngx_stream_egress_bridge_set_reason(b, "TLS setup failed");
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    /* SNI for names only (RFC 6066 forbids IP literals) */

    if (ngx_inet_addr(b->conf->tls_name.data, b->conf->tls_name.len)
            == INADDR_NONE
#if (NGX_HAVE_INET6)
        && ngx_strlchr(b->conf->tls_name.data,
                       b->conf->tls_name.data + b->conf->tls_name.len, ':')
           == NULL
#endif
       )
    {
        name = ngx_pnalloc(b->pool, b->conf->tls_name.len + 1);
        if (name == NULL) {
            ngx_stream_egress_bridge_fail(b, 1);
            return;
        }

        (void) ngx_cpystrn(name, b->conf->tls_name.data,
                           b->conf->tls_name.len + 1);

        if (SSL_set_tlsext_host_name(c->ssl->connection, (char *) name)
            == 0)
        {
            ngx_ssl_error(NGX_LOG_ERR, b->log, 0,
                          "SSL_set_tlsext_host_name(\"%s\") failed", name);
            ngx_stream_egress_bridge_fail(b, 1);
            return;
        }
    }

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_stream_egress_bridge_tls_handshake;
        return;
    }

    ngx_stream_egress_bridge_tls_handshake(c);
}


static void
ngx_stream_egress_bridge_tls_handshake(ngx_connection_t *c)
{
    long                         rc;
    ngx_stream_egress_bridge_t  *b;

    b = c->data;

    if (!c->ssl->handshaked) {
        ngx_stream_egress_bridge_set_reason(b, "TLS handshake with %V failed",
                                            b->peer.name);
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        ngx_log_error(NGX_LOG_ERR, b->log, 0,
                      "egress bridge: coordinator certificate verify error: "
                      "(%l:%s)", rc, X509_verify_cert_error_string(rc));
        ngx_stream_egress_bridge_set_reason(b,
                      "coordinator certificate not trusted (%s)",
                      X509_verify_cert_error_string(rc));
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    if (ngx_ssl_check_host(c, &b->conf->tls_name) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, b->log, 0,
                      "egress bridge: coordinator certificate does not "
                      "match \"%V\"", &b->conf->tls_name);
        ngx_stream_egress_bridge_set_reason(b,
                      "coordinator certificate does not match \"%V\"",
                      &b->conf->tls_name);
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    ngx_stream_egress_bridge_upgrade_start(b);
}


static void
ngx_stream_egress_bridge_upgrade_start(ngx_stream_egress_bridge_t *b)
{
    ngx_connection_t  *c;

    c = b->connection;

    b->state = NGX_STREAM_EGRESS_BRIDGE_UPGRADE;
    b->hs_sent = 0;

    c->read->handler = ngx_stream_egress_bridge_upgrade_handler;
    c->write->handler = ngx_stream_egress_bridge_upgrade_handler;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ngx_add_timer(c->read, NGX_STREAM_EGRESS_CONNECT_TIMEOUT);

    ngx_stream_egress_bridge_upgrade_handler(c->write);
}


/*
 * Writes the upgrade request (then wipes it: it holds a secret) and reads
 * the response head; a refusal also reads its small JSON body.
 */

static void
ngx_stream_egress_bridge_upgrade_handler(ngx_event_t *ev)
{
    ssize_t                      n;
    ngx_connection_t            *c;
    ngx_stream_egress_bridge_t  *b;

    c = ev->data;
    b = c->data;

    if (ev->timedout) {
        ngx_stream_egress_bridge_set_reason(b, "WebSocket upgrade with %V "
                                            "timed out", b->peer.name);
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    if (!b->hs_sent) {

        while (b->hs.pos < b->hs.last) {
            n = c->send(c, b->hs.pos, b->hs.last - b->hs.pos);

            if (n == NGX_AGAIN) {
                if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                    ngx_stream_egress_bridge_fail(b, 1);
                }

                return;
            }

            if (n == NGX_ERROR) {
                ngx_stream_egress_bridge_set_reason(b, "connection to %V "
                                                    "lost during upgrade",
                                                    b->peer.name);
                ngx_stream_egress_bridge_fail(b, 1);
                return;
            }

            b->hs.pos += n;
        }

        /* the request carried a secret */
        ngx_explicit_memzero(b->hs.start, b->hs.end - b->hs.start);

        b->hs_sent = 1;
        b->hs.pos = b->hs.start;
        b->hs.last = b->hs.start;
    }

    for ( ;; ) {

        if (b->hs.last > b->hs.start
            && ngx_stream_egress_bridge_upgraded(b) != NGX_AGAIN)
        {
            return;
        }

        if (b->hs.last == b->hs.end) {
            ngx_stream_egress_bridge_set_reason(b, "upgrade response from %V "
                                                "too large", b->peer.name);
            ngx_stream_egress_bridge_fail(b, 1);
            return;
        }

        n = c->recv(c, b->hs.last, b->hs.end - b->hs.last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_stream_egress_bridge_fail(b, 1);
            }

            return;
        }

        if (n == 0 || n == NGX_ERROR) {
            b->eof = 1;

            /* a refusal may end with the connection */
            if (ngx_stream_egress_bridge_upgraded(b) != NGX_AGAIN) {
                return;
            }

            ngx_stream_egress_bridge_set_reason(b, "%V closed the connection "
                                                "during the WebSocket upgrade",
                                                b->peer.name);
            ngx_stream_egress_bridge_fail(b, 1);
            return;
        }

        b->hs.last += n;
    }
}


/* acts on the upgrade answer so far: NGX_AGAIN while it is incomplete */

static ngx_int_t
ngx_stream_egress_bridge_upgraded(ngx_stream_egress_bridge_t *b)
{
    switch (ngx_stream_egress_upgrade_process(b)) {

    case NGX_AGAIN:
        return NGX_AGAIN;

    case NGX_OK:
        if (ngx_stream_egress_bridge_ws_init(b) == NGX_OK) {
            return NGX_OK;
        }

        ngx_stream_egress_bridge_set_reason(b, "WebSocket setup failed");
        break;

    default:
        /* refused or unusable: the reason is set */
        break;
    }

    ngx_stream_egress_bridge_fail(b, 1);

    return NGX_OK;
}


static ngx_int_t
ngx_stream_egress_bridge_ws_init(ngx_stream_egress_bridge_t *b)
{
    ngx_connection_t  *c;

    c = b->connection;

    if (ngx_stream_egress_bridge_ws_create(b) != NGX_OK) {
        return NGX_ERROR;
    }

    b->state = NGX_STREAM_EGRESS_BRIDGE_OPEN;
    b->last_recv = ngx_current_msec;
    b->opened = ngx_current_msec;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    c->read->handler = ngx_stream_egress_bridge_read_handler;
    c->write->handler = ngx_stream_egress_bridge_write_handler;

    if (b->with_ticket) {
        /* the ticket is spent now, whatever happens next */
        ngx_stream_egress_bridge_spend_ticket(b);
        ngx_stream_egress_bridge_save_state(b);
    }

    b->need_ticket = 0;
    b->ended = 0;

    ngx_stream_egress_probe_reset(b);

    if (b->version == EGRESS_PROTO_V1) {
        /* v1 has no hello: assume the host side is there */
        b->hello = 1;
        b->peer_connected = 1;
        b->backoff = NGX_STREAM_EGRESS_BACKOFF_MIN;
    }

    ngx_log_error(NGX_LOG_NOTICE, b->log, 0,
                  "egress bridge: connected to %V (%s, with %s)",
                  &b->conf->url,
                  b->version == EGRESS_PROTO_V2 ? EGRESS_SUBPROTO_V2
                                                : EGRESS_SUBPROTO_V1,
                  b->with_ticket ? "ticket" : "resume secret");

    ngx_stream_egress_bridge_set_reason(b, "connected");

    if (b->ping.timer_set) {
        ngx_del_timer(&b->ping);
    }

    /* in auto mode the first tick also ends the wait for hello */
    ngx_add_timer(&b->ping, (b->version == EGRESS_PROTO_V2
                             && b->conf->protocol == 0)
                            ? ngx_min(b->conf->ping_interval,
                                      NGX_STREAM_EGRESS_HELLO_WAIT)
                            : b->conf->ping_interval);

    /* frames may already sit behind the response head */
    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_OK;
}


static void
ngx_stream_egress_bridge_read_handler(ngx_event_t *ev)
{
    int                          rc;
    uint16_t                     code;
    ngx_connection_t            *c;
    ngx_stream_egress_bridge_t  *b;

    c = ev->data;
    b = c->data;

    if (b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        return;
    }

    b->recv_budget = NGX_STREAM_EGRESS_RECV_BUDGET;

    rc = wslay_event_recv(b->ws);

    if (b->failed) {
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    if (wslay_event_get_close_received(b->ws)) {
        /* best effort: our close reply, then the socket is done */
        if (wslay_event_send(b->ws) == 0) {
            (void) ngx_stream_egress_bridge_flush(b);
        }

        ngx_stream_egress_bridge_closed(b,
                                    wslay_event_get_status_code_received(b->ws));
        return;
    }

    if (!wslay_event_get_read_enabled(b->ws) && b->close_frame
        && b->close_got == 2)
    {
        /* a close code wslay refused (see ngx_stream_egress_ws_frame_start) */
        code = (uint16_t) (b->close_hdr[0] << 8 | b->close_hdr[1]);

        if (code >= 1012 && code <= 1014) {
            ngx_stream_egress_bridge_closed(b, code);
            return;
        }
    }

    if (rc != 0) {
        ngx_stream_egress_bridge_set_reason(b, "connection to the "
                                            "coordinator lost");
        ngx_log_error(NGX_LOG_ERR, b->log, 0,
                      "egress bridge: connection to %V lost", b->peer.name);
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    if (b->recv_budget == 0) {
        ngx_post_event(c->read, &ngx_posted_events);

    } else if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    /* pongs, close replies and window frames queued while reading */
    ngx_stream_egress_bridge_write_handler(c->write);
}


static void
ngx_stream_egress_bridge_write_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_stream_egress_bridge_t  *b;

    c = ev->data;
    b = c->data;

    if (b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        return;
    }

    if (ngx_stream_egress_bridge_send(b) == NGX_ERROR) {
        goto failed;
    }

    if (ngx_stream_egress_bridge_pending(b)) {
        if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
            goto failed;
        }
    }

    if (b->state == NGX_STREAM_EGRESS_BRIDGE_OPEN
        && !ngx_queue_empty(&b->blocked)
        && ngx_stream_egress_bridge_room() > NGX_STREAM_EGRESS_BRIDGE_HIGH
                                            - NGX_STREAM_EGRESS_BRIDGE_LOW)
    {
        ngx_stream_egress_bridge_wake(b);
    }

    return;

failed:

    ngx_stream_egress_bridge_set_reason(b, "connection to the coordinator "
                                        "lost");
    ngx_log_error(NGX_LOG_ERR, b->log, 0,
                  "egress bridge: sending to %V failed", b->peer.name);
    ngx_stream_egress_bridge_fail(b, 1);
}


/* the coordinator sent a close frame: the socket is done */

static void
ngx_stream_egress_bridge_closed(ngx_stream_egress_bridge_t *b, uint16_t code)
{
    ngx_uint_t  fatal, level;

    fatal = egress_close_is_fatal(code);

    level = fatal ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, b->log, 0,
                  "egress bridge: coordinator closed the WebSocket: %d %*s",
                  (int) code, b->close_reason_len, b->close_reason);

    ngx_stream_egress_bridge_set_reason(b, "coordinator closed the bridge "
                                        "(%d %*s)%s", (int) code,
                                        b->close_reason_len, b->close_reason,
                                        fatal ? "; waiting for a new ticket"
                                              : "");

    if (fatal) {
        /*
         * The session is over (4001, 4003, 4004; crabbox: 1008) or a newer
         * socket took it over (4002, e.g. our successor after a reload;
         * crabbox: 1012): do not fight.
         */
        ngx_stream_egress_bridge_end_session(b, code);

        if (b->ended) {
            ngx_stream_egress_bridge_save_state(b);
        }
    }

    ngx_stream_egress_bridge_fail(b, 1);
}


static void
ngx_stream_egress_bridge_ping_handler(ngx_event_t *ev)
{
    ngx_msec_t                   idle;
    struct wslay_event_msg       msg;
    ngx_stream_egress_bridge_t  *b;

    b = ev->data;

    if (b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        return;
    }

    if (b->version == EGRESS_PROTO_V2 && !b->hello && b->conf->protocol == 0)
    {
        if (ngx_current_msec - b->opened < NGX_STREAM_EGRESS_HELLO_WAIT) {
            ngx_add_timer(&b->ping, NGX_STREAM_EGRESS_HELLO_WAIT
                                    - (ngx_current_msec - b->opened));
            return;
        }

        ngx_stream_egress_bridge_fall_back_v1(b, "no hello");
    }

    idle = ngx_current_msec - b->last_recv;

    if (idle >= 3 * b->conf->ping_interval) {
        ngx_log_error(NGX_LOG_ERR, b->log, 0,
                      "egress bridge: nothing received from %V for %M ms",
                      b->peer.name, idle);
        ngx_stream_egress_bridge_set_reason(b, "coordinator stopped "
                                            "answering");
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    ngx_memzero(&msg, sizeof(struct wslay_event_msg));
    msg.opcode = WSLAY_PING;

    if (wslay_event_queue_msg(b->ws, &msg) == 0) {
        ngx_stream_egress_bridge_kick(b);
    }

    ngx_add_timer(&b->ping, b->conf->ping_interval);
}


/*
 * Tears the connection down, ends every stream and, with retry, schedules
 * the next attempt. Never called from inside a wslay callback.
 */

static void
ngx_stream_egress_bridge_fail(ngx_stream_egress_bridge_t *b, ngx_uint_t retry)
{
    ngx_str_t   reason;
    ngx_msec_t  delay;
    u_char      text[NGX_STREAM_EGRESS_REASON_MAX + 64];

    ngx_stream_egress_bridge_close_connection(b);

    if (b->ping.timer_set) {
        ngx_del_timer(&b->ping);
    }

    if (b->state != NGX_STREAM_EGRESS_BRIDGE_STOPPED) {
        b->state = NGX_STREAM_EGRESS_BRIDGE_IDLE;
    }

    b->hello = 0;
    b->peer_connected = 0;

    ngx_stream_egress_probe_reset(b);

    reason.data = text;
    reason.len = ngx_snprintf(text, sizeof(text), "egress bridge to the "
                              "coordinator lost: %*s", b->reason_len,
                              b->reason)
                 - text;

    ngx_stream_egress_bridge_abort_all(b, &reason);

    if (!retry) {
        return;
    }

    delay = b->need_ticket ? NGX_STREAM_EGRESS_TICKET_POLL
                           : ngx_stream_egress_bridge_backoff(b);

    ngx_log_error(NGX_LOG_INFO, b->log, 0,
                  "egress bridge: %*s; retrying in %M ms",
                  b->reason_len, b->reason, delay);

    ngx_stream_egress_bridge_schedule(b, delay);
}


static void
ngx_stream_egress_bridge_close_connection(ngx_stream_egress_bridge_t *b)
{
    ngx_connection_t  *c;

    ngx_stream_egress_bridge_ws_free(b);

    c = b->connection;

    if (c) {
        if (c->ssl) {
            c->ssl->no_wait_shutdown = 1;
            c->ssl->no_send_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }

        ngx_close_connection(c);
        b->connection = NULL;
    }

    if (b->pool) {
        if (b->hs.start) {
            ngx_explicit_memzero(b->hs.start, b->hs.end - b->hs.start);
        }

        ngx_destroy_pool(b->pool);
        b->pool = NULL;
    }

    ngx_memzero(&b->hs, sizeof(ngx_buf_t));
    ngx_memzero(&b->out, sizeof(ngx_buf_t));
}


/*
 * auto: the coordinator echoed egress.v2 but behaves as a v1 relay (no
 * hello in time, or a v1 frame first): crabbox's does. Speak v1 on this
 * socket; the same happens on every reconnect, logged once.
 */

void
ngx_stream_egress_bridge_fall_back_v1(ngx_stream_egress_bridge_t *b,
    const char *why)
{
    ngx_uint_t  level;

    b->version = EGRESS_PROTO_V1;
    b->hello = 1;
    b->peer_connected = 1;
    b->backoff = NGX_STREAM_EGRESS_BACKOFF_MIN;

    ngx_stream_egress_probe_reset(b);

    level = b->fallback_logged ? NGX_LOG_INFO : NGX_LOG_NOTICE;

    ngx_log_error(level, b->log, 0,
                  "egress bridge: coordinator selected %s but sent %s; "
                  "speaking %s (a crabbox-style coordinator)",
                  EGRESS_SUBPROTO_V2, why, EGRESS_SUBPROTO_V1);

    b->fallback_logged = 1;

    ngx_stream_egress_bridge_set_reason(b, "connected (%s after no hello)",
                                        EGRESS_SUBPROTO_V1);

    ngx_stream_egress_bridge_wake(b);
}
