/*
 * allow_file.c: --allow-file, its reload on SIGHUP and the state file that
 * `egress allow` reads (allow_file.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "allow_file.h"
#include "bridge.h"
#include "cli.h"
#include "stream.h"

int allow_file_read(egress_allow_t *al, const char *path, egress_error_t *err)
{
    struct stat st;
    char *buf;
    ssize_t n;
    size_t off = 0;
    int fd, rc;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        return egress_error_set(err, EGRESS_ERR_SYSTEM, "%s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > ALLOW_FILE_MAX) {
        close(fd);
        return egress_error_set(err, EGRESS_ERR_PATTERN,
                                "%s: not a regular file of at most %d bytes", path,
                                ALLOW_FILE_MAX);
    }
    if ((buf = malloc((size_t) st.st_size + 1)) == NULL) {
        close(fd);
        return egress_error_set(err, EGRESS_ERR_SYSTEM, "out of memory");
    }
    while (off < (size_t) st.st_size &&
           ((n = read(fd, buf + off, (size_t) st.st_size - off)) > 0 ||
            (n < 0 && errno == EINTR))) {
        off += n > 0 ? (size_t) n : 0;
    }
    close(fd);
    rc = egress_allow_add_lines(al, buf, off, path, err);
    free(buf);
    return rc;
}

egress_allow_t *allow_file_build(const host_opts_t *o, egress_error_t *err)
{
    egress_allow_t *al = egress_allow_new();
    size_t i;

    if (al == NULL) {
        egress_error_set(err, EGRESS_ERR_SYSTEM, "out of memory");
        return NULL;
    }
    for (i = 0; i < o->nprofiles; i++) {
        if (egress_allow_add_profile(al, o->profiles[i], err) < 0) {
            goto fail;
        }
    }
    for (i = 0; i < o->nallow_args; i++) {
        if (egress_allow_add_list(al, o->allow_args[i], err) < 0) {
            goto fail;
        }
    }
    if (o->allow_file && allow_file_read(al, o->allow_file, err) < 0) {
        goto fail;
    }
    if (o->ports_arg && egress_allow_set_ports_list(al, o->ports_arg, err) < 0) {
        goto fail;
    }
    return al;
fail:
    egress_allow_free(al);
    return NULL;
}

int allow_file_state_path(char *out, size_t cap, const char *lease)
{
    char dir[900];

    if (config_state_dir(dir, sizeof(dir)) < 0 ||
        (size_t) snprintf(out, cap, "%s/%s.host.allow", dir, lease) >= cap) {
        return -1;
    }
    return 0;
}

void allow_file_state_write(agent_t *ag, unsigned gen, const char *error)
{
    const host_opts_t *o = ag->o;
    char path[1024], *text;
    size_t cap = 8192, len, i, n = egress_allow_count(o->allow);

    if (!o->allow_file || allow_file_state_path(path, sizeof(path), o->lease) < 0) {
        return;
    }
    for (i = 0; i < n; i++) {
        cap += strlen(egress_allow_pattern(o->allow, i)) + 10;
    }
    if ((text = malloc(cap)) == NULL) {
        return;
    }
    len = (size_t) snprintf(text, cap, "pid %ld\nfile %s\n", (long) getpid(), o->allow_file);
    if (error != NULL) {
        len +=
            (size_t) snprintf(text + len, cap - len, "reload %u error %.4000s\n", gen, error);
    } else {
        len += (size_t) snprintf(text + len, cap - len, "reload %u ok %zu\n", gen, n);
    }
    for (i = 0; i < n && len < cap; i++) {
        len += (size_t) snprintf(text + len, cap - len, "pattern %s\n",
                                 egress_allow_pattern(o->allow, i));
    }
    /* a new file each time (rename): a reader never sees half of one */
    if (cli_write_private(path, text) < 0) {
        agent_log("cannot write %s: %s", path, strerror(errno));
    }
    free(text);
}

void allow_file_state_remove(agent_t *ag)
{
    char path[1024];

    if (ag->o->allow_file && allow_file_state_path(path, sizeof(path), ag->o->lease) == 0) {
        unlink(path);
    }
}

/* --strict-reload: ends the open streams the new list refuses. */
static void allow_file_cut(agent_t *ag)
{
    uint32_t ids[256];
    uint8_t open[256];
    size_t b, n;

    do {
        n = 0;
        for (b = 0; b < ag->streams.nbuckets && n < 256; b++) {
            stream_t *s;

            for (s = ag->streams.buckets[b]; s != NULL && n < 256; s = s->hnext) {
                if (s->state != ST_DEAD &&
                    !egress_allow_match(ag->o->allow, s->host, strlen(s->host), s->port)) {
                    open[n] = s->state == ST_OPEN;
                    ids[n++] = s->id;
                }
            }
        }
        for (b = 0; b < n; b++) {
            egress_frame_t f;

            /* an open not answered yet gets its answer: error */
            memset(&f, 0, sizeof(f));
            f.type = open[b] ? EGRESS_FRAME_CLOSE : EGRESS_FRAME_ERROR;
            f.id = ids[b];
            f.message.data = "not allowed: removed from the allowlist";
            f.message.len = open[b] ? 0 : strlen(f.message.data);
            if (open[b]) {
                f.message.data = NULL;
            }
            agent_log("stream %u: no longer allowed; closing it (--strict-reload)", ids[b]);
            if (ag->bridge.established) {
                bridge_send_frame(ag, &f);
            }
            stream_reset(ag, ids[b]);
        }
    } while (n == 256);
}

void allow_file_reload(agent_t *ag)
{
    host_opts_t *o = ag->o;
    egress_error_t err;
    egress_allow_t *al;

    ag->allow_gen++;
    if ((al = allow_file_build(o, &err)) == NULL) {
        agent_log("allowlist reload refused, the old list stays: %s", err.message);
        allow_file_state_write(ag, ag->allow_gen, err.message);
        return;
    }
    /* matching is synchronous: no stream holds the old list across a callback */
    egress_allow_free(o->allow);
    o->allow = al;
    agent_log("allowlist reloaded: %zu patterns", egress_allow_count(al));
    if (o->strict_reload) {
        allow_file_cut(ag);
    }
    allow_file_state_write(ag, ag->allow_gen, NULL);
}
