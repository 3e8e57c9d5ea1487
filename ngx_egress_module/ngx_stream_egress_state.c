
/*
 * What the bridge remembers between attempts: the ticket file the
 * operator's tooling (re)writes, the resume secret from the coordinator's
 * hello, the spent ticket's hash and the session end mark, kept in a 0600
 * state file (lib/egress_state.c) so that a new worker after a reload, or
 * `egress client`, sees them; and the one-line reason the bridge is not
 * (yet) usable, which 503 bodies quote. A ticket is spent once, after that
 * the resume secret reconnects; neither is ever logged.
 */


#include "ngx_stream_egress_bridge.h"


static ngx_int_t ngx_stream_egress_bridge_read_ticket(
    ngx_stream_egress_bridge_t *b, u_char *buf, size_t size, size_t *len);
static void ngx_stream_egress_bridge_load_state(
    ngx_stream_egress_bridge_t *b);



/*
 * Picks what this attempt authenticates with and writes the header line:
 * a ticket never spent before wins (the operator started a new session),
 * then the resume secret, unless a fatal close demands a new ticket.
 */

ngx_int_t
ngx_stream_egress_bridge_credentials(ngx_stream_egress_bridge_t *b,
    u_char *value, size_t size, const char **name)
{
    size_t   tlen;
    u_char   hash[EGRESS_SHA256_LEN];
    u_char   ticket[NGX_STREAM_EGRESS_SECRET_MAX + 1];

    b->with_ticket = 0;
    b->with_resume = 0;

    /*
     * The state file is authoritative (a previous worker, e.g. before a
     * reload, may have spent the ticket and rotated the secret), unless our
     * own last write to it failed.
     */
    if (!b->state_unsaved) {
        ngx_stream_egress_bridge_load_state(b);
    }

    if (ngx_stream_egress_bridge_read_ticket(b, ticket, sizeof(ticket), &tlen)
        == NGX_OK)
    {
        egress_sha256(hash, ticket, tlen);

        if (!b->has_spent_ticket
            || !egress_ct_equal(hash, b->spent_ticket, sizeof(hash)))
        {
            ngx_memcpy(b->used_ticket, hash, sizeof(hash));
            b->with_ticket = 1;

            *ngx_snprintf(value, size - 1, "Bearer %*s", tlen, ticket) = '\0';
            *name = "Authorization";

            ngx_explicit_memzero(ticket, sizeof(ticket));
            return NGX_OK;
        }

        ngx_explicit_memzero(ticket, sizeof(ticket));
    }

    if (b->need_ticket) {
        ngx_stream_egress_bridge_set_reason(b,
                      "the session ended; waiting for a new ticket in \"%V\"",
                      &b->conf->ticket_file);
        return NGX_DECLINED;
    }

    if (b->resume_len) {
        egress_sha256(hash, b->resume, b->resume_len);

        if (!b->has_dead_resume
            || !egress_ct_equal(hash, b->dead_resume, sizeof(hash)))
        {
            ngx_memcpy(b->used_resume, hash, sizeof(hash));
            b->with_resume = 1;

            *ngx_snprintf(value, size - 1, "%*s", b->resume_len, b->resume)
                = '\0';
            *name = "X-Egress-Resume";
            return NGX_OK;
        }
    }

    if (b->ticket_err && b->ticket_err != NGX_ENOENT) {
        ngx_stream_egress_bridge_set_reason(b,
                      "the nginx worker cannot read the ticket file \"%V\" "
                      "(check its owner and mode, and the user directive)",
                      &b->conf->ticket_file);
        return NGX_DECLINED;
    }

    ngx_stream_egress_bridge_set_reason(b,
                      "no usable ticket in \"%V\" (spent or missing) and no "
                      "resume secret", &b->conf->ticket_file);

    return NGX_DECLINED;
}


static ngx_int_t
ngx_stream_egress_bridge_read_ticket(ngx_stream_egress_bridge_t *b,
    u_char *buf, size_t size, size_t *len)
{
    u_char    *p, *last;
    ssize_t    n;
    ngx_fd_t   fd;
    ngx_err_t  err;

    fd = ngx_open_file(b->conf->ticket_file.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        /* the file is polled: say so once, not every second */
        if (err != NGX_ENOENT && err != b->ticket_err) {
            ngx_log_error(NGX_LOG_ERR, b->log, err,
                          "egress bridge: cannot read ticket file \"%V\"",
                          &b->conf->ticket_file);
        }

        b->ticket_err = err;
        return NGX_DECLINED;
    }

    b->ticket_err = 0;

    n = read(fd, buf, size - 1);

    ngx_close_file(fd);

    if (n <= 0) {
        return NGX_DECLINED;
    }

    p = buf;
    last = buf + n;

    while (last > p && (last[-1] == CR || last[-1] == LF || last[-1] == ' '
                        || last[-1] == '\t'))
    {
        last--;
    }

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (!egress_state_secret_ok((char *) p, last - p,
                                NGX_STREAM_EGRESS_SECRET_MAX))
    {
        ngx_explicit_memzero(buf, size);
        return NGX_DECLINED;
    }

    *len = last - p;
    ngx_memmove(buf, p, *len);

    return NGX_OK;
}


