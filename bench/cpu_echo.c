/* cpu_echo.c -- an echo server on libsnow_ws whose on_message burns a fixed amount of CPU before it replies:
 * the workload of bench/bench_workers.py (do C callbacks run in parallel on worker threads?).
 *
 *     cc -O2 -Wall -Wextra -Werror -Iinclude -o build/cpu_echo bench/cpu_echo.c -Lbuild -lsnow_ws \
 *        -Wl,-rpath,$PWD/build
 *     build/cpu_echo --port 0 --workers 2 --burn-us 200
 *
 * Options: --host H (127.0.0.1), --port N (0 picks a free port), --workers N (0: callbacks on the event loop),
 * --burn-us U (200: CPU microseconds burnt per message), --iterations N (spin exactly N iterations per message
 * instead: no calibration), --ping-interval S (0: no heartbeat, the default here), --calibrate (print the
 * calibration line and exit, starting no server).
 *
 * The burn is a spin loop on a volatile counter, a fixed number of iterations per message. That number is
 * calibrated once at start-up with clock_gettime(CLOCK_THREAD_CPUTIME_ID): the loop is timed several times in
 * thread CPU time (which does not advance while the thread is preempted) and the fastest trial is kept, so a
 * busy machine at start-up does not shrink the burn. The calibration goes to stderr as one line:
 *     cpu_echo: burn 200 us = N iterations (spread of the trials P %)
 * Then it prints `listening on ws://HOST:PORT/` on stdout, like the examples. SIGINT/SIGTERM stop it (exit 0).
 * Text comes back as text, binary as binary, both after the burn, through snow_ws_send / snow_ws_send_binary from
 * inside the callback (the library's reply fast path).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snow_ws.h"

static uint64_t burn_iterations;

static void spin(uint64_t n)
{
    volatile uint64_t counter = 0;
    while (counter < n)
        counter = counter + 1;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Iterations of spin() that take burn_us microseconds of this thread's CPU time (best of several trials). */
static uint64_t calibrate(long long burn_us, double *spread_pct)
{
    const uint64_t probe = 2000000; /* a few ms per trial: far above the clock's resolution */
    uint64_t best = UINT64_MAX, worst = 0;
    int i;
    spin(probe); /* warm-up: page in, settle the clock frequency */
    for (i = 0; i < 15; i++) {
        uint64_t t0 = thread_cpu_ns(), dt;
        spin(probe);
        dt = thread_cpu_ns() - t0;
        if (dt == 0)
            dt = 1;
        if (dt < best)
            best = dt;
        if (dt > worst)
            worst = dt;
    }
    *spread_pct = 100.0 * (double)(worst - best) / (double)best;
    return (uint64_t)((double)probe * (double)burn_us * 1000.0 / (double)best);
}

static void *on_message(void *conn, const SnowString *msg)
{
    spin(burn_iterations);
    snow_ws_send(conn, msg);
    return NULL;
}

static void *on_binary(void *conn, const uint8_t *data, int64_t len)
{
    spin(burn_iterations);
    snow_ws_send_binary(conn, data, len);
    return NULL;
}

static int parse_int(const char *text, long long min, long long max, long long *out)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: cpu_echo [--host H] [--port N] [--workers N] [--burn-us U | --iterations N] "
                    "[--ping-interval S] [--calibrate]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    SnowWsOptions opts;
    long long value, burn_us = 200, ping_s = 0, iterations = -1;
    int calibrate_only = 0;
    const char *host = "127.0.0.1";
    double spread = 0.0;
    int64_t server;
    int i;

    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--calibrate") == 0) {
            calibrate_only = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(arg, "--host") == 0)
            host = argv[++i];
        else if (strcmp(arg, "--port") == 0 && parse_int(argv[++i], 0, 65535, &value) == 0)
            opts.port = value;
        else if (strcmp(arg, "--workers") == 0 && parse_int(argv[++i], 0, 1024, &value) == 0)
            opts.workers = value;
        else if (strcmp(arg, "--burn-us") == 0 && parse_int(argv[++i], 0, 1000000, &value) == 0)
            burn_us = value;
        else if (strcmp(arg, "--iterations") == 0 && parse_int(argv[++i], 0, INT64_MAX, &value) == 0)
            iterations = value;
        else if (strcmp(arg, "--ping-interval") == 0 && parse_int(argv[++i], 0, INT64_MAX / 1000, &value) == 0)
            ping_s = value;
        else
            usage();
    }
    opts.host = host;
    opts.ping_interval_ms = ping_s == 0 ? -1 : ping_s * 1000;
    opts.on_binary_fn = (void *)on_binary;

    if (iterations >= 0) {
        burn_iterations = (uint64_t)iterations;
        fprintf(stderr, "cpu_echo: burn %llu iterations per message (given)\n", (unsigned long long)iterations);
    }
    else {
        burn_iterations = burn_us > 0 ? calibrate(burn_us, &spread) : 0;
        if (burn_us > 0)
            fprintf(stderr, "cpu_echo: burn %lld us = %llu iterations (spread of the trials %.0f %%)\n", burn_us,
                    (unsigned long long)burn_iterations, spread);
    }
    if (calibrate_only)
        return 0;

    server = snow_ws_start(&opts, NULL, NULL, (void *)on_message, NULL, NULL, NULL);
    if (server < 0) {
        fprintf(stderr, "cpu_echo: error: %s\n", snow_ws_last_error());
        return 1;
    }
    printf("listening on ws://%s:%lld/\n", host, (long long)snow_ws_server_port(server));
    fflush(stdout);
    snow_ws_wait_shutdown();
    snow_ws_stop(server, 5000);
    return 0;
}
