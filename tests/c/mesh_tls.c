/* mesh_ws_serve_tls blocks, as mesh-rt's does: unusable files and a port in use return at once with the error;
 * then it serves wss:// (echo with mesh_ws_send) until a "stop" message calls snow_ws_shutdown() from the
 * callback, and only then returns. argv: PORT CERT KEY. */
#include "testlib.h"

static void *on_message(void *conn, const MeshString *msg)
{
    char *m = cstr(msg);
    out("message '%s'", m);
    if (strcmp(m, "stop") == 0)
        out("shutdown woke %lld", (long long)snow_ws_shutdown());
    else
        result("mesh_ws_send", mesh_ws_send(conn, msg));
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const MeshString *reason)
{
    (void)conn;
    out_close(code, reason);
    return NULL;
}

int main(int argc, char **argv)
{
    MeshString *cert, *key, *missing = S("/nonexistent/mesh-cert.pem");
    SnowWsOptions opts = fresh_options();
    int64_t port, busy;
    if (argc < 4)
        return 2;
    port = atoll(argv[1]);
    cert = S(argv[2]);
    key = S(argv[3]);

    mesh_ws_serve_tls(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port, missing, key);
    out("missing cert: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
    mesh_ws_serve_tls(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port, NULL, key);
    out("NULL cert: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
    mesh_ws_serve_tls(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port, cert, NULL);
    out("NULL key: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
    busy = snow_ws_start(&opts, NULL, NULL, NULL, NULL, NULL, NULL);
    mesh_ws_serve_tls(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, snow_ws_server_port(busy), cert,
                      key);
    out("port in use: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
    result("stop the busy server", snow_ws_stop(busy, 1000));

    out("serving wss");
    mesh_ws_serve_tls(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port, cert, key);
    out("mesh_ws_serve_tls returned");
    snow_string_free(cert);
    snow_string_free(key);
    snow_string_free(missing);
    return 0;
}
