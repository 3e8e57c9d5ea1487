/*
 * origin: a fast HTTP/1.1 origin for the benchmarks (the Perl test origin is
 * far too slow to push GiBs).
 *
 *   origin --listen 127.0.0.1:PORT
 *
 *   GET  /bytes/N   -> 200, N bytes (from a static buffer, large writes)
 *   POST /upload    -> reads Content-Length bytes and discards them, 200 "ok"
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
#include <unistd.h>

#define BODY_CHUNK (1024 * 1024)
#define HDR_MAX    8192

enum conn_state { ST_HEADER, ST_DISCARD, ST_SEND };

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
} conn_t;

static char body_buf[BODY_CHUNK];
static int epfd;

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
    c->state = ST_SEND;
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

    if (strncmp(path, "/bytes/", 7) == 0)
        conn_respond(c, strtoull(path + 7, NULL, 10), 0);
    else
        conn_respond(c, 0, 1);

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
        ssize_t n = send(c->fd, body_buf, want, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->body_left -= (uint64_t) n;
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
