/* mesh_ws_serve (Mesh's name) does not block: it binds the port, returns the server's id at once, and the server
 * accepts while main goes on. A second mesh_ws_serve on the same port, or on port -1, fails at once with the error;
 * from a callback on the event-loop thread it is refused; it leaves a pending snow_ws_shutdown() request pending.
 * snow_ws_shutdown() does not stop the server: main's snow_ws_wait_shutdown() returns and the server still echoes;
 * snow_ws_stop() stops it. argv[1]: a free port. Text "shutdown" calls snow_ws_shutdown() from the callback,
 * "serve here" calls mesh_ws_serve from it, "last" lets main stop the server; anything else is echoed with
 * mesh_ws_send. */
#include "testlib.h"

static int64_t woken = -1;

static void *on_connect(void *conn, const MeshString *path, const SnowHeaders *headers)
{
    char *p = cstr(path);
    (void)headers;
    out("connect %s", p);
    free(p);
    return conn;
}

static void *on_message(void *conn, const MeshString *msg)
{
    char *m = cstr(msg);
    out("message '%s'", m);
    if (strcmp(m, "shutdown") == 0) {
        woken = snow_ws_shutdown();
        bump(0);
    }
    else if (strcmp(m, "serve here") == 0) {
        result("mesh_ws_serve from a callback", mesh_ws_serve(NULL, NULL, NULL, NULL, NULL, NULL, 0));
    }
    else {
        result("mesh_ws_send", mesh_ws_send(conn, msg));
    }
    if (strcmp(m, "last") == 0)
        bump(1);
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
    int64_t port, server, ephemeral;
    if (argc < 2)
        return 2;
    port = atoll(argv[1]);

    server = mesh_ws_serve((void *)on_connect, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port);
    if (server <= 0) {
        out("mesh_ws_serve failed: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
        return 1;
    }
    out("mesh_ws_serve returned a server id");
    out("its port is the given one: %s", snow_ws_server_port(server) == port ? "yes" : "no");
    result("mesh_ws_serve on the same port", mesh_ws_serve(NULL, NULL, NULL, NULL, NULL, NULL, port));
    result("mesh_ws_serve on port -1", mesh_ws_serve(NULL, NULL, NULL, NULL, NULL, NULL, -1));
    result("shutdown with nobody blocked", snow_ws_shutdown());
    ephemeral = mesh_ws_serve(NULL, NULL, NULL, NULL, NULL, NULL, 0);
    out("port 0 binds an ephemeral port: %s", ephemeral > 0 && snow_ws_server_port(ephemeral) > 0 ? "yes" : "no");
    result("wait_shutdown: mesh_ws_serve left the request pending", snow_ws_wait_shutdown());
    result("stop the ephemeral server", snow_ws_stop(ephemeral, 1000));

    out("main goes on: waiting for snow_ws_shutdown");
    result("wait_shutdown", snow_ws_wait_shutdown());
    wait_for(0, 1);
    out("the callback's snow_ws_shutdown woke %lld; the server still serves", (long long)woken);
    wait_for(1, 1);
    result("stop", snow_ws_stop(server, 2000));
    result("stop again", snow_ws_stop(server, 1000));
    out("done");
    return 0;
}
