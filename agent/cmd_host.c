/*
 * cmd_host.c: `egress host`: its options, their checks, the coordinator and
 * the credential, then the host agent in the foreground (host.c) or under
 * the --daemon supervisor (daemon.c).
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allow_file.h"
#include "cli.h"
#include "daemon.h"
#include "host.h"

static void host_usage(FILE *out)
{
    fprintf(
        out,
        "NAME\n"
        "    egress host - run the host agent for a lease\n"
        "\n"
        "SYNOPSIS\n"
        "    egress host --id LEASE (--profile NAME | --allow PATTERNS | --allow-file "
        "FILE)...\n"
        "                [options]\n"
        "\n"
        "DESCRIPTION\n"
        "    Connects to the coordinator as the lease's \"host\" side and opens the\n"
        "    TCP connections that the lease's browser asks for, from this machine, but\n"
        "    only to destinations on the allowlist. It refuses to start without an\n"
        "    allowlist. Resolved addresses that are not globally reachable (loopback,\n"
        "    private, link-local, CGNAT, ULA, multicast, unspecified, documentation,\n"
        "    benchmarking, reserved, and 6to4/NAT64/Teredo wrapping one of those) are\n"
        "    refused unless --allow-private, so a public name that resolves into your\n"
        "    LAN cannot reach it.\n"
        "\n"
        "OPTIONS\n"
        "    --id LEASE            lease id or slug (required)\n"
        "    --profile NAME        built-in allowlist: %s\n"
        "    --allow PATTERNS      comma-separated host patterns, merged with --profile;\n"
        "                          repeatable. `example.com` exact, `*.example.com` the\n"
        "                          domain and every subdomain (never a whole public\n"
        "                          suffix such as *.com or *.co.uk), IP literals exact,\n"
        "                          `host:PORT` restricts a pattern to one port\n"
        "    --allow-file FILE     more patterns, one a line (`#` comments); re-read on\n"
        "                          SIGHUP and by `egress allow`: a bad file is refused\n"
        "                          whole (the line named) and the old list stays\n"
        "    --strict-reload       a reload also ends open streams the new list refuses\n"
        "                          (by default only new opens follow it)\n"
        "    --ports LIST          ports allowed for patterns without a port\n"
        "                          (default 80,443), e.g. --ports 80,443,8443\n"
        "    --allow-private       also dial private/loopback/link-local addresses\n"
        "    --coordinator URL     coordinator base URL (http:// or https://)\n"
        "    --session ID          join this egress session (with a ticket or when minting)\n"
        "    --ticket-file FILE    read a one-use host ticket from FILE (`-` = stdin)\n"
        "    --dial-timeout SECS   connect timeout per destination, DNS included (default 10)\n"
        "    --protocol auto|v1|v2 bridge protocol to offer (default auto: egress.v2,\n"
        "                          falling back to egress.v1)\n"
        "    --window-max BYTES    cap of a stream's upload receive window, which grows\n"
        "                          from 256 KiB while the destination keeps up\n"
        "                          (default 16M; suffix K, M or G; 256K: fixed windows)\n"
        "    --window-budget BYTES window above 256 KiB all streams may hold together\n"
        "                          (default 64M; 0: fixed windows)\n"
        "    --audit-log FILE      append one JSON line per connection to FILE\n"
        "    --metrics ADDR:PORT   serve Prometheus metrics on a loopback address\n"
        "                          (e.g. 127.0.0.1:9464)\n"
        "    --daemon              run in the background under a supervisor that\n"
        "                          restarts the agent after crashes and transient errors\n"
        "    -v, --verbose         log every stream\n"
        "    -h, --help            this help\n"
        "\n"
        "CREDENTIALS\n"
        "    The coordinator URL and bearer token come from --coordinator, then the\n"
        "    environment (EGRESS_COORDINATOR, EGRESS_TOKEN), then the config file\n"
        "    $XDG_CONFIG_HOME/egress/config (default ~/.config/egress/config) with\n"
        "    `coordinator = URL` and `token = egk_...` lines. A ticket comes from\n"
        "    --ticket-file or EGRESS_TICKET; never pass one on the command line (other\n"
        "    users can read argv). Without a ticket the agent mints one with the token\n"
        "    (POST /v1/leases/LEASE/egress/ticket, role host). Tickets, tokens and\n"
        "    resume secrets are never logged.\n"
        "\n"
        "RECONNECTING\n"
        "    A dropped bridge is re-established with capped exponential backoff and\n"
        "    jitter, using the resume secret from the coordinator's hello (kept in\n"
        "    memory, and for --daemon in $XDG_STATE_HOME/egress/LEASE.host.state, mode\n"
        "    0600). Fatal answers end the agent: HTTP 403/404/409/410 on upgrade, close\n"
        "    codes 4001-4004.\n"
        "\n"
        "DAEMON\n"
        "    --daemon writes LEASE.host.pid and LEASE.host.log under\n"
        "    $XDG_STATE_HOME/egress (default ~/.local/state/egress). SIGTERM to the\n"
        "    supervisor stops the agent cleanly.\n"
        "\n"
        "SIGNALS\n"
        "    SIGTERM, SIGINT: send close for every stream, close the WebSocket, exit 0.\n"
        "\n"
        "EXIT STATUS\n"
        "    0 stopped by a signal; 1 runtime error; 2 usage/configuration error;\n"
        "    3 fatal bridge answer; 4 credentials rejected or exhausted.\n"
        "\n"
        "EXAMPLES\n"
        "    egress host --id swift-crab --profile discord\n"
        "    egress host --id swift-crab --allow 'example.com,*.example.org' --ports 443\n"
        "    egress host --id L --session S --ticket-file - --allow example.com < ticket\n",
        "discord, slack");
}

/* ---- option parsing ---- */

