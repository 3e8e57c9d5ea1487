/*
 * stream.c: one outbound TCP connection per bridge stream.
 *
 * open -> allowlist/port check -> async DNS (uv_getaddrinfo) -> address class
 * check on every resolved address -> non-blocking connect to each in turn
 * under one dial timer -> open_ok / error. Then bytes both ways:
 *   TCP -> WebSocket: read only while the client granted credit (uv_read_stop
 *     when it is spent, restart on window), at most one 32 KiB chunk per read.
 *   WebSocket -> TCP: each data message is one uv_write; its completion
 *     drains the receive window and may grant credit back.
 * A stream is freed once every pending request and handle has called back
 * (refs reaches 0), so late libuv callbacks never touch freed memory.
 */

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bridge.h"
#include "metrics.h"
#include "stream.h"

/* ---- table ---------------------------------------------------------------- */

static size_t stream_hash(uint32_t id, size_t n)
{
    return (size_t) ((id * 2654435761u) & (n - 1));
}

static stream_t *stream_find(agent_t *ag, uint32_t id)
{
    stream_t *s;

    if (!ag->streams.buckets)
        return NULL;
    for (s = ag->streams.buckets[stream_hash(id, ag->streams.nbuckets)]; s; s = s->hnext)
        if (s->id == id)
            return s;
    return NULL;
}

static int stream_table_grow(agent_t *ag)
{
    size_t n = ag->streams.nbuckets ? ag->streams.nbuckets * 2 : 256;
    stream_t **b = calloc(n, sizeof(*b));

    if (!b)
        return -1;
    for (size_t i = 0; i < ag->streams.nbuckets; i++) {
        stream_t *s = ag->streams.buckets[i], *next;
        for (; s; s = next) {
            size_t h = stream_hash(s->id, n);
            next = s->hnext;
            s->hnext = b[h];
            b[h] = s;
        }
    }
    free(ag->streams.buckets);
    ag->streams.buckets = b;
    ag->streams.nbuckets = n;
    return 0;
}

static int stream_table_add(agent_t *ag, stream_t *s)
{
    size_t h;

    if (ag->streams.n + 1 > ag->streams.nbuckets && stream_table_grow(ag) < 0)
        return -1;
    h = stream_hash(s->id, ag->streams.nbuckets);
    s->hnext = ag->streams.buckets[h];
    ag->streams.buckets[h] = s;
    ag->streams.n++;
    return 0;
}

static void stream_table_remove(agent_t *ag, stream_t *s)
{
    stream_t **pp = &ag->streams.buckets[stream_hash(s->id, ag->streams.nbuckets)];

    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == s) {
            *pp = s->hnext;
            ag->streams.n--;
            return;
        }
}

/* ---- chunks --------------------------------------------------------------- */

static tcpchunk_t *chunk_new(agent_t *ag, size_t len)
{
    tcpchunk_t *c;

    if (len <= EGRESS_DATA_CHUNK && ag->pool.chunks) {
        c = ag->pool.chunks;
        ag->pool.chunks = c->next;
        ag->pool.nchunks--;
        return c;
    }
    size_t cap = len <= EGRESS_DATA_CHUNK ? EGRESS_DATA_CHUNK : len;
    if ((c = malloc(sizeof(*c) + cap)) == NULL)
        return NULL;
    c->cap = cap;
    return c;
}

static void chunk_free(agent_t *ag, tcpchunk_t *c)
{
    if (c->cap == EGRESS_DATA_CHUNK && ag->pool.nchunks < AGENT_POOL_MAX) {
        c->next = ag->pool.chunks;
        ag->pool.chunks = c;
        ag->pool.nchunks++;
        return;
    }
    free(c);
}

void stream_pool_free(agent_t *ag)
{
    while (ag->pool.chunks) {
        tcpchunk_t *c = ag->pool.chunks;
        ag->pool.chunks = c->next;
        free(c);
    }
    ag->pool.nchunks = 0;
    free(ag->streams.buckets);
    ag->streams.buckets = NULL;
    ag->streams.nbuckets = 0;
}

