
/*
 * ngx_stream_egress_module: directives, configuration-time checks,
 * variables and the worker hooks that start and stop the bridge.
 *
 *   stream {
 *       egress_bridge ws://127.0.0.1:8080/v1/leases/L/egress/client;
 *       egress_bridge_ticket_file /run/egress/client.ticket;
 *       egress_bridge_state_file  /run/egress/client.state;
 *       server {
 *           listen 127.0.0.1:3128;
 *           egress_proxy on;
 *       }
 *   }
 */


#include "ngx_stream_egress_module.h"


static ngx_int_t ngx_stream_egress_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_stream_egress_postconfiguration(ngx_conf_t *cf);
static void *ngx_stream_egress_create_main_conf(ngx_conf_t *cf);
static char *ngx_stream_egress_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_stream_egress_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_egress_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_stream_egress_bridge(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_egress_proxy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_stream_egress_check_listen(ngx_conf_t *cf,
    ngx_stream_egress_main_conf_t *emcf);
static ngx_uint_t ngx_stream_egress_loopback(struct sockaddr *sa);
static ngx_int_t ngx_stream_egress_check_workers(ngx_log_t *log,
    ngx_cycle_t *cycle, ngx_uint_t final);
static ngx_int_t ngx_stream_egress_check_files(ngx_conf_t *cf,
    ngx_stream_egress_main_conf_t *emcf);
static ngx_int_t ngx_stream_egress_set_ssl(ngx_conf_t *cf,
    ngx_stream_egress_main_conf_t *emcf);
static ngx_int_t ngx_stream_egress_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_stream_egress_init_process(ngx_cycle_t *cycle);
static void ngx_stream_egress_exit_process(ngx_cycle_t *cycle);

static ngx_int_t ngx_stream_egress_target_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_egress_stream_id_variable(
    ngx_stream_session_t *s, ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_egress_status_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);


static ngx_conf_num_bounds_t  ngx_stream_egress_header_size_bounds = {
    ngx_conf_check_num_bounds, 1024, 1024 * 1024
};


static ngx_conf_enum_t  ngx_stream_egress_early_data[] = {
    { ngx_string("off"), NGX_STREAM_EGRESS_EARLY_OFF },
    { ngx_string("request"), NGX_STREAM_EGRESS_EARLY_REQUEST },
    { ngx_string("connect"), NGX_STREAM_EGRESS_EARLY_CONNECT },
    { ngx_null_string, 0 }
};


/* "auto" offers v2 and accepts v1; v1 or v2 offer only that version */
static ngx_conf_enum_t  ngx_stream_egress_protocols[] = {
    { ngx_string("auto"), 0 },
    { ngx_string("v1"), EGRESS_PROTO_V1 },
    { ngx_string("v2"), EGRESS_PROTO_V2 },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_stream_egress_commands[] = {

    { ngx_string("egress_bridge"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_egress_bridge,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("egress_bridge_ticket_file"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_egress_main_conf_t, ticket_file),
      NULL },

    { ngx_string("egress_bridge_state_file"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_egress_main_conf_t, state_file),
      NULL },

    { ngx_string("egress_bridge_trusted_certificate"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_egress_main_conf_t, trusted_certificate),
      NULL },

    { ngx_string("egress_bridge_reconnect_max"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_egress_main_conf_t, reconnect_max),
      NULL },

    { ngx_string("egress_bridge_ping_interval"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_egress_main_conf_t, ping_interval),
      NULL },

    { ngx_string("egress_bridge_protocol"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_egress_main_conf_t, protocol),
      &ngx_stream_egress_protocols },

    { ngx_string("egress_window_max"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_egress_main_conf_t, window_max),
      NULL },

    { ngx_string("egress_window_budget"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_egress_main_conf_t, window_budget),
      NULL },

    { ngx_string("egress_proxy"),
      NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_stream_egress_proxy,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_egress_srv_conf_t, enable),
      NULL },

    { ngx_string("egress_open_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_egress_srv_conf_t, open_timeout),
      NULL },

    { ngx_string("egress_header_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_egress_srv_conf_t, header_timeout),
      NULL },

    { ngx_string("egress_max_header_size"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_egress_srv_conf_t, max_header_size),
      &ngx_stream_egress_header_size_bounds },

    { ngx_string("egress_absolute_https_cleartext"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_egress_srv_conf_t, absolute_https_cleartext),
      NULL },

    { ngx_string("egress_early_data"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_egress_srv_conf_t, early_data),
      &ngx_stream_egress_early_data },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_egress_module_ctx = {
    ngx_stream_egress_preconfiguration,    /* preconfiguration */
    ngx_stream_egress_postconfiguration,   /* postconfiguration */

    ngx_stream_egress_create_main_conf,    /* create main configuration */
    ngx_stream_egress_init_main_conf,      /* init main configuration */

    ngx_stream_egress_create_srv_conf,     /* create server configuration */
    ngx_stream_egress_merge_srv_conf       /* merge server configuration */
};


ngx_module_t  ngx_stream_egress_module = {
    NGX_MODULE_V1,
    &ngx_stream_egress_module_ctx,         /* module context */
    ngx_stream_egress_commands,            /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    ngx_stream_egress_init_module,         /* init module */
    ngx_stream_egress_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_stream_egress_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_stream_variable_t  ngx_stream_egress_vars[] = {

    { ngx_string("egress_target"), NULL,
      ngx_stream_egress_target_variable, 0,
      NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("egress_stream_id"), NULL,
      ngx_stream_egress_stream_id_variable, 0,
      NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("egress_status"), NULL,
      ngx_stream_egress_status_variable, 0,
      NGX_STREAM_VAR_NOCACHEABLE, 0 },

      ngx_stream_null_variable
};


static ngx_int_t
ngx_stream_egress_preconfiguration(ngx_conf_t *cf)
{
    ngx_stream_variable_t  *var, *v;

    for (v = ngx_stream_egress_vars; v->name.len; v++) {
        var = ngx_stream_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_stream_egress_create_main_conf(ngx_conf_t *cf)
{
    ngx_stream_egress_main_conf_t  *emcf;

    emcf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_egress_main_conf_t));
    if (emcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     emcf->url = { 0, NULL };
     *     emcf->ticket_file = { 0, NULL };
     *     emcf->state_file = { 0, NULL };
     *     emcf->trusted_certificate = { 0, NULL };
     *     emcf->ssl = NULL;
     *     emcf->proxies = 0;
     */

    emcf->reconnect_max = NGX_CONF_UNSET_MSEC;
    emcf->ping_interval = NGX_CONF_UNSET_MSEC;
    emcf->protocol = NGX_CONF_UNSET_UINT;
    emcf->window_max = NGX_CONF_UNSET_SIZE;
    emcf->window_budget = NGX_CONF_UNSET_SIZE;

    return emcf;
}


static char *
ngx_stream_egress_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_stream_egress_main_conf_t  *emcf = conf;

    ngx_conf_init_msec_value(emcf->reconnect_max, 30000);
    ngx_conf_init_msec_value(emcf->ping_interval, 20000);
    ngx_conf_init_uint_value(emcf->protocol, 0);

    if (emcf->reconnect_max < 1000) {
        emcf->reconnect_max = 1000;
    }

    ngx_conf_init_size_value(emcf->window_max, EGRESS_WINDOW_MAX_DEFAULT);
    ngx_conf_init_size_value(emcf->window_budget,
                             EGRESS_WINDOW_BUDGET_DEFAULT);

    if (emcf->window_max < EGRESS_INITIAL_WINDOW
        || emcf->window_max > EGRESS_MAX_WINDOW)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"egress_window_max\" must be between 256k "
                           "and 2047m");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_stream_egress_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_egress_srv_conf_t  *escf;

    escf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_egress_srv_conf_t));
    if (escf == NULL) {
        return NULL;
    }

    escf->enable = NGX_CONF_UNSET;
    escf->open_timeout = NGX_CONF_UNSET_MSEC;
    escf->header_timeout = NGX_CONF_UNSET_MSEC;
    escf->max_header_size = NGX_CONF_UNSET_SIZE;
    escf->absolute_https_cleartext = NGX_CONF_UNSET;
    escf->early_data = NGX_CONF_UNSET_UINT;

    return escf;
}


static char *
ngx_stream_egress_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_stream_egress_srv_conf_t *prev = parent;
    ngx_stream_egress_srv_conf_t *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_msec_value(conf->open_timeout, prev->open_timeout, 15000);
    ngx_conf_merge_msec_value(conf->header_timeout, prev->header_timeout,
                              10000);
    ngx_conf_merge_size_value(conf->max_header_size, prev->max_header_size,
                              16384);
    ngx_conf_merge_value(conf->absolute_https_cleartext,
                         prev->absolute_https_cleartext, 0);
    ngx_conf_merge_uint_value(conf->early_data, prev->early_data,
                              NGX_STREAM_EGRESS_EARLY_REQUEST);

    return NGX_CONF_OK;
}


static char *
ngx_stream_egress_bridge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_egress_main_conf_t *emcf = conf;

    u_char     *p, *last;
    size_t      skip;
    ngx_str_t  *value;

    if (emcf->url.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    emcf->url = value[1];

    if (value[1].len > 5
        && ngx_strncasecmp(value[1].data, (u_char *) "ws://", 5) == 0)
    {
        skip = 5;
        emcf->tls = 0;
        emcf->u.default_port = 80;

    } else if (value[1].len > 6
               && ngx_strncasecmp(value[1].data, (u_char *) "wss://", 6) == 0)
    {
        skip = 6;
        emcf->tls = 1;
        emcf->u.default_port = 443;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "egress_bridge \"%V\" must start with ws:// or "
                           "wss://", &value[1]);
        return NGX_CONF_ERROR;
    }

    last = value[1].data + value[1].len;

    for (p = value[1].data + skip; p < last && *p != '/'; p++) {
        if (*p == '@') {
            /* credentials belong in the ticket file, never in the URL */
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "egress_bridge URL must not contain user "
                               "information");
            return NGX_CONF_ERROR;
        }
    }

    emcf->u.url.data = value[1].data + skip;
    emcf->u.url.len = value[1].len - skip;
    emcf->u.uri_part = 1;

    if (ngx_parse_url(cf->pool, &emcf->u) != NGX_OK) {
        if (emcf->u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in egress_bridge \"%V\"", emcf->u.err,
                               &value[1]);
        }

        return NGX_CONF_ERROR;
    }

    if (emcf->u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "egress_bridge host \"%V\" has no address",
                           &emcf->u.host);
        return NGX_CONF_ERROR;
    }

    if (emcf->u.uri.len == 0) {
        ngx_str_set(&emcf->path, "/");

    } else {
        emcf->path = emcf->u.uri;
    }

    /* the name a certificate must match: the host without IPv6 brackets */

    emcf->tls_name = emcf->u.host;

    if (emcf->tls_name.len > 2 && emcf->tls_name.data[0] == '[') {
        emcf->tls_name.data++;
        emcf->tls_name.len -= 2;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_egress_proxy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                           *rv;
    ngx_stream_egress_srv_conf_t   *escf = conf;
    ngx_stream_core_srv_conf_t     *cscf;
    ngx_stream_egress_main_conf_t  *emcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (!escf->enable) {
        return NGX_CONF_OK;
    }

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);

    if (cscf->handler) {
        return "conflicts with another content handler (proxy_pass?)";
    }

    cscf->handler = ngx_stream_egress_proxy_handler;

    emcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_egress_module);
    emcf->proxies++;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_egress_postconfiguration(ngx_conf_t *cf)
{
    ngx_stream_egress_main_conf_t  *emcf;

    emcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_egress_module);

    if (emcf->proxies == 0) {
        if (emcf->url.len) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "egress_bridge is set but no server has "
                          "\"egress_proxy on\"");
        }

        return NGX_OK;
    }

    if (emcf->url.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"egress_proxy on\" needs \"egress_bridge "
                      "ws://.../egress/client\" in the stream block");
        return NGX_ERROR;
    }

    if (ngx_stream_egress_check_listen(cf, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_stream_egress_check_workers(cf->log, cf->cycle, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_stream_egress_check_files(cf, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (emcf->tls) {
        if (ngx_stream_egress_set_ssl(cf, emcf) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (emcf->trusted_certificate.len) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "egress_bridge_trusted_certificate is ignored for a "
                      "ws:// bridge");
    }

    return NGX_OK;
}


/* the proxy is for processes on this machine only: loopback listeners */

static ngx_int_t
ngx_stream_egress_check_listen(ngx_conf_t *cf,
    ngx_stream_egress_main_conf_t *emcf)
{
    ngx_uint_t                     i;
    ngx_stream_listen_t           *ls;
    ngx_stream_core_srv_conf_t    *cscf;
    ngx_stream_egress_srv_conf_t  *escf;
    ngx_stream_core_main_conf_t   *cmcf;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);
    ls = cmcf->listen.elts;

    for (i = 0; i < cmcf->listen.nelts; i++) {
        escf = ls[i].ctx->srv_conf[ngx_stream_egress_module.ctx_index];

        if (!escf->enable) {
            continue;
        }

        cscf = ls[i].ctx->srv_conf[ngx_stream_core_module.ctx_index];

        if (cscf->handler != ngx_stream_egress_proxy_handler) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"egress_proxy on\" conflicts with another "
                          "content handler such as proxy_pass (in %s:%ui)",
                          cscf->file_name, cscf->line);
            return NGX_ERROR;
        }

        if (ls[i].type != SOCK_STREAM) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"egress_proxy on\" needs a TCP listen, not "
                          "\"%V\" (in %s:%ui)", &ls[i].addr_text,
                          cscf->file_name, cscf->line);
            return NGX_ERROR;
        }

        if (!ngx_stream_egress_loopback(ls[i].sockaddr)) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"egress_proxy on\" refuses the non-loopback "
                          "listen address \"%V\" (in %s:%ui): the proxy "
                          "may only listen on 127.0.0.0/8, [::1] or "
                          "localhost", &ls[i].addr_text,
                          cscf->file_name, cscf->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_stream_egress_loopback(struct sockaddr *sa)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
