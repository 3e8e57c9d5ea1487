/*
 * agent.h: the `egress` binary: command table, exit codes, logging,
 * configuration and the coordinator's HTTP API, shared by every command.
 * The host agent's own types are in host_types.h.
 */

#ifndef EGRESS_AGENT_H
#define EGRESS_AGENT_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "egress.h"

/* Exit codes (documented in docs/agent.md and `egress help`). */
enum {
    EXIT_OK = 0,
    EXIT_RUNTIME = 1, /* runtime error; the supervisor restarts */
    EXIT_USAGE = 2,   /* bad flags, config, allowlist; never restarted */
    EXIT_FATAL = 3,   /* fatal bridge answer: 403/404/409/410, close 4001-4004 */
    EXIT_AUTH = 4     /* credentials rejected or exhausted (401 with nothing left to try) */
};

/* One `egress <command>`; later commands add a line to the table in main.c. */
typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} egress_cmd_t;

int cmd_allow(int argc, char **argv);
int cmd_host(int argc, char **argv);
int cmd_client(int argc, char **argv);
int cmd_lease(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_ticket(int argc, char **argv);

/* ---- logging (stderr, one line, UTC timestamp) ---- */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- configuration (config.c) ---- */
typedef struct {
    char *coordinator; /* base URL, http(s)://host[:port][/prefix] */
    char *token;       /* bearer token egk_..., never logged */
} egress_config_t;

/* Fills cfg from flags (already set fields win), env, then the config file. */
int config_load(egress_config_t *cfg, egress_error_t *err);
void config_free(egress_config_t *cfg);
/* Reads a secret from a file ("-" = stdin): first line, trimmed. */
char *config_read_secret_file(const char *path, egress_error_t *err);
/* $XDG_STATE_HOME/egress (created 0700). */
int config_state_dir(char *out, size_t cap);

/* ---- coordinator URL and blocking HTTP (http.c) ---- */
typedef struct {
    int tls;
    char host[256];
    uint16_t port;
    char prefix[256]; /* path prefix without trailing slash, may be "" */
} egress_url_t;

int url_parse(egress_url_t *u, const char *url, egress_error_t *err);

/* What http_mint_ticket() asks for. */
typedef struct {
    const char *lease, *token, *session, *profile;
    const char *const *allow; /* nallow patterns */
    size_t nallow;
    int timeout_ms;
} mint_req_t;

/*
 * Any API request (body: JSON text or NULL). Returns the HTTP status with
 * *resp the decoded JSON body (NULL when there is none), or -1 with err set.
 */
struct json_t;
int http_api(const egress_url_t *u, const char *method, const char *path, const char *token,
             const char *body, struct json_t **resp, int timeout_ms, egress_error_t *err);

/*
 * POST /v1/leases/{lease}/egress/ticket. Blocking (startup, or on a uv work
 * thread). Returns 0 with ticket/session filled, or the HTTP status (>0) with
 * err set, or -1 for a transport error.
 */
int http_mint_ticket(const egress_url_t *u, const mint_req_t *rq, char *ticket, size_t tcap,
                     char *session, size_t scap, egress_error_t *err);

#endif /* EGRESS_AGENT_H */
