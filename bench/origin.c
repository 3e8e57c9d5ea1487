/*
 * origin: a fast HTTP/1.1 origin for the benchmarks (the Perl test origin is
 * far too slow to push GiBs).
 *
 *   origin --listen 127.0.0.1:PORT
 *
 *   GET  /bytes/N   -> 200, N bytes (from a static buffer, large writes)
 *   GET  /pattern/N -> 200, N bytes of a fixed pseudo-random pattern with a
 *                      period of PAT_LEN (a prime), so a lost, repeated or
 *                      reordered block shows up when the client compares
 *   POST /upload    -> reads Content-Length bytes and discards them, 200 "ok"
 *   PUT  /check     -> reads the body (Content-Length or chunked), compares
 *                      every byte with the pattern at its offset, 200 with
 *                      "bytes=N bad=B first_bad=O usecs=U" (U: first to last
 *                      body byte as seen here; O is -1 when B is 0)
 *   anything else   -> 200, 2 bytes "ok"
 *
 * Keep-alive unless the request says "Connection: close". Absolute-form
 * request targets are accepted too. One thread, epoll, non-blocking.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY_CHUNK (1024 * 1024)
#define HDR_MAX    8192
#define PAT_LEN    1048573 /* prime: no power-of-two block lines up with it */
#define CHUNK_MAX  (1ull << 40)

enum conn_state { ST_HEADER, ST_DISCARD, ST_SEND, ST_CHECK };
enum check_state { CK_DATA, CK_SIZE, CK_EXT, CK_DATA_END, CK_TRAILER };

typedef struct conn {
    int fd;
    enum conn_state state;
    size_t in_len;
    char in[HDR_MAX];
    char out[256]; /* response header */
    size_t out_len, out_off;
    uint64_t body_left;    /* bytes of body still to send */
    uint64_t discard_left; /* request body bytes still to read */
    int close_after;
    int want_out;
    int pattern;       /* body from pat_buf */
    uint64_t body_off; /* body bytes sent so far (pattern offset) */
    /* PUT /check */
    enum check_state ck_state;
    int ck_chunked;
    uint64_t ck_left; /* data bytes left in this chunk / the body */
    uint64_t ck_size; /* chunk size being parsed */
    size_t ck_line;   /* trailer line length so far */
    uint64_t ck_bytes, ck_bad;
    int64_t ck_first_bad;
    uint64_t ck_first_ns, ck_last_ns;
} conn_t;

static char body_buf[BODY_CHUNK];
/* pattern, then its first BODY_CHUNK bytes again: any offset mod PAT_LEN
 * is followed by at least BODY_CHUNK contiguous pattern bytes */
static unsigned char pat_buf[PAT_LEN + BODY_CHUNK];
static unsigned char ck_buf[256 * 1024]; /* PUT /check reads */
static int epfd;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static void pattern_init(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < PAT_LEN; i++) {
        x ^= x << 13; /* xorshift64 */
        x ^= x >> 7;
        x ^= x << 17;
        pat_buf[i] = (unsigned char) (x >> 24);
    }
    for (size_t i = PAT_LEN; i < sizeof pat_buf; i++)
        pat_buf[i] = pat_buf[i - PAT_LEN]; /* BODY_CHUNK > PAT_LEN: no memcpy */
}

static void conn_free(conn_t *c)
{
    close(c->fd);
    free(c);
}

static void conn_set_out(conn_t *c, int out)
{
    struct epoll_event ev = {.events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    if (c->want_out == out)
        return;
    c->want_out = out;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static const char *hdr_find(const char *hdr, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = hdr, *end = hdr + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t) (end - p));
        if (!eol)
            break;
        if ((size_t) (eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            p += nl + 1;
            while (*p == ' ' || *p == '\t')
                p++;
            return p;
        }
        p = eol + 1;
    }
    return NULL;
}

static void conn_respond(conn_t *c, uint64_t body_len, int ok_body)
{
    c->out_len =
        (size_t) snprintf(c->out, sizeof c->out,
                          "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n"
                          "Content-Type: application/octet-stream\r\n%s\r\n%s",
                          (unsigned long long) (ok_body ? 2 : body_len),
                          c->close_after ? "Connection: close\r\n" : "", ok_body ? "ok" : "");
    c->out_off = 0;
    c->body_left = ok_body ? 0 : body_len;
    c->body_off = 0;
    c->pattern = 0;
    c->state = ST_SEND;
}