/* What the command line said, before it becomes the agent's options. */
typedef struct {
    cli_t c; /* --id, --coordinator, --help; then the coordinator's URL and token */
    host_opts_t o;
    const char *profiles[8];
    size_t nprofiles;
    int have_allow;
    const char *ticket_file;
} host_cmd_t;

enum {
    OPT_PROFILE = 256,
    OPT_ALLOW,
    OPT_PORTS,
    OPT_ALLOW_PRIVATE,
    OPT_SESSION,
    OPT_TICKET,
    OPT_TICKET_FILE,
    OPT_DIAL_TIMEOUT,
    OPT_PROTOCOL,
    OPT_AUDIT,
    OPT_METRICS,
    OPT_DAEMON,
    OPT_ALLOW_FILE,
    OPT_STRICT_RELOAD,
    OPT_WINDOW_MAX,
    OPT_WINDOW_BUDGET
};

static const struct option host_longopts[] = {
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"ports", required_argument, NULL, OPT_PORTS},
    {"allow-private", no_argument, NULL, OPT_ALLOW_PRIVATE},
    {"session", required_argument, NULL, OPT_SESSION},
    {"ticket", required_argument, NULL, OPT_TICKET},
    {"ticket-file", required_argument, NULL, OPT_TICKET_FILE},
    {"dial-timeout", required_argument, NULL, OPT_DIAL_TIMEOUT},
    {"protocol", required_argument, NULL, OPT_PROTOCOL},
    {"audit-log", required_argument, NULL, OPT_AUDIT},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"daemon", no_argument, NULL, OPT_DAEMON},
    {"allow-file", required_argument, NULL, OPT_ALLOW_FILE},
    {"strict-reload", no_argument, NULL, OPT_STRICT_RELOAD},
    {"window-max", required_argument, NULL, OPT_WINDOW_MAX},
    {"window-budget", required_argument, NULL, OPT_WINDOW_BUDGET},
    {"verbose", no_argument, NULL, 'v'},
    CLI_OPTIONS_COMMON};

/* "N" with an optional K, M or G suffix (powers of 1024). Returns 0 or -1. */
static int host_parse_bytes(const char *arg, uint64_t *out)
{
    unsigned long long v;
    char *end;
    int shift = 0;

    if (*arg < '0' || *arg > '9')
        return -1;
    errno = 0;
    v = strtoull(arg, &end, 10);
    if (errno)
        return -1;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t) v << shift;
    return 0;
}

