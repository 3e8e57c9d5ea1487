/*
 * egress_error.c: error values for libegress.
 */

#include <stdarg.h>
#include <stdio.h>

#include "egress_error.h"

const char *egress_err_name(egress_err_e code)
{
    switch (code) {
    case EGRESS_OK:
        return "ok";
    case EGRESS_ERR_TOO_LARGE:
        return "too_large";
    case EGRESS_ERR_JSON:
        return "json";
    case EGRESS_ERR_NOT_OBJECT:
        return "not_object";
    case EGRESS_ERR_UNKNOWN_TYPE:
        return "unknown_type";
    case EGRESS_ERR_MISSING_FIELD:
        return "missing_field";
    case EGRESS_ERR_FIELD_TYPE:
        return "field_type";
    case EGRESS_ERR_ID_RANGE:
        return "id_range";
    case EGRESS_ERR_PORT_RANGE:
        return "port_range";
    case EGRESS_ERR_WINDOW_RANGE:
        return "window_range";
    case EGRESS_ERR_BASE64:
        return "base64";
    case EGRESS_ERR_HOST:
        return "host";
    case EGRESS_ERR_VALUE:
        return "value";
    case EGRESS_ERR_SHORT_BINARY:
        return "short_binary";
    case EGRESS_ERR_BINARY_IN_V1:
        return "binary_in_v1";
    case EGRESS_ERR_TEXT_DATA_IN_V2:
        return "text_data_in_v2";
    case EGRESS_ERR_NO_SPACE:
        return "no_space";
    case EGRESS_ERR_PATTERN:
        return "pattern";
    case EGRESS_ERR_PROFILE:
        return "profile";
    case EGRESS_ERR_FLOW:
        return "flow";
    case EGRESS_ERR_SYSTEM:
        return "system";
    }
    return "unknown";
}

int egress_error_set(egress_error_t *err, egress_err_e code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return -1;
    }
    err->code = code;
    va_start(ap, fmt);
    /* Truncation is acceptable: the message is for humans and always NUL-terminated. */
    if (vsnprintf(err->message, sizeof(err->message), fmt, ap) < 0) {
        err->message[0] = '\0';
    }
    va_end(ap);
    return -1;
}

void egress_error_excerpt(char *out, size_t cap, const char *s, size_t len)
{
    size_t i, n = 0;

    if (cap == 0) {
        return;
    }
    for (i = 0; i < len && n + 4 < cap; i++) {
        unsigned char c = (unsigned char) s[i];
        if (i == 64) {
            out[n++] = '.';
            out[n++] = '.';
            out[n++] = '.';
            break;
        }
        out[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char) c : '?';
    }
    out[n] = '\0';
}
