/*
 * delayrelay: a TCP relay that adds a fixed one-way delay, for benchmarking
 * over a "network" on a kernel without netem.
 *
 *   delayrelay --listen 127.0.0.1:L --connect 127.0.0.1:C --delay-ms D [--rate-kib R]
 *
 * Every TCP connection accepted on L gets its own connection to C. Each
 * direction reads as fast as the sender writes, stamps every read with the
 * time it arrived, queues it without limit, and writes it onward D ms later
 * (a link with latency D and no bandwidth limit: the sender's own TCP never
 * sees the delay, only the application's windows do). A half-close travels
 * the same way, delayed like the bytes before it. A reset or error on either
 * side closes both at once. One thread, epoll, a timerfd for the next due
 * read, non-blocking sockets, TCP_NODELAY on both sides.
 *
 * With --rate-kib R each direction is also a link of R KiB/s: a read leaves
 * once the reads before it have (len / R each), then travels D ms. The
 * queue in front of that link is unbounded, like a router's on a slow hop:
 * what a sender keeps in flight beyond the bandwidth-delay product waits
 * there, in front of every later byte.
 *
 * The relay stands in for a network, which costs the two hosts nothing, so
 * it moves the bytes with splice(2) through pipes instead of copying them
 * through user space: a read splices the socket's pages into the tail pipe
 * of the direction and records (length, due time); a due record is spliced
 * from its pipe into the onward socket. A direction chains as many pipes as
 * its queue needs (still without limit); drained pipes are reused. Copying
 * cost the relays more CPU than nginx, the coordinator and the agent
 * together on two cores, and the egress path has two relays to ssh's one.
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
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define READ_MAX       (1024 * 1024)
#define READS_PER_WAKE 64            /* then let the other sockets have a turn */
#define PIPE_SIZE      (1024 * 1024) /* asked for; the kernel may give less */

/* A pipe holding queued bytes of one direction, oldest first. */
typedef struct pipe_buf {
    struct pipe_buf *next; /* in the direction's chain, or the free list */
    int r, w;
    size_t fill; /* bytes in it */
    int full;    /* a splice into it found no room: the chain goes on in a new pipe */
} pipe_buf_t;

/* One read: len bytes at the head of pipe pb, to be written at due_ns. */
typedef struct seg {
    struct seg *next;
    pipe_buf_t *pb;
    uint64_t due_ns;
    size_t len;
    int eof; /* the sender half-closed here (len 0, no pipe) */
} seg_t;

struct pair;

typedef struct end {
    struct pair *p;
    int fd;
    uint32_t events;
    int gone; /* both directions finished: out of epoll (HUP would spin) */
} end_t;

/* One direction: bytes read from `from`, written to `to` once due. */
typedef struct dir {
    end_t *from, *to;
    seg_t *head, *tail;
    pipe_buf_t *pipes, *pipes_tail; /* the chain the segments live in */
    int read_eof;                   /* from sent FIN: stop reading */
    int blocked;                    /* to's send buffer is full */
    int shut_done;                  /* the FIN reached to */
    uint64_t link_free_ns;          /* with a rate: when the link has sent what it holds */
} dir_t;

typedef struct pair {
    end_t a, b; /* a accepted, b onward */
    dir_t ab, ba;
    int b_connecting;
    int dead;
    struct pair *next, *prev;
} pair_t;

static int epfd, tfd;
static uint64_t delay_ns;
static uint64_t rate_bps; /* bytes per second each way; 0: no limit */
static struct sockaddr_in to_addr;
static pair_t *pairs;
static pipe_buf_t *pipes_free;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static void end_set(end_t *e, uint32_t ev)
{
    struct epoll_event x = {.events = ev, .data.ptr = e};
    if (e->gone || e->events == ev)
        return;
    e->events = ev;
    epoll_ctl(epfd, EPOLL_CTL_MOD, e->fd, &x);
}

static pipe_buf_t *pipe_get(void)
{
    pipe_buf_t *pb = pipes_free;
    int fds[2];

    if (pb != NULL) {
        pipes_free = pb->next;
    } else {
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0 || (pb = malloc(sizeof *pb)) == NULL)
            return NULL;
        (void) fcntl(fds[1], F_SETPIPE_SZ, PIPE_SIZE); /* less is fine, only slower */
        pb->r = fds[0];
        pb->w = fds[1];
    }
    pb->next = NULL;
    pb->fill = 0;
    pb->full = 0;
    return pb;
}

/* An empty pipe goes back to the free list; one with bytes left (a killed
 * pair) is closed, since nothing reads those bytes out. */
static void pipe_put(pipe_buf_t *pb)
{
    if (pb->fill != 0) {
        close(pb->r);
        close(pb->w);
        free(pb);
        return;
    }
    pb->next = pipes_free;
    pipes_free = pb;
}

