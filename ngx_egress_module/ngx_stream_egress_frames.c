
/*
 * The bridge's traffic over the open WebSocket: frames to the coordinator
 * (encoded by lib, masked once into a frame of their own and kept as units
 * in the send queue until they are copied, whole, into the output buffer),
 * frames from it (wslay decodes, lib parses, dispatched to streams), the
 * table of live streams and the queue of streams waiting for room. Stream
 * events reach their owner through the ngx_stream_egress_stream_ops_t it
 * registered at open.
 *
 * The send queue (docs/protocol.md#ordering): open and window go in an
 * urgent lane ahead of queued data, unless a frame of their own stream is
 * still queued; data and close go in their stream's lane, and the lanes take
 * turns a frame at a time, so one bulk upload does not hold up the others.
 * wslay is left its pings, pongs and the close.
 *
 * Streams never send synchronously: they queue frames and post the write
 * event, so a bridge failure never unwinds through a session's handler.
 */


#include "ngx_stream_egress_bridge.h"


#define NGX_STREAM_EGRESS_OUT_SIZE          (256 * 1024)

/*
 * Frames staged in the output buffer are past reordering: stage little more
 * than a socket write's worth (the kernel's own unsent bytes are bounded by
 * TCP_NOTSENT_LOWAT)
 */
#define NGX_STREAM_EGRESS_STAGE             (64 * 1024)


/* one encoded, masked WebSocket frame waiting to be written */

typedef struct {
    ngx_queue_t                 queue;
    size_t                      len;
    uint32_t                    id;
    ngx_uint_t                  spare;      /* NGX_STREAM_EGRESS_SPARE_DATA
                                               bytes of data, reusable */
    u_char                      data[1];
} ngx_stream_egress_out_t;


/*
 * Data frames that wait in the queue are allocated and freed at the rate of
 * the data: a few freed ones are kept for the next, because malloc hands
 * the top of its heap back to the kernel (brk) as soon as they are gone and
 * takes it back, zeroed page by page, for the next one.
 */
#define NGX_STREAM_EGRESS_SPARE_DATA                                         \
    (EGRESS_WS_HEADER_MAX + EGRESS_V2_DATA_HEADER + EGRESS_DATA_CHUNK)
#define NGX_STREAM_EGRESS_SPARE_MIN         (4 * 1024)
#define NGX_STREAM_EGRESS_SPARE_MAX         32


/* the frames of one stream id, in order */

typedef struct {
    ngx_rbtree_node_t           node;       /* key: stream id */
    ngx_queue_t                 frames;
    ngx_queue_t                 ready;      /* in b->ready */
} ngx_stream_egress_lane_t;


/* here, with the stream API that uses it; ngx_stream_egress_bridge_init
 * sets it */
ngx_stream_egress_bridge_t  *ngx_stream_egress_bridge;


static ngx_int_t ngx_stream_egress_bridge_queue(ngx_stream_egress_bridge_t *b,
    egress_frame_t *f, ngx_uint_t urgent);
static ngx_stream_egress_out_t *ngx_stream_egress_bridge_wrap(
    ngx_stream_egress_bridge_t *b, uint32_t id, ngx_uint_t binary,
    const u_char *head, size_t head_len, const u_char *body, size_t body_len);
static ngx_int_t ngx_stream_egress_bridge_write_direct(
    ngx_stream_egress_bridge_t *b, const u_char *head, size_t head_len,
    const u_char *body, size_t body_len);
static ngx_stream_egress_out_t *ngx_stream_egress_bridge_out_alloc(
    ngx_stream_egress_bridge_t *b, size_t size);
static void ngx_stream_egress_bridge_out_free(ngx_stream_egress_bridge_t *b,
    ngx_stream_egress_out_t *out);
static u_char *ngx_stream_egress_bridge_mask_frame(
    ngx_stream_egress_bridge_t *b, u_char *p, ngx_uint_t binary,
    const u_char *head, size_t head_len, const u_char *body, size_t body_len);
static ngx_int_t ngx_stream_egress_bridge_enqueue(
    ngx_stream_egress_bridge_t *b, ngx_stream_egress_out_t *out,
    ngx_uint_t urgent);
static ngx_uint_t ngx_stream_egress_bridge_stage(
    ngx_stream_egress_bridge_t *b);
static ngx_rbtree_node_t *ngx_stream_egress_rbtree_lookup(ngx_rbtree_t *tree,
    ngx_rbtree_key_t id);
static ngx_stream_egress_lane_t *ngx_stream_egress_bridge_lane(
    ngx_stream_egress_bridge_t *b, uint32_t id);
static ngx_stream_egress_ctx_t *ngx_stream_egress_bridge_find(
    ngx_stream_egress_bridge_t *b, uint32_t id);

static ssize_t ngx_stream_egress_ws_recv(wslay_event_context_ptr ctx,
    uint8_t *buf, size_t len, int flags, void *user_data);
