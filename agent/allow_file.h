/*
 * allow_file.h: the host agent's --allow-file, re-read on SIGHUP, and the
 * small state file through which `egress allow` finds and hears the agent.
 *
 * LEASE.host.allow in the state directory (0600) holds, one per line:
 *   pid PID               the agent process that takes SIGHUP
 *   file PATH             the allow file, absolute
 *   reload GEN ok N | reload GEN error TEXT   the last (re)load
 *   pattern P             each effective pattern
 * It is rewritten after every reload and removed when the agent ends.
 */

#ifndef EGRESS_ALLOW_FILE_H
#define EGRESS_ALLOW_FILE_H

#include "host_types.h"

#define ALLOW_FILE_MAX (1024 * 1024) /* bytes of an allow file */

/* Adds the patterns of the file at path to al (all or nothing). 0, or -1 with err. */
int allow_file_read(egress_allow_t *al, const char *path, egress_error_t *err);

/* The whole allowlist of o afresh: --profile, --allow, --allow-file, --ports. */
egress_allow_t *allow_file_build(const host_opts_t *o, egress_error_t *err);

/* The state file's path for lease. 0, or -1 when there is no state directory. */
int allow_file_state_path(char *out, size_t cap, const char *lease);

/* Writes the state file after load number gen (result NULL: ok). */
void allow_file_state_write(agent_t *ag, unsigned gen, const char *error);
void allow_file_state_remove(agent_t *ag);

/* SIGHUP: re-reads the allowlist; a bad file leaves the old list in force. */
void allow_file_reload(agent_t *ag);

#endif /* EGRESS_ALLOW_FILE_H */
