/*
 * cmd_client.c: `egress client`, the lease side. Writes a minimal nginx
 * configuration for ngx_stream_egress_module into a private runtime directory
 * and runs Debian's nginx with it, so nobody needs to know nginx to use it.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define CLIENT_DEFAULT_LISTEN "127.0.0.1:3128"
#define CLIENT_NGINX          "/usr/sbin/nginx"
#define CLIENT_STREAM_MODULE  "/usr/lib/nginx/modules/ngx_stream_module.so"
#define CLIENT_SYSTEM_MODULE  "/usr/lib/nginx/modules/ngx_stream_egress_module.so"

static void client_usage(FILE *out)
{
    fprintf(
        out,
        "usage: egress client --id LEASE [--listen 127.0.0.1:3128] [--ticket-file FILE]\n"
        "                     [--coordinator URL] [--protocol auto|v1|v2] [--daemon]\n"
        "                     [--print-config] [--stop]\n"
        "\n"
        "Run the lease-side proxy: nginx with ngx_stream_egress_module listening on a\n"
        "loopback address, its bridge connected to the coordinator as the lease's\n"
        "egress client. Point a browser at it with --proxy-server=http://LISTEN.\n"
        "\n"
        "Options:\n"
        "  --id LEASE            lease id or slug\n"
        "  --listen ADDR:PORT    proxy address; loopback only (127.0.0.0/8, [::1],\n"
        "                        localhost); default 127.0.0.1:3128\n"
        "  --ticket-file FILE    one-use client ticket (\"-\" reads standard input);\n"
        "                        else EGRESS_TICKET; not needed to restart with a\n"
        "                        resume secret saved by an earlier run\n"
        "  --coordinator URL     coordinator base URL (http:// or https://)\n"
        "  --protocol auto|v1|v2 bridge protocol (default auto: egress.v2, falling back\n"
        "                        to egress.v1 when the coordinator sends no hello);\n"
        "                        v1 is crabbox's format\n"
        "  --trusted-certificate FILE\n"
        "                        CA bundle that verifies an https:// coordinator\n"
        "  --module FILE         the module to load (default: next to this program,\n"
        "                        else " CLIENT_SYSTEM_MODULE ")\n"
        "  --runtime-dir DIR     private directory for the config, ticket, resume\n"
        "                        state, pid and logs (default $XDG_RUNTIME_DIR/egress/LEASE,\n"
        "                        /run/egress/LEASE as root, else /tmp/egress-UID/LEASE)\n"
        "  --daemon              run nginx in the background and return\n"
        "  --print-config        print the nginx configuration and exit\n"
        "  --stop                stop a client started with --daemon and exit\n"
        "  -h, --help            this help\n"
        "\n"
        "No coordinator credential is needed or accepted here: the lease side holds\n"
        "only its one-use ticket and the resume secret the coordinator hands it.\n"
        "\n"
        "Exit status: 0 ok (or nginx's own status in the foreground); 1 failure;\n"
        "2 usage or configuration error (including a runtime directory the nginx\n"
        "worker user cannot reach).\n");
}

static int client_runtime_dir(char *out, size_t cap, const char *lease)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    char base[PATH_MAX];

    if (xdg && *xdg)
        snprintf(base, sizeof(base), "%s/egress", xdg);
    else if (geteuid() == 0)
        snprintf(base, sizeof(base), "/run/egress");
    else
        snprintf(base, sizeof(base), "/tmp/egress-%ld", (long) geteuid());
    /* Traversable but not listable: a root-run nginx worker (nobody) must reach its dir. */
    if (mkdir(base, 0711) < 0 && errno != EEXIST)
        return -1;
    if (geteuid() == 0 && chmod(base, 0711) < 0)
        return -1;
    if ((size_t) snprintf(out, cap, "%s/%s", base, lease) >= cap)
        return -1;
    return 0;
}

