/*
 * metrics.c: GET /metrics in the Prometheus text format.
 *
 * The instance is named once, in the info metric egress_coordinator_info
 * (label coordinator="--instance NAME", value 1), not on every series:
 * Prometheus attaches its own target label `instance` to each series it
 * scrapes, so repeating the name everywhere adds nothing when each instance
 * is scraped directly, and an exposed label called `instance` would clash
 * with that target label (renamed exported_instance, or overriding it under
 * honor_labels). The info metric is joined where needed:
 *   egress_sockets * on(instance) group_left(coordinator) egress_coordinator_info
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "egress.h"
#include "session.h"
#include "metrics.h"

api_stats_t api_stats;

static const int refusal_status[] = {400, 401, 403, 404, 409, 410, 429};

int metrics_status_index(int status)
{
    int i;

    for (i = 0; i < 7; i++) {
        if (refusal_status[i] == status) {
            return i;
        }
    }
    return 7;
}

typedef struct {
    char *buf;
    size_t len, cap;
} mbuf_t;

static void mput(mbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mput(mbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->buf == NULL) {
        return;
    }
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            return;
        }
        if ((size_t) n < b->cap - b->len) {
            b->len += (size_t) n;
            return;
        }
        char *nb = realloc(b->buf, b->cap * 2 + (size_t) n);
        if (nb == NULL) {
            free(b->buf);
            b->buf = NULL;
            return;
        }
        b->buf = nb;
        b->cap = b->cap * 2 + (size_t) n;
    }
}

static void counter(mbuf_t *b, const char *name, const char *help, unsigned long long v)
{
    mput(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, v);
}

static void gauge(mbuf_t *b, const char *name, const char *help, unsigned long long v)
{
    mput(b, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name, v);
}

char *metrics_render(size_t *len)
{
    mbuf_t b = {malloc(4096), 0, 4096};
    const session_stats_t *s = &session_stats;
    int i;

    mput(&b,
         "# HELP egress_coordinator_info This coordinator: its --instance name and version.\n"
         "# TYPE egress_coordinator_info gauge\n"
         "egress_coordinator_info{coordinator=\"%s\",version=\"%s\"} 1\n",
         coord_cfg.instance != NULL ? coord_cfg.instance : "", EGRESS_VERSION);
    gauge(&b, "egress_sessions", "Live egress sessions (with at least one socket).",
          s->sessions_live);
    mput(&b,
         "# HELP egress_sockets Connected agent sockets.\n# TYPE egress_sockets gauge\n"
         "egress_sockets{role=\"host\"} %zu\negress_sockets{role=\"client\"} %zu\n",
         s->sockets_live[ROLE_HOST], s->sockets_live[ROLE_CLIENT]);
    mput(&b,
         "# HELP egress_sockets_accepted_total Accepted agent sockets.\n"
         "# TYPE egress_sockets_accepted_total counter\n"
         "egress_sockets_accepted_total{role=\"host\"} %llu\n"
         "egress_sockets_accepted_total{role=\"client\"} %llu\n",
         (unsigned long long) s->sockets_accepted[ROLE_HOST],
         (unsigned long long) s->sockets_accepted[ROLE_CLIENT]);
    counter(&b, "egress_sockets_replaced_total", "Sockets replaced by a newer one of the role.",
            s->sockets_replaced);
    counter(&b, "egress_frames_received_total", "WebSocket messages received from agents.",
            s->frames_in);
    counter(&b, "egress_frames_sent_total", "WebSocket messages sent to agents.",
            s->frames_out);
    counter(&b, "egress_bytes_received_total", "Message bytes received from agents.",
            s->bytes_in);
    counter(&b, "egress_bytes_sent_total", "Message bytes sent to agents.", s->bytes_out);
    counter(&b, "egress_frames_rejected_total",
            "Malformed or misdirected frames (socket closed).", s->frames_rejected);
    counter(&b, "egress_opens_without_host_total",
            "open frames answered at once: no host agent.", s->opens_no_host);
    counter(&b, "egress_early_data_held_bytes_total",
            "Early data bytes held until open_ok for a host that cannot take them sooner.",
            s->early_held);
    counter(&b, "egress_rx_pauses_total", "Times a source socket was paused for a slow peer.",
            s->rx_pauses);
    counter(&b, "egress_sockets_silent_total",
            "Sockets dropped after missing three liveness intervals.", s->sockets_silent);
    counter(&b, "egress_tickets_minted_total", "Tickets issued.", api_stats.tickets_minted);
    counter(&b, "egress_tickets_consumed_total", "Tickets spent on an accepted upgrade.",
            api_stats.tickets_consumed);
    counter(&b, "egress_tickets_rejected_total", "Unknown, used, expired or misbound tickets.",
            api_stats.tickets_rejected);
    counter(&b, "egress_resumes_accepted_total", "Upgrades accepted with a resume secret.",
            api_stats.resumes_accepted);
    counter(&b, "egress_resumes_rejected_total", "Upgrades refused with a resume secret.",
            api_stats.resumes_rejected);
    counter(&b, "egress_rate_limited_total", "Requests refused with 429.",
            api_stats.rate_limited);
    counter(&b, "egress_http_requests_total", "HTTP API requests.", api_stats.http_requests);
    mput(&b, "# HELP egress_upgrades_refused_total Refused WebSocket upgrades by status.\n"
             "# TYPE egress_upgrades_refused_total counter\n");
    for (i = 0; i < 7; i++) {
        mput(&b, "egress_upgrades_refused_total{status=\"%d\"} %llu\n", refusal_status[i],
             api_stats.upgrades_refused[i]);
    }
    *len = b.len;
    return b.buf;
}
