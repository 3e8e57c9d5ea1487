/*
 * loadgen: the benchmark client. One thread, epoll, non-blocking sockets.
 *
 *   loadgen --connect 127.0.0.1:P --target 127.0.0.1:O [--proxy]
 *           [--streams S] [--total T] [--bytes N | --upload N]
 *           [--rate BPS] [--max-time SEC] [--open-parallel P]
 *           [--slow K --slow-rate BPS --slow-bytes N]
 *           [--idle] [--notify-flowing]
 *
 * Each stream: TCP connect to --connect; with --proxy send
 * "CONNECT target" and wait for a 200; then one HTTP/1.1 request to the
 * origin through the stream (GET /bytes/N, or POST /upload with N bytes),
 * read the whole response, close.  S streams run at once, T in total
 * (T = 0: keep S running until --max-time or SIGTERM).
 *
 * --idle: every stream fetches /bytes/1 and then stays open; when all are
 *   open "READY ok=.. failed=.." is printed, and the streams are held until
 *   stdin reaches EOF (or --max-time), then closed.
 * --slow: K extra streams reading at most BPS each; they are cut when the
 *   normal streams are done (slow-reader workload).
 * --notify-flowing: print "FLOWING" once the first body bytes arrive.
 *
 * Prints one JSON object with counts, throughput and latency percentiles
 * (open = connect start -> CONNECT 200, or -> TCP connected without proxy;
 * ttfb = connect start -> response header; done = connect start -> last byte).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HDR_MAX  1024
#define READ_BUF (256 * 1024)

enum phase { PH_CONNECTING, PH_PROXY, PH_SEND, PH_HEADER, PH_BODY, PH_IDLE };

typedef struct stream {
    int fd;
    int slow;
    enum phase phase;
    int throttled;
    struct stream *next_throttled;
    struct stream *prev, *next; /* all live streams, freed at exit */
    uint32_t events;
    int64_t t_start, t_open, t_first, t_body;
    uint64_t body_len, body_got;
    uint64_t up_left;
    size_t req_len, req_off;
    size_t hdr_len;
    char req[256];
    char hdr[HDR_MAX];
} stream_t;

static struct {
    struct sockaddr_in connect;
    char target[64];
    int proxy, idle, notify_flowing;
    long streams, total, open_parallel, slow;
    uint64_t bytes, upload, rate, slow_rate, slow_bytes;
    double max_time;
} opt = {.streams = 1, .total = -1, .open_parallel = 256};

static int epfd;
static volatile sig_atomic_t stop_flag;
static char read_buf[READ_BUF];
static char up_buf[READ_BUF];

static long started, opening, active, ok, failed, timedout, idle_ready, slow_active;
static uint64_t bytes_total, slow_bytes_total;
static int flowing_said;
static int64_t t0, t_last;
static double *lat_open, *lat_ttfb, *lat_done;
static long n_open, n_ttfb, n_done, lat_cap;
static char first_error[160];
static stream_t *throttled_list;
static stream_t *live_list;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_signal(int sig)
{
    (void) sig;
    stop_flag = 1;
}

static void note_error(const char *what)
{
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "%s", what);
}

static void lat_push(double *arr, long *n, int64_t ns)
{
    if (*n < lat_cap)
        arr[(*n)++] = (double) ns / 1e6;
}

static void stream_events(stream_t *s, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = s};
    if (s->events == ev)
        return;
    s->events = ev;
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &e);
}

static void stream_end(stream_t *s, int success)
{
    int64_t t = now_ns();
    if (s->slow) {
        slow_active--;
    } else {
        active--;
        if (success) {
            ok++;
            lat_push(lat_done, &n_done, t - s->t_start);
        } else {
            failed++;
        }
        t_last = t;
    }
    if (s->phase <= PH_PROXY)
        opening--;
    if (s->prev)
        s->prev->next = s->next;
    else
        live_list = s->next;
    if (s->next)
        s->next->prev = s->prev;
    close(s->fd);
    free(s);
}

static void stream_request(stream_t *s)
{
    uint64_t up = s->slow ? 0 : opt.upload;
    uint64_t down = s->slow ? opt.slow_bytes : (opt.idle ? 1 : opt.bytes);
    if (up > 0)
        s->req_len = (size_t) snprintf(s->req, sizeof s->req,
                                       "POST /upload HTTP/1.1\r\nHost: %s\r\n"
                                       "Content-Length: %llu\r\n\r\n",
                                       opt.target, (unsigned long long) up);
    else
        s->req_len = (size_t) snprintf(s->req, sizeof s->req,
                                       "GET /bytes/%llu HTTP/1.1\r\nHost: %s\r\n\r\n",
                                       (unsigned long long) down, opt.target);
    s->req_off = 0;
    s->up_left = up;
    s->hdr_len = 0;
    s->phase = PH_SEND;
    stream_events(s, EPOLLOUT);
}

