/*
 * egress_frame.c: bridge protocol codec, v1 (JSON text only) and v2 (JSON
 * control frames plus binary data messages). docs/protocol.md is the
 * normative description; this file is its strict implementation.
 *
 * Decoding uses jansson; encoding writes JSON by hand into the caller's
 * buffer and never allocates.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "egress_base64.h"
#include "egress_frame.h"
#include "egress_host.h"

#define EXCERPT_BUF 72

/* No valid host text is this long (253 + dot, or a bracketed IPv6); cut off early. */
#define HOST_TEXT_MAX 1024

static const char *const type_names[] = {
    NULL, "open", "open_ok", "data", "close", "error", "window", "hello", "peer",
};
#define TYPE_COUNT (sizeof(type_names) / sizeof(type_names[0]))

/* Shared by zero-length bodies so that body is never NULL after a decode. */
static const uint8_t empty_body[1];

const char *egress_frame_type_name(egress_frame_type_e type)
{
    if ((size_t) type >= 1 && (size_t) type < TYPE_COUNT) {
        return type_names[type];
    }
    return "?";
}

static int type_from_name(const char *s, size_t len)
{
    size_t i;

    for (i = 1; i < TYPE_COUNT; i++) {
        if (strlen(type_names[i]) == len && memcmp(type_names[i], s, len) == 0) {
            return (int) i;
        }
    }
    return 0;
}

static int type_in_version(int type, int version)
{
    if (version == EGRESS_PROTO_V1) {
        return type >= EGRESS_FRAME_OPEN && type <= EGRESS_FRAME_ERROR;
    }
    return type >= EGRESS_FRAME_OPEN && type <= EGRESS_FRAME_PEER;
}

int egress_proto_from_subprotocol(const char *name)
{
    if (name == NULL || name[0] == '\0' || strcmp(name, EGRESS_SUBPROTO_V1) == 0) {
        return EGRESS_PROTO_V1;
    }
    if (strcmp(name, EGRESS_SUBPROTO_V2) == 0) {
        return EGRESS_PROTO_V2;
    }
    return 0;
}

void egress_frame_data_header(uint8_t out[EGRESS_V2_DATA_HEADER], uint32_t id)
{
    out[0] = (uint8_t) (id >> 24);
    out[1] = (uint8_t) (id >> 16);
    out[2] = (uint8_t) (id >> 8);
    out[3] = (uint8_t) id;
}

uint32_t egress_wire_id_parse(const char *text, size_t len)
{
    static const size_t plen = sizeof(EGRESS_WIRE_ID_PREFIX) - 1;
    uint64_t v = 0;
    size_t i;

    if (len <= plen || len > plen + 7 || memcmp(text, EGRESS_WIRE_ID_PREFIX, plen) != 0 ||
        text[plen] == '0') {
        return 0;
    }
    for (i = plen; i < len; i++) {
        char c = text[i];
        if (c >= '0' && c <= '9') {
            v = v * 36 + (uint64_t) (c - '0');
        } else if (c >= 'a' && c <= 'z') {
            v = v * 36 + (uint64_t) (c - 'a' + 10);
        } else {
            return 0;
        }
    }
    return v <= EGRESS_ID_MAX ? (uint32_t) v : 0;
}

size_t egress_wire_id_format(char *out, uint32_t id)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    static const size_t plen = sizeof(EGRESS_WIRE_ID_PREFIX) - 1;
    char tmp[8];
    size_t n = 0, i;

    do {
        tmp[n++] = digits[id % 36];
        id /= 36;
    } while (id != 0);
    memcpy(out, EGRESS_WIRE_ID_PREFIX, plen);
    for (i = 0; i < n; i++) {
        out[plen + i] = tmp[n - 1 - i];
    }
    out[plen + n] = '\0';
    return plen + n;
}

/* 1 when s is a valid v1 string id: 1..EGRESS_WIRE_ID_MAX printable ASCII bytes. */
static int wire_id_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > EGRESS_WIRE_ID_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

static void frame_clear(egress_frame_t *f)
{
    memset(f, 0, sizeof(*f));
    f->wire_id.data = f->wire_buf;
    f->host.data = "";
    f->message.data = "";
    f->session_id.data = "";
    f->role.data = "";
    f->resume.data = "";
    f->body = empty_body;
}

void egress_frame_release(egress_frame_t *f)
{
    if (f == NULL) {
        return;
    }
    if (f->owned_json != NULL) {
        json_decref((json_t *) f->owned_json);
        f->owned_json = NULL;
    }
    free(f->owned_body);
    f->owned_body = NULL;
}

/* ---- decoding ---------------------------------------------------------- */

static int field_missing(egress_error_t *err, const char *tname, const char *key)
{
    return egress_error_set(err, EGRESS_ERR_MISSING_FIELD, "%s: missing field \"%s\"", tname,
                            key);
}

