/*
 * ws_frame.h: writing masked client data frames (RFC 6455 5.2) in one pass:
 * the header, then the payload XORed with the key a word at a time.
 */

#ifndef EGRESS_AGENT_WS_FRAME_H
#define EGRESS_AGENT_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WS_FRAME_HEADER_MAX 14 /* 2 + 8 length bytes + 4 mask bytes */

/* Header of a final text or binary frame of len bytes masked with key; returns its size. */
size_t ws_frame_header(unsigned char *out, int binary, uint64_t len,
                       const unsigned char key[4]);

/* dst = src XOR key, for payload bytes starting at offset off (which picks the key phase). */
void ws_frame_mask(unsigned char *dst, const unsigned char *src, size_t n,
                   const unsigned char key[4], uint64_t off);

#endif /* EGRESS_AGENT_WS_FRAME_H */