static ssize_t ngx_stream_egress_ws_send(wslay_event_context_ptr ctx,
    const uint8_t *data, size_t len, int flags, void *user_data);
static int ngx_stream_egress_ws_genmask(wslay_event_context_ptr ctx,
    uint8_t *buf, size_t len, void *user_data);
static void ngx_stream_egress_ws_on_msg(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *user_data);
static void ngx_stream_egress_ws_frame_start(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data);
static void ngx_stream_egress_ws_frame_chunk(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user_data);


/*
 * wslay's event API with its I/O callbacks bound to the nginx connection
 * (WOULDBLOCK on NGX_AGAIN), the send queue and the output buffer.
 */

ngx_int_t
ngx_stream_egress_bridge_ws_create(ngx_stream_egress_bridge_t *b)
{
    struct wslay_event_callbacks  cb;

    ngx_queue_init(&b->urgent);
    ngx_queue_init(&b->ready);
    ngx_rbtree_init(&b->lanes, &b->lane_sentinel, ngx_rbtree_insert_value);
    b->queued = 0;
    ngx_queue_init(&b->spare);
    b->nspare = 0;

    ngx_memzero(&cb, sizeof(struct wslay_event_callbacks));

    cb.recv_callback = ngx_stream_egress_ws_recv;
    cb.send_callback = ngx_stream_egress_ws_send;
    cb.genmask_callback = ngx_stream_egress_ws_genmask;
    cb.on_msg_recv_callback = ngx_stream_egress_ws_on_msg;
    cb.on_frame_recv_start_callback = ngx_stream_egress_ws_frame_start;
    cb.on_frame_recv_chunk_callback = ngx_stream_egress_ws_frame_chunk;

    if (wslay_event_context_client_init(&b->ws, &cb, b) != 0) {
        b->ws = NULL;
        return NGX_ERROR;
    }

    wslay_event_config_set_max_recv_msg_length(b->ws, EGRESS_MAX_MESSAGE);

    b->out.start = ngx_palloc(b->pool, NGX_STREAM_EGRESS_OUT_SIZE);
    if (b->out.start == NULL) {
        return NGX_ERROR;
    }

    b->out.end = b->out.start + NGX_STREAM_EGRESS_OUT_SIZE;
    b->out.pos = b->out.start;
    b->out.last = b->out.start;

    return NGX_OK;
}


/* wslay and every frame still queued: the connection is gone */

void
ngx_stream_egress_bridge_ws_free(ngx_stream_egress_bridge_t *b)
{
    ngx_queue_t               *q;
    ngx_stream_egress_lane_t  *lane;

    if (b->ws == NULL) {
        return;
    }

    wslay_event_context_free(b->ws);
    b->ws = NULL;

    while (!ngx_queue_empty(&b->urgent)) {
        q = ngx_queue_head(&b->urgent);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_stream_egress_out_t, queue));
    }

    /* every lane with frames is ready; empty lanes are freed at once */

    while (!ngx_queue_empty(&b->ready)) {
        lane = ngx_queue_data(ngx_queue_head(&b->ready),
                              ngx_stream_egress_lane_t, ready);

        while (!ngx_queue_empty(&lane->frames)) {
            q = ngx_queue_head(&lane->frames);
            ngx_queue_remove(q);
            ngx_free(ngx_queue_data(q, ngx_stream_egress_out_t, queue));
        }

        ngx_queue_remove(&lane->ready);
        ngx_rbtree_delete(&b->lanes, &lane->node);
        ngx_free(lane);
    }

    b->queued = 0;

    while (!ngx_queue_empty(&b->spare)) {
        q = ngx_queue_head(&b->spare);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_stream_egress_out_t, queue));
    }

    b->nspare = 0;
}


/*
 * The next free stream id, or 0. Ids are not reused while live, nor while
 * frames of their last stream are still queued, nor while a probe uses one.
 */

static uint32_t
ngx_stream_egress_bridge_next_id(ngx_stream_egress_bridge_t *b)
{
    ngx_uint_t  tries;

    for (tries = 0; ; tries++) {
        if (b->next_id == 0) {
            b->next_id = 1;
        }

        if (ngx_stream_egress_bridge_find(b, b->next_id) == NULL
            && ngx_stream_egress_bridge_lane(b, b->next_id) == NULL
            && b->next_id != b->probe_id)
        {
            break;
        }

        /* each lane holds a frame, so bytes queued bound their number */
        if (tries > b->nstreams + b->queued + 1) {
            return 0;
        }

        b->next_id++;
    }

    return b->next_id++;
}


