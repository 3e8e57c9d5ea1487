#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

static ngx_stream_module_t  ngx_stream_egress_module_ctx = {
    NULL, NULL, NULL, NULL, NULL, NULL
};

ngx_module_t  ngx_stream_egress_module = {
    NGX_MODULE_V1,
    &ngx_stream_egress_module_ctx,
    NULL,
    NGX_STREAM_MODULE,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NGX_MODULE_V1_PADDING
};