/* ---- lifetime --------------------------------------------------------------- */

static void stream_unref(stream_t *s)
{
    if (--s->refs > 0)
        return;
    if (s->ai)
        uv_freeaddrinfo(s->ai);
    if (s->rdmsg)
        bridge_msg_free(s->ag, s->rdmsg);
    free(s);
}

static void stream_on_handle_closed(uv_handle_t *h)
{
    stream_unref(h->data);
}

static void stream_audit(stream_t *s, const char *result)
{
    agent_t *ag = s->ag;
    char ts[40];
    struct timespec now;
    struct tm tm;
    json_t *j;
    char *line;

    if (!ag->streams.audit)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03ldZ", now.tv_nsec / 1000000);
    j = json_pack("{s:s, s:I, s:s, s:i, s:s?, s:s, s:I, s:I, s:I, s:I}", "time", ts, "stream",
                  (json_int_t) s->id, "host", s->host, "port", (int) s->port, "address",
                  s->addr[0] ? s->addr : NULL, "result", result, "bytesUp",
                  (json_int_t) s->bytes_up, "bytesDown", (json_int_t) s->bytes_down,
                  "durationMs", (json_int_t) (agent_now_ms(ag) - s->t_start), "windowMax",
                  (json_int_t) s->flow.recv_peak);
    if (j && (line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL) {
        fprintf(ag->streams.audit, "%s\n", line);
        fflush(ag->streams.audit);
        free(line);
    }
    json_decref(j);
}

/* Early data never reached the destination: the dial failed or the stream ended. */
static void stream_drop_early(stream_t *s)
{
    tcpchunk_t *c;

    while ((c = s->early) != NULL) {
        s->early = c->next;
        chunk_free(s->ag, c);
    }
    s->early_tail = NULL;
    s->early_bytes = 0;
}

/*
 * Ends the stream: leaves the table, writes the audit line, closes its
 * sockets. frame: 0 none, 1 close{id}, 2 error{id, message}.
 */
static void stream_end(stream_t *s, int frame, const char *message, const char *result)
{
    agent_t *ag = s->ag;

    if (s->state == ST_DEAD)
        return;
    if (frame) {
        egress_frame_t f = {0};
        f.id = s->id;
        f.type = frame == 2 ? EGRESS_FRAME_ERROR : EGRESS_FRAME_CLOSE;
        if (frame == 2) {
            f.message.data = message;
            f.message.len = strlen(message);
        }
        bridge_send_frame(ag, &f);
    }
    if (frame == 2 && ag->o->verbose)
        agent_log("stream %u %s:%u: %s", s->id, s->host, s->port, message);
    stream_audit(s, result);
    egress_flow_release(&s->flow);
    metrics_count_result(ag, result);
    ag->metrics.bytes_up += s->bytes_up;
    ag->metrics.bytes_down += s->bytes_down;
    stream_table_remove(ag, s);
    if (s->gai_pending)
        uv_cancel((uv_req_t *) &s->gai); /* its callback then drops its reference */
    stream_drop_early(s);
    s->state = ST_DEAD;
    uv_close((uv_handle_t *) &s->timer, stream_on_handle_closed);
    if (s->tcp_open) {
        s->tcp_open = 0;
        uv_close((uv_handle_t *) &s->tcp, stream_on_handle_closed);
    }
    stream_unref(s); /* the table's reference */
}

/* ---- TCP -> WebSocket --------------------------------------------------------- */

static void stream_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    stream_t *s = h->data;
    size_t room = egress_flow_send_room(&s->flow);

    if (!s->rdmsg)
        s->rdmsg = bridge_msg_new(s->ag, EGRESS_CHUNK_CAP);
    if (!s->rdmsg || room == 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    if (room > EGRESS_DATA_CHUNK)
        room = EGRESS_DATA_CHUNK;
    *buf = uv_buf_init((char *) s->rdmsg->buf + EGRESS_V2_DATA_HEADER, (unsigned) room);
}

static void stream_read_stop(stream_t *s)
{
    if (s->reading) {
        uv_read_stop((uv_stream_t *) &s->tcp);
        s->reading = 0;
    }
}

static void stream_on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);

