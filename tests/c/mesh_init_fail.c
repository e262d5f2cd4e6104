/* Run with SNOW_RT_PY_ABI_FAIL_IMPORT=1: the embedded runtime cannot start, and every Mesh name returns its error
 * value (mesh_ws_serve -1, not cffi's 0 or a server id) with the reason; no callback ever runs. */
#include "testlib.h"

static void *callback(void *conn, const MeshString *msg)
{
    (void)conn;
    (void)msg;
    out("CALLBACK CALLED");
    return NULL;
}

int main(void)
{
    MeshString *s = S("x");
    result("mesh_ws_serve", mesh_ws_serve(NULL, NULL, (void *)callback, NULL, NULL, NULL, 0));
    mesh_ws_serve_tls(NULL, NULL, (void *)callback, NULL, NULL, NULL, 0, s, s);
    out("mesh_ws_serve_tls returned: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
    result("mesh_ws_send", mesh_ws_send((void *)1, s));
    result("mesh_ws_send_binary", mesh_ws_send_binary((void *)1, (const uint8_t *)"x", 1));
    result("mesh_ws_join", mesh_ws_join((void *)1, s));
    result("mesh_ws_leave", mesh_ws_leave((void *)1, s));
    result("mesh_ws_broadcast", mesh_ws_broadcast(s, s));
    result("mesh_ws_broadcast_except", mesh_ws_broadcast_except(s, s, NULL));
    snow_string_free(s);
    out("done");
    return 0;
}