ngx_int_t
ngx_stream_egress_bridge_open(ngx_stream_egress_ctx_t *ctx,
    ngx_stream_egress_stream_ops_t *ops)
{
    egress_frame_t               f;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        return NGX_ERROR;
    }

    ctx->id = ngx_stream_egress_bridge_next_id(b);

    if (ctx->id == 0) {
        return NGX_ERROR;
    }

    ctx->last_id = ctx->id;

    ngx_memzero(&f, sizeof(egress_frame_t));
    f.type = EGRESS_FRAME_OPEN;
    f.id = ctx->id;
    f.host.data = (const char *) ctx->req.host;
    f.host.len = ctx->req.host_len;
    f.port = ctx->req.port;

    if (b->version == EGRESS_PROTO_V2) {
        f.window = EGRESS_INITIAL_WINDOW;
    }

    if (ngx_stream_egress_bridge_queue(b, &f, 1) != NGX_OK) {
        ctx->id = 0;
        return NGX_ERROR;
    }

    ctx->ops = ops;
    ctx->node.key = ctx->id;
    ngx_rbtree_insert(&b->streams, &ctx->node);
    ctx->in_tree = 1;
    b->nstreams++;

    ngx_stream_egress_probe_opened(b);

    return NGX_OK;
}


/*
 * ngx_stream_egress_probe.c's question to a v1 host side: an open any host
 * agent refuses at once (a reserved name, RFC 6761, on the discard port).
 * Returns its stream id, or 0 when it could not be queued.
 */

uint32_t
ngx_stream_egress_bridge_send_probe(ngx_stream_egress_bridge_t *b)
{
    uint32_t        id;
    egress_frame_t  f;

    id = ngx_stream_egress_bridge_next_id(b);

    if (id == 0) {
        return 0;
    }

    ngx_memzero(&f, sizeof(egress_frame_t));
    f.type = EGRESS_FRAME_OPEN;
    f.id = id;
    f.host.data = "egress-probe.invalid";
    f.host.len = sizeof("egress-probe.invalid") - 1;
    f.port = 9;

    return ngx_stream_egress_bridge_queue(b, &f, 1) == NGX_OK ? id : 0;
}


/* removes the stream from the table (the id is no longer live here) */

void
ngx_stream_egress_bridge_forget(ngx_stream_egress_ctx_t *ctx)
{
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (ctx->in_tree && b) {
        ngx_rbtree_delete(&b->streams, &ctx->node);
        b->nstreams--;
    }

    ctx->in_tree = 0;
    ctx->id = 0;

    ngx_stream_egress_bridge_unwait(ctx);
}


/* how many more bytes streams may queue before they must wait */

size_t
ngx_stream_egress_bridge_room(void)
{
    size_t                       queued;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        return 0;
    }

    queued = b->queued + wslay_event_get_queued_msg_length(b->ws)
             + (b->out.last - b->out.pos);

    if (queued >= NGX_STREAM_EGRESS_BRIDGE_HIGH) {
        return 0;
    }

    return NGX_STREAM_EGRESS_BRIDGE_HIGH - queued;
}


void
ngx_stream_egress_bridge_wait(ngx_stream_egress_ctx_t *ctx)
{
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || ctx->is_blocked) {
        return;
    }

    ngx_queue_insert_tail(&b->blocked, &ctx->blocked);
    ctx->is_blocked = 1;
}


void
ngx_stream_egress_bridge_unwait(ngx_stream_egress_ctx_t *ctx)
{
    if (ctx->is_blocked) {
        ngx_queue_remove(&ctx->blocked);
        ctx->is_blocked = 0;
    }
}


ngx_int_t
ngx_stream_egress_bridge_send_data(ngx_stream_egress_ctx_t *ctx,
    const u_char *data, size_t len)
{
    u_char                       head[EGRESS_V2_DATA_HEADER];
    egress_frame_t               f;
    ngx_stream_egress_out_t     *out;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        return NGX_DECLINED;
    }

    if (b->version == EGRESS_PROTO_V2) {
        /* [id][bytes], masked straight from the caller's buffer */
        egress_frame_data_header(head, ctx->id);

        switch (ngx_stream_egress_bridge_write_direct(b, head,
                                                      EGRESS_V2_DATA_HEADER,
                                                      data, len))
        {
        case NGX_OK:
            return NGX_OK;
        case NGX_ERROR:
            return NGX_ERROR;
        default: /* NGX_DECLINED: others wait, or no room */
            break;
        }

        out = ngx_stream_egress_bridge_wrap(b, ctx->id, 1, head,
                                            EGRESS_V2_DATA_HEADER, data, len);
        if (out == NULL) {
            return NGX_ERROR;
        }

        return ngx_stream_egress_bridge_enqueue(b, out, 0);
    }

    ngx_memzero(&f, sizeof(egress_frame_t));
    f.type = EGRESS_FRAME_DATA;
    f.id = ctx->id;
    f.body = data;
    f.body_len = len;

    return ngx_stream_egress_bridge_queue(b, &f, 0);
}