static void stream_read_start(stream_t *s)
{
    if (s->held)
        return;
    if (!s->reading && !s->rd_eof && s->state == ST_OPEN &&
        egress_flow_send_room(&s->flow) > 0) {
        if (uv_read_start((uv_stream_t *) &s->tcp, stream_on_alloc, stream_on_read) == 0)
            s->reading = 1;
    }
}

static void stream_maybe_finish(stream_t *s)
{
    /* Both directions half-closed: the stream is over, no frame needed. */
    if (s->rd_eof && s->wr_shut)
        stream_end(s, 0, NULL, "ok");
}

static void stream_send_data(stream_t *s, size_t n)
{
    agent_t *ag = s->ag;
    wsmsg_t *m = s->rdmsg;

    s->rdmsg = NULL;
    egress_flow_on_sent(&s->flow, n);
    s->bytes_down += n;
    if (ag->bridge.proto == EGRESS_PROTO_V2) {
        egress_frame_data_header(m->buf, s->id);
        m->len = (uint32_t) (EGRESS_V2_DATA_HEADER + n);
        m->binary = 1;
        m->stream_id = s->id;
        bridge_enqueue(ag, m);
        return;
    }
    /* v1: JSON with a base64 body. */
    egress_frame_t f = {0};
    f.type = EGRESS_FRAME_DATA;
    f.id = s->id;
    f.body = m->buf + EGRESS_V2_DATA_HEADER;
    f.body_len = n;
    bridge_send_frame(ag, &f);
    bridge_msg_free(ag, m);
}

static void stream_on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    stream_t *s = h->data;

    if (s->state != ST_OPEN)
        return;
    if (nread > 0) {
        stream_send_data(s, (size_t) nread);
        if (egress_flow_send_room(&s->flow) == 0) {
            stream_read_stop(s); /* restarted by the next window grant */
        } else if (s->ag->queue.bytes > AGENT_QUEUE_HIGH) {
            stream_read_stop(s); /* restarted when the bridge drains */
            s->held = 1;
            s->ag->queue.held = 1;
        }
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_ENOBUFS) {
        stream_read_stop(s);
        return;
    }
    if (nread == UV_EOF) {
        stream_read_stop(s);
        s->rd_eof = 1;
        if (s->ag->bridge.proto == EGRESS_PROTO_V2) {
            egress_frame_t f = {0};
            f.type = EGRESS_FRAME_CLOSE;
            f.id = s->id;
            f.half = 1;
            bridge_send_frame(s->ag, &f);
            stream_maybe_finish(s);
            return;
        }
        stream_end(s, 1, NULL, "ok");
        return;
    }
    stream_end(s, 1, NULL, "reset");
}

/* ---- WebSocket -> TCP --------------------------------------------------------- */

static void stream_on_shutdown(uv_shutdown_t *req, int status)
{
    stream_t *s = req->data;

    if (s->state == ST_OPEN) {
        s->wr_shut = 1;
        stream_maybe_finish(s);
    }
    stream_unref(s);
}

static void stream_do_shutdown(stream_t *s)
{
    s->shut.data = s;
    if (uv_shutdown(&s->shut, (uv_stream_t *) &s->tcp, stream_on_shutdown) == 0)
        s->refs++;
    else
        stream_end(s, 1, NULL, "reset");
}

/*
 * Upload bytes not yet sent to the destination: libuv's queue and the
 * kernel's unsent bytes. A slow reader shows here, however fast its socket
 * buffers took the first bytes.
 */
