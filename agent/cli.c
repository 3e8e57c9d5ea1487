/*
 * cli.c: coordinator access and helpers shared by the operator commands.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

int cli_open(cli_t *c, int need_token)
{
    egress_error_t err;

    if (config_load(&c->cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", c->prog, err.message);
        return EXIT_USAGE;
    }
    if (!c->cfg.coordinator) {
        fprintf(stderr,
                "%s: no coordinator: pass --coordinator URL, set EGRESS_COORDINATOR, or put\n"
                "  `coordinator = URL` in ~/.config/egress/config\n",
                c->prog);
        return EXIT_USAGE;
    }
    if (url_parse(&c->url, c->cfg.coordinator, &err) < 0) {
        fprintf(stderr, "%s: %s\n", c->prog, err.message);
        return EXIT_USAGE;
    }
    if (need_token && !c->cfg.token) {
        fprintf(stderr,
                "%s: no API token: set EGRESS_TOKEN or put `token = ...` in\n"
                "  ~/.config/egress/config (tokens are never taken from the command line)\n",
                c->prog);
        return EXIT_USAGE;
    }
    return 0;
}

void cli_close(cli_t *c)
{
    config_free(&c->cfg);
}

int cli_api(cli_t *c, const char *method, const char *path, json_t *body, json_t **resp)
{
    egress_error_t err = {0};
    char *text = NULL;
    int status;

    if (body && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
        fprintf(stderr, "%s: out of memory\n", c->prog);
        return -1;
    }
    status = http_api(&c->url, method, path, c->cfg.token, text, resp, CLI_TIMEOUT_MS, &err);
    free(text);
    if (status < 0)
        fprintf(stderr, "%s: %s\n", c->prog,
                err.message[0] ? err.message : "coordinator request failed");
    return status;
}

int cli_api_fail(cli_t *c, int status, json_t *resp, const char *what)
{
    const char *m = cli_str(resp, "message");

    fprintf(stderr, "%s: %s: coordinator answered %d%s%s\n", c->prog, what, status,
            *m ? ": " : "", m);
    if (status == 401)
        return EXIT_AUTH;
    if (egress_http_status_fatal(status))
        return EXIT_FATAL;
    return EXIT_RUNTIME;
}

const char *cli_str(json_t *o, const char *key)
{
    const char *s = o ? json_string_value(json_object_get(o, key)) : NULL;

    return s ? s : "";
}

int cli_getopt(cli_t *c, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    int opt;

    if (!c->parsing) {
        optind = 1;
        c->parsing = 1;
    }
    for (;;) {
        switch ((opt = getopt_long(argc, argv, shortopts, longopts, NULL))) {
        case 'i':
            c->id = optarg;
            break;
        case 'c':
            free(c->cfg.coordinator);
            if ((c->cfg.coordinator = strdup(optarg)) == NULL) {
                fprintf(stderr, "%s: out of memory\n", c->prog);
                c->rc = EXIT_RUNTIME;
                return CLI_OPT_EXIT;
            }
            break;
        case 'h':
            c->usage(stdout);
            c->rc = EXIT_OK;
            return CLI_OPT_EXIT;
        case ':':
            fprintf(stderr, "%s: %s needs a value (see %s --help)\n", c->prog, argv[optind - 1],
                    c->prog);
            c->rc = EXIT_USAGE;
            return CLI_OPT_EXIT;
        case '?':
            if (shortopts[0] == ':')
                fprintf(stderr, "%s: unknown option '%s' (see %s --help)\n", c->prog,
                        argv[optind - 1], c->prog);
            c->rc = EXIT_USAGE;
            return CLI_OPT_EXIT;
        default:
            return opt;
        }
    }
}

int cli_take_lease(cli_t *c, int argc, char **argv)
{
    if (!c->id && optind == argc - 1)
        c->id = argv[optind++];
    if (optind != argc || !c->id || !cli_lease_ok(c->id)) {
        fprintf(stderr, "%s: --id LEASE is required (see %s --help)\n", c->prog, c->prog);
        return EXIT_USAGE;
    }
    return 0;
}

void cli_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int cli_lease_ok(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > 64)
        return 0;
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

int cli_write_private(const char *path, const char *data)
{
    char tmp[4096];
    size_t len = strlen(data), off = 0;
    int fd;

    if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long) getpid()) >=
        sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        off += (size_t) n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    if (rename(tmp, path) < 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

int cli_ssh_run(const cli_ssh_t *ssh, const char *const *args, const char *input)
{
    const char *argv[40];
    size_t n = 0, i;
    int in[2], status;
    pid_t pid;

    if (ssh->target[0] == '-') /* would be read as an ssh option */
        return -1;
    argv[n++] = "ssh";
    argv[n++] = "-o";
    argv[n++] = "BatchMode=yes";
    argv[n++] = "-o";
    argv[n++] = "ConnectTimeout=10";
    if (ssh->config) {
        argv[n++] = "-F";
        argv[n++] = ssh->config;
    }
    argv[n++] = "--";
    argv[n++] = ssh->target;
    argv[n++] = ssh->remote ? ssh->remote : "egress";
    for (i = 0; args[i] && n < sizeof(argv) / sizeof(argv[0]) - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    if (pipe2(in, O_CLOEXEC) < 0)
        return -1;
    fflush(NULL);
    if ((pid = fork()) < 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        execvp("ssh", (char *const *) argv);
        _exit(127);
    }
    close(in[0]);
    if (input) {
        size_t len = strlen(input), off = 0;
        while (off < len) {
            ssize_t w = write(in[1], input + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t) w;
        }
    }
    close(in[1]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
