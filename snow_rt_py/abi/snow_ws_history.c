/* libsnow_ws.so, part 4 of 4: rooms that remember (history, positions, join-from, delivery policies) and the
 * heartbeat's round-trip time. The thin C wrappers of include/snow_ws.h's "Rooms that remember" section: they check
 * raw pointers and that the runtime is up, then call their extern "Python" counterpart (snow_rt_py/abi/
 * history_exports.py). Concatenated after the other three files by build_ffi.py (EMBED_C_SOURCES), so it uses
 * their helpers (snow_abi_enter, snow_abi_null, snow_abi_check_string, snow_abi_fail). */

static int64_t snow_abi_py_room_configure(const char *room, int64_t room_len, int64_t size, int64_t ttl_ms,
                                          int64_t policy);
static int64_t snow_abi_py_room_publish(const char *room, int64_t room_len, const char *msg, int64_t msg_len,
                                        int64_t has_except, uint64_t except_conn, const char *key, int64_t key_len,
                                        int64_t has_key, SnowWsPosition *out);
static int64_t snow_abi_py_room_position(const char *room, int64_t room_len, SnowWsPosition *out);
static int64_t snow_abi_py_room_join_from(uint64_t conn, const char *room, int64_t room_len, const char *epoch,
                                          int64_t offset, int64_t *replayed);
static int64_t snow_abi_py_conn_rtt_us(uint64_t conn);
static int64_t snow_abi_py_room_stats(SnowWsRoomStats *out);

SNOW_WS_API int64_t snow_room_configure(const SnowString *room, int64_t history_size, int64_t history_ttl_ms,
                                        int64_t policy)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (snow_abi_check_string(room, "snow_room_configure", "room") != 0)
        return -1;
    return snow_abi_py_room_configure(SNOW_STRING_DATA(room), (int64_t)room->len, history_size, history_ttl_ms,
                                      policy);
}

SNOW_WS_API int64_t snow_room_publish(const SnowString *room, const SnowString *msg, void *except_conn,
                                      const SnowString *key, SnowWsPosition *out)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (snow_abi_check_string(room, "snow_room_publish", "room") != 0 ||
        snow_abi_check_string(msg, "snow_room_publish", "msg") != 0)
        return -1;
    if (key != NULL && snow_abi_check_string(key, "snow_room_publish", "key") != 0)
        return -1;
    if (out != NULL) {
        out->offset = 0;
        out->epoch[0] = '\0';
    }
    return snow_abi_py_room_publish(SNOW_STRING_DATA(room), (int64_t)room->len, SNOW_STRING_DATA(msg),
                                    (int64_t)msg->len, except_conn != NULL, SNOW_ABI_ID(except_conn),
                                    key != NULL ? SNOW_STRING_DATA(key) : "", key != NULL ? (int64_t)key->len : 0,
                                    key != NULL, out);
}

SNOW_WS_API int64_t snow_room_position(const SnowString *room, SnowWsPosition *out)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (snow_abi_check_string(room, "snow_room_position", "room") != 0)
        return -1;
    if (out == NULL)
        return snow_abi_null("snow_room_position", "out");
    return snow_abi_py_room_position(SNOW_STRING_DATA(room), (int64_t)room->len, out);
}

SNOW_WS_API int64_t snow_room_join_from(void *conn, const SnowString *room, const SnowWsPosition *since,
                                        int64_t *replayed)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (conn == NULL)
        return snow_abi_null("snow_room_join_from", "conn");
    if (snow_abi_check_string(room, "snow_room_join_from", "room") != 0)
        return -1;
    if (since == NULL)
        return snow_abi_null("snow_room_join_from", "since");
    if (memchr(since->epoch, '\0', sizeof since->epoch) == NULL)
        return snow_abi_fail(SNOW_WS_E_INVALID_ARGUMENT, "snow_room_join_from: since->epoch is not NUL-terminated");
    int64_t ignored = 0;
    return snow_abi_py_room_join_from(SNOW_ABI_ID(conn), SNOW_STRING_DATA(room), (int64_t)room->len, since->epoch,
                                      since->offset, replayed != NULL ? replayed : &ignored);
}

SNOW_WS_API int64_t snow_ws_conn_rtt_us(void *conn)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (conn == NULL)
        return snow_abi_null("snow_ws_conn_rtt_us", "conn");
    return snow_abi_py_conn_rtt_us(SNOW_ABI_ID(conn));
}

SNOW_WS_API int64_t snow_room_stats(SnowWsRoomStats *out)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (out == NULL)
        return snow_abi_null("snow_room_stats", "out");
    return snow_abi_py_room_stats(out);
}
