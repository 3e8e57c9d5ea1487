/*
 * bridge.h: the host agent's one WebSocket to the coordinator (bridge.c).
 *
 * The bridge carries frames and keeps the connection up; it knows neither
 * streams nor the agent's life cycle by name, only the bridge_ops_t table
 * the layers above hand to bridge_init().
 */

#ifndef EGRESS_AGENT_BRIDGE_H
#define EGRESS_AGENT_BRIDGE_H

#include "host_types.h"

struct bridge_ops_s {
    /* a stream frame arrived: open, data, window, close or error */
    void (*on_stream_frame)(agent_t *ag, const egress_frame_t *f);
    /* a frame for stream id was undecodable: end the stream; 1 when it existed */
    int (*reset_stream)(agent_t *ag, uint32_t id);
    /* the socket or the lease client is gone: end every stream (with_frames 0) */
    void (*end_streams)(agent_t *ag, int with_frames);
    /* the send queue drained below AGENT_QUEUE_LOW: held streams read again */
    void (*release_held)(agent_t *ag);
    /* a fatal answer, no credential left, or the clean stop is done */
    void (*finish)(agent_t *ag, int code);
};

/* Loop resources of the bridge (call once before bridge_connect). */
int bridge_init(agent_t *ag, const bridge_ops_t *ops);
/* Starts a connection attempt (minting a ticket first when no credential is left). */
int bridge_connect(agent_t *ag);
void bridge_schedule_reconnect(agent_t *ag, int immediate);
/* Closes the socket and the bridge's handles (at the end, outside callbacks). */
void bridge_stop(agent_t *ag);
/* Queued messages exist: write them on this loop turn. */
void bridge_kick(agent_t *ag);

/* A message with room for len payload bytes (pooled when it fits a data chunk). */
wsmsg_t *bridge_msg_new(agent_t *ag, size_t len);
void bridge_msg_free(agent_t *ag, wsmsg_t *m);
/* Queues m for the WebSocket (dropped while the bridge is down). */
void bridge_enqueue(agent_t *ag, wsmsg_t *m);
/* Encodes f in the negotiated version and queues it (open_ok and window ahead of data). */
int bridge_send_frame(agent_t *ag, const egress_frame_t *f);
/* The peer left: drops queued frames of streams. */
void bridge_purge_streams(agent_t *ag);
/* Frees what the bridge still holds: message pool, receive buffer, TLS context (at the end). */
void bridge_free(agent_t *ag);

#endif /* EGRESS_AGENT_BRIDGE_H */
