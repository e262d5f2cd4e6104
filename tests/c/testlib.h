/* Helpers shared by the C test programs of tests/c (each program includes this once).
 *
 * Output: every line goes through out(), which prints and flushes under a lock, so lines written by callbacks on
 * the runtime's threads and by the program's own threads never interleave. The Python side (test_c_programs.py)
 * reads the lines as they come and compares the whole transcript exactly.
 * Waiting: counters bumped by callbacks; wait_for() blocks until one reaches a value, bounded (10 s), and fails
 * the program (exit 3, "TIMEOUT ..." line) otherwise: no sleeps.
 */
#ifndef SNOW_TESTLIB_H
#define SNOW_TESTLIB_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snow_ws.h"

static pthread_mutex_t t_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t t_cond = PTHREAD_COND_INITIALIZER;

static inline void out(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&t_lock);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    pthread_mutex_unlock(&t_lock);
}

/* A NUL-terminated copy of a SnowString, for printing (free it). */
static inline char *cstr(const SnowString *s)
{
    char *p;
    if (s == NULL)
        return strdup("(null)");
    p = malloc((size_t)s->len + 1);
    memcpy(p, SNOW_STRING_DATA(s), (size_t)s->len);
    p[s->len] = '\0';
    return p;
}

/* An owned SnowString from a C string (free it with snow_string_free). */
static inline SnowString *S(const char *text)
{
    return snow_string_new(text, strlen(text));
}

/* "-1 SNOW_WS_E_...: message" or "0" / "N": a call's result and, when it failed, its error. */
static inline const char *code_name(int64_t code)
{
    switch (code) {
#define T_CASE_(name, value, message) \
    case value:                       \
        return #name;
        SNOW_WS_ERRORS(T_CASE_)
#undef T_CASE_
    default:
        return "?";
    }
}

static inline void result(const char *what, int64_t rc)
{
    if (rc < 0)
        out("%s -> %lld %s: %s", what, (long long)rc, code_name(snow_ws_last_error_code()), snow_ws_last_error());
    else
        out("%s -> %lld", what, (long long)rc);
}

static inline void result_ptr(const char *what, const void *p)
{
    if (p == NULL)
        out("%s -> NULL %s: %s", what, code_name(snow_ws_last_error_code()), snow_ws_last_error());
    else
        out("%s -> ok", what);
}

/* Event counters, bumped by callbacks. */
static int t_counters[8];

static inline void bump(int which)
{
    pthread_mutex_lock(&t_lock);
    t_counters[which]++;
    pthread_cond_broadcast(&t_cond);
    pthread_mutex_unlock(&t_lock);
}

static inline void wait_for(int which, int value)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&t_lock);
    while (t_counters[which] < value) {
        if (pthread_cond_timedwait(&t_cond, &t_lock, &deadline) == ETIMEDOUT) {
            printf("TIMEOUT waiting for counter %d to reach %d (at %d)\n", which, value, t_counters[which]);
            fflush(stdout);
            exit(3);
        }
    }
    pthread_mutex_unlock(&t_lock);
}

/* Print "on_close CODE 'REASON'" (what an on_close callback got). */
static inline void out_close(int64_t code, const SnowString *reason)
{
    char *r = cstr(reason);
    out("on_close %lld '%s'", (long long)code, r);
    free(r);
}

/* Options with every default but no heartbeat (struct_size set). */
static inline SnowWsOptions fresh_options(void)
{
    SnowWsOptions o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.ping_interval_ms = -1;
    return o;
}

/* Start a server on 127.0.0.1, an ephemeral port, no heartbeat; print "port N" (the test reads it). */
static inline int64_t start(SnowWsOptions *opts, void *on_connect, void *connect_env, void *on_message,
                            void *message_env, void *on_close, void *close_env)
{
    SnowWsOptions defaults;
    int64_t server;
    if (opts == NULL) {
        memset(&defaults, 0, sizeof defaults);
        defaults.struct_size = sizeof defaults;
        opts = &defaults;
    }
    opts->ping_interval_ms = -1;
    server = snow_ws_start(opts, on_connect, connect_env, on_message, message_env, on_close, close_env);
    if (server < 0) {
        out("start failed: %s", snow_ws_last_error());
        exit(1);
    }
    out("port %lld", (long long)snow_ws_server_port(server));
    return server;
}

#endif