/*
 * State file (lib/egress_state.c): the resume secret, the spent ticket's
 * hash and the session end mark, mode 0600, replaced atomically. Missing or
 * unreadable means "no state".
 */

static void
ngx_stream_egress_bridge_load_state(ngx_stream_egress_bridge_t *b)
{
    size_t          len;
    egress_error_t  err;
    egress_state_t  st;

    if (b->conf->state_file.len == 0) {
        return;
    }

    switch (egress_state_load(&st, (char *) b->conf->state_file.data, &err)) {

    case 1:
        break;

    case 0:
        return;

    default:
        if (err.code != EGRESS_ERR_SYSTEM) {
            ngx_log_error(NGX_LOG_WARN, b->log, 0,
                          "egress bridge: ignoring malformed state file "
                          "\"%V\": %s", &b->conf->state_file, err.message);
        }

        return;
    }

    len = ngx_strlen(st.resume);

    ngx_memcpy(b->resume, st.resume, len);
    b->resume_len = len;

    if (st.has_ticket_sha256) {
        ngx_memcpy(b->spent_ticket, st.ticket_sha256, EGRESS_SHA256_LEN);
        b->has_spent_ticket = 1;
    }

    egress_state_wipe(&st);
}


void
ngx_stream_egress_bridge_save_state(ngx_stream_egress_bridge_t *b)
{
    egress_error_t  err;
    egress_state_t  st;

    if (b->conf->state_file.len == 0) {
        return;
    }

    ngx_memzero(&st, sizeof(egress_state_t));

    ngx_memcpy(st.resume, b->resume,
               ngx_min(b->resume_len, sizeof(st.resume) - 1));

    if (b->has_spent_ticket) {
        ngx_memcpy(st.ticket_sha256, b->spent_ticket, EGRESS_SHA256_LEN);
        st.has_ticket_sha256 = 1;
    }

    /* the lease or session is over: `egress client` stops nginx on this */
    st.ended = (int) b->ended;

    if (egress_state_save(&st, (char *) b->conf->state_file.data, &err)
        == 0)
    {
        egress_state_wipe(&st);
        b->state_unsaved = 0;
        return;
    }

    egress_state_wipe(&st);
    b->state_unsaved = 1;

    ngx_log_error(NGX_LOG_ERR, b->log, 0,
                  "egress bridge: cannot write state file \"%V\" (%s); a "
                  "reconnect after a restart will need a new ticket",
                  &b->conf->state_file, err.message);
}


/* the ticket this attempt used is spent: it is never sent again */

void
ngx_stream_egress_bridge_spend_ticket(ngx_stream_egress_bridge_t *b)
{
    ngx_memcpy(b->spent_ticket, b->used_ticket, EGRESS_SHA256_LEN);
    b->has_spent_ticket = 1;
}


/* hello: the secret we used is spent; an empty one means "no resume" */

void
ngx_stream_egress_bridge_set_resume(ngx_stream_egress_bridge_t *b,
    egress_str_t *secret)
{
    size_t  n;

    n = 0;

    if (secret->len
        && egress_state_secret_ok(secret->data, secret->len,
                                  EGRESS_MAX_TOKEN_TEXT))
    {
        n = secret->len;
        ngx_memcpy(b->resume, secret->data, n);
        b->has_dead_resume = 0;
    }

    b->resume_len = n;
    ngx_stream_egress_bridge_save_state(b);
}


/*
 * A fatal close (4001-4004) or upgrade answer (403/404/409/410): only a new
 * ticket can help. The lease or session itself is over on 4003/4004 and
 * 404/410: the state file records it, for `egress client`.
 */

void
ngx_stream_egress_bridge_end_session(ngx_stream_egress_bridge_t *b,
    ngx_uint_t code)
{
    b->need_ticket = 1;

    if (egress_close_ends_session((int) code)
        || egress_http_status_ends_session((int) code))
    {
        b->ended = code;
    }
}


void
ngx_stream_egress_bridge_set_reason(ngx_stream_egress_bridge_t *b,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(b->reason, b->reason + sizeof(b->reason), fmt, args);
    va_end(args);

    b->reason_len = p - b->reason;
}
