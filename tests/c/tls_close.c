/* A wss:// server stopped while a client that never sends TLS close_notify is connected: serve_tls ended by
 * SIGTERM (argv: serve PORT CERT KEY), or snow_ws_start with TLS files stopped by snow_ws_stop once the client
 * sends "stop" (argv: stop CERT KEY; prints "port N" first). */
#include "testlib.h"

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    (void)path;
    (void)headers;
    out("connected");
    return conn;
}

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    (void)conn;
    out("message '%s'", m);
    if (strcmp(m, "stop") == 0)
        bump(0);
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    (void)conn;
    out_close(code, reason);
    return NULL;
}

int main(int argc, char **argv)
{
    SnowWsOptions opts;
    SnowString *cert, *key;
    int64_t server;

    if (argc == 5 && strcmp(argv[1], "serve") == 0) {
        cert = S(argv[3]);
        key = S(argv[4]);
        result("init", snow_ws_init());
        snow_ws_serve_tls((void *)on_connect, NULL, NULL, NULL, (void *)on_close, NULL, atoll(argv[2]), cert, key);
        out("serve_tls returned");
        snow_string_free(cert);
        snow_string_free(key);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "stop") == 0) {
        opts = fresh_options();
        opts.tls_cert_path = argv[2];
        opts.tls_key_path = argv[3];
        server = start(&opts, (void *)on_connect, NULL, (void *)on_message, NULL, (void *)on_close, NULL);
        wait_for(0, 1);
        result("stop", snow_ws_stop(server, 10000));
        return 0;
    }
    return 2;
}
