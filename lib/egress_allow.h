/*
 * egress_allow.h: the destination allowlist the host agent enforces.
 *
 * Pattern grammar (case-insensitive, one trailing dot ignored):
 *   example.com          exactly that name
 *   *.example.com        example.com and every name below it; refused when
 *                        it would cover a whole public suffix ("*.com",
 *                        "*.co.uk", "*.github.io": see egress_psl.h)
 *   203.0.113.7, [::1]   that IP literal only (wildcards never match an IP)
 *   any of the above followed by :PORT restricts the pattern to that port.
 * A pattern without a port allows the list's default ports: 80 and 443,
 * unless egress_allow_set_ports() replaces that set.
 */

#ifndef EGRESS_ALLOW_H
#define EGRESS_ALLOW_H

#include <stddef.h>
#include <stdint.h>

#include "egress_error.h"
#include "egress_psl.h"

#define EGRESS_ALLOW_MAX_PATTERNS 1024
#define EGRESS_ALLOW_MAX_PORTS    64

typedef struct egress_allow_s egress_allow_t;

/*
 * Returns an empty list (which allows nothing), or NULL on allocation failure.
 * Wildcards are checked against egress_psl_system() (the built-in rule when
 * that is NULL).
 */
egress_allow_t *egress_allow_new(void);
void egress_allow_free(egress_allow_t *al);

/*
 * Chooses the public suffix list later wildcards are checked against; NULL
 * selects the built-in rule. psl must outlive the list.
 */
void egress_allow_set_psl(egress_allow_t *al, const egress_psl_t *psl);

/* Adds one pattern. Returns 0, or -1 with err naming the pattern and the defect. */
int egress_allow_add(egress_allow_t *al, const char *pattern, size_t len, egress_error_t *err);

/*
 * Walks a comma-separated list (--allow, --ports): each call yields the next
 * item, blanks (space, tab) trimmed, as *item and *len (0 for an empty item)
 * and returns 1; after the last item *cursor is NULL and it returns 0. Start
 * with *cursor at the list; "" is one empty item.
 */
int egress_list_next(const char **cursor, const char **item, size_t *len);

/*
 * Adds a comma-separated list ("a.com,*.b.com"); blanks around items are
 * ignored, empty items are errors. All or nothing: on failure no item of the
 * list has been added.
 */
int egress_allow_add_list(egress_allow_t *al, const char *list, egress_error_t *err);

/*
 * Adds the patterns of an allow file's text: one pattern per line, blanks
 * around it ignored, `#` starts a comment, empty lines skipped. All or
 * nothing: on failure nothing was added and err says "NAME line N: defect".
 */
int egress_allow_add_lines(egress_allow_t *al, const char *text, size_t len, const char *name,
                           egress_error_t *err);

/* Adds the patterns of a built-in profile; unknown names fail with EGRESS_ERR_PROFILE. */
int egress_allow_add_profile(egress_allow_t *al, const char *name, egress_error_t *err);

/*
 * Replaces the default port set used by patterns without an explicit port.
 * n is 1..EGRESS_ALLOW_MAX_PORTS and no port may be 0. Returns 0 or -1.
 */
int egress_allow_set_ports(egress_allow_t *al, const uint16_t *ports, size_t n,
                           egress_error_t *err);

/* Parses "80,443,8443" (blanks around items ignored) and calls egress_allow_set_ports(). */
int egress_allow_set_ports_list(egress_allow_t *al, const char *list, egress_error_t *err);

/* Returns 1 if host:port is allowed, 0 if not (including an invalid host). */
int egress_allow_match(const egress_allow_t *al, const char *host, size_t len, uint16_t port);

/* Returns 1 if some pattern matches host on some port (to tell a refused port
 * from a refused host), 0 if not. */
int egress_allow_match_host(const egress_allow_t *al, const char *host, size_t len);

/* Number of patterns, and the i-th in normalized text form (deduplicated, in insertion order).
 */
size_t egress_allow_count(const egress_allow_t *al);
const char *egress_allow_pattern(const egress_allow_t *al, size_t i);

/*
 * Writes the default port set as "80,443" into buf (NUL-terminated, truncated
 * to cap). Returns the untruncated length.
 */
size_t egress_allow_ports_format(const egress_allow_t *al, char *buf, size_t cap);

/* Built-in profile patterns, NULL-terminated; NULL for an unknown profile. */
const char *const *egress_profile_patterns(const char *name);

/* NULL-terminated list of the built-in profile names. */
const char *const *egress_profile_names(void);

#endif /* EGRESS_ALLOW_H */
