
/*
 * The bridge: one WebSocket per nginx worker to the egress coordinator,
 * living entirely in nginx's event loop.
 *
 *   idle --timer--> connecting --> (tls) --> upgrade --> open
 *     ^                                                   |
 *     +---------- failure / close, capped backoff --------+
 *
 * The RFC 6455 upgrade is lib/egress_upgrade.c's; framing is wslay's event API with
 * its I/O callbacks bound to the nginx connection (WOULDBLOCK on NGX_AGAIN).
 * Streams never send synchronously: they queue frames and post the write
 * event, so a bridge failure never unwinds through a session's handler.
 *
 * Credentials: a ticket file the operator's tooling (re)writes, and a
 * resume secret received in hello and kept in a 0600 state file. A ticket
 * is spent once (its SHA-256 is remembered), after that the resume secret
 * reconnects; neither is ever logged.
 */


#include "ngx_stream_egress_module.h"


#define NGX_STREAM_EGRESS_CONNECT_TIMEOUT   10000
#define NGX_STREAM_EGRESS_BACKOFF_MIN       250
#define NGX_STREAM_EGRESS_TICKET_POLL       1000
#define NGX_STREAM_EGRESS_HS_SIZE           16384   /* upgrade heads */
#define NGX_STREAM_EGRESS_IN_SIZE           65536   /* read-ahead once open */
#define NGX_STREAM_EGRESS_OUT_SIZE          (256 * 1024)
#define NGX_STREAM_EGRESS_RECV_BUDGET       (1024 * 1024)
#define NGX_STREAM_EGRESS_SECRET_MAX        512


typedef enum {
    NGX_STREAM_EGRESS_BRIDGE_IDLE = 0,
    NGX_STREAM_EGRESS_BRIDGE_CONNECTING,
    NGX_STREAM_EGRESS_BRIDGE_TLS,
    NGX_STREAM_EGRESS_BRIDGE_UPGRADE,
    NGX_STREAM_EGRESS_BRIDGE_OPEN,
    NGX_STREAM_EGRESS_BRIDGE_STOPPED
} ngx_stream_egress_bridge_state_e;


typedef struct {
    ngx_stream_egress_main_conf_t  *conf;
    ngx_log_t                      *log;

    ngx_peer_connection_t           peer;
    ngx_connection_t               *connection;
    ngx_pool_t                     *pool;       /* per connection */
    ngx_uint_t                      state;
    ngx_uint_t                      next_addr;
    wslay_event_context_ptr         ws;
    int                             version;

    ngx_buf_t                       hs;         /* upgrade request/response,
                                                   then frame read-ahead */
    ngx_uint_t                      hs_sent;
    char                            accept[EGRESS_UPGRADE_ACCEPT_SZ];

    ngx_buf_t                       out;        /* wslay -> socket */
    size_t                          recv_budget;

    ngx_event_t                     reconnect;
    ngx_event_t                     ping;
    ngx_msec_t                      backoff;
    ngx_msec_t                      last_recv;

    ngx_rbtree_t                    streams;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     blocked;
    ngx_uint_t                      nstreams;
    uint32_t                        next_id;

    u_char                         *frame;      /* encode buffer */
    size_t                          frame_cap;

    u_char                          reason[NGX_STREAM_EGRESS_REASON_MAX];
    size_t                          reason_len;
    u_char                          close_reason[128];
    size_t                          close_reason_len;

    u_char                          resume[EGRESS_MAX_TOKEN_TEXT + 1];
    size_t                          resume_len;
    u_char                          used_resume[EGRESS_SHA256_LEN];
    u_char                          dead_resume[EGRESS_SHA256_LEN];
    u_char                          used_ticket[EGRESS_SHA256_LEN];
    u_char                          spent_ticket[EGRESS_SHA256_LEN];

    ngx_err_t                       ticket_err;     /* last open() error */
    ngx_uint_t                      ended;          /* 4003/4004/404/410 */

    unsigned                        with_ticket:1;  /* this attempt */
    unsigned                        with_resume:1;
    unsigned                        has_dead_resume:1;
    unsigned                        has_spent_ticket:1;
    unsigned                        need_ticket:1;  /* fatal close seen */
    unsigned                        peer_connected:1;
    unsigned                        hello:1;
    unsigned                        failed:1;
    unsigned                        eof:1;
    unsigned                        state_unsaved:1;
} ngx_stream_egress_bridge_t;


static void ngx_stream_egress_bridge_reconnect_handler(ngx_event_t *ev);
static void ngx_stream_egress_bridge_connect(ngx_stream_egress_bridge_t *b);
static ngx_int_t ngx_stream_egress_bridge_credentials(
    ngx_stream_egress_bridge_t *b, u_char *value, size_t size,
    const char **name);
static ngx_int_t ngx_stream_egress_bridge_read_ticket(
    ngx_stream_egress_bridge_t *b, u_char *buf, size_t size, size_t *len);
