/*
 * cmd_allow.c: `egress allow --id LEASE add|remove|list [PATTERN...]`: edits
 * the --allow-file of the lease's running host agent and has it re-read the
 * file (SIGHUP), then reports what the agent made of it. The agent's state
 * file LEASE.host.allow (allow_file.h) names its pid and the file.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allow_file.h"
#include "cli.h"

static void allow_usage(FILE *out)
{
    fprintf(out,
            "usage: egress allow --id LEASE add PATTERN...\n"
            "       egress allow --id LEASE remove PATTERN...\n"
            "       egress allow --id LEASE list\n"
            "\n"
            "Change the allowlist of the lease's running host agent without a restart.\n"
            "The agent must have been started with --allow-file FILE: add appends the\n"
            "patterns to FILE, remove deletes their lines, and both make the agent\n"
            "re-read it (SIGHUP) and wait for its answer. New connections follow the new\n"
            "list at once; open ones are kept unless the agent runs with --strict-reload.\n"
            "list prints the patterns the agent enforces now.\n"
            "\n"
            "Patterns: `example.com`, `*.example.com`, an IP literal, each optionally\n"
            "with `:PORT` (see `egress host --help`).\n"
            "\n"
            "Options:\n"
            "  --id LEASE   lease id or slug\n"
            "  -h, --help   this help\n"
            "\n"
            "Exit status: 0 done; 1 no agent with --allow-file is running, or it refused\n"
            "the file (the old list stays in force); 2 usage or a bad pattern.\n");
}

typedef struct {
    long pid;
    char file[4400];
    unsigned gen;
    char result[4200]; /* "ok N" or "error TEXT" */
    char *patterns;    /* "pattern P\n" lines as the agent wrote them */
} allow_state_t;

/* Reads the agent's state file. 0, or -1 when there is none. */
static int allow_state_read(const char *path, allow_state_t *st)
{
    FILE *f = fopen(path, "r");
    char line[4400];
    size_t plen = 0;

    memset(st, 0, sizeof(*st));
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "pid ", 4) == 0) {
            st->pid = strtol(line + 4, NULL, 10);
        } else if (strncmp(line, "file ", 5) == 0) {
            snprintf(st->file, sizeof(st->file), "%s", line + 5);
        } else if (strncmp(line, "reload ", 7) == 0) {
            char *sp;

            st->gen = (unsigned) strtoul(line + 7, &sp, 10);
            snprintf(st->result, sizeof(st->result), "%s", *sp ? sp + 1 : "");
        } else if (strncmp(line, "pattern ", 8) == 0) {
            size_t n = strlen(line + 8);
            char *np = realloc(st->patterns, plen + n + 2);

            if (np == NULL)
                break;
            st->patterns = np;
            memcpy(st->patterns + plen, line + 8, n);
            plen += n;
            st->patterns[plen++] = '\n';
            st->patterns[plen] = '\0';
        }
    }
    fclose(f);
    return st->pid > 0 && st->file[0] == '/' ? 0 : -1;
}

