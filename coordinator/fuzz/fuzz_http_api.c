/*
 * fuzz_http_api.c: libFuzzer target for the coordinator's HTTP handling after
 * lws: the framing check (Content-Length, Transfer-Encoding), routing, path
 * splitting, authentication, JSON bodies and every REST route, against a
 * real store on a temporary SQLite database (in memory: with a file each
 * input waited on the disk).
 *
 * Input: up to 8 requests separated by "\n@@\n", each
 *
 *     METHOD PATH\n
 *     Name: value\n            (Authorization, Content-Length and
 *     ...                       Transfer-Encoding count; others are ignored)
 *     \n
 *     body                     (Content-Length bytes of it are used)
 *
 * The bearer tokens egk_fuzz_admin, egk_fuzz_member (org acme) and
 * egk_fuzz_other (org evil) exist. Requests run in order as on one
 * keep-alive connection: a refused framing closes it, the rest is skipped.
 * The database persists across inputs and is recreated every 256 of them
 * (keeps it small: GET /v1/leases lists them all), so a crash may need the
 * inputs before it: rerun with the work corpus if one input alone passes.
 *
 * Checked: framing refusals are exactly the malformed cases, statuses are
 * ones the API documents (never 500: there is no database failure here),
 * every response is serialisable JSON (errors with "error" and "message"),
 * and no refusal echoes a bearer token that its body did not hold.
 */

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "egress.h"
#include "server.h"
#include "store.h"
#include "http_api.h"
#include "lease.h"

#define FUZZ_REQS_MAX   8
#define FUZZ_RESET_RUNS 256

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void __wrap_coord_log(const char *event, const char *fmt, ...);

static const struct {
    const char *token;
    const char *owner;
    const char *org;
    int admin;
} tokens[] = {
    {"egk_fuzz_admin", "alice", "acme", 1},
    {"egk_fuzz_member", "bob", "acme", 0},
    {"egk_fuzz_other", "eve", "evil", 0},
};

static unsigned long runs;
static int verbose; /* EGRESS_FUZZ_VERBOSE=1: one line per request (corpus upkeep) */

/* Linked with -Wl,--wrap=coord_log: events would flood the fuzzer's output. */
void __wrap_coord_log(const char *event, const char *fmt, ...)
{
    (void) event;
    (void) fmt;
}

static void db_open(void)
{
    char hash[EGRESS_SHA256_HEX_LEN + 1], id[32];
    size_t i;

    store_close();
    if (store_open(":memory:") < 0) {
        abort();
    }
    for (i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        egress_sha256_hex(hash, tokens[i].token, strlen(tokens[i].token));
        snprintf(id, sizeof(id), "tok_fuzz%zu", i);
        if (store_token_add(hash, id, tokens[i].owner, tokens[i].org, tokens[i].admin) < 0) {
            abort();
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int hdr = 0;

    (void) argc;
    (void) argv;
    /* Database pages from one block per connection rather than a malloc
     * each: an input whose mallocs outnumber its frees makes libFuzzer run
     * a leak check, and a growing database made that every input. */
    if (sqlite3_config(SQLITE_CONFIG_PCACHE_HDRSZ, &hdr) != SQLITE_OK ||
        sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 4096 + hdr, 1024) != SQLITE_OK) {
        abort();
    }
    verbose = getenv("EGRESS_FUZZ_VERBOSE") != NULL;
    coord_cfg.db_path = ":memory:";
    coord_cfg.ticket_ttl = 120;
    coord_cfg.queue_cap = 1 << 20;
    coord_cfg.mint_rate = 1e6; /* the ticket route, not its limit, is the target */
    coord_cfg.mint_burst = 1e6;
    coord_cfg.fail_rate = 0.5;
    coord_cfg.fail_burst = 20;
    db_open();
    return 0;
}

static int method_of(const char *m, size_t n)
{
    static const struct {
        const char *name;
        int method;
    } methods[] = {{"GET", LWSHUMETH_GET},         {"POST", LWSHUMETH_POST},
                   {"OPTIONS", LWSHUMETH_OPTIONS}, {"PUT", LWSHUMETH_PUT},
                   {"PATCH", LWSHUMETH_PATCH},     {"DELETE", LWSHUMETH_DELETE},
                   {"HEAD", LWSHUMETH_HEAD}};
    size_t i;

    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strlen(methods[i].name) == n && memcmp(methods[i].name, m, n) == 0) {
            return methods[i].method;
        }
    }
    return -1; /* lws answers unknown methods itself */
}

