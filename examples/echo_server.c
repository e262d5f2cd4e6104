/* echo_server.c -- a WebSocket echo server in C on libsnow_ws: text comes back as text, binary as binary.
 *
 *     make build            # builds build/echo_server
 *     build/echo_server --port 0 --max-message-size 1048576
 *
 * Options: --host H (127.0.0.1), --port N (8765; 0 picks a free port), --max-message-size N (16 MiB),
 * --ping-interval S (30; 0 disables the heartbeat), --workers N (0: callbacks on the event loop),
 * --compression shared|dedicated|off (permessage-deflate; default: $SNOW_WS_COMPRESSION, else shared),
 * --tls-cert FILE and --tls-key FILE (PEM certificate chain and private key: serve wss://; give both or neither).
 * --help prints the usage line. When ready it prints exactly one line, `listening on ws://HOST:PORT/` (wss:// with
 * TLS), and flushes it. SIGINT or SIGTERM close every connection with 1001 and exit 0; a bad option prints one line naming it and what
 * is wrong (`echo_server: error: --port: 99999 is not a port number (0-65535)`) and exits 2; a port in use prints
 * one error line and exits 1.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snow_ws.h"

/* Text: the message is borrowed for this call only, so it is sent (copied) before returning. */
static void *on_message(void *conn, const SnowString *msg)
{
    snow_ws_send(conn, msg); /* -1 only if the connection is closing: nothing to do then */
    return NULL;
}

/* Binary (SnowWsOptions.on_binary_fn): without it, binary messages would reach on_message and go back as text. */
static void *on_binary(void *conn, const uint8_t *data, int64_t len)
{
    snow_ws_send_binary(conn, data, len);
    return NULL;
}

#define USAGE                                                                                                \
    "usage: echo_server [--host H] [--port N] [--max-message-size N] [--ping-interval S] [--workers N] "       \
    "[--compression shared|dedicated|off] [--tls-cert FILE --tls-key FILE] [--help]"

/* A bad command line gets one line naming the option and what is wrong with it, and exit status 2. */
static void bad_option(const char *option, const char *text, const char *what)
{
    fprintf(stderr, "echo_server: error: %s: %s%s\n", option, text, what);
    exit(2);
}

/* The value after option argv[*i] (moving *i to it). */
static const char *value_of(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        bad_option(argv[*i], "", "needs a value");
    return argv[++*i];
}

/* text as an integer from min to max; else the error "OPTION: TEXT is not EXPECTED". */
static long long int_option(const char *option, const char *text, long long min, long long max, const char *expected)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        bad_option(option, text, expected);
    return v;
}

int main(int argc, char **argv)
{
    SnowWsOptions opts;
    long long value;
    int64_t server;
    const char *host = "127.0.0.1";
    const char *scheme;
    int i;

    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    opts.port = 8765;
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0) {
            puts(USAGE);
            return 0;
        }
        else if (strcmp(arg, "--host") == 0) {
            host = value_of(argc, argv, &i);
        }
        else if (strcmp(arg, "--port") == 0) {
            opts.port = int_option(arg, value_of(argc, argv, &i), 0, 65535, " is not a port number (0-65535)");
        }
        else if (strcmp(arg, "--max-message-size") == 0) {
            opts.max_message_size = int_option(arg, value_of(argc, argv, &i), 1, INT64_MAX,
                                               " is not a number of bytes >= 1");
        }
        else if (strcmp(arg, "--ping-interval") == 0) {
            value = int_option(arg, value_of(argc, argv, &i), 0, INT64_MAX / 1000,
                               " is not a whole number of seconds >= 0");
            opts.ping_interval_ms = value == 0 ? -1 : value * 1000; /* 0 = off; in the struct 0 = default */
        }
        else if (strcmp(arg, "--compression") == 0) {
            const char *mode = value_of(argc, argv, &i);
            if (strcmp(mode, "shared") == 0)
                opts.compression = SNOW_WS_COMPRESSION_SHARED;
            else if (strcmp(mode, "dedicated") == 0)
                opts.compression = SNOW_WS_COMPRESSION_DEDICATED;
            else if (strcmp(mode, "off") == 0)
                opts.compression = SNOW_WS_COMPRESSION_OFF;
            else
                bad_option(arg, mode, " is not shared, dedicated or off");
        }
        else if (strcmp(arg, "--tls-cert") == 0) {
            opts.tls_cert_path = value_of(argc, argv, &i);
        }
        else if (strcmp(arg, "--tls-key") == 0) {
            opts.tls_key_path = value_of(argc, argv, &i);
        }
        else if (strcmp(arg, "--workers") == 0) {
            opts.workers = int_option(arg, value_of(argc, argv, &i), 0, 1024, " is not a number of threads (0-1024)");
        }
        else {
            bad_option(arg, "", "unknown option (see echo_server --help)");
        }
    }
    if ((opts.tls_cert_path == NULL) != (opts.tls_key_path == NULL))
        bad_option(opts.tls_cert_path == NULL ? "--tls-key" : "--tls-cert", "",
                   opts.tls_cert_path == NULL ? "needs --tls-cert too" : "needs --tls-key too");
    opts.host = host;
    opts.on_binary_fn = (void *)on_binary;

    server = snow_ws_start(&opts, NULL, NULL, (void *)on_message, NULL, NULL, NULL);
    if (server < 0) {
        fprintf(stderr, "echo_server: error: %s\n", snow_ws_last_error());
        return 1;
    }
    scheme = opts.tls_cert_path != NULL ? "wss" : "ws";
    if (strchr(host, ':') != NULL)
        printf("listening on %s://[%s]:%lld/\n", scheme, host, (long long)snow_ws_server_port(server));
    else
        printf("listening on %s://%s:%lld/\n", scheme, host, (long long)snow_ws_server_port(server));
    fflush(stdout);

    snow_ws_wait_shutdown();      /* until SIGINT, SIGTERM or snow_ws_shutdown() */
    snow_ws_stop(server, 5000); /* 1001 to every connection, then force after 5 s */
    return 0;
}