static void dir_free_queue(dir_t *d)
{
    while (d->head) {
        seg_t *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    while (d->pipes) {
        pipe_buf_t *pb = d->pipes;
        d->pipes = pb->next;
        pipe_put(pb);
    }
    d->pipes_tail = NULL;
}

/* Closes both sides now (pending bytes are dropped, as a reset drops them);
 * freed by pair_reap() after the event batch, which may hold both ends. */
static void pair_kill(pair_t *p)
{
    if (p->dead)
        return;
    p->dead = 1;
    close(p->a.fd);
    close(p->b.fd);
    dir_free_queue(&p->ab);
    dir_free_queue(&p->ba);
}

static void pair_reap(void)
{
    pair_t *p = pairs, *next;
    for (; p; p = next) {
        next = p->next;
        if (!p->dead)
            continue;
        if (p->prev)
            p->prev->next = p->next;
        else
            pairs = p->next;
        if (p->next)
            p->next->prev = p->prev;
        free(p);
    }
}

static void pair_update(pair_t *p)
{
    uint32_t a = 0, b = 0;
    if (p->dead)
        return;
    if (!p->ab.read_eof)
        a |= EPOLLIN;
    if (!p->ba.read_eof)
        b |= EPOLLIN;
    if (p->b_connecting || p->ab.blocked)
        b |= EPOLLOUT;
    if (p->ba.blocked)
        a |= EPOLLOUT;
    end_set(&p->a, a);
    end_set(&p->b, b);
}

static int dir_push(dir_t *d, pipe_buf_t *pb, size_t n, int eof)
{
    seg_t *c = malloc(sizeof *c);
    if (!c)
        return -1;
    c->next = NULL;
    c->pb = pb;
    c->due_ns = now_ns();
    if (rate_bps) {
        if (d->link_free_ns < c->due_ns)
            d->link_free_ns = c->due_ns;
        d->link_free_ns += (uint64_t) n * 1000000000ull / rate_bps;
        c->due_ns = d->link_free_ns;
    }
    c->due_ns += delay_ns;
    c->len = n;
    c->eof = eof;
    if (pb)
        pb->fill += n;
    if (d->tail)
        d->tail->next = c;
    else
        d->head = c;
    d->tail = c;
    return 0;
}

/* The pipe new bytes go into: the chain's tail unless it is full. */
static pipe_buf_t *dir_tail_pipe(dir_t *d)
{
    pipe_buf_t *pb = d->pipes_tail;
    if (pb && pb->full && pb->fill == 0)
        pb->full = 0; /* drained since: room again */
    if (pb && !pb->full)
        return pb;
    if ((pb = pipe_get()) == NULL)
        return NULL;
    if (d->pipes_tail)
        d->pipes_tail->next = pb;
    else
        d->pipes = pb;
    d->pipes_tail = pb;
    return pb;
}

/* Reads what the sender has (bounded per wake-up); -1 kills the pair. */
static int dir_read(dir_t *d)
{
    for (int i = 0; i < READS_PER_WAKE && !d->read_eof; i++) {
        pipe_buf_t *pb = dir_tail_pipe(d);
        ssize_t n;
        int avail = 0;
        if (!pb)
            return -1;
        n = splice(d->from->fd, NULL, pb->w, NULL, READ_MAX, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            if (dir_push(d, pb, (size_t) n, 0) < 0)
                return -1;
            continue;
        }
        if (n == 0) {
            d->read_eof = 1;
            return dir_push(d, NULL, 0, 1);
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -1;
        /* EAGAIN: the socket is empty, or the pipe has no free slot */
        if (pb->fill == 0 || ioctl(d->from->fd, FIONREAD, &avail) < 0 || avail <= 0)
            return 0;
        pb->full = 1;
    }
    return 0;
}

/* Writes every segment that is due; -1 kills the pair. */
static int dir_flush(dir_t *d, uint64_t now)
{
    while (d->head && d->head->due_ns <= now) {
        seg_t *c = d->head;
        if (c->eof) {
            shutdown(d->to->fd, SHUT_WR);
            d->shut_done = 1;
        } else {
            while (c->len > 0) {
                ssize_t n = splice(c->pb->r, NULL, d->to->fd, NULL, c->len,
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    if (errno == EAGAIN) {
                        d->blocked = 1;
                        return 0;
                    }
                    return -1;
                }
                if (n == 0)
                    return -1; /* the pipe holds less than recorded: cannot happen */
                c->len -= (size_t) n;
                c->pb->fill -= (size_t) n;
            }
            /* a drained pipe that is not being filled any more is done */
            if (c->pb->fill == 0 && c->pb != d->pipes_tail) {
                d->pipes = c->pb->next;
                pipe_put(c->pb);
            }
        }
        d->head = c->next;
        if (!d->head)
            d->tail = NULL;
        free(c);
    }
    d->blocked = 0;
    return 0;
}

static void pair_flush(pair_t *p, uint64_t now)
{
    if (p->dead || p->b_connecting)
        return;
    if (dir_flush(&p->ab, now) < 0 || dir_flush(&p->ba, now) < 0) {
        pair_kill(p);
        return;
    }
    if (p->ab.shut_done && p->ba.shut_done)
        pair_kill(p); /* both FINs delivered: nothing left to carry */
}

/* Arms the timer for the earliest due segment that can be written. */
static void timer_arm(void)
{
    uint64_t next = 0;
    struct itimerspec its;
    for (pair_t *p = pairs; p; p = p->next) {
        dir_t *ds[2] = {&p->ab, &p->ba};
        if (p->dead || p->b_connecting)
            continue;
        for (int i = 0; i < 2; i++) {
            if (ds[i]->head && !ds[i]->blocked && (!next || ds[i]->head->due_ns < next))
                next = ds[i]->head->due_ns;
        }
    }
    memset(&its, 0, sizeof its);
    if (next) {
        its.it_value.tv_sec = (time_t) (next / 1000000000ull);
        its.it_value.tv_nsec = (long) (next % 1000000000ull);
        if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
            its.it_value.tv_nsec = 1; /* zero would disarm */
    }
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void on_accept(int lfd)
{
    int one = 1;
    for (int k = 0; k < 64; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK), bfd;
        pair_t *p;
        if (fd < 0)
            return;
        bfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        p = calloc(1, sizeof *p);
        if (bfd < 0 || !p ||
            (connect(bfd, (struct sockaddr *) &to_addr, sizeof to_addr) < 0 &&
             errno != EINPROGRESS)) {
            if (bfd >= 0)
                close(bfd);
            close(fd);
            free(p);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        p->a = (end_t){.p = p, .fd = fd};
        p->b = (end_t){.p = p, .fd = bfd};
        p->ab = (dir_t){.from = &p->a, .to = &p->b};
        p->ba = (dir_t){.from = &p->b, .to = &p->a};
        p->b_connecting = 1;
        p->next = pairs;
        if (pairs)
            pairs->prev = p;
        pairs = p;
        struct epoll_event ea = {.events = 0, .data.ptr = &p->a};
        struct epoll_event eb = {.events = 0, .data.ptr = &p->b};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ea);
        epoll_ctl(epfd, EPOLL_CTL_ADD, bfd, &eb);
        pair_update(p);
    }
}

static void on_event(end_t *e, uint32_t ev)
{
    pair_t *p = e->p;
    dir_t *rd = e == &p->a ? &p->ab : &p->ba; /* e reads into rd */
    dir_t *wd = e == &p->a ? &p->ba : &p->ab; /* wd writes to e */
    if (p->dead || e->gone)
        return;
    if (e == &p->b && p->b_connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            pair_kill(p);
            return;
        }
        p->b_connecting = 0;
    }
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !rd->read_eof && dir_read(rd) < 0) {
        pair_kill(p);
        return;
    }
    if ((ev & EPOLLERR) || ((ev & EPOLLHUP) && rd->read_eof && !wd->shut_done)) {
        pair_kill(p); /* reset: what is queued for e cannot arrive */
        return;
    }
    if ((ev & EPOLLHUP) && rd->read_eof) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, e->fd, NULL);
        e->gone = 1;
    }
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
    struct sockaddr_in la;
    int lfd, one = 1, have_l = 0, have_c = 0, have_d = 0, bad = 0;
    static char timer_tag, listen_tag;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            have_l = parse_addr(argv[i + 1], &la) == 0;
        else if (strcmp(argv[i], "--connect") == 0)
            have_c = parse_addr(argv[i + 1], &to_addr) == 0;
        else if (strcmp(argv[i], "--delay-ms") == 0) {
            char *end;
            double ms = strtod(argv[i + 1], &end);
            have_d = *end == 0 && ms >= 0 && ms <= 60000;
            delay_ns = (uint64_t) (ms * 1e6);
        } else if (strcmp(argv[i], "--rate-kib") == 0) {
            char *end;
            unsigned long kib = strtoul(argv[i + 1], &end, 10);
            bad |= *end || kib == 0 || kib > 100ul * 1024 * 1024;
            rate_bps = (uint64_t) kib * 1024;
        }
    }
    if ((argc != 7 && argc != 9) || !have_l || !have_c || !have_d || bad) {
        fprintf(stderr, "usage: delayrelay --listen 127.0.0.1:L --connect 127.0.0.1:C "
                        "--delay-ms D [--rate-kib R]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    {
        /* two descriptors per queued pipe: the queue is unbounded, let fds be too */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *) &la, sizeof la) < 0 || listen(lfd, 1024) < 0) {
        perror("delayrelay: bind/listen");
        return 1;
    }
    epfd = epoll_create1(0);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (epfd < 0 || tfd < 0) {
        perror("delayrelay: epoll/timerfd");
        return 1;
    }
    struct epoll_event el = {.events = EPOLLIN, .data.ptr = &listen_tag};
    struct epoll_event et = {.events = EPOLLIN, .data.ptr = &timer_tag};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &el);
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &et);

    for (;;) {
        struct epoll_event evs[64];
        uint64_t now;
        int n = epoll_wait(epfd, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &listen_tag) {
                on_accept(lfd);
            } else if (tag == &timer_tag) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0) {
                    /* spurious wake-up: the flush below checks due times */
                }
            } else {
                on_event(tag, evs[i].events);
            }
        }
        now = now_ns();
        for (pair_t *p = pairs; p; p = p->next) {
            pair_flush(p, now);
            pair_update(p);
        }
        pair_reap();
        timer_arm();
    }
}
