/*
 * egress_idmap.c: bounded two-way map between v1 wire ids (strings) and
 * internal stream ids. Two open-addressed index tables (by id, by text)
 * over a growable entry array; deletion shifts back, so there are no
 * tombstones and lookups stay short however long a session lives.
 */

#include <stdlib.h>
#include <string.h>

#include "egress_idmap.h"

#define IDMAP_MIN_ENTRIES 16

static size_t hash_id(uint32_t id)
{
    uint64_t h = (uint64_t) id * 0x9e3779b97f4a7c15ull;
    return (size_t) (h >> 32);
}

static size_t hash_text(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) s[i];
        h *= 1099511628211ull;
    }
    return (size_t) (h ^ (h >> 29));
}

static size_t entry_hash(const egress_idmap_t *m, uint32_t slot, int by_text)
{
    const egress_idmap_entry_t *e = &m->ent[slot - 1];

    return by_text ? hash_text(e->text, e->len) : hash_id(e->id);
}

void egress_idmap_init(egress_idmap_t *m, size_t max)
{
    memset(m, 0, sizeof(*m));
    m->max = max ? max : 1;
    m->next = 1;
}

void egress_idmap_free(egress_idmap_t *m)
{
    size_t max = m->max;

    free(m->ent);
    free(m->free_next);
    free(m->by_id);
    free(m->by_text);
    egress_idmap_init(m, max);
}

void egress_idmap_clear(egress_idmap_t *m)
{
    size_t i;

    if (m->nent == 0) {
        return;
    }
    memset(m->by_id, 0, (m->mask + 1) * sizeof(uint32_t));
    memset(m->by_text, 0, (m->mask + 1) * sizeof(uint32_t));
    m->free_head = 0;
    for (i = m->nent; i > 0; i--) {
        m->ent[i - 1].id = 0;
        m->free_next[i - 1] = m->free_head;
        m->free_head = (uint32_t) i;
    }
    m->count = 0;
}

static void table_insert(egress_idmap_t *m, uint32_t *tab, uint32_t slot, int by_text)
{
    size_t i = entry_hash(m, slot, by_text) & m->mask;

    while (tab[i] != 0) {
        i = (i + 1) & m->mask;
    }
    tab[i] = slot;
}

static void table_delete(egress_idmap_t *m, uint32_t *tab, size_t i, int by_text)
{
    size_t j = i, k;

    for (;;) {
        j = (j + 1) & m->mask;
        if (tab[j] == 0) {
            break;
        }
        k = entry_hash(m, tab[j], by_text) & m->mask;
        /* move tab[j] into the hole unless its home lies cyclically in (i, j] */
        if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
            tab[i] = tab[j];
            i = j;
        }
    }
    tab[i] = 0;
}

static size_t find_id_pos(const egress_idmap_t *m, uint32_t id)
{
    size_t i = hash_id(id) & m->mask;

    while (m->by_id[i] != 0) {
        if (m->ent[m->by_id[i] - 1].id == id) {
            return i;
        }
        i = (i + 1) & m->mask;
    }
    return (size_t) -1;
}

static size_t find_text_pos(const egress_idmap_t *m, const char *text, size_t len)
{
    size_t i = hash_text(text, len) & m->mask;

    while (m->by_text[i] != 0) {
        const egress_idmap_entry_t *e = &m->ent[m->by_text[i] - 1];
        if (e->len == len && memcmp(e->text, text, len) == 0) {
            return i;
        }
        i = (i + 1) & m->mask;
    }
    return (size_t) -1;
}

/* Doubles the entry array (tables twice its size) and rehashes. */
static int idmap_grow(egress_idmap_t *m)
{
    size_t n = m->nent ? m->nent * 2 : IDMAP_MIN_ENTRIES;
    size_t slots, i;
    egress_idmap_entry_t *ent;
    uint32_t *fn, *bi, *bt;

    if (n > m->max) {
        n = m->max;
    }
    slots = 1;
    while (slots < 2 * n) {
        slots <<= 1;
    }
    ent = realloc(m->ent, n * sizeof(*ent));
    if (ent == NULL) {
        return -1;
    }
    m->ent = ent;
    fn = realloc(m->free_next, n * sizeof(*fn));
    if (fn == NULL) {
        return -1;
    }
    m->free_next = fn;
    bi = calloc(slots, sizeof(*bi));
    bt = calloc(slots, sizeof(*bt));
    if (bi == NULL || bt == NULL) {
        free(bi);
        free(bt);
        return -1;
    }
    free(m->by_id);
    free(m->by_text);
    m->by_id = bi;
    m->by_text = bt;
    m->mask = slots - 1;
    for (i = n; i > m->nent; i--) {
        m->ent[i - 1].id = 0;
        m->free_next[i - 1] = m->free_head;
        m->free_head = (uint32_t) i;
    }
    m->nent = n;
    for (i = 0; i < n; i++) {
        if (m->ent[i].id != 0) {
            table_insert(m, m->by_id, (uint32_t) i + 1, 0);
            table_insert(m, m->by_text, (uint32_t) i + 1, 1);
        }
    }
    return 0;
}

