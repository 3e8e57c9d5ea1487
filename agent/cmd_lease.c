/*
 * cmd_lease.c: `egress lease create|list|show|release`, for coordinators that
 * keep their own lease registry.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void lease_usage(FILE *out)
{
    fprintf(
        out,
        "usage: egress lease create [--slug SLUG] [--org ORG] [--ssh TARGET] [--ttl SECONDS]\n"
        "       egress lease list\n"
        "       egress lease show --id LEASE\n"
        "       egress lease release --id LEASE\n"
        "\n"
        "Manage the leases a coordinator keeps itself. A lease is the remote test box\n"
        "whose browser egress goes through this machine; its egress session lives and\n"
        "dies with it.\n"
        "\n"
        "Options:\n"
        "  --id LEASE         lease id or slug\n"
        "  --slug SLUG        readable name, [A-Za-z0-9_-]{1,64} (create)\n"
        "  --org ORG          organisation that owns the lease (default: the token's)\n"
        "  --ssh TARGET       how `egress start` reaches the lease, e.g. root@198.51.100.10\n"
        "  --ttl SECONDS      lifetime; the lease and its egress end after it (default 3600)\n"
        "  --coordinator URL  coordinator base URL (else EGRESS_COORDINATOR or the config "
        "file)\n"
        "  --json             print the coordinator's JSON instead of text\n"
        "  -h, --help         this help\n"
        "\n"
        "The API token comes from EGRESS_TOKEN or `token = ...` in ~/.config/egress/config.\n"
        "\n"
        "Exit status: 0 done; 2 usage; 3 lease forbidden, unknown or gone; 4 token refused;\n"
        "1 any other failure.\n");
}

static void lease_print(json_t *l)
{
    printf("%s slug=%s state=%s owner=%s org=%s ssh=%s expires=%s\n", cli_str(l, "id"),
           cli_str(l, "slug"), cli_str(l, "state"), cli_str(l, "owner"), cli_str(l, "org"),
           *cli_str(l, "ssh") ? cli_str(l, "ssh") : "-", cli_str(l, "expiresAt"));
}

int cmd_lease(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"slug", required_argument, NULL, 's'}, {"org", required_argument, NULL, 'o'},
        {"ssh", required_argument, NULL, 'S'},  {"ttl", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},       CLI_OPTIONS_COMMON,
    };
    cli_t c = {.prog = "egress lease", .usage = lease_usage};
    const char *verb, *id, *slug = NULL, *org = NULL, *ssh = NULL;
    long ttl = 3600;
    int json = 0, opt, rc, status;
    json_t *body = NULL, *resp = NULL;
    char path[256], *end;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        lease_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    verb = argv[1];
    argc--;
    argv++;
    while ((opt = cli_getopt(&c, argc, argv, "h", longopts)) != -1) {
        switch (opt) {
        case 's':
            slug = optarg;
            break;
        case 'o':
            org = optarg;
            break;
        case 'S':
            ssh = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 't':
            ttl = strtol(optarg, &end, 10);
            if (*end || ttl < 1 || ttl > 30L * 86400) {
                fprintf(stderr, "egress lease: --ttl must be 1..2592000 seconds\n");
                rc = EXIT_USAGE;
                goto out;
            }
            break;
        default: /* CLI_OPT_EXIT */
            rc = c.rc;
            goto out;
        }
    }
    id = c.id;
    rc = EXIT_USAGE;
    if (optind != argc) {
        fprintf(stderr, "egress lease: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if (strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "show") &&
        strcmp(verb, "release")) {
        fprintf(stderr, "egress lease: unknown action '%s' (create, list, show, release)\n",
                verb);
        goto out;
    }
    if ((!strcmp(verb, "show") || !strcmp(verb, "release")) && (!id || !cli_lease_ok(id))) {
        fprintf(stderr, "egress lease %s: --id LEASE is required ([A-Za-z0-9_-]{1,64})\n",
                verb);
        goto out;
    }
    if ((rc = cli_open(&c, 1)) != 0)
        goto out;

    if (!strcmp(verb, "create")) {
        body = json_pack("{s:I}", "ttlSeconds", (json_int_t) ttl);
        if (slug)
            json_object_set_new(body, "slug", json_string(slug));
        if (org)
            json_object_set_new(body, "org", json_string(org));
        if (ssh)
            json_object_set_new(body, "ssh", json_string(ssh));
        status = cli_api(&c, "POST", "/v1/leases", body, &resp);
    } else if (!strcmp(verb, "list")) {
        status = cli_api(&c, "GET", "/v1/leases", NULL, &resp);
    } else {
        snprintf(path, sizeof(path), "/v1/leases/%s%s", id,
                 !strcmp(verb, "release") ? "/release" : "");
        status = cli_api(&c, !strcmp(verb, "release") ? "POST" : "GET", path, NULL, &resp);
    }
    if (status < 0) {
        rc = EXIT_RUNTIME;
        goto out;
    }
    if (status != 200 && status != 201) {
        rc = cli_api_fail(&c, status, resp, verb);
        goto out;
    }
    if (json) {
        char *text = json_dumps(resp, JSON_INDENT(2));
        printf("%s\n", text ? text : "null");
        free(text);
    } else if (!strcmp(verb, "list")) {
        json_t *arr = json_object_get(resp, "leases"), *l;
        size_t i;
        json_array_foreach(arr, i, l) lease_print(l);
    } else if (!strcmp(verb, "release")) {
        printf("released %s\n", id);
    } else {
        lease_print(resp);
    }
    rc = EXIT_OK;
out:
    json_decref(body);
    json_decref(resp);
    cli_close(&c);
    return rc;
}
