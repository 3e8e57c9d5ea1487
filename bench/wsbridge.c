/*
 * wsbridge: the client half of a TCP-over-WebSocket tunnel, for benchmarking
 * websockify (which is only the server half: WebSocket -> TCP).
 *
 *   wsbridge --listen 127.0.0.1:L --ws 127.0.0.1:W [--path /]
 *
 * Every TCP connection accepted on L gets its own WebSocket to W (binary
 * frames, subprotocol "binary", client frames masked with a random key as
 * RFC 6455 requires). Bytes are relayed both ways with bounded buffers:
 * a side is not read while the other side's pending output is not flushed.
 * One thread, epoll, non-blocking.  Either side closing closes both.
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
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define UP_MAX   (64 * 1024)
#define DOWN_MAX (256 * 1024)

struct pair;

typedef struct end {
    struct pair *p;
    int fd;
    uint32_t events;
} end_t;

typedef struct pair {
    end_t tcp, ws;
    int ws_state;          /* 0 connecting, 1 handshake sent, 2 open */
    size_t up_len, up_off; /* framed bytes waiting to go to ws */
    size_t down_len, down_off;
    uint64_t payload_left;
    int opcode;
    int down_blocked; /* tcp write would block */
    int dead;         /* closed; freed after the current event batch */
    struct pair *next_dead;
    unsigned char up[UP_MAX + 14];
    unsigned char down[DOWN_MAX];
} pair_t;

static int epfd;
static struct sockaddr_in ws_addr;
static char ws_hostport[64];
static const char *ws_path = "/";

static void end_set(end_t *e, uint32_t ev)
{
    struct epoll_event x = {.events = ev, .data.ptr = e};
    if (e->events == ev)
        return;
    e->events = ev;
    epoll_ctl(epfd, EPOLL_CTL_MOD, e->fd, &x);
}

static pair_t *dead_list;

/* Closes now, frees after the event batch (a batch may hold both ends). */
static void pair_free(pair_t *p)
{
    if (p->dead)
        return;
    p->dead = 1;
    close(p->tcp.fd);
    close(p->ws.fd);
    p->next_dead = dead_list;
    dead_list = p;
}

static void pair_update(pair_t *p)
{
    uint32_t tcp = 0, ws = 0;
    if (p->ws_state == 0) {
        ws = EPOLLOUT;
    } else if (p->ws_state == 1) {
        ws = EPOLLIN;
    } else {
        if (p->up_off < p->up_len)
            ws |= EPOLLOUT;
        else
            tcp |= EPOLLIN;
        if (p->down_blocked)
            tcp |= EPOLLOUT;
        else if (p->down_len < DOWN_MAX)
            ws |= EPOLLIN;
    }
    end_set(&p->tcp, tcp);
    end_set(&p->ws, ws);
}

static void mask_bytes(unsigned char *b, size_t n, const unsigned char key[4])
{
    uint64_t k64;
    size_t i = 0;
    unsigned char k8[8];
    for (int j = 0; j < 8; j++)
        k8[j] = key[j & 3];
    memcpy(&k64, k8, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, b + i, 8);
        v ^= k64;
        memcpy(b + i, &v, 8);
    }
    for (; i < n; i++)
        b[i] ^= key[i & 3];
}

/* Flushes framed upstream bytes; -1 on error. */
static int pair_flush_up(pair_t *p)
{
    while (p->up_off < p->up_len) {
        ssize_t n = send(p->ws.fd, p->up + p->up_off, p->up_len - p->up_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        p->up_off += (size_t) n;
    }
    p->up_off = p->up_len = 0;
    return 0;
}

/* tcp readable: read one chunk, frame it, send. */
static int pair_on_tcp_read(pair_t *p)
{
    unsigned char key[4];
    size_t hl;
    ssize_t n = read(p->tcp.fd, p->up + 14, UP_MAX);
    if (n == 0)
        return -1;
    if (n < 0)
        return errno == EAGAIN ? 0 : -1;
    /* header goes right before the payload: 14 bytes max */
    hl = n < 126 ? 6 : n <= 0xffff ? 8 : 14;
    unsigned char *h = p->up + 14 - hl;
    h[0] = 0x82;
    if (n < 126) {
        h[1] = 0x80 | (unsigned char) n;
    } else if (n <= 0xffff) {
        h[1] = 0x80 | 126;
        h[2] = (unsigned char) (n >> 8);
        h[3] = (unsigned char) n;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char) ((uint64_t) n >> (56 - 8 * i));
    }
    getrandom(key, 4, 0);
    memcpy(h + hl - 4, key, 4);
    mask_bytes(p->up + 14, (size_t) n, key);
    p->up_off = 14 - hl;
    p->up_len = 14 + (size_t) n;
    return pair_flush_up(p);
}