/* Appends a header fragment the way lws_hdr_copy() joins repeated headers;
 * sets *unreadable when the whole does not fit (lws_hdr_copy() fails). */
static void join(char *dst, size_t cap, const char *v, size_t n, int first, int *unreadable)
{
    size_t len = strlen(dst);

    if (!first && len + 1 < cap) {
        dst[len++] = ',';
    }
    if (*unreadable || n >= cap - len) {
        *unreadable = 1;
        return;
    }
    memcpy(dst + len, v, n);
    dst[len + n] = '\0';
}

static const char *line_end(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t) (end - p));

    return nl != NULL ? nl : end;
}

/* What the check must say, worked out independently: no Transfer-Encoding
 * and at most one Content-Length of decimal digits up to 64 KiB, else 400
 * (413 for a well-formed length above the limit). */
static void check_framing(const http_framing_t *f, int status, size_t len, const char *error,
                          const char *message)
{
    const char *p = f->content_length;
    unsigned long long want = 0;
    int expect = 0, digits = 0;

    if (f->transfer_encoding || f->content_length_count > 1) {
        expect = 400;
    } else if (f->content_length_count == 1) {
        for (; p != NULL && *p >= '0' && *p <= '9'; p++, digits++) {
            want = want * 10 + (unsigned long long) (*p - '0');
            if (want > COORD_BODY_MAX) {
                want = COORD_BODY_MAX + 1; /* saturate */
            }
        }
        if (p == NULL || *p != '\0' || digits == 0) {
            expect = 400;
        } else if (want > COORD_BODY_MAX) {
            expect = 413;
        }
    }
    if (status != expect) {
        abort();
    }
    if (status != 0 ? error == NULL || message == NULL : len != (size_t) want) {
        abort();
    }
}

static void check_response(int status, const api_response_t *r, const api_request_t *rq)
{
    char *text;
    size_t i;
    json_t *v;

    if (status != r->status) {
        abort();
    }
    switch (status) {
    case 200:
    case 201:
    case 400:
    case 401:
    case 403:
    case 404:
    case 405:
    case 409:
    case 410:
    case 429:
        break;
    default:
        abort();
    }
    if (r->text != NULL) {
        if (status != 200 || r->json != NULL || r->ctype == NULL) {
            abort();
        }
        return;
    }
    if (!json_is_object(r->json)) {
        abort(); /* server.c would have to answer 500 */
    }
    if (status >= 400 && (!json_is_string(json_object_get(r->json, "error")) ||
                          !json_is_string(json_object_get(r->json, "message")))) {
        abort();
    }
    text = json_dumps(r->json, JSON_COMPACT);
    if (text == NULL) {
        abort();
    }
    /* A refusal never echoes the bearer token (stored fields such as ssh
     * may hold any string, so successes are not checked). */
    for (i = 0; i < sizeof(tokens) / sizeof(tokens[0]) && status >= 400; i++) {
        if (strstr(text, tokens[i].token) != NULL &&
            (rq->body == NULL || memmem(rq->body, rq->body_len, tokens[i].token,
                                        strlen(tokens[i].token)) == NULL)) {
            abort();
        }
    }
    free(text);
    v = json_object_get(r->json, "ticket");
    if (v != NULL && (status != 201 || !json_is_string(v) ||
                      strncmp(json_string_value(v), "egt_", 4) != 0)) {
        abort();
    }
}

