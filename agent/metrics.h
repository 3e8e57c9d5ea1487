/*
 * metrics.h: the --metrics endpoint and the stream result counters (metrics.c).
 */

#ifndef EGRESS_AGENT_METRICS_H
#define EGRESS_AGENT_METRICS_H

#include "host_types.h"

/* Listens on addr (loopback ADDR:PORT only). */
int metrics_start(agent_t *ag, const char *addr, egress_error_t *err);
void metrics_stop(agent_t *ag);
/* Counts one ended stream by its audit result ("ok", "denied", ...). */
void metrics_count_result(agent_t *ag, const char *result);

#endif /* EGRESS_AGENT_METRICS_H */
