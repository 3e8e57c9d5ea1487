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
#include "status_view.h"

static void status_usage(FILE *out)
{
    fprintf(out,
            "usage: egress status --id LEASE [--json | --destinations | --watch [--count N]]\n"
            "\n"
            "Show the egress session of LEASE: one line\n"
            "  lease=L session=S profile=P host=true|false client=true|false streams=N\n"
            "or the coordinator's JSON with --json. Never shows tickets, tokens or proxy\n"
            "credentials.\n"
            "\n"
            "Options:\n"
            "  --id LEASE         lease id or slug (or as the only argument)\n"
            "  --json             print JSON\n"
            "  --destinations     the hosts the lease asked for (the 100 most recent):\n"
            "                     opens, refusals and why, bytes each way; then each\n"
            "                     refused host with the `egress allow` command for it\n"
            "  --watch            a line per second: bytes/s up and down, open streams\n"
            "                     (until Ctrl-C)\n"
            "  --count N          with --watch: stop after N lines\n"
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
        {"destinations", no_argument, NULL, 'd'},
        {"watch", no_argument, NULL, 'w'},
        {"count", required_argument, NULL, 'n'},
        CLI_OPTIONS_COMMON,
    };
    cli_t c = {.prog = "egress status", .usage = status_usage};
    const char *id;
    json_t *resp = NULL;
    char path[256];
    int json = 0, dests = 0, watch = 0, opt, rc, status, host, client;
    long count = 0;
    char *end;

    while ((opt = cli_getopt(&c, argc, argv, "h", longopts)) != -1) {
        if (opt == CLI_OPT_EXIT) {
            rc = c.rc;
            goto done;
        }
        if (opt == 'd') {
            dests = 1;
        } else if (opt == 'w') {
            watch = 1;
        } else if (opt == 'n') {
            count = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || count < 1 || count > 1000000) {
                fprintf(stderr, "egress status: --count wants a number 1..1000000\n");
                rc = EXIT_USAGE;
                goto done;
            }
        } else {
            json = 1; /* 'j' */
        }
    }
    if (json + dests + watch > 1 || (count > 0 && !watch)) {
        fprintf(stderr, "egress status: --json, --destinations and --watch exclude each other;"
                        " --count goes with --watch\n");
        rc = EXIT_USAGE;
        goto done;
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
    if (watch) {
        rc = status_watch(&c, path, count);
        goto done;
    }
    host = json_is_true(json_object_get(resp, "hostConnected"));
    client = json_is_true(json_object_get(resp, "clientConnected"));
    if (dests) {
        status_print_destinations(stdout, resp);
    } else if (json) {
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