static const char *client_module(const char *flag, char *buf, size_t cap)
{
    const char *env = getenv("EGRESS_MODULE");
    char self[PATH_MAX];
    ssize_t n;

    if (flag)
        return flag;
    if (env && *env)
        return env;
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        snprintf(buf, cap, "%s/ngx_stream_egress_module.so", dirname(self));
        if (access(buf, R_OK) == 0)
            return buf;
    }
    return CLIENT_SYSTEM_MODULE;
}

static char *client_config(const char *lease, const egress_url_t *u, const char *listen,
                           const char *module, const char *dir, const char *trusted,
                           const char *user, int daemon, const char *protocol)
{
    char *conf = NULL, hostport[300], tls_line[PATH_MAX + 64] = "";

    if (strchr(u->host, ':'))
        snprintf(hostport, sizeof(hostport), "[%s]:%u", u->host, u->port);
    else
        snprintf(hostport, sizeof(hostport), "%s:%u", u->host, u->port);
    if (trusted)
        snprintf(tls_line, sizeof(tls_line), "    egress_bridge_trusted_certificate %s;\n",
                 trusted);
    if (asprintf(&conf,
                 "# Written by `egress client` for lease %s; regenerated on every start.\n"
                 "load_module %s;\n"
                 "load_module %s;\n"
                 "%s"
                 "worker_processes 1;\n"
                 "daemon %s;\n"
                 "pid %s/nginx.pid;\n"
                 "error_log %s info;\n"
                 "events {\n"
                 "    worker_connections 4096;\n"
                 "}\n"
                 "stream {\n"
                 "    egress_bridge %s://%s%s/v1/leases/%s/egress/client;\n"
                 "    egress_bridge_ticket_file %s/client.ticket;\n"
                 "    egress_bridge_state_file %s/client.state;\n"
                 "    egress_bridge_protocol %s;\n"
                 "%s"
                 "    server {\n"
                 "        listen %s;\n"
                 "        egress_proxy on;\n"
                 "    }\n"
                 "}\n",
                 lease, CLIENT_STREAM_MODULE, module, user, "off", dir,
                 daemon ? "logs/error.log" : "stderr", u->tls ? "wss" : "ws", hostport,
                 u->prefix, lease, dir, dir, protocol, tls_line, listen) < 0)
        return NULL;
    return conf;
}

/*
 * As root, nginx runs its worker as an unprivileged user; that worker reads
 * the ticket and writes the resume state, so it must own the runtime
 * directory and the ticket. Other users run the worker as themselves.
 */
static int client_worker_user(char *line, size_t cap, uid_t *uid, gid_t *gid)
{
    struct passwd *pw;
    struct group *gr;

    line[0] = '\0';
    *uid = (uid_t) -1;
    *gid = (gid_t) -1;
    if (geteuid() != 0)
        return 0;
    if ((pw = getpwnam("nobody")) == NULL)
        return -1;
    gr = getgrnam("nogroup");
    *uid = pw->pw_uid;
    *gid = gr ? gr->gr_gid : pw->pw_gid;
    snprintf(line, cap, "user nobody %s;\n", gr ? "nogroup" : "nobody");
    return 0;
}

#define CLIENT_MAX_GROUPS 64

/* Who the nginx worker runs as: its uid and every group it holds. */
typedef struct {
    char name[64];
    uid_t uid;
    gid_t groups[CLIENT_MAX_GROUPS];
    int ngroups;
} client_worker_t;

static void client_worker_identity(client_worker_t *w, uid_t wuid, gid_t wgid)
{
    struct passwd *pw;

    if (wuid == (uid_t) -1) {
        /* not root: the worker is this very process's user */
        w->uid = geteuid();
        pw = getpwuid(w->uid);
        snprintf(w->name, sizeof(w->name), "%s", pw ? pw->pw_name : "this user");
        w->groups[0] = getegid();
        w->ngroups = getgroups(CLIENT_MAX_GROUPS - 1, w->groups + 1);
        w->ngroups = w->ngroups < 0 ? 1 : w->ngroups + 1;
        return;
    }
    w->uid = wuid;
    pw = getpwuid(wuid);
    snprintf(w->name, sizeof(w->name), "%s", pw ? pw->pw_name : "nobody");
    w->ngroups = CLIENT_MAX_GROUPS - 1;
    if (!pw || getgrouplist(pw->pw_name, wgid, w->groups + 1, &w->ngroups) < 0)
        w->ngroups = 0;
    w->groups[0] = wgid;
    w->ngroups++;
}

