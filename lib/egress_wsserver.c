/*
 * egress_wsserver.c: reading client frames on a server socket (mask
 * required, control frames checked, fragments reassembled under a limit)
 * and writing unmasked server frame headers.
 */

#include <stdlib.h>
#include <string.h>

#include "egress_wsframe.h"
#include "egress_wsserver.h"

#define WS_FIRST_ALLOC 256

void egress_ws_reader_init(egress_ws_reader_t *r, size_t max_message, size_t headroom)
{
    memset(r, 0, sizeof(*r));
    r->max_message = max_message;
    r->headroom = headroom;
}

void egress_ws_reader_free(egress_ws_reader_t *r)
{
    free(r->buf);
    r->buf = NULL;
    r->msg_len = r->msg_cap = 0;
    r->msg_opcode = 0;
}

int egress_ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static size_t ws_fail(egress_ws_reader_t *r, egress_ws_event_t *ev, int code, const char *why,
                      size_t used)
{
    r->failed = 1;
    r->fail_code = code;
    r->fail_why = why;
    ev->type = EGRESS_WS_EV_ERROR;
    ev->code = code;
    ev->why = why;
    return used;
}

/* Header bytes needed once the first two are known. */
static size_t ws_header_size(const unsigned char *h)
{
    size_t n = 2 + 4;

    if ((h[1] & 0x7f) == 126) {
        n += 2;
    } else if ((h[1] & 0x7f) == 127) {
        n += 8;
    }
    return n;
}

/* Room for more payload bytes of the message being assembled. */
static int ws_reserve(egress_ws_reader_t *r, size_t need)
{
    size_t cap = r->msg_cap;
    unsigned char *nb;

    if (r->buf != NULL && need <= cap) {
        return 0;
    }
    if (r->buf == NULL) {
        cap = need < WS_FIRST_ALLOC ? WS_FIRST_ALLOC : need;
    } else if (cap * 2 > need) {
        cap *= 2;
    } else {
        cap = need;
    }
    if (cap > r->max_message && need <= r->max_message) {
        cap = r->max_message;
    }
    nb = realloc(r->buf, r->headroom + cap);
    if (nb == NULL) {
        return -1;
    }
    r->buf = nb;
    r->msg_cap = cap;
    return 0;
}

/* A whole header is in r->hdr: check it and set up the payload. */
static int ws_begin_frame(egress_ws_reader_t *r, const char **why)
{
    const unsigned char *h = r->hdr;
    uint64_t len = h[1] & 0x7f;
    size_t k = 2;
    int control;

    r->fin = (h[0] & 0x80) != 0;
    r->opcode = h[0] & 0x0f;
    if (h[0] & 0x70) {
        *why = "reserved_bits";
        return EGRESS_WS_PROTOCOL_ERROR;
    }
    if (len == 126) {
        len = ((uint64_t) h[2] << 8) | h[3];
        k = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) {
            len = (len << 8) | h[2 + i];
        }
        k = 10;
        if (len >> 63) {
            *why = "bad_length";
            return EGRESS_WS_PROTOCOL_ERROR;
        }
    }
    memcpy(r->key, h + k, 4);
    control = (r->opcode & 0x8) != 0;
    if (control) {
        if (r->opcode != EGRESS_WS_OP_CLOSE && r->opcode != EGRESS_WS_OP_PING &&
            r->opcode != EGRESS_WS_OP_PONG) {
            *why = "bad_opcode";
            return EGRESS_WS_PROTOCOL_ERROR;
        }
        if (!r->fin) {
            *why = "fragmented_control";
            return EGRESS_WS_PROTOCOL_ERROR;
        }
        if (len > EGRESS_WS_CONTROL_MAX) {
            *why = "control_too_big";
            return EGRESS_WS_PROTOCOL_ERROR;
        }
        r->ctl_len = 0;
    } else {
        if (r->opcode == EGRESS_WS_OP_CONT) {
            if (r->msg_opcode == 0) {
                *why = "orphan_continuation";
                return EGRESS_WS_PROTOCOL_ERROR;
            }
        } else if (r->opcode == EGRESS_WS_OP_TEXT || r->opcode == EGRESS_WS_OP_BINARY) {
            if (r->msg_opcode != 0) {
                *why = "message_in_message";
                return EGRESS_WS_PROTOCOL_ERROR;
            }
            r->msg_opcode = r->opcode;
            r->msg_len = 0;
        } else {
            *why = "bad_opcode";
            return EGRESS_WS_PROTOCOL_ERROR;
        }
        if (len > r->max_message - r->msg_len) {
            *why = "too_big";
            return EGRESS_WS_TOO_BIG;
        }
        if (ws_reserve(r, r->msg_len + (size_t) len) < 0) {
            *why = "no_memory";
            return 1011;
        }
    }
    r->left = len;
    r->moff = 0;
    r->in_payload = 1;
    r->hdr_have = 0;
    return 0;
}

