/*
 * host.c: the long-running host agent: its credentials at startup, the
 * startup line, the audit log, and its life cycle on one libuv loop (signals,
 * the clean stop, the end). The bridge (bridge.c) and the streams
 * (stream.c) run on the same loop; the bridge reaches the streams and
 * host_finish() only through host_bridge_ops.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge.h"
#include "host.h"
#include "allow_file.h"
#include "metrics.h"
#include "resume.h"
#include "stream.h"

/* ---- life cycle ---- */

static void host_on_finish_idle(uv_idle_t *h)
{
    agent_t *ag = h->data;

    uv_idle_stop(h);
    uv_close((uv_handle_t *) h, NULL);
    bridge_stop(ag); /* outside any bridge callback */
}

static void host_finish(agent_t *ag, int code)
{
    if (ag->life.finished)
        return;
    ag->life.finished = 1;
    ag->life.exit_code = code;
    stream_kill_all(ag, 0);
    uv_timer_stop(&ag->bridge.retry_timer); /* closed here: no retry can start after this */
    uv_close((uv_handle_t *) &ag->bridge.retry_timer, NULL);
    uv_close((uv_handle_t *) &ag->life.stop_timer, NULL);
    uv_close((uv_handle_t *) &ag->life.sigterm, NULL);
    uv_close((uv_handle_t *) &ag->life.sigint, NULL);
    uv_close((uv_handle_t *) &ag->life.sighup, NULL);
    allow_file_state_remove(ag);
    metrics_stop(ag);
    uv_idle_init(&ag->loop, &ag->life.finish_idle);
    ag->life.finish_idle.data = ag;
    uv_idle_start(&ag->life.finish_idle, host_on_finish_idle);
}

static void host_on_stop_timeout(uv_timer_t *t)
{
    agent_t *ag = t->data;

    agent_log("coordinator did not acknowledge the close in time; exiting");
    host_finish(ag, EXIT_OK);
}

static void host_on_sighup(uv_signal_t *h, int signum)
{
    (void) signum;
    allow_file_reload(h->data);
}

