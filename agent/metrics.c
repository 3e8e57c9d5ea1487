/*
 * metrics.c: `--metrics 127.0.0.1:PORT`, a Prometheus text endpoint on the
 * agent's loop. Loopback only: the numbers describe the operator's traffic.
 * Each connection gets one response (whatever it asked) and is closed.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static const char *const metrics_results[] = {"ok",
                                              "denied",
                                              "private",
                                              "dns_failed",
                                              "refused",
                                              "timeout",
                                              "unreachable",
                                              "failed",
                                              "reset",
                                              "abandoned",
                                              "flow_violation",
                                              "bridge_down",
                                              "agent_stopped",
                                              "no_memory",
                                              NULL};

typedef struct {
    uv_tcp_t tcp;
    uv_write_t wr;
    char *body;
    char rbuf[1024];
} metrics_conn_t;

void metrics_count_result(agent_t *ag, const char *result)
{
    for (size_t i = 0; metrics_results[i]; i++)
        if (strcmp(metrics_results[i], result) == 0) {
            ag->metrics.results[i]++;
            return;
        }
}

static char *metrics_render(agent_t *ag)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    fprintf(
        f,
        "# HELP egress_host_bridge_connected 1 when the WebSocket to the coordinator is open.\n"
        "# TYPE egress_host_bridge_connected gauge\n"
        "egress_host_bridge_connected %d\n"
        "# HELP egress_host_peer_connected 1 when the lease client is attached.\n"
        "# TYPE egress_host_peer_connected gauge\n"
        "egress_host_peer_connected %d\n"
        "# HELP egress_host_streams Streams currently open or dialing.\n"
        "# TYPE egress_host_streams gauge\n"
        "egress_host_streams %zu\n"
        "# HELP egress_host_streams_opened_total open requests received.\n"
        "# TYPE egress_host_streams_opened_total counter\n"
        "egress_host_streams_opened_total %llu\n"
        "# HELP egress_host_bytes_total Payload bytes relayed (up: lease to internet).\n"
        "# TYPE egress_host_bytes_total counter\n"
        "egress_host_bytes_total{direction=\"up\"} %llu\n"
        "egress_host_bytes_total{direction=\"down\"} %llu\n"
        "# HELP egress_host_bridge_queue_bytes Bytes waiting to be written to the WebSocket.\n"
        "# TYPE egress_host_bridge_queue_bytes gauge\n"
        "egress_host_bridge_queue_bytes %zu\n"
        "# HELP egress_host_window_extra_bytes Receive window granted above the start size, "
        "all streams.\n"
        "# TYPE egress_host_window_extra_bytes gauge\n"
        "egress_host_window_extra_bytes %llu\n"
        "# HELP egress_host_streams_closed_total Streams ended, by result.\n"
        "# TYPE egress_host_streams_closed_total counter\n",
        ag->bridge.established, ag->bridge.peer, ag->streams.n,
        (unsigned long long) ag->streams.total, (unsigned long long) ag->metrics.bytes_up,
        (unsigned long long) ag->metrics.bytes_down, ag->queue.bytes,
        (unsigned long long) ag->streams.windows.used);
    for (size_t i = 0; metrics_results[i]; i++)
        fprintf(f, "egress_host_streams_closed_total{result=\"%s\"} %llu\n", metrics_results[i],
                (unsigned long long) ag->metrics.results[i]);
    fclose(f);
    return buf;
}

static void metrics_on_closed(uv_handle_t *h)
{
    metrics_conn_t *mc = h->data;

    free(mc->body);
    free(mc);
}

static void metrics_on_written(uv_write_t *w, int status)
{
    metrics_conn_t *mc = w->data;

    uv_close((uv_handle_t *) &mc->tcp, metrics_on_closed);
}

static void metrics_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    metrics_conn_t *mc = h->data;

    *buf = uv_buf_init(mc->rbuf, sizeof(mc->rbuf));
}

static void metrics_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    metrics_conn_t *mc = st->data;
    agent_t *ag = st->loop->data;
    char *text, *resp = NULL;
    int len;

    if (n == 0)
        return;
    uv_read_stop(st);
    if (n < 0 || (text = metrics_render(ag)) == NULL) {
        uv_close((uv_handle_t *) st, metrics_on_closed);
        return;
    }
    len = asprintf(&resp,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   strlen(text), text);
    free(text);
    if (len < 0) {
        uv_close((uv_handle_t *) st, metrics_on_closed);
        return;
    }
    mc->body = resp;
    mc->wr.data = mc;
    uv_buf_t b = uv_buf_init(resp, (unsigned) len);
    if (uv_write(&mc->wr, st, &b, 1, metrics_on_written) < 0)
        uv_close((uv_handle_t *) st, metrics_on_closed);
}

static void metrics_on_connection(uv_stream_t *srv, int status)
{
    metrics_conn_t *mc;

    if (status < 0 || (mc = calloc(1, sizeof(*mc))) == NULL)
        return;
    uv_tcp_init(srv->loop, &mc->tcp);
    mc->tcp.data = mc;
    if (uv_accept(srv, (uv_stream_t *) &mc->tcp) < 0 ||
        uv_read_start((uv_stream_t *) &mc->tcp, metrics_on_alloc, metrics_on_read) < 0)
        uv_close((uv_handle_t *) &mc->tcp, metrics_on_closed);
}

int metrics_start(agent_t *ag, const char *addr, egress_error_t *err)
{
    char host[EGRESS_HOST_BUF];
    uint16_t port = 0;
    egress_error_t e;
    struct sockaddr_storage ss;
    int kind, rc;

    kind = egress_hostport_parse(host, &port, addr, strlen(addr), 0, &e);
    if (kind < 0)
        return egress_error_set(err, e.code, "--metrics %s: %s", addr, e.message);
    if (kind == EGRESS_HOST_NAME || !egress_host_is_loopback(host, strlen(host)))
        return egress_error_set(
            err, EGRESS_ERR_HOST,
            "--metrics must be a loopback address and port, e.g. 127.0.0.1:9464");
    if (kind == EGRESS_HOST_IPV4)
        uv_ip4_addr(host, port, (struct sockaddr_in *) &ss);
    else
        uv_ip6_addr(host, port, (struct sockaddr_in6 *) &ss);
    ag->loop.data = ag;
    uv_tcp_init(&ag->loop, &ag->metrics.srv);
    ag->metrics.on = 1;
    if ((rc = uv_tcp_bind(&ag->metrics.srv, (struct sockaddr *) &ss, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *) &ag->metrics.srv, 64, metrics_on_connection)) < 0) {
        return egress_error_set(err, EGRESS_ERR_SYSTEM, "--metrics %s: %s", addr,
                                uv_strerror(rc));
    }
    return 0;
}

void metrics_stop(agent_t *ag)
{
    if (ag->metrics.on) {
        ag->metrics.on = 0;
        uv_close((uv_handle_t *) &ag->metrics.srv, NULL);
    }
}
