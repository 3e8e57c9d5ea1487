/*
 * host.c: `egress host`: options, configuration, the startup line, and the
 * agent's life cycle on one libuv loop (the bridge's WebSocket runs on it too).
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"

static void host_usage(FILE *out)
{
    fprintf(
        out,
        "NAME\n"
        "    egress host - run the host agent for a lease\n"
        "\n"
        "SYNOPSIS\n"
        "    egress host --id LEASE (--profile NAME | --allow PATTERNS)... [options]\n"
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
        "    --ports LIST          ports allowed for patterns without a port\n"
        "                          (default 80,443), e.g. --ports 80,443,8443\n"
        "    --allow-private       also dial private/loopback/link-local addresses\n"
        "    --coordinator URL     coordinator base URL (http:// or https://)\n"
        "    --session ID          join this egress session (with a ticket or when minting)\n"
        "    --ticket-file FILE    read a one-use host ticket from FILE (`-` = stdin)\n"
        "    --dial-timeout SECS   connect timeout per destination, DNS included (default 10)\n"
        "    --protocol auto|v1|v2 bridge protocol to offer (default auto: egress.v2,\n"
        "                          falling back to egress.v1)\n"
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

uint64_t agent_now_ms(agent_t *ag)
{
    return uv_now(&ag->loop);
}

/* ---- state file (resume secret across --daemon restarts) ---- */

static int host_state_path(host_opts_t *o, char *out, size_t cap)
{
    char dir[900];

    if (config_state_dir(dir, sizeof(dir)) < 0)
        return -1;
    snprintf(out, cap, "%s/%s.host.state", dir, o->lease);
    return 0;
}

void agent_save_state(agent_t *ag)
{
    egress_state_t st;
    egress_error_t err;

    if (!ag->state_path[0])
        return;
    memset(&st, 0, sizeof(st));
    snprintf(st.session, sizeof(st.session), "%s", ag->session);
    snprintf(st.resume, sizeof(st.resume), "%s", ag->resume);
    if (egress_state_save(&st, ag->state_path, &err) < 0)
        agent_log("cannot write state file %s: %s", ag->state_path, err.message);
    egress_state_wipe(&st);
}

static void host_load_state(agent_t *ag)
{
    egress_state_t st;
    egress_error_t err;

    if (egress_state_load(&st, ag->state_path, &err) < 0)
        agent_log("ignoring state file %s: %s", ag->state_path, err.message);
    if (st.session[0])
        snprintf(ag->session, sizeof(ag->session), "%s", st.session);
    if (st.resume[0])
        snprintf(ag->resume, sizeof(ag->resume), "%s", st.resume);
    egress_state_wipe(&st);
}

/* ---- life cycle ---- */

static void host_on_finish_idle(uv_idle_t *h)
{
    agent_t *ag = h->data;

    uv_idle_stop(h);
    uv_close((uv_handle_t *) h, NULL);
    bridge_stop(ag); /* outside any bridge callback */
}

void agent_finish(agent_t *ag, int code)
{
    if (ag->finished)
        return;
    ag->finished = 1;
    ag->exit_code = code;
    stream_kill_all(ag, 0);
    uv_timer_stop(&ag->retry_timer);
    uv_close((uv_handle_t *) &ag->retry_timer, NULL);
    uv_close((uv_handle_t *) &ag->stop_timer, NULL);
    uv_close((uv_handle_t *) &ag->sigterm, NULL);
    uv_close((uv_handle_t *) &ag->sigint, NULL);
    metrics_stop(ag);
    uv_idle_init(&ag->loop, &ag->finish_idle);
    ag->finish_idle.data = ag;
    uv_idle_start(&ag->finish_idle, host_on_finish_idle);
}

static void host_on_stop_timeout(uv_timer_t *t)
{
    agent_t *ag = t->data;

    agent_log("coordinator did not acknowledge the close in time; exiting");
    agent_finish(ag, EXIT_OK);
}

