/* Echo through Mesh's names: mesh_ws_serve on port 0 (read back with snow_ws_server_port), then mesh_ws_send for
 * messages starting with 'T' and mesh_ws_send_binary for the others (with no on_binary callback, binary messages
 * reach on_message as a MeshString holding the raw bytes). "errors" makes the errors of both sends show (they name
 * the mesh_ function; an empty binary frame goes out). A handle used after its on_close is refused. "exit" makes
 * main return with the server still running. */
#include "testlib.h"

static void *closed_conn;

static void *on_message(void *conn, const MeshString *msg)
{
    char *m = cstr(msg);
    MeshString *bad;
    if (strcmp(m, "errors") == 0) {
        bad = snow_string_new("\xff", 1);
        result("mesh_ws_send NULL conn", mesh_ws_send(NULL, msg));
        result("mesh_ws_send NULL msg", mesh_ws_send(conn, NULL));
        result("mesh_ws_send invalid UTF-8", mesh_ws_send(conn, bad));
        result("mesh_ws_send_binary NULL conn", mesh_ws_send_binary(NULL, (const uint8_t *)"x", 1));
        result("mesh_ws_send_binary NULL data", mesh_ws_send_binary(conn, NULL, 3));
        result("mesh_ws_send_binary negative len", mesh_ws_send_binary(conn, (const uint8_t *)"x", -1));
        result("mesh_ws_send_binary NULL data, len 0", mesh_ws_send_binary(conn, NULL, 0));
        snow_string_free(bad);
    }
    else if (strcmp(m, "exit") == 0) {
        bump(1);
    }
    else if (msg->len > 0 && SNOW_STRING_DATA(msg)[0] == 'T') {
        out("text %llu bytes", (unsigned long long)msg->len);
        result("mesh_ws_send", mesh_ws_send(conn, msg));
    }
    else {
        out("binary %llu bytes", (unsigned long long)msg->len);
        result("mesh_ws_send_binary",
               mesh_ws_send_binary(conn, (const uint8_t *)SNOW_STRING_DATA(msg), (int64_t)msg->len));
    }
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const MeshString *reason)
{
    out_close(code, reason);
    closed_conn = conn;
    bump(0);
    return NULL;
}

int main(void)
{
    MeshString *hello = S("hello");
    int64_t server = mesh_ws_serve(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, 0);
    if (server <= 0) {
        out("mesh_ws_serve failed: %s", snow_ws_last_error());
        return 1;
    }
    out("port %lld", (long long)snow_ws_server_port(server));
    wait_for(0, 1);
    result("mesh_ws_send to the closed connection", mesh_ws_send(closed_conn, hello));
    result("mesh_ws_send_binary to the closed connection", mesh_ws_send_binary(closed_conn, (const uint8_t *)"x", 1));
    snow_string_free(hello);
    wait_for(1, 1);
    out("exit with the server running");
    return 0;
}
