/*
 * cmd_start.c: `egress start`, the operator's one command. It checks the
 * allowlist, finds the lease, preflights the lease over SSH, starts the
 * lease-side proxy there with a one-use client ticket handed over standard
 * input, waits until that proxy's bridge is up, then becomes the host agent
 * for the same session. A failure before the host agent runs undoes what was
 * started, so nothing is left half-running.
 */

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "start_install.h"

#define START_MAX_ALLOW 64
#define START_WAIT_MS   20000
#define START_STEPS     6

static void start_usage(FILE *out)
{
    fprintf(out,
            "usage: egress start --id LEASE (--profile NAME | --allow PATTERNS)...\n"
            "                    [--listen 127.0.0.1:3128] [--daemon] [--ssh TARGET]\n"
            "                    [--ssh-config FILE] [--remote-egress PATH]\n"
            "                    [--lease-coordinator URL] [--ports LIST] [--allow-private]\n"
            "                    [--install [--packages DIR]]\n"
            "\n"
            "Start mediated egress for LEASE in one step:\n"
            "  1. check the allowlist (no allowlist, no proxy);\n"
            "  2. resolve the lease through the coordinator (its SSH target, unless --ssh);\n"
            "  3. over SSH (BatchMode), check that nginx and the egress module are\n"
            "     installed on the lease (`egress client --check`); with --install,\n"
            "     first install or update them from Debian packages (copied and\n"
            "     installed over one SSH session);\n"
            "  4. mint a client ticket, which starts a new egress session, and start\n"
            "     `egress client --daemon` on the lease with the ticket on its standard\n"
            "     input (never in an argument or a file name);\n"
            "  5. wait until the coordinator sees the lease proxy connected;\n"
            "  6. run the host agent for the same session, in the foreground or with\n"
            "     --daemon in the background (it mints its own host ticket).\n"
            "Each step is reported as it starts, with the time since the start; a\n"
            "failure names the step, its cause and the command to run next. If a step\n"
            "before 6 fails, the lease proxy is stopped and the session deleted again.\n"
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
            "  --install               install egress and the nginx module on the lease\n"
            "                          with apt-get (nginx comes from the lease's mirror);\n"
            "                          refused when the lease's nginx ABI differs from\n"
            "                          the module's; a failed install is undone\n"
            "  --packages DIR          where --install finds egress_*.deb and\n"
            "                          libnginx-mod-stream-egress_*.deb (default: deb/\n"
            "                          next to this program, where make deb writes)\n"
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

/* One `egress start`: its options, and what the steps found out. */
typedef struct {
    cli_t c; /* --id, --coordinator, --help; then the coordinator and the token */
    cli_ssh_t ssh;
    const char *listen, *ports, *lease_url;
    const char *profiles[START_MAX_ALLOW], *allows[START_MAX_ALLOW];
    size_t nprofiles, nallows;
    int daemon, allow_private, install;
    const char *packages; /* --packages DIR */
    char *target;         /* the SSH target from the lease record */
    char session[EGRESS_MAX_TOKEN_TEXT + 1];
    struct timespec t0; /* when `egress start` began, for the progress lines */
    int step;           /* the step under way, 1..START_STEPS; 0 before the first */
    char what[256];     /* what that step does, as reported */
    char cause[512];    /* why it failed */
    char next[768];     /* the command to run next */
} start_t;

/* Seconds since `egress start` began. */
static double start_elapsed(const start_t *st)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double) (now.tv_sec - st->t0.tv_sec) + (now.tv_nsec - st->t0.tv_nsec) / 1e9;
}

/* Reports step n as it begins: "egress start: [  1.2s] 3/6 checking ...". */
static void start_step(start_t *st, int n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->what, sizeof(st->what), fmt, ap);
    va_end(ap);
    st->step = n;
    st->cause[0] = st->next[0] = '\0';
    fprintf(stderr, "egress start: [%6.1fs] %d/%d %s\n", start_elapsed(st), n, START_STEPS,
            st->what);
}

