/*
 * owner_notify.h: the payload of an ownership notification (owner.c), which
 * PostgreSQL delivers from whichever instance sent it: "INSTANCE EPOCH
 * LEASE VERSION", single spaces, nothing else. INSTANCE is an --instance
 * name, EPOCH a positive decimal, LEASE a lease id, VERSION the row version
 * (xmin, 1-10 digits) of the ownership record the sender saw.
 */

#ifndef OWNER_NOTIFY_H
#define OWNER_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#define OWNER_NOTIFY_NAME_MAX  64 /* COORD_INSTANCE_MAX: 63 and the NUL */
#define OWNER_NOTIFY_LEASE_MAX 65 /* COORD_ID_MAX + 1 */
#define OWNER_NOTIFY_VER_MAX   11 /* a 32-bit transaction id in decimal */

typedef struct {
    char instance[OWNER_NOTIFY_NAME_MAX];
    int64_t epoch;
    char lease[OWNER_NOTIFY_LEASE_MAX];
    char version[OWNER_NOTIFY_VER_MAX];
} owner_notify_t;

/* 0 and out filled, or -1 when the payload is not exactly that. */
int owner_notify_parse(const char *payload, size_t len, owner_notify_t *out);

#endif /* OWNER_NOTIFY_H */
