/*
 * ws_bridge.h: agent WebSocket upgrades (authorization) and socket events.
 */

#ifndef WS_BRIDGE_H
#define WS_BRIDGE_H

#include <stddef.h>

#include <libwebsockets.h>

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 accept, 1 refused (answered), -1 hang up. */
int ws_confirm_upgrade(struct lws *wsi, const char *upgrade);
/* Drops an authorized upgrade that never became a socket. */
void ws_forget_upgrade(struct lws *wsi);
int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                size_t len);

#endif /* WS_BRIDGE_H */