static void host_on_signal(uv_signal_t *h, int signum)
{
    agent_t *ag = h->data;

    if (ag->stopping || ag->finished) {
        agent_finish(ag, EXIT_OK);
        return;
    }
    agent_log("%s: closing %zu streams and the bridge", strsignal(signum), ag->nstreams);
    ag->stopping = 1;
    uv_timer_stop(&ag->retry_timer);
    if (!ag->ws || !ag->established) {
        agent_finish(ag, EXIT_OK);
        return;
    }
    stream_kill_all(ag, 1);
    bridge_kick(ag); /* flushes, then closes with 1000 */
    uv_timer_start(&ag->stop_timer, host_on_stop_timeout, 3000, 0);
}

static void host_startup_line(host_opts_t *o, const char *session)
{
    char ports[256], allow[2048] = "";
    size_t n = egress_allow_count(o->allow), off = 0;

    egress_allow_ports_format(o->allow, ports, sizeof(ports));
    for (size_t i = 0; i < n && off < sizeof(allow) - 1; i++)
        off += (size_t) snprintf(allow + off, sizeof(allow) - off, "%s%s", i ? "," : "",
                                 egress_allow_pattern(o->allow, i));
    agent_log("host agent %s: lease=%s session=%s profile=%s allow=%s ports=%s "
              "private-addresses=%s coordinator=%s",
              EGRESS_VERSION, o->lease, session, o->profile ? o->profile : "(none)", allow,
              ports, o->allow_private ? "ALLOWED" : "refused", o->coordinator);
}

/*
 * The audit log names every destination: 0600 whatever the umask. An
 * existing log that others could read is tightened, and that is logged.
 */
