/*
 * cmd_start.c: `egress start`, the operator's one command. It checks the
 * allowlist, finds the lease, preflights the lease over SSH, starts the
 * lease-side proxy there with a one-use client ticket handed over standard
 * input, waits until that proxy's bridge is up, then becomes the host agent
 * for the same session. A failure before the host agent runs undoes what was
 * started, so nothing is left half-running.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define START_MAX_ALLOW 64
#define START_WAIT_MS   20000

static void start_usage(FILE *out)
{
    fprintf(out,
            "usage: egress start --id LEASE (--profile NAME | --allow PATTERNS)...\n"
            "                    [--listen 127.0.0.1:3128] [--daemon] [--ssh TARGET]\n"
            "                    [--ssh-config FILE] [--remote-egress PATH]\n"
            "                    [--lease-coordinator URL] [--ports LIST] [--allow-private]\n"
            "\n"
            "Start mediated egress for LEASE in one step:\n"
            "  1. check the allowlist (no allowlist, no proxy);\n"
            "  2. resolve the lease through the coordinator (its SSH target, unless --ssh);\n"
            "  3. over SSH (BatchMode), check that nginx and the egress module are\n"
            "     installed on the lease (`egress client --check`);\n"
            "  4. mint a client ticket, which starts a new egress session, and start\n"
            "     `egress client --daemon` on the lease with the ticket on its standard\n"
            "     input (never in an argument or a file name);\n"
            "  5. wait until the coordinator sees the lease proxy connected;\n"
            "  6. run the host agent for the same session, in the foreground or with\n"
            "     --daemon in the background (it mints its own host ticket).\n"
            "If a step before 6 fails, the lease proxy is stopped and the session\n"
            "deleted again.\n"
            "\n"
            "Options:\n"
            "  --id LEASE              lease id or slug\n"
            "  --profile NAME          built-in allowlist (discord, slack); repeatable\n"
            "  --allow PATTERNS        comma-separated host patterns; merged with --profile\n"
            "  --ports LIST            ports for patterns without one (default 80,443)\n"
            "  --allow-private         let the host agent dial private addresses\n"
            "  --listen ADDR:PORT      lease proxy address, loopback only (127.0.0.1:3128)\n"
            "  --daemon                run the host agent in the background\n"
            "  --ssh TARGET            SSH destination of the lease (default: lease record)\n"
            "  --ssh-config FILE       OpenSSH client configuration (ssh -F)\n"
            "  --remote-egress PATH    the egress program on the lease (default: egress)\n"
            "  --coordinator URL       coordinator base URL, as this machine reaches it\n"
            "  --lease-coordinator URL the coordinator as the lease reaches it (default:\n"
            "                          the same); it must carry no credentials\n"
            "  -h, --help              this help\n"
            "\n"
            "The API token (EGRESS_TOKEN or the config file) stays on this machine: the\n"
            "lease only ever receives its one-use ticket.\n"
            "\n"
            "Exit status: as `egress host` once the agent runs; before that 0 never,\n"
            "1 a step failed, 2 usage or allowlist error, 3 lease forbidden/unknown/gone,\n"
            "4 token refused, 6 the lease is missing nginx or the module.\n");
}

/* Polls the session status until the lease proxy's bridge is connected. */
static int start_wait_client(cli_t *c, const char *lease)
{
    char path[256];
    json_t *resp;
    int waited, status, up;

    snprintf(path, sizeof(path), "/v1/leases/%s/egress/status", lease);
    for (waited = 0; waited < START_WAIT_MS; waited += 100) {
        resp = NULL;
        status =
            http_api(&c->url, "GET", path, c->cfg.token, NULL, &resp, CLI_TIMEOUT_MS, NULL);
        up = status == 200 && json_is_true(json_object_get(resp, "clientConnected"));
        json_decref(resp);
        if (up)
            return 0;
        cli_sleep_ms(100);
    }
    return -1;
}

/* Undoes steps 4-5: stop the lease proxy, delete the session. */
static void start_undo(cli_t *c, const cli_ssh_t *ssh, const char *lease, int remote_started)
{
    const char *args[] = {"client", "--id", lease, "--stop", NULL};
    char path[256];
    json_t *resp = NULL;

    if (remote_started)
        cli_ssh_run(ssh, args, NULL);
    snprintf(path, sizeof(path), "/v1/leases/%s/egress", lease);
    if (cli_api(c, "DELETE", path, NULL, &resp) >= 0)
        fprintf(stderr, "egress start: undone: lease proxy stopped, session deleted\n");
    json_decref(resp);
}

