/*
 * status_view.c: `egress status --destinations` and `--watch` (the
 * coordinator's `destinations`, `refused` and `traffic` members).
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "status_view.h"

static long long status_int(json_t *o, const char *key)
{
    return (long long) json_integer_value(json_object_get(o, key));
}

/* n bytes as "812", "1.5K", "3.2M", "1.1G" (the table stays narrow). */
static void status_size(char *out, size_t cap, long long n)
{
    if (n < 1024) {
        snprintf(out, cap, "%lld", n);
    } else if (n < 1024LL * 1024) {
        snprintf(out, cap, "%.1fK", (double) n / 1024);
    } else if (n < 1024LL * 1024 * 1024) {
        snprintf(out, cap, "%.1fM", (double) n / (1024 * 1024));
    } else {
        snprintf(out, cap, "%.1fG", (double) n / (1024 * 1024 * 1024));
    }
}

void status_print_destinations(FILE *out, json_t *status)
{
    json_t *dests = json_object_get(status, "destinations");
    json_t *refused = json_object_get(status, "refused");
    json_t *d;
    size_t i;

    fprintf(out, "%-40s %5s %6s %6s %7s %-15s %8s %8s  %s\n", "HOST", "PORT", "OPENS", "OK",
            "REFUSED", "REASON", "UP", "DOWN", "LAST SEEN");
    json_array_foreach(dests, i, d)
    {
        char up[32], down[32];
        const char *reason = cli_str(d, "reason");

        status_size(up, sizeof(up), status_int(d, "bytesUp"));
        status_size(down, sizeof(down), status_int(d, "bytesDown"));
        fprintf(out, "%-40s %5lld %6lld %6lld %7lld %-15s %8s %8s  %s\n", cli_str(d, "host"),
                status_int(d, "port"), status_int(d, "opens"), status_int(d, "opened"),
                status_int(d, "refused"), *reason ? reason : "-", up, down,
                cli_str(d, "lastSeen"));
    }
    if (json_array_size(dests) == 0) {
        fprintf(out, "(no destinations yet)\n");
    }
    if (status_int(status, "destinationsEvicted") > 0) {
        fprintf(out,
                "(%lld older destinations forgotten: the table keeps the 100 most recent)\n",
                status_int(status, "destinationsEvicted"));
    }
    if (json_array_size(refused) > 0) {
        fprintf(out, "\nrefused:\n");
    }
    json_array_foreach(refused, i, d)
    {
        const char *cmd = cli_str(d, "allowCommand");

        fprintf(out, "  %s:%lld  %s (%s), %lld times\n", cli_str(d, "host"),
                status_int(d, "port"), cli_str(d, "reasonText"), cli_str(d, "reason"),
                status_int(d, "count"));
        if (*cmd) {
            fprintf(out, "    allow it: %s\n", cmd);
        }
    }
}

static volatile sig_atomic_t status_stop;

static void status_on_signal(int sig)
{
    (void) sig;
    status_stop = 1;
}

/* The last element of the traffic array key, or -1. */
static long long status_sample(json_t *traffic, const char *key, long long back)
{
    json_t *a = json_object_get(traffic, key);
    size_t n = json_array_size(a);

    if (back < 0 || (size_t) back >= n) {
        return -1;
    }
    return (long long) json_integer_value(json_array_get(a, n - 1 - (size_t) back));
}

/* Polls just after the coordinator closed a second. */
static void status_sleep_to_next_second(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    cli_sleep_ms(1000 - now.tv_nsec / 1000000L + 50);
}

int status_watch(cli_t *c, const char *path, long count)
{
    struct sigaction sa;
    long long last = 0;
    long printed = 0;
    int rc = EXIT_OK;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = status_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("# bytes per second each way and open streams, one line a second (Ctrl-C ends)\n");
    while (!status_stop && (count <= 0 || printed < count)) {
        json_t *resp = NULL, *traffic;
        long long end, t;
        int st = cli_api(c, "GET", path, NULL, &resp);

        if (st < 0) {
            rc = status_stop ? EXIT_OK : 5; /* Ctrl-C during the request */
            break;
        }
        if (st != 200) {
            rc = cli_api_fail(c, st, resp, "status");
            json_decref(resp);
            break;
        }
        traffic = json_object_get(resp, "traffic");
        end = status_int(traffic, "endUnix");
        /* seconds since the last line, at most 10 (a late poll catches up) */
        t = last == 0 || end - last > 10 ? end : last + 1;
        for (; t <= end && (count <= 0 || printed < count); t++) {
            char ts[32];
            time_t tt = (time_t) t;
            struct tm tm;

            gmtime_r(&tt, &tm);
            strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf("%s up=%lld down=%lld streams=%lld\n", ts,
                   status_sample(traffic, "up", end - t),
                   status_sample(traffic, "down", end - t),
                   status_sample(traffic, "streams", end - t));
            printed++;
            last = t;
        }
        json_decref(resp);
        if (count > 0 && printed >= count) {
            break;
        }
        status_sleep_to_next_second();
    }
    return rc;
}