/* Integer field in lo..hi; code is the range error to report. */
static int get_uint(json_t *root, const char *tname, const char *key, uint64_t lo, uint64_t hi,
                    int required, egress_err_e code, uint64_t *out, egress_error_t *err)
{
    json_t *v = json_object_get(root, key);
    json_int_t n;

    if (v == NULL) {
        if (required) {
            return field_missing(err, tname, key);
        }
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v)) {
        return egress_error_set(err, EGRESS_ERR_FIELD_TYPE,
                                "%s: field \"%s\" must be an integer %llu..%llu", tname, key,
                                (unsigned long long) lo, (unsigned long long) hi);
    }
    n = json_integer_value(v);
    if (n < 0 || (uint64_t) n < lo || (uint64_t) n > hi) {
        return egress_error_set(err, code, "%s: field \"%s\" must be an integer %llu..%llu",
                                tname, key, (unsigned long long) lo, (unsigned long long) hi);
    }
    *out = (uint64_t) n;
    return 0;
}

static int get_id(json_t *root, const char *tname, egress_frame_t *f, egress_error_t *err)
{
    uint64_t v;

    if (get_uint(root, tname, "id", 1, EGRESS_ID_MAX, 1, EGRESS_ERR_ID_RANGE, &v, err) < 0) {
        return -1;
    }
    f->id = (uint32_t) v;
    return 0;
}

/* Stores a v1 id's text; the id is our own shape's value or 0 (see egress_idmap). */
static void set_wire_id(egress_frame_t *f, const char *s, size_t len)
{
    memcpy(f->wire_buf, s, len);
    f->wire_buf[len] = '\0';
    f->wire_id.data = f->wire_buf;
    f->wire_id.len = len;
    f->id = egress_wire_id_parse(s, len);
}

/*
 * Reads a v1 id without failing: a valid string, or an integer id (older
 * senders), which stands for itself.
 */
static int peek_id_v1(json_t *v, egress_frame_t *f)
{
    if (json_is_string(v) && wire_id_valid(json_string_value(v), json_string_length(v))) {
        set_wire_id(f, json_string_value(v), json_string_length(v));
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 1 &&
        json_integer_value(v) <= (json_int_t) EGRESS_ID_MAX) {
        f->id = (uint32_t) json_integer_value(v); /* no wire id: answered in our shape */
        return 0;
    }
    return -1;
}

static int get_id_v1(json_t *root, const char *tname, egress_frame_t *f, egress_error_t *err)
{
    json_t *v = json_object_get(root, "id");

    if (v == NULL) {
        return field_missing(err, tname, "id");
    }
    if (peek_id_v1(v, f) < 0) {
        return egress_error_set(err,
                                json_is_string(v) || json_is_integer(v) ? EGRESS_ERR_ID_RANGE
                                                                        : EGRESS_ERR_FIELD_TYPE,
                                "%s: field \"id\" must be a string of 1..%d printable "
                                "characters (or an integer 1..%u)",
                                tname, EGRESS_WIRE_ID_MAX, EGRESS_ID_MAX);
    }
    return 0;
}

static int get_stream_id(json_t *root, const char *tname, int version, egress_frame_t *f,
                         egress_error_t *err)
{
    return version == EGRESS_PROTO_V1 ? get_id_v1(root, tname, f, err)
                                      : get_id(root, tname, f, err);
}

/* v1 port: crabbox sends a decimal string ("443"); a JSON number is accepted too. */
static int get_port_v1(json_t *root, uint64_t *out, egress_error_t *err)
{
    json_t *v = json_object_get(root, "port");
    const char *s;
    size_t len, i;
    uint64_t n = 0;

    if (v == NULL || !json_is_string(v)) {
        return get_uint(root, "open", "port", 1, 65535, 1, EGRESS_ERR_PORT_RANGE, out, err);
    }
    s = json_string_value(v);
    len = json_string_length(v);
    for (i = 0; i < len && i < 6; i++) {
        if (s[i] < '0' || s[i] > '9') {
            break;
        }
        n = n * 10 + (uint64_t) (s[i] - '0');
    }
    if (len == 0 || i != len || n < 1 || n > 65535) {
        return egress_error_set(err, EGRESS_ERR_PORT_RANGE,
                                "open: field \"port\" must be 1..65535 (a decimal string "
                                "or an integer)");
    }
    *out = n;
    return 0;
}

static int get_window(json_t *root, const char *tname, const char *key, int required,
                      uint32_t *out, egress_error_t *err)
{
    uint64_t v;

    if (get_uint(root, tname, key, 1, EGRESS_MAX_WINDOW, required, EGRESS_ERR_WINDOW_RANGE, &v,
                 err) < 0) {
        return -1;
    }
    *out = (uint32_t) v;
    return 0;
}

