/*
 * egress_allow.c: allowlist patterns, built-in profiles and matching.
 *
 * Patterns are parsed once into normalized form so that matching is a
 * linear scan of length checks and memcmp, with no allocation.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress_allow.h"
#include "egress_host.h"
#include "egress_psl.h"

/* "*." + name + ":65535", or "[" v6 "]:65535", plus NUL. */
#define PATTERN_TEXT_MAX  (EGRESS_HOST_BUF + 16)
#define PATTERN_INPUT_MAX 300
#define EXCERPT_BUF       72

typedef struct {
    char host[EGRESS_HOST_BUF]; /* normalized; IPv6 without brackets */
    size_t host_len;
    uint16_t port; /* 0: the list's default ports */
    uint8_t kind;  /* egress_host_kind_e */
    uint8_t wildcard;
    char text[PATTERN_TEXT_MAX];
} allow_pattern_t;

struct egress_allow_s {
    allow_pattern_t *pats;
    size_t n;
    size_t cap;
    uint16_t ports[EGRESS_ALLOW_MAX_PORTS];
    size_t nports;
    const egress_psl_t *psl; /* NULL: the built-in public suffix rule */
};

static const char *const profile_discord[] = {
    "discord.com",
    "*.discord.com",
    "discordcdn.com",
    "*.discordcdn.com",
    "hcaptcha.com",
    "*.hcaptcha.com",
    NULL,
};
static const char *const profile_slack[] = {
    "slack.com", "*.slack.com", "slack-edge.com", "*.slack-edge.com", NULL,
};
static const char *const profile_names[] = {"discord", "slack", NULL};

const char *const *egress_profile_names(void)
{
    return profile_names;
}

const char *const *egress_profile_patterns(const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    if (strcmp(name, "discord") == 0) {
        return profile_discord;
    }
    if (strcmp(name, "slack") == 0) {
        return profile_slack;
    }
    return NULL;
}

egress_allow_t *egress_allow_new(void)
{
    egress_allow_t *al = calloc(1, sizeof(*al));

    if (al == NULL) {
        return NULL;
    }
    al->ports[0] = 80;
    al->ports[1] = 443;
    al->nports = 2;
    al->psl = egress_psl_system();
    return al;
}

void egress_allow_set_psl(egress_allow_t *al, const egress_psl_t *psl)
{
    al->psl = psl;
}

void egress_allow_free(egress_allow_t *al)
{
    if (al == NULL) {
        return;
    }
    free(al->pats);
    free(al);
}

static int pattern_fail(egress_error_t *err, const char *pattern, size_t len, const char *why)
{
    char ex[EXCERPT_BUF];

    egress_error_excerpt(ex, sizeof(ex), pattern, len);
    return egress_error_set(err, EGRESS_ERR_PATTERN, "invalid allowlist pattern \"%s\": %s", ex,
                            why);
}

static void format_u16(char *out, unsigned v)
{
    char tmp[6];
    size_t n = 0, i;

    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    out[n] = '\0';
}

