/*
 * egress_idmap.h: v1 stream ids (strings on the wire) <-> internal ids.
 *
 * On a v1 socket a stream id is a short printable string chosen by the
 * client ("conn_<base36>" in crabbox and in our own senders). Inside every
 * process ids stay small integers; one map per v1 leg (the host agent's
 * bridge, the coordinator's session) ties the two together:
 *
 *   - an id this process allocated itself travels as "conn_<base36 id>" and
 *     needs no entry: egress_frame_decode() reads that shape back;
 *   - an id the peer chose gets an entry when its open arrives
 *     (egress_idmap_resolve()), is written back with the peer's text
 *     (egress_idmap_label()) and is dropped when the stream ends
 *     (egress_idmap_forget()). A text of our own shape keeps its number
 *     when that is free, so such ids read the same on both legs.
 *
 * The map is bounded: at most max entries live at once; an open beyond that
 * fails with EGRESS_ERR_TOO_LARGE and the caller answers it with an error.
 */

#ifndef EGRESS_IDMAP_H
#define EGRESS_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "egress_error.h"
#include "egress_frame.h"

typedef struct {
    uint32_t id; /* 0: free entry */
    uint8_t len; /* bytes of text */
    char text[EGRESS_WIRE_ID_MAX + 1];
} egress_idmap_entry_t;

typedef struct {
    egress_idmap_entry_t *ent; /* nent entries, free ones chained through free_next */
    uint32_t *free_next;
    uint32_t *by_id;    /* open addressing, entry index + 1 (0 empty) */
    uint32_t *by_text;  /* same, keyed by text */
    size_t nent;        /* entries allocated */
    size_t mask;        /* index tables have mask + 1 slots */
    size_t count;       /* live entries */
    size_t max;         /* bound on live entries */
    uint32_t free_head; /* entry index + 1, 0 none */
    uint32_t next;      /* next internal id to try */
} egress_idmap_t;

/* An empty map holding at most max entries (max >= 1). Allocates lazily. */
void egress_idmap_init(egress_idmap_t *m, size_t max);

/* Frees the map's memory; the map stays usable (empty). */
void egress_idmap_free(egress_idmap_t *m);

/* Forgets every entry (all streams of the leg died). */
void egress_idmap_clear(egress_idmap_t *m);

/*
 * After decoding a v1 frame (f->wire_id set): an open gets a fresh internal
 * id for a new text (or the live one for a text already mapped); any other
 * frame gets the id its text is mapped to, else the id the decoder read
 * from our own "conn_<base36>" shape, else 0 (an unknown id: a late frame
 * to ignore). A frame without wire id is left alone. Returns -1 with err
 * set only when an open finds the map full or out of memory.
 */
int egress_idmap_resolve(egress_idmap_t *m, egress_frame_t *f, egress_error_t *err);

/* The internal id text maps to, 0 if none (no own-shape fallback). */
uint32_t egress_idmap_lookup(const egress_idmap_t *m, const char *text, size_t len);

/*
 * Before encoding f for a v1 socket: when f carries no wire id and the map
 * holds an entry for f->id, points f->wire_id at the peer's text (valid
 * until that entry is forgotten). Otherwise the encoder writes our own shape.
 */
void egress_idmap_label(const egress_idmap_t *m, egress_frame_t *f);

/* Drops the entry of an internal id, if any (its stream ended). */
void egress_idmap_forget(egress_idmap_t *m, uint32_t id);

#endif /* EGRESS_IDMAP_H */