static size_t stream_unsent(stream_t *s)
{
    size_t n = s->tcp.write_queue_size;
    uv_os_fd_t fd;
    int q;

    if (uv_fileno((uv_handle_t *) &s->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQNSD, &q) == 0 &&
        q > 0)
        n += (size_t) q;
    return n;
}

static void stream_on_write(uv_write_t *req, int status)
{
    tcpchunk_t *c = req->data;
    stream_t *s = c->s;
    agent_t *ag = s->ag;
    size_t n = c->len;

    chunk_free(ag, c);
    s->writes_pending--;
    if (s->state == ST_OPEN) {
        if (status < 0) {
            stream_end(s, 1, NULL, "reset");
        } else {
            /* the kernel is asked only when a grant is due: not an ioctl per write */
            size_t backlog = egress_flow_wants_backlog(&s->flow, n) ? stream_unsent(s)
                                                                    : s->tcp.write_queue_size;
            uint32_t inc =
                egress_flow_on_drained_at(&s->flow, n, backlog, egress_flow_clock_ms());
            if (inc && !s->wr_half) {
                egress_frame_t f = {0};
                f.type = EGRESS_FRAME_WINDOW;
                f.id = s->id;
                f.increment = inc;
                bridge_send_frame(ag, &f);
            }
            if (s->wr_half && s->writes_pending == 0)
                stream_do_shutdown(s);
        }
    }
    stream_unref(s);
}

/* One data message to the TCP socket; -1 (chunk freed) when libuv refuses it. */
static int stream_write_chunk(stream_t *s, tcpchunk_t *c)
{
    uv_buf_t b;

    c->s = s;
    c->req.data = c;
    b = uv_buf_init((char *) c->data, (unsigned) c->len);
    if (uv_write(&c->req, (uv_stream_t *) &s->tcp, &b, 1, stream_on_write) < 0) {
        chunk_free(s->ag, c);
        return -1;
    }
    s->refs++;
    s->writes_pending++;
    return 0;
}

/* Writes what came while dialing, in order, once connected. */
static int stream_write_early(stream_t *s)
{
    tcpchunk_t *c;

    while ((c = s->early) != NULL) {
        s->early = c->next;
        s->early_bytes -= c->len;
        if (stream_write_chunk(s, c) < 0) {
            stream_drop_early(s);
            return -1;
        }
    }
    s->early_tail = NULL;
    return 0;
}

static void stream_on_data(agent_t *ag, uint32_t id, const uint8_t *body, size_t len)
{
    stream_t *s = stream_find(ag, id);
    egress_error_t err;
    tcpchunk_t *c;
    int dialing;

    if (!s || s->state == ST_DEAD || s->wr_half)
        return; /* late frame (section 5): ignored */
    /*
     * A client may send right behind open (docs/protocol.md, early data):
     * held until the connection is up, within the initial window (v1
     * streams have no credit, so the same bound is checked here).
     */
    dialing = s->state != ST_OPEN;
    if (egress_flow_on_received(&s->flow, len, &err) < 0) {
        agent_log("stream %u: %s; closing it", id, err.message);
        stream_end(s, 1, NULL, "flow_violation");
        return;
    }
    if (dialing && s->early_bytes + len > EGRESS_INITIAL_WINDOW) {
        agent_log("stream %u: more than %u bytes before the connection is up; closing it", id,
                  (unsigned) EGRESS_INITIAL_WINDOW);
        stream_end(s, 1, NULL, "flow_violation");
        return;
    }
    if (len == 0)
        return;
    if ((c = chunk_new(ag, len)) == NULL) {
        stream_end(s, 1, NULL, "no_memory");
        return;
    }
    memcpy(c->data, body, len);
    c->len = len;
    s->bytes_up += len;
    if (dialing) {
        c->next = NULL;
        if (s->early_tail)
            s->early_tail->next = c;
        else
            s->early = c;
        s->early_tail = c;
        s->early_bytes += len;
        return;
    }
    if (stream_write_chunk(s, c) < 0)
        stream_end(s, 1, NULL, "reset");
}