static void host_on_signal(uv_signal_t *h, int signum)
{
    agent_t *ag = h->data;

    if (ag->life.stopping || ag->life.finished) {
        host_finish(ag, EXIT_OK);
        return;
    }
    agent_log("%s: closing %zu streams and the bridge", strsignal(signum), ag->streams.n);
    ag->life.stopping = 1;
    uv_timer_stop(&ag->bridge.retry_timer);
    if (!ag->bridge.ws || !ag->bridge.established) {
        host_finish(ag, EXIT_OK);
        return;
    }
    stream_kill_all(ag, 1);
    bridge_kick(ag); /* flushes, then closes with 1000 */
    uv_timer_start(&ag->life.stop_timer, host_on_stop_timeout, 3000, 0);
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

    /* No symbolic link (fchmod would reach its target) and no blocking on a
     * FIFO without a reader; O_NONBLOCK is cleared once it is open. */
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path,
                  O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW |
                      O_NONBLOCK,
                  0600);
        created = 1;
    }
    if (fd < 0)
        return NULL;
    if (fcntl(fd, F_SETFL, O_APPEND) < 0) {
        e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
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

/* One socket per stream, DNS on libuv's thread pool: room for thousands of streams. */
static void host_raise_limits(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* the pool has 4 threads by default; must be set before its first use */
    setenv("UV_THREADPOOL_SIZE", "32", 0);
}

/* The credential to start with: the given ticket, or (--daemon restart) the saved session. */
static void host_take_credentials(agent_t *ag)
{
    host_opts_t *o = ag->o;

    if (o->ticket) {
        snprintf(ag->cred.ticket, sizeof(ag->cred.ticket), "%s", o->ticket);
        explicit_bzero(o->ticket, strlen(o->ticket));
        free(o->ticket);
        o->ticket = NULL;
    }
    if (o->session)
        snprintf(ag->cred.session, sizeof(ag->cred.session), "%s", o->session);
    if (o->daemon &&
        resume_path(o->lease, ag->cred.state_path, sizeof(ag->cred.state_path)) == 0 &&
        !ag->cred.ticket[0])
        resume_load(ag); /* a restart: resume the session we had */
    if (o->session && strcmp(ag->cred.session, o->session) != 0) {
        /* the state belongs to another session than the one asked for */
        snprintf(ag->cred.session, sizeof(ag->cred.session), "%s", o->session);
        ag->cred.resume[0] = '\0';
    }
}

/* No credential in hand: mint the first ticket before the loop runs. Returns an exit code. */
static int host_mint_first(agent_t *ag)
{
    host_opts_t *o = ag->o;
    const char *allow[EGRESS_ALLOW_MAX_PATTERNS + 1];
    size_t n = egress_allow_count(o->allow);
    egress_error_t err;
    int st;

    if (ag->cred.ticket[0] || ag->cred.resume[0])
        return EXIT_OK;
    for (size_t i = 0; i < n; i++)
        allow[i] = egress_allow_pattern(o->allow, i);
    mint_req_t rq = {.lease = o->lease,
                     .token = o->token,
                     .session = ag->cred.session,
                     .profile = o->profile,
                     .allow = allow,
                     .nallow = n,
                     .timeout_ms = 10000};
    st = http_mint_ticket(&o->url, &rq, ag->cred.ticket, sizeof(ag->cred.ticket),
                          ag->cred.session, sizeof(ag->cred.session), &err);
    if (st == 0)
        return EXIT_OK;
    agent_log("cannot mint a host ticket: %s", err.message);
    return st == 401 ? EXIT_AUTH : egress_http_status_fatal(st) ? EXIT_FATAL : EXIT_RUNTIME;
}

/* What the bridge reaches above it: the streams and the agent's end. */
static const bridge_ops_t host_bridge_ops = {stream_on_frame, stream_reset, stream_kill_all,
                                             stream_release_held, host_finish};

/* The loop's handles: signals, the stop timer, the bridge, --metrics. Returns an exit code. */
static int host_loop_init(agent_t *ag)
{
    egress_error_t err;

    uv_loop_init(&ag->loop);
    uv_timer_init(&ag->loop, &ag->life.stop_timer);
    ag->life.stop_timer.data = ag;
    uv_signal_init(&ag->loop, &ag->life.sigterm);
    uv_signal_init(&ag->loop, &ag->life.sigint);
    ag->life.sigterm.data = ag->life.sigint.data = ag;
    uv_signal_start(&ag->life.sigterm, host_on_signal, SIGTERM);
    uv_signal_start(&ag->life.sigint, host_on_signal, SIGINT);
    uv_signal_init(&ag->loop, &ag->life.sighup);
    ag->life.sighup.data = ag;
    uv_signal_start(&ag->life.sighup, host_on_sighup, SIGHUP);
    allow_file_state_write(ag, ++ag->allow_gen, NULL);
    if (bridge_init(ag, &host_bridge_ops) < 0)
        return EXIT_RUNTIME;
    if (ag->o->metrics_addr && metrics_start(ag, ag->o->metrics_addr, &err) < 0) {
        agent_log("%s", err.message);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static void host_free(agent_t *ag)
{
    bridge_free(ag);
    stream_pool_free(ag);
    if (ag->streams.audit)
        fclose(ag->streams.audit);
    explicit_bzero(ag->cred.resume, sizeof(ag->cred.resume));
    explicit_bzero(ag->cred.ticket, sizeof(ag->cred.ticket));
    free(ag);
}

int host_run(host_opts_t *o)
{
    agent_t *ag;
    int code;

    host_raise_limits();
    if ((ag = calloc(1, sizeof(*ag))) == NULL)
        return EXIT_RUNTIME;
    ag->o = o;
    host_take_credentials(ag);
    if (o->audit_path && (ag->streams.audit = host_open_audit(o->audit_path)) == NULL) {
        agent_log("cannot open audit log %s: %s", o->audit_path, strerror(errno));
        free(ag);
        return EXIT_USAGE;
    }
    if ((code = host_mint_first(ag)) != EXIT_OK) {
        host_free(ag);
        return code;
    }
    host_startup_line(o, ag->cred.session[0] ? ag->cred.session : "(from ticket)");

    if ((code = host_loop_init(ag)) == EXIT_OK)
        bridge_connect(ag);
    else
        host_finish(ag, code); /* closes what was opened */
    uv_run(&ag->loop, UV_RUN_DEFAULT);
    code = ag->life.exit_code;
    if (uv_loop_close(&ag->loop) != 0)
        agent_log("event loop not empty at exit");
    host_free(ag);
    return code;
}