static int get_string(json_t *root, const char *tname, const char *key, size_t max,
                      int required, egress_str_t *out, egress_error_t *err)
{
    json_t *v = json_object_get(root, key);

    if (v == NULL) {
        if (required) {
            return field_missing(err, tname, key);
        }
        return 0;
    }
    if (!json_is_string(v)) {
        return egress_error_set(err, EGRESS_ERR_FIELD_TYPE, "%s: field \"%s\" must be a string",
                                tname, key);
    }
    out->data = json_string_value(v);
    out->len = json_string_length(v);
    if (out->len > max) {
        return egress_error_set(err, EGRESS_ERR_TOO_LARGE,
                                "%s: field \"%s\" is longer than %zu bytes", tname, key, max);
    }
    if (memchr(out->data, '\0', out->len) != NULL) {
        return egress_error_set(err, EGRESS_ERR_VALUE, "%s: field \"%s\" contains a NUL byte",
                                tname, key);
    }
    return 0;
}

static int get_bool(json_t *root, const char *tname, const char *key, int required, int *out,
                    egress_error_t *err)
{
    json_t *v = json_object_get(root, key);

    if (v == NULL) {
        if (required) {
            return field_missing(err, tname, key);
        }
        *out = 0;
        return 0;
    }
    if (!json_is_boolean(v)) {
        return egress_error_set(err, EGRESS_ERR_FIELD_TYPE,
                                "%s: field \"%s\" must be a boolean", tname, key);
    }
    *out = json_is_true(v);
    return 0;
}

static int check_host(egress_frame_t *f, const char *tname, const char *host, size_t len,
                      egress_error_t *err)
{
    const char *why = NULL;
    char ex[EXCERPT_BUF];

    if (egress_host_normalize_reason(f->host_buf, host, len, &why) < 0) {
        egress_error_excerpt(ex, sizeof(ex), host, len);
        return egress_error_set(err, EGRESS_ERR_HOST, "%s: invalid host \"%s\": %s", tname, ex,
                                why);
    }
    f->host.data = f->host_buf;
    f->host.len = strlen(f->host_buf);
    return 0;
}

static int decode_open(egress_frame_t *f, int version, json_t *root, egress_error_t *err)
{
    egress_str_t host = {"", 0};
    uint64_t port;

    if (get_stream_id(root, "open", version, f, err) < 0 ||
        get_string(root, "open", "host", HOST_TEXT_MAX, 1, &host, err) < 0 ||
        check_host(f, "open", host.data, host.len, err) < 0) {
        return -1;
    }
    if (version == EGRESS_PROTO_V1 ? get_port_v1(root, &port, err) < 0
                                   : get_uint(root, "open", "port", 1, 65535, 1,
                                              EGRESS_ERR_PORT_RANGE, &port, err) < 0) {
        return -1;
    }
    f->port = (uint16_t) port;
    /* v1 peers know no windows: the key is an ignored extra there. */
    if (version == EGRESS_PROTO_V2 &&
        get_window(root, "open", "window", 0, &f->window, err) < 0) {
        return -1;
    }
    return 0;
}

static int decode_open_ok(egress_frame_t *f, int version, json_t *root, egress_error_t *err)
{
    if (get_stream_id(root, "open_ok", version, f, err) < 0) {
        return -1;
    }
    if (version == EGRESS_PROTO_V2 &&
        get_window(root, "open_ok", "window", 0, &f->window, err) < 0) {
        return -1;
    }
    return 0;
}

static int decode_data_v1(egress_frame_t *f, json_t *root, egress_error_t *err)
{
    egress_str_t body = {"", 0};
    egress_error_t e;
    size_t max, got = 0;

    /* crabbox omits an empty body */
    if (get_id_v1(root, "data", f, err) < 0 ||
        get_string(root, "data", "body", EGRESS_MAX_MESSAGE, 0, &body, err) < 0) {
        return -1;
    }
    if (body.len == 0) {
        f->body = empty_body;
        f->body_len = 0;
        return 0;
    }
    max = EGRESS_BASE64_DECODED_MAX(body.len);
    f->owned_body = malloc(max);
    if (f->owned_body == NULL) {
        return egress_error_set(err, EGRESS_ERR_SYSTEM, "data: out of memory");
    }
    if (egress_base64_decode(f->owned_body, max, &got, body.data, body.len, &e) < 0) {
        return egress_error_set(err, EGRESS_ERR_BASE64,
                                "data: field \"body\" is not canonical padded base64 (%s)",
                                e.message);
    }
    if (got > EGRESS_MAX_MESSAGE) {
        return egress_error_set(err, EGRESS_ERR_TOO_LARGE,
                                "data: body decodes to more than %d bytes", EGRESS_MAX_MESSAGE);
    }
    f->body = f->owned_body;
    f->body_len = got;
    return 0;
}

static int decode_close(egress_frame_t *f, int version, json_t *root, egress_error_t *err)
{
    int half = 0;

    if (get_stream_id(root, "close", version, f, err) < 0) {
        return -1;
    }
    if (version == EGRESS_PROTO_V2 && get_bool(root, "close", "half", 0, &half, err) < 0) {
        return -1;
    }
    f->half = half ? 1 : 0;
    return 0;
}

