/*
 * egress_error.h: the error value every libegress function reports.
 *
 * Library functions never print. They return a failure indicator and fill an
 * egress_error_t so that the caller (nginx module, agent, coordinator) can log
 * it in its own way or send it to a peer.
 */

#ifndef EGRESS_ERROR_H
#define EGRESS_ERROR_H

#include <stddef.h>

typedef enum {
    EGRESS_OK = 0,
    EGRESS_ERR_TOO_LARGE,       /* message above EGRESS_MAX_MESSAGE, string too long */
    EGRESS_ERR_JSON,            /* not valid JSON text */
    EGRESS_ERR_NOT_OBJECT,      /* valid JSON, but not an object */
    EGRESS_ERR_UNKNOWN_TYPE,    /* "type" names no frame of this protocol version */
    EGRESS_ERR_MISSING_FIELD,   /* a required field is absent */
    EGRESS_ERR_FIELD_TYPE,      /* a field has the wrong JSON type */
    EGRESS_ERR_ID_RANGE,        /* stream id outside 1..EGRESS_ID_MAX */
    EGRESS_ERR_PORT_RANGE,      /* port outside 1..65535 */
    EGRESS_ERR_WINDOW_RANGE,    /* window or increment outside its range */
    EGRESS_ERR_BASE64,          /* body is not canonical padded base64 */
    EGRESS_ERR_HOST,            /* host is not a DNS name or IP literal */
    EGRESS_ERR_VALUE,           /* any other bad field value (NUL byte, ...) */
    EGRESS_ERR_SHORT_BINARY,    /* binary message shorter than its 4-byte id */
    EGRESS_ERR_BINARY_IN_V1,    /* binary message on a v1 connection */
    EGRESS_ERR_TEXT_DATA_IN_V2, /* JSON data frame on a v2 connection */
    EGRESS_ERR_NO_SPACE,        /* caller's output buffer is too small */
    EGRESS_ERR_PATTERN,         /* malformed allowlist pattern */
    EGRESS_ERR_PROFILE,         /* unknown allowlist profile */
    EGRESS_ERR_FLOW,            /* flow-control violation */
    EGRESS_ERR_SYSTEM           /* allocation or CSPRNG failure */
} egress_err_e;

#define EGRESS_ERROR_MESSAGE_MAX 192

typedef struct {
    egress_err_e code;
    char message[EGRESS_ERROR_MESSAGE_MAX];
} egress_error_t;

/* Stable lower-case name of a code ("json", "id_range", ...), for logs and tests. */
const char *egress_err_name(egress_err_e code);

/* Fills err (may be NULL) with code and a printf-style message; returns -1. */
int egress_error_set(egress_error_t *err, egress_err_e code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * Writes a printable excerpt of untrusted input (at most 64 characters, then
 * "..."; quotes, backslashes and non-ASCII/control bytes become '?') into out,
 * NUL-terminated, for quoting it safely in an error message. cap >= 8.
 */
void egress_error_excerpt(char *out, size_t cap, const char *s, size_t len);

#endif /* EGRESS_ERROR_H */
