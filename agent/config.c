/*
 * config.c: coordinator URL and bearer token from env and the config file,
 * secrets from files, and the per-user state directory.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"

static char *config_trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* ~/.config/egress/config: `key = value` lines, '#' comments. */
static int config_read_file(egress_config_t *cfg, egress_error_t *err)
{
    char path[1024], line[4096];
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    FILE *f;
    int lineno = 0;

    if (xdg && *xdg)
        snprintf(path, sizeof(path), "%s/egress/config", xdg);
    else if (home && *home)
        snprintf(path, sizeof(path), "%s/.config/egress/config", home);
    else
        return 0;
    if ((f = fopen(path, "r")) == NULL)
        return errno == ENOENT
                   ? 0
                   : egress_error_set(err, EGRESS_ERR_SYSTEM, "%s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), f)) {
        char *k = config_trim(line), *eq, *v;
        lineno++;
        if (*k == '\0' || *k == '#')
            continue;
        if ((eq = strchr(k, '=')) == NULL) {
            egress_error_set(err, EGRESS_ERR_VALUE, "%s:%d: expected `key = value`", path,
                             lineno);
            fclose(f);
            return -1;
        }
        *eq = '\0';
        v = config_trim(eq + 1);
        k = config_trim(k);
        if (strcmp(k, "coordinator") == 0) {
            if (!cfg->coordinator)
                cfg->coordinator = strdup(v);
        } else if (strcmp(k, "token") == 0) {
            if (!cfg->token)
                cfg->token = strdup(v);
        } /* unknown keys are ignored: later commands add their own */
    }
    fclose(f);
    return 0;
}

int config_load(egress_config_t *cfg, egress_error_t *err)
{
    const char *v;

    if (!cfg->coordinator && (v = getenv("EGRESS_COORDINATOR")) && *v)
        cfg->coordinator = strdup(v);
    if (!cfg->token && (v = getenv("EGRESS_TOKEN")) && *v)
        cfg->token = strdup(v);
    if (!cfg->coordinator || !cfg->token)
        return config_read_file(cfg, err);
    return 0;
}

void config_free(egress_config_t *cfg)
{
    free(cfg->coordinator);
    if (cfg->token) {
        explicit_bzero(cfg->token, strlen(cfg->token));
        free(cfg->token);
    }
}

char *config_read_secret_file(const char *path, egress_error_t *err)
{
    char buf[1024];
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *s;

    if (!f) {
        egress_error_set(err, EGRESS_ERR_SYSTEM, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    if (f != stdin)
        fclose(f);
    s = config_trim(buf);
    if (*s == '\0') {
        egress_error_set(err, EGRESS_ERR_VALUE, "%s is empty",
                         strcmp(path, "-") == 0 ? "stdin" : path);
        return NULL;
    }
    s = strdup(s);
    explicit_bzero(buf, sizeof(buf));
    return s;
}

static int config_mkdir(const char *p)
{
    return mkdir(p, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

int config_state_dir(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char tmp[1024];

    if (xdg && *xdg) {
        if (config_mkdir(xdg) < 0)
            return -1;
        snprintf(out, cap, "%s/egress", xdg);
    } else {
        if (!home || !*home)
            return -1;
        snprintf(tmp, sizeof(tmp), "%s/.local", home);
        config_mkdir(tmp);
        snprintf(tmp, sizeof(tmp), "%s/.local/state", home);
        config_mkdir(tmp);
        snprintf(out, cap, "%s/.local/state/egress", home);
    }
    return config_mkdir(out);
}