/* Prints why the step failed (the line tests and people read) and keeps it for the summary. */
static void start_cause(start_t *st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->cause, sizeof(st->cause), fmt, ap);
    va_end(ap);
    fprintf(stderr, "egress start: %s\n", st->cause);
}

/* The command to run next, for the failure summary. */
static void start_next(start_t *st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->next, sizeof(st->next), fmt, ap);
    va_end(ap);
}

/* "ssh [-F FILE] TARGET": how the operator reaches the lease by hand. */
static const char *start_ssh_cmd(const start_t *st, char *buf, size_t len)
{
    snprintf(buf, len, "ssh%s%s %s", st->ssh.config ? " -F " : "",
             st->ssh.config ? st->ssh.config : "", st->ssh.target ? st->ssh.target : "TARGET");
    return buf;
}

/* The failure summary: step, time, cause, next command. */
static void start_summary(const start_t *st, int rc)
{
    fprintf(stderr, "egress start: failed at step %d/%d (%s) after %.1fs, exit %d: %s\n",
            st->step, START_STEPS, st->what, start_elapsed(st), rc,
            st->cause[0] ? st->cause : "see the message above");
    if (st->next[0])
        fprintf(stderr, "egress start: next: %s\n", st->next);
}

/* The options. Returns 0, or -1 to end with the exit code in st->c.rc (--help, bad flags). */
static int start_parse(start_t *st, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"profile", required_argument, NULL, 'p'},
        {"allow", required_argument, NULL, 'a'},
        {"ports", required_argument, NULL, 'P'},
        {"allow-private", no_argument, NULL, 'A'},
        {"listen", required_argument, NULL, 'l'},
        {"daemon", no_argument, NULL, 'd'},
        {"ssh", required_argument, NULL, 'S'},
        {"ssh-config", required_argument, NULL, 'F'},
        {"remote-egress", required_argument, NULL, 'R'},
        {"lease-coordinator", required_argument, NULL, 'L'},
        {"install", no_argument, NULL, 'I'},
        {"packages", required_argument, NULL, 'K'},
        CLI_OPTIONS_COMMON,
    };
    int opt;

    while ((opt = cli_getopt(&st->c, argc, argv, "h", longopts)) != -1) {
        switch (opt) {
        case 'p':
        case 'a':
            if ((opt == 'p' ? st->nprofiles : st->nallows) == START_MAX_ALLOW) {
                fprintf(stderr, "egress start: too many --profile/--allow options\n");
                st->c.rc = EXIT_USAGE;
                return -1;
            }
            if (opt == 'p')
                st->profiles[st->nprofiles++] = optarg;
            else
                st->allows[st->nallows++] = optarg;
            break;
        case 'P':
            st->ports = optarg;
            break;
        case 'A':
            st->allow_private = 1;
            break;
        case 'l':
            st->listen = optarg;
            break;
        case 'd':
            st->daemon = 1;
            break;
        case 'S':
            st->ssh.target = optarg;
            break;
        case 'F':
            st->ssh.config = optarg;
            break;
        case 'R':
            st->ssh.remote = optarg;
            break;
        case 'L':
            st->lease_url = optarg;
            break;
        case 'I':
            st->install = 1;
            break;
        case 'K':
            st->packages = optarg;
            break;
        default: /* CLI_OPT_EXIT */
            return -1;
        }
    }
    return (st->c.rc = cli_take_lease(&st->c, argc, argv)) != 0 ? -1 : 0;
}