static void stream_opened(stream_t *s)
{
    s->t_open = now_ns();
    opening--;
    if (!s->slow)
        lat_push(lat_open, &n_open, s->t_open - s->t_start);
    stream_request(s);
}

static int stream_start(int slow)
{
    stream_t *s = calloc(1, sizeof *s);
    int one = 1;
    if (!s)
        return -1;
    s->slow = slow;
    s->next = live_list;
    if (live_list)
        live_list->prev = s;
    live_list = s;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        note_error("socket() failed (fd limit?)");
        live_list = s->next;
        if (live_list)
            live_list->prev = NULL;
        free(s);
        return -1;
    }
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->t_start = now_ns();
    s->phase = PH_CONNECTING;
    s->events = EPOLLOUT;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &e);
    opening++;
    if (slow) {
        slow_active++;
    } else {
        active++;
        started++;
    }
    if (connect(s->fd, (struct sockaddr *) &opt.connect, sizeof opt.connect) < 0 &&
        errno != EINPROGRESS) {
        note_error("connect failed");
        stream_end(s, 0);
    }
    return 0;
}

/* Finds the end of an HTTP header in s->hdr; returns its length or 0. */
static size_t hdr_complete(stream_t *s)
{
    char *e = memmem(s->hdr, s->hdr_len, "\r\n\r\n", 4);
    return e ? (size_t) (e - s->hdr) + 4 : 0;
}

static int status_ok(const char *h)
{
    const char *sp = memchr(h, ' ', 16);
    return sp && strncmp(sp + 1, "200", 3) == 0;
}

static void note_status(stream_t *s, const char *what)
{
    char buf[120];
    size_t n = 0;
    while (n < s->hdr_len && n < 60 && s->hdr[n] != '\r')
        n++;
    snprintf(buf, sizeof buf, "%s: %.*s", what, (int) n, s->hdr);
    note_error(buf);
}

static uint64_t parse_clen(const char *h, size_t len)
{
    const char *p = h, *end = h + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t) (end - p));
        if (!eol)
            break;
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            return strtoull(p + 15, NULL, 10);
        p = eol + 1;
    }
    return 0;
}

static int64_t rate_allowance(stream_t *s, int64_t t)
{
    uint64_t rate = s->slow ? opt.slow_rate : opt.rate;
    if (!rate)
        return READ_BUF;
    double allowed = (double) rate * (double) (t - s->t_body) / 1e9 + 4096.0;
    return (int64_t) allowed - (int64_t) s->body_got;
}

static void body_bytes(stream_t *s, size_t n)
{
    s->body_got += n;
    if (s->slow) {
        slow_bytes_total += n;
    } else {
        bytes_total += n;
        if (opt.notify_flowing && !flowing_said) {
            flowing_said = 1;
            printf("FLOWING\n");
            fflush(stdout);
        }
    }
}

