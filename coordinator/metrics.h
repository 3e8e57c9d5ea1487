/*
 * metrics.h: counters of the HTTP side and the Prometheus text of /metrics.
 */

#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>

typedef struct {
    unsigned long long tickets_minted;
    unsigned long long tickets_consumed;
    unsigned long long tickets_rejected;
    unsigned long long resumes_accepted;
    unsigned long long resumes_rejected;
    unsigned long long upgrades_refused[8]; /* by metrics_status_index() */
    unsigned long long rate_limited;
    unsigned long long http_requests;
} api_stats_t;
extern api_stats_t api_stats;
/* Prometheus text; caller frees. */
char *metrics_render(size_t *len);
/* Index of an upgrade refusal status in upgrades_refused (400 401 403 404 409 410 429, else 7).
 */
int metrics_status_index(int status);

#endif /* METRICS_H */