/* 1 when the worker has every permission in want (4 read, 2 write, 1 search) on sb. */
static int client_worker_may(const client_worker_t *w, const struct stat *sb, unsigned want)
{
    unsigned bits = sb->st_mode & 7;
    int i;

    if (w->uid == 0)
        return 1;
    if (sb->st_uid == w->uid) {
        bits = (sb->st_mode >> 6) & 7;
    } else {
        for (i = 0; i < w->ngroups; i++) {
            if (w->groups[i] == sb->st_gid) {
                bits = (sb->st_mode >> 3) & 7;
                break;
            }
        }
    }
    return (bits & want) == want;
}

/*
 * Checks that the worker can search every directory on the way to path
 * (each prefix of it, symbolic links followed) and path itself. On failure
 * writes the first directory it cannot search into bad and its mode and
 * owner into why. path is absolute.
 */
static int client_worker_walk(const client_worker_t *w, const char *path, char *bad,
                              size_t badcap, char *why, size_t cap)
{
    char prefix[PATH_MAX];
    size_t i, len = strlen(path);
    struct stat sb;
    struct passwd *pw;

    if (len >= sizeof(prefix))
        return 0;
    for (i = 1; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        if (stat(prefix, &sb) < 0)
            continue; /* created later, or gone: the open itself will say */
        if (S_ISDIR(sb.st_mode) && !client_worker_may(w, &sb, 1)) {
            pw = getpwuid(sb.st_uid);
            snprintf(bad, badcap, "%s", prefix);
            snprintf(why, cap, "%s is mode %04o owned by %s", prefix,
                     (unsigned) (sb.st_mode & 07777), pw ? pw->pw_name : "another user");
            return -1;
        }
    }
    return 0;
}

/*
 * The worker, not the master, opens the ticket and state files by path; if
 * it cannot reach them, every proxy request gets 503. Checked before nginx
 * starts so that a private --runtime-dir fails at once with the fix.
 */
static int client_check_worker_access(const char *dir, uid_t wuid, gid_t wgid)
{
    client_worker_t w;
    char abs[PATH_MAX], real[PATH_MAX], bad[PATH_MAX] = "", why[2 * PATH_MAX] = "";
    char file[PATH_MAX + 32];
    struct stat sb;

    client_worker_identity(&w, wuid, wgid);
    if (dir[0] == '/') {
        snprintf(abs, sizeof(abs), "%s", dir);
    } else if (getcwd(real, sizeof(real)) == NULL ||
               (size_t) snprintf(abs, sizeof(abs), "%s/%s", real, dir) >= sizeof(abs)) {
        return 0;
    }
    if (client_worker_walk(&w, abs, bad, sizeof(bad), why, sizeof(why)) == 0 &&
        realpath(abs, real) != NULL)
        client_worker_walk(&w, real, bad, sizeof(bad), why, sizeof(why));
    if (bad[0]) {
        fprintf(stderr,
                "egress client: the nginx worker runs as user %s and cannot reach the runtime\n"
                "  directory %s: %s, so every request would get 503.\n"
                "  Fix: pass a --runtime-dir below directories %s may search (the default\n"
                "  /run/egress/LEASE as root is one), or allow the search: chmod o+x %s\n",
                w.name, dir, why, w.name, bad);
        return -1;
    }
    snprintf(file, sizeof(file), "%s/client.ticket", dir);
    if (stat(file, &sb) == 0 && !client_worker_may(&w, &sb, 4))
        snprintf(why, sizeof(why), "%s is not readable by it", file);
    snprintf(file, sizeof(file), "%s/client.state", dir);
    if (!why[0] && stat(file, &sb) == 0 && !client_worker_may(&w, &sb, 6))
        snprintf(why, sizeof(why), "%s is not readable and writable by it", file);
    if (!why[0] && stat(dir, &sb) == 0 && !client_worker_may(&w, &sb, 7))
        snprintf(why, sizeof(why), "%s is mode %04o and not its own", dir,
                 (unsigned) (sb.st_mode & 07777));
    if (!why[0])
        return 0;
    fprintf(stderr,
            "egress client: the nginx worker runs as user %s: %s, so every request would\n"
            "  get 503. Fix: remove %s and start again, or give it to %s (chown -R).\n",
            w.name, why, dir, w.name);
    return -1;
}

