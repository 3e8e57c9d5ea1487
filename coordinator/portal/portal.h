/*
 * portal.h: the operator's web portal under /portal/ (portal.c routes and
 * signs in, portal_page.c renders, portal_assets.c holds the CSS and JS).
 *
 * Sign-in trades a bearer token for a random cookie (only its SHA-256 is
 * stored, mapped to the token's hash, so revoking the token signs out every
 * browser). Every POST carries a CSRF token derived from the cookie, and a
 * browser's Origin must be the coordinator's own.
 */

#ifndef PORTAL_H
#define PORTAL_H

#include <stddef.h>

#include <jansson.h>

#include "lease.h"
#include "portal_html.h"
#include "server.h"
#include "store.h"

#define PORTAL_COOKIE      "egress_portal"
#define PORTAL_SESSION_TTL (8 * 3600)
#define PORTAL_LEASES_MAX  500 /* leases listed on one page */
#define PORTAL_ALLOW_SHOWN 5   /* patterns in the allowlist summary */

/* What every page needs: the signed-in token and the form CSRF value. */
typedef struct {
    const store_token_t *tok; /* NULL when signed out */
    const char *csrf;
} portal_view_t;

typedef struct {
    store_lease_t lease;
    int egress; /* an active egress session on an active lease */
} portal_row_t;

/* portal.c: handles every request under /portal; returns what lws wants. */
int portal_handle(struct lws *wsi, http_req_t *req);

/* portal_page.c: whole HTML documents into b. */
void portal_render_login(hbuf_t *b, const char *error);
void portal_render_leases(hbuf_t *b, const portal_view_t *v, const portal_row_t *rows, size_t n,
                          size_t total);
/* status: the lease_status_json() document, or NULL when there is no session. */
void portal_render_lease(hbuf_t *b, const portal_view_t *v, const store_lease_t *l,
                         access_e access, json_t *status, const char *flash);
void portal_render_confirm(hbuf_t *b, const portal_view_t *v, const store_lease_t *l,
                           int release);
void portal_render_message(hbuf_t *b, const portal_view_t *v, const char *title,
                           const char *text);

/* portal_assets.c */
extern const char portal_css[];
extern const char portal_js[];

#endif /* PORTAL_H */
