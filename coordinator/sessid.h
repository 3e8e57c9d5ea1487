/*
 * sessid.h: session ids "egress_1.<generation>.<random>.<mac>".
 *
 * generation is a decimal 1..2^53, random is base64url of 16 CSPRNG bytes and
 * mac is base64url(HMAC-SHA256(lease key, "egress_1.<generation>.<random>:" +
 * leaseID)), so an id is bound to its lease and cannot be forged or moved to
 * another lease without the per-lease key.
 *
 * A crabbox client may propose its own id instead (sessid_foreign_valid());
 * such an id carries no generation or MAC: the coordinator binds it to the
 * generation it creates the session under (see docs/protocol.md).
 */

#ifndef SESSID_H
#define SESSID_H

#include <stddef.h>
#include <stdint.h>

#define SESSID_PREFIX  "egress_1."
#define SESSID_KEY_LEN 32

/* Writes a new id for generation into out (cap >= 128). Returns 0 or -1. */
int sessid_make(char *out, size_t cap, const uint8_t key[SESSID_KEY_LEN], const char *lease_id,
                int64_t generation);

/*
 * Checks syntax and MAC of s (len bytes). Returns 0 and stores the generation,
 * -1 when malformed, -2 when well-formed but the MAC does not verify.
 */
int sessid_verify(const char *s, size_t len, const uint8_t key[SESSID_KEY_LEN],
                  const char *lease_id, int64_t *generation);

/*
 * A session id proposed by a crabbox client: "egress_" and 6 to 80 of
 * [A-Za-z0-9_.:-] (crabbox's CLI sends "egress_<base36 of unix nanos>").
 * Ids that start with SESSID_PREFIX are ours and must pass sessid_verify()
 * instead, so this refuses them. Returns 1 when s (len bytes) is such an id.
 */
int sessid_foreign_valid(const char *s, size_t len);

#endif /* SESSID_H */