/* Names every missing piece of the lease side; 0 when all are there. */
static int client_check(const char *module)
{
    const char *nginx = getenv("EGRESS_NGINX") && *getenv("EGRESS_NGINX")
                            ? getenv("EGRESS_NGINX")
                            : CLIENT_NGINX;
    int missing = 0;

    if (access(nginx, X_OK) < 0) {
        printf("missing: nginx (%s; Debian package nginx)\n", nginx);
        missing = 1;
    }
    if (access(CLIENT_STREAM_MODULE, R_OK) < 0) {
        printf("missing: nginx stream module (%s; Debian package libnginx-mod-stream)\n",
               CLIENT_STREAM_MODULE);
        missing = 1;
    }
    if (access(module, R_OK) < 0) {
        printf("missing: ngx_stream_egress_module (%s)\n", module);
        missing = 1;
    }
    if (!missing)
        printf("ok: nginx %s, module %s\n", nginx, module);
    return missing ? EXIT_RUNTIME : EXIT_OK;
}

static long client_read_pid(const char *path)
{
    char buf[32];
    FILE *f = fopen(path, "r");
    long pid;

    if (!f)
        return 0;
    pid = fgets(buf, sizeof(buf), f) ? strtol(buf, NULL, 10) : 0;
    fclose(f);
    return pid > 1 ? pid : 0;
}

/* TERMs pid and waits up to 10 s until it is gone. 0 when it was running. */
static int client_kill_wait(long pid)
{
    int i;

    if (pid <= 1 || kill((pid_t) pid, SIGTERM) < 0)
        return -1;
    for (i = 0; i < 500 && kill((pid_t) pid, 0) == 0; i++)
        cli_sleep_ms(20);
    return 0;
}

/*
 * Stops a running client: its watcher (client.pid), which stops nginx and
 * exits, or else an nginx master left without one (nginx.pid).
 */
static int client_stop(const char *dir, int quiet)
{
    char path[PATH_MAX + 16];
    long pid;

    snprintf(path, sizeof(path), "%s/client.pid", dir);
    pid = client_read_pid(path);
    if (client_kill_wait(pid) == 0) {
        unlink(path);
        if (!quiet)
            printf("egress client: stopped (pid %ld)\n", pid);
        return EXIT_OK;
    }
    unlink(path);
    snprintf(path, sizeof(path), "%s/nginx.pid", dir);
    pid = client_read_pid(path);
    if (client_kill_wait(pid) == 0) {
        if (!quiet)
            printf("egress client: stopped nginx (pid %ld)\n", pid);
        return EXIT_OK;
    }
    unlink(path);
    if (!quiet)
        printf("egress client: not running\n");
    return EXIT_OK;
}

static volatile sig_atomic_t client_signal;

static void client_on_signal(int sig)
{
    client_signal = sig;
}

/* 1 when the module marked the lease or session as over in its state file. */
static int client_ended(const char *state)
{
    egress_state_t st;
    int ended = egress_state_load(&st, state, NULL) == 1 && st.ended;

    egress_state_wipe(&st);
    return ended;
}