/* Returns -1 failed, 1 finished, 0 continue. */
static int stream_io(stream_t *s, uint32_t ev)
{
    if (s->phase == PH_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            note_error(strerror(err));
            return -1;
        }
        if (opt.proxy) {
            s->req_len = (size_t) snprintf(s->req, sizeof s->req,
                                           "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                                           opt.target, opt.target);
            if (send(s->fd, s->req, s->req_len, MSG_NOSIGNAL) != (ssize_t) s->req_len) {
                note_error("CONNECT send failed");
                return -1;
            }
            s->phase = PH_PROXY;
            s->hdr_len = 0;
            stream_events(s, EPOLLIN);
            return 0;
        }
        stream_opened(s);
        return 0;
    }
    if (s->phase == PH_PROXY) {
        ssize_t n = read(s->fd, s->hdr + s->hdr_len, HDR_MAX - 1 - s->hdr_len);
        size_t h;
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN)
                return 0;
            note_error("proxy closed before CONNECT answer");
            return -1;
        }
        s->hdr_len += (size_t) n;
        h = hdr_complete(s);
        if (!h)
            return s->hdr_len >= HDR_MAX - 1 ? -1 : 0;
        if (!status_ok(s->hdr)) {
            note_status(s, "CONNECT refused");
            return -1;
        }
        stream_opened(s);
        return 0;
    }
    if (s->phase == PH_SEND) {
        while (s->req_off < s->req_len) {
            ssize_t n = send(s->fd, s->req + s->req_off, s->req_len - s->req_off, MSG_NOSIGNAL);
            if (n < 0)
                return errno == EAGAIN ? 0 : -1;
            s->req_off += (size_t) n;
        }
        while (s->up_left > 0) {
            size_t want = s->up_left < READ_BUF ? (size_t) s->up_left : READ_BUF;
            ssize_t n = send(s->fd, up_buf, want, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN)
                    return 0;
                note_error("upload send failed");
                return -1;
            }
            s->up_left -= (uint64_t) n;
            if (!s->slow)
                bytes_total += (uint64_t) n;
        }
        s->phase = PH_HEADER;
        stream_events(s, EPOLLIN);
        return 0;
    }
    if (s->phase == PH_HEADER) {
        ssize_t n = read(s->fd, s->hdr + s->hdr_len, HDR_MAX - 1 - s->hdr_len);
        size_t h;
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN)
                return 0;
            note_error("closed before response header");
            return -1;
        }
        s->hdr_len += (size_t) n;
        h = hdr_complete(s);
        if (!h)
            return s->hdr_len >= HDR_MAX - 1 ? -1 : 0;
        if (!status_ok(s->hdr)) {
            note_status(s, "origin answer");
            return -1;
        }
        s->t_first = s->t_body = now_ns();
        if (!s->slow)
            lat_push(lat_ttfb, &n_ttfb, s->t_first - s->t_start);
        s->body_len = parse_clen(s->hdr, h);
        s->phase = PH_BODY;
        if (s->hdr_len > h)
            body_bytes(s, s->hdr_len - h);
    }
    if (s->phase == PH_BODY) {
        if (s->throttled)
            return 0; /* re-armed by the main loop */
        while (s->body_got < s->body_len) {
            int64_t allow = rate_allowance(s, now_ns());
            size_t want = READ_BUF;
            ssize_t n;
            if (allow <= 0) {
                s->throttled = 1;
                s->next_throttled = throttled_list;
                throttled_list = s;
                stream_events(s, 0);
                return 0;
            }
            if ((uint64_t) allow < want)
                want = (size_t) allow;
            if (s->body_len - s->body_got < want)
                want = (size_t) (s->body_len - s->body_got);
            n = read(s->fd, read_buf, want);
            if (n <= 0) {
                if (n < 0 && errno == EAGAIN)
                    return 0;
                note_error("closed during body");
                return -1;
            }
            body_bytes(s, (size_t) n);
        }
        if (opt.idle && !s->slow) {
            s->phase = PH_IDLE;
            idle_ready++;
            stream_events(s, EPOLLIN | EPOLLRDHUP);
            return 0;
        }
        return 1;
    }
    if (s->phase == PH_IDLE && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) {
        note_error("idle stream closed by peer");
        idle_ready--;
        return -1;
    }
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, long n, double p)
{
    long k;
    if (n == 0)
        return -1;
    k = (long) ceil(p * (double) n) - 1;
    if (k < 0)
        k = 0;
    return v[k];
}

static void print_lat(const char *name, double *v, long n)
{
    qsort(v, (size_t) n, sizeof *v, cmp_double);
    printf(",\"%s_n\":%ld,\"%s_p50_ms\":%.3f,\"%s_p99_ms\":%.3f,\"%s_max_ms\":%.3f", name, n,
           name, pct(v, n, 0.5), name, pct(v, n, 0.99), name, n ? v[n - 1] : -1.0);
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --connect A:P --target A:P [--proxy] [--streams S] "
                    "[--total T] [--bytes N|--upload N] [--rate BPS] [--max-time S] "
                    "[--open-parallel P] [--slow K --slow-rate BPS --slow-bytes N] "
                    "[--idle] [--notify-flowing]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    int have_connect = 0;
    int64_t deadline = 0;
    int ready_said = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--connect")) {
            if (parse_addr(v, &opt.connect) < 0)
                usage();
            have_connect = 1;
        } else if (ARG("--target")) {
            snprintf(opt.target, sizeof opt.target, "%s", v);
        } else if (ARG("--streams")) {
            opt.streams = atol(v);
        } else if (ARG("--total")) {
            opt.total = atol(v);
        } else if (ARG("--bytes")) {
            opt.bytes = strtoull(v, NULL, 10);
        } else if (ARG("--upload")) {
            opt.upload = strtoull(v, NULL, 10);
        } else if (ARG("--rate")) {
            opt.rate = strtoull(v, NULL, 10);
        } else if (ARG("--max-time")) {
            opt.max_time = atof(v);
        } else if (ARG("--open-parallel")) {
            opt.open_parallel = atol(v);
        } else if (ARG("--slow")) {
            opt.slow = atol(v);
        } else if (ARG("--slow-rate")) {
            opt.slow_rate = strtoull(v, NULL, 10);
        } else if (ARG("--slow-bytes")) {
            opt.slow_bytes = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--proxy") == 0) {
            opt.proxy = 1;
        } else if (strcmp(a, "--idle") == 0) {
            opt.idle = 1;
        } else if (strcmp(a, "--notify-flowing") == 0) {
            opt.notify_flowing = 1;
        } else {
            usage();
        }