/* 1. The allowlist and --listen, checked here so a typo fails before anything starts. */
static int start_check_allowlist(start_t *st)
{
    egress_allow_t *al;
    egress_error_t e;
    char host[EGRESS_HOST_BUF];
    uint16_t port;
    size_t i;
    int ok = 1;

    start_step(st, 1, "checking the allowlist");
    start_next(st,
               "egress start --id %s --profile discord (or --allow PATTERNS); see egress "
               "start --help",
               st->c.id);
    if (st->nprofiles == 0 && st->nallows == 0) {
        start_cause(st,
                    "refusing to start without an allowlist: pass --profile NAME or --allow "
                    "PATTERNS");
        return EXIT_USAGE;
    }
    if ((al = egress_allow_new()) == NULL)
        return EXIT_RUNTIME;
    for (i = 0; ok && i < st->nprofiles; i++)
        ok = egress_allow_add_profile(al, st->profiles[i], &e) == 0;
    for (i = 0; ok && i < st->nallows; i++)
        ok = egress_allow_add_list(al, st->allows[i], &e) == 0;
    if (ok && st->ports)
        ok = egress_allow_set_ports_list(al, st->ports, &e) == 0;
    egress_allow_free(al);
    if (!ok) {
        start_cause(st, "%s", e.message);
        return EXIT_USAGE;
    }
    if (egress_hostport_parse(host, &port, st->listen, strlen(st->listen), 0, &e) < 0 ||
        !egress_host_is_loopback(host, strlen(host))) {
        start_cause(st, "--listen %s must be a loopback address and port", st->listen);
        start_next(st, "egress start --id %s ... --listen 127.0.0.1:3128", st->c.id);
        return EXIT_USAGE;
    }
    return 0;
}

/* 2. The coordinator (as we and as the lease reach it), the lease, its SSH target. */
static int start_find_lease(start_t *st)
{
    const char *id = st->c.id;
    char path[256];
    egress_error_t e;
    egress_url_t lu;
    json_t *resp = NULL;
    int rc, status;

    start_step(st, 2, "looking up lease %s on the coordinator", id);
    start_next(st, "egress lease show --id %s", id);
    if ((rc = cli_open(&st->c, 1)) != 0) {
        start_next(st, "set EGRESS_COORDINATOR and EGRESS_TOKEN (or ~/.config/egress/config), "
                       "see egress(5)");
        return rc;
    }
    if (!st->lease_url)
        st->lease_url = st->c.cfg.coordinator;
    if (url_parse(&lu, st->lease_url, &e) < 0) {
        /* url_parse also refuses user:password@ URLs: no credential goes to the lease */
        start_cause(st, "--lease-coordinator: %s", e.message);
        start_next(st, "egress start ... --lease-coordinator http://HOST:PORT (no user or "
                       "password in it)");
        return EXIT_USAGE;
    }
    snprintf(path, sizeof(path), "/v1/leases/%s", id);
    status = cli_api(&st->c, "GET", path, NULL, &resp);
    if (status < 0) {
        snprintf(st->cause, sizeof(st->cause), "the coordinator %s is unreachable",
                 st->c.cfg.coordinator);
        start_next(st, "egress status --id %s (checks the coordinator)", id);
        rc = EXIT_RUNTIME;
    } else if (status != 200) {
        rc = cli_api_fail(&st->c, status, resp, "lease");
        snprintf(st->cause, sizeof(st->cause), "the coordinator answered %d for lease %s",
                 status, id);
        start_next(st, status == 401 ? "check EGRESS_TOKEN (egress-coordinator token list)"
                                     : "egress lease list");
    } else if (strcmp(cli_str(resp, "state"), "active") != 0) {
        start_cause(st, "lease %s is %s", id, cli_str(resp, "state"));
        start_next(st, "egress lease create --slug NEW-SLUG --ssh user@host");
        rc = EXIT_FATAL;
    } else if (!st->ssh.target && *cli_str(resp, "ssh")) {
        st->ssh.target = st->target = strdup(cli_str(resp, "ssh"));
    }
    json_decref(resp);
    if (rc == 0 && !st->ssh.target) {
        start_cause(st, "lease %s has no SSH target; pass --ssh user@host", id);
        start_next(st, "egress start --id %s ... --ssh user@host", id);
        rc = EXIT_USAGE;
    }
    return rc;
}