/*
 * Runs nginx as a child and watches it: signals are passed on, and when the
 * module records that the lease was released or the session stopped, nginx
 * is stopped too, so the proxy port closes with the lease. With daemon, this
 * watcher detaches first and the command returns at once.
 */
static int client_supervise(const char *nginx, char *const *nargv, const char *state,
                            const char *pidfile, int daemon)
{
    char line[32];
    struct sigaction sa;
    pid_t pid;
    int status, ticks = 0, fd;

    fflush(NULL);
    if (daemon) {
        if ((pid = fork()) < 0)
            return EXIT_RUNTIME;
        if (pid > 0)
            return EXIT_OK;
        setsid();
        /* an SSH session waits for these to close */
        if ((fd = open("/dev/null", O_RDWR)) >= 0) {
            dup2(fd, STDIN_FILENO);
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            if (fd > STDERR_FILENO)
                close(fd);
        }
    }
    snprintf(line, sizeof(line), "%ld\n", (long) getpid());
    if (cli_write_private(pidfile, line) < 0)
        return EXIT_RUNTIME;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = client_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if ((pid = fork()) < 0)
        return EXIT_RUNTIME;
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        execv(nginx, nargv);
        fprintf(stderr, "egress client: cannot run %s: %s\n", nginx, strerror(errno));
        _exit(EXIT_RUNTIME);
    }
    for (;;) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        pid_t w = waitpid(pid, &status, WNOHANG);

        if (w == pid) {
            unlink(pidfile);
            return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_RUNTIME;
        }
        if (client_signal) {
            kill(pid, client_signal == SIGHUP ? SIGHUP : SIGTERM);
            client_signal = 0;
        }
        if (++ticks % 10 == 0 && client_ended(state)) {
            fprintf(stderr, "egress client: the lease or its egress session is over; "
                            "stopping the proxy\n");
            kill(pid, SIGTERM);
        }
        nanosleep(&ts, NULL);
    }
}

/* One `egress client`: its options and where it keeps its files. */
typedef struct {
    cli_t c; /* --id, --coordinator, --help; then the coordinator's URL */
    const char *listen, *ticket_file, *module_flag, *dir_flag, *trusted, *protocol;
    int daemon, print, stop, check;
    char dir[PATH_MAX];
    char modbuf[PATH_MAX];
} client_t;

/* The options. Returns 0, or -1 to end with the exit code in cl->c.rc (--help, bad flags). */
static int client_parse(client_t *cl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"ticket-file", required_argument, NULL, 't'},
        {"trusted-certificate", required_argument, NULL, 'T'},
        {"module", required_argument, NULL, 'm'},
        {"runtime-dir", required_argument, NULL, 'r'},
        {"daemon", no_argument, NULL, 'd'},
        {"print-config", no_argument, NULL, 'p'},
        {"stop", no_argument, NULL, 's'},
        {"check", no_argument, NULL, 'k'},
        {"protocol", required_argument, NULL, 'P'},
        CLI_OPTIONS_COMMON,
    };
    int opt;

    while ((opt = cli_getopt(&cl->c, argc, argv, "h", longopts)) != -1) {
        switch (opt) {
        case 'l':
            cl->listen = optarg;
            break;
        case 't':
            cl->ticket_file = optarg;
            break;
        case 'T':
            cl->trusted = optarg;
            break;
        case 'm':
            cl->module_flag = optarg;
            break;
        case 'r':
            cl->dir_flag = optarg;
            break;
        case 'd':
            cl->daemon = 1;
            break;
        case 'p':
            cl->print = 1;
            break;
        case 's':
            cl->stop = 1;
            break;
        case 'k':
            cl->check = 1;
            break;
        case 'P':
            if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "v1") != 0 &&
                strcmp(optarg, "v2") != 0) {
                fprintf(stderr, "egress client: --protocol must be auto, v1 or v2\n");
                cl->c.rc = EXIT_USAGE;
                return -1;
            }
            cl->protocol = optarg;
            break;
        default: /* CLI_OPT_EXIT */
            return -1;
        }
    }
    return (cl->c.rc = cli_take_lease(&cl->c, argc, argv)) != 0 ? -1 : 0;
}

