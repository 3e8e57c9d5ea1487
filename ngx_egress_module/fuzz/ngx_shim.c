
/*
 * The few nginx functions ngx_stream_egress_http*.c call, for their libFuzzer
 * targets: Debian's nginx-dev ships nginx's headers but not its .c files.
 * They follow src/core/ngx_string.c; ngx_sprintf knows only the formats
 * the parsers use and abort on any other, so a new one cannot slip past
 * the fuzzer unnoticed.
 */


#include <ngx_config.h>
#include <ngx_core.h>


ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    ngx_uint_t  c1, c2;

    while (n) {
        c1 = (ngx_uint_t) *s1++;
        c2 = (ngx_uint_t) *s2++;

        c1 = (c1 >= 'A' && c1 <= 'Z') ? (c1 | 0x20) : c1;
        c2 = (c2 >= 'A' && c2 <= 'Z') ? (c2 | 0x20) : c2;

        if (c1 == c2) {

            if (c1) {
                n--;
                continue;
            }

            return 0;
        }

        return c1 - c2;
    }

    return 0;
}


ngx_int_t
ngx_atoi(u_char *line, size_t n)
{
    ngx_int_t  value, cutoff, cutlim;

    if (n == 0) {
        return NGX_ERROR;
    }

    cutoff = NGX_MAX_INT_T_VALUE / 10;
    cutlim = NGX_MAX_INT_T_VALUE % 10;

    for (value = 0; n--; line++) {
        if (*line < '0' || *line > '9') {
            return NGX_ERROR;
        }

        if (value >= cutoff && (value > cutoff || *line - '0' > cutlim)) {
            return NGX_ERROR;
        }

        value = value * 10 + (*line - '0');
    }

    return value;
}


/* the same contract for off_t: digits only, NGX_ERROR on overflow */

off_t
ngx_atoof(u_char *line, size_t n)
{
    off_t  value, cutoff, cutlim;

    if (n == 0) {
        return NGX_ERROR;
    }

    cutoff = NGX_MAX_OFF_T_VALUE / 10;
    cutlim = NGX_MAX_OFF_T_VALUE % 10;

    for (value = 0; n--; line++) {
        if (*line < '0' || *line > '9') {
            return NGX_ERROR;
        }

        if (value >= cutoff && (value > cutoff || *line - '0' > cutlim)) {
            return NGX_ERROR;
        }

        value = value * 10 + (*line - '0');
    }

    return value;
}


/* "%ui", "%V", "%s", "%d" and "%%" only */

u_char * ngx_cdecl
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    u_char      *s, tmp[NGX_INT64_LEN + 1];
    size_t       len;
    va_list      args;
    ngx_str_t   *v;
    ngx_int_t    d;
    ngx_uint_t   ui;

    va_start(args, fmt);

    while (*fmt) {

        if (*fmt != '%') {
            *buf++ = *fmt++;
            continue;
        }

        fmt++;

        if (fmt[0] == 'u' && fmt[1] == 'i') {
            ui = va_arg(args, ngx_uint_t);
            len = snprintf((char *) tmp, sizeof(tmp), "%lu", (unsigned long) ui);
            buf = ngx_cpymem(buf, tmp, len);
            fmt += 2;
            continue;
        }

        switch (*fmt) {

        case 'V':
            v = va_arg(args, ngx_str_t *);
            buf = ngx_cpymem(buf, v->data, v->len);
            break;

        case 's':
            s = va_arg(args, u_char *);
            buf = ngx_cpymem(buf, s, ngx_strlen(s));
            break;

        case 'd':
            d = va_arg(args, int);
            len = snprintf((char *) tmp, sizeof(tmp), "%ld", (long) d);
            buf = ngx_cpymem(buf, tmp, len);
            break;

        case '%':
            *buf++ = '%';
            break;

        default:
            abort();
        }

        fmt++;
    }

    va_end(args);

    return buf;
}