static void stream_on_window(agent_t *ag, uint32_t id, uint32_t increment)
{
    stream_t *s = stream_find(ag, id);
    egress_error_t err;

    if (!s || s->state != ST_OPEN)
        return;
    if (egress_flow_on_window(&s->flow, increment, &err) < 0) {
        agent_log("stream %u: %s; closing it", id, err.message);
        stream_end(s, 1, NULL, "flow_violation");
        return;
    }
    stream_read_start(s);
}

static void stream_on_close(agent_t *ag, uint32_t id, int half)
{
    stream_t *s = stream_find(ag, id);

    if (!s)
        return;
    if (!half || s->state != ST_OPEN) {
        /* full close, or the client abandons a pending open */
        stream_end(s, 0, NULL, s->state == ST_OPEN ? "ok" : "abandoned");
        return;
    }
    if (s->wr_half)
        return;
    s->wr_half = 1;
    if (s->writes_pending == 0)
        stream_do_shutdown(s);
}

void stream_release_held(agent_t *ag)
{
    ag->queue.held = 0;
    for (size_t i = 0; ag->streams.buckets && i < ag->streams.nbuckets; i++)
        for (stream_t *s = ag->streams.buckets[i]; s; s = s->hnext)
            if (s->held) {
                s->held = 0;
                stream_read_start(s);
            }
}

void stream_kill_all(agent_t *ag, int with_frames)
{
    for (size_t i = 0; ag->streams.buckets && i < ag->streams.nbuckets; i++) {
        while (ag->streams.buckets[i]) {
            stream_t *s = ag->streams.buckets[i];
            if (!with_frames)
                stream_end(s, 0, NULL, "bridge_down");
            else if (s->state == ST_OPEN)
                stream_end(s, 1, NULL, "agent_stopped");
            else
                stream_end(s, 2, "host agent stopping", "agent_stopped");
        }
    }
}

/* ---- dialing ----------------------------------------------------------------- */