/* The frame's last payload byte came: 1 when that completes an event. */
static int ws_end_frame(egress_ws_reader_t *r, egress_ws_event_t *ev)
{
    r->in_payload = 0;
    switch (r->opcode) {
    case EGRESS_WS_OP_PING:
    case EGRESS_WS_OP_PONG:
        ev->type = r->opcode == EGRESS_WS_OP_PING ? EGRESS_WS_EV_PING : EGRESS_WS_EV_PONG;
        ev->data = r->ctl;
        ev->len = r->ctl_len;
        return 1;
    case EGRESS_WS_OP_CLOSE:
        ev->type = EGRESS_WS_EV_CLOSE;
        ev->code = EGRESS_WS_NO_STATUS;
        ev->data = r->ctl;
        ev->len = 0;
        if (r->ctl_len >= 2) {
            ev->code = (r->ctl[0] << 8) | r->ctl[1];
            ev->data = r->ctl + 2;
            ev->len = r->ctl_len - 2;
        }
        return 1;
    default:
        if (!r->fin) {
            return 0;
        }
        ev->type = EGRESS_WS_EV_MESSAGE;
        ev->binary = r->msg_opcode == EGRESS_WS_OP_BINARY;
        ev->len = r->msg_len;
        r->msg_opcode = 0;
        return 1;
    }
}

size_t egress_ws_read(egress_ws_reader_t *r, const unsigned char *in, size_t len,
                      egress_ws_event_t *ev)
{
    size_t used = 0, n;
    const char *why;
    int code;

    memset(ev, 0, sizeof(*ev));
    if (r->failed) {
        ev->type = EGRESS_WS_EV_ERROR;
        ev->code = r->fail_code;
        ev->why = r->fail_why;
        return 0;
    }
    for (;;) {
        if (!r->in_payload) {
            size_t need = r->hdr_have < 2 ? 2 : ws_header_size(r->hdr);

            if (used == len) {
                return used;
            }
            n = need - r->hdr_have;
            if (n > len - used) {
                n = len - used;
            }
            memcpy(r->hdr + r->hdr_have, in + used, n);
            r->hdr_have += n;
            used += n;
            if (r->hdr_have >= 2 && !(r->hdr[1] & 0x80)) {
                return ws_fail(r, ev, EGRESS_WS_PROTOCOL_ERROR, "unmasked", used);
            }
            if (r->hdr_have < 2 || r->hdr_have < ws_header_size(r->hdr)) {
                continue;
            }
            code = ws_begin_frame(r, &why);
            if (code != 0) {
                return ws_fail(r, ev, code, why, used);
            }
        }
        n = len - used;
        if (n > r->left) {
            n = (size_t) r->left;
        }
        if (n > 0) {
            unsigned char *dst =
                (r->opcode & 0x8) ? r->ctl + r->ctl_len : r->buf + r->headroom + r->msg_len;

            egress_ws_mask(dst, in + used, n, r->key, r->moff);
            if (r->opcode & 0x8) {
                r->ctl_len += n;
            } else {
                r->msg_len += n;
            }
            used += n;
            r->left -= n;
            r->moff += n;
        }
        if (r->left > 0) {
            return used;
        }
        if (ws_end_frame(r, ev)) {
            if (ev->type == EGRESS_WS_EV_CLOSE &&
                (r->ctl_len == 1 ||
                 (r->ctl_len >= 2 && !egress_ws_close_code_valid(ev->code)))) {
                memset(ev, 0, sizeof(*ev));
                return ws_fail(r, ev, EGRESS_WS_PROTOCOL_ERROR, "bad_close", used);
            }
            return used;
        }
    }
}

unsigned char *egress_ws_reader_take(egress_ws_reader_t *r, size_t *cap)
{
    unsigned char *b = r->buf;

    if (b == NULL) {
        b = malloc(r->headroom + 1);
        r->msg_cap = b != NULL ? 1 : 0;
    }
    if (cap != NULL) {
        *cap = r->msg_cap;
    }
    r->buf = NULL;
    r->msg_len = r->msg_cap = 0;
    return b;
}

size_t egress_ws_server_header(unsigned char *out, int opcode, int fin, uint64_t len)
{
    out[0] = (unsigned char) ((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (unsigned char) len;
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = (unsigned char) (len >> 8);
        out[3] = (unsigned char) len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (unsigned char) (len >> (56 - 8 * i));
    }
    return 10;
}

size_t egress_ws_close_payload(unsigned char *out, int code, const char *reason)
{
    size_t n = reason != NULL ? strlen(reason) : 0;

    if (n > EGRESS_WS_CONTROL_MAX - 2) {
        n = EGRESS_WS_CONTROL_MAX - 2;
    }
    out[0] = (unsigned char) (code >> 8);
    out[1] = (unsigned char) code;
    if (n > 0) {
        memcpy(out + 2, reason, n);
    }
    return n + 2;
}
