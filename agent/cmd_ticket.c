/*
 * cmd_ticket.c: `egress ticket`, mint a one-use WebSocket ticket for manual
 * wiring (the host agent and `egress start` mint their own).
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void ticket_usage(FILE *out)
{
    fprintf(out,
            "usage: egress ticket --id LEASE --role host|client [--session S]\n"
            "                     [--profile P] [--allow LIST] [--out FILE]\n"
            "\n"
            "Mint a one-use ticket for the egress WebSocket of LEASE. A ticket expires\n"
            "after 120 seconds and is spent by the first upgrade that presents it.\n"
            "Without --session a new egress session is created, replacing any older one\n"
            "of the lease; mint the client ticket first, then the host ticket with the\n"
            "session it printed.\n"
            "\n"
            "Options:\n"
            "  --id LEASE         lease id or slug\n"
            "  --role ROLE        host (operator side) or client (lease side)\n"
            "  --session S        join this egress session instead of creating one\n"
            "  --profile P        allowlist profile recorded with the session (host)\n"
            "  --allow LIST       comma-separated patterns recorded with the session (host)\n"
            "  --out FILE         write the ticket to FILE (mode 0600) instead of stdout\n"
            "  --session-out FILE write the session id to FILE\n"
            "  --coordinator URL  coordinator base URL\n"
            "  -h, --help         this help\n"
            "\n"
            "Output: the ticket alone on stdout (unless --out), then on stderr one line\n"
            "`session=S role=R expires=T`. Keep tickets out of shell history and logs:\n"
            "hand them to the agent through a file or its standard input.\n"
            "\n"
            "Exit status: 0 minted; 2 usage; 3 lease forbidden, unknown, gone, or session\n"
            "replaced; 4 token refused; 1 any other failure.\n");
}

int cmd_ticket(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"role", required_argument, NULL, 'r'},
        {"session", required_argument, NULL, 's'},
        {"profile", required_argument, NULL, 'p'},
        {"allow", required_argument, NULL, 'a'},
        {"out", required_argument, NULL, 'o'},
        {"session-out", required_argument, NULL, 'S'},
        CLI_OPTIONS_COMMON,
    };
    cli_t c = {.prog = "egress ticket", .usage = ticket_usage};
    const char *id, *role = NULL, *session = NULL, *profile = NULL, *allow = NULL;
    const char *out = NULL, *session_out = NULL;
    json_t *body = NULL, *resp = NULL;
    char path[256];
    int opt, rc, status;

    while ((opt = cli_getopt(&c, argc, argv, "h", longopts)) != -1) {
        switch (opt) {
        case 'r':
            role = optarg;
            break;
        case 's':
            session = optarg;
            break;
        case 'p':
            profile = optarg;
            break;
        case 'a':
            allow = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'S':
            session_out = optarg;
            break;
        default: /* CLI_OPT_EXIT */
            rc = c.rc;
            goto done;
        }
    }
    id = c.id;
    if (optind != argc || !id || !cli_lease_ok(id) || !role ||
        (strcmp(role, "host") && strcmp(role, "client"))) {
        fprintf(stderr, "egress ticket: --id LEASE and --role host|client are required "
                        "(see egress ticket --help)\n");
        rc = EXIT_USAGE;
        goto done;
    }
    if ((rc = cli_open(&c, 1)) != 0)
        goto done;

    body = json_pack("{s:s}", "role", role);
    if (session)
        json_object_set_new(body, "sessionID", json_string(session));
    if (profile)
        json_object_set_new(body, "profile", json_string(profile));
    if (allow) {
        json_t *arr = json_array();
        const char *cur = allow, *item;
        size_t len;
        while (egress_list_next(&cur, &item, &len))
            if (len) /* empty items were always skipped here */
                json_array_append_new(arr, json_stringn(item, len));
        json_object_set_new(body, "allow", arr);
    }
    snprintf(path, sizeof(path), "/v1/leases/%s/egress/ticket", id);
    status = cli_api(&c, "POST", path, body, &resp);
    if (status < 0) {
        rc = EXIT_RUNTIME;
        goto done;
    }
    if (status != 200 && status != 201) {
        rc = cli_api_fail(&c, status, resp, "ticket");
        goto done;
    }
    if (out) {
        char line[512];
        snprintf(line, sizeof(line), "%s\n", cli_str(resp, "ticket"));
        if (cli_write_private(out, line) < 0) {
            fprintf(stderr, "egress ticket: cannot write %s: %s\n", out, strerror(errno));
            rc = EXIT_RUNTIME;
            goto done;
        }
    } else {
        printf("%s\n", cli_str(resp, "ticket"));
    }
    if (session_out) {
        FILE *f = fopen(session_out, "w");
        if (!f || fprintf(f, "%s\n", cli_str(resp, "sessionID")) < 0 || fclose(f) != 0) {
            fprintf(stderr, "egress ticket: cannot write %s\n", session_out);
            rc = EXIT_RUNTIME;
            goto done;
        }
    }
    fprintf(stderr, "session=%s role=%s expires=%s\n", cli_str(resp, "sessionID"),
            cli_str(resp, "role"), cli_str(resp, "expiresAt"));
    rc = EXIT_OK;
done:
    json_decref(body);
    json_decref(resp);
    cli_close(&c);
    return rc;
}