ngx_int_t
ngx_stream_egress_bridge_send_close(uint32_t id, ngx_uint_t half)
{
    egress_frame_t               f;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || id == 0) {
        return NGX_DECLINED;
    }

    ngx_memzero(&f, sizeof(egress_frame_t));
    f.type = EGRESS_FRAME_CLOSE;
    f.id = id;
    f.half = (half && b->version == EGRESS_PROTO_V2) ? 1 : 0;

    /* a close never passes anything: the stream's data goes first */
    return ngx_stream_egress_bridge_queue(b, &f, 0);
}


ngx_int_t
ngx_stream_egress_bridge_send_window(uint32_t id, uint32_t increment)
{
    egress_frame_t               f;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || b->version != EGRESS_PROTO_V2 || increment == 0) {
        return NGX_DECLINED;
    }

    ngx_memzero(&f, sizeof(egress_frame_t));
    f.type = EGRESS_FRAME_WINDOW;
    f.id = id;
    f.increment = increment;

    return ngx_stream_egress_bridge_queue(b, &f, 1);
}


static ngx_int_t
ngx_stream_egress_bridge_queue(ngx_stream_egress_bridge_t *b,
    egress_frame_t *f, ngx_uint_t urgent)
{
    int                       binary;
    size_t                    n;
    egress_error_t            err;
    ngx_stream_egress_out_t  *out;

    if (b->state != NGX_STREAM_EGRESS_BRIDGE_OPEN) {
        return NGX_DECLINED;
    }

    n = egress_frame_encode(f, b->version, b->frame, b->frame_cap, &binary,
                            &err);
    if (n == 0) {
        ngx_log_error(NGX_LOG_ALERT, b->log, 0,
                      "egress bridge: cannot encode %s frame for stream "
                      "%uD: %s", egress_frame_type_name(f->type), f->id,
                      err.message);
        return NGX_ERROR;
    }

    out = ngx_stream_egress_bridge_wrap(b, f->id, binary, b->frame, n,
                                        NULL, 0);
    if (out == NULL) {
        return NGX_ERROR;
    }

    return ngx_stream_egress_bridge_enqueue(b, out, urgent);
}


/*
 * One final masked frame of head and body, 8 bytes per XOR: wslay masks a
 * byte at a time through a 4 KiB bounce buffer, and data is nearly all the
 * module sends.
 */

static ngx_stream_egress_out_t *
ngx_stream_egress_bridge_wrap(ngx_stream_egress_bridge_t *b, uint32_t id,
    ngx_uint_t binary, const u_char *head, size_t head_len,
    const u_char *body, size_t body_len)
{
    u_char                   *last;
    ngx_stream_egress_out_t  *out;

    out = ngx_stream_egress_bridge_out_alloc(b, EGRESS_WS_HEADER_MAX
                                                 + head_len + body_len);
    if (out == NULL) {
        return NULL;
    }

    last = ngx_stream_egress_bridge_mask_frame(b, out->data, binary, head,
                                               head_len, body, body_len);
    if (last == NULL) {
        ngx_stream_egress_bridge_out_free(b, out);
        return NULL;
    }

    out->len = last - out->data;
    out->id = id;

    return out;
}


/* a frame of size bytes; a data frame reuses a spare */

static ngx_stream_egress_out_t *
ngx_stream_egress_bridge_out_alloc(ngx_stream_egress_bridge_t *b, size_t size)
{
    ngx_queue_t              *q;
    ngx_stream_egress_out_t  *out;

    if (size < NGX_STREAM_EGRESS_SPARE_MIN
        || size > NGX_STREAM_EGRESS_SPARE_DATA)
    {
        out = ngx_alloc(offsetof(ngx_stream_egress_out_t, data) + size,
                        b->log);
        if (out != NULL) {
            out->spare = 0;
        }

        return out;
    }

    if (!ngx_queue_empty(&b->spare)) {
        q = ngx_queue_head(&b->spare);
        ngx_queue_remove(q);
        b->nspare--;

        return ngx_queue_data(q, ngx_stream_egress_out_t, queue);
    }

    out = ngx_alloc(offsetof(ngx_stream_egress_out_t, data)
                    + NGX_STREAM_EGRESS_SPARE_DATA, b->log);
    if (out != NULL) {
        out->spare = 1;
    }

    return out;
}


static void
ngx_stream_egress_bridge_out_free(ngx_stream_egress_bridge_t *b,
    ngx_stream_egress_out_t *out)
{
    if (out->spare && b->nspare < NGX_STREAM_EGRESS_SPARE_MAX) {
        ngx_queue_insert_head(&b->spare, &out->queue);
        b->nspare++;
        return;
    }

    ngx_free(out);
}


/*
 * With nothing queued (no frame of ours, none of wslay's) and a socket that
 * keeps up, a data frame is masked straight into the output buffer: no
 * allocation, no second copy. Nothing waits ahead of it, so the send order
 * stays what ngx_stream_egress_bridge_send() would give.
 */

