/*
 * egress_psl.c: the Public Suffix List as a hash set of names, and the check
 * that keeps an allowlist wildcard from covering a whole public suffix.
 *
 * Every rule is stored under its name ("co.uk"; "ck" for "*.ck"; "www.ck"
 * for "!www.ck") with flags; every name above a rule is stored too, marked
 * as having a public suffix below it and remembering one such rule for the
 * error message.
 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress_psl.h"

#define PSL_FILE_MAX  (16u << 20)
#define PSL_LABEL_MAX 63
#define PSL_NAME_MAX  253

enum {
    F_NORMAL = 1, /* "co.uk": the name is a public suffix */
    F_WILD = 2,   /* "*.ck": every child of the name is one */
    F_EXCEPT = 4, /* "!www.ck": the name is not one after all */
    F_BELOW = 8   /* some rule lies strictly below the name */
};

typedef struct {
    uint32_t off; /* key in names; 0 len marks a free slot */
    uint16_t len;
    uint8_t flags;
    uint8_t ex_wild;
    uint32_t ex_off; /* F_BELOW: one rule below, as a key in names */
    uint16_t ex_len;
} psl_entry_t;

struct egress_psl_s {
    char *names;
    size_t names_len, names_cap;
    psl_entry_t *tab;
    size_t cap, used; /* cap is a power of two */
    size_t nrules;
    char *source;
};

static uint32_t psl_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ (uint8_t) s[i]) * 16777619u;
    }
    return h;
}

static psl_entry_t *psl_find(const egress_psl_t *psl, const char *key, size_t len)
{
    size_t i;

    if (psl->cap == 0) {
        return NULL;
    }
    for (i = psl_hash(key, len) & (psl->cap - 1);; i = (i + 1) & (psl->cap - 1)) {
        psl_entry_t *e = &psl->tab[i];
        if (e->len == 0) {
            return NULL;
        }
        if (e->len == len && memcmp(psl->names + e->off, key, len) == 0) {
            return e;
        }
    }
}

static int psl_grow(egress_psl_t *psl)
{
    size_t ncap = psl->cap ? psl->cap * 2 : 1024, i, j;
    psl_entry_t *nt = calloc(ncap, sizeof(*nt));

    if (nt == NULL) {
        return -1;
    }
    for (i = 0; i < psl->cap; i++) {
        const psl_entry_t *e = &psl->tab[i];
        if (e->len == 0) {
            continue;
        }
        for (j = psl_hash(psl->names + e->off, e->len) & (ncap - 1); nt[j].len != 0;
             j = (j + 1) & (ncap - 1)) {
        }
        nt[j] = *e;
    }
    free(psl->tab);
    psl->tab = nt;
    psl->cap = ncap;
    return 0;
}

/* Finds or adds key; the pointer is valid until the next insert. NULL: no memory. */
static psl_entry_t *psl_insert(egress_psl_t *psl, const char *key, size_t len)
{
    psl_entry_t *e = psl_find(psl, key, len);
    size_t i;

    if (e != NULL) {
        return e;
    }
    if ((psl->used + 1) * 2 > psl->cap && psl_grow(psl) < 0) {
        return NULL;
    }
    if (psl->names_len + len > psl->names_cap) {
        size_t ncap = psl->names_cap ? psl->names_cap * 2 : 65536;
        char *nn;
        while (ncap < psl->names_len + len) {
            ncap *= 2;
        }
        if ((nn = realloc(psl->names, ncap)) == NULL) {
            return NULL;
        }
        psl->names = nn;
        psl->names_cap = ncap;
    }
    for (i = psl_hash(key, len) & (psl->cap - 1); psl->tab[i].len != 0;
         i = (i + 1) & (psl->cap - 1)) {
    }
    e = &psl->tab[i];
    memset(e, 0, sizeof(*e));
    e->off = (uint32_t) psl->names_len;
    e->len = (uint16_t) len;
    memcpy(psl->names + psl->names_len, key, len);
    psl->names_len += len;
    psl->used++;
    return e;
}

/* ---- rule text: UTF-8 labels to punycode (RFC 3492) ----------------------- */

static char puny_digit(uint32_t d)
{
    return (char) (d < 26 ? 'a' + d : '0' + (d - 26));
}

