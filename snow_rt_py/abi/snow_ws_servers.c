/* libsnow_ws.so, part 4 of 7: the public wrappers that start, serve, drain, stop and describe servers (see
 * snow_ws_api.c for the seven files and their order). */

/* -- servers ----------------------------------------------------------------------------------------------------- */

SNOW_WS_API int64_t snow_ws_start(const SnowWsOptions *opts, void *on_connect_fn, void *on_connect_env,
                               void *on_message_fn, void *on_message_env, void *on_close_fn, void *on_close_env)
{
    if (snow_abi_enter() != 0)
        return -1;
    return snow_abi_py_start(opts, on_connect_fn, on_connect_env, on_message_fn, on_message_env, on_close_fn,
                             on_close_env);
}

SNOW_WS_API int64_t snow_ws_server_port(int64_t server)
{
    if (snow_abi_enter() != 0)
        return -1;
    return snow_abi_py_server_port(server);
}

SNOW_WS_API int64_t snow_ws_stop(int64_t server, int64_t timeout_ms)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (timeout_ms < 0)
        return snow_abi_fail(SNOW_WS_E_INVALID_ARGUMENT, "snow_ws_stop: timeout_ms is negative");
    return snow_abi_py_stop(server, timeout_ms);
}

SNOW_WS_API int64_t snow_ws_drain(int64_t server, int64_t timeout_ms)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (timeout_ms < 0)
        return snow_abi_fail(SNOW_WS_E_INVALID_ARGUMENT, "snow_ws_drain: timeout_ms is negative");
    return snow_abi_py_drain(server, timeout_ms);
}

SNOW_WS_API int64_t snow_ws_server_stats(int64_t server, SnowWsStats *out)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (out == NULL)
        return snow_abi_null("snow_ws_server_stats", "out");
    if (out->struct_size < 8)
        return snow_abi_fail(SNOW_WS_E_INVALID_ARGUMENT,
                             "snow_ws_server_stats: out->struct_size is under 8: set it to sizeof(SnowWsStats)");
    return snow_abi_py_server_stats(server, out);
}

SNOW_WS_API SnowString *snow_ws_subprotocol(void *conn)
{
    if (snow_abi_enter() != 0)
        return NULL;
    if (conn == NULL) {
        snow_abi_null("snow_ws_subprotocol", "conn");
        return NULL;
    }
    return snow_abi_py_subprotocol(SNOW_ABI_ID(conn));
}

/* A NUL-terminated copy of a path given as a SnowString (NULL with an error if it holds a NUL byte). */
static char *snow_abi_path(const SnowString *s, const char *func, const char *what)
{
    char msg[160];
    char *p;
    if (snow_abi_check_string(s, func, what) != 0)
        return NULL;
    if (memchr(SNOW_STRING_DATA(s), '\0', (size_t)s->len) != NULL) {
        snprintf(msg, sizeof msg, "%s: %s contains a NUL byte", func, what);
        snow_abi_fail(SNOW_WS_E_INVALID_ARGUMENT, msg);
        return NULL;
    }
    p = malloc((size_t)s->len + 1);
    if (p == NULL) {
        snow_abi_fail(SNOW_WS_E_INTERNAL, "out of memory");
        return NULL;
    }
    memcpy(p, SNOW_STRING_DATA(s), (size_t)s->len);
    p[s->len] = '\0';
    return p;
}

/* snow_ws_serve / snow_ws_serve_tls / mesh_ws_serve(_tls): their address is SNOW_WS_HOST when it is set and not
 * empty (read at each call, so a deployed program can serve elsewhere without recompiling), else the default,
 * 127.0.0.1. A failure to start there says where the address came from. Returns what snow_abi_serve does. */
static int64_t snow_abi_serve_env_host(void *on_connect_fn, void *on_connect_env, void *on_message_fn,
                                       void *on_message_env, void *on_close_fn, void *on_close_env, int64_t port,
                                       const char *cert, const char *key, int block)
{
    char msg[SNOW_ABI_ERR_MAX + 64];
    int64_t rc;
    const char *host = getenv("SNOW_WS_HOST");
    if (host != NULL && host[0] == '\0')
        host = NULL;
    rc = snow_abi_serve(on_connect_fn, on_connect_env, on_message_fn, on_message_env, on_close_fn, on_close_env, port,
                        host, cert, key, block);
    if (rc < 0 && host != NULL && snow_abi_err_code == SNOW_WS_E_SERVER_START) {
        snprintf(msg, sizeof msg, "%s (the address is SNOW_WS_HOST's)", snow_abi_err_msg);
        snow_abi_set_error(SNOW_WS_E_SERVER_START, msg);
    }
    return rc;
}

SNOW_WS_API void snow_ws_serve(void *on_connect_fn, void *on_connect_env, void *on_message_fn, void *on_message_env,
                            void *on_close_fn, void *on_close_env, int64_t port)
{
    if (snow_abi_enter() != 0)
        return;
    snow_abi_serve_env_host(on_connect_fn, on_connect_env, on_message_fn, on_message_env, on_close_fn, on_close_env,
                            port, NULL, NULL, 1);
}

/* snow_ws_serve_tls and mesh_ws_serve_tls (func names the caller in error messages): both block. */
static void snow_abi_serve_tls(void *on_connect_fn, void *on_connect_env, void *on_message_fn, void *on_message_env,
                               void *on_close_fn, void *on_close_env, int64_t port, const SnowString *cert_path,
                               const SnowString *key_path, const char *func)
{
    char *cert, *key;
    if (snow_abi_enter() != 0)
        return;
    if ((cert = snow_abi_path(cert_path, func, "cert_path")) == NULL)
        return;
    if ((key = snow_abi_path(key_path, func, "key_path")) == NULL) {
        free(cert);
        return;
    }
    snow_abi_serve_env_host(on_connect_fn, on_connect_env, on_message_fn, on_message_env, on_close_fn, on_close_env,
                            port, cert, key, 1);
    free(cert);
    free(key);
}

SNOW_WS_API void snow_ws_serve_tls(void *on_connect_fn, void *on_connect_env, void *on_message_fn,
                                void *on_message_env, void *on_close_fn, void *on_close_env, int64_t port,
                                const SnowString *cert_path, const SnowString *key_path)
{
    snow_abi_serve_tls(on_connect_fn, on_connect_env, on_message_fn, on_message_env, on_close_fn, on_close_env, port,
                       cert_path, key_path, "snow_ws_serve_tls");
}
