/*
 * cmd_stop.c: `egress stop`, tear down a lease's egress: the local host agent
 * daemon, the lease-side proxy (over SSH, when the lease has a target), and
 * the coordinator session. Every step tolerates "already gone", so running it
 * twice is harmless.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void stop_usage(FILE *out)
{
    fprintf(out,
            "usage: egress stop --id LEASE [--ssh TARGET] [--ssh-config FILE]\n"
            "                   [--remote-egress PATH] [--local-only]\n"
            "\n"
            "Stop the egress of LEASE:\n"
            "  1. the host agent daemon started by `egress start --daemon` or\n"
            "     `egress host --daemon` on this machine (SIGTERM; it closes its streams);\n"
            "  2. the lease-side proxy, over SSH (`egress client --stop` on the lease),\n"
            "     when --ssh is given or the lease record names an SSH target;\n"
            "  3. the coordinator's egress session (DELETE), which closes both sockets.\n"
            "Steps with nothing to stop are skipped; stopping twice is not an error.\n"
            "\n"
            "Options:\n"
            "  --id LEASE         lease id or slug\n"
            "  --ssh TARGET       SSH destination of the lease (overrides the lease record)\n"
            "  --ssh-config FILE  OpenSSH client configuration (ssh -F)\n"
            "  --remote-egress PATH\n"
            "                     the egress program on the lease (default: egress)\n"
            "  --local-only       only stop the local daemon\n"
            "  --coordinator URL  coordinator base URL\n"
            "  -h, --help         this help\n"
            "\n"
            "Exit status: 0 stopped (or nothing was running); 1 a step failed; 2 usage;\n"
            "3 lease forbidden or unknown; 4 token refused.\n");
}

/* Returns 0 when no daemon runs (any more), -1 when it would not stop. */
static int stop_daemon(const char *lease)
{
    char dir[900], pidfile[1024], buf[32];
    FILE *f;
    long pid;
    int i;

    if (config_state_dir(dir, sizeof(dir)) < 0)
        return 0;
    snprintf(pidfile, sizeof(pidfile), "%s/%s.host.pid", dir, lease);
    if ((f = fopen(pidfile, "r")) == NULL)
        return 0;
    pid = fgets(buf, sizeof(buf), f) ? strtol(buf, NULL, 10) : 0;
    fclose(f);
    if (pid <= 1 || kill((pid_t) pid, SIGTERM) < 0) {
        unlink(pidfile);
        return 0;
    }
    for (i = 0; i < 1000 && kill((pid_t) pid, 0) == 0; i++)
        cli_sleep_ms(20);
    if (kill((pid_t) pid, 0) == 0) {
        fprintf(stderr, "egress stop: host agent daemon (pid %ld) did not exit\n", pid);
        return -1;
    }
    printf("stopped host agent daemon (pid %ld)\n", pid);
    return 0;
}

/* Runs `egress client --id L --stop` on the lease over SSH. */
static int stop_remote(const cli_ssh_t *ssh, const char *lease)
{
    const char *args[] = {"client", "--id", lease, "--stop", NULL};

    if (cli_ssh_run(ssh, args, NULL) != 0) {
        fprintf(stderr, "egress stop: stopping the lease proxy over SSH (%s) failed\n",
                ssh->target);
        return -1;
    }
    return 0;
}

int cmd_stop(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ssh", required_argument, NULL, 'S'},
        {"local-only", no_argument, NULL, 'l'},
        {"ssh-config", required_argument, NULL, 'F'},
        {"remote-egress", required_argument, NULL, 'R'},
        CLI_OPTIONS_COMMON,
    };
    cli_t c = {.prog = "egress stop", .usage = stop_usage};
    const char *id, *ssh = NULL;
    cli_ssh_t remote = {NULL, NULL, "egress"};
    json_t *resp = NULL;
    char path[256], *target = NULL;
    int local_only = 0, opt, rc, status, failed = 0;

    while ((opt = cli_getopt(&c, argc, argv, "h", longopts)) != -1) {
        switch (opt) {
        case 'S':
            ssh = optarg;
            break;
        case 'l':
            local_only = 1;
            break;
        case 'F':
            remote.config = optarg;
            break;
        case 'R':
            remote.remote = optarg;
            break;
        default: /* CLI_OPT_EXIT */
            rc = c.rc;
            goto done;
        }
    }
    if ((rc = cli_take_lease(&c, argc, argv)) != 0)
        goto done;
    id = c.id;
    if (stop_daemon(id) < 0)
        failed = 1;
    if (local_only) {
        rc = failed ? EXIT_RUNTIME : EXIT_OK;
        goto done;
    }
    if ((rc = cli_open(&c, 1)) != 0)
        goto done;

    if (ssh) {
        target = strdup(ssh);
    } else {
        snprintf(path, sizeof(path), "/v1/leases/%s", id);
        status = cli_api(&c, "GET", path, NULL, &resp);
        if (status == 200 && *cli_str(resp, "ssh"))
            target = strdup(cli_str(resp, "ssh"));
        json_decref(resp);
        resp = NULL;
    }
    remote.target = target;
    if (target && stop_remote(&remote, id) < 0)
        failed = 1;

    snprintf(path, sizeof(path), "/v1/leases/%s/egress", id);
    status = cli_api(&c, "DELETE", path, NULL, &resp);
    if (status < 0) {
        failed = 1;
    } else if (status == 200 || status == 204) {
        printf("stopped egress session of lease %s\n", id);
    } else if (status == 404 && strstr(cli_str(resp, "message"), "no egress session")) {
        printf("lease %s has no egress session\n", id);
    } else if (status == 410) {
        printf("lease %s is released or expired; its session is gone\n", id);
    } else if ((status == 404 && !strstr(cli_str(resp, "message"), "no such lease")) ||
               status == 405 || status == 501) {
        /* a coordinator without our DELETE (crabbox's): what runs here is stopped */
        printf("the coordinator cannot stop egress sessions (answered %d to DELETE); the "
               "session of lease %s ends when the lease is released or expires\n",
               status, id);
    } else {
        rc = cli_api_fail(&c, status, resp, "stop");
        goto done;
    }
    rc = failed ? EXIT_RUNTIME : EXIT_OK;
done:
    free(target);
    json_decref(resp);
    cli_close(&c);
    return rc;
}
