/*
 * egress_wsserver.h: the server side of RFC 6455 framing, for the
 * coordinator's agent sockets. The reader takes bytes as they arrive and
 * yields one event at a time: a whole message (fragments reassembled into
 * one buffer the caller may take), a ping, a pong, the peer's close, or an
 * error that names the close code to answer with:
 *
 *   1002  a frame without the client mask, reserved bits or opcodes, a
 *         control frame above 125 bytes or fragmented, a continuation with
 *         no message, a new message inside a fragmented one, a close frame
 *         of one byte or with a code that may not be sent
 *   1009  a message (all its fragments) above the reader's limit
 *
 * Text payloads are not checked for UTF-8 here: the egress frames in text
 * messages are JSON, whose parser refuses what is not UTF-8.
 * The writer side makes unmasked server frame headers.
 */

#ifndef EGRESS_WSSERVER_H
#define EGRESS_WSSERVER_H

#include <stddef.h>
#include <stdint.h>

#define EGRESS_WS_OP_CONT   0x0
#define EGRESS_WS_OP_TEXT   0x1
#define EGRESS_WS_OP_BINARY 0x2
#define EGRESS_WS_OP_CLOSE  0x8
#define EGRESS_WS_OP_PING   0x9
#define EGRESS_WS_OP_PONG   0xa

#define EGRESS_WS_CONTROL_MAX    125
#define EGRESS_WS_SERVER_HDR_MAX 10 /* 2 + 8 length bytes, no mask */

#define EGRESS_WS_PROTOCOL_ERROR 1002
#define EGRESS_WS_TOO_BIG        1009
#define EGRESS_WS_NO_STATUS      1005 /* a close frame without a code */

typedef enum {
    EGRESS_WS_EV_NONE = 0, /* every byte given was consumed, nothing complete */
    EGRESS_WS_EV_MESSAGE,  /* a whole message: egress_ws_reader_take() */
    EGRESS_WS_EV_PING,     /* data/len: the payload to echo in a pong */
    EGRESS_WS_EV_PONG,
    EGRESS_WS_EV_CLOSE, /* code: the peer's (1005 when none), data/len: its reason */
    EGRESS_WS_EV_ERROR  /* code: the close code to send; why: a short name */
} egress_ws_event_e;

typedef struct {
    egress_ws_event_e type;
    int binary; /* MESSAGE: 1 binary, 0 text */
    int code;
    const char *why;
    const unsigned char *data; /* PING/PONG/CLOSE payload, in the reader */
    size_t len;                /* MESSAGE: payload bytes; else data's length */
} egress_ws_event_t;

typedef struct {
    /* set by egress_ws_reader_init */
    size_t max_message; /* payload bytes of one message, fragments together */
    size_t headroom;    /* bytes left free before the payload of each buffer */

    /* the frame being read */
    unsigned char hdr[14];
    size_t hdr_have;
    int in_payload;
    int opcode, fin;
    uint64_t left; /* payload bytes of this frame still to come */
    uint64_t moff; /* payload bytes of this frame seen (the mask's phase) */
    unsigned char key[4];

    /* the message being assembled */
    unsigned char *buf; /* headroom, then msg_len bytes of payload */
    size_t msg_len, msg_cap;
    int msg_opcode; /* 0: none open */

    unsigned char ctl[EGRESS_WS_CONTROL_MAX];
    size_t ctl_len;
    int failed; /* an error was reported: every later call reports it again */
    int fail_code;
    const char *fail_why;
} egress_ws_reader_t;

void egress_ws_reader_init(egress_ws_reader_t *r, size_t max_message, size_t headroom);
void egress_ws_reader_free(egress_ws_reader_t *r);

/*
 * Consumes bytes from in until an event is complete or in is used up;
 * returns how many were consumed and fills ev. Call again with the rest
 * after handling an event. After EGRESS_WS_EV_ERROR the reader stays
 * failed. Returns 0 with ev->type ERROR, code 1011, when memory ran out.
 */
size_t egress_ws_read(egress_ws_reader_t *r, const unsigned char *in, size_t len,
                      egress_ws_event_t *ev);

/* After EGRESS_WS_EV_MESSAGE: the message's buffer (headroom bytes, then
 * ev.len payload bytes, room for *cap payload bytes in all), which the caller
 * now owns (free()). Never NULL after a MESSAGE event, even for an empty one. */
unsigned char *egress_ws_reader_take(egress_ws_reader_t *r, size_t *cap);

/* An unmasked frame header for opcode with fin and len payload bytes;
 * returns its size (2, 4 or 10). */
size_t egress_ws_server_header(unsigned char *out, int opcode, int fin, uint64_t len);

/* A close payload: the code, then the reason cut to fit 123 bytes; returns
 * its length. out needs EGRESS_WS_CONTROL_MAX bytes. */
size_t egress_ws_close_payload(unsigned char *out, int code, const char *reason);

/* 1 when a peer may send code in a close frame (RFC 6455 7.4). */
int egress_ws_close_code_valid(int code);

#endif /* EGRESS_WSSERVER_H */
