/* snow_ws_serve_tls: unusable files return at once with the file named; then wss:// echo, stopped by a "stop"
 * message (snow_ws_shutdown from the callback). argv: PORT CERT KEY. */
#include "testlib.h"

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    out("message '%s'", m);
    if (strcmp(m, "stop") == 0)
        snow_ws_shutdown();
    else
        snow_ws_send(conn, msg);
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    (void)conn;
    (void)reason;
    out("close %lld", (long long)code);
    return NULL;
}

int main(int argc, char **argv)
{
    SnowString *cert, *key, *missing = S("/nonexistent/snow-cert.pem");
    int64_t port;
    if (argc < 4)
        return 2;
    port = atoll(argv[1]);
    cert = S(argv[2]);
    key = S(argv[3]);

    snow_ws_serve_tls(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port, missing, key);
    out("missing cert: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
    snow_ws_serve_tls(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port, key, key);
    out("key as cert: %s", code_name(snow_ws_last_error_code()));
    snow_ws_serve_tls(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port, NULL, key);
    out("NULL cert: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());

    out("serving wss");
    snow_ws_serve_tls(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port, cert, key);
    out("serve_tls returned");
    snow_string_free(cert);
    snow_string_free(key);
    snow_string_free(missing);
    return 0;
}