/* 3. Preflight on the lease: `egress client --check` there. */
static int start_preflight(start_t *st)
{
    const char *args[] = {"client", "--id", st->c.id, "--check", NULL};
    char ssh[512], dir[4096];
    start_install_t res;
    int status;

    if (st->install) {
        if (!st->packages)
            st->packages = start_install_default_dir(dir, sizeof(dir));
        start_step(st, 3, "installing egress and the module on the lease (%s) from %s",
                   st->ssh.target, st->packages);
        start_install(&st->ssh, st->packages, &res);
        if (res.rc != 0) {
            start_cause(st, "%s", res.msg);
            start_next(st, "%s",
                       res.rc == 6 ? "build the packages for the lease's nginx (make deb "
                                     "where its nginx-dev is installed), then --packages DIR"
                                   : "egress start ... --install again (the lease is "
                                     "unchanged unless said otherwise above)");
            return res.rc;
        }
    }
    start_step(st, 3, "checking nginx and the egress module on the lease (%s)", st->ssh.target);
    status = cli_ssh_run(&st->ssh, args, NULL);
    start_ssh_cmd(st, ssh, sizeof(ssh));
    if (status == 127 || (status != 0 && status != 255 && status > 0)) {
        if (status == 127)
            start_cause(st, "%s is not installed on the lease (%s)", st->ssh.remote,
                        st->ssh.target);
        else
            start_cause(st, "the lease lacks what the proxy needs (above)");
        start_next(st,
                   "egress start --id %s ... --install (installs the packages make deb built "
                   "on the lease with apt-get; or by hand: scp them to the lease and %s "
                   "apt-get install -y ./egress_*.deb ./libnginx-mod-stream-egress_*.deb)",
                   st->c.id, ssh);
        return 6;
    }
    if (status == 255 || status < 0) {
        start_cause(st, "cannot reach the lease over SSH (%s)", st->ssh.target);
        start_next(st, "%s true (must log in without a password prompt; BatchMode)", ssh);
        return EXIT_RUNTIME;
    }
    return 0;
}

/* 4. A client ticket (a new session), the lease proxy started with it on stdin. */
static int start_lease_proxy(start_t *st)
{
    const char *id = st->c.id;
    char path[256], *ticket = NULL;
    json_t *body = json_pack("{s:s}", "role", "client"), *resp = NULL;
    char ssh[512];
    int rc = EXIT_RUNTIME, status;

    start_step(st, 4, "starting the lease proxy on %s (%s)", st->ssh.target, st->listen);
    start_ssh_cmd(st, ssh, sizeof(ssh));
    start_next(st, "egress status --id %s", id);
    snprintf(path, sizeof(path), "/v1/leases/%s/egress/ticket", id);
    status = cli_api(&st->c, "POST", path, body, &resp);
    json_decref(body);
    if (status != 201 && status != 200) {
        rc = status < 0 ? EXIT_RUNTIME : cli_api_fail(&st->c, status, resp, "client ticket");
        snprintf(st->cause, sizeof(st->cause), "no client ticket from the coordinator (%d)",
                 status);
        goto out;
    }
    if (strlen(cli_str(resp, "sessionID")) >= sizeof(st->session))
        goto out;
    strcpy(st->session, cli_str(resp, "sessionID"));
    if (asprintf(&ticket, "%s\n", cli_str(resp, "ticket")) < 0) {
        ticket = NULL;
        goto out;
    }
    const char *args[] = {"client",      "--id",     id,         "--coordinator",
                          st->lease_url, "--listen", st->listen, "--ticket-file",
                          "-",           "--daemon", NULL};
    status = cli_ssh_run(&st->ssh, args, ticket);
    explicit_bzero(ticket, strlen(ticket));
    if (status != 0) {
        start_cause(st, "starting the lease proxy failed (exit %d)", status);
        start_next(st, "%s %s client --id %s --print-config (and its log in /run/egress/%s)",
                   ssh, st->ssh.remote, id, id);
        start_undo(&st->c, &st->ssh, id, 1);
        goto out;
    }
    rc = 0;
out:
    free(ticket);
    json_decref(resp);
    return rc;
}

