/*
 * fuzz_destinations.c: libFuzzer target for the per-session destination
 * table and the traffic ring (destinations.c, traffic.c), which take host
 * names and error texts from agents.
 *
 * Input: lines "o HOST PORT" (open), "e IDX TEXT" (error for the IDX-th
 * open, classified), "k IDX" (open_ok), "d IDX N" (bytes), "t SECS" (clock).
 * Checked: the table never holds more than DEST_MAX entries, every entry is
 * non-empty and lower case, a stale reference changes nothing, the
 * sorted view is in use order, and reading the ring stays in bounds.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "destinations.h"
#include "traffic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dest_table_t t;
    static traffic_ring_t ring;
    static traffic_sample_t out[TRAFFIC_SECONDS];
    static dest_ref_t refs[64];
    const dest_t *sorted[DEST_MAX];
    const char *p = (const char *) data, *end = p + size;
    int64_t now = 1000;
    size_t nrefs = 0, i, n;

    memset(&t, 0, sizeof(t));
    memset(&ring, 0, sizeof(ring));
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t len = nl ? (size_t) (nl - p) : (size_t) (end - p);
        char line[512];
        const char *arg;
        size_t alen;
        unsigned long v;
        dest_ref_t r;

        /* a NUL-terminated copy: strtoul and atoi must not run off the input */
        if (len >= sizeof(line)) {
            len = sizeof(line) - 1;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p += (nl ? (size_t) (nl - p) : (size_t) (end - p)) + (nl != NULL);
        arg = len > 2 ? line + 2 : line + len;
        alen = len > 2 ? len - 2 : 0;
        v = alen ? strtoul(arg, NULL, 10) : 0;
        r = nrefs ? refs[v % nrefs] : (dest_ref_t){0, 0};
        switch (len ? line[0] : 0) {
        case 'o': {
            const char *sp = memchr(arg, ' ', alen);
            size_t hl = sp ? (size_t) (sp - arg) : alen;

            refs[nrefs++ % 64] =
                dest_open(&t, arg, hl, (uint16_t) (sp ? atoi(sp + 1) : 443), now);
            if (nrefs > 64) {
                nrefs = 64;
            }
            traffic_add(&ring, now, (uint32_t) nrefs, 0, 0);
            break;
        }
        case 'e':
            dest_refused(&t, r, dest_classify(arg, alen), now);
            break;
        case 'k':
            dest_opened(&t, r, now);
            break;
        case 'd':
            dest_bytes(&t, r, (int) (v & 1), v, now);
            traffic_add(&ring, now, (uint32_t) nrefs, v, v / 2);
            break;
        case 't':
            now += (int64_t) (v % 5000) - 100;
            break;
        default:
            break;
        }
    }
    if (t.n > DEST_MAX) {
        abort();
    }
    n = dest_sorted(&t, sorted);
    if (n != t.n) {
        abort();
    }
    for (i = 0; i < n; i++) {
        const char *h = sorted[i]->host;
        size_t hl = strlen(h);

        if (hl == 0 || hl >= DEST_HOST_MAX || strpbrk(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")) {
            abort();
        }
        if (i > 0 && sorted[i - 1]->seq < sorted[i]->seq) {
            abort();
        }
        (void) dest_reason_name(sorted[i]->reason);
        (void) dest_reason_text(sorted[i]->reason);
    }
    traffic_read(&ring, now, TRAFFIC_SECONDS, out);
    return 0;
}