static void ngx_stream_egress_bridge_load_state(
    ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_save_state(
    ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_connect_handler(ngx_event_t *ev);
static void ngx_stream_egress_bridge_connected(ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_tls_handshake(ngx_connection_t *c);
static void ngx_stream_egress_bridge_upgrade_start(
    ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_upgrade_handler(ngx_event_t *ev);
static ngx_int_t ngx_stream_egress_bridge_upgrade_response(
    ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_refused(ngx_stream_egress_bridge_t *b,
    ngx_uint_t status, u_char *body, size_t len);
static ngx_int_t ngx_stream_egress_bridge_ws_init(
    ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_read_handler(ngx_event_t *ev);
static void ngx_stream_egress_bridge_write_handler(ngx_event_t *ev);
static ngx_int_t ngx_stream_egress_bridge_flush(ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_closed(ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_ping_handler(ngx_event_t *ev);
static void ngx_stream_egress_bridge_fail(ngx_stream_egress_bridge_t *b,
    ngx_uint_t retry);
static void ngx_stream_egress_bridge_close_connection(
    ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_abort_all(ngx_stream_egress_bridge_t *b,
    ngx_str_t *reason);
static void ngx_stream_egress_bridge_wake(ngx_stream_egress_bridge_t *b);
static void ngx_stream_egress_bridge_set_reason(ngx_stream_egress_bridge_t *b,
    const char *fmt, ...);
static void ngx_stream_egress_bridge_kick(ngx_stream_egress_bridge_t *b);
static ngx_int_t ngx_stream_egress_bridge_put_data(
    ngx_stream_egress_bridge_t *b, uint32_t id, const u_char *data, size_t len);
static ngx_int_t ngx_stream_egress_bridge_queue(ngx_stream_egress_bridge_t *b,
    egress_frame_t *f);
static ngx_stream_egress_ctx_t *ngx_stream_egress_bridge_find(
    ngx_stream_egress_bridge_t *b, uint32_t id);
static void ngx_stream_egress_bridge_message(ngx_stream_egress_bridge_t *b,
    const uint8_t *msg, size_t len, ngx_uint_t binary);

static ssize_t ngx_stream_egress_ws_recv(wslay_event_context_ptr ctx,
    uint8_t *buf, size_t len, int flags, void *user_data);
static ssize_t ngx_stream_egress_ws_send(wslay_event_context_ptr ctx,
    const uint8_t *data, size_t len, int flags, void *user_data);
static int ngx_stream_egress_ws_genmask(wslay_event_context_ptr ctx,
    uint8_t *buf, size_t len, void *user_data);
static void ngx_stream_egress_ws_on_msg(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *user_data);


static ngx_stream_egress_bridge_t  *ngx_stream_egress_bridge;


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
    int                             n;
    u_char                         *host, *path;
    ngx_int_t                       rc;
    ngx_addr_t                     *addr;
    const char                     *cred_name;
    egress_error_t                  err;
    ngx_connection_t               *c;
    egress_upgrade_req_t            rq;
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
        goto failed;
    }

    /* the upgrade request (lib/egress_upgrade.c), written into the
     * handshake buffer now */

    b->hs.start = ngx_palloc(b->pool, NGX_STREAM_EGRESS_IN_SIZE);
    host = ngx_pnalloc(b->pool, conf->tls_name.len + 1);
    path = ngx_pnalloc(b->pool, conf->path.len + 1);

    if (b->hs.start == NULL || host == NULL || path == NULL) {
        goto failed;
    }

    b->hs.end = b->hs.start + NGX_STREAM_EGRESS_HS_SIZE;

    (void) ngx_cpystrn(host, conf->tls_name.data, conf->tls_name.len + 1);
    (void) ngx_cpystrn(path, conf->path.data, conf->path.len + 1);

    ngx_memzero(&rq, sizeof(egress_upgrade_req_t));

    rq.path = (char *) path;
    rq.host = (char *) host;
    rq.port = conf->u.port ? conf->u.port : conf->u.default_port;
    rq.tls = conf->tls;
    rq.protocols = conf->protocol == EGRESS_PROTO_V1 ? EGRESS_SUBPROTO_V1
                   : conf->protocol == EGRESS_PROTO_V2 ? EGRESS_SUBPROTO_V2
                   : EGRESS_SUBPROTO_V2 ", " EGRESS_SUBPROTO_V1;
    rq.user_agent = "ngx_stream_egress_module/" NGX_STREAM_EGRESS_VERSION;
    rq.cred_name = cred_name;
    rq.cred_value = (char *) cred;

    n = egress_upgrade_request(&rq, (char *) b->hs.start,
                               NGX_STREAM_EGRESS_HS_SIZE, b->accept, &err);

    ngx_explicit_memzero(cred, sizeof(cred));

    if (n < 0) {
        ngx_stream_egress_bridge_set_reason(b, "%s", err.message);
        ngx_stream_egress_bridge_fail(b, 1);
        return;
    }

    b->hs.pos = b->hs.start;
    b->hs.last = b->hs.start + n;

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

    return;

failed:

    ngx_explicit_memzero(cred, sizeof(cred));
    ngx_stream_egress_bridge_set_reason(b, "out of memory");
    ngx_stream_egress_bridge_fail(b, 1);
}


/*
 * Picks what this attempt authenticates with and writes the header line:
 * a ticket never spent before wins (the operator started a new session),
 * then the resume secret, unless a fatal close demands a new ticket.
 */

static ngx_int_t
ngx_stream_egress_bridge_credentials(ngx_stream_egress_bridge_t *b,
    u_char *value, size_t size, const char **name)
{
    size_t   tlen;
    u_char   hash[EGRESS_SHA256_LEN];
    u_char   ticket[NGX_STREAM_EGRESS_SECRET_MAX + 1];

    b->with_ticket = 0;
    b->with_resume = 0;

    /*
     * The state file is authoritative (a previous worker, e.g. before a
     * reload, may have spent the ticket and rotated the secret), unless our
     * own last write to it failed.
     */
    if (!b->state_unsaved) {
        ngx_stream_egress_bridge_load_state(b);
    }

    if (ngx_stream_egress_bridge_read_ticket(b, ticket, sizeof(ticket), &tlen)
        == NGX_OK)
    {
        egress_sha256(hash, ticket, tlen);

        if (!b->has_spent_ticket
            || !egress_ct_equal(hash, b->spent_ticket, sizeof(hash)))
        {
            ngx_memcpy(b->used_ticket, hash, sizeof(hash));
            b->with_ticket = 1;

            *ngx_snprintf(value, size - 1, "Bearer %*s", tlen, ticket) = '\0';
            *name = "Authorization";

            ngx_explicit_memzero(ticket, sizeof(ticket));
            return NGX_OK;
        }

        ngx_explicit_memzero(ticket, sizeof(ticket));
    }

    if (b->need_ticket) {
        ngx_stream_egress_bridge_set_reason(b,
                      "the session ended; waiting for a new ticket in \"%V\"",
                      &b->conf->ticket_file);
        return NGX_DECLINED;
    }

    if (b->resume_len) {
        egress_sha256(hash, b->resume, b->resume_len);

        if (!b->has_dead_resume
            || !egress_ct_equal(hash, b->dead_resume, sizeof(hash)))
        {
            ngx_memcpy(b->used_resume, hash, sizeof(hash));
            b->with_resume = 1;

            *ngx_snprintf(value, size - 1, "%*s", b->resume_len, b->resume)
                = '\0';
            *name = "X-Egress-Resume";
            return NGX_OK;
        }
    }

    if (b->ticket_err && b->ticket_err != NGX_ENOENT) {
        ngx_stream_egress_bridge_set_reason(b,
                      "the nginx worker cannot read the ticket file \"%V\" "
                      "(check its owner and mode, and the user directive)",
                      &b->conf->ticket_file);
        return NGX_DECLINED;
    }

    ngx_stream_egress_bridge_set_reason(b,
                      "no usable ticket in \"%V\" (spent or missing) and no "
                      "resume secret", &b->conf->ticket_file);

    return NGX_DECLINED;
}


static ngx_int_t
ngx_stream_egress_bridge_read_ticket(ngx_stream_egress_bridge_t *b,
    u_char *buf, size_t size, size_t *len)
{
    u_char    *p, *last;
    ssize_t    n;
    ngx_fd_t   fd;
    ngx_err_t  err;

    fd = ngx_open_file(b->conf->ticket_file.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        /* the file is polled: say so once, not every second */
        if (err != NGX_ENOENT && err != b->ticket_err) {
            ngx_log_error(NGX_LOG_ERR, b->log, err,
                          "egress bridge: cannot read ticket file \"%V\"",
                          &b->conf->ticket_file);
        }

        b->ticket_err = err;
        return NGX_DECLINED;
    }

    b->ticket_err = 0;

    n = read(fd, buf, size - 1);

    ngx_close_file(fd);

    if (n <= 0) {
        return NGX_DECLINED;
    }

    p = buf;
    last = buf + n;

    while (last > p && (last[-1] == CR || last[-1] == LF || last[-1] == ' '
                        || last[-1] == '\t'))
    {
        last--;
    }

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (!egress_state_secret_ok((char *) p, last - p,
                                NGX_STREAM_EGRESS_SECRET_MAX))
    {
        ngx_explicit_memzero(buf, size);
        return NGX_DECLINED;
    }

    *len = last - p;
    ngx_memmove(buf, p, *len);

    return NGX_OK;
}


/*
 * State file (lib/egress_state.c): the resume secret, the spent ticket's
 * hash and the session end mark, mode 0600, replaced atomically. Missing or
 * unreadable means "no state".
 */

static void
ngx_stream_egress_bridge_load_state(ngx_stream_egress_bridge_t *b)
{
    size_t          len;
    egress_error_t  err;
    egress_state_t  st;

    if (b->conf->state_file.len == 0) {
        return;
    }

    switch (egress_state_load(&st, (char *) b->conf->state_file.data, &err)) {

    case 1:
        break;

    case 0:
        return;

    default:
        if (err.code != EGRESS_ERR_SYSTEM) {
            ngx_log_error(NGX_LOG_WARN, b->log, 0,
                          "egress bridge: ignoring malformed state file "
                          "\"%V\": %s", &b->conf->state_file, err.message);
        }

        return;
    }

    len = ngx_strlen(st.resume);

    ngx_memcpy(b->resume, st.resume, len);
    b->resume_len = len;

    if (st.has_ticket_sha256) {
        ngx_memcpy(b->spent_ticket, st.ticket_sha256, EGRESS_SHA256_LEN);
        b->has_spent_ticket = 1;
    }

    egress_state_wipe(&st);
}


static void
ngx_stream_egress_bridge_save_state(ngx_stream_egress_bridge_t *b)
{
    egress_error_t  err;
    egress_state_t  st;

    if (b->conf->state_file.len == 0) {
        return;
    }

    ngx_memzero(&st, sizeof(egress_state_t));

    ngx_memcpy(st.resume, b->resume,
               ngx_min(b->resume_len, sizeof(st.resume) - 1));

    if (b->has_spent_ticket) {
        ngx_memcpy(st.ticket_sha256, b->spent_ticket, EGRESS_SHA256_LEN);
        st.has_ticket_sha256 = 1;
    }

    /* the lease or session is over: `egress client` stops nginx on this */
    st.ended = (int) b->ended;

    if (egress_state_save(&st, (char *) b->conf->state_file.data, &err)
        == 0)
    {
        egress_state_wipe(&st);
        b->state_unsaved = 0;
        return;
    }

    egress_state_wipe(&st);
    b->state_unsaved = 1;

    ngx_log_error(NGX_LOG_ERR, b->log, 0,
                  "egress bridge: cannot write state file \"%V\" (%s); a "
                  "reconnect after a restart will need a new ticket",
                  &b->conf->state_file, err.message);
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
            && ngx_stream_egress_bridge_upgrade_response(b) != NGX_AGAIN)
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
            if (ngx_stream_egress_bridge_upgrade_response(b) != NGX_AGAIN) {
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


/*
 * Checks the upgrade response so far (lib/egress_upgrade.c). Returns
 * NGX_AGAIN when its head, or a refusal's body, is still arriving, NGX_OK
 * when the socket is open (or the attempt was handled as failed).
 */

static ngx_int_t
ngx_stream_egress_bridge_upgrade_response(ngx_stream_egress_bridge_t *b)
{
    int                     rc;
    size_t                  body_len;
    egress_error_t          err;
    egress_upgrade_resp_t   r;

    rc = egress_upgrade_parse(&r, (char *) b->hs.start,
                              b->hs.last - b->hs.start, b->accept, &err);

    if (rc == 0) {
        return NGX_AGAIN;
    }

    if (rc < 0) {
        ngx_stream_egress_bridge_set_reason(b, "invalid WebSocket upgrade "
                                            "response from %V: %s",
                                            b->peer.name, err.message);
        ngx_stream_egress_bridge_fail(b, 1);
        return NGX_OK;
    }

    if (r.status != 101) {
        if (!egress_upgrade_body(&r, b->hs.last - b->hs.start,
                                 b->hs.end - b->hs.start, b->eof, &body_len))
        {
            return NGX_AGAIN;
        }

        ngx_stream_egress_bridge_refused(b, r.status,
                                         b->hs.start + r.head_len, body_len);
        return NGX_OK;
    }

    b->version = egress_proto_from_subprotocol(r.subprotocol);

    if (b->version == 0) {
        ngx_stream_egress_bridge_set_reason(b, "coordinator chose an "
                                            "unknown subprotocol \"%s\"",
                                            r.subprotocol);
        ngx_stream_egress_bridge_fail(b, 1);
        return NGX_OK;
    }

    if (b->conf->protocol && (ngx_uint_t) b->version != b->conf->protocol) {
        ngx_stream_egress_bridge_set_reason(b, "coordinator chose egress.v%ui, "
                                            "egress_bridge_protocol requires "
                                            "egress.v%ui", (ngx_uint_t) b->version,
                                            b->conf->protocol);
        ngx_stream_egress_bridge_fail(b, 1);
        return NGX_OK;
    }

    /* what follows the head already belongs to the WebSocket */
    b->hs.pos = b->hs.start + r.head_len;
    b->hs.end = b->hs.start + NGX_STREAM_EGRESS_IN_SIZE;

    if (ngx_stream_egress_bridge_ws_init(b) != NGX_OK) {
        ngx_stream_egress_bridge_set_reason(b, "WebSocket setup failed");
        ngx_stream_egress_bridge_fail(b, 1);
        return NGX_OK;
    }

    return NGX_OK;
}


static void
ngx_stream_egress_bridge_refused(ngx_stream_egress_bridge_t *b,
    ngx_uint_t status, u_char *body, size_t len)
{
    size_t      n;
    ngx_uint_t  retry;
    u_char      text[NGX_STREAM_EGRESS_REASON_MAX];

    /* one printable line: it ends up in 503 bodies */
    n = egress_upgrade_refusal_text((char *) body, len, (char *) text,
                                    sizeof(text));

    ngx_stream_egress_bridge_set_reason(b, "coordinator refused the bridge: "
                                        "HTTP %ui %*s", status, n, text);

    ngx_log_error(NGX_LOG_ERR, b->log, 0, "egress bridge: %*s (with %s)",
                  b->reason_len, b->reason,
                  b->with_ticket ? "ticket" : "resume secret");

    retry = 1;

    switch (status) {

    case 401:
        /* this credential is dead; another one may still work */
        if (b->with_ticket) {
            ngx_memcpy(b->spent_ticket, b->used_ticket, EGRESS_SHA256_LEN);
            b->has_spent_ticket = 1;
            ngx_stream_egress_bridge_save_state(b);

        } else {
            ngx_memcpy(b->dead_resume, b->used_resume, EGRESS_SHA256_LEN);
            b->has_dead_resume = 1;
        }

        break;

    default:
        if (!egress_http_status_fatal((int) status)) {
            break;
        }

        /* fatal for this session: only a new ticket can help */
        if (egress_http_status_ends_session((int) status)) {
            b->ended = status;
        }

        if (b->with_ticket) {
            ngx_memcpy(b->spent_ticket, b->used_ticket, EGRESS_SHA256_LEN);
            b->has_spent_ticket = 1;
        }

        if (b->with_ticket || b->ended) {
            ngx_stream_egress_bridge_save_state(b);
        }

        b->need_ticket = 1;
        break;
    }

    ngx_stream_egress_bridge_fail(b, retry);
}


static ngx_int_t
ngx_stream_egress_bridge_ws_init(ngx_stream_egress_bridge_t *b)
{
    ngx_connection_t              *c;
    struct wslay_event_callbacks   cb;

    c = b->connection;

    ngx_memzero(&cb, sizeof(struct wslay_event_callbacks));

    cb.recv_callback = ngx_stream_egress_ws_recv;
    cb.send_callback = ngx_stream_egress_ws_send;
    cb.genmask_callback = ngx_stream_egress_ws_genmask;
    cb.on_msg_recv_callback = ngx_stream_egress_ws_on_msg;

    if (wslay_event_context_client_init(&b->ws, &cb, b) != 0) {
        b->ws = NULL;
        return NGX_ERROR;
    }

    wslay_event_config_set_max_recv_msg_length(b->ws, EGRESS_MAX_MESSAGE);

    b->out.start = ngx_palloc(b->pool, NGX_STREAM_EGRESS_OUT_SIZE);
    if (b->out.start == NULL) {
        return NGX_ERROR;
    }

    b->out.end = b->out.start + NGX_STREAM_EGRESS_OUT_SIZE;
    b->out.pos = b->out.start;
    b->out.last = b->out.start;

    b->state = NGX_STREAM_EGRESS_BRIDGE_OPEN;
    b->last_recv = ngx_current_msec;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    c->read->handler = ngx_stream_egress_bridge_read_handler;
    c->write->handler = ngx_stream_egress_bridge_write_handler;

    if (b->with_ticket) {
        /* the ticket is spent now, whatever happens next */
        ngx_memcpy(b->spent_ticket, b->used_ticket, EGRESS_SHA256_LEN);
        b->has_spent_ticket = 1;
        ngx_stream_egress_bridge_save_state(b);
    }

    b->need_ticket = 0;
    b->ended = 0;

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

    ngx_add_timer(&b->ping, b->conf->ping_interval);

    /* frames may already sit behind the response head */
    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_OK;
}


static ssize_t
ngx_stream_egress_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf,
    size_t len, int flags, void *user_data)
{
    ngx_stream_egress_bridge_t *b = user_data;

    ssize_t            n;
    ngx_connection_t  *c;

    if (b->failed) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }

    if (b->hs.pos < b->hs.last) {
        n = ngx_min((size_t) (b->hs.last - b->hs.pos), len);
        ngx_memcpy(buf, b->hs.pos, n);
        b->hs.pos += n;
        return n;
    }

    if (b->recv_budget == 0) {
        /* yield to other connections; the read event is reposted */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }

    /*
     * wslay asks for at most 4 KiB at a time; one recv() into the
     * read-ahead buffer serves many of those asks
     */

    c = b->connection;

    n = c->recv(c, b->hs.start,
                ngx_min((size_t) (b->hs.end - b->hs.start), b->recv_budget));

    if (n == NGX_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }

    if (n == 0 || n == NGX_ERROR) {
        b->eof = 1;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }

    b->recv_budget -= n;
    b->last_recv = ngx_current_msec;

    b->hs.pos = b->hs.start;
    b->hs.last = b->hs.start + n;

    n = ngx_min(n, (ssize_t) len);
    ngx_memcpy(buf, b->hs.pos, n);
    b->hs.pos += n;

    return n;
}


static ssize_t
ngx_stream_egress_ws_send(wslay_event_context_ptr ctx, const uint8_t *data,
    size_t len, int flags, void *user_data)
{
    ngx_stream_egress_bridge_t *b = user_data;

    size_t  n;

    if (b->out.last == b->out.end) {
        if (ngx_stream_egress_bridge_flush(b) == NGX_ERROR) {
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }

        if (b->out.last == b->out.end) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
            return -1;
        }
    }

    n = ngx_min(len, (size_t) (b->out.end - b->out.last));

    ngx_memcpy(b->out.last, data, n);
    b->out.last += n;

    return n;
}


static int
ngx_stream_egress_ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf,
    size_t len, void *user_data)
{
    if (egress_random_bytes(buf, len, NULL) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }

    return 0;
}


static void
ngx_stream_egress_ws_on_msg(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    ngx_stream_egress_bridge_t *b = user_data;

    size_t   n;
    u_char  *p, *last;

    if (b->failed) {
        return;
    }

    switch (arg->opcode) {

    case WSLAY_TEXT_FRAME:
        ngx_stream_egress_bridge_message(b, arg->msg, arg->msg_length, 0);
        break;

    case WSLAY_BINARY_FRAME:
        ngx_stream_egress_bridge_message(b, arg->msg, arg->msg_length, 1);
        break;

    case WSLAY_CONNECTION_CLOSE:
        if (arg->msg_length > 2) {
            n = ngx_min(arg->msg_length - 2, sizeof(b->close_reason));
            ngx_memcpy(b->close_reason, arg->msg + 2, n);
            b->close_reason_len = n;

            last = b->close_reason + n;

            for (p = b->close_reason; p < last; p++) {
                if (*p < ' ' || *p >= 0x7f) {
                    *p = '?';
                }
            }
        }

        break;

    default:
        /* ping (answered by wslay) and pong: liveness only */
        break;
    }
}


static void
ngx_stream_egress_bridge_read_handler(ngx_event_t *ev)
{
    int                          rc;
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

        ngx_stream_egress_bridge_closed(b);
        return;
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

    if (ngx_stream_egress_bridge_flush(b) == NGX_ERROR) {
        goto failed;
    }

    if (wslay_event_want_write(b->ws) && wslay_event_send(b->ws) != 0) {
        goto failed;
    }

    if (ngx_stream_egress_bridge_flush(b) == NGX_ERROR) {
        goto failed;
    }

    if (b->out.pos != b->out.last || wslay_event_want_write(b->ws)) {
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


static ngx_int_t
ngx_stream_egress_bridge_flush(ngx_stream_egress_bridge_t *b)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = b->connection;

    while (b->out.pos < b->out.last) {
        n = c->send(c, b->out.pos, b->out.last - b->out.pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        b->out.pos += n;
    }

    if (b->out.pos == b->out.last) {
        b->out.pos = b->out.start;
        b->out.last = b->out.start;

    } else if (b->out.pos != b->out.start && b->out.last == b->out.end) {
        /* the TLS context accepts a moved write buffer */
        b->out.last = ngx_movemem(b->out.start, b->out.pos,
                                  b->out.last - b->out.pos);
        b->out.pos = b->out.start;
    }

    return NGX_OK;
}


/* the coordinator sent a close frame: the socket is done */

static void
ngx_stream_egress_bridge_closed(ngx_stream_egress_bridge_t *b)
{
    uint16_t    code;
    ngx_uint_t  fatal, level;

    code = wslay_event_get_status_code_received(b->ws);

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
         * The session is over (4001, 4003, 4004) or a newer socket took it
         * over (4002, e.g. our successor after a reload): do not fight.
         */
        b->need_ticket = 1;

        if (egress_close_ends_session(code)) {
            b->ended = code;
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

    if (b->ws) {
        wslay_event_context_free(b->ws);
        b->ws = NULL;
    }

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


static void
ngx_stream_egress_bridge_abort_all(ngx_stream_egress_bridge_t *b,
    ngx_str_t *reason)
{
    ngx_rbtree_node_t        *node;
    ngx_stream_egress_ctx_t  *ctx;

    while (b->streams.root != &b->sentinel) {
        node = ngx_rbtree_min(b->streams.root, &b->sentinel);
        ctx = (ngx_stream_egress_ctx_t *) node;

        /* the streams died with the bridge or peer: no close frames */
        ngx_stream_egress_bridge_forget(ctx);
        ngx_stream_egress_proxy_abort(ctx, reason);
    }
}


static void
ngx_stream_egress_bridge_wake(ngx_stream_egress_bridge_t *b)
{
    ngx_queue_t              *q;
    ngx_stream_egress_ctx_t  *ctx;

    while (!ngx_queue_empty(&b->blocked)) {
        q = ngx_queue_head(&b->blocked);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_stream_egress_ctx_t, blocked);
        ctx->is_blocked = 0;

        ngx_stream_egress_proxy_resume(ctx);
    }
}


static void
ngx_stream_egress_bridge_set_reason(ngx_stream_egress_bridge_t *b,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(b->reason, b->reason + sizeof(b->reason), fmt, args);
    va_end(args);

    b->reason_len = p - b->reason;
}


static void
ngx_stream_egress_bridge_kick(ngx_stream_egress_bridge_t *b)
{
    ngx_event_t  *wev;

    if (b->connection == NULL) {
        return;
    }

    wev = b->connection->write;

    if (!wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }
}


static ngx_int_t
ngx_stream_egress_bridge_queue(ngx_stream_egress_bridge_t *b,
    egress_frame_t *f)
{
    int                      binary;
    size_t                   n;
    egress_error_t           err;
    struct wslay_event_msg   msg;

    if (b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        return NGX_DECLINED;
    }

    n = egress_frame_encode(f, b->version, b->frame, b->frame_cap, &binary,
                            &err);
    if (n == 0) {
        ngx_log_error(NGX_LOG_ALERT, b->log, 0,
                      "egress bridge: cannot encode %s frame for stream "
                      "%uD: %s", egress_frame_type_name(f->type), f->id,
                      err.message);
        return NGX_ERROR;
    }

    msg.opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME;
    msg.msg = b->frame;
    msg.msg_length = n;

    /* wslay copies the message */
    if (wslay_event_queue_msg(b->ws, &msg) != 0) {
        return NGX_ERROR;
    }

    ngx_stream_egress_bridge_kick(b);

    return NGX_OK;
}


ngx_int_t
ngx_stream_egress_bridge_open(ngx_stream_egress_ctx_t *ctx)
{
    ngx_uint_t                   tries;
    egress_frame_t               f;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    /* ids are not reused while live; skip any still in the tree */

    for (tries = 0; ; tries++) {
        if (b->next_id == 0) {
            b->next_id = 1;
        }

        if (ngx_stream_egress_bridge_find(b, b->next_id) == NULL) {
            break;
        }

        if (tries > b->nstreams) {
            return NGX_ERROR;
        }

        b->next_id++;
    }

    ctx->id = b->next_id++;
    ctx->last_id = ctx->id;

    ngx_memzero(&f, sizeof(egress_frame_t));
    f.type = EGRESS_FRAME_OPEN;
    f.id = ctx->id;
    f.host.data = (const char *) ctx->req.host;
    f.host.len = ctx->req.host_len;
    f.port = ctx->req.port;

    if (b->version == EGRESS_PROTO_V2) {
        f.window = EGRESS_INITIAL_WINDOW;
    }

    if (ngx_stream_egress_bridge_queue(b, &f) != NGX_OK) {
        ctx->id = 0;
        return NGX_ERROR;
    }

    ctx->node.key = ctx->id;
    ngx_rbtree_insert(&b->streams, &ctx->node);
    ctx->in_tree = 1;
    b->nstreams++;

    return NGX_OK;
}


/* removes the stream from the table (the id is no longer live here) */

void
ngx_stream_egress_bridge_forget(ngx_stream_egress_ctx_t *ctx)
{
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (ctx->in_tree && b) {
        ngx_rbtree_delete(&b->streams, &ctx->node);
        b->nstreams--;
    }

    ctx->in_tree = 0;
    ctx->id = 0;

    ngx_stream_egress_bridge_unwait(ctx);
}


/* how many more bytes streams may queue before they must wait */

size_t
ngx_stream_egress_bridge_room(void)
{
    size_t                       queued;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        return 0;
    }

    queued = wslay_event_get_queued_msg_length(b->ws)
             + (b->out.last - b->out.pos);

    if (queued >= NGX_STREAM_EGRESS_BRIDGE_HIGH) {
        return 0;
    }

    return NGX_STREAM_EGRESS_BRIDGE_HIGH - queued;
}


void
ngx_stream_egress_bridge_wait(ngx_stream_egress_ctx_t *ctx)
{
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || ctx->is_blocked) {
        return;
    }

    ngx_queue_insert_tail(&b->blocked, &ctx->blocked);
    ctx->is_blocked = 1;
}


void
ngx_stream_egress_bridge_unwait(ngx_stream_egress_ctx_t *ctx)
{
    if (ctx->is_blocked) {
        ngx_queue_remove(&ctx->blocked);
        ctx->is_blocked = 0;
    }
}


/*
 * Writes a v2 data message as one masked frame straight into the output
 * buffer, 8 bytes per XOR: wslay's sender masks a byte at a time through a
 * 4 KiB bounce buffer, and data is nearly all the module sends. Only while
 * wslay has nothing pending, so that frames stay in order. NGX_DECLINED
 * when that does not hold or the buffer has no room for the frame.
 */

static ngx_int_t
ngx_stream_egress_bridge_put_data(ngx_stream_egress_bridge_t *b, uint32_t id,
    const u_char *data, size_t len)
{
    u_char   key[4], head[EGRESS_V2_DATA_HEADER], *p;
    size_t   need;

    if (wslay_event_want_write(b->ws) || wslay_event_get_close_sent(b->ws)) {
        return NGX_DECLINED;
    }

    need = EGRESS_WS_HEADER_MAX + EGRESS_V2_DATA_HEADER + len;

    if ((size_t) (b->out.end - b->out.last) < need) {
        if (ngx_stream_egress_bridge_flush(b) == NGX_ERROR) {
            return NGX_ERROR;
        }

        if ((size_t) (b->out.end - b->out.last) < need) {
            return NGX_DECLINED;
        }
    }

    if (egress_random_bytes(key, sizeof(key), NULL) != 0) {
        return NGX_ERROR;
    }

    egress_frame_data_header(head, id);

    p = b->out.last;
    p += egress_ws_frame_header(p, 1, EGRESS_V2_DATA_HEADER + len, key);

    egress_ws_mask(p, head, EGRESS_V2_DATA_HEADER, key, 0);
    egress_ws_mask(p + EGRESS_V2_DATA_HEADER, data, len, key,
                   EGRESS_V2_DATA_HEADER);

    b->out.last = p + EGRESS_V2_DATA_HEADER + len;

    return NGX_OK;
}


ngx_int_t
ngx_stream_egress_bridge_send_data(ngx_stream_egress_ctx_t *ctx,
    const u_char *data, size_t len)
{
    egress_frame_t               f;
    struct wslay_event_msg       msg;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        return NGX_DECLINED;
    }

    if (b->version == EGRESS_PROTO_V2) {
        switch (ngx_stream_egress_bridge_put_data(b, ctx->id, data, len)) {
        case NGX_OK:
            ngx_stream_egress_bridge_kick(b);
            return NGX_OK;
        case NGX_ERROR:
            return NGX_ERROR;
        default: /* NGX_DECLINED: through wslay's queue */
            break;
        }

        /* [id][bytes]: gathered here, copied once more by wslay */
        egress_frame_data_header(b->frame, ctx->id);
        ngx_memcpy(b->frame + EGRESS_V2_DATA_HEADER, data, len);

        msg.opcode = WSLAY_BINARY_FRAME;
        msg.msg = b->frame;
        msg.msg_length = EGRESS_V2_DATA_HEADER + len;

        if (wslay_event_queue_msg(b->ws, &msg) != 0) {
            return NGX_ERROR;
        }

        ngx_stream_egress_bridge_kick(b);

        return NGX_OK;
    }

    ngx_memzero(&f, sizeof(egress_frame_t));
    f.type = EGRESS_FRAME_DATA;
    f.id = ctx->id;
    f.body = data;
    f.body_len = len;

    return ngx_stream_egress_bridge_queue(b, &f);
}


ngx_int_t
ngx_stream_egress_bridge_send_close(uint32_t id, ngx_uint_t half)
{
    egress_frame_t               f;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || id == 0) {
        return NGX_DECLINED;
    }

    ngx_memzero(&f, sizeof(egress_frame_t));
    f.type = EGRESS_FRAME_CLOSE;
    f.id = id;
    f.half = (half && b->version == EGRESS_PROTO_V2) ? 1 : 0;

    return ngx_stream_egress_bridge_queue(b, &f);
}


ngx_int_t
ngx_stream_egress_bridge_send_window(uint32_t id, uint32_t increment)
{
    egress_frame_t               f;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || b->version != EGRESS_PROTO_V2 || increment == 0) {
        return NGX_DECLINED;
    }

    ngx_memzero(&f, sizeof(egress_frame_t));
    f.type = EGRESS_FRAME_WINDOW;
    f.id = id;
    f.increment = increment;

    return ngx_stream_egress_bridge_queue(b, &f);
}


static ngx_stream_egress_ctx_t *
ngx_stream_egress_bridge_find(ngx_stream_egress_bridge_t *b, uint32_t id)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = b->streams.root;
    sentinel = b->streams.sentinel;

    while (node != sentinel) {

        if (id < node->key) {
            node = node->left;
            continue;
        }

        if (id > node->key) {
            node = node->right;
            continue;
        }

        return (ngx_stream_egress_ctx_t *) node;
    }

    return NULL;
}


/* one decoded WebSocket message from the coordinator */

static void
ngx_stream_egress_bridge_message(ngx_stream_egress_bridge_t *b,
    const uint8_t *msg, size_t len, ngx_uint_t binary)
{
    size_t                    n;
    ngx_str_t                 reason;
    egress_error_t            err;
    egress_frame_t            f;
    ngx_stream_egress_ctx_t  *ctx;

    ngx_memzero(&f, sizeof(egress_frame_t));

    if (egress_frame_decode(&f, b->version, msg, len, binary, &err) != 0) {

        ctx = f.id ? ngx_stream_egress_bridge_find(b, f.id) : NULL;

        ngx_log_error(NGX_LOG_ERR, b->log, 0,
                      "egress bridge: invalid frame from the coordinator "
                      "(stream %uD): %s", f.id, err.message);

        if (ctx) {
            /* a bad frame for one stream ends that stream only */
            (void) ngx_stream_egress_bridge_send_close(f.id, 0);
            ngx_stream_egress_bridge_forget(ctx);
            ngx_str_set(&reason, "invalid frame from the bridge");
            ngx_stream_egress_proxy_abort(ctx, &reason);
            return;
        }

        ngx_stream_egress_bridge_set_reason(b, "invalid frame from the "
                                            "coordinator: %s", err.message);
        b->failed = 1;
        return;
    }

    switch (f.type) {

    case EGRESS_FRAME_HELLO:
        b->hello = 1;
        b->peer_connected = f.peer_connected;
        b->backoff = NGX_STREAM_EGRESS_BACKOFF_MIN;

        /* the secret we used is spent; an empty one means "no resume" */

        n = 0;

        if (f.resume.len
            && egress_state_secret_ok(f.resume.data, f.resume.len,
                                      EGRESS_MAX_TOKEN_TEXT))
        {
            n = f.resume.len;
            ngx_memcpy(b->resume, f.resume.data, n);
            b->has_dead_resume = 0;
        }

        b->resume_len = n;
        ngx_stream_egress_bridge_save_state(b);

        ngx_log_error(NGX_LOG_NOTICE, b->log, 0,
                      "egress bridge: session \"%s\" ready, host agent %s",
                      f.session_id.data,
                      f.peer_connected ? "connected" : "not connected");
        break;

    case EGRESS_FRAME_PEER:
        b->peer_connected = f.connected;

        ngx_log_error(NGX_LOG_NOTICE, b->log, 0,
                      "egress bridge: host agent %s",
                      f.connected ? "connected" : "disconnected");

        if (!f.connected) {
            ngx_str_set(&reason, "host agent disconnected");
            ngx_stream_egress_bridge_abort_all(b, &reason);
        }

        break;

    case EGRESS_FRAME_OPEN_OK:
        ctx = ngx_stream_egress_bridge_find(b, f.id);

        if (ctx == NULL || ctx->state != NGX_STREAM_EGRESS_OPENING) {
            /* we gave up on it (timeout) meanwhile */
            (void) ngx_stream_egress_bridge_send_close(f.id, 0);
            break;
        }

        ngx_stream_egress_proxy_open_ok(ctx, f.window);
        break;

    case EGRESS_FRAME_ERROR:
        ctx = ngx_stream_egress_bridge_find(b, f.id);

        if (ctx) {
            ngx_stream_egress_bridge_forget(ctx);
            ngx_stream_egress_proxy_open_error(ctx, &f.message);
        }

        break;

    case EGRESS_FRAME_DATA:
        ctx = ngx_stream_egress_bridge_find(b, f.id);

        if (ctx) {
            ngx_stream_egress_proxy_data(ctx, f.body, f.body_len);
        }

        break;

    case EGRESS_FRAME_CLOSE:
        ctx = ngx_stream_egress_bridge_find(b, f.id);

        if (ctx) {
            ngx_stream_egress_proxy_close(ctx, f.half);
        }

        break;

    case EGRESS_FRAME_WINDOW:
        ctx = ngx_stream_egress_bridge_find(b, f.id);

        if (ctx) {
            ngx_stream_egress_proxy_window(ctx, f.increment);
        }

        break;

    default:
        ngx_log_error(NGX_LOG_INFO, b->log, 0,
                      "egress bridge: ignoring %s frame for stream %uD",
                      egress_frame_type_name(f.type), f.id);
        break;
    }

    egress_frame_release(&f);
}