static ngx_int_t
ngx_stream_egress_bridge_write_direct(ngx_stream_egress_bridge_t *b,
    const u_char *head, size_t head_len, const u_char *body, size_t body_len)
{
    u_char  *last;

    if (b->queued || wslay_event_want_write(b->ws)
        || (size_t) (b->out.last - b->out.pos) >= NGX_STREAM_EGRESS_STAGE
        || (size_t) (b->out.end - b->out.last)
           < EGRESS_WS_HEADER_MAX + head_len + body_len)
    {
        return NGX_DECLINED;
    }

    last = ngx_stream_egress_bridge_mask_frame(b, b->out.last, 1, head,
                                               head_len, body, body_len);
    if (last == NULL) {
        return NGX_ERROR;
    }

    b->out.last = last;

    ngx_stream_egress_bridge_kick(b);

    return NGX_OK;
}


/* writes one final masked frame of head and body at p; returns its end */

static u_char *
ngx_stream_egress_bridge_mask_frame(ngx_stream_egress_bridge_t *b, u_char *p,
    ngx_uint_t binary, const u_char *head, size_t head_len, const u_char *body,
    size_t body_len)
{
    u_char  key[4];

    if (egress_random_pool_take(&b->keys, key, sizeof(key), NULL) != 0) {
        return NULL;
    }

    p += egress_ws_frame_header(p, binary ? 1 : 0, head_len + body_len, key);

    egress_ws_mask(p, head, head_len, key, 0);

    if (body_len) {
        egress_ws_mask(p + head_len, body, body_len, key, head_len);
    }

    return p + head_len + body_len;
}


/*
 * Urgent frames (open, window) go in the urgent lane unless their stream
 * still has frames queued: a control frame never passes its own stream.
 */

static ngx_int_t
ngx_stream_egress_bridge_enqueue(ngx_stream_egress_bridge_t *b,
    ngx_stream_egress_out_t *out, ngx_uint_t urgent)
{
    ngx_stream_egress_lane_t  *lane;

    lane = ngx_stream_egress_bridge_lane(b, out->id);

    if (urgent && lane == NULL) {
        ngx_queue_insert_tail(&b->urgent, &out->queue);
        goto queued;
    }

    if (lane == NULL) {
        lane = ngx_alloc(sizeof(ngx_stream_egress_lane_t), b->log);
        if (lane == NULL) {
            ngx_stream_egress_bridge_out_free(b, out);
            return NGX_ERROR;
        }

        lane->node.key = out->id;
        ngx_rbtree_insert(&b->lanes, &lane->node);
        ngx_queue_init(&lane->frames);
        ngx_queue_insert_tail(&b->ready, &lane->ready);
    }

    ngx_queue_insert_tail(&lane->frames, &out->queue);

queued:

    b->queued += out->len;

    ngx_stream_egress_bridge_kick(b);

    return NGX_OK;
}


static ngx_stream_egress_lane_t *
ngx_stream_egress_bridge_lane(ngx_stream_egress_bridge_t *b, uint32_t id)
{
    return (ngx_stream_egress_lane_t *) ngx_stream_egress_rbtree_lookup(
                                                               &b->lanes, id);
}


/* the node keyed id in a tree of nodes that begin with their rbtree node */

static ngx_rbtree_node_t *
ngx_stream_egress_rbtree_lookup(ngx_rbtree_t *tree, ngx_rbtree_key_t id)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = tree->root;
    sentinel = tree->sentinel;

    while (node != sentinel) {

        if (id < node->key) {
            node = node->left;
            continue;
        }

        if (id > node->key) {
            node = node->right;
            continue;
        }

        return node;
    }

    return NULL;
}


/*
 * Copies whole frames into the output buffer in send order: the urgent
 * lane first, then one frame of each ready lane in turn, until a socket
 * write's worth is staged. Returns whether it staged anything.
 */

static ngx_uint_t
ngx_stream_egress_bridge_stage(ngx_stream_egress_bridge_t *b)
{
    ngx_uint_t                 staged;
    ngx_queue_t               *q;
    ngx_stream_egress_out_t   *out;
    ngx_stream_egress_lane_t  *lane;

    staged = 0;

    while ((size_t) (b->out.last - b->out.pos) < NGX_STREAM_EGRESS_STAGE) {

        lane = NULL;

        if (!ngx_queue_empty(&b->urgent)) {
            q = ngx_queue_head(&b->urgent);

        } else if (!ngx_queue_empty(&b->ready)) {
            lane = ngx_queue_data(ngx_queue_head(&b->ready),
                                  ngx_stream_egress_lane_t, ready);
            q = ngx_queue_head(&lane->frames);

        } else {
            break;
        }

        out = ngx_queue_data(q, ngx_stream_egress_out_t, queue);

        if ((size_t) (b->out.end - b->out.last) < out->len) {
            if (b->out.pos == b->out.start) {
                break;
            }

            /* the TLS context accepts a moved write buffer */
            b->out.last = ngx_movemem(b->out.start, b->out.pos,
                                      b->out.last - b->out.pos);
            b->out.pos = b->out.start;
            continue;
        }

        b->out.last = ngx_cpymem(b->out.last, out->data, out->len);
        b->queued -= out->len;
        staged = 1;

        ngx_queue_remove(q);
        ngx_stream_egress_bridge_out_free(b, out);

        if (lane == NULL) {
            continue;
        }

        /* the lane's turn is over */

        ngx_queue_remove(&lane->ready);

        if (ngx_queue_empty(&lane->frames)) {
            ngx_rbtree_delete(&b->lanes, &lane->node);
            ngx_free(lane);

        } else {
            ngx_queue_insert_tail(&b->ready, &lane->ready);
        }
    }

    return staged;
}


