/*
 * cli.h: what the operator commands (lease, ticket, status, client, stop)
 * share: coordinator access through the API, and small output helpers.
 */

#ifndef EGRESS_CLI_H
#define EGRESS_CLI_H

#include <jansson.h>

#include "agent.h"

#define CLI_TIMEOUT_MS 15000

typedef struct {
    egress_config_t cfg; /* coordinator URL and token (flags, env, config file) */
    egress_url_t url;
    const char *prog; /* "egress lease", for messages */
} cli_t;

/*
 * Loads the coordinator URL and token (flag values already in c->cfg win).
 * need_token: the command calls authenticated routes. Prints the problem and
 * returns an exit code, or 0.
 */
int cli_open(cli_t *c, int need_token);
void cli_close(cli_t *c);

/*
 * One API call. Returns the HTTP status with *resp the decoded JSON body (may
 * be NULL; the caller json_decref()s it), or prints the transport error and
 * returns -1.
 */
int cli_api(cli_t *c, const char *method, const char *path, json_t *body, json_t **resp);

/* Prints "prog: coordinator answered STATUS: message" and returns an exit code. */
int cli_api_fail(cli_t *c, int status, json_t *resp, const char *what);

/* String member or "" (never NULL). */
const char *cli_str(json_t *o, const char *key);

/*
 * After getopt: takes a positional lease id when --id was not given, and
 * checks that exactly a valid one is there. Prints the usage hint and
 * returns EXIT_USAGE, or 0.
 */
int cli_take_lease(const char *prog, int argc, char **argv, const char **id);

/* Sleeps ms milliseconds (polling loops of the commands). */
void cli_sleep_ms(long ms);

/* Checks a lease id or slug ([A-Za-z0-9_-]{1,64}) before it goes into a URL path. */
int cli_lease_ok(const char *id);

/* Writes data to path with mode 0600 (replacing it atomically). Returns 0 or -1 (errno). */
int cli_write_private(const char *path, const char *data);

/* How the operator machine reaches a lease (OpenSSH client, never a password prompt). */
typedef struct {
    const char *target; /* user@host */
    const char *config; /* -F FILE, or NULL */
    const char *remote; /* the egress program on the lease ("egress") */
} cli_ssh_t;

/*
 * Runs `REMOTE ARGS...` on the lease with BatchMode; input (may be NULL) is
 * written to its standard input, so secrets never appear in an argv. Output
 * goes to ours. Returns the remote exit status, 255 for an SSH failure, or -1.
 */
int cli_ssh_run(const cli_ssh_t *ssh, const char *const *args, const char *input);

#endif /* EGRESS_CLI_H */
