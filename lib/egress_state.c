/*
 * egress_state.c: the resume state file shared by the agent and the nginx
 * module: `key = value` lines, parsed strictly, written atomically.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "egress_state.h"

int egress_state_secret_ok(const char *p, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '~' || c == '+' || c == '/' || c == '='))
            return 0;
    }
    return 1;
}

/* A session ID is passed on as it is: printable ASCII, no space. */
static int state_session_ok(const char *p, size_t len)
{
    if (len == 0 || len > EGRESS_MAX_TOKEN_TEXT)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] <= ' ' || p[i] > '~')
            return 0;
    return 1;
}

static int state_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int state_set_hash(egress_state_t *st, const char *v, size_t n)
{
    if (n != EGRESS_SHA256_HEX_LEN)
        return -1;
    for (size_t i = 0; i < EGRESS_SHA256_LEN; i++) {
        int hi = state_hex_value(v[2 * i]), lo = state_hex_value(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        st->ticket_sha256[i] = (unsigned char) (hi << 4 | lo);
    }
    st->has_ticket_sha256 = 1;
    return 0;
}

/* ended: a close code or HTTP status, 100..9999, as written by us */
static int state_set_ended(egress_state_t *st, const char *v, size_t n)
{
    int code = 0;

    if (n < 3 || n > 4 || v[0] == '0')
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        code = code * 10 + (v[i] - '0');
    }
    if (code < 100)
        return -1;
    st->ended = code;
    return 0;
}

/* One known key's value; an empty value means absent. 0, or -1 when invalid. */
static int state_set(egress_state_t *st, const char *key, size_t kn, const char *v, size_t n)
{
#define KEY_IS(k) (kn == sizeof(k) - 1 && memcmp(key, k, kn) == 0)
    if (KEY_IS("session")) {
        if (n == 0)
            return 0;
        if (!state_session_ok(v, n))
            return -1;
        memcpy(st->session, v, n);
        st->session[n] = '\0';
    } else if (KEY_IS("resume")) {
        if (n == 0)
            return 0;
        if (!egress_state_secret_ok(v, n, EGRESS_MAX_TOKEN_TEXT))
            return -1;
        memcpy(st->resume, v, n);
        st->resume[n] = '\0';
    } else if (KEY_IS("ticket_sha256")) {
        return n == 0 ? 0 : state_set_hash(st, v, n);
    } else if (KEY_IS("ended")) {
        return n == 0 ? 0 : state_set_ended(st, v, n);
    }
#undef KEY_IS
    return 0; /* a key of a later version */
}

/* The module's former format: {"resume": "...", "ticket_sha256": "...", "ended": N}. */
static int state_parse_json(egress_state_t *st, const char *buf, size_t len,
                            egress_error_t *err)
{
    static const char *const keys[] = {"session", "resume", "ticket_sha256"};
    json_t *root = json_loadb(buf, len, 0, NULL), *v;
    char num[16];
    int rc = 0;

    if (!root || !json_is_object(root)) {
        json_decref(root);
        return egress_error_set(err, EGRESS_ERR_JSON, "the state file is not valid JSON");
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && rc == 0; i++) {
        v = json_object_get(root, keys[i]);
        if (v &&
            (!json_is_string(v) || state_set(st, keys[i], strlen(keys[i]), json_string_value(v),
                                             json_string_length(v)) < 0))
            rc = -1;
    }
    v = json_object_get(root, "ended");
    if (rc == 0 && v) {
        int n = json_is_integer(v)
                    ? snprintf(num, sizeof(num), "%lld", (long long) json_integer_value(v))
                    : -1;
        if (n < 0 || (size_t) n >= sizeof(num) || state_set_ended(st, num, (size_t) n) < 0)
            rc = -1;
    }
    /* jansson keeps the secret in its own heap copy: wipe it */
    v = json_object_get(root, "resume");
    if (json_is_string(v))
        explicit_bzero((char *) json_string_value(v), json_string_length(v));
    json_decref(root);
    if (rc < 0)
        return egress_error_set(err, EGRESS_ERR_VALUE, "the state file has an invalid value");
    return 0;
}

int egress_state_parse(egress_state_t *st, const char *buf, size_t len, egress_error_t *err)
{
    const char *p = buf, *end = buf + len;
    unsigned seen = 0;
    int line = 0;

    memset(st, 0, sizeof(*st));
    if (len > EGRESS_STATE_MAX)
        return egress_error_set(err, EGRESS_ERR_TOO_LARGE,
                                "the state file is longer than %d bytes", EGRESS_STATE_MAX);
    if (memchr(buf, '\0', len))
        return egress_error_set(err, EGRESS_ERR_VALUE, "the state file holds a NUL byte");
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p < end && *p == '{') {
        if (state_parse_json(st, buf, len, err) < 0) {
            egress_state_wipe(st);
            return -1;
        }
        return 0;
    }
    for (p = buf; p < end;) {
        const char *eol = memchr(p, '\n', (size_t) (end - p)), *eq, *k, *ke, *v, *ve;
        static const char *const known[] = {"session", "resume", "ticket_sha256", "ended"};

        if (!eol)
            eol = end;
        line++;
        for (k = p; k < eol && (*k == ' ' || *k == '\t'); k++)
            ;
        for (ve = eol; ve > k && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'); ve--)
            ;
        p = eol < end ? eol + 1 : end;
        if (k == ve || *k == '#')
            continue;
        eq = memchr(k, '=', (size_t) (ve - k));
        if (!eq)
            goto invalid;
        for (ke = eq; ke > k && (ke[-1] == ' ' || ke[-1] == '\t'); ke--)
            ;
        for (v = eq + 1; v < ve && (*v == ' ' || *v == '\t'); v++)
            ;
        if (ke == k)
            goto invalid;
        for (const char *c = k; c < ke; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
                goto invalid;
        /* a key twice is not a file we wrote */
        for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if ((size_t) (ke - k) == strlen(known[i]) &&
                memcmp(k, known[i], strlen(known[i])) == 0) {
                if (seen & (1u << i))
                    goto invalid;
                seen |= 1u << i;
            }
        }
        if (state_set(st, k, (size_t) (ke - k), v, (size_t) (ve - v)) < 0)
            goto invalid;
    }
    return 0;

invalid:
    egress_state_wipe(st);
    return egress_error_set(err, EGRESS_ERR_VALUE, "malformed state file line %d", line);
}