/*
 * Writes what can be written: wslay's own frames (pings, pongs, the close)
 * only when the output buffer can take them whole, so that they never split
 * one of ours; then the send queue.
 */

ngx_int_t
ngx_stream_egress_bridge_send(ngx_stream_egress_bridge_t *b)
{
    size_t      need;
    ngx_uint_t  progress;

    for ( ;; ) {
        progress = 0;

        if (ngx_stream_egress_bridge_flush(b) == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (wslay_event_want_write(b->ws)) {
            need = wslay_event_get_queued_msg_length(b->ws)
                   + wslay_event_get_queued_msg_count(b->ws)
                     * EGRESS_WS_HEADER_MAX;

            if ((size_t) (b->out.end - b->out.last) >= need) {
                if (wslay_event_send(b->ws) != 0) {
                    return NGX_ERROR;
                }

                progress = 1;
            }
        }

        if (ngx_stream_egress_bridge_stage(b)) {
            progress = 1;
        }

        if (ngx_stream_egress_bridge_flush(b) == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (!progress || b->out.pos != b->out.last) {
            /* nothing left, or the socket is full */
            return NGX_OK;
        }
    }
}


/* whether anything waits to be written */

ngx_uint_t
ngx_stream_egress_bridge_pending(ngx_stream_egress_bridge_t *b)
{
    return b->out.pos != b->out.last || b->queued
           || wslay_event_want_write(b->ws);
}


void
ngx_stream_egress_bridge_kick(ngx_stream_egress_bridge_t *b)
{
    ngx_event_t  *wev;

    if (b->connection == NULL) {
        return;
    }

    wev = b->connection->write;

    if (!wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }
}


/*
 * Moves a posted bridge write behind the events posted so far: what they
 * queue leaves in the same send as what is queued already (an open and the
 * request behind it reach the coordinator as one segment, one wake-up).
 */

void
ngx_stream_egress_bridge_send_later(void)
{
    ngx_event_t                 *wev;
    ngx_stream_egress_bridge_t  *b;

    b = ngx_stream_egress_bridge;

    if (b == NULL || b->connection == NULL) {
        return;
    }

    wev = b->connection->write;

    if (wev->posted) {
        ngx_delete_posted_event(wev);
        ngx_post_event(wev, &ngx_posted_events);
    }
}


ngx_int_t
ngx_stream_egress_bridge_flush(ngx_stream_egress_bridge_t *b)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = b->connection;

    while (b->out.pos < b->out.last) {
        n = c->send(c, b->out.pos, b->out.last - b->out.pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        b->out.pos += n;
    }

    if (b->out.pos == b->out.last) {
        b->out.pos = b->out.start;
        b->out.last = b->out.start;

    } else if (b->out.pos != b->out.start && b->out.last == b->out.end) {
        /* the TLS context accepts a moved write buffer */
        b->out.last = ngx_movemem(b->out.start, b->out.pos,
                                  b->out.last - b->out.pos);
        b->out.pos = b->out.start;
    }

    return NGX_OK;
}


static ngx_stream_egress_ctx_t *
ngx_stream_egress_bridge_find(ngx_stream_egress_bridge_t *b, uint32_t id)
{
    return (ngx_stream_egress_ctx_t *) ngx_stream_egress_rbtree_lookup(
                                                             &b->streams, id);
}


/* one decoded WebSocket message from the coordinator */

void
ngx_stream_egress_bridge_message(ngx_stream_egress_bridge_t *b,
    const uint8_t *msg, size_t len, ngx_uint_t binary)
{
    ngx_str_t                 reason;
    egress_error_t            err;
    egress_frame_t            f;
    ngx_stream_egress_ctx_t  *ctx;

    ngx_memzero(&f, sizeof(egress_frame_t));

    if (b->version == EGRESS_PROTO_V2 && !b->hello && b->conf->protocol == 0) {
        /* auto, waiting for hello: anything else first means a v1 relay */
        if (binary
            || egress_frame_decode(&f, EGRESS_PROTO_V2, msg, len, 0, &err) != 0
            || f.type != EGRESS_FRAME_HELLO)
        {
            egress_frame_release(&f);
            ngx_stream_egress_bridge_fall_back_v1(b, "a v1 frame first");
        } else {
            egress_frame_release(&f);
        }

        ngx_memzero(&f, sizeof(egress_frame_t));
    }

    if (egress_frame_decode(&f, b->version, msg, len, binary, &err) != 0) {

        ctx = f.id ? ngx_stream_egress_bridge_find(b, f.id) : NULL;

        ngx_log_error(NGX_LOG_ERR, b->log, 0,
                      "egress bridge: invalid frame from the coordinator "
                      "(stream %uD): %s", f.id, err.message);

        if (ctx) {
            /* a bad frame for one stream ends that stream only */
            (void) ngx_stream_egress_bridge_send_close(f.id, 0);
            ngx_stream_egress_bridge_forget(ctx);
            ngx_str_set(&reason, "invalid frame from the bridge");
            ctx->ops->abort(ctx, &reason);
            return;
        }

        ngx_stream_egress_bridge_set_reason(b, "invalid frame from the "
                                            "coordinator: %s", err.message);
        b->failed = 1;
        return;
    }

    if (b->version == EGRESS_PROTO_V1
        && ngx_stream_egress_probe_frame(b, &f) == NGX_DONE)
    {
        egress_frame_release(&f);
        return;
    }

    if (f.id == 0 && f.type != EGRESS_FRAME_HELLO
        && f.type != EGRESS_FRAME_PEER)
    {
        /*
         * v1: a string id that is not one of ours ("conn_<base36>"), so
         * no stream of ours has it: a late or foreign frame, ignored
         */
        ngx_log_error(NGX_LOG_INFO, b->log, 0,
                      "egress bridge: %s frame for unknown stream \"%s\" "
                      "ignored", egress_frame_type_name(f.type),
                      f.wire_id.data);
        egress_frame_release(&f);
        return;
    }

    switch (f.type) {

    case EGRESS_FRAME_HELLO:
        b->hello = 1;
        b->peer_connected = f.peer_connected;
        b->backoff = NGX_STREAM_EGRESS_BACKOFF_MIN;

        ngx_stream_egress_bridge_set_resume(b, &f.resume);

        ngx_log_error(NGX_LOG_NOTICE, b->log, 0,
                      "egress bridge: session \"%s\" ready, host agent %s",
                      f.session_id.data,
                      f.peer_connected ? "connected" : "not connected");
        break;

    case EGRESS_FRAME_PEER:
        b->peer_connected = f.connected;

        ngx_log_error(NGX_LOG_NOTICE, b->log, 0,
                      "egress bridge: host agent %s",
                      f.connected ? "connected" : "disconnected");

        if (!f.connected) {
            ngx_str_set(&reason, "host agent disconnected");
            ngx_stream_egress_bridge_abort_all(b, &reason);
        }

        break;

    case EGRESS_FRAME_OPEN_OK:
        ctx = ngx_stream_egress_bridge_find(b, f.id);

        if (ctx == NULL || ctx->state != NGX_STREAM_EGRESS_OPENING) {
            /* we gave up on it (timeout) meanwhile */
            (void) ngx_stream_egress_bridge_send_close(f.id, 0);
            break;
        }

        ctx->ops->open_ok(ctx, f.window);
        break;

    case EGRESS_FRAME_ERROR:
        ctx = ngx_stream_egress_bridge_find(b, f.id);

        if (ctx) {
            ngx_stream_egress_bridge_forget(ctx);
            ctx->ops->open_error(ctx, &f.message);
        }

        break;

    case EGRESS_FRAME_DATA:
        ctx = ngx_stream_egress_bridge_find(b, f.id);

        if (ctx) {
            ctx->ops->data(ctx, f.body, f.body_len);
        }

        break;

    case EGRESS_FRAME_CLOSE:
        ctx = ngx_stream_egress_bridge_find(b, f.id);

        if (ctx) {
            ctx->ops->close(ctx, f.half);
        }

        break;

    case EGRESS_FRAME_WINDOW:
        ctx = ngx_stream_egress_bridge_find(b, f.id);

        if (ctx) {
            ctx->ops->window(ctx, f.increment);
        }

        break;

    default:
        ngx_log_error(NGX_LOG_INFO, b->log, 0,
                      "egress bridge: ignoring %s frame for stream %uD",
                      egress_frame_type_name(f.type), f.id);
        break;
    }

    egress_frame_release(&f);
}


void
ngx_stream_egress_bridge_abort_all(ngx_stream_egress_bridge_t *b,
    ngx_str_t *reason)
{
    ngx_rbtree_node_t        *node;
    ngx_stream_egress_ctx_t  *ctx;

    while (b->streams.root != &b->sentinel) {
        node = ngx_rbtree_min(b->streams.root, &b->sentinel);
        ctx = (ngx_stream_egress_ctx_t *) node;

        /* the streams died with the bridge or peer: no close frames */
        ngx_stream_egress_bridge_forget(ctx);
        ctx->ops->abort(ctx, reason);
    }
}


void
ngx_stream_egress_bridge_wake(ngx_stream_egress_bridge_t *b)
{
    ngx_queue_t              *q;
    ngx_stream_egress_ctx_t  *ctx;

    while (!ngx_queue_empty(&b->blocked)) {
        q = ngx_queue_head(&b->blocked);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_stream_egress_ctx_t, blocked);
        ctx->is_blocked = 0;

        ctx->ops->resume(ctx);
    }
}


static ssize_t
ngx_stream_egress_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf,
    size_t len, int flags, void *user_data)
{
    ngx_stream_egress_bridge_t *b = user_data;

    ssize_t            n;
    ngx_connection_t  *c;

    if (b->failed) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }

    if (b->hs.pos < b->hs.last) {
        n = ngx_min((size_t) (b->hs.last - b->hs.pos), len);
        ngx_memcpy(buf, b->hs.pos, n);
        b->hs.pos += n;
        return n;
    }

    if (b->recv_budget == 0) {
        /* yield to other connections; the read event is reposted */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }

    /*
     * wslay asks for at most 4 KiB at a time; one recv() into the
     * read-ahead buffer serves many of those asks
     */

    c = b->connection;

    n = c->recv(c, b->hs.start,
                ngx_min((size_t) (b->hs.end - b->hs.start), b->recv_budget));

    if (n == NGX_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }

    if (n == 0 || n == NGX_ERROR) {
        b->eof = 1;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }

    b->recv_budget -= n;
    b->last_recv = ngx_current_msec;

    b->hs.pos = b->hs.start;
    b->hs.last = b->hs.start + n;

    n = ngx_min(n, (ssize_t) len);
    ngx_memcpy(buf, b->hs.pos, n);
    b->hs.pos += n;

    return n;
}


