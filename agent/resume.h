/*
 * resume.h: the host agent's state file, LEASE.host.state under the state
 * directory (resume.c): the session and resume secret, kept across --daemon
 * restarts so a restarted agent resumes instead of minting a new ticket.
 */

#ifndef EGRESS_AGENT_RESUME_H
#define EGRESS_AGENT_RESUME_H

#include "host_types.h"

/* The state file of lease; -1 when there is no state directory. */
int resume_path(const char *lease, char *out, size_t cap);
/* Reads session and resume secret into ag->cred (a bad file is logged and ignored). */
void resume_load(agent_t *ag);
/* Writes them (mode 0600); nothing without a state path. */
void resume_save(agent_t *ag);

#endif /* EGRESS_AGENT_RESUME_H */