/* One option of `egress host`'s own. Returns 0, or an exit code. */
static int host_flag(host_cmd_t *h, int opt)
{
    host_opts_t *o = &h->o;
    egress_error_t e;
    char *end;
    double secs;
    uint64_t bytes;

    switch (opt) {
    case OPT_PROFILE:
        if (h->nprofiles == 8) {
            fprintf(stderr, "egress host: too many --profile flags\n");
            return EXIT_USAGE;
        }
        h->profiles[h->nprofiles++] = optarg;
        return 0;
    case OPT_ALLOW:
        if (egress_allow_add_list(o->allow, optarg, &e) < 0) {
            fprintf(stderr, "egress host: --allow: %s\n", e.message);
            return EXIT_USAGE;
        }
        h->have_allow = 1;
        if (o->nallow_args < sizeof(o->allow_args) / sizeof(o->allow_args[0]))
            o->allow_args[o->nallow_args++] = optarg;
        else {
            fprintf(stderr, "egress host: too many --allow flags (join them with commas)\n");
            return EXIT_USAGE;
        }
        return 0;
    case OPT_ALLOW_FILE:
        if (o->allow_file) {
            fprintf(stderr, "egress host: one --allow-file only\n");
            return EXIT_USAGE;
        }
        /* absolute: the daemon changes directory, `egress allow` finds it */
        if ((o->allow_file = realpath(optarg, NULL)) == NULL) {
            fprintf(stderr, "egress host: --allow-file %s: %s\n", optarg, strerror(errno));
            return EXIT_USAGE;
        }
        if (allow_file_read(o->allow, o->allow_file, &e) < 0) {
            fprintf(stderr, "egress host: --allow-file: %s\n", e.message);
            return EXIT_USAGE;
        }
        h->have_allow = 1;
        return 0;
    case OPT_STRICT_RELOAD:
        o->strict_reload = 1;
        return 0;
    case OPT_PORTS:
        o->ports_arg = optarg;
        return 0;
    case OPT_ALLOW_PRIVATE:
        o->allow_private = 1;
        return 0;
    case OPT_SESSION:
        o->session = optarg;
        return 0;
    case OPT_TICKET:
        fprintf(stderr,
                "egress host: refusing --ticket: a ticket on the command line is visible to\n"
                "every user of this machine (ps, /proc). Pass it with --ticket-file FILE,\n"
                "--ticket-file - (stdin) or the EGRESS_TICKET environment variable.\n");
        return EXIT_USAGE;
    case OPT_TICKET_FILE:
        h->ticket_file = optarg;
        return 0;
    case OPT_DIAL_TIMEOUT:
        secs = strtod(optarg, &end);
        if (*end || secs <= 0 || secs > 600) {
            fprintf(stderr, "egress host: --dial-timeout must be 0 < SECS <= 600\n");
            return EXIT_USAGE;
        }
        o->dial_timeout_ms = (int) (secs * 1000);
        return 0;
    case OPT_PROTOCOL:
        if (strcmp(optarg, "auto") == 0) {
            o->protocol = 0;
        } else if (strcmp(optarg, "v1") == 0) {
            o->protocol = EGRESS_PROTO_V1;
        } else if (strcmp(optarg, "v2") == 0) {
            o->protocol = EGRESS_PROTO_V2;
        } else {
            fprintf(stderr, "egress host: --protocol must be auto, v1 or v2\n");
            return EXIT_USAGE;
        }
        return 0;
    case OPT_AUDIT:
        o->audit_path = optarg;
        return 0;
    case OPT_METRICS:
        o->metrics_addr = optarg;
        return 0;
    case OPT_DAEMON:
        o->daemon = 1;
        return 0;
    case OPT_WINDOW_MAX:
        if (host_parse_bytes(optarg, &bytes) < 0 || bytes < EGRESS_INITIAL_WINDOW ||
            bytes > EGRESS_MAX_WINDOW) {
            fprintf(stderr, "egress host: --window-max must be 256K <= BYTES < 2G\n");
            return EXIT_USAGE;
        }
        o->window_max = (uint32_t) bytes;
        return 0;
    case OPT_WINDOW_BUDGET:
        if (host_parse_bytes(optarg, &bytes) < 0 || bytes > (1ull << 40)) {
            fprintf(stderr, "egress host: --window-budget must be 0 <= BYTES <= 1T\n");
            return EXIT_USAGE;
        }
        o->window_budget = bytes;
        return 0;
    case 'v':
        o->verbose++;
        return 0;
    }
    return EXIT_USAGE;
}

/* The lease (flag or the one positional argument) and the session id. Returns 0 or an exit
 * code. */
