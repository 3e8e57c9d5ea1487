/*
 * egress_state.h: the resume state file of the agent (--daemon) and of the
 * nginx module (egress_bridge_state_file): one format, `key = value` lines.
 *
 *   session = <session ID>          the agent's session, for a new ticket
 *   resume = <resume secret>        from the coordinator's last hello
 *   ticket_sha256 = <64 hex digits> the module's spent ticket
 *   ended = <404|410|4003|4004>     the module saw the lease or session end
 *
 * Blank lines and lines starting with '#' are skipped, unknown keys are
 * ignored, an empty value means "absent". A file in the module's former
 * JSON form ({"resume": ..., "ticket_sha256": ..., "ended": ...}) is still
 * read. The file is mode 0600 and replaced atomically. See docs/operations.md.
 */

#ifndef EGRESS_STATE_H
#define EGRESS_STATE_H

#include <stddef.h>

#include "egress_crypto.h"
#include "egress_error.h"
#include "egress_frame.h"

#define EGRESS_STATE_MAX 4096 /* a longer state file is refused */

typedef struct {
    char session[EGRESS_MAX_TOKEN_TEXT + 1]; /* "" if none */
    char resume[EGRESS_MAX_TOKEN_TEXT + 1];  /* "" if none */
    unsigned char ticket_sha256[EGRESS_SHA256_LEN];
    int has_ticket_sha256;
    int ended; /* the close code or HTTP status that ended the session, 0 if none */
} egress_state_t;

/*
 * 1 when p[0..len) may be a ticket or resume secret: 1..max characters of
 * base64 or base64url (tickets and secrets are prefixed base64url), so that
 * it fits a header line and a state file line as it is.
 */
int egress_state_secret_ok(const char *p, size_t len, size_t max);

/* Parses buf[0..len) into st (zeroed first). Returns 0, or -1 with err set. */
int egress_state_parse(egress_state_t *st, const char *buf, size_t len, egress_error_t *err);

/* Writes st as state file text into out (cap bytes, NUL-terminated). Returns the length or -1.
 */
int egress_state_format(const egress_state_t *st, char *out, size_t cap, egress_error_t *err);

/*
 * Reads the state file at path into st (zeroed first). Returns 1 when it was
 * read, 0 when there is no such file, -1 with err set when it cannot be read
 * or is malformed (st is then empty).
 */
int egress_state_load(egress_state_t *st, const char *path, egress_error_t *err);

/*
 * Replaces the state file at path with st: a 0600 file next to it (never
 * through a symbolic link), written, synced and renamed over path. Returns
 * 0, or -1 with err set (errno is kept).
 */
int egress_state_save(const egress_state_t *st, const char *path, egress_error_t *err);

/* Wipes the secrets in st. */
void egress_state_wipe(egress_state_t *st);

#endif /* EGRESS_STATE_H */