#undef ARG
    }
    if (!have_connect || !opt.target[0] || opt.streams < 1)
        usage();
    if (opt.total < 0)
        opt.total = opt.streams;
    if (opt.open_parallel < 1)
        opt.open_parallel = 1;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    memset(up_buf, 'u', sizeof up_buf);
    lat_cap = (opt.total > 0 ? opt.total : 1000000) + 16;
    if (lat_cap > 4000000)
        lat_cap = 4000000;
    lat_open = calloc((size_t) lat_cap, sizeof(double));
    lat_ttfb = calloc((size_t) lat_cap, sizeof(double));
    lat_done = calloc((size_t) lat_cap, sizeof(double));
    epfd = epoll_create1(0);
    if (!lat_open || !lat_ttfb || !lat_done || epfd < 0)
        return 1;

    t0 = t_last = now_ns();
    if (opt.max_time > 0)
        deadline = t0 + (int64_t) (opt.max_time * 1e9);
    for (long k = 0; k < opt.slow; k++)
        stream_start(1);

    for (;;) {
        struct epoll_event evs[512];
        int64_t t = now_ns();
        int n, any_throttled = opt.rate || opt.slow_rate;

        if (stop_flag || (deadline && t >= deadline))
            break;
        /* launch new streams, bounded by concurrency and in-flight opens */
        while (active < opt.streams && opening < opt.open_parallel &&
               (opt.total == 0 || started < opt.total)) {
            if (stream_start(0) < 0) {
                failed++;
                started++;
                break;
            }
        }
        if (opt.idle && !ready_said && started >= opt.total && opening == 0 &&
            idle_ready + failed >= opt.total) {
            printf("READY ok=%ld failed=%ld\n", idle_ready, failed);
            fflush(stdout);
            ready_said = 1;
            struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
            epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &e);
        }
        if (!opt.idle && opt.total > 0 && started >= opt.total && active == 0)
            break;

        n = epoll_wait(epfd, evs, 512, any_throttled ? 5 : 100);
        for (int i = 0; i < n; i++) {
            stream_t *s = evs[i].data.ptr;
            int r;
            if (!s) { /* stdin: EOF or anything ends the idle hold */
                stop_flag = 1;
                continue;
            }
            r = stream_io(s, evs[i].events);
            if (r != 0)
                stream_end(s, r > 0);
        }
        if (throttled_list) {
            /* re-arm rate-limited streams whose allowance has grown */
            stream_t **pp = &throttled_list;
            int64_t tn = now_ns();
            while (*pp) {
                stream_t *s = *pp;
                if (rate_allowance(s, tn) > 0) {
                    *pp = s->next_throttled;
                    s->throttled = 0;
                    stream_events(s, EPOLLIN);
                } else {
                    pp = &s->next_throttled;
                }
            }
        }
        if (stop_flag)
            break;
        if (opt.slow && active == 0 && started >= opt.total && opt.total > 0)
            break;
    }
    (void) timedout;
    {
        double secs = (double) (t_last - t0) / 1e9;
        if (opt.idle || stop_flag || (deadline && now_ns() >= deadline)) {
            secs = (double) (now_ns() - t0) / 1e9;
            timedout = active;
        }
        if (secs <= 0)
            secs = 1e-9;
        printf(
            "{\"started\":%ld,\"ok\":%ld,\"failed\":%ld,\"unfinished\":%ld,\"idle_ready\":%ld,"
            "\"bytes\":%llu,\"seconds\":%.4f,\"mib_s\":%.2f,\"slow_bytes\":%llu,"
            "\"slow_rate_Bps\":%.0f",
            started, ok, failed, timedout, idle_ready, (unsigned long long) bytes_total, secs,
            (double) bytes_total / 1048576.0 / secs, (unsigned long long) slow_bytes_total,
            opt.slow ? (double) slow_bytes_total / opt.slow / secs : 0.0);
        print_lat("open", lat_open, n_open);
        print_lat("ttfb", lat_ttfb, n_ttfb);
        print_lat("done", lat_done, n_done);
        printf(",\"error\":\"");
        for (const char *p = first_error; *p; p++)
            if (*p != '"' && *p != '\\' && (unsigned char) *p >= 32)
                putchar(*p);
        printf("\"}\n");
        fflush(stdout);
    }
    while (live_list) {
        stream_t *s = live_list;
        live_list = s->next;
        close(s->fd);
        free(s);
    }
    free(lat_open);
    free(lat_ttfb);
    free(lat_done);
    return 0;
}