static void stream_fail(stream_t *s, const char *result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void stream_fail(stream_t *s, const char *result, const char *fmt, ...)
{
    char msg[EGRESS_MAX_ERROR_TEXT];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    stream_end(s, 2, msg, result);
}

static void stream_fail_connect(stream_t *s)
{
    switch (s->last_err) {
    case UV_ECONNREFUSED:
        stream_fail(s, "refused", "connection refused by %s:%u", s->host, s->port);
        break;
    case UV_ETIMEDOUT:
        stream_fail(s, "timeout", "connection to %s:%u timed out", s->host, s->port);
        break;
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
        stream_fail(s, "unreachable", "network unreachable");
        break;
    default:
        stream_fail(s, "failed", "connection to %s:%u failed: %s", s->host, s->port,
                    uv_strerror(s->last_err));
    }
}

static void stream_dial_next(stream_t *s);

static void stream_on_retry_closed(uv_handle_t *h)
{
    stream_t *s = h->data;

    if (s->state == ST_CONNECTING)
        stream_dial_next(s);
    stream_unref(s);
}

static void stream_on_connect(uv_connect_t *req, int status)
{
    stream_t *s = req->data;
    agent_t *ag = s->ag;

    if (s->state != ST_CONNECTING) {
        stream_unref(s);
        return;
    }
    if (status < 0) {
        /* this address failed: close the socket, then try the next one */
        s->last_err = status;
        s->addr[0] = '\0';
        s->tcp_open = 0;
        stream_unref(s); /* the connect request; the table still holds s */
        uv_close((uv_handle_t *) &s->tcp, stream_on_retry_closed);
        return;
    }
    stream_unref(s);
    uv_timer_stop(&s->timer);
    s->state = ST_OPEN;
    uv_tcp_nodelay(&s->tcp, 1);

    egress_frame_t f = {0};
    f.type = EGRESS_FRAME_OPEN_OK;
    f.id = s->id;
    f.window = ag->bridge.proto == EGRESS_PROTO_V2 ? EGRESS_INITIAL_WINDOW : 0;
    bridge_send_frame(ag, &f);
    if (ag->o->verbose)
        agent_log("stream %u %s:%u connected to %s", s->id, s->host, s->port, s->addr);
    if (stream_write_early(s) < 0) {
        stream_end(s, 1, NULL, "reset");
        return;
    }
    stream_read_start(s);
}

static void stream_dial_next(stream_t *s)
{
    agent_t *ag = s->ag;
    struct addrinfo *a;

    for (a = s->next_ai; a; a = a->ai_next) {
        char txt[INET6_ADDRSTRLEN];
        const void *p = a->ai_family == AF_INET6
                            ? (const void *) &((struct sockaddr_in6 *) a->ai_addr)->sin6_addr
                            : (const void *) &((struct sockaddr_in *) a->ai_addr)->sin_addr;
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        inet_ntop(a->ai_family, p, txt, sizeof(txt));
        unsigned cls = egress_addr_classify(a->ai_addr);
        if (cls != EGRESS_ADDR_PUBLIC && !ag->o->allow_private) {
            /* checked after resolution so DNS rebinding cannot reach the LAN */
            if (!s->refused_addr[0]) {
                snprintf(s->refused_addr, sizeof(s->refused_addr), "%s", txt);
                s->refused_cls = cls;
            }
            continue;
        }
        s->next_ai = a->ai_next;
        snprintf(s->addr, sizeof(s->addr), "%s", txt);
        if (uv_tcp_init(&ag->loop, &s->tcp) < 0) {
            s->last_err = UV_ENOMEM;
            continue;
        }
        s->tcp.data = s;
        s->tcp_open = 1;
        s->refs++; /* the tcp handle */
        s->attempted = 1;
        s->conn.data = s;
        int rc = uv_tcp_connect(&s->conn, &s->tcp, a->ai_addr, stream_on_connect);
        if (rc == 0) {
            s->refs++; /* the connect request */
            return;
        }
        s->last_err = rc;
        s->addr[0] = '\0';
        s->tcp_open = 0;
        uv_close((uv_handle_t *) &s->tcp, stream_on_retry_closed);
        return;
    }
    s->next_ai = NULL;
    if (!s->attempted && s->refused_addr[0])
        stream_fail(s, "private", "not allowed: %s is a private address (%s)", s->refused_addr,
                    egress_addr_class_name(s->refused_cls));
    else
        stream_fail_connect(s);
}

/* Dials the addresses of res in turn; s owns res from here (freed with the stream). */
static void stream_dial(stream_t *s, struct addrinfo *res)
{
    s->ai = s->next_ai = res;
    s->state = ST_CONNECTING;
    s->last_err = UV_EHOSTUNREACH;
    stream_dial_next(s);
}

static void stream_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    stream_t *s = req->data;

    s->gai_pending = 0;
    if (s->state != ST_RESOLVING) {
        if (res)
            uv_freeaddrinfo(res);
        stream_unref(s);
        return;
    }
    stream_unref(s);
    if (status < 0) {
        stream_fail(s, "dns_failed", "DNS lookup failed for %s: %s", s->host,
                    status == UV_EAI_NONAME ? "no such host" : uv_strerror(status));
        return;
    }
    stream_dial(s, res);
}

static void stream_on_timeout(uv_timer_t *t)
{
    stream_t *s = t->data;

    if (s->state == ST_RESOLVING) {
        stream_fail(s, "dns_failed", "DNS lookup failed for %s: timed out", s->host);
    } else if (s->state == ST_CONNECTING) {
        s->last_err = UV_ETIMEDOUT;
        stream_fail_connect(s);
    }
}