static int pattern_parse(allow_pattern_t *p, const char *pat, size_t len, egress_error_t *err)
{
    const char *host = pat, *why = NULL, *colon = NULL;
    size_t hlen, i;
    int kind;

    memset(p, 0, sizeof(*p));
    if (len == 0) {
        return pattern_fail(err, pat, len, "empty pattern");
    }
    if (len > PATTERN_INPUT_MAX) {
        return pattern_fail(err, pat, len, "too long");
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) pat[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
            return pattern_fail(err, pat, len, "contains white space");
        }
        if (c < 0x20 || c >= 0x7f) {
            return pattern_fail(err, pat, len, "invalid character");
        }
    }
    if (len >= 2 && pat[0] == '*' && pat[1] == '.') {
        p->wildcard = 1;
        host += 2;
    }
    hlen = len - (size_t) (host - pat);
    if (memchr(host, '*', hlen) != NULL) {
        return pattern_fail(err, pat, len, "'*' is only allowed as a leading \"*.\"");
    }
    if (hlen == 0) {
        return pattern_fail(err, pat, len, "no name after \"*.\"");
    }
    if (host[0] == '[') {
        const char *rb = memchr(host, ']', hlen);
        if (rb == NULL) {
            return pattern_fail(err, pat, len, "unterminated '['");
        }
        if ((size_t) (rb - host) + 1 < hlen) {
            if (rb[1] != ':') {
                return pattern_fail(err, pat, len, "junk after ']'");
            }
            colon = rb + 1;
        }
    } else {
        colon = memchr(host, ':', hlen);
        if (colon != NULL &&
            memchr(colon + 1, ':', hlen - (size_t) (colon - host) - 1) != NULL) {
            /* Several colons: a bare IPv6 literal, which cannot carry a port. */
            colon = NULL;
        }
    }
    if (colon != NULL) {
        if (egress_parse_port(colon + 1, hlen - (size_t) (colon - host) - 1, &p->port) < 0) {
            return pattern_fail(err, pat, len, "port must be an integer 1..65535");
        }
        hlen = (size_t) (colon - host);
        if (hlen == 0) {
            return pattern_fail(err, pat, len, "empty host");
        }
    }
    kind = egress_host_normalize_reason(p->host, host, hlen, &why);
    if (kind < 0) {
        return pattern_fail(err, pat, len, why);
    }
    if (p->wildcard && kind != EGRESS_HOST_NAME) {
        return pattern_fail(err, pat, len, "a wildcard cannot apply to an IP address");
    }
    p->kind = (uint8_t) kind;
    p->host_len = strlen(p->host);

    /* Canonical text: what egress_allow_pattern() shows and what dedup compares. */
    i = 0;
    if (p->wildcard) {
        memcpy(p->text, "*.", 2);
        i = 2;
    } else if (kind == EGRESS_HOST_IPV6) {
        p->text[i++] = '[';
    }
    memcpy(p->text + i, p->host, p->host_len);
    i += p->host_len;
    if (kind == EGRESS_HOST_IPV6) {
        p->text[i++] = ']';
    }
    p->text[i] = '\0';
    if (p->port != 0) {
        p->text[i++] = ':';
        format_u16(p->text + i, p->port);
    }
    return 0;
}

/* "*.com" would allow every name anyone can register: refuse it. */
static int wildcard_check(const egress_allow_t *al, const allow_pattern_t *p,
                          const char *pattern, size_t len, egress_error_t *err)
{
    char rule[EGRESS_PSL_RULE_BUF], ex[EXCERPT_BUF];
    int r;

    if (!p->wildcard) {
        return 0;
    }
    r = egress_psl_check(al->psl, p->host, rule);
    if (r == EGRESS_PSL_OK) {
        return 0;
    }
    egress_error_excerpt(ex, sizeof(ex), pattern, len);
    if (r == EGRESS_PSL_BELOW) {
        return egress_error_set(err, EGRESS_ERR_PATTERN,
                                "invalid allowlist pattern \"%s\": the wildcard covers the "
                                "public suffix \"%.48s\"",
                                ex, rule);
    }
    if (al->psl != NULL) {
        return egress_error_set(err, EGRESS_ERR_PATTERN,
                                "invalid allowlist pattern \"%s\": the wildcard covers the "
                                "whole public suffix \"%.48s\"",
                                ex, p->host);
    }
    return egress_error_set(err, EGRESS_ERR_PATTERN,
                            "invalid allowlist pattern \"%s\": \"%.48s\" looks like a public "
                            "suffix (built-in rule; install publicsuffix for the exact list)",
                            ex, p->host);
}