int cmd_start(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"id", required_argument, NULL, 'i'},
        {"profile", required_argument, NULL, 'p'},
        {"allow", required_argument, NULL, 'a'},
        {"ports", required_argument, NULL, 'P'},
        {"allow-private", no_argument, NULL, 'A'},
        {"listen", required_argument, NULL, 'l'},
        {"daemon", no_argument, NULL, 'd'},
        {"ssh", required_argument, NULL, 'S'},
        {"ssh-config", required_argument, NULL, 'F'},
        {"remote-egress", required_argument, NULL, 'R'},
        {"coordinator", required_argument, NULL, 'c'},
        {"lease-coordinator", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cli_t c = {.prog = "egress start"};
    cli_ssh_t ssh = {NULL, NULL, "egress"};
    const char *id = NULL, *listen = "127.0.0.1:3128", *ports = NULL, *lease_url = NULL;
    const char *profiles[START_MAX_ALLOW], *allows[START_MAX_ALLOW];
    size_t nprofiles = 0, nallows = 0, i;
    int daemon = 0, allow_private = 0, opt, rc, status, remote_started = 0;
    char path[256], session[EGRESS_MAX_TOKEN_TEXT + 1], *target = NULL, *ticket = NULL;
    char host[EGRESS_HOST_BUF];
    uint16_t port;
    egress_allow_t *al = NULL;
    egress_error_t e;
    egress_url_t lu;
    json_t *body = NULL, *resp = NULL;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'i':
            id = optarg;
            break;
        case 'p':
        case 'a':
            if ((opt == 'p' ? nprofiles : nallows) == START_MAX_ALLOW) {
                fprintf(stderr, "egress start: too many --profile/--allow options\n");
                return EXIT_USAGE;
            }
            if (opt == 'p')
                profiles[nprofiles++] = optarg;
            else
                allows[nallows++] = optarg;
            break;
        case 'P':
            ports = optarg;
            break;
        case 'A':
            allow_private = 1;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'd':
            daemon = 1;
            break;
        case 'S':
            ssh.target = optarg;
            break;
        case 'F':
            ssh.config = optarg;
            break;
        case 'R':
            ssh.remote = optarg;
            break;
        case 'c':
            c.cfg.coordinator = strdup(optarg);
            break;
        case 'L':
            lease_url = optarg;
            break;
        case 'h':
            start_usage(stdout);
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }
    if (cli_take_lease("egress start", argc, argv, &id) != 0)
        return EXIT_USAGE;

    /* 1. the allowlist, checked here so a typo fails before anything starts */
    if (nprofiles == 0 && nallows == 0) {
        fprintf(stderr, "egress start: refusing to start without an allowlist: pass --profile "
                        "NAME or --allow PATTERNS\n");
        return EXIT_USAGE;
    }
    if ((al = egress_allow_new()) == NULL)
        return EXIT_RUNTIME;
    for (i = 0; i < nprofiles; i++)
        if (egress_allow_add_profile(al, profiles[i], &e) < 0)
            goto bad_allow;
    for (i = 0; i < nallows; i++)
        if (egress_allow_add_list(al, allows[i], &e) < 0)
            goto bad_allow;
    if (ports && egress_allow_set_ports_list(al, ports, &e) < 0)
        goto bad_allow;
    egress_allow_free(al);
    al = NULL;
    if (egress_hostport_parse(host, &port, listen, strlen(listen), 0, &e) < 0 ||
        !egress_host_is_loopback(host, strlen(host))) {
        fprintf(stderr, "egress start: --listen %s must be a loopback address and port\n",
                listen);
        return EXIT_USAGE;
    }

    if ((rc = cli_open(&c, 1)) != 0)
        goto done;
    if (!lease_url)
        lease_url = c.cfg.coordinator;
    if (url_parse(&lu, lease_url, &e) < 0) {
        /* url_parse also refuses user:password@ URLs: no credential goes to the lease */
        fprintf(stderr, "egress start: --lease-coordinator: %s\n", e.message);
        rc = EXIT_USAGE;
        goto done;
    }
    signal(SIGPIPE, SIG_IGN);

    /* 2. the lease and its SSH target */
    snprintf(path, sizeof(path), "/v1/leases/%s", id);
    status = cli_api(&c, "GET", path, NULL, &resp);
    if (status < 0) {
        rc = EXIT_RUNTIME;
        goto done;
    }
    if (status != 200) {
        rc = cli_api_fail(&c, status, resp, "lease");
        goto done;
    }
    if (strcmp(cli_str(resp, "state"), "active") != 0) {
        fprintf(stderr, "egress start: lease %s is %s\n", id, cli_str(resp, "state"));
        rc = EXIT_FATAL;
        goto done;
    }
    if (!ssh.target && *cli_str(resp, "ssh"))
        ssh.target = target = strdup(cli_str(resp, "ssh"));
    json_decref(resp);
    resp = NULL;
    if (!ssh.target) {
        fprintf(stderr, "egress start: lease %s has no SSH target; pass --ssh user@host\n", id);
        rc = EXIT_USAGE;
        goto done;
    }

    /* 3. preflight on the lease */
    {
        const char *args[] = {"client", "--id", id, "--check", NULL};
        status = cli_ssh_run(&ssh, args, NULL);
        if (status == 127) {
            fprintf(stderr, "egress start: %s is not installed on the lease (%s)\n", ssh.remote,
                    ssh.target);
            rc = 6;
            goto done;
        }
        if (status == 255 || status < 0) {
            fprintf(stderr, "egress start: cannot reach the lease over SSH (%s)\n", ssh.target);
            rc = EXIT_RUNTIME;
            goto done;
        }
        if (status != 0) {
            fprintf(stderr, "egress start: the lease lacks what the proxy needs (above)\n");
            rc = 6;
            goto done;
        }
    }

    /* 4. client ticket (new session), lease proxy started with it on stdin */
    body = json_pack("{s:s}", "role", "client");
    snprintf(path, sizeof(path), "/v1/leases/%s/egress/ticket", id);
    status = cli_api(&c, "POST", path, body, &resp);
    if (status != 201 && status != 200) {
        rc = status < 0 ? EXIT_RUNTIME : cli_api_fail(&c, status, resp, "client ticket");
        goto done;
    }
    if (strlen(cli_str(resp, "sessionID")) >= sizeof(session)) {
        rc = EXIT_RUNTIME;
        goto done;
    }
    strcpy(session, cli_str(resp, "sessionID"));
    if (asprintf(&ticket, "%s\n", cli_str(resp, "ticket")) < 0) {
        rc = EXIT_RUNTIME;
        goto done;
    }
    {
        const char *args[] = {"client",  "--id",     id,     "--coordinator",
                              lease_url, "--listen", listen, "--ticket-file",
                              "-",       "--daemon", NULL};
        status = cli_ssh_run(&ssh, args, ticket);
    }
    explicit_bzero(ticket, strlen(ticket));
    if (status != 0) {
        fprintf(stderr, "egress start: starting the lease proxy failed (exit %d)\n", status);
        start_undo(&c, &ssh, id, 1);
        rc = EXIT_RUNTIME;
        goto done;
    }
    remote_started = 1;

    /* 5. the lease proxy's bridge is up */
    if (start_wait_client(&c, id) < 0) {
        fprintf(stderr, "egress start: the lease proxy did not connect to the coordinator "
                        "within 20 s (is --lease-coordinator reachable from the lease?)\n");
        start_undo(&c, &ssh, id, remote_started);
        rc = EXIT_RUNTIME;
        goto done;
    }
    fprintf(stderr, "egress start: lease proxy on %s:%s is connected (session %s)\n",
            ssh.target, listen, session);

    /* 6. become the host agent for the same session */
    {
        const char *hargv[2 * START_MAX_ALLOW * 2 + 24];
        size_t n = 0;

        hargv[n++] = "egress";
        hargv[n++] = "host";
        hargv[n++] = "--id";
        hargv[n++] = id;
        hargv[n++] = "--session";
        hargv[n++] = session;
        hargv[n++] = "--coordinator";
        hargv[n++] = c.cfg.coordinator;
        for (i = 0; i < nprofiles; i++) {
            hargv[n++] = "--profile";
            hargv[n++] = profiles[i];
        }
        for (i = 0; i < nallows; i++) {
            hargv[n++] = "--allow";
            hargv[n++] = allows[i];
        }
        if (ports) {
            hargv[n++] = "--ports";
            hargv[n++] = ports;
        }
        if (allow_private)
            hargv[n++] = "--allow-private";
        if (daemon)
            hargv[n++] = "--daemon";
        hargv[n] = NULL;
        fflush(NULL);
        rc = cmd_host((int) n - 1, (char **) hargv + 1);
        if (daemon && rc != EXIT_OK)
            start_undo(&c, &ssh, id, remote_started);
    }
    goto done;

bad_allow:
    fprintf(stderr, "egress start: %s\n", e.message);
    egress_allow_free(al);
    return EXIT_USAGE;
done:
    free(ticket);
    free(target);
    json_decref(body);
    json_decref(resp);
    cli_close(&c);
    return rc;
}
