/* libsnow_ws.so, part 5 of 7: Mesh's names (see snow_ws_api.c for the seven files and their order). */

/* -- Mesh's names (mesh-rt) -----------------------------------------------------------------------------------------
 *
 * Thin aliases of the Snow functions (snow_ws_connections.c, snow_ws_servers.c): the same helpers, with the mesh_
 * name in error messages. The one difference of behaviour is mesh-rt's: mesh_ws_serve does not block (it returns
 * its server's id). */

SNOW_WS_API int64_t mesh_ws_serve(void *on_connect_fn, void *on_connect_env, void *on_message_fn, void *on_message_env,
                                  void *on_close_fn, void *on_close_env, int64_t port)
{
    if (snow_abi_enter() != 0)
        return -1;
    return snow_abi_serve_env_host(on_connect_fn, on_connect_env, on_message_fn, on_message_env, on_close_fn,
                                   on_close_env, port, NULL, NULL, 0);
}

SNOW_WS_API void mesh_ws_serve_tls(void *on_connect_fn, void *on_connect_env, void *on_message_fn,
                                   void *on_message_env, void *on_close_fn, void *on_close_env, int64_t port,
                                   const MeshString *cert_path, const MeshString *key_path)
{
    snow_abi_serve_tls(on_connect_fn, on_connect_env, on_message_fn, on_message_env, on_close_fn, on_close_env, port,
                       cert_path, key_path, "mesh_ws_serve_tls");
}

SNOW_WS_API int64_t mesh_ws_send(void *conn, const MeshString *msg)
{
    return snow_abi_send_text(conn, msg, "mesh_ws_send");
}

SNOW_WS_API int64_t mesh_ws_send_binary(void *conn, const uint8_t *data, int64_t len)
{
    return snow_abi_send_bytes(conn, data, len, "mesh_ws_send_binary");
}

SNOW_WS_API int64_t mesh_ws_join(void *conn, const MeshString *room)
{
    return snow_abi_join_or_leave(conn, room, 1, "mesh_ws_join");
}

SNOW_WS_API int64_t mesh_ws_leave(void *conn, const MeshString *room)
{
    return snow_abi_join_or_leave(conn, room, 0, "mesh_ws_leave");
}

SNOW_WS_API int64_t mesh_ws_broadcast(const MeshString *room, const MeshString *msg)
{
    return snow_abi_broadcast(room, msg, 0, NULL, "mesh_ws_broadcast");
}

SNOW_WS_API int64_t mesh_ws_broadcast_except(const MeshString *room, const MeshString *msg, void *except_conn)
{
    return snow_abi_broadcast(room, msg, 1, except_conn, "mesh_ws_broadcast_except");
}