static int host_check_ids(host_cmd_t *h, int argc, char **argv)
{
    const char *session = h->o.session;

    if (optind < argc) {
        if (!h->c.id && optind == argc - 1 && cli_lease_ok(argv[optind])) {
            h->c.id = argv[optind];
        } else {
            fprintf(stderr, "egress host: unexpected argument '%s'\n", argv[optind]);
            return EXIT_USAGE;
        }
    }
    if (!h->c.id) {
        fprintf(stderr, "egress host: --id LEASE is required\n");
        return EXIT_USAGE;
    }
    if (!cli_lease_ok(h->c.id)) {
        fprintf(stderr, "egress host: --id must match [A-Za-z0-9_-]{1,64}\n");
        return EXIT_USAGE;
    }
    h->o.lease = h->c.id;
    if (session && (strlen(session) < 1 || strlen(session) > EGRESS_MAX_TOKEN_TEXT ||
                    strspn(session, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789_-.:") != strlen(session))) {
        fprintf(stderr, "egress host: --session is not a valid session id\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* --profile and --allow together, then --ports: no allowlist, no agent. Returns 0 or an exit
 * code. */
static int host_check_allowlist(host_cmd_t *h)
{
    host_opts_t *o = &h->o;
    egress_error_t e;

    for (size_t i = 0; i < h->nprofiles; i++) {
        if (egress_allow_add_profile(o->allow, h->profiles[i], &e) < 0) {
            fprintf(stderr, "egress host: --profile %s: %s (known: discord, slack)\n",
                    h->profiles[i], e.message);
            return EXIT_USAGE;
        }
    }
    if (h->nprofiles)
        o->profile = h->profiles[0];
    for (size_t i = 0; i < h->nprofiles; i++)
        o->profiles[i] = h->profiles[i];
    o->nprofiles = h->nprofiles;
    if (!h->have_allow && h->nprofiles == 0) {
        fprintf(stderr,
                "egress host: refusing to start without an allowlist: pass --profile NAME,\n"
                "--allow PATTERNS and/or --allow-file FILE (an agent without one would be an\n"
                "open proxy).\n");
        return EXIT_USAGE;
    }
    if (o->ports_arg && egress_allow_set_ports_list(o->allow, o->ports_arg, &e) < 0) {
        fprintf(stderr, "egress host: --ports: %s\n", e.message);
        return EXIT_USAGE;
    }
    return 0;
}

/* The coordinator and the bearer token (flags, env, config file). Returns 0 or an exit code. */
static int host_load_coordinator(host_cmd_t *h)
{
    egress_config_t *cfg = &h->c.cfg;
    egress_error_t e;

    if (config_load(cfg, &e) < 0) {
        fprintf(stderr, "egress host: %s\n", e.message);
        return EXIT_USAGE;
    }
    if (!cfg->coordinator) {
        fprintf(stderr,
                "egress host: no coordinator: pass --coordinator URL, set "
                "EGRESS_COORDINATOR, or add `coordinator = URL` to ~/.config/egress/config\n");
        return EXIT_USAGE;
    }
    if (url_parse(&h->o.url, cfg->coordinator, &e) < 0) {
        fprintf(stderr, "egress host: %s\n", e.message);
        return EXIT_USAGE;
    }
    snprintf(h->o.coordinator, sizeof(h->o.coordinator), "%s", cfg->coordinator);
    h->o.token = cfg->token;
    cfg->token = NULL;
    return 0;
}

/* A ticket from --ticket-file or EGRESS_TICKET, or else a token to mint one. */
static int host_take_ticket(host_cmd_t *h)
{
    const char *env = getenv("EGRESS_TICKET");
    egress_error_t e;

    if (h->ticket_file) {
        if ((h->o.ticket = config_read_secret_file(h->ticket_file, &e)) == NULL) {
            fprintf(stderr, "egress host: --ticket-file: %s\n", e.message);
            return EXIT_USAGE;
        }
    } else if (env && *env) {
        h->o.ticket = strdup(env);
        unsetenv("EGRESS_TICKET"); /* not inherited by anything we start */
    }
    if (!h->o.ticket && !h->o.token) {
        fprintf(stderr, "egress host: no credential: give a host ticket (--ticket-file, "
                        "EGRESS_TICKET) or a bearer token (EGRESS_TOKEN or `token =` in the "
                        "config file) to mint one\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* What the --daemon supervisor runs in each child. */
static int host_run_child(void *arg)
{
    return host_run(arg);
}

static void host_secret_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

int cmd_host(int argc, char **argv)
{
    host_cmd_t h;
    int opt, rc = 0;

    memset(&h, 0, sizeof(h));
    h.c.prog = "egress host";
    h.c.usage = host_usage;
    h.o.dial_timeout_ms = 10000;
    h.o.window_max = EGRESS_WINDOW_MAX_DEFAULT;
    h.o.window_budget = EGRESS_WINDOW_BUDGET_DEFAULT;
    if ((h.o.allow = egress_allow_new()) == NULL)
        return EXIT_RUNTIME;
    while ((opt = cli_getopt(&h.c, argc, argv, ":vh", host_longopts)) != -1) {
        rc = opt == CLI_OPT_EXIT ? h.c.rc : host_flag(&h, opt);
        if (opt == CLI_OPT_EXIT || rc != 0)
            goto out;
    }
    if ((rc = host_check_ids(&h, argc, argv)) != 0 || (rc = host_check_allowlist(&h)) != 0 ||
        (rc = host_load_coordinator(&h)) != 0 || (rc = host_take_ticket(&h)) != 0)
        goto out;
    rc = h.o.daemon ? daemon_run(h.o.lease, &h.o.ticket, host_run_child, &h.o) : host_run(&h.o);
out:
    cli_close(&h.c);
    host_secret_free(h.o.ticket);
    host_secret_free(h.o.token);
    egress_allow_free(h.o.allow);
    free((char *) h.o.allow_file);
    return rc;
}
