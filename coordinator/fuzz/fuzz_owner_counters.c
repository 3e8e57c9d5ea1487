/*
 * fuzz_owner_counters.c: libFuzzer target for the live counters another
 * instance publishes through the database (owner_counters.c). Checked: an
 * accepted entry is within its bounds, packs and parses back to the same
 * counters, and goes into a status document.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "owner_counters.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fuzz build links no util.c: a stand-in with the same contract. */
void coord_time_format(char *out, size_t cap, int64_t t)
{
    (void) t;
    if (cap > 0) {
        out[0] = '\0';
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    owner_counters_t c, again;
    json_t *j, *doc;
    char *text;

    if (owner_counters_parse((const char *) data, size, &c) < 0) {
        return 0;
    }
    if (c.session_id[0] == '\0' || strlen(c.session_id) >= sizeof(c.session_id) ||
        c.version[0] < 0 || c.version[0] > 2 || c.version[1] < 0 || c.version[1] > 2 ||
        c.since[0] < 0 || c.since[1] < 0) {
        abort();
    }
    j = owner_counters_pack(&c);
    text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        abort();
    }
    if (owner_counters_parse(text, strlen(text), &again) < 0 ||
        memcmp(&c, &again, sizeof(c)) != 0) {
        abort();
    }
    free(text);
    doc = json_object();
    if (doc == NULL || owner_counters_status(doc, &c) < 0) {
        abort();
    }
    json_decref(doc);
    return 0;
}
