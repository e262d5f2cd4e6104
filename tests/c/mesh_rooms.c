/* Rooms through Mesh's names: mesh_ws_join / mesh_ws_leave / mesh_ws_broadcast / mesh_ws_broadcast_except, the
 * same rooms as the Snow names' (snow_room_member_count counts them). Clients connect to /NAME; each joins room
 * "r" in on_connect. Text commands: "all X" (broadcast), "others X" (broadcast_except itself), "everyone X"
 * (broadcast_except NULL), "leave", "join ROOM", "count", "errors". Ends once three connections have closed. */
#include "testlib.h"

static MeshString *room_r;

static void *on_connect(void *conn, const MeshString *path, const SnowHeaders *headers)
{
    char what[64];
    char *p = cstr(path);
    (void)headers;
    snprintf(what, sizeof what, "%s joins r", p + 1);
    result(what, mesh_ws_join(conn, room_r));
    free(p);
    return conn;
}

static void *on_message(void *conn, const MeshString *msg)
{
    char *m = cstr(msg);
    const char *arg = strchr(m, ' ') ? strchr(m, ' ') + 1 : "";
    MeshString *text = S(arg), *nobody = S("nobody");
    if (strncmp(m, "all ", 4) == 0) {
        result(m, mesh_ws_broadcast(room_r, text));
    }
    else if (strncmp(m, "others ", 7) == 0) {
        result(m, mesh_ws_broadcast_except(room_r, text, conn));
    }
    else if (strncmp(m, "everyone ", 9) == 0) {
        result(m, mesh_ws_broadcast_except(room_r, text, NULL));
    }
    else if (strcmp(m, "leave") == 0) {
        result(m, mesh_ws_leave(conn, room_r));
        result("leave again (no-op)", mesh_ws_leave(conn, room_r));
    }
    else if (strncmp(m, "join ", 5) == 0) {
        result(m, mesh_ws_join(conn, text));
        result("join again (no-op)", mesh_ws_join(conn, text));
    }
    else if (strcmp(m, "count") == 0) {
        result("members of r", snow_room_member_count(room_r));
    }
    else if (strcmp(m, "errors") == 0) {
        result("broadcast to an empty room", mesh_ws_broadcast(nobody, text));
        result("join NULL conn", mesh_ws_join(NULL, room_r));
        result("leave NULL room", mesh_ws_leave(conn, NULL));
        result("broadcast NULL room", mesh_ws_broadcast(NULL, text));
        result("broadcast_except NULL msg", mesh_ws_broadcast_except(room_r, NULL, conn));
        result("broadcast_except a made-up handle", mesh_ws_broadcast_except(room_r, text, (void *)(uintptr_t)999999));
    }
    snow_string_free(nobody);
    snow_string_free(text);
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const MeshString *reason)
{
    (void)conn;
    out_close(code, reason);
    bump(0);
    return NULL;
}

int main(void)
{
    int64_t server;
    room_r = S("r");
    server = mesh_ws_serve((void *)on_connect, NULL, (void *)on_message, NULL, (void *)on_close, NULL, 0);
    if (server <= 0) {
        out("mesh_ws_serve failed: %s", snow_ws_last_error());
        return 1;
    }
    out("port %lld", (long long)snow_ws_server_port(server));
    wait_for(0, 3);
    result("members of r after every close", snow_room_member_count(room_r));
    result("stop", snow_ws_stop(server, 2000));
    snow_string_free(room_r);
    out("done");
    return 0;
}