static void stream_on_open(agent_t *ag, const egress_frame_t *f)
{
    host_opts_t *o = ag->o;
    stream_t *s;
    struct addrinfo hints, *res;
    char port[8];
    int rc;

    if (stream_find(ag, f->id)) {
        agent_log("open for live stream id %u ignored", f->id);
        return;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        egress_frame_t e = {0};
        e.type = EGRESS_FRAME_ERROR;
        e.id = f->id;
        e.message.data = "host agent out of memory";
        e.message.len = strlen(e.message.data);
        bridge_send_frame(ag, &e);
        return;
    }
    s->ag = ag;
    s->id = f->id;
    s->port = f->port;
    s->refs = 1; /* the table */
    s->t_start = agent_now_ms(ag);
    snprintf(s->host, sizeof(s->host), "%s", f->host.data);
    if (ag->bridge.proto == EGRESS_PROTO_V2) {
        egress_flow_init(&s->flow, f->window ? f->window : EGRESS_INITIAL_WINDOW,
                         EGRESS_INITIAL_WINDOW);
        ag->streams.windows.budget = o->window_budget;
        egress_flow_tune(&s->flow, &ag->streams.windows, o->window_max, egress_flow_clock_ms());
    } else
        egress_flow_init_unlimited(&s->flow);
    if (stream_table_add(ag, s) < 0) {
        free(s);
        return;
    }
    ag->streams.total++;
    uv_timer_init(&ag->loop, &s->timer);
    s->timer.data = s;
    s->refs++; /* the timer handle */
    s->state = ST_RESOLVING;

    if (!egress_allow_match(o->allow, s->host, strlen(s->host), s->port)) {
        /* The bracket lets the coordinator tell a port from a host refusal. */
        stream_fail(s, "denied", "not allowed: %s:%u is not on the allowlist%s", s->host,
                    s->port,
                    egress_allow_match_host(o->allow, s->host, strlen(s->host))
                        ? " (port not allowed for this host)"
                        : "");
        return;
    }
    uv_timer_start(&s->timer, stream_on_timeout, (uint64_t) o->dial_timeout_ms, 0);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(port, sizeof(port), "%u", s->port);
    /*
     * An address literal needs no lookup: getaddrinfo() with AI_NUMERICHOST
     * never touches the network, so dial at once instead of taking a round
     * trip through libuv's thread pool (a wake-up, and on a new thread a
     * fresh malloc arena) on the new connection's first-byte path.
     */
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(s->host, port, &hints, &res) == 0) {
        stream_dial(s, res);
        return;
    }
    hints.ai_flags = 0;
    s->gai.data = s;
    rc = uv_getaddrinfo(&ag->loop, &s->gai, stream_on_resolved, s->host, port, &hints);
    if (rc < 0) {
        stream_fail(s, "dns_failed", "DNS lookup failed for %s: %s", s->host, uv_strerror(rc));
        return;
    }
    s->refs++; /* the getaddrinfo request */
    s->gai_pending = 1;
}

/* ---- frames from the bridge ------------------------------------------------- */

void stream_on_frame(agent_t *ag, const egress_frame_t *f)
{
    switch (f->type) {
    case EGRESS_FRAME_OPEN:
        stream_on_open(ag, f);
        break;
    case EGRESS_FRAME_DATA:
        stream_on_data(ag, f->id, f->body, f->body_len);
        break;
    case EGRESS_FRAME_WINDOW:
        stream_on_window(ag, f->id, f->increment);
        break;
    case EGRESS_FRAME_CLOSE:
        stream_on_close(ag, f->id, f->half);
        break;
    case EGRESS_FRAME_ERROR:
        stream_on_close(ag, f->id, 0);
        break;
    default:
        break; /* session frames are the bridge's */
    }
}

int stream_reset(agent_t *ag, uint32_t id)
{
    if (!stream_find(ag, id))
        return 0;
    stream_on_close(ag, id, 0);
    return 1;
}
