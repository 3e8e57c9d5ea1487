/*
 * status_view.h: the operator's view in `egress status`: the destination
 * table (--destinations) and the live traffic lines (--watch).
 */

#ifndef EGRESS_STATUS_VIEW_H
#define EGRESS_STATUS_VIEW_H

#include <stdio.h>

#include <jansson.h>

#include "cli.h"

/* Prints the status document's destinations as a table, then each refused
 * one with its reason and the command that allows it. */
void status_print_destinations(FILE *out, json_t *status);

/* Prints a line per second of traffic from path (the status route) until
 * count lines were printed (count 0: until interrupted). Returns an exit code. */
int status_watch(cli_t *c, const char *path, long count);

#endif /* EGRESS_STATUS_VIEW_H */
