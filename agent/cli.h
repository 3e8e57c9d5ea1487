/*
 * cli.h: what the operator commands (host, start, client, status, stop,
 * ticket, lease) share: the common flags, coordinator access through the
 * API, and small output helpers.
 */

#ifndef EGRESS_CLI_H
#define EGRESS_CLI_H

#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "agent.h"

#define CLI_TIMEOUT_MS 15000

typedef struct {
    egress_config_t cfg; /* coordinator URL and token (flags, env, config file) */
    egress_url_t url;
    const char *prog;         /* "egress lease", for messages */
    void (*usage)(FILE *out); /* the command's --help */
    const char *id;           /* --id LEASE (cli_take_lease also takes a positional one) */
    int rc;                   /* the exit code when cli_getopt() returns CLI_OPT_EXIT */
    int parsing;              /* cli_getopt() has started on argv */
} cli_t;

/* The flags every command takes; ends the command's longopts table. */
#define CLI_OPTIONS_COMMON                                                                     \
    {"id", required_argument, NULL, 'i'}, {"coordinator", required_argument, NULL, 'c'},       \
        {"help", no_argument, NULL, 'h'},                                                      \
    {                                                                                          \
        NULL, 0, NULL, 0                                                                       \
    }

#define CLI_OPT_EXIT (-2)

/*
 * getopt_long() over argv for a command whose longopts end with
 * CLI_OPTIONS_COMMON. The common flags are handled here: --id into c->id,
 * --coordinator into c->cfg (the last one wins), --help prints c->usage.
 * Returns the command's next own option, -1 after the last option, or
 * CLI_OPT_EXIT with the exit code in c->rc (--help, or a bad flag). With
 * shortopts starting with ':' a bad flag is explained here; otherwise
 * getopt's own message stands.
 */
int cli_getopt(cli_t *c, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

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
 * After the options: takes a positional lease id into c->id when --id was not
 * given, and checks that exactly a valid one is there. Prints the usage hint
 * and returns EXIT_USAGE, or 0.
 */
int cli_take_lease(cli_t *c, int argc, char **argv);

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
