/*
 * egress_psl.h: the Public Suffix List, so that the allowlist can refuse a
 * wildcard that covers a whole registry ("*.com", "*.co.uk", "*.github.io").
 *
 * The list is Debian's publicsuffix package (EGRESS_PSL_PATH), read once per
 * process; EGRESS_PUBLIC_SUFFIX_LIST in the environment names another file.
 * Without a list, a built-in rule stands in (see egress_psl_check()).
 */

#ifndef EGRESS_PSL_H
#define EGRESS_PSL_H

#include <stddef.h>

#include "egress_error.h"

#define EGRESS_PSL_PATH "/usr/share/publicsuffix/public_suffix_list.dat"

/* Larger than any rule we keep (a DNS name plus "*.") and NUL. */
#define EGRESS_PSL_RULE_BUF 260

typedef struct egress_psl_s egress_psl_t;

/*
 * Parses list text in the publicsuffix.org format: one rule per line, read up
 * to the first white space; "//" comments; "*." and "!" rules; Unicode rules
 * are converted to their xn-- (punycode) form. Lines that are not valid
 * rules are skipped. Returns NULL with err when no rule was found or memory
 * ran out. source names the list in messages (copied).
 */
egress_psl_t *egress_psl_parse(const char *text, size_t len, const char *source,
                               egress_error_t *err);

/* Reads and parses a list file; NULL with err when it cannot be read or parsed. */
egress_psl_t *egress_psl_load(const char *path, egress_error_t *err);

void egress_psl_free(egress_psl_t *psl);

/* Number of rules kept, and the source given to egress_psl_parse(). */
size_t egress_psl_count(const egress_psl_t *psl);
const char *egress_psl_source(const egress_psl_t *psl);

/*
 * The process-wide list: $EGRESS_PUBLIC_SUFFIX_LIST, else EGRESS_PSL_PATH,
 * loaded on the first call (thread-safe) and kept until exit. NULL when the
 * file is absent or unusable.
 */
const egress_psl_t *egress_psl_system(void);

enum {
    EGRESS_PSL_OK = 0,    /* "*.name" covers no public suffix */
    EGRESS_PSL_IS_SUFFIX, /* name itself is a public suffix */
    EGRESS_PSL_BELOW      /* a public suffix lies below name (written to rule) */
};

/*
 * Decides whether the wildcard "*.name" would cover a whole public suffix.
 * name is a normalized DNS name (lower case, no trailing dot). With a list,
 * name is refused when it is a public suffix by the list's algorithm
 * (including the implicit "*" rule: every single label is one) or when a
 * rule of the list lies below it ("*.amazonaws.com" covers s3.amazonaws.com).
 * With psl NULL, the built-in rule refuses a single label, and two labels
 * whose last is two letters (a country code) and whose first has at most
 * three characters (co.uk, com.au, ac.jp, ...). Either way the reserved
 * special-use names localhost, test, example and invalid (RFC 2606, 6761)
 * are not public suffixes. Returns EGRESS_PSL_*; for EGRESS_PSL_BELOW the
 * rule found is written to rule (EGRESS_PSL_RULE_BUF bytes).
 */
int egress_psl_check(const egress_psl_t *psl, const char *name, char *rule);

#endif /* EGRESS_PSL_H */
