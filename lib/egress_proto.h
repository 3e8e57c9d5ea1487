/*
 * egress_proto.h: protocol constants the coordinator, the agent and the
 * nginx module must agree on: WebSocket close codes and the HTTP answers to
 * an upgrade that end a session. See docs/protocol.md.
 */

#ifndef EGRESS_PROTO_H
#define EGRESS_PROTO_H

/* RFC 6455 close codes we send or act on */
#define EGRESS_CLOSE_NORMAL     1000 /* orderly stop */
#define EGRESS_CLOSE_GOING_AWAY 1001 /* shutdown, or a socket silent for three pings */
#define EGRESS_CLOSE_POLICY     1008 /* a malformed or forbidden frame */
#define EGRESS_CLOSE_TOO_BIG    1009 /* a message above EGRESS_MAX_MESSAGE */
#define EGRESS_CLOSE_INTERNAL   1011 /* the receiver cannot go on */
/* sent by crabbox's coordinator; wslay 1.1 refuses 1012-1014, see agent/bridge.c */
#define EGRESS_CLOSE_SERVICE_RESTART                                                           \
    1012 /* crabbox: "replaced by a newer egress host/client" */
#define EGRESS_CLOSE_TRY_AGAIN   1013
#define EGRESS_CLOSE_BAD_GATEWAY 1014

/* ours: the session behind the socket is over, or the socket was replaced */
#define EGRESS_CLOSE_SESSION_REPLACED 4001 /* a newer ticket started another session */
#define EGRESS_CLOSE_SOCKET_REPLACED  4002 /* a newer socket of this side took over */
#define EGRESS_CLOSE_LEASE_GONE       4003 /* the lease was released or expired */
#define EGRESS_CLOSE_SESSION_STOPPED  4004 /* the session was stopped */

/*
 * 1 for 4001-4004, and for crabbox's 1012 (a newer agent replaced this one:
 * fighting for the slot would only flap) and 1008 (lease ended or access
 * revoked there; from our coordinator a frame it refused, which a retry
 * would only repeat): reconnecting with the same credential cannot help.
 * 1011 (crabbox: the other side left) stays transient.
 */
static inline int egress_close_is_fatal(int code)
{
    return (code >= EGRESS_CLOSE_SESSION_REPLACED && code <= EGRESS_CLOSE_SESSION_STOPPED) ||
           code == EGRESS_CLOSE_SERVICE_RESTART || code == EGRESS_CLOSE_POLICY;
}

/* 1 for 4003 and 4004: the lease or the session is over for good. */
static inline int egress_close_ends_session(int code)
{
    return code == EGRESS_CLOSE_LEASE_GONE || code == EGRESS_CLOSE_SESSION_STOPPED;
}

/*
 * HTTP answers to an upgrade (or a ticket mint) after which only a new
 * ticket can help: 403 lease forbidden for this credential, 404 unknown
 * lease, 409 session replaced, 410 lease released or expired. A 401 only
 * kills the credential that was used.
 */
static inline int egress_http_status_fatal(int status)
{
    return status == 403 || status == 404 || status == 409 || status == 410;
}

/* 1 for 404 and 410: the lease itself is gone. */
static inline int egress_http_status_ends_session(int status)
{
    return status == 404 || status == 410;
}

#endif /* EGRESS_PROTO_H */
