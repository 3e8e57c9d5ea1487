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

#include <jansson.h>

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

/* The coordinator is told on a work thread: the request blocks. */
typedef struct {
    uv_work_t req;
    egress_url_t url;
    char path[512];
    char *token;
    char *body;
    int status;
    egress_error_t err;
} allow_report_t;

static void allow_report_work(uv_work_t *w)
{
    allow_report_t *r = w->data;
    json_t *resp = NULL;

    r->status = http_api(&r->url, "PUT", r->path, r->token, r->body, &resp, 10000, &r->err);
    json_decref(resp);
}

static void allow_report_done(uv_work_t *w, int status)
{
    allow_report_t *r = w->data;

    if (status == 0 && r->status == 200) {
        agent_log("allowlist reported to the coordinator");
    } else if (status == 0 && (r->status == 404 || r->status == 405)) {
        agent_log("the coordinator does not take allowlist reports (an older version): its "
                  "status shows the list the session started with");
    } else {
        agent_log("cannot report the allowlist to the coordinator: %s",
                  r->status < 0 ? r->err.message : "refused");
    }
    explicit_bzero(r->token, strlen(r->token));
    free(r->token);
    free(r->body);
    free(r);
}

/* Tells the coordinator the list now in force (PUT .../egress/allow). */
static void allow_file_report(agent_t *ag)
{
    const host_opts_t *o = ag->o;
    json_t *body, *allow;
    allow_report_t *r;
    size_t i;

    if (o->token == NULL || ag->cred.session[0] == '\0') {
        agent_log("the coordinator is not told of the new allowlist: no bearer token");
        return;
    }
    if ((r = calloc(1, sizeof(*r))) == NULL) {
        return;
    }
    body = json_object();
    allow = json_array();
    for (i = 0; i < egress_allow_count(o->allow); i++) {
        json_array_append_new(allow, json_string(egress_allow_pattern(o->allow, i)));
    }
    json_object_set_new(body, "sessionID", json_string(ag->cred.session));
    json_object_set_new(body, "allow", allow);
    r->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    r->token = strdup(o->token);
    r->url = o->url;
    snprintf(r->path, sizeof(r->path), "/v1/leases/%s/egress/allow", o->lease);
    r->req.data = r;
    if (r->body == NULL || r->token == NULL ||
        uv_queue_work(&ag->loop, &r->req, allow_report_work, allow_report_done) < 0) {
        if (r->token) {
            explicit_bzero(r->token, strlen(r->token));
        }
        free(r->token);
        free(r->body);
        free(r);
    }
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
    allow_file_report(ag);
}