/* 1 when pid is alive and runs egress (a stale file may name a reused pid). */
static int allow_pid_is_agent(long pid)
{
    char path[64], cmd[4096];
    size_t n;
    FILE *f;

    if (pid <= 0 || kill((pid_t) pid, 0) < 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    if ((f = fopen(path, "r")) == NULL)
        return 1; /* no /proc: kill(0) has to do */
    n = fread(cmd, 1, sizeof(cmd) - 1, f);
    fclose(f);
    cmd[n] = '\0';
    return strstr(cmd, "egress") != NULL;
}

/* The normalized form of one pattern, or -1 (with the reason printed unless quiet). */
static int allow_normalize(const char *pattern, char *out, size_t cap, int quiet)
{
    egress_allow_t *al = egress_allow_new();
    egress_error_t e;
    int rc = -1;

    if (al == NULL)
        return -1;
    if (egress_allow_add(al, pattern, strlen(pattern), &e) < 0) {
        if (!quiet)
            fprintf(stderr, "egress allow: %s\n", e.message);
    } else {
        snprintf(out, cap, "%s", egress_allow_pattern(al, 0));
        rc = 0;
    }
    egress_allow_free(al);
    return rc;
}

/* The file with the patterns added or removed; NULL when there is nothing to change. */
static char *allow_edit(const char *text, int add, char **pats, int npats, int *rc)
{
    size_t cap = strlen(text) + 2, len = 0;
    char *out, *copy = strdup(text), *line, *next, norm[600], lnorm[600];
    int i, *found = calloc((size_t) npats + 1, sizeof(int)), changed = 0;

    for (i = 0; i < npats; i++)
        cap += strlen(pats[i]) + 2;
    out = malloc(cap);
    if (!out || !copy || !found) {
        free(out);
        free(copy);
        free(found);
        *rc = EXIT_RUNTIME;
        return NULL;
    }
    out[0] = '\0';
    for (line = copy; line && *line; line = next) {
        char body[600];
        size_t n;
        int drop = 0;

        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        n = strcspn(line, "#");
        while (n > 0 && strchr(" \t\r", line[n - 1]))
            n--;
        snprintf(body, sizeof(body), "%.*s", (int) n, line + strspn(line, " \t"));
        if (body[0] && allow_normalize(body, lnorm, sizeof(lnorm), 1) == 0) {
            for (i = 0; i < npats; i++) {
                if (allow_normalize(pats[i], norm, sizeof(norm), 1) == 0 &&
                    strcmp(norm, lnorm) == 0) {
                    found[i] = 1;
                    drop = !add;
                }
            }
        }
        if (drop) {
            changed = 1;
            continue;
        }
        len += (size_t) snprintf(out + len, cap - len, "%s\n", line);
    }
    for (i = 0; i < npats; i++) {
        if (add && !found[i]) {
            len += (size_t) snprintf(out + len, cap - len, "%s\n", pats[i]);
            changed = 1;
        } else if (!add && !found[i]) {
            fprintf(stderr, "egress allow: %s is not in the allow file\n", pats[i]);
            *rc = EXIT_RUNTIME;
        }
    }
    free(copy);
    free(found);
    if (!changed) {
        free(out);
        return NULL;
    }
    return out;
}

static char *allow_read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = malloc(ALLOW_FILE_MAX + 1);
    n = buf ? fread(buf, 1, ALLOW_FILE_MAX, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* Signals the agent and waits for its answer to the new file. */
static int allow_apply(const char *state_path, allow_state_t *st)
{
    unsigned gen = st->gen;
    long pid = st->pid;
    int i;

    if (kill((pid_t) pid, SIGHUP) < 0) {
        fprintf(stderr, "egress allow: cannot signal the host agent (pid %ld): %s\n", pid,
                strerror(errno));
        return EXIT_RUNTIME;
    }
    for (i = 0; i < 200; i++) {
        free(st->patterns);
        if (allow_state_read(state_path, st) == 0 && st->gen != gen)
            break;
        cli_sleep_ms(50);
    }
    if (st->gen == gen) {
        fprintf(stderr, "egress allow: the host agent (pid %ld) did not answer within 10 s\n",
                pid);
        return EXIT_RUNTIME;
    }
    if (strncmp(st->result, "ok ", 3) != 0) {
        fprintf(stderr,
                "egress allow: the host agent refused the file: %s\n"
                "egress allow: the previous allowlist stays in force; fix %s\n",
                strncmp(st->result, "error ", 6) == 0 ? st->result + 6 : st->result, st->file);
        return EXIT_RUNTIME;
    }
    printf("egress allow: the host agent now enforces %s patterns\n", st->result + 3);
    return EXIT_OK;
}

int cmd_allow(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_OPTIONS_COMMON};
    cli_t c = {.prog = "egress allow", .usage = allow_usage};
    allow_state_t st;
    char state_path[1024], norm[600], *text = NULL, *edited = NULL;
    const char *action;
    int opt, rc = EXIT_OK, add, i;

    memset(&st, 0, sizeof(st));
    while ((opt = cli_getopt(&c, argc, argv, "h", longopts)) != -1) {
        if (opt == CLI_OPT_EXIT)
            return c.rc;
    }
    if (c.id == NULL || !cli_lease_ok(c.id) || optind >= argc) {
        fprintf(stderr, "usage: egress allow --id LEASE add|remove|list [PATTERN...]\n");
        return EXIT_USAGE;
    }
    action = argv[optind++];
    add = strcmp(action, "add") == 0;
    if (strcmp(action, "list") == 0
            ? optind != argc
            : (!add && strcmp(action, "remove") != 0) || optind == argc) {
        fprintf(stderr, "usage: egress allow --id LEASE add|remove|list [PATTERN...]\n");
        return EXIT_USAGE;
    }
    for (i = optind; i < argc; i++) {
        if (allow_normalize(argv[i], norm, sizeof(norm), 0) < 0)
            return EXIT_USAGE;
    }
    if (allow_file_state_path(state_path, sizeof(state_path), c.id) < 0 ||
        allow_state_read(state_path, &st) < 0 || !allow_pid_is_agent(st.pid)) {
        fprintf(stderr,
                "egress allow: no host agent with --allow-file is running for lease %s\n"
                "(start it with `egress host --id %s --allow-file FILE ...`)\n",
                c.id, c.id);
        free(st.patterns);
        return EXIT_RUNTIME;
    }
    if (strcmp(action, "list") == 0) {
        printf("# %s (host agent pid %ld, load %u: %s)\n%s", st.file, st.pid, st.gen, st.result,
               st.patterns ? st.patterns : "");
        free(st.patterns);
        return EXIT_OK;
    }
    if ((text = allow_read_text(st.file)) == NULL) {
        fprintf(stderr, "egress allow: %s: %s\n", st.file, strerror(errno));
        free(st.patterns);
        return EXIT_RUNTIME;
    }
    edited = allow_edit(text, add, argv + optind, argc - optind, &rc);
    if (edited == NULL) {
        if (rc == EXIT_OK)
            printf("egress allow: nothing to change in %s\n", st.file);
    } else if (cli_write_private(st.file, edited) < 0) {
        fprintf(stderr, "egress allow: cannot write %s: %s\n", st.file, strerror(errno));
        rc = EXIT_RUNTIME;
    } else {
        int applied = allow_apply(state_path, &st);

        rc = rc != EXIT_OK ? rc : applied;
    }
    free(text);
    free(edited);
    free(st.patterns);
    return rc;
}