static ssize_t
ngx_stream_egress_ws_send(wslay_event_context_ptr ctx, const uint8_t *data,
    size_t len, int flags, void *user_data)
{
    ngx_stream_egress_bridge_t *b = user_data;

    size_t  n;

    if (b->out.last == b->out.end) {
        if (ngx_stream_egress_bridge_flush(b) == NGX_ERROR) {
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }

        if (b->out.last == b->out.end) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
            return -1;
        }
    }

    n = ngx_min(len, (size_t) (b->out.end - b->out.last));

    ngx_memcpy(b->out.last, data, n);
    b->out.last += n;

    return n;
}


static int
ngx_stream_egress_ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf,
    size_t len, void *user_data)
{
    ngx_stream_egress_bridge_t *b = user_data;

    if (egress_random_pool_take(&b->keys, buf, len, NULL) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }

    return 0;
}


static void
ngx_stream_egress_ws_on_msg(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    ngx_stream_egress_bridge_t *b = user_data;

    size_t   n;
    u_char  *p, *last;

    if (b->failed) {
        return;
    }

    switch (arg->opcode) {

    case WSLAY_TEXT_FRAME:
        ngx_stream_egress_bridge_message(b, arg->msg, arg->msg_length, 0);
        break;

    case WSLAY_BINARY_FRAME:
        ngx_stream_egress_bridge_message(b, arg->msg, arg->msg_length, 1);
        break;

    case WSLAY_CONNECTION_CLOSE:
        if (arg->msg_length > 2) {
            n = ngx_min(arg->msg_length - 2, sizeof(b->close_reason));
            ngx_memcpy(b->close_reason, arg->msg + 2, n);
            b->close_reason_len = n;

            last = b->close_reason + n;

            for (p = b->close_reason; p < last; p++) {
                if (*p < ' ' || *p >= 0x7f) {
                    *p = '?';
                }
            }
        }

        break;

    default:
        /* ping (answered by wslay) and pong: liveness only */
        break;
    }
}


/*
 * wslay (1.1) refuses the RFC 6455 registry's 1012-1014 as invalid close
 * codes; crabbox's coordinator sends 1012 when a newer socket replaced
 * ours. The close frame's first two bytes are kept here, so that the
 * bridge can act on the code itself (ngx_stream_egress_bridge_close_code()).
 */

static void
ngx_stream_egress_ws_frame_start(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data)
{
    ngx_stream_egress_bridge_t  *b = user_data;

    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        b->close_frame = 1;
        b->close_got = 0;
    }
}


static void
ngx_stream_egress_ws_frame_chunk(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user_data)
{
    size_t                       i;
    ngx_stream_egress_bridge_t  *b = user_data;

    if (!b->close_frame) {
        return;
    }

    for (i = 0; i < arg->data_length && b->close_got < 2; i++) {
        b->close_hdr[b->close_got++] = arg->data[i];
    }
}