uint32_t egress_idmap_lookup(const egress_idmap_t *m, const char *text, size_t len)
{
    size_t pos;

    if (m == NULL || m->count == 0) {
        return 0;
    }
    pos = find_text_pos(m, text, len);
    return pos == (size_t) -1 ? 0 : m->ent[m->by_text[pos] - 1].id;
}

/* want: our own shape's id, kept when free (ids then match on both legs); 0 allocates */
static uint32_t idmap_add(egress_idmap_t *m, const char *text, size_t len, uint32_t want,
                          egress_error_t *err)
{
    egress_idmap_entry_t *e;
    uint32_t slot, id;

    if (m->count >= m->max) {
        egress_error_set(err, EGRESS_ERR_TOO_LARGE, "open: more than %zu live streams", m->max);
        return 0;
    }
    if (m->free_head == 0 && idmap_grow(m) < 0) {
        egress_error_set(err, EGRESS_ERR_SYSTEM, "open: out of memory");
        return 0;
    }
    id = want;
    if (id == 0 || find_id_pos(m, id) != (size_t) -1) {
        /* the next id not in use; count < max <= 2^32 - 2 guarantees one */
        do {
            id = m->next++;
            if (m->next == 0) {
                m->next = 1;
            }
        } while (id == 0 || find_id_pos(m, id) != (size_t) -1);
    }
    slot = m->free_head;
    m->free_head = m->free_next[slot - 1];
    e = &m->ent[slot - 1];
    e->id = id;
    e->len = (uint8_t) len;
    memcpy(e->text, text, len);
    e->text[len] = '\0';
    table_insert(m, m->by_id, slot, 0);
    table_insert(m, m->by_text, slot, 1);
    m->count++;
    return id;
}

int egress_idmap_resolve(egress_idmap_t *m, egress_frame_t *f, egress_error_t *err)
{
    uint32_t id;

    if (f->wire_id.len == 0 || f->wire_id.len > EGRESS_WIRE_ID_MAX) {
        return 0;
    }
    id = egress_idmap_lookup(m, f->wire_id.data, f->wire_id.len);
    if (id == 0 && f->type == EGRESS_FRAME_OPEN) {
        if (m == NULL) {
            return egress_error_set(err, EGRESS_ERR_VALUE, "open: no id map on this leg");
        }
        id = idmap_add(m, f->wire_id.data, f->wire_id.len, f->id, err);
        if (id == 0) {
            f->id = 0;
            return -1;
        }
    }
    if (id != 0) {
        f->id = id;
    }
    /* else: keep what the decoder read from our own shape (0 if none) */
    return 0;
}

void egress_idmap_label(const egress_idmap_t *m, egress_frame_t *f)
{
    size_t pos;
    const egress_idmap_entry_t *e;

    if (m == NULL || m->count == 0 || f->wire_id.len != 0 || f->id == 0) {
        return;
    }
    pos = find_id_pos(m, f->id);
    if (pos == (size_t) -1) {
        return;
    }
    e = &m->ent[m->by_id[pos] - 1];
    f->wire_id.data = e->text;
    f->wire_id.len = e->len;
}

void egress_idmap_forget(egress_idmap_t *m, uint32_t id)
{
    size_t pos, tpos;
    uint32_t slot;
    egress_idmap_entry_t *e;

    if (m == NULL || m->count == 0 || id == 0) {
        return;
    }
    pos = find_id_pos(m, id);
    if (pos == (size_t) -1) {
        return;
    }
    slot = m->by_id[pos];
    e = &m->ent[slot - 1];
    tpos = find_text_pos(m, e->text, e->len);
    table_delete(m, m->by_id, pos, 0);
    if (tpos != (size_t) -1) {
        table_delete(m, m->by_text, tpos, 1);
    }
    e->id = 0;
    m->free_next[slot - 1] = m->free_head;
    m->free_head = slot;
    m->count--;
}