static int decode_error(egress_frame_t *f, int version, json_t *root, egress_error_t *err)
{
    if (get_stream_id(root, "error", version, f, err) < 0) {
        return -1;
    }
    if (version == EGRESS_PROTO_V2) {
        return get_string(root, "error", "message", EGRESS_MAX_ERROR_TEXT, 1, &f->message, err);
    }
    /* v1 (crabbox): the text is in "error", may be omitted when empty; "message" accepted */
    if (json_object_get(root, "error") != NULL) {
        return get_string(root, "error", "error", EGRESS_MAX_ERROR_TEXT, 0, &f->message, err);
    }
    return get_string(root, "error", "message", EGRESS_MAX_ERROR_TEXT, 0, &f->message, err);
}

static int decode_window(egress_frame_t *f, json_t *root, egress_error_t *err)
{
    if (get_id(root, "window", f, err) < 0 ||
        get_window(root, "window", "increment", 1, &f->increment, err) < 0) {
        return -1;
    }
    return 0;
}

static int check_role(const egress_str_t *role)
{
    return (role->len == 4 && memcmp(role->data, "host", 4) == 0) ||
           (role->len == 6 && memcmp(role->data, "client", 6) == 0);
}

static int decode_hello(egress_frame_t *f, json_t *root, egress_error_t *err)
{
    int pc = 0;

    if (get_string(root, "hello", "sessionID", EGRESS_MAX_TOKEN_TEXT, 1, &f->session_id, err) <
            0 ||
        get_string(root, "hello", "role", EGRESS_MAX_TOKEN_TEXT, 1, &f->role, err) < 0 ||
        get_bool(root, "hello", "peerConnected", 1, &pc, err) < 0 ||
        get_string(root, "hello", "resume", EGRESS_MAX_TOKEN_TEXT, 0, &f->resume, err) < 0) {
        return -1;
    }
    if (f->session_id.len == 0) {
        return egress_error_set(err, EGRESS_ERR_VALUE,
                                "hello: field \"sessionID\" must not be empty");
    }
    if (!check_role(&f->role)) {
        return egress_error_set(err, EGRESS_ERR_VALUE,
                                "hello: field \"role\" must be \"host\" or \"client\"");
    }
    f->peer_connected = pc ? 1 : 0;
    return 0;
}

static int decode_peer(egress_frame_t *f, json_t *root, egress_error_t *err)
{
    int c = 0;

    if (get_bool(root, "peer", "connected", 1, &c, err) < 0) {
        return -1;
    }
    f->connected = c ? 1 : 0;
    return 0;
}

/* Copies jansson's parser message with anything unprintable replaced. */
static int json_fail(egress_error_t *err, const json_error_t *je)
{
    char text[sizeof(je->text)];
    size_t i;

    for (i = 0; i + 1 < sizeof(text) && je->text[i] != '\0'; i++) {
        unsigned char c = (unsigned char) je->text[i];
        text[i] = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
    }
    text[i] = '\0';
    return egress_error_set(err, EGRESS_ERR_JSON, "invalid JSON at byte %d: %s", je->position,
                            text);
}

