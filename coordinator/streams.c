/*
 * streams.c: a session's table of live streams (hashed by id), the
 * translated data each holds back for lack of v2 credit, and the client's
 * early data each holds for a host that cannot take it before open_ok.
 */

#include <stdlib.h>

#include "session.h"

static unsigned stream_bucket(uint32_t id)
{
    return (id * 2654435761u) >> 24; /* top 8 bits of a Fibonacci hash */
}

stream_t *stream_find(session_t *s, uint32_t id)
{
    stream_t *st;

    for (st = s->streams[stream_bucket(id)]; st != NULL; st = st->next) {
        if (st->id == id) {
            return st;
        }
    }
    return NULL;
}

stream_t *stream_add(session_t *s, uint32_t id)
{
    stream_t *st = calloc(1, sizeof(*st));
    unsigned b = stream_bucket(id);

    if (st == NULL) {
        return NULL;
    }
    st->id = id;
    st->next = s->streams[b];
    s->streams[b] = st;
    s->nstreams++;
    return st;
}

static void stream_free(session_t *s, stream_t *st)
{
    msg_t *m, *n;
    int to = -1;

    for (m = st->pend_head; m != NULL; m = n) {
        n = m->next;
        free(m);
    }
    for (m = st->early_head; m != NULL; m = n) {
        n = m->next;
        free(m);
    }
    s->early_bytes -= st->early_bytes < s->early_bytes ? st->early_bytes : s->early_bytes;
    /* pending bytes are accounted toward whichever side is v2 */
    if (st->pend_bytes) {
        to = (s->conn[ROLE_HOST] && s->conn[ROLE_HOST]->version == EGRESS_PROTO_V2)
                 ? ROLE_HOST
                 : ROLE_CLIENT;
        s->pend_bytes[to] -=
            st->pend_bytes < s->pend_bytes[to] ? st->pend_bytes : s->pend_bytes[to];
    }
    egress_idmap_forget(&s->v1ids, st->id);
    free(st);
}

void stream_remove(session_t *s, uint32_t id)
{
    stream_t **pp = &s->streams[stream_bucket(id)], *st;

    for (; (st = *pp) != NULL; pp = &st->next) {
        if (st->id == id) {
            *pp = st->next;
            s->nstreams--;
            stream_free(s, st);
            return;
        }
    }
}

void stream_clear_all(session_t *s)
{
    unsigned b;
    stream_t *st, *n;

    for (b = 0; b < STREAM_BUCKETS; b++) {
        for (st = s->streams[b]; st != NULL; st = n) {
            n = st->next;
            stream_free(s, st);
        }
        s->streams[b] = NULL;
    }
    s->nstreams = 0;
    s->pend_bytes[0] = s->pend_bytes[1] = 0;
    s->early_bytes = 0;
    egress_idmap_clear(&s->v1ids);
}
