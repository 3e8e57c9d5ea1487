/*
 * egress_frame.h: the bridge wire protocol codec (v1 and v2).
 *
 * v1 is JSON text frames only: open, open_ok, data (base64 body), close, error,
 * in crabbox's shape: string ids, a string port, the error text in "error".
 * v2 keeps control frames as JSON text, adds window, hello and peer, a "half"
 * flag on close and a "window" field on open/open_ok, and carries data as
 * binary WebSocket messages: a 4-byte big-endian stream id, then the bytes.
 * docs/protocol.md is the normative description.
 *
 * Ownership: egress_frame_decode() may make the frame point into the message
 * (v2 data body) and into memory it allocates itself; call
 * egress_frame_release() when done. Strings are NUL-terminated and contain no
 * NUL byte; absent ones are "" (never NULL), and body is never NULL after a
 * successful decode. Encoding never allocates.
 */

#ifndef EGRESS_FRAME_H
#define EGRESS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "egress_error.h"

#define EGRESS_PROTO_V1 1
#define EGRESS_PROTO_V2 2

/* WebSocket subprotocol names, in order of preference. */
#define EGRESS_SUBPROTO_V2 "egress.v2"
#define EGRESS_SUBPROTO_V1 "egress.v1"

#define EGRESS_MAX_MESSAGE    (2 * 1024 * 1024) /* any one WebSocket message */
#define EGRESS_DATA_CHUNK     (32 * 1024)       /* largest data body a sender emits */
#define EGRESS_INITIAL_WINDOW (256 * 1024)      /* default per-stream send credit */
#define EGRESS_MAX_WINDOW     0x7fffffffu       /* window and credit ceiling */
#define EGRESS_ID_MAX         0xffffffffu       /* stream ids are 1..EGRESS_ID_MAX */
#define EGRESS_MAX_ERROR_TEXT 512               /* error.message, bytes */
#define EGRESS_MAX_TOKEN_TEXT 256               /* sessionID, role, resume, bytes */
#define EGRESS_V2_DATA_HEADER 4
#define EGRESS_WIRE_ID_MAX    64      /* v1 string ids: 1..64 printable ASCII bytes */
#define EGRESS_WIRE_ID_PREFIX "conn_" /* our own v1 ids: "conn_" + base36 of the id */

typedef enum {
    EGRESS_FRAME_OPEN = 1, /* client -> host: {id, host, port [, window]} */
    EGRESS_FRAME_OPEN_OK,  /* host -> client: {id [, window]} */
    EGRESS_FRAME_DATA,     /* both: v1 {id, body}, v2 binary [id][bytes] */
    EGRESS_FRAME_CLOSE,    /* both: {id [, half]} */
    EGRESS_FRAME_ERROR,    /* host -> client: {id, message} */
    EGRESS_FRAME_WINDOW,   /* v2, both: {id, increment} */
    EGRESS_FRAME_HELLO, /* v2, coordinator -> agent: {sessionID, role, peerConnected, resume} */
    EGRESS_FRAME_PEER   /* v2, coordinator -> agent: {connected} */
} egress_frame_type_e;

typedef struct {
    const char *data; /* NUL-terminated */
    size_t len;
} egress_str_t;

typedef struct {
    egress_frame_type_e type;
    uint32_t id; /* all stream frames (not hello/peer) */

    egress_str_t host;           /* open: normalized (see egress_host.h) */
    uint16_t port;               /* open */
    uint32_t window;             /* open/open_ok: advertised initial window, 0 if absent */
    uint32_t increment;          /* window: 1..EGRESS_MAX_WINDOW */
    unsigned half : 1;           /* close: write-side EOF only */
    unsigned peer_connected : 1; /* hello */
    unsigned connected : 1;      /* peer */

    /*
     * v1 only: the stream id as it travels, a string ("conn_k3x9", any short
     * printable text; an integer id is read as itself, wire_id empty). Decode
     * fills it and sets id to the value of our own "conn_<base36>" shape, or
     * 0: egress_idmap_resolve() maps other texts. Encode writes it when set,
     * else "conn_<base36 id>".
     */
    egress_str_t wire_id;

    egress_str_t message;    /* error (v1: the "error" member, "message" accepted) */
    egress_str_t session_id; /* hello */
    egress_str_t role;       /* hello: "host" or "client" */
    egress_str_t resume;     /* hello: may be absent (then empty) */

    const uint8_t *body; /* data */
    size_t body_len;

    /* private: storage owned by a decoded frame */
    void *owned_json;
    uint8_t *owned_body;
    char host_buf[256];
    char wire_buf[EGRESS_WIRE_ID_MAX + 1];
} egress_frame_t;

/* "open", "open_ok", ...; "?" for an unknown value. */
const char *egress_frame_type_name(egress_frame_type_e type);

/*
 * Decodes one WebSocket message. binary tells the message opcode. On success
 * returns 0 and fills *f (release it afterwards). On failure returns -1, sets
 * err, and leaves nothing to release. When the failure concerns a frame whose
 * stream id could be read, *f->id holds it (else 0) so a peer can answer with
 * an error or close for that stream.
 */
int egress_frame_decode(egress_frame_t *f, int version, const uint8_t *msg, size_t len,
                        int binary, egress_error_t *err);

/* Frees what a successful decode allocated; safe on a zeroed frame. */
void egress_frame_release(egress_frame_t *f);

/*
 * Upper bound of the encoded size of f under version (exact for v2 data).
 * Returns 0 when f cannot be encoded in that version (e.g. window in v1).
 */
size_t egress_frame_encoded_max(const egress_frame_t *f, int version);

/*
 * Encodes f into buf (cap bytes). Returns the byte count and sets *binary to 1
 * when the message must go out as a binary WebSocket message; returns 0 with
 * err set when f is invalid for that version or does not fit. Fields are
 * validated as strictly as on decode, so an encoder bug cannot emit a frame
 * the peer would reject. open's host is written in normalized form. v1
 * output omits window fields (v1 has no credit), and close with half set
 * fails on v1 (a half-close cannot be expressed there). window 0 on
 * open/open_ok means "not advertised" and is omitted.
 */
size_t egress_frame_encode(const egress_frame_t *f, int version, uint8_t *buf, size_t cap,
                           int *binary, egress_error_t *err);

/* Writes the v2 binary data header for id (callers that gather the body themselves). */
void egress_frame_data_header(uint8_t out[EGRESS_V2_DATA_HEADER], uint32_t id);

/*
 * The id our own shape "conn_<base36>" (canonical: lower case, no leading
 * zero) stands for, 0 when text is not of that shape or out of range.
 */
uint32_t egress_wire_id_parse(const char *text, size_t len);

/* Writes "conn_<base36 id>" into out (at least 16 bytes); returns its length. */
size_t egress_wire_id_format(char *out, uint32_t id);

/*
 * Chooses the protocol version from a WebSocket subprotocol value
 * ("egress.v2" -> 2, "egress.v1" or NULL/empty -> 1, anything else -> 0).
 */
int egress_proto_from_subprotocol(const char *name);

#endif /* EGRESS_FRAME_H */