static int decode_json(egress_frame_t *f, int version, const uint8_t *msg, size_t len,
                       egress_error_t *err)
{
    json_error_t je;
    json_t *root, *jtype, *jid;
    const char *tname;
    size_t tlen;
    int type;
    char ex[EXCERPT_BUF];

    /* JSON_ALLOW_NUL lets us report "\u0000" in a string as a precise value error. */
    root = json_loadb((const char *) msg, len,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (root == NULL) {
        return json_fail(err, &je);
    }
    f->owned_json = root;
    if (!json_is_object(root)) {
        return egress_error_set(err, EGRESS_ERR_NOT_OBJECT, "frame is not a JSON object");
    }

    /* Learn the id early so that a failure can still name the stream. */
    jid = json_object_get(root, "id");
    if (jid != NULL && version == EGRESS_PROTO_V1) {
        (void) peek_id_v1(jid, f);
    } else if (jid != NULL && json_is_integer(jid) && json_integer_value(jid) >= 1 &&
               json_integer_value(jid) <= (json_int_t) EGRESS_ID_MAX) {
        f->id = (uint32_t) json_integer_value(jid);
    }

    jtype = json_object_get(root, "type");
    if (jtype == NULL) {
        return field_missing(err, "frame", "type");
    }
    if (!json_is_string(jtype)) {
        return egress_error_set(err, EGRESS_ERR_FIELD_TYPE,
                                "frame: field \"type\" must be a string");
    }
    tname = json_string_value(jtype);
    tlen = json_string_length(jtype);
    type = type_from_name(tname, tlen);
    if (type == 0 || !type_in_version(type, version)) {
        egress_error_excerpt(ex, sizeof(ex), tname, tlen);
        return egress_error_set(err, EGRESS_ERR_UNKNOWN_TYPE,
                                "unknown frame type \"%s\" in protocol v%d", ex, version);
    }
    f->type = (egress_frame_type_e) type;
    if (f->type == EGRESS_FRAME_HELLO || f->type == EGRESS_FRAME_PEER) {
        f->id = 0; /* session frames have no stream; an "id" there is an ignored extra */
        f->wire_id.len = 0;
        f->wire_buf[0] = '\0';
    }
    switch (f->type) {
    case EGRESS_FRAME_OPEN:
        return decode_open(f, version, root, err);
    case EGRESS_FRAME_OPEN_OK:
        return decode_open_ok(f, version, root, err);
    case EGRESS_FRAME_DATA:
        if (version == EGRESS_PROTO_V2) {
            return egress_error_set(err, EGRESS_ERR_TEXT_DATA_IN_V2,
                                    "data: JSON data frames are not allowed in protocol v2 "
                                    "(data travels in binary messages)");
        }
        return decode_data_v1(f, root, err);
    case EGRESS_FRAME_CLOSE:
        return decode_close(f, version, root, err);
    case EGRESS_FRAME_ERROR:
        return decode_error(f, version, root, err);
    case EGRESS_FRAME_WINDOW:
        return decode_window(f, root, err);
    case EGRESS_FRAME_HELLO:
        return decode_hello(f, root, err);
    case EGRESS_FRAME_PEER:
        return decode_peer(f, root, err);
    }
    return egress_error_set(err, EGRESS_ERR_UNKNOWN_TYPE, "unknown frame type");
}

int egress_frame_decode(egress_frame_t *f, int version, const uint8_t *msg, size_t len,
                        int binary, egress_error_t *err)
{
    uint32_t id;

    frame_clear(f);
    if (version != EGRESS_PROTO_V1 && version != EGRESS_PROTO_V2) {
        return egress_error_set(err, EGRESS_ERR_VALUE, "unsupported protocol version %d",
                                version);
    }
    if (len > EGRESS_MAX_MESSAGE) {
        return egress_error_set(err, EGRESS_ERR_TOO_LARGE,
                                "message of %zu bytes exceeds the %d-byte limit", len,
                                EGRESS_MAX_MESSAGE);
    }
    if (binary) {
        if (version == EGRESS_PROTO_V1) {
            return egress_error_set(err, EGRESS_ERR_BINARY_IN_V1,
                                    "binary message on a protocol v1 connection");
        }
        if (len < EGRESS_V2_DATA_HEADER) {
            return egress_error_set(err, EGRESS_ERR_SHORT_BINARY,
                                    "binary message of %zu bytes is shorter than its 4-byte "
                                    "stream id",
                                    len);
        }
        id =
            (uint32_t) msg[0] << 24 | (uint32_t) msg[1] << 16 | (uint32_t) msg[2] << 8 | msg[3];
        if (id == 0) {
            return egress_error_set(err, EGRESS_ERR_ID_RANGE,
                                    "data: stream id 0 is not allowed");
        }
        f->type = EGRESS_FRAME_DATA;
        f->id = id;
        f->body = msg + EGRESS_V2_DATA_HEADER; /* zero-copy: points into msg */
        f->body_len = len - EGRESS_V2_DATA_HEADER;
        return 0;
    }
    if (msg == NULL) {
        msg = (const uint8_t *) ""; /* an empty message is invalid JSON, not a crash */
        len = 0;
    }
    if (decode_json(f, version, msg, len, err) < 0) {
        char wire[EGRESS_WIRE_ID_MAX + 1];
        size_t wlen = f->wire_id.len;

        id = f->id;
        memcpy(wire, f->wire_buf, wlen);
        egress_frame_release(f);
        frame_clear(f);
        f->id = id;
        if (wlen) {
            memcpy(f->wire_buf, wire, wlen);
            f->wire_buf[wlen] = '\0';
            f->wire_id.len = wlen;
        }
        return -1;
    }
    return 0;
}

/* ---- encoding ---------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    uint8_t *end;
    int overflow;
} wbuf_t;

static void put(wbuf_t *w, const char *s, size_t n)
{
    if ((size_t) (w->end - w->p) < n) {
        w->overflow = 1;
        w->p = w->end;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

static void put_uint(wbuf_t *w, uint64_t v)
{
    char tmp[24];
    size_t n = sizeof(tmp);

    do {
        tmp[--n] = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(w, tmp + n, sizeof(tmp) - n);
}

/*
 * Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is
 * invalid: overlong forms, surrogates and code points above U+10FFFF are
 * rejected, exactly as jansson's decoder does.
 */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint32_t cp;
    size_t len, i;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

/* Writes a JSON string literal; fails on a NUL byte or invalid UTF-8. */
static int put_jstr(wbuf_t *w, const char *str, size_t n, const char *tname, const char *key,
                    egress_error_t *err)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *) str;
    size_t i = 0, run = 0;

    PUT_LIT(w, "\"");
    while (i < n) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        put(w, str + run, i - run);
        if (c >= 0x80) {
            size_t k = utf8_seq(s + i, n - i);
            if (k == 0) {
                return egress_error_set(err, EGRESS_ERR_VALUE,
                                        "%s: field \"%s\" is not valid UTF-8", tname, key);
            }
            put(w, str + i, k);
            i += k;
        } else if (c == 0) {
            return egress_error_set(err, EGRESS_ERR_VALUE,
                                    "%s: field \"%s\" contains a NUL byte", tname, key);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            switch (c) {
            case '"':
                PUT_LIT(w, "\\\"");
                break;
            case '\\':
                PUT_LIT(w, "\\\\");
                break;
            case '\n':
                PUT_LIT(w, "\\n");
                break;
            case '\r':
                PUT_LIT(w, "\\r");
                break;
            case '\t':
                PUT_LIT(w, "\\t");
                break;
            case '\b':
                PUT_LIT(w, "\\b");
                break;
            case '\f':
                PUT_LIT(w, "\\f");
                break;
            default:
                put(w, esc, sizeof(esc));
            }
            i++;
        }
        run = i;
    }
    put(w, str + run, i - run);
    PUT_LIT(w, "\"");
    return 0;
}