static void check_respond(conn_t *c)
{
    char text[160];
    int n = snprintf(text, sizeof text, "bytes=%llu bad=%llu first_bad=%lld usecs=%llu\n",
                     (unsigned long long) c->ck_bytes, (unsigned long long) c->ck_bad,
                     (long long) c->ck_first_bad,
                     (unsigned long long) ((c->ck_last_ns - c->ck_first_ns) / 1000));
    c->out_len = (size_t) snprintf(c->out, sizeof c->out,
                                   "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                                   "Content-Type: text/plain\r\n%s\r\n%s",
                                   n, c->close_after ? "Connection: close\r\n" : "", text);
    c->out_off = 0;
    c->body_left = 0;
    c->pattern = 0;
    c->state = ST_SEND;
}

/* Compares n body bytes with the pattern at their offset (n <= BODY_CHUNK). */
static void check_data(conn_t *c, const unsigned char *b, size_t n)
{
    const unsigned char *want = pat_buf + c->ck_bytes % PAT_LEN;
    uint64_t t = now_ns();
    if (!c->ck_bytes)
        c->ck_first_ns = t;
    c->ck_last_ns = t;
    if (memcmp(b, want, n) != 0) {
        for (size_t i = 0; i < n; i++) {
            if (b[i] == want[i])
                continue;
            if (!c->ck_bad)
                c->ck_first_bad = (int64_t) (c->ck_bytes + i);
            c->ck_bad++;
        }
    }
    c->ck_bytes += n;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (unsigned char) (ch | 0x20);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Feeds request body bytes to the checker. Returns the bytes consumed (the
 * rest belongs to the next request), or -1 on bad chunk framing; sets
 * c->state to ST_SEND with the answer once the body is complete. */
static ssize_t check_feed(conn_t *c, const unsigned char *b, size_t n)
{
    size_t i = 0;
    while (c->state == ST_CHECK) {
        if (c->ck_state == CK_DATA) {
            size_t take = n - i < c->ck_left ? n - i : (size_t) c->ck_left;
            if (take) {
                check_data(c, b + i, take);
                i += take;
                c->ck_left -= take;
            }
            if (c->ck_left == 0) {
                if (!c->ck_chunked) {
                    check_respond(c);
                    break;
                }
                c->ck_state = CK_DATA_END;
            }
            if (i == n)
                break;
            continue;
        }
        if (i == n)
            break;
        unsigned char ch = b[i++];
        switch (c->ck_state) {
        case CK_SIZE:
        case CK_EXT:
            if (ch == '\n') {
                if (c->ck_size == 0) {
                    c->ck_state = CK_TRAILER;
                    c->ck_line = 0;
                } else {
                    c->ck_left = c->ck_size;
                    c->ck_size = 0;
                    c->ck_state = CK_DATA;
                }
            } else if (c->ck_state == CK_EXT || ch == '\r') {
                /* chunk extensions are ignored */
            } else if (ch == ';') {
                c->ck_state = CK_EXT;
            } else if (hexval(ch) >= 0 && c->ck_size < CHUNK_MAX) {
                c->ck_size = c->ck_size * 16 + (uint64_t) hexval(ch);
            } else {
                return -1;
            }
            break;
        case CK_DATA_END: /* the CRLF after a chunk's data */
            if (ch == '\n')
                c->ck_state = CK_SIZE;
            else if (ch != '\r')
                return -1;
            break;
        case CK_TRAILER:
            if (ch == '\n') {
                if (c->ck_line == 0)
                    check_respond(c);
                c->ck_line = 0;
            } else if (ch != '\r') {
                c->ck_line++;
            }
            break;
        case CK_DATA:
            break;
        }
    }
    return (ssize_t) i;
}

/* Parses one request header from c->in. Returns 1 if handled, 0 if more
 * bytes are needed, -1 on a bad request. */
static int conn_parse(conn_t *c)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    size_t hlen;
    const char *path, *v;
    uint64_t clen = 0;

    if (!end)
        return c->in_len >= HDR_MAX ? -1 : 0;
    hlen = (size_t) (end - c->in) + 4;
    path = memchr(c->in, ' ', hlen);
    if (!path)
        return -1;
    path++;
    if (strncmp(path, "http://", 7) == 0) {
        path = memchr(path + 7, '/', hlen - (size_t) (path + 7 - c->in));
        if (!path)
            return -1;
    }
    v = hdr_find(c->in, hlen, "Connection");
    c->close_after = v && strncasecmp(v, "close", 5) == 0;
    v = hdr_find(c->in, hlen, "Content-Length");
    if (v)
        clen = strtoull(v, NULL, 10);

    if (strncmp(path, "/check", 6) == 0) {
        ssize_t used;
        v = hdr_find(c->in, hlen, "Transfer-Encoding");
        c->ck_chunked = v && strncasecmp(v, "chunked", 7) == 0;
        c->ck_state = c->ck_chunked ? CK_SIZE : CK_DATA;
        c->ck_left = c->ck_chunked ? 0 : clen;
        c->ck_size = c->ck_bytes = c->ck_bad = c->ck_first_ns = c->ck_last_ns = 0;
        c->ck_first_bad = -1;
        c->state = ST_CHECK;
        memmove(c->in, c->in + hlen, c->in_len - hlen);
        c->in_len -= hlen;
        used = check_feed(c, (unsigned char *) c->in, c->in_len);
        if (used < 0)
            return -1;
        memmove(c->in, c->in + used, c->in_len - (size_t) used);
        c->in_len -= (size_t) used;
        return 1;
    }
    if (strncmp(path, "/bytes/", 7) == 0) {
        conn_respond(c, strtoull(path + 7, NULL, 10), 0);
    } else if (strncmp(path, "/pattern/", 9) == 0) {
        conn_respond(c, strtoull(path + 9, NULL, 10), 0);
        c->pattern = 1;
    } else {
        conn_respond(c, 0, 1);
    }

    /* keep bytes after the header (body or pipelined request) */
    memmove(c->in, c->in + hlen, c->in_len - hlen);
    c->in_len -= hlen;
    if (clen > 0) {
        uint64_t have = c->in_len < clen ? c->in_len : clen;
        memmove(c->in, c->in + have, c->in_len - have);
        c->in_len -= have;
        clen -= have;
        if (clen > 0) {
            c->discard_left = clen;
            c->state = ST_DISCARD;
        }
    }
    return 1;
}

