/*
 * main.c: `egress <command> [options]`, the dispatcher of the egress binary.
 *
 * Each command lives in its own file and is one line in the table below;
 * commands parse their own options and print their own --help.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include "agent.h"

static const egress_cmd_t commands[] = {
    {"host", "run the host agent: dial allowlisted destinations for a lease", cmd_host},
    {"start", "start egress for a lease in one step (lease proxy over SSH, host agent)",
     cmd_start},
    {"client", "run the lease-side proxy (nginx with the egress module)", cmd_client},
    {"status", "show a lease's egress session; exit 0 when both sides are connected",
     cmd_status},
    {"stop", "stop the local host agent daemon and the lease's egress session", cmd_stop},
    {"allow", "add, remove or list allowlist patterns of a running host agent", cmd_allow},
    {"ticket", "mint a one-use WebSocket ticket for manual wiring", cmd_ticket},
    {"lease", "create, list, show or release leases on the coordinator", cmd_lease},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void main_usage(FILE *out)
{
    fprintf(out, "usage: egress <command> [options]\n"
                 "       egress help [command]\n"
                 "       egress --version\n"
                 "\n"
                 "Mediated egress: a browser on a lease reaches the internet through the\n"
                 "operator's machine, limited to an allowlist.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "Run `egress <command> --help` for the options of a command.\n"
            "\n"
            "Exit codes:\n"
            "  0  success (or stopped by SIGTERM/SIGINT)\n"
            "  1  runtime error (transient; a supervisor restarts the agent)\n"
            "  2  usage or configuration error (bad flag, no allowlist, bad pattern)\n"
            "  3  fatal bridge answer: lease forbidden (403), unknown (404), session\n"
            "     replaced (409, close 4001/4002), lease gone (410, 4003), stopped (4004)\n"
            "  4  credentials rejected or exhausted (ticket/token refused, nothing left)\n");
}

void agent_log(const char *fmt, ...)
{
    char ts[32];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03dZ egress: ", ts, (int) (tv.tv_usec / 1000));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static const egress_cmd_t *main_find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const egress_cmd_t *c;

    if (argc < 2) {
        main_usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("egress %s\n", EGRESS_VERSION);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            if ((c = main_find(argv[2])) == NULL) {
                fprintf(stderr, "egress: unknown command '%s'\n", argv[2]);
                return EXIT_USAGE;
            }
            char *hargv[] = {argv[2], "--help", NULL};
            return c->run(2, hargv);
        }
        main_usage(stdout);
        return EXIT_OK;
    }
    if ((c = main_find(argv[1])) == NULL) {
        fprintf(stderr, "egress: unknown command '%s' (see `egress help`)\n", argv[1]);
        return EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
