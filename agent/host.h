/*
 * host.h: the long-running host agent (host.c), started by `egress host`
 * (cmd_host.c) in the foreground or under the --daemon supervisor.
 */

#ifndef EGRESS_AGENT_HOST_H
#define EGRESS_AGENT_HOST_H

#include "host_types.h"

/* Runs the agent until a signal or a fatal answer; returns the exit code. */
int host_run(host_opts_t *o);

#endif /* EGRESS_AGENT_HOST_H */
