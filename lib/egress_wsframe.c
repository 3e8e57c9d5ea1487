/*
 * egress_wsframe.c: masked client data frames, 8 bytes of payload per XOR,
 * written straight into the caller's output buffer.
 */

#include <string.h>

#include "egress_wsframe.h"

size_t egress_ws_frame_header(unsigned char *out, int binary, uint64_t len,
                              const unsigned char key[4])
{
    size_t n = 2;

    out[0] = 0x80 | (binary ? 0x2 : 0x1); /* FIN, opcode */
    if (len < 126) {
        out[1] = 0x80 | (unsigned char) len;
    } else if (len < 65536) {
        out[1] = 0x80 | 126;
        out[2] = (unsigned char) (len >> 8);
        out[3] = (unsigned char) len;
        n = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (unsigned char) (len >> (56 - 8 * i));
        n = 10;
    }
    memcpy(out + n, key, 4);
    return n + 4;
}

void egress_ws_mask(unsigned char *dst, const unsigned char *src, size_t n,
                    const unsigned char key[4], uint64_t off)
{
    unsigned char k[8];
    uint64_t k8;
    size_t i = 0;

    /* the key rotated to this offset, twice: one 64-bit word */
    for (int j = 0; j < 8; j++)
        k[j] = key[(off + (uint64_t) j) & 3];
    memcpy(&k8, k, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k8;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ k[i & 7];
}