/* --listen must be loopback; then the runtime directory. Returns 0 or an exit code. */
static int client_check_place(client_t *cl)
{
    char host[EGRESS_HOST_BUF];
    uint16_t port;
    egress_error_t e;

    if (egress_hostport_parse(host, &port, cl->listen, strlen(cl->listen), 0, &e) < 0) {
        fprintf(stderr, "egress client: --listen %s: %s\n", cl->listen, e.message);
        return EXIT_USAGE;
    }
    if (!egress_host_is_loopback(host, strlen(host))) {
        fprintf(stderr,
                "egress client: --listen %s is not a loopback address; the proxy only\n"
                "  listens on 127.0.0.0/8, [::1] or localhost so nothing else can use it\n",
                cl->listen);
        return EXIT_USAGE;
    }
    if (cl->dir_flag) {
        if (strlen(cl->dir_flag) >= sizeof(cl->dir))
            return EXIT_USAGE;
        strcpy(cl->dir, cl->dir_flag);
    } else if (client_runtime_dir(cl->dir, sizeof(cl->dir), cl->c.id) < 0) {
        fprintf(stderr, "egress client: cannot create a runtime directory: %s\n",
                strerror(errno));
        return EXIT_RUNTIME;
    }
    return 0;
}

/*
 * client.ticket in the runtime directory: a new ticket (which voids the old
 * resume secret and end mark), else an empty file, since the module needs a
 * readable one even when it resumes. Returns 0 or -1 (reported).
 */
static int client_write_ticket(client_t *cl, const char *path)
{
    char state[PATH_MAX + 32], *ticket = NULL, *line;
    const char *env = getenv("EGRESS_TICKET");
    egress_error_t e;
    size_t n;
    int rc = -1;

    if (cl->ticket_file) {
        if ((ticket = config_read_secret_file(cl->ticket_file, &e)) == NULL) {
            fprintf(stderr, "egress client: %s\n", e.message);
            return -1;
        }
    } else if (env && *env) {
        ticket = strdup(env);
    }
    /* a restart replaces the previous proxy of this lease instead of failing to bind */
    client_stop(cl->dir, 1);
    if (!ticket)
        return access(path, R_OK) < 0 ? cli_write_private(path, "") : 0;
    snprintf(state, sizeof(state), "%s/client.state", cl->dir);
    unlink(state);
    n = strlen(ticket);
    if ((line = malloc(n + 2)) != NULL) {
        memcpy(line, ticket, n);
        memcpy(line + n, "\n", 2);
        if ((rc = cli_write_private(path, line)) < 0)
            fprintf(stderr, "egress client: cannot write %s: %s\n", path, strerror(errno));
        explicit_bzero(line, n);
        free(line);
    }
    explicit_bzero(ticket, n);
    free(ticket);
    return rc;
}

/*
 * The runtime directory with nginx.conf and client.ticket, owned by and
 * reachable for the nginx worker. Returns 0 or an exit code.
 */