int egress_state_format(const egress_state_t *st, char *out, size_t cap, egress_error_t *err)
{
    char hex[EGRESS_SHA256_HEX_LEN + 1] = "";
    char ended[16] = "";
    int n;

    /* never write what the parser would refuse */
    if ((st->session[0] &&
         !state_session_ok(st->session, strnlen(st->session, sizeof(st->session)))) ||
        (st->resume[0] &&
         !egress_state_secret_ok(st->resume, strnlen(st->resume, sizeof(st->resume)),
                                 EGRESS_MAX_TOKEN_TEXT)) ||
        (st->ended && (st->ended < 100 || st->ended > 9999)))
        return egress_error_set(err, EGRESS_ERR_VALUE,
                                "state holds a value a state file cannot");
    if (st->has_ticket_sha256)
        egress_hex_encode(hex, st->ticket_sha256, EGRESS_SHA256_LEN);
    if (st->ended)
        snprintf(ended, sizeof(ended), "%d", st->ended);
    n = snprintf(out, cap, "%s%s%s%s%s%s%s%s%s%s%s%s", st->session[0] ? "session = " : "",
                 st->session, st->session[0] ? "\n" : "", st->resume[0] ? "resume = " : "",
                 st->resume, st->resume[0] ? "\n" : "", hex[0] ? "ticket_sha256 = " : "", hex,
                 hex[0] ? "\n" : "", ended[0] ? "ended = " : "", ended, ended[0] ? "\n" : "");
    if (n < 0 || (size_t) n >= cap) {
        if (cap)
            explicit_bzero(out, cap);
        return egress_error_set(err, EGRESS_ERR_NO_SPACE, "state longer than %zu bytes", cap);
    }
    return n;
}

int egress_state_load(egress_state_t *st, const char *path, egress_error_t *err)
{
    char buf[EGRESS_STATE_MAX + 1];
    ssize_t n;
    size_t len = 0;
    int fd, rc;

    memset(st, 0, sizeof(*st));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return egress_error_set(err, EGRESS_ERR_SYSTEM, "cannot open: %s", strerror(errno));
    }
    while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = egress_error_set(err, EGRESS_ERR_SYSTEM, "cannot read: %s", strerror(errno));
            close(fd);
            explicit_bzero(buf, sizeof(buf));
            return rc;
        }
        len += (size_t) n;
    }
    close(fd);
    rc = egress_state_parse(st, buf, len, err);
    explicit_bzero(buf, sizeof(buf));
    return rc < 0 ? -1 : 1;
}

static int state_write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

int egress_state_save(const egress_state_t *st, const char *path, egress_error_t *err)
{
    char buf[EGRESS_STATE_MAX], tmp[4096 + 32];
    int fd, len, n, saved;

    len = egress_state_format(st, buf, sizeof(buf), err);
    if (len < 0)
        return -1;
    n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long) getpid());
    if (n < 0 || (size_t) n >= sizeof(tmp)) {
        explicit_bzero(buf, sizeof(buf));
        errno = ENAMETOOLONG;
        return egress_error_set(err, EGRESS_ERR_TOO_LARGE, "state file path too long");
    }
    /* A file already there (planted, or left by a crash) keeps its owner and
     * mode: start from none, so the secret only ever sits in a new 0600 file. */
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        saved = errno;
        explicit_bzero(buf, sizeof(buf));
        egress_error_set(err, EGRESS_ERR_SYSTEM, "cannot create %s: %s", tmp, strerror(saved));
        errno = saved;
        return -1;
    }
    n = state_write_all(fd, buf, (size_t) len) < 0 || fsync(fd) < 0 ? -1 : 0;
    saved = errno;
    explicit_bzero(buf, sizeof(buf));
    if (close(fd) < 0 && n == 0) {
        n = -1;
        saved = errno;
    }
    if (n == 0 && rename(tmp, path) < 0) {
        n = -1;
        saved = errno;
    }
    if (n < 0) {
        unlink(tmp);
        egress_error_set(err, EGRESS_ERR_SYSTEM, "cannot write: %s", strerror(saved));
        errno = saved;
        return -1;
    }
    return 0;
}

void egress_state_wipe(egress_state_t *st)
{
    explicit_bzero(st, sizeof(*st));
}
