/*
 * daemon.h: `egress host --daemon` (daemon.c): detach, then supervise.
 */

#ifndef EGRESS_AGENT_DAEMON_H
#define EGRESS_AGENT_DAEMON_H

/*
 * Detaches (pid and log files LEASE.host.pid, LEASE.host.log in the state
 * directory), then runs run(arg) in a child process, restarting it with
 * backoff after a crash or exit code 1 and stopping on 0, 2, 3 or 4.
 * *ticket (may be NULL) is one-use: only the first child has it, then it is
 * wiped; a ticket also voids the resume state of an earlier run. Returns an
 * exit code in the calling process.
 */
int daemon_run(const char *lease, char **ticket, int (*run)(void *arg), void *arg);

#endif /* EGRESS_AGENT_DAEMON_H */