static void put_head(wbuf_t *w, egress_frame_type_e type)
{
    const char *name = type_names[type];

    PUT_LIT(w, "{\"type\":\"");
    put(w, name, strlen(name));
    PUT_LIT(w, "\"");
}

/* v1 writes the id as a string: the frame's wire id, else our own shape. */
static int put_id(wbuf_t *w, const egress_frame_t *f, int version, egress_error_t *err)
{
    char own[16];
    const char *text = own;
    size_t len;

    PUT_LIT(w, ",\"id\":");
    if (version != EGRESS_PROTO_V1) {
        put_uint(w, f->id);
        return 0;
    }
    if (f->wire_id.len != 0 && f->wire_id.data != NULL) {
        text = f->wire_id.data;
        len = f->wire_id.len;
        if (!wire_id_valid(text, len)) {
            return egress_error_set(err, EGRESS_ERR_ID_RANGE,
                                    "%s: wire id is not 1..%d printable characters",
                                    egress_frame_type_name(f->type), EGRESS_WIRE_ID_MAX);
        }
    } else {
        len = egress_wire_id_format(own, f->id);
    }
    return put_jstr(w, text, len, egress_frame_type_name(f->type), "id", err);
}

static int check_string(const egress_str_t *s, const char *tname, const char *key, size_t max,
                        egress_error_t *err)
{
    if (s->data == NULL && s->len != 0) {
        return egress_error_set(err, EGRESS_ERR_VALUE, "%s: field \"%s\" is NULL", tname, key);
    }
    if (s->len > max) {
        return egress_error_set(err, EGRESS_ERR_TOO_LARGE,
                                "%s: field \"%s\" is longer than %zu bytes", tname, key, max);
    }
    return 0;
}

static const char *str_data(const egress_str_t *s)
{
    return s->data != NULL ? s->data : "";
}

size_t egress_frame_encoded_max(const egress_frame_t *f, int version)
{
    /* Fixed overhead of the longest frame shape plus worst-case "\u00XX" escaping. */
    size_t fixed = 128;

    if ((version != EGRESS_PROTO_V1 && version != EGRESS_PROTO_V2) ||
        !type_in_version((int) f->type, version)) {
        return 0;
    }
    if (version == EGRESS_PROTO_V1) {
        fixed += 6 * EGRESS_WIRE_ID_MAX; /* a string id, escaped at worst */
    }
    switch (f->type) {
    case EGRESS_FRAME_DATA:
        if (version == EGRESS_PROTO_V2) {
            return EGRESS_V2_DATA_HEADER + f->body_len;
        }
        return fixed + EGRESS_BASE64_ENCODED_LEN(f->body_len);
    case EGRESS_FRAME_OPEN:
        return fixed + 6 * f->host.len;
    case EGRESS_FRAME_ERROR:
        return fixed + 6 * f->message.len;
    case EGRESS_FRAME_HELLO:
        return fixed + 6 * (f->session_id.len + f->role.len + f->resume.len);
    default:
        return fixed;
    }
}