int egress_allow_add(egress_allow_t *al, const char *pattern, size_t len, egress_error_t *err)
{
    allow_pattern_t p;
    size_t i;

    if (pattern_parse(&p, pattern, len, err) < 0 ||
        wildcard_check(al, &p, pattern, len, err) < 0) {
        return -1;
    }
    for (i = 0; i < al->n; i++) {
        if (strcmp(al->pats[i].text, p.text) == 0) {
            return 0;
        }
    }
    if (al->n == EGRESS_ALLOW_MAX_PATTERNS) {
        return egress_error_set(err, EGRESS_ERR_PATTERN,
                                "too many allowlist patterns (at most %d)",
                                EGRESS_ALLOW_MAX_PATTERNS);
    }
    if (al->n == al->cap) {
        size_t ncap = al->cap ? al->cap * 2 : 16;
        allow_pattern_t *np = realloc(al->pats, ncap * sizeof(*np));
        if (np == NULL) {
            return egress_error_set(err, EGRESS_ERR_SYSTEM, "out of memory");
        }
        al->pats = np;
        al->cap = ncap;
    }
    al->pats[al->n++] = p;
    return 0;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int egress_list_next(const char **cursor, const char **item, size_t *len)
{
    const char *s = *cursor, *end, *b, *e;

    if (s == NULL) {
        return 0;
    }
    end = strchr(s, ',');
    e = end != NULL ? end : s + strlen(s);
    b = s;
    while (b < e && is_blank(*b)) {
        b++;
    }
    while (e > b && is_blank(e[-1])) {
        e--;
    }
    *item = b;
    *len = (size_t) (e - b);
    *cursor = end != NULL ? end + 1 : NULL;
    return 1;
}

int egress_allow_add_list(egress_allow_t *al, const char *list, egress_error_t *err)
{
    size_t before = al->n, len;
    const char *cur = list, *item;

    /* All or nothing: a bad item leaves the list as it was. */
    while (egress_list_next(&cur, &item, &len)) {
        if (len == 0) {
            al->n = before;
            return egress_error_set(err, EGRESS_ERR_PATTERN,
                                    "invalid allowlist: empty item in comma-separated list");
        }
        if (egress_allow_add(al, item, len, err) < 0) {
            al->n = before;
            return -1;
        }
    }
    return 0;
}

int egress_allow_add_lines(egress_allow_t *al, const char *text, size_t len, const char *name,
                           egress_error_t *err)
{
    size_t before = al->n, off = 0, line = 0;

    while (off < len) {
        const char *p = text + off, *nl = memchr(p, '\n', len - off), *hash;
        size_t n = nl != NULL ? (size_t) (nl - p) : len - off;
        egress_error_t e;

        off += n + (nl != NULL);
        line++;
        /* a comment runs to the end of the line; blanks around a pattern are ignored */
        hash = memchr(p, '#', n);
        if (hash != NULL) {
            n = (size_t) (hash - p);
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r')) {
            n--;
        }
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        if (n == 0) {
            continue;
        }
        if (memchr(p, '\0', n) != NULL) {
            e.code = EGRESS_ERR_PATTERN;
            snprintf(e.message, sizeof(e.message), "a NUL byte in the line");
        } else if (egress_allow_add(al, p, n, &e) == 0) {
            continue;
        }
        al->n = before;
        return egress_error_set(err, EGRESS_ERR_PATTERN, "%s line %zu: %s", name, line,
                                e.message);
    }
    return 0;
}

int egress_allow_add_profile(egress_allow_t *al, const char *name, egress_error_t *err)
{
    const char *const *pats = egress_profile_patterns(name);
    size_t before = al->n;

    if (pats == NULL) {
        char ex[EXCERPT_BUF];
        egress_error_excerpt(ex, sizeof(ex), name != NULL ? name : "",
                             name != NULL ? strlen(name) : 0);
        return egress_error_set(err, EGRESS_ERR_PROFILE,
                                "unknown profile \"%s\" (known: discord, slack)", ex);
    }
    for (; *pats != NULL; pats++) {
        if (egress_allow_add(al, *pats, strlen(*pats), err) < 0) {
            al->n = before;
            return -1;
        }
    }
    return 0;
}

int egress_allow_set_ports(egress_allow_t *al, const uint16_t *ports, size_t n,
                           egress_error_t *err)
{
    uint16_t tmp[EGRESS_ALLOW_MAX_PORTS];
    size_t i, j, m = 0;

    if (n == 0 || n > EGRESS_ALLOW_MAX_PORTS) {
        return egress_error_set(err, EGRESS_ERR_PORT_RANGE,
                                "default port set must have 1..%d ports",
                                EGRESS_ALLOW_MAX_PORTS);
    }
    for (i = 0; i < n; i++) {
        if (ports[i] == 0) {
            return egress_error_set(err, EGRESS_ERR_PORT_RANGE,
                                    "default port set: port must be 1..65535");
        }
        for (j = 0; j < m && tmp[j] != ports[i]; j++) {
        }
        if (j == m) {
            tmp[m++] = ports[i];
        }
    }
    memcpy(al->ports, tmp, m * sizeof(tmp[0]));
    al->nports = m;
    return 0;
}

int egress_allow_set_ports_list(egress_allow_t *al, const char *list, egress_error_t *err)
{
    uint16_t ports[EGRESS_ALLOW_MAX_PORTS];
    size_t n = 0, len;
    const char *cur = list, *item;
    char ex[EXCERPT_BUF];

    while (egress_list_next(&cur, &item, &len)) {
        if (n == EGRESS_ALLOW_MAX_PORTS) {
            return egress_error_set(err, EGRESS_ERR_PORT_RANGE,
                                    "port list has more than %d ports", EGRESS_ALLOW_MAX_PORTS);
        }
        if (egress_parse_port(item, len, &ports[n]) < 0) {
            egress_error_excerpt(ex, sizeof(ex), item, len);
            return egress_error_set(err, EGRESS_ERR_PORT_RANGE,
                                    "invalid port \"%s\" in port list: must be 1..65535", ex);
        }
        n++;
    }
    return egress_allow_set_ports(al, ports, n, err);
}

/* port 0: any port, listed or default (egress_allow_match_host()). */
static int allow_match(const egress_allow_t *al, const char *host, size_t len, uint16_t port)
{
    char h[EGRESS_HOST_BUF];
    size_t hlen, i, j;
    int kind, default_ok = 0;

    if (al == NULL) {
        return 0;
    }
    kind = egress_host_normalize_reason(h, host, len, NULL);
    if (kind < 0) {
        return 0;
    }
    hlen = strlen(h);
    for (j = 0; j < al->nports; j++) {
        if (port == 0 || al->ports[j] == port) {
            default_ok = 1;
            break;
        }
    }
    for (i = 0; i < al->n; i++) {
        const allow_pattern_t *p = &al->pats[i];
        if (p->kind != kind || (p->port != 0 ? port != 0 && p->port != port : !default_ok)) {
            continue;
        }
        if (hlen == p->host_len) {
            if (memcmp(h, p->host, hlen) == 0) {
                return 1;
            }
        } else if (p->wildcard && hlen > p->host_len) {
            /* Suffix on a label boundary: "*.example.com" never matches "badexample.com". */
            size_t off = hlen - p->host_len;
            if (h[off - 1] == '.' && memcmp(h + off, p->host, p->host_len) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

int egress_allow_match(const egress_allow_t *al, const char *host, size_t len, uint16_t port)
{
    return port != 0 && allow_match(al, host, len, port);
}

int egress_allow_match_host(const egress_allow_t *al, const char *host, size_t len)
{
    return allow_match(al, host, len, 0);
}

size_t egress_allow_count(const egress_allow_t *al)
{
    return al != NULL ? al->n : 0;
}

const char *egress_allow_pattern(const egress_allow_t *al, size_t i)
{
    if (al == NULL || i >= al->n) {
        return NULL;
    }
    return al->pats[i].text;
}

size_t egress_allow_ports_format(const egress_allow_t *al, char *buf, size_t cap)
{
    size_t total = 0, i;
    char num[8];

    for (i = 0; i < al->nports; i++) {
        size_t k, nlen;
        format_u16(num, al->ports[i]);
        nlen = strlen(num);
        for (k = 0; k < nlen + (i > 0); k++) {
            char c = (i > 0) ? (k == 0 ? ',' : num[k - 1]) : num[k];
            if (cap > 0 && total + k < cap - 1) {
                buf[total + k] = c;
            }
        }
        total += nlen + (i > 0);
    }
    if (cap > 0) {
        buf[total < cap - 1 ? total : cap - 1] = '\0';
    }
    return total;
}
