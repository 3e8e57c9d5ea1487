
/*
 * The bridge's RFC 6455 upgrade: the request and the check of the answer
 * are lib/egress_upgrade.c's, shared with the agent and fuzzed there; this
 * file fills them in from the configuration and acts on the answer. The
 * I/O is ngx_stream_egress_bridge.c's.
 */


#include "ngx_stream_egress_bridge.h"


static void ngx_stream_egress_upgrade_refused(ngx_stream_egress_bridge_t *b,
    ngx_uint_t status, u_char *body, size_t len);


/*
 * Writes the upgrade request, with one credential header, into the
 * handshake buffer allocated from the connection's pool, and remembers the
 * Sec-WebSocket-Accept the answer must carry. NGX_ERROR with the reason set.
 */

ngx_int_t
ngx_stream_egress_upgrade_request(ngx_stream_egress_bridge_t *b,
    const char *cred_name, u_char *cred_value)
{
    int                             n;
    u_char                         *host, *path;
    egress_error_t                  err;
    egress_upgrade_req_t            rq;
    ngx_stream_egress_main_conf_t  *conf;

    conf = b->conf;

    b->hs.start = ngx_palloc(b->pool, NGX_STREAM_EGRESS_IN_SIZE);
    host = ngx_pnalloc(b->pool, conf->tls_name.len + 1);
    path = ngx_pnalloc(b->pool, conf->path.len + 1);

    if (b->hs.start == NULL || host == NULL || path == NULL) {
        ngx_stream_egress_bridge_set_reason(b, "out of memory");
        return NGX_ERROR;
    }

    b->hs.end = b->hs.start + NGX_STREAM_EGRESS_HS_SIZE;

    /* the host without IPv6 brackets: lib adds them to Host */
    (void) ngx_cpystrn(host, conf->tls_name.data, conf->tls_name.len + 1);
    (void) ngx_cpystrn(path, conf->path.data, conf->path.len + 1);

    ngx_memzero(&rq, sizeof(egress_upgrade_req_t));

    rq.path = (char *) path;
    rq.host = (char *) host;
    rq.port = conf->u.port ? conf->u.port : conf->u.default_port;
    rq.tls = conf->tls;
    rq.protocols = conf->protocol == EGRESS_PROTO_V1 ? EGRESS_SUBPROTO_V1
                   : conf->protocol == EGRESS_PROTO_V2 ? EGRESS_SUBPROTO_V2
                   : EGRESS_SUBPROTO_V2 ", " EGRESS_SUBPROTO_V1;
    rq.user_agent = "ngx_stream_egress_module/" NGX_STREAM_EGRESS_VERSION;
    rq.cred_name = cred_name;
    rq.cred_value = (char *) cred_value;

    n = egress_upgrade_request(&rq, (char *) b->hs.start,
                               NGX_STREAM_EGRESS_HS_SIZE, b->accept, &err);

    if (n < 0) {
        ngx_stream_egress_bridge_set_reason(b, "%s", err.message);
        return NGX_ERROR;
    }

    b->hs.pos = b->hs.start;
    b->hs.last = b->hs.start + n;

    return NGX_OK;
}


/*
 * Checks the upgrade answer read so far. NGX_AGAIN: its head, or a
 * refusal's body, is still arriving; NGX_OK: the coordinator accepted,
 * b->version is chosen and b->hs.pos is at the first WebSocket byte;
 * NGX_DECLINED: refused (credentials marked accordingly), NGX_ERROR: not a
 * usable answer, both with the reason set.
 */

ngx_int_t
ngx_stream_egress_upgrade_process(ngx_stream_egress_bridge_t *b)
{
    int                     rc;
    size_t                  body_len;
    egress_error_t          err;
    egress_upgrade_resp_t   r;

    rc = egress_upgrade_parse(&r, (char *) b->hs.start,
                              b->hs.last - b->hs.start, b->accept, &err);

    if (rc == 0) {
        return NGX_AGAIN;
    }

    if (rc < 0) {
        ngx_stream_egress_bridge_set_reason(b, "invalid WebSocket upgrade "
                                            "response from %V: %s",
                                            b->peer.name, err.message);
        return NGX_ERROR;
    }

    if (r.status != 101) {
        if (!egress_upgrade_body(&r, b->hs.last - b->hs.start,
                                 b->hs.end - b->hs.start, b->eof, &body_len))
        {
            return NGX_AGAIN;
        }

        ngx_stream_egress_upgrade_refused(b, r.status,
                                          b->hs.start + r.head_len, body_len);
        return NGX_DECLINED;
    }

    b->version = egress_proto_from_subprotocol(r.subprotocol);

    if (b->version == 0) {
        ngx_stream_egress_bridge_set_reason(b, "coordinator chose an "
                                            "unknown subprotocol \"%s\"",
                                            r.subprotocol);
        return NGX_ERROR;
    }

    if (b->conf->protocol && (ngx_uint_t) b->version != b->conf->protocol) {
        ngx_stream_egress_bridge_set_reason(b, "coordinator chose egress.v%ui,"
                                            " egress_bridge_protocol requires"
                                            " egress.v%ui",
                                            (ngx_uint_t) b->version,
                                            b->conf->protocol);
        return NGX_ERROR;
    }

    /* what follows the head already belongs to the WebSocket */
    b->hs.pos = b->hs.start + r.head_len;
    b->hs.end = b->hs.start + NGX_STREAM_EGRESS_IN_SIZE;

    return NGX_OK;
}


static void
ngx_stream_egress_upgrade_refused(ngx_stream_egress_bridge_t *b,
    ngx_uint_t status, u_char *body, size_t len)
{
    size_t  n;
    u_char  text[NGX_STREAM_EGRESS_REASON_MAX];

    /* one printable line: it ends up in 503 bodies */
    n = egress_upgrade_refusal_text((char *) body, len, (char *) text,
                                    sizeof(text));

    ngx_stream_egress_bridge_set_reason(b, "coordinator refused the bridge: "
                                        "HTTP %ui %*s", status, n, text);

    ngx_log_error(NGX_LOG_ERR, b->log, 0, "egress bridge: %*s (with %s)",
                  b->reason_len, b->reason,
                  b->with_ticket ? "ticket" : "resume secret");

    if (status == 401) {
        /* this credential is dead; another one may still work */
        if (b->with_ticket) {
            ngx_stream_egress_bridge_spend_ticket(b);
            ngx_stream_egress_bridge_save_state(b);

        } else {
            ngx_memcpy(b->dead_resume, b->used_resume, EGRESS_SHA256_LEN);
            b->has_dead_resume = 1;
        }

        return;
    }

    if (!egress_http_status_fatal((int) status)) {
        return;
    }

    if (b->with_ticket) {
        ngx_stream_egress_bridge_spend_ticket(b);
    }

    ngx_stream_egress_bridge_end_session(b, status);

    if (b->with_ticket || b->ended) {
        ngx_stream_egress_bridge_save_state(b);
    }
}
