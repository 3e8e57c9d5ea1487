/*
 * stream.h: one outbound TCP connection per bridge stream (stream.c). The
 * bridge reaches these through its bridge_ops_t table, set by host.c.
 */

#ifndef EGRESS_AGENT_STREAM_H
#define EGRESS_AGENT_STREAM_H

#include "host_types.h"

/* A stream frame from the bridge: open, data, window, close or error. */
void stream_on_frame(agent_t *ag, const egress_frame_t *f);
/* Ends stream id without a frame; returns 1 when it existed. */
int stream_reset(agent_t *ag, uint32_t id);
/* Ends every stream; with_frames sends close/error for each (shutdown). */
void stream_kill_all(agent_t *ag, int with_frames);
/* The send queue drained below AGENT_QUEUE_LOW: held streams read again. */
void stream_release_held(agent_t *ag);
/* Frees the chunk pool and the table (at the end). */
void stream_pool_free(agent_t *ag);

#endif /* EGRESS_AGENT_STREAM_H */