#endif

    default:
        return 0;
    }
}


/*
 * Every worker would open its own bridge socket and the coordinator keeps
 * only the newest one per role, so more than one worker cannot work.
 * worker_processes is usually parsed before the stream block; when it comes
 * later, init_module checks again.
 */

static ngx_int_t
ngx_stream_egress_check_workers(ngx_log_t *log, ngx_cycle_t *cycle,
    ngx_uint_t final)
{
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (ccf == NULL || ccf->worker_processes == NGX_CONF_UNSET) {
        return NGX_OK;
    }

    if (ccf->master == 0 && final) {
        /* master_process off: a single process does all the work */
        return NGX_OK;
    }

    if (ccf->worker_processes > 1) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "\"egress_proxy on\" needs \"worker_processes 1\" "
                      "(found %i): the coordinator keeps one bridge socket "
                      "per lease", ccf->worker_processes);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_egress_check_files(ngx_conf_t *cf,
    ngx_stream_egress_main_conf_t *emcf)
{
    u_char           *p;
    ngx_fd_t          fd;
    ngx_str_t         dir;
    ngx_file_info_t   fi;

    if (emcf->ticket_file.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"egress_proxy on\" needs "
                      "\"egress_bridge_ticket_file\"");
        return NGX_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &emcf->ticket_file, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(emcf->ticket_file.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "egress_bridge_ticket_file \"%V\" is not readable",
                      &emcf->ticket_file);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR || !ngx_is_file(&fi)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "egress_bridge_ticket_file \"%V\" is not a regular file",
                      &emcf->ticket_file);
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    if (ngx_file_access(&fi) & 077) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "egress_bridge_ticket_file \"%V\" is readable by "
                      "others; it should be mode 0600",
                      &emcf->ticket_file);
    }

    ngx_close_file(fd);

    if (emcf->state_file.len == 0) {
        return NGX_OK;
    }

    if (ngx_conf_full_name(cf->cycle, &emcf->state_file, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the state file is replaced by rename(): its directory must exist */

    p = emcf->state_file.data + emcf->state_file.len;

    while (p > emcf->state_file.data && p[-1] != '/') {
        p--;
    }

    dir.data = emcf->state_file.data;
    dir.len = (p > dir.data + 1) ? (size_t) (p - dir.data - 1) : 1;

    p = ngx_pnalloc(cf->pool, dir.len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, dir.data, dir.len);
    p[dir.len] = '\0';

    if (ngx_file_info(p, &fi) == NGX_FILE_ERROR || !ngx_is_dir(&fi)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "directory \"%s\" of egress_bridge_state_file does "
                      "not exist", p);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_egress_set_ssl(ngx_conf_t *cf, ngx_stream_egress_main_conf_t *emcf)
{
    ngx_pool_cleanup_t  *cln;

    emcf->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (emcf->ssl == NULL) {
        return NGX_ERROR;
    }

    emcf->ssl->log = cf->log;

    if (ngx_ssl_create(emcf->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(emcf->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = emcf->ssl;

    /* wslay may retry a write with a different length or buffer */

    SSL_CTX_set_mode(emcf->ssl->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                                     |SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    if (emcf->trusted_certificate.len) {
        if (ngx_ssl_trusted_certificate(cf, emcf->ssl,
                                        &emcf->trusted_certificate, 5)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (SSL_CTX_set_default_verify_paths(emcf->ssl->ctx) != 1) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "SSL_CTX_set_default_verify_paths() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_egress_init_module(ngx_cycle_t *cycle)
{
    ngx_stream_egress_main_conf_t  *emcf;

    emcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                                 ngx_stream_egress_module);

    if (emcf == NULL || emcf->proxies == 0) {
        return NGX_OK;
    }

    if (ngx_stream_egress_check_workers(cycle->log, cycle, 1) == NGX_OK) {
        return NGX_OK;
    }

    if (ngx_process == NGX_PROCESS_MASTER) {
        /* failing here on reload would exit the master: refuse requests */
        emcf->disabled = 1;
        return NGX_OK;
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_stream_egress_init_process(ngx_cycle_t *cycle)
{
    ngx_stream_egress_main_conf_t  *emcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    emcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                                 ngx_stream_egress_module);

    if (emcf == NULL || emcf->proxies == 0 || emcf->disabled) {
        return NGX_OK;
    }

    return ngx_stream_egress_bridge_init(cycle, emcf);
}


static void
ngx_stream_egress_exit_process(ngx_cycle_t *cycle)
{
    ngx_stream_egress_bridge_exit(cycle);
}


static ngx_int_t
ngx_stream_egress_target_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_stream_egress_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_egress_module);

    if (ctx == NULL || ctx->target_len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->target_len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = ctx->target;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_egress_stream_id_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_stream_egress_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_egress_module);

    if (ctx == NULL || ctx->last_id == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(s->connection->pool, NGX_INT32_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%uD", ctx->last_id) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_egress_status_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_stream_egress_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_egress_module);

    if (ctx == NULL || ctx->status == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(s->connection->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%03ui", ctx->status) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}