/* Returns -1 when the connection should be closed. */
static int conn_on_read(conn_t *c)
{
    for (;;) {
        ssize_t n;
        if (c->state == ST_DISCARD) {
            n = read(c->fd, body_buf, sizeof body_buf);
            if (n > 0) {
                if ((uint64_t) n > c->discard_left)
                    n = (ssize_t) c->discard_left; /* pipelining past a body: drop */
                c->discard_left -= (uint64_t) n;
                if (c->discard_left == 0) {
                    c->state = ST_SEND;
                    conn_set_out(c, 1);
                    return 0;
                }
                continue;
            }
        } else if (c->state == ST_CHECK) {
            n = read(c->fd, ck_buf, sizeof ck_buf);
            if (n > 0) {
                ssize_t used = check_feed(c, ck_buf, (size_t) n);
                if (used < 0)
                    return -1;
                if (c->state == ST_SEND) {
                    /* keep what follows the body (a pipelined request) */
                    size_t rest = (size_t) n - (size_t) used;
                    if (rest > HDR_MAX - c->in_len)
                        return -1;
                    memcpy(c->in + c->in_len, ck_buf + used, rest);
                    c->in_len += rest;
                    conn_set_out(c, 1);
                    return 0;
                }
                continue;
            }
        } else if (c->state == ST_HEADER) {
            int r = conn_parse(c);
            if (r < 0)
                return -1;
            if (r > 0) {
                if (c->state == ST_SEND)
                    conn_set_out(c, 1);
                else
                    continue;
                return 0;
            }
            n = read(c->fd, c->in + c->in_len, HDR_MAX - c->in_len);
            if (n > 0) {
                c->in_len += (size_t) n;
                continue;
            }
        } else {
            return 0;
        }
        if (n == 0)
            return -1;
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        return -1;
    }
}

static int conn_on_write(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->out_off += (size_t) n;
    }
    while (c->body_left > 0) {
        size_t want = c->body_left < BODY_CHUNK ? (size_t) c->body_left : BODY_CHUNK;
        const void *src = c->pattern ? (const void *) (pat_buf + c->body_off % PAT_LEN)
                                     : (const void *) body_buf;
        ssize_t n = send(c->fd, src, want, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->body_left -= (uint64_t) n;
        c->body_off += (uint64_t) n;
    }
    if (c->close_after)
        return -1;
    c->state = ST_HEADER;
    conn_set_out(c, 0);
    return conn_on_read(c);
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t) (colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t) (colon - s));
    host[colon - s] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t) atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    int lfd, one = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    if (argc != 3 || strcmp(argv[1], "--listen") != 0 || parse_addr(argv[2], &sa) < 0) {
        fprintf(stderr, "usage: origin --listen 127.0.0.1:PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(body_buf, 'x', sizeof body_buf);
    pattern_init();
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
        perror("origin: bind/listen");
        return 1;
    }
    epfd = epoll_create1(0);
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);

    for (;;) {
        struct epoll_event evs[256];
        int n = epoll_wait(epfd, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                for (int k = 0; k < 64; k++) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            int r = 0;
            if (evs[i].events & (EPOLLERR | EPOLLHUP) &&
                !(evs[i].events & (EPOLLIN | EPOLLOUT)))
                r = -1;
            else if (c->want_out)
                r = conn_on_write(c);
            else
                r = conn_on_read(c);
            if (r < 0)
                conn_free(c);
        }
    }
}