static FILE *host_open_audit(const char *path)
{
    struct stat sb;
    FILE *f;
    int fd, created = 0, e;

    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
        created = 1;
    }
    if (fd < 0)
        return NULL;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 0777) != 0600 &&
        (created || (sb.st_mode & 0177) != 0)) {
        if (fchmod(fd, 0600) < 0) {
            e = errno;
            close(fd);
            errno = e;
            return NULL;
        }
        if (!created)
            agent_log("audit log %s was mode %04o: tightened to 0600", path,
                      (unsigned) (sb.st_mode & 0777));
    }
    if ((f = fdopen(fd, "a")) == NULL) {
        e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

int host_run(host_opts_t *o)
{
    agent_t *ag;
    int code;

    struct rlimit rl;

    /* one socket per stream: thousands of streams need more than 1024 fds */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* DNS runs on libuv's thread pool (default 4 threads): give parallel
     * lookups room; must be set before the pool's first use */
    setenv("UV_THREADPOOL_SIZE", "32", 0);
    if ((ag = calloc(1, sizeof(*ag))) == NULL)
        return EXIT_RUNTIME;
    ag->o = o;
    if (o->ticket) {
        snprintf(ag->ticket, sizeof(ag->ticket), "%s", o->ticket);
        explicit_bzero(o->ticket, strlen(o->ticket));
        free(o->ticket);
        o->ticket = NULL;
    }
    if (o->session)
        snprintf(ag->session, sizeof(ag->session), "%s", o->session);
    if (o->daemon && host_state_path(o, ag->state_path, sizeof(ag->state_path)) == 0 &&
        !ag->ticket[0])
        host_load_state(ag); /* a restart: resume the session we had */
    if (o->session && strcmp(ag->session, o->session) != 0) {
        /* the state belongs to another session than the one asked for */
        snprintf(ag->session, sizeof(ag->session), "%s", o->session);
        ag->resume[0] = '\0';
    }
    if (o->audit_path && (ag->audit = host_open_audit(o->audit_path)) == NULL) {
        agent_log("cannot open audit log %s: %s", o->audit_path, strerror(errno));
        free(ag);
        return EXIT_USAGE;
    }

    /* no credential in hand: mint the first ticket before the loop runs */
    if (!ag->ticket[0] && !ag->resume[0]) {
        const char *allow[EGRESS_ALLOW_MAX_PATTERNS + 1];
        size_t n = egress_allow_count(o->allow);
        egress_error_t err;
        for (size_t i = 0; i < n; i++)
            allow[i] = egress_allow_pattern(o->allow, i);
        mint_req_t rq = {.lease = o->lease,
                         .token = o->token,
                         .session = ag->session,
                         .profile = o->profile,
                         .allow = allow,
                         .nallow = n,
                         .timeout_ms = 10000};
        int st = http_mint_ticket(&o->url, &rq, ag->ticket, sizeof(ag->ticket), ag->session,
                                  sizeof(ag->session), &err);
        if (st != 0) {
            agent_log("cannot mint a host ticket: %s", err.message);
            code = st == 401                                            ? EXIT_AUTH
                   : (st == 403 || st == 404 || st == 409 || st == 410) ? EXIT_FATAL
                                                                        : EXIT_RUNTIME;
            if (ag->audit)
                fclose(ag->audit);
            free(ag);
            return code;
        }
    }
    host_startup_line(o, ag->session[0] ? ag->session : "(from ticket)");

    uv_loop_init(&ag->loop);
    uv_timer_init(&ag->loop, &ag->retry_timer);
    ag->retry_timer.data = ag;
    uv_timer_init(&ag->loop, &ag->stop_timer);
    ag->stop_timer.data = ag;
    uv_signal_init(&ag->loop, &ag->sigterm);
    uv_signal_init(&ag->loop, &ag->sigint);
    ag->sigterm.data = ag->sigint.data = ag;
    uv_signal_start(&ag->sigterm, host_on_signal, SIGTERM);
    uv_signal_start(&ag->sigint, host_on_signal, SIGINT);
    if (bridge_init(ag) < 0) {
        agent_finish(ag, EXIT_RUNTIME);
        uv_run(&ag->loop, UV_RUN_DEFAULT);
        code = EXIT_RUNTIME;
        goto out;
    }

    if (o->metrics_addr) {
        egress_error_t err;
        if (metrics_start(ag, o->metrics_addr, &err) < 0) {
            agent_log("%s", err.message);
            ag->exit_code = EXIT_USAGE;
            agent_finish(ag, EXIT_USAGE);
            uv_run(&ag->loop, UV_RUN_DEFAULT);
            code = EXIT_USAGE;
            goto out;
        }
    }
    bridge_connect(ag);
    uv_run(&ag->loop, UV_RUN_DEFAULT);
    code = ag->exit_code;
out:
    uv_run(&ag->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&ag->loop) != 0)
        agent_log("event loop not empty at exit");
    while (ag->msgpool) {
        wsmsg_t *m = ag->msgpool;
        ag->msgpool = m->next;
        free(m);
    }
    stream_pool_free(ag);
    free(ag->rx);
    if (ag->tls)
        SSL_CTX_free(ag->tls);
    if (ag->audit)
        fclose(ag->audit);
    explicit_bzero(ag->resume, sizeof(ag->resume));
    explicit_bzero(ag->ticket, sizeof(ag->ticket));
    free(ag);
    return code;
}

/* ---- option parsing ---- */

enum {
    OPT_ID = 256,
    OPT_PROFILE,
    OPT_ALLOW,
    OPT_PORTS,
    OPT_ALLOW_PRIVATE,
    OPT_COORD,
    OPT_SESSION,
    OPT_TICKET,
    OPT_TICKET_FILE,
    OPT_DIAL_TIMEOUT,
    OPT_PROTOCOL,
    OPT_AUDIT,
    OPT_METRICS,
    OPT_DAEMON
};