static int client_prepare(client_t *cl, const char *conf, uid_t wuid, gid_t wgid)
{
    char path[PATH_MAX + 32];

    if ((mkdir(cl->dir, 0700) < 0 && errno != EEXIST) || chmod(cl->dir, 0700) < 0) {
        fprintf(stderr, "egress client: %s: %s\n", cl->dir, strerror(errno));
        return EXIT_RUNTIME;
    }
    snprintf(path, sizeof(path), "%s/logs", cl->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/client.ticket", cl->dir);
    if (client_write_ticket(cl, path) < 0)
        return EXIT_RUNTIME;
    if (wuid != (uid_t) -1 && (chown(cl->dir, wuid, wgid) < 0 || chown(path, wuid, wgid) < 0)) {
        fprintf(stderr, "egress client: cannot hand %s to the worker user: %s\n", cl->dir,
                strerror(errno));
        return EXIT_RUNTIME;
    }
    if (client_check_worker_access(cl->dir, wuid, wgid) < 0)
        return EXIT_USAGE;
    snprintf(path, sizeof(path), "%s/nginx.conf", cl->dir);
    if (cli_write_private(path, conf) < 0) {
        fprintf(stderr, "egress client: cannot write %s: %s\n", path, strerror(errno));
        return EXIT_RUNTIME;
    }
    return 0;
}

/* nginx with the written configuration, watched by client_supervise(). */
static int client_run_nginx(client_t *cl)
{
    char prefix[PATH_MAX + 2], conf[PATH_MAX + 32], elog[PATH_MAX + 32];
    char state[PATH_MAX + 32], pidfile[PATH_MAX + 32];
    const char *nginx = getenv("EGRESS_NGINX") && *getenv("EGRESS_NGINX")
                            ? getenv("EGRESS_NGINX")
                            : CLIENT_NGINX;

    snprintf(prefix, sizeof(prefix), "%s/", cl->dir);
    snprintf(conf, sizeof(conf), "%s/nginx.conf", cl->dir);
    snprintf(elog, sizeof(elog), "%s/logs/error.log", cl->dir);
    snprintf(state, sizeof(state), "%s/client.state", cl->dir);
    snprintf(pidfile, sizeof(pidfile), "%s/client.pid", cl->dir);
    char *nargv[] = {
        (char *) nginx, "-p", prefix, "-c", conf, "-e", cl->daemon ? elog : "stderr", NULL};
    fprintf(stderr, "egress client: proxy for lease %s on %s%s%s%s\n", cl->c.id, cl->listen,
            cl->daemon ? " (logs " : "", cl->daemon ? elog : "", cl->daemon ? ")" : "");
    return client_supervise(nginx, nargv, state, pidfile, cl->daemon);
}

int cmd_client(int argc, char **argv)
{
    client_t cl;
    const char *module;
    char *conf = NULL, user[64];
    uid_t wuid;
    gid_t wgid;
    int rc;

    memset(&cl, 0, sizeof(cl));
    cl.c.prog = "egress client";
    cl.c.usage = client_usage;
    cl.listen = CLIENT_DEFAULT_LISTEN;
    cl.protocol = "auto";
    if (client_parse(&cl, argc, argv) < 0) {
        rc = cl.c.rc;
        goto out;
    }
    if ((rc = client_check_place(&cl)) != 0)
        goto out;
    module = client_module(cl.module_flag, cl.modbuf, sizeof(cl.modbuf));
    if (cl.stop || cl.check) {
        rc = cl.stop ? client_stop(cl.dir, 0) : client_check(module);
        goto out;
    }
    if ((rc = cli_open(&cl.c, 0)) != 0)
        goto out;
    rc = EXIT_RUNTIME;
    if (client_worker_user(user, sizeof(user), &wuid, &wgid) < 0) {
        fprintf(stderr, "egress client: no user \"nobody\" to run the nginx worker as\n");
        goto out;
    }
    conf = client_config(cl.c.id, &cl.c.url, cl.listen, module, cl.dir, cl.trusted, user,
                         cl.daemon, cl.protocol);
    if (!conf)
        goto out;
    if (cl.print) {
        fputs(conf, stdout);
        rc = EXIT_OK;
        goto out;
    }
    if (access(module, R_OK) < 0) {
        fprintf(stderr, "egress client: the nginx module %s is missing (%s)\n", module,
                strerror(errno));
        goto out;
    }
    if ((rc = client_prepare(&cl, conf, wuid, wgid)) == 0)
        rc = client_run_nginx(&cl);
out:
    free(conf);
    cli_close(&cl.c);
    return rc;
}