/* 6. Become the host agent for the same session: `egress host` with our flags. */
static int start_host(start_t *st)
{
    const char *hargv[2 * START_MAX_ALLOW * 2 + 24];
    size_t n = 0, i;

    hargv[n++] = "egress";
    hargv[n++] = "host";
    hargv[n++] = "--id";
    hargv[n++] = st->c.id;
    hargv[n++] = "--session";
    hargv[n++] = st->session;
    hargv[n++] = "--coordinator";
    hargv[n++] = st->c.cfg.coordinator;
    for (i = 0; i < st->nprofiles; i++) {
        hargv[n++] = "--profile";
        hargv[n++] = st->profiles[i];
    }
    for (i = 0; i < st->nallows; i++) {
        hargv[n++] = "--allow";
        hargv[n++] = st->allows[i];
    }
    if (st->ports) {
        hargv[n++] = "--ports";
        hargv[n++] = st->ports;
    }
    if (st->allow_private)
        hargv[n++] = "--allow-private";
    if (st->daemon)
        hargv[n++] = "--daemon";
    hargv[n] = NULL;
    fflush(NULL);
    return cmd_host((int) n - 1, (char **) hargv + 1);
}

int cmd_start(int argc, char **argv)
{
    start_t st;
    int rc;

    memset(&st, 0, sizeof(st));
    clock_gettime(CLOCK_MONOTONIC, &st.t0);
    st.c.prog = "egress start";
    st.c.usage = start_usage;
    st.ssh.remote = "egress";
    st.listen = "127.0.0.1:3128";
    if (start_parse(&st, argc, argv) < 0) {
        rc = st.c.rc;
        goto done;
    }
    if ((rc = start_check_allowlist(&st)) != 0)
        goto done;
    signal(SIGPIPE, SIG_IGN);
    if ((rc = start_find_lease(&st)) != 0 || (rc = start_preflight(&st)) != 0 ||
        (rc = start_lease_proxy(&st)) != 0)
        goto done;

    /* 5. the lease proxy's bridge is up */
    start_step(&st, 5, "waiting for the lease proxy to connect to %s", st.lease_url);
    if (start_wait_client(&st.c, st.c.id) < 0) {
        char ssh[512];

        start_cause(&st, "the lease proxy did not connect to the coordinator within 20 s (is "
                         "--lease-coordinator reachable from the lease?)");
        start_next(&st, "%s curl -sS %s/healthz", start_ssh_cmd(&st, ssh, sizeof(ssh)),
                   st.lease_url);
        start_undo(&st.c, &st.ssh, st.c.id, 1);
        rc = EXIT_RUNTIME;
        goto done;
    }
    fprintf(stderr, "egress start: lease proxy on %s:%s is connected (session %s)\n",
            st.ssh.target, st.listen, st.session);

    start_step(&st, 6, "starting the host agent%s", st.daemon ? " in the background" : "");
    start_next(&st,
               "egress status --id %s; the agent's log is in ~/.local/state/egress/%s.host.log",
               st.c.id, st.c.id);
    rc = start_host(&st);
    if (st.daemon && rc != EXIT_OK)
        start_undo(&st.c, &st.ssh, st.c.id, 1);
    if (st.daemon && rc == EXIT_OK)
        fprintf(stderr,
                "egress start: [%6.1fs] done: egress status --id %s; egress stop --id %s\n",
                start_elapsed(&st), st.c.id, st.c.id);
    /* the foreground agent's own exit (a signal, a lease ended) is no failed start */
    if (!st.daemon)
        goto out;
done:
    if (rc != 0 && st.step > 0)
        start_summary(&st, rc);
out:
    free(st.target);
    cli_close(&st.c);
    return rc;
}
