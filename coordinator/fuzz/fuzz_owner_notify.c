/*
 * fuzz_owner_notify.c: libFuzzer target for the ownership notification
 * parser (owner_notify.c): payloads come from any instance on the database.
 * Checked: an accepted payload re-formats to exactly the input, and every
 * field is within its bounds.
 */

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "owner_notify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    owner_notify_t n;
    char again[256];
    int len;

    if (owner_notify_parse((const char *) data, size, &n) < 0) {
        return 0;
    }
    if (n.epoch <= 0 || strlen(n.instance) == 0 || strlen(n.instance) >= sizeof(n.instance) ||
        strlen(n.lease) == 0 || strlen(n.lease) >= sizeof(n.lease)) {
        abort();
    }
    len = snprintf(again, sizeof(again), "%s %" PRId64 " %s %s", n.instance, n.epoch, n.lease,
                   n.version);
    if (len < 0 || (size_t) len != size || memcmp(again, data, size) != 0) {
        abort();
    }
    return 0;
}