/* Encodes a data frame; returns 0 with *out_len set, or -1. */
static int encode_data(const egress_frame_t *f, int version, uint8_t *buf, size_t cap,
                       size_t *out_len, egress_error_t *err)
{
    static const char head[] = "{\"type\":\"data\"";
    static const char mid[] = ",\"body\":\"";
    char idtxt[16 + 6 * EGRESS_WIRE_ID_MAX];
    wbuf_t w = {(uint8_t *) idtxt, (uint8_t *) idtxt + sizeof(idtxt), 0};
    size_t idlen, need;

    if (f->body == NULL && f->body_len != 0) {
        return egress_error_set(err, EGRESS_ERR_VALUE, "data: body is NULL");
    }
    if (version == EGRESS_PROTO_V2) {
        if (f->body_len > EGRESS_MAX_MESSAGE - EGRESS_V2_DATA_HEADER) {
            return egress_error_set(err, EGRESS_ERR_TOO_LARGE,
                                    "data: body of %zu bytes exceeds the message limit",
                                    f->body_len);
        }
        need = EGRESS_V2_DATA_HEADER + f->body_len;
        if (cap < need) {
            return egress_error_set(err, EGRESS_ERR_NO_SPACE,
                                    "data: needs %zu bytes, buffer has %zu", need, cap);
        }
        egress_frame_data_header(buf, f->id);
        if (f->body_len) {
            memcpy(buf + EGRESS_V2_DATA_HEADER, f->body, f->body_len);
        }
        *out_len = need;
        return 0;
    }
    if (put_id(&w, f, version, err) < 0) {
        return -1;
    }
    idlen = (size_t) (w.p - (uint8_t *) idtxt);
    if (f->body_len > EGRESS_MAX_MESSAGE) {
        return egress_error_set(err, EGRESS_ERR_TOO_LARGE,
                                "data: body of %zu bytes exceeds the message limit",
                                f->body_len);
    }
    need =
        sizeof(head) - 1 + idlen + sizeof(mid) - 1 + EGRESS_BASE64_ENCODED_LEN(f->body_len) + 2;
    if (need > EGRESS_MAX_MESSAGE) {
        return egress_error_set(err, EGRESS_ERR_TOO_LARGE,
                                "data: body of %zu bytes exceeds the message limit",
                                f->body_len);
    }
    if (cap < need) {
        return egress_error_set(err, EGRESS_ERR_NO_SPACE,
                                "data: needs %zu bytes, buffer has %zu", need, cap);
    }
    w.p = buf;
    w.end = buf + cap;
    PUT_LIT(&w, head);
    put(&w, idtxt, idlen);
    PUT_LIT(&w, mid);
    w.p += egress_base64_encode((char *) w.p, f->body, f->body_len);
    PUT_LIT(&w, "\"}");
    *out_len = (size_t) (w.p - buf);
    return 0;
}

/* Validates open's host and port; writes the normalized host into host. */
static int encode_check_open(const egress_frame_t *f, char *host, egress_error_t *err)
{
    const char *why = NULL;
    char ex[EXCERPT_BUF];

    if (check_string(&f->host, "open", "host", HOST_TEXT_MAX, err) < 0) {
        return -1;
    }
    if (egress_host_normalize_reason(host, str_data(&f->host), f->host.len, &why) < 0) {
        egress_error_excerpt(ex, sizeof(ex), str_data(&f->host), f->host.len);
        return egress_error_set(err, EGRESS_ERR_HOST, "open: invalid host \"%s\": %s", ex, why);
    }
    if (f->port == 0) {
        return egress_error_set(err, EGRESS_ERR_PORT_RANGE,
                                "open: field \"port\" must be an integer 1..65535");
    }
    return 0;
}