/* Parses and forwards buffered downstream frames; -1 closes the pair. */
static int pair_drain_down(pair_t *p)
{
    p->down_blocked = 0;
    while (p->down_off < p->down_len) {
        unsigned char *b = p->down + p->down_off;
        size_t avail = p->down_len - p->down_off;
        if (p->payload_left == 0) {
            size_t hl = 2;
            uint64_t len;
            if (avail < 2)
                break;
            len = b[1] & 0x7f;
            if (len == 126)
                hl = 4;
            else if (len == 127)
                hl = 10;
            if (b[1] & 0x80)
                hl += 4; /* servers must not mask; tolerate by skipping the key */
            if (avail < hl)
                break;
            if (len == 126)
                len = ((uint64_t) b[2] << 8) | b[3];
            else if (len == 127) {
                len = 0;
                for (int i = 0; i < 8; i++)
                    len = (len << 8) | b[2 + i];
            }
            p->opcode = b[0] & 0x0f;
            p->down_off += hl;
            p->payload_left = len;
            if (p->opcode == 8)
                return -1;
            continue;
        }
        size_t n = avail < p->payload_left ? avail : (size_t) p->payload_left;
        if (p->opcode <= 2) {
            ssize_t w = send(p->tcp.fd, b, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno != EAGAIN)
                    return -1;
                p->down_blocked = 1;
                return 0;
            }
            n = (size_t) w;
        }
        p->down_off += n;
        p->payload_left -= n;
        if (n == 0)
            break;
    }
    if (p->down_off == p->down_len) {
        p->down_off = p->down_len = 0;
    } else if (!p->down_blocked && p->down_off > 0) {
        memmove(p->down, p->down + p->down_off, p->down_len - p->down_off);
        p->down_len -= p->down_off;
        p->down_off = 0;
    }
    return 0;
}

static int pair_on_ws_read(pair_t *p)
{
    ssize_t n = read(p->ws.fd, p->down + p->down_len, DOWN_MAX - p->down_len);
    if (n == 0)
        return -1;
    if (n < 0)
        return errno == EAGAIN ? 0 : -1;
    p->down_len += (size_t) n;
    if (p->ws_state == 1) {
        unsigned char *e = memmem(p->down, p->down_len, "\r\n\r\n", 4);
        if (!e)
            return p->down_len >= 4096 ? -1 : 0;
        if (p->down_len < 12 || memcmp(p->down + 9, "101", 3) != 0) {
            fprintf(stderr, "wsbridge: upgrade refused: %.40s\n", p->down);
            return -1;
        }
        p->down_off = (size_t) (e - p->down) + 4;
        p->ws_state = 2;
    }
    return pair_drain_down(p);
}

static int pair_on_ws_connected(pair_t *p)
{
    char req[512];
    int err = 0, len;
    socklen_t l = sizeof err;
    getsockopt(p->ws.fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err)
        return -1;
    len =
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: binary\r\n\r\n",
                 ws_path, ws_hostport);
    if (send(p->ws.fd, req, (size_t) len, MSG_NOSIGNAL) != len)
        return -1;
    p->ws_state = 1;
    return 0;
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

static void accept_all(int lfd)
{
    int one = 1;
    for (int k = 0; k < 64; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        pair_t *p;
        if (fd < 0)
            return;
        p = calloc(1, sizeof *p);
        if (!p) {
            close(fd);
            continue;
        }
        p->tcp.p = p->ws.p = p;
        p->tcp.fd = fd;
        p->ws.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(p->ws.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event a = {.events = 0, .data.ptr = &p->tcp};
        struct epoll_event b = {.events = EPOLLOUT, .data.ptr = &p->ws};
        p->ws.events = EPOLLOUT;
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &a);
        epoll_ctl(epfd, EPOLL_CTL_ADD, p->ws.fd, &b);
        if (connect(p->ws.fd, (struct sockaddr *) &ws_addr, sizeof ws_addr) < 0 &&
            errno != EINPROGRESS)
            pair_free(p);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in la;
    int lfd, one = 1, have_l = 0, have_w = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0 && parse_addr(argv[i + 1], &la) == 0)
            have_l = 1;
        else if (strcmp(argv[i], "--ws") == 0 && parse_addr(argv[i + 1], &ws_addr) == 0) {
            have_w = 1;
            snprintf(ws_hostport, sizeof ws_hostport, "%s", argv[i + 1]);
        } else if (strcmp(argv[i], "--path") == 0)
            ws_path = argv[i + 1];
        else
            have_l = have_w = -9;
    }
    if (have_l != 1 || have_w != 1) {
        fprintf(stderr, "usage: wsbridge --listen 127.0.0.1:L --ws 127.0.0.1:W [--path /]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *) &la, sizeof la) < 0 || listen(lfd, 4096) < 0) {
        perror("wsbridge: bind/listen");
        return 1;
    }
    epfd = epoll_create1(0);
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        struct epoll_event evs[256];
        int n = epoll_wait(epfd, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            end_t *e = evs[i].data.ptr;
            pair_t *p;
            int r = 0;
            if (!e) {
                accept_all(lfd);
                continue;
            }
            p = e->p;
            if (p->dead)
                continue;
            if (e == &p->ws) {
                if (p->ws_state == 0)
                    r = pair_on_ws_connected(p);
                else if ((evs[i].events & EPOLLOUT) && p->up_off < p->up_len)
                    r = pair_flush_up(p);
                else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    r = pair_on_ws_read(p);
            } else {
                if ((evs[i].events & EPOLLOUT) && p->down_blocked)
                    r = pair_drain_down(p);
                else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    r = pair_on_tcp_read(p);
            }
            if (r < 0)
                pair_free(p);
            else
                pair_update(p);
        }
        while (dead_list) {
            pair_t *d = dead_list;
            dead_list = d->next_dead;
            free(d);
        }
    }
}