static uint32_t puny_adapt(uint32_t delta, uint32_t npoints, int first)
{
    uint32_t k = 0;

    delta = first ? delta / 700 : delta / 2;
    delta += delta / npoints;
    while (delta > ((36 - 1) * 26) / 2) {
        delta /= 36 - 1;
        k += 36;
    }
    return k + (36 * delta) / (delta + 38);
}

/* Encodes code points as "xn--..." into out; returns its length or -1. */
static int puny_encode(const uint32_t *in, size_t n, char *out, size_t cap)
{
    uint32_t cp = 128, delta = 0, bias = 72, h, b = 0, m, q, k, t;
    size_t o = 4, j;

    if (cap < 5) {
        return -1;
    }
    memcpy(out, "xn--", 4);
    for (j = 0; j < n; j++) {
        if (in[j] < 0x80) {
            if (o >= cap) {
                return -1;
            }
            out[o++] = (char) in[j];
            b++;
        }
    }
    if (b > 0) {
        if (o >= cap) {
            return -1;
        }
        out[o++] = '-';
    }
    for (h = b; h < n;) {
        m = UINT32_MAX;
        for (j = 0; j < n; j++) {
            if (in[j] >= cp && in[j] < m) {
                m = in[j];
            }
        }
        if (m - cp > (UINT32_MAX - delta) / (h + 1)) {
            return -1;
        }
        delta += (m - cp) * (h + 1);
        cp = m;
        for (j = 0; j < n; j++) {
            if (in[j] < cp && ++delta == 0) {
                return -1;
            }
            if (in[j] != cp) {
                continue;
            }
            for (q = delta, k = 36;; k += 36) {
                t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
                if (q < t) {
                    break;
                }
                if (o >= cap) {
                    return -1;
                }
                out[o++] = puny_digit(t + (q - t) % (36 - t));
                q = (q - t) / (36 - t);
            }
            if (o >= cap) {
                return -1;
            }
            out[o++] = puny_digit(q);
            bias = puny_adapt(delta, h + 1, h == b);
            delta = 0;
            h++;
        }
        delta++;
        cp++;
    }
    return (int) o;
}

/* Decodes UTF-8 into code points; -1 on malformed input or more than cap. */
static int utf8_decode(const unsigned char *s, size_t len, uint32_t *out, size_t cap)
{
    size_t i = 0, n = 0, more, k;
    uint32_t c, min;

    while (i < len) {
        c = s[i++];
        if (c < 0x80) {
            more = 0, min = 0;
        } else if ((c & 0xe0) == 0xc0) {
            c &= 0x1f, more = 1, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            c &= 0x0f, more = 2, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            c &= 0x07, more = 3, min = 0x10000;
        } else {
            return -1;
        }
        if (more > len - i) {
            return -1;
        }
        for (k = 0; k < more; k++) {
            if ((s[i] & 0xc0) != 0x80) {
                return -1;
            }
            c = (c << 6) | (s[i++] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) || n == cap) {
            return -1;
        }
        out[n++] = c;
    }
    return (int) n;
}

