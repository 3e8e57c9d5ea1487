/*
 * view.h: the operator's view of a live session in the status document:
 * `destinations`, `refused` and `traffic` (docs/coordinator.md).
 */

#ifndef VIEW_H
#define VIEW_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "session.h"

/* The pattern that would allow d, as `egress allow ... add` takes it. */
void view_allow_pattern(char *out, size_t cap, const dest_t *d);

/* Adds the members to the status document doc of lease_id; live may be NULL
 * (then the lists are empty). 0, or -1 when memory ran out. */
int view_status_add(json_t *doc, const char *lease_id, session_t *live, int64_t now);

#endif /* VIEW_H */