/* Runs one request of the input; 0 to go on, -1 when the connection is done. */
static int run_one(const char *p, const char *end)
{
    char path[256], auth[512] = "", cl[32] = "", *body;
    const char *nl, *sp, *colon, *v, *error = NULL, *message = NULL;
    http_framing_t f;
    api_request_t rq;
    api_response_t r;
    size_t n, len;
    int method, status, nauth = 0, auth_bad = 0, cl_bad = 0;

    nl = line_end(p, end);
    sp = memchr(p, ' ', (size_t) (nl - p));
    if (sp == NULL || (method = method_of(p, (size_t) (sp - p))) < 0) {
        return -1;
    }
    n = (size_t) (nl - sp - 1);
    if (n >= sizeof(path) || memchr(sp + 1, '\0', n) != NULL) {
        return -1; /* server.c refuses paths that do not fit with 414 */
    }
    memcpy(path, sp + 1, n);
    path[n] = '\0';
    path[strcspn(path, "?\r")] = '\0'; /* lws passes the path without the query */

    memset(&f, 0, sizeof(f));
    for (p = nl < end ? nl + 1 : end; p < end; p = nl + 1) {
        nl = line_end(p, end);
        if (nl == p || (nl == p + 1 && *p == '\r')) {
            p = nl < end ? nl + 1 : end;
            break;
        }
        colon = memchr(p, ':', (size_t) (nl - p));
        if (colon != NULL) {
            for (v = colon + 1; v < nl && (*v == ' ' || *v == '\t'); v++) {
            }
            n = (size_t) (nl - v);
            if (n > 0 && v[n - 1] == '\r') {
                n--;
            }
            if (memchr(v, '\0', n) != NULL) {
                n = (size_t) ((const char *) memchr(v, '\0', n) - v);
            }
            if ((size_t) (colon - p) == 13 && strncasecmp(p, "authorization", 13) == 0) {
                join(auth, sizeof(auth), v, n, nauth++ == 0, &auth_bad);
            } else if ((size_t) (colon - p) == 14 &&
                       strncasecmp(p, "content-length", 14) == 0) {
                join(cl, sizeof(cl), v, n, f.content_length_count++ == 0, &cl_bad);
            } else if ((size_t) (colon - p) == 17 &&
                       strncasecmp(p, "transfer-encoding", 17) == 0 && n > 0) {
                f.transfer_encoding = 1;
            }
        }
        if (nl == end) {
            p = end;
            break;
        }
    }
    f.content_length = f.content_length_count > 0 && !cl_bad ? cl : NULL;
    status = http_framing_check(&f, &len, &error, &message);
    check_framing(&f, status, len, error, message);
    if (verbose && status != 0) {
        fprintf(stderr, "%s -> %d (framing: %s)\n", path, status, message);
    }
    if (status != 0 || (size_t) (end - p) < len) {
        return -1; /* refused and closed, or a body that never arrives */
    }
    if (http_is_portal_path(path)) {
        return 0; /* portal.c needs the wsi; fuzz_portal_form covers its parsers */
    }
    /* The body in a buffer of its own, so that ASan sees any read past it. */
    body = len > 0 ? malloc(len) : NULL;
    if (len > 0 && body == NULL) {
        return -1;
    }
    if (len > 0) {
        memcpy(body, p, len);
    }
    memset(&rq, 0, sizeof(rq));
    rq.method = method;
    rq.path = path;
    rq.auth = nauth > 0 && !auth_bad ? auth : NULL;
    rq.body = body;
    rq.body_len = len;
    status = http_api_handle(&rq, &r);
    check_response(status, &r, &rq);
    if (verbose) {
        char *text = r.json != NULL ? json_dumps(r.json, JSON_COMPACT) : NULL;
        fprintf(stderr, "%s -> %d %.120s\n", path, status, text != NULL ? text : "(text)");
        free(text);
    }
    api_response_free(&r);
    free(body);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *) data, *end = p + size, *sep;
    int i;

    if (++runs % FUZZ_RESET_RUNS == 0) {
        db_open();
    }
    for (i = 0; i < FUZZ_REQS_MAX && p < end; i++) {
        sep = memmem(p, (size_t) (end - p), "\n@@\n", 4);
        if (run_one(p, sep != NULL ? sep : end) < 0 || sep == NULL) {
            break;
        }
        p = sep + 4;
    }
    return 0;
}
