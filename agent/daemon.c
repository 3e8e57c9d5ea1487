/*
 * daemon.c: `egress host --daemon`: detach, then supervise the agent.
 *
 * The supervisor forks one agent process at a time (the function it was
 * given runs in the child: host_run() for `egress host`) and restarts it with backoff after a
 * crash or a transient exit (1); it stops for good on 0 (clean stop) and on the fatal codes 2,
 * 3, 4. The first agent uses the ticket we were given; restarts resume the session from the
 * state file the agent keeps (LEASE.host.state, mode 0600).
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "resume.h"

static volatile sig_atomic_t daemon_stop, daemon_hup;

static void daemon_on_signal(int sig)
{
    daemon_stop = sig;
}

/* SIGHUP is for the agent (re-read --allow-file): passed on, not a stop. */
static void daemon_on_hup(int sig)
{
    (void) sig;
    daemon_hup = 1;
}

static int daemon_pid_alive(const char *pidfile)
{
    FILE *f = fopen(pidfile, "r");
    long pid = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid > 0 && kill((pid_t) pid, 0) == 0 ? (int) pid : 0;
}

/* What the supervisor runs, and the one-use ticket of its first child. */
typedef struct {
    char **ticket;
    int (*run)(void *arg);
    void *arg;
} daemon_job_t;

static int daemon_supervise(const daemon_job_t *job, const char *pidfile)
{
    struct sigaction sa;
    unsigned restarts = 0;
    int code = EXIT_OK;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = daemon_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = daemon_on_hup;
    sigaction(SIGHUP, &sa, NULL);

    while (!daemon_stop) {
        time_t started = time(NULL);
        int status;
        pid_t pid = fork();

        if (pid < 0) {
            agent_log("supervisor: fork: %s", strerror(errno));
            code = EXIT_RUNTIME;
            break;
        }
        if (pid == 0) {
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            signal(SIGHUP, SIG_DFL);
            _exit(job->run(job->arg));
        }
        /* the ticket is one-use: only the first agent gets it */
        if (job->ticket && *job->ticket) {
            explicit_bzero(*job->ticket, strlen(*job->ticket));
            free(*job->ticket);
            *job->ticket = NULL;
        }
        agent_log("supervisor: agent pid %d started", (int) pid);
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                status = 0;
                break;
            }
            if (daemon_stop)
                kill(pid, SIGTERM);
            if (daemon_hup) {
                daemon_hup = 0;
                agent_log("supervisor: SIGHUP passed on to agent pid %d", (int) pid);
                kill(pid, SIGHUP);
            }
        }
        if (daemon_stop) {
            code = EXIT_OK;
            break;
        }
        if (WIFEXITED(status)) {
            code = WEXITSTATUS(status);
            if (code == EXIT_OK || code == EXIT_USAGE || code == EXIT_FATAL ||
                code == EXIT_AUTH) {
                agent_log("supervisor: agent exited with %d; not restarting", code);
                break;
            }
            agent_log("supervisor: agent exited with %d; restarting", code);
        } else {
            agent_log("supervisor: agent killed by signal %d; restarting",
                      WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
        if (time(NULL) - started > 60)
            restarts = 0;
        unsigned delay = restarts < 5 ? 1u << restarts : 30;
        restarts++;
        for (unsigned i = 0; i < delay * 10 && !daemon_stop; i++)
            usleep(100000);
    }
    unlink(pidfile);
    agent_log("supervisor: exiting (%d)", code);
    return code;
}

int daemon_run(const char *lease, char **ticket, int (*run)(void *arg), void *arg)
{
    daemon_job_t job = {ticket, run, arg};
    char dir[900], pidfile[1024], logfile[1024], buf[32];
    int fd, old;
    pid_t pid;

    if (config_state_dir(dir, sizeof(dir)) < 0) {
        fprintf(stderr,
                "egress host: cannot create the state directory (set XDG_STATE_HOME)\n");
        return EXIT_USAGE;
    }
    snprintf(pidfile, sizeof(pidfile), "%s/%s.host.pid", dir, lease);
    snprintf(logfile, sizeof(logfile), "%s/%s.host.log", dir, lease);
    if ((old = daemon_pid_alive(pidfile)) != 0) {
        fprintf(stderr, "egress host: a daemon for lease %s is already running (pid %d, %s)\n",
                lease, old, pidfile);
        return EXIT_USAGE;
    }
    if (ticket && *ticket) {
        /* a new ticket starts a new session: forget a stale resume secret */
        char state[1100];
        if (resume_path(lease, state, sizeof(state)) == 0)
            unlink(state);
    }
    fflush(NULL);
    if ((pid = fork()) < 0) {
        fprintf(stderr, "egress host: fork: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    if (pid > 0) {
        /* the parent reports once the pidfile exists */
        for (int i = 0; i < 100 && !daemon_pid_alive(pidfile); i++)
            usleep(20000);
        printf("egress host: daemon started for lease %s (pid file %s, log %s)\n", lease,
               pidfile, logfile);
        return EXIT_OK;
    }
    setsid();
    if ((fd = open("/dev/null", O_RDONLY)) >= 0) {
        dup2(fd, 0);
        close(fd);
    }
    if ((fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    if ((fd = open(pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) >= 0) {
        int n = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
        if (write(fd, buf, (size_t) n) != n)
            agent_log("supervisor: cannot write %s", pidfile);
        close(fd);
    }
    exit(daemon_supervise(&job, pidfile));
}
