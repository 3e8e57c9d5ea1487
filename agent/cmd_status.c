/*
 * cmd_status.c: `egress status`, the lease's egress session as the
 * coordinator sees it. The exit status says whether both sides are connected,
 * so scripts can wait on it.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void status_usage(FILE *out)
{
    fprintf(out, "usage: egress status --id LEASE [--json]\n"
                 "\n"
                 "Show the egress session of LEASE: one line\n"
                 "  lease=L session=S profile=P host=true|false client=true|false streams=N\n"
                 "or the coordinator's JSON with --json. Never shows tickets, tokens or proxy\n"
                 "credentials.\n"
                 "\n"
                 "Options:\n"
                 "  --id LEASE         lease id or slug (or as the only argument)\n"
                 "  --json             print JSON\n"
                 "  --coordinator URL  coordinator base URL\n"
                 "  -h, --help         this help\n"
                 "\n"
                 "Exit status: 0 host and client both connected; 1 session not (fully)\n"
                 "connected, stopped or absent; 2 usage; 3 lease forbidden, unknown or gone;\n"
                 "4 token refused; 5 coordinator unreachable.\n");
}

int cmd_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        CLI_OPTIONS_COMMON,
    };
    cli_t c = {.prog = "egress status", .usage = status_usage};
    const char *id;
    json_t *resp = NULL;
    char path[256];
    int json = 0, opt, rc, status, host, client;

    while ((opt = cli_getopt(&c, argc, argv, "h", longopts)) != -1) {
        if (opt == CLI_OPT_EXIT) {
            rc = c.rc;
            goto done;
        }
        json = 1; /* 'j' */
    }
    if ((rc = cli_take_lease(&c, argc, argv)) != 0 || (rc = cli_open(&c, 1)) != 0)
        goto done;
    id = c.id;
    snprintf(path, sizeof(path), "/v1/leases/%s/egress/status", id);
    status = cli_api(&c, "GET", path, NULL, &resp);
    if (status < 0) {
        rc = 5;
        goto done;
    }
    if (status == 404 && !strcmp(cli_str(resp, "error"), "not_found") &&
        strstr(cli_str(resp, "message"), "no egress session")) {
        if (json)
            printf("{\"leaseID\": \"%s\", \"session\": null}\n", id);
        else
            printf("lease=%s session=- host=false client=false streams=0\n", id);
        rc = EXIT_RUNTIME;
        goto done;
    }
    if (status != 200) {
        rc = cli_api_fail(&c, status, resp, "status");
        goto done;
    }
    host = json_is_true(json_object_get(resp, "hostConnected"));
    client = json_is_true(json_object_get(resp, "clientConnected"));
    if (json) {
        char *text = json_dumps(resp, JSON_INDENT(2));
        printf("%s\n", text ? text : "null");
        free(text);
    } else {
        printf("lease=%s session=%s profile=%s host=%s client=%s streams=%lld state=%s\n",
               cli_str(resp, "leaseID"), cli_str(resp, "sessionID"),
               *cli_str(resp, "profile") ? cli_str(resp, "profile") : "-",
               host ? "true" : "false", client ? "true" : "false",
               (long long) json_integer_value(json_object_get(resp, "streams")),
               *cli_str(resp, "state") ? cli_str(resp, "state")
               /* crabbox's coordinator answers "active" instead of "state" */
               : json_is_true(json_object_get(resp, "active"))  ? "active"
               : json_is_false(json_object_get(resp, "active")) ? "stopped"
                                                                : "-");
    }
    rc = host && client ? EXIT_OK : EXIT_RUNTIME;
done:
    json_decref(resp);
    cli_close(&c);
    return rc;
}
