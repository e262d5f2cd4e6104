/* client_load: the C client's benchmark load (bench/bench_client_c.py): N client connections made with
 * snow_ws_connect, each keeping K text messages of S bytes in flight against an echo server: every echo that comes
 * back is sent again from on_message. After all are open and a warm-up second, it counts the echoes received for D
 * seconds and prints one JSON line: {"connections": N, "inflight": K, "size": S, "seconds": D, "msgs_per_sec": X}.
 *
 *     client_load URL [N=100] [K=16] [S=32] [D=5]
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snow_ws.h"

static atomic_long echoes;
static SnowString *message;
static int inflight;

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    int i;
    (void)path;
    (void)headers;
    for (i = 0; i < inflight; i++)
        snow_ws_send(conn, message);
    return conn;
}

static void *on_message(void *conn, const SnowString *msg)
{
    atomic_fetch_add_explicit(&echoes, 1, memory_order_relaxed);
    snow_ws_send(conn, msg);
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pause_for(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    int n = argc > 2 ? atoi(argv[2]) : 100, size = argc > 4 ? atoi(argv[4]) : 32, i;
    double seconds = argc > 5 ? atof(argv[5]) : 5.0, t0, t1;
    long c0, c1;
    int64_t *clients;
    char *text;

    inflight = argc > 3 ? atoi(argv[3]) : 16;
    if (argc < 2 || n < 1 || inflight < 1 || size < 0 || seconds <= 0) {
        fprintf(stderr, "usage: client_load URL [N] [K] [S] [SECONDS]\n");
        return 2;
    }
    text = malloc((size_t)size + 1);
    for (i = 0; i < size; i++)
        text[i] = (char)('a' + i % 26);
    message = snow_string_new(text, (uint64_t)size);
    clients = calloc((size_t)n, sizeof *clients);
    for (i = 0; i < n; i++) {
        clients[i] = snow_ws_connect(NULL, argv[1], (void *)on_connect, NULL, (void *)on_message, NULL, NULL, NULL);
        if (clients[i] < 0 || snow_ws_client_wait_open(clients[i], 30000) != 0) {
            fprintf(stderr, "client_load: error: %s\n", snow_ws_last_error());
            return 1;
        }
    }
    pause_for(1.0); /* warm-up */
    c0 = atomic_load(&echoes);
    t0 = now();
    pause_for(seconds);
    c1 = atomic_load(&echoes);
    t1 = now();
    printf("{\"connections\": %d, \"inflight\": %d, \"size\": %d, \"seconds\": %.3f, \"msgs_per_sec\": %.0f}\n", n,
           inflight, size, t1 - t0, (double)(c1 - c0) / (t1 - t0));
    fflush(stdout);
    for (i = 0; i < n; i++)
        snow_ws_client_close(clients[i], 1000, NULL);
    for (i = 0; i < n; i++)
        snow_ws_client_wait_closed(clients[i], 10000);
    free(clients);
    free(text);
    snow_string_free(message);
    return 0;
}