size_t egress_frame_encode(const egress_frame_t *f, int version, uint8_t *buf, size_t cap,
                           int *binary, egress_error_t *err)
{
    wbuf_t w = {buf, buf + cap, 0};
    const char *tname;
    char host[EGRESS_HOST_BUF];
    size_t n = 0;

    if (binary != NULL) {
        *binary = 0;
    }
    if (version != EGRESS_PROTO_V1 && version != EGRESS_PROTO_V2) {
        egress_error_set(err, EGRESS_ERR_VALUE, "unsupported protocol version %d", version);
        return 0;
    }
    if (!type_in_version((int) f->type, version)) {
        egress_error_set(err, EGRESS_ERR_UNKNOWN_TYPE,
                         "frame type \"%s\" does not exist in "
                         "protocol v%d",
                         egress_frame_type_name(f->type), version);
        return 0;
    }
    tname = type_names[f->type];
    /* v1 may answer a peer's id it could not map (f->wire_id alone) */
    if (f->type != EGRESS_FRAME_HELLO && f->type != EGRESS_FRAME_PEER && f->id == 0 &&
        (version != EGRESS_PROTO_V1 || f->wire_id.len == 0)) {
        egress_error_set(err, EGRESS_ERR_ID_RANGE, "%s: field \"id\" must be an integer 1..%u",
                         tname, EGRESS_ID_MAX);
        return 0;
    }

    switch (f->type) {
    case EGRESS_FRAME_DATA:
        if (encode_data(f, version, buf, cap, &n, err) < 0) {
            return 0;
        }
        if (binary != NULL) {
            *binary = version == EGRESS_PROTO_V2;
        }
        return n;

    case EGRESS_FRAME_OPEN:
    case EGRESS_FRAME_OPEN_OK:
        if (f->type == EGRESS_FRAME_OPEN && encode_check_open(f, host, err) < 0) {
            return 0;
        }
        if (version == EGRESS_PROTO_V2 && f->window > EGRESS_MAX_WINDOW) {
            egress_error_set(err, EGRESS_ERR_WINDOW_RANGE,
                             "%s: field \"window\" must be an integer 1..%u", tname,
                             EGRESS_MAX_WINDOW);
            return 0;
        }
        put_head(&w, f->type);
        if (put_id(&w, f, version, err) < 0) {
            return 0;
        }
        if (f->type == EGRESS_FRAME_OPEN) {
            PUT_LIT(&w, ",\"host\":\"");
            put(&w, host, strlen(host));
            PUT_LIT(&w, "\",\"port\":");
            if (version == EGRESS_PROTO_V1) {
                PUT_LIT(&w, "\""); /* crabbox's port is a string */
                put_uint(&w, f->port);
                PUT_LIT(&w, "\"");
            } else {
                put_uint(&w, f->port);
            }
        }
        /* window 0 means "not advertised"; v1 has no windows at all. */
        if (version == EGRESS_PROTO_V2 && f->window != 0) {
            PUT_LIT(&w, ",\"window\":");
            put_uint(&w, f->window);
        }
        break;

    case EGRESS_FRAME_CLOSE:
        if (version == EGRESS_PROTO_V1 && f->half) {
            egress_error_set(err, EGRESS_ERR_VALUE,
                             "close: a half-close cannot be expressed in protocol v1");
            return 0;
        }
        put_head(&w, f->type);
        if (put_id(&w, f, version, err) < 0) {
            return 0;
        }
        if (f->half) {
            PUT_LIT(&w, ",\"half\":true");
        }
        break;

    case EGRESS_FRAME_ERROR:
        if (check_string(&f->message, tname, "message", EGRESS_MAX_ERROR_TEXT, err) < 0) {
            return 0;
        }
        put_head(&w, f->type);
        if (put_id(&w, f, version, err) < 0) {
            return 0;
        }
        if (version == EGRESS_PROTO_V1) {
            PUT_LIT(&w, ",\"error\":"); /* crabbox's member for the text */
        } else {
            PUT_LIT(&w, ",\"message\":");
        }
        if (put_jstr(&w, str_data(&f->message), f->message.len, tname, "message", err) < 0) {
            return 0;
        }
        break;

    case EGRESS_FRAME_WINDOW:
        if (f->increment == 0 || f->increment > EGRESS_MAX_WINDOW) {
            egress_error_set(err, EGRESS_ERR_WINDOW_RANGE,
                             "window: field \"increment\" must be an integer 1..%u",
                             EGRESS_MAX_WINDOW);
            return 0;
        }
        put_head(&w, f->type);
        if (put_id(&w, f, version, err) < 0) {
            return 0;
        }
        PUT_LIT(&w, ",\"increment\":");
        put_uint(&w, f->increment);
        break;

    case EGRESS_FRAME_HELLO:
        if (check_string(&f->session_id, tname, "sessionID", EGRESS_MAX_TOKEN_TEXT, err) < 0 ||
            check_string(&f->role, tname, "role", EGRESS_MAX_TOKEN_TEXT, err) < 0 ||
            check_string(&f->resume, tname, "resume", EGRESS_MAX_TOKEN_TEXT, err) < 0) {
            return 0;
        }
        if (f->session_id.len == 0) {
            egress_error_set(err, EGRESS_ERR_VALUE,
                             "hello: field \"sessionID\" must not be empty");
            return 0;
        }
        if (!check_role(&f->role)) {
            egress_error_set(err, EGRESS_ERR_VALUE,
                             "hello: field \"role\" must be \"host\" or \"client\"");
            return 0;
        }
        put_head(&w, f->type);
        PUT_LIT(&w, ",\"sessionID\":");
        if (put_jstr(&w, str_data(&f->session_id), f->session_id.len, tname, "sessionID", err) <
            0) {
            return 0;
        }
        PUT_LIT(&w, ",\"role\":");
        put(&w, "\"", 1);
        put(&w, f->role.data, f->role.len);
        put(&w, "\"", 1);
        PUT_LIT(&w, ",\"peerConnected\":");
        if (f->peer_connected) {
            PUT_LIT(&w, "true");
        } else {
            PUT_LIT(&w, "false");
        }
        PUT_LIT(&w, ",\"resume\":");
        if (put_jstr(&w, str_data(&f->resume), f->resume.len, tname, "resume", err) < 0) {
            return 0;
        }
        break;

    case EGRESS_FRAME_PEER:
        put_head(&w, f->type);
        PUT_LIT(&w, ",\"connected\":");
        if (f->connected) {
            PUT_LIT(&w, "true");
        } else {
            PUT_LIT(&w, "false");
        }
        break;
    }
    PUT_LIT(&w, "}");
    if (w.overflow) {
        egress_error_set(err, EGRESS_ERR_NO_SPACE, "%s: frame does not fit in %zu bytes", tname,
                         cap);
        return 0;
    }
    return (size_t) (w.p - buf);
}