static int is_ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Rewrites one rule name (no "*." or "!") in ASCII lower case; -1 when it is not a name. */
static int rule_name(const char *s, size_t len, char *out, size_t cap)
{
    uint32_t cps[PSL_LABEL_MAX + 1];
    size_t i = 0, o = 0, start, k;

    while (i <= len) {
        int ascii = 1, n;
        start = i;
        while (i < len && s[i] != '.') {
            if ((unsigned char) s[i] >= 0x80) {
                ascii = 0;
            }
            i++;
        }
        if (i == start || o + (i - start) + 1 > cap) {
            return -1;
        }
        if (ascii) {
            for (k = start; k < i; k++) {
                char c = s[k];
                c = (char) ((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
                if (!is_ldh(c)) {
                    return -1;
                }
                out[o++] = c;
            }
            if (i - start > PSL_LABEL_MAX) {
                return -1;
            }
        } else {
            int cn = utf8_decode((const unsigned char *) s + start, i - start, cps,
                                 sizeof(cps) / sizeof(cps[0]));
            if (cn < 0) {
                return -1;
            }
            for (k = 0; k < (size_t) cn; k++) {
                if (cps[k] >= 'A' && cps[k] <= 'Z') {
                    cps[k] += 'a' - 'A';
                } else if (cps[k] < 0x80 && !is_ldh((char) cps[k])) {
                    return -1;
                }
            }
            n = puny_encode(cps, (size_t) cn, out + o, cap - o);
            if (n < 0 || n > PSL_LABEL_MAX) {
                return -1;
            }
            o += (size_t) n;
        }
        if (o + 1 >= cap) {
            return -1;
        }
        if (i == len) {
            break;
        }
        out[o++] = '.';
        i++;
    }
    if (o > PSL_NAME_MAX) {
        return -1;
    }
    out[o] = '\0';
    return (int) o;
}

/* Marks every name from `from` up to the top label as having rule (key, wild) below it. */
static int mark_below(egress_psl_t *psl, const char *from, size_t len, uint32_t ex_off,
                      uint16_t ex_len, int wild)
{
    const char *p = from, *end = from + len;

    for (;;) {
        psl_entry_t *e = psl_insert(psl, p, (size_t) (end - p));
        const char *dot;
        if (e == NULL) {
            return -1;
        }
        if (!(e->flags & F_BELOW)) {
            e->flags |= F_BELOW;
            e->ex_off = ex_off;
            e->ex_len = ex_len;
            e->ex_wild = (uint8_t) wild;
        }
        dot = memchr(p, '.', (size_t) (end - p));
        if (dot == NULL) {
            return 0;
        }
        p = dot + 1;
    }
}

/* Adds one rule line (already cut at white space). 0, or -1 when out of memory. */
static int psl_add_line(egress_psl_t *psl, const char *s, size_t len)
{
    char name[EGRESS_PSL_RULE_BUF];
    psl_entry_t *e;
    const char *dot;
    uint32_t off;
    uint16_t nlen;
    int flag = F_NORMAL, n;

    if (len >= 1 && s[0] == '!') {
        flag = F_EXCEPT;
        s++, len--;
    } else if (len >= 2 && s[0] == '*' && s[1] == '.') {
        flag = F_WILD;
        s += 2, len -= 2;
    }
    n = rule_name(s, len, name, sizeof(name));
    if (n < 0) {
        return 0; /* not a rule we understand: skip it, like other PSL readers */
    }
    if ((e = psl_insert(psl, name, (size_t) n)) == NULL) {
        return -1;
    }
    e->flags |= (uint8_t) flag;
    psl->nrules++;
    off = e->off;
    nlen = e->len;
    if (flag == F_EXCEPT) {
        return 0;
    }
    if (flag == F_WILD) {
        /* the suffixes are the children of name: name itself has them below */
        return mark_below(psl, name, (size_t) n, off, nlen, 1);
    }
    dot = memchr(name, '.', (size_t) n);
    if (dot == NULL) {
        return 0;
    }
    return mark_below(psl, dot + 1, (size_t) (name + n - dot - 1), off, nlen, 0);
}

egress_psl_t *egress_psl_parse(const char *text, size_t len, const char *source,
                               egress_error_t *err)
{
    egress_psl_t *psl = calloc(1, sizeof(*psl));
    size_t i = 0;

    if (psl == NULL || (psl->source = strdup(source ? source : "(list)")) == NULL) {
        egress_psl_free(psl);
        egress_error_set(err, EGRESS_ERR_SYSTEM, "out of memory");
        return NULL;
    }
    while (i < len) {
        size_t start = i, end;
        while (i < len && text[i] != '\n') {
            i++;
        }
        end = start;
        while (end < i && text[end] != ' ' && text[end] != '\t' && text[end] != '\r') {
            end++;
        }
        i++;
        if (end == start ||
            (end - start >= 2 && text[start] == '/' && text[start + 1] == '/')) {
            continue;
        }
        if (psl_add_line(psl, text + start, end - start) < 0) {
            egress_psl_free(psl);
            egress_error_set(err, EGRESS_ERR_SYSTEM, "out of memory");
            return NULL;
        }
    }
    if (psl->nrules == 0) {
        egress_psl_free(psl);
        egress_error_set(err, EGRESS_ERR_VALUE, "public suffix list has no rules");
        return NULL;
    }
    return psl;
}

egress_psl_t *egress_psl_load(const char *path, egress_error_t *err)
{
    FILE *f = fopen(path, "r");
    egress_psl_t *psl;
    char *buf;
    size_t n;

    if (f == NULL) {
        egress_error_set(err, EGRESS_ERR_SYSTEM, "cannot read %.120s: %s", path,
                         strerror(errno));
        return NULL;
    }
    if ((buf = malloc(PSL_FILE_MAX)) == NULL) {
        fclose(f);
        egress_error_set(err, EGRESS_ERR_SYSTEM, "out of memory");
        return NULL;
    }
    n = fread(buf, 1, PSL_FILE_MAX, f);
    if (ferror(f) || n == PSL_FILE_MAX) {
        egress_error_set(err, EGRESS_ERR_SYSTEM, "cannot read %.120s: %s", path,
                         ferror(f) ? "read error" : "larger than 16 MiB");
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    psl = egress_psl_parse(buf, n, path, err);
    free(buf);
    return psl;
}

void egress_psl_free(egress_psl_t *psl)
{
    if (psl == NULL) {
        return;
    }
    free(psl->names);
    free(psl->tab);
    free(psl->source);
    free(psl);
}

size_t egress_psl_count(const egress_psl_t *psl)
{
    return psl != NULL ? psl->nrules : 0;
}

const char *egress_psl_source(const egress_psl_t *psl)
{
    return psl != NULL ? psl->source : "built-in rule";
}

static pthread_once_t system_once = PTHREAD_ONCE_INIT;
static egress_psl_t *system_psl;

static void system_load(void)
{
    const char *path = getenv("EGRESS_PUBLIC_SUFFIX_LIST");

    system_psl = egress_psl_load(path != NULL && *path ? path : EGRESS_PSL_PATH, NULL);
}

const egress_psl_t *egress_psl_system(void)
{
    pthread_once(&system_once, system_load);
    return system_psl;
}

/* Special-use names (RFC 2606, RFC 6761) that no registry hands out. */
static int is_special_use(const char *name)
{
    static const char *const names[] = {"localhost", "test", "example", "invalid", NULL};
    size_t i;

    for (i = 0; names[i] != NULL; i++) {
        if (strcmp(name, names[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static int builtin_check(const char *name)
{
    const char *dot = strchr(name, '.');
    size_t first, last;

    if (dot == NULL) {
        return EGRESS_PSL_IS_SUFFIX;
    }
    if (strchr(dot + 1, '.') != NULL) {
        return EGRESS_PSL_OK;
    }
    first = (size_t) (dot - name);
    last = strlen(dot + 1);
    if (last == 2 && dot[1] >= 'a' && dot[1] <= 'z' && dot[2] >= 'a' && dot[2] <= 'z' &&
        first <= 3) {
        return EGRESS_PSL_IS_SUFFIX; /* co.uk, com.au, ac.jp, ... */
    }
    return EGRESS_PSL_OK;
}

int egress_psl_check(const egress_psl_t *psl, const char *name, char *rule)
{
    const psl_entry_t *e, *pe;
    const char *dot = strchr(name, '.');
    size_t len = strlen(name);

    if (dot == NULL && is_special_use(name)) {
        return EGRESS_PSL_OK;
    }
    if (psl == NULL) {
        return builtin_check(name);
    }
    e = psl_find(psl, name, len);
    if (e == NULL || !(e->flags & F_EXCEPT)) {
        if (e != NULL && (e->flags & F_NORMAL)) {
            return EGRESS_PSL_IS_SUFFIX;
        }
        if (dot == NULL) {
            return EGRESS_PSL_IS_SUFFIX; /* the implicit "*" rule */
        }
        pe = psl_find(psl, dot + 1, len - (size_t) (dot + 1 - name));
        if (pe != NULL && (pe->flags & F_WILD)) {
            return EGRESS_PSL_IS_SUFFIX;
        }
    }
    if (e != NULL && (e->flags & F_BELOW)) {
        if (rule != NULL) {
            snprintf(rule, EGRESS_PSL_RULE_BUF, "%s%.*s", e->ex_wild ? "*." : "",
                     (int) e->ex_len, psl->names + e->ex_off);
        }
        return EGRESS_PSL_BELOW;
    }
    return EGRESS_PSL_OK;
}
