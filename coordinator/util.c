/*
 * util.c: clock, time formatting, id syntax and the event log.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "coord.h"

coord_config_t coord_cfg;

int64_t coord_now(void)
{
    return (int64_t) time(NULL);
}

int64_t coord_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t coord_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void coord_time_format(char *out, size_t cap, int64_t t)
{
    time_t tt = (time_t) t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int coord_id_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > COORD_ID_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

void coord_log(const char *event, const char *fmt, ...)
{
    char line[1024], ts[32];
    int n;
    va_list ap;
    int64_t ms = coord_now_ms();

    coord_time_format(ts, sizeof(ts), ms / 1000);
    /* Insert milliseconds before the trailing Z. */
    ts[strlen(ts) - 1] = '\0';
    n = snprintf(line, sizeof(line), "%s.%03dZ %s", ts, (int) (ms % 1000), event);
    if (n < 0 || (size_t) n >= sizeof(line)) {
        n = (int) sizeof(line) - 1;
    }
    if (fmt != NULL && fmt[0] != '\0' && (size_t) n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t) n, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "%s\n", line);
}
