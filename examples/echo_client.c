/* echo_client.c -- a WebSocket echo client in C on libsnow_ws: connects to a URL and sends every message it
 * receives back as it came (text as text, binary as binary) until the server closes the connection.
 *
 *     make build            # builds build/echo_client
 *     build/echo_client ws://127.0.0.1:8765/
 *
 * Its only argument is the URL (ws:// or wss://; wss:// is verified against the system's certificate authorities).
 * --help prints the usage line. permessage-deflate is offered in the mode named by the environment variable
 * SNOW_WS_COMPRESSION (shared, dedicated, or off: not offered), in shared mode when it is unset or empty. It prints nothing while it echoes and exits 0 once the connection that opened has
 * ended, however it ended. A connection that cannot be opened prints one line with the reason
 * (`echo_client: error: connection refused`) and exits 1; a bad command line or URL prints one line naming what is
 * wrong (`echo_client: error: ftp://x/: ...`) and exits 2.
 * This is the client the Autobahn|Testsuite fuzzing server runs against (make autobahn, agent snow-c).
 */

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

/* Binary (SnowWsClientOptions.on_binary_fn): without it, binary messages would reach on_message and go back as
 * text. */
static void *on_binary(void *conn, const uint8_t *data, int64_t len)
{
    snow_ws_send_binary(conn, data, len);
    return NULL;
}

#define USAGE "usage: echo_client URL [--help]"

/* A bad command line gets one line saying what is wrong, and exit status 2. */
static int bad_usage(const char *what, const char *detail)
{
    fprintf(stderr, "echo_client: error: %s%s\n", what, detail);
    return 2;
}

int main(int argc, char **argv)
{
    SnowWsClientOptions opts;
    int64_t client, rc;
    const char *arg = argc > 1 ? argv[1] : "", *mode;

    if (argc == 2 && strcmp(arg, "--help") == 0) {
        printf("%s\n", USAGE);
        return 0;
    }
    if (argc != 2)
        return bad_usage(argc < 2 ? "no URL" : "more than one argument", " (" USAGE ")");
    if (arg[0] == '-')
        return bad_usage(arg, ": unknown option (see echo_client --help)");

    snow_ws_client_options_init(&opts, sizeof opts);
    opts.on_binary_fn = (void *)on_binary;
    opts.compression = SNOW_WS_COMPRESSION_SHARED; /* what echo_server defaults to as well */
    mode = getenv("SNOW_WS_COMPRESSION");
    if (mode != NULL && mode[0] != '\0') {
        if (strcmp(mode, "shared") == 0)
            opts.compression = SNOW_WS_COMPRESSION_SHARED;
        else if (strcmp(mode, "dedicated") == 0)
            opts.compression = SNOW_WS_COMPRESSION_DEDICATED;
        else if (strcmp(mode, "off") == 0)
            opts.compression = SNOW_WS_COMPRESSION_OFF;
        else
            return bad_usage("SNOW_WS_COMPRESSION", ": use off, shared or dedicated");
    }
    client = snow_ws_connect(&opts, arg, NULL, NULL, (void *)on_message, NULL, NULL, NULL);
    if (client < 0) {
        int64_t code = snow_ws_last_error_code();
        fprintf(stderr, "echo_client: error: %s: %s\n", arg, snow_ws_last_error());
        return code == SNOW_WS_E_INVALID_ARGUMENT || code == SNOW_WS_E_INVALID_UTF8 ? 2 : 1;
    }
    /* The open timeout (SnowWsClientOptions.open_timeout_ms, 10 s) ends a silent attempt first: this is a backstop. */
    if (snow_ws_client_wait_open(client, 60000) != 0) {
        fprintf(stderr, "echo_client: error: %s\n", snow_ws_last_error());
        return 1;
    }
    /* Echo until the server closes: the callbacks do the work on the runtime's thread. */
    do
        rc = snow_ws_client_wait_closed(client, 3600 * 1000);
    while (rc != 0 && snow_ws_last_error_code() == SNOW_WS_E_TIMEOUT);
    if (rc != 0) {
        fprintf(stderr, "echo_client: error: %s\n", snow_ws_last_error());
        return 1;
    }
    return 0;
}
