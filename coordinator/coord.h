/*
 * coord.h: egress-coordinator's shared configuration, clock and logging.
 *
 * Everything runs on one thread (the lws service loop), so module state is
 * plain globals owned by the module that defines them.
 */

#ifndef COORD_H
#define COORD_H

#include <stddef.h>
#include <stdint.h>

#define COORD_ID_MAX       64          /* lease ids and slugs: [A-Za-z0-9_-]{1,64} */
#define COORD_NAME_MAX     128         /* owner and org names */
#define COORD_SECRET_BYTES 32          /* CSPRNG bytes behind every token/ticket/resume */
#define COORD_SECRET_BUF   64          /* prefix + base64url(32 bytes) + NUL */
#define COORD_SESSION_MAX  160         /* egress_1.<gen>.<random>.<mac> */
#define COORD_BODY_MAX     (64 * 1024) /* HTTP request bodies; larger -> 413 */
/* A numeric macro as a string literal, for SQL text. */
#define COORD_STR_(x) #x
#define COORD_STR(x)  COORD_STR_(x)

#define COORD_INSTANCE_MAX 64           /* --instance NAME, NUL included */
#define COORD_READ_BUF     (128 * 1024) /* bytes one recv() may take from a socket */

typedef struct {
    const char *listen; /* host:port as given */
    const char *db_path;
    const char *tls_cert;
    const char *tls_key;
    int ticket_ttl;   /* seconds; EGRESS_TICKET_TTL overrides (tests) */
    size_t queue_cap; /* per-socket outbound bytes before the source pauses */
    double mint_rate; /* ticket mints per second per lease / per token */
    double mint_burst;
    double fail_rate; /* failed upgrades per second per lease */
    double fail_burst;
    int ping_ms;          /* liveness ping interval; a socket quiet for 3 is dropped */
    const char *instance; /* --instance, or HOSTNAME:PORT of --listen */
    int owner_lapse_ms;   /* --owner-lapse: a heartbeat older than this is a dead instance */
} coord_config_t;

extern coord_config_t coord_cfg;

/* Wall clock in seconds and milliseconds. */
int64_t coord_now(void);
int64_t coord_now_ms(void);

/* Monotonic milliseconds (never jumps with the wall clock). */
int64_t coord_mono_ms(void);

/* Formats unix seconds as RFC 3339 UTC ("2026-01-02T03:04:05Z") into out (>= 21 bytes). */
void coord_time_format(char *out, size_t cap, int64_t t);

/* 1 when s (len bytes) matches [A-Za-z0-9_-]{1,64}. */
int coord_id_valid(const char *s, size_t len);

/* One line per event to stderr: "<time> <event> key=value ...". Never pass a secret. */
void coord_log(const char *event, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif /* COORD_H */