static const struct option host_longopts[] = {
    {"id", required_argument, NULL, OPT_ID},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"ports", required_argument, NULL, OPT_PORTS},
    {"allow-private", no_argument, NULL, OPT_ALLOW_PRIVATE},
    {"coordinator", required_argument, NULL, OPT_COORD},
    {"session", required_argument, NULL, OPT_SESSION},
    {"ticket", required_argument, NULL, OPT_TICKET},
    {"ticket-file", required_argument, NULL, OPT_TICKET_FILE},
    {"dial-timeout", required_argument, NULL, OPT_DIAL_TIMEOUT},
    {"protocol", required_argument, NULL, OPT_PROTOCOL},
    {"audit-log", required_argument, NULL, OPT_AUDIT},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"daemon", no_argument, NULL, OPT_DAEMON},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static int host_valid_id(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > 64)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

int cmd_host(int argc, char **argv)
{
    host_opts_t o;
    egress_config_t cfg = {0};
    egress_error_t e;
    const char *profiles[8];
    size_t nprofiles = 0;
    const char *ticket_file = NULL;
    int c, rc = EXIT_USAGE, have_allow = 0;

    memset(&o, 0, sizeof(o));
    o.dial_timeout_ms = 10000;
    if ((o.allow = egress_allow_new()) == NULL)
        return EXIT_RUNTIME;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":vh", host_longopts, NULL)) != -1) {
        switch (c) {
        case OPT_ID:
            o.lease = optarg;
            break;
        case OPT_PROFILE:
            if (nprofiles == 8) {
                fprintf(stderr, "egress host: too many --profile flags\n");
                goto usage;
            }
            profiles[nprofiles++] = optarg;
            break;
        case OPT_ALLOW:
            if (egress_allow_add_list(o.allow, optarg, &e) < 0) {
                fprintf(stderr, "egress host: --allow: %s\n", e.message);
                goto usage;
            }
            have_allow = 1;
            break;
        case OPT_PORTS:
            o.ports_arg = optarg;
            break;
        case OPT_ALLOW_PRIVATE:
            o.allow_private = 1;
            break;
        case OPT_COORD:
            free(cfg.coordinator); /* the last --coordinator wins */
            cfg.coordinator = strdup(optarg);
            break;
        case OPT_SESSION:
            o.session = optarg;
            break;
        case OPT_TICKET:
            fprintf(
                stderr,
                "egress host: refusing --ticket: a ticket on the command line is visible to\n"
                "every user of this machine (ps, /proc). Pass it with --ticket-file FILE,\n"
                "--ticket-file - (stdin) or the EGRESS_TICKET environment variable.\n");
            goto usage;
        case OPT_TICKET_FILE:
            ticket_file = optarg;
            break;
        case OPT_DIAL_TIMEOUT: {
            char *end;
            double secs = strtod(optarg, &end);
            if (*end || secs <= 0 || secs > 600) {
                fprintf(stderr, "egress host: --dial-timeout must be 0 < SECS <= 600\n");
                goto usage;
            }
            o.dial_timeout_ms = (int) (secs * 1000);
            break;
        }
        case OPT_PROTOCOL:
            if (strcmp(optarg, "auto") == 0) {
                o.protocol = 0;
            } else if (strcmp(optarg, "v1") == 0) {
                o.protocol = EGRESS_PROTO_V1;
            } else if (strcmp(optarg, "v2") == 0) {
                o.protocol = EGRESS_PROTO_V2;
            } else {
                fprintf(stderr, "egress host: --protocol must be auto, v1 or v2\n");
                goto usage;
            }
            break;
        case OPT_AUDIT:
            o.audit_path = optarg;
            break;
        case OPT_METRICS:
            o.metrics_addr = optarg;
            break;
        case OPT_DAEMON:
            o.daemon = 1;
            break;
        case 'v':
            o.verbose++;
            break;
        case 'h':
            host_usage(stdout);
            rc = EXIT_OK;
            goto out;
        case ':':
            fprintf(stderr, "egress host: %s needs a value (see egress host --help)\n",
                    argv[optind - 1]);
            goto usage;
        default:
            fprintf(stderr, "egress host: unknown option '%s' (see egress host --help)\n",
                    argv[optind - 1]);
            goto usage;
        }
    }
    if (optind < argc) {
        if (!o.lease && optind == argc - 1 && host_valid_id(argv[optind])) {
            o.lease = argv[optind];
        } else {
            fprintf(stderr, "egress host: unexpected argument '%s'\n", argv[optind]);
            goto usage;
        }
    }
    if (!o.lease) {
        fprintf(stderr, "egress host: --id LEASE is required\n");
        goto usage;
    }
    if (!host_valid_id(o.lease)) {
        fprintf(stderr, "egress host: --id must match [A-Za-z0-9_-]{1,64}\n");
        goto usage;
    }
    if (o.session && (strlen(o.session) < 1 || strlen(o.session) > EGRESS_MAX_TOKEN_TEXT ||
                      strspn(o.session, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789_-.:") != strlen(o.session))) {
        fprintf(stderr, "egress host: --session is not a valid session id\n");
        goto usage;
    }
    for (size_t i = 0; i < nprofiles; i++) {
        if (egress_allow_add_profile(o.allow, profiles[i], &e) < 0) {
            fprintf(stderr, "egress host: --profile %s: %s (known: discord, slack)\n",
                    profiles[i], e.message);
            goto usage;
        }
    }
    if (nprofiles)
        o.profile = profiles[0];
    if (!have_allow && nprofiles == 0) {
        fprintf(stderr,
                "egress host: refusing to start without an allowlist: pass --profile NAME\n"
                "and/or --allow PATTERNS (an agent without one would be an open proxy).\n");
        goto usage;
    }
    if (o.ports_arg && egress_allow_set_ports_list(o.allow, o.ports_arg, &e) < 0) {
        fprintf(stderr, "egress host: --ports: %s\n", e.message);
        goto usage;
    }

    if (config_load(&cfg, &e) < 0) {
        fprintf(stderr, "egress host: %s\n", e.message);
        goto usage;
    }
    if (!cfg.coordinator) {
        fprintf(stderr,
                "egress host: no coordinator: pass --coordinator URL, set "
                "EGRESS_COORDINATOR, or add `coordinator = URL` to ~/.config/egress/config\n");
        goto usage;
    }
    if (url_parse(&o.url, cfg.coordinator, &e) < 0) {
        fprintf(stderr, "egress host: %s\n", e.message);
        goto usage;
    }
    snprintf(o.coordinator, sizeof(o.coordinator), "%s", cfg.coordinator);
    o.token = cfg.token;
    cfg.token = NULL;

    if (ticket_file) {
        if ((o.ticket = config_read_secret_file(ticket_file, &e)) == NULL) {
            fprintf(stderr, "egress host: --ticket-file: %s\n", e.message);
            goto usage;
        }
    } else if (getenv("EGRESS_TICKET") && *getenv("EGRESS_TICKET")) {
        o.ticket = strdup(getenv("EGRESS_TICKET"));
        unsetenv("EGRESS_TICKET"); /* not inherited by anything we start */
    }
    if (!o.ticket && !o.token) {
        fprintf(stderr, "egress host: no credential: give a host ticket (--ticket-file, "
                        "EGRESS_TICKET) or a bearer token (EGRESS_TOKEN or `token =` in the "
                        "config file) to mint one\n");
        goto usage;
    }

    rc = o.daemon ? daemon_run(&o) : host_run(&o);
    goto out;
usage:
    rc = EXIT_USAGE;
out:
    config_free(&cfg);
    if (o.ticket) {
        explicit_bzero(o.ticket, strlen(o.ticket));
        free(o.ticket);
    }
    if (o.token) {
        explicit_bzero(o.token, strlen(o.token));
        free(o.token);
    }
    egress_allow_free(o.allow);
    return rc;
}
