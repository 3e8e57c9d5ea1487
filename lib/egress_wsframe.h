/*
 * egress_wsframe.h: writing masked client WebSocket frames (RFC 6455 5.2)
 * in one pass: the header, then the payload XORed with the key a word at a
 * time. The agent and the nginx module send their data frames this way;
 * wslay (which still reads frames and writes control frames for both) masks
 * a byte at a time through a 4 KiB bounce buffer.
 */

#ifndef EGRESS_WSFRAME_H
#define EGRESS_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

#define EGRESS_WS_HEADER_MAX 14 /* 2 + 8 length bytes + 4 mask bytes */

/* Header of a final text or binary frame of len bytes masked with key; returns its size. */
size_t egress_ws_frame_header(unsigned char *out, int binary, uint64_t len,
                              const unsigned char key[4]);

/* dst = src XOR key for payload bytes starting at offset off (which picks the key phase).
 * dst may equal src. */
void egress_ws_mask(unsigned char *dst, const unsigned char *src, size_t n,
                    const unsigned char key[4], uint64_t off);

#endif /* EGRESS_WSFRAME_H */
