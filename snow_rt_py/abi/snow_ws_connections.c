/* libsnow_ws.so, part 3 of 7: the public wrappers for connections and rooms: sends, close, join / leave, broadcast,
 * presence, headers (see snow_ws_api.c for the seven files and their order). */

/* -- connections and rooms --------------------------------------------------------------------------------------- */

/* snow_ws_send and mesh_ws_send (func names the caller in error messages). */
static inline int64_t snow_abi_send_text(void *conn, const SnowString *msg, const char *func)
{
    if (msg != NULL && snow_abi_fast_send(SNOW_ABI_ID(conn), 0x1, SNOW_STRING_DATA(msg), msg->len))
        return 0;
    if (conn == NULL || msg == NULL || msg->len > (uint64_t)INT64_MAX) {
        if (snow_abi_enter() != 0)
            return -1;
        if (conn == NULL)
            return snow_abi_null(func, "conn");
        return snow_abi_check_string(msg, func, "msg");
    }
    return snow_abi_slow_send(SNOW_ABI_ID(conn), 0x1, SNOW_STRING_DATA(msg), (int64_t)msg->len);
}

/* snow_ws_send_binary and mesh_ws_send_binary. */
static inline int64_t snow_abi_send_bytes(void *conn, const uint8_t *data, int64_t len, const char *func)
{
    char msg[160];
    if (len >= 0 && (data != NULL || len == 0) &&
        snow_abi_fast_send(SNOW_ABI_ID(conn), 0x2, data != NULL ? (const char *)data : "", (uint64_t)len))
        return 0;
    if (conn == NULL || len < 0 || (data == NULL && len > 0)) {
        if (snow_abi_enter() != 0)
            return -1;
        if (conn == NULL)
            return snow_abi_null(func, "conn");
        if (len < 0) {
            snprintf(msg, sizeof msg, "%s: len is negative", func);
            return snow_abi_fail(SNOW_WS_E_INVALID_ARGUMENT, msg);
        }
        return snow_abi_null(func, "data");
    }
    return snow_abi_slow_send(SNOW_ABI_ID(conn), 0x2, data != NULL ? (const char *)data : "", len);
}

SNOW_WS_API int64_t snow_ws_send(void *conn, const SnowString *msg)
{
    return snow_abi_send_text(conn, msg, "snow_ws_send");
}

SNOW_WS_API int64_t snow_ws_send_binary(void *conn, const uint8_t *data, int64_t len)
{
    return snow_abi_send_bytes(conn, data, len, "snow_ws_send_binary");
}

SNOW_WS_API int64_t snow_ws_close(void *conn, int64_t code, const SnowString *reason)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (conn == NULL)
        return snow_abi_null("snow_ws_close", "conn");
    if (reason == NULL)
        return snow_abi_py_close(SNOW_ABI_ID(conn), code, "", 0);
    if (snow_abi_check_string(reason, "snow_ws_close", "reason") != 0)
        return -1;
    return snow_abi_py_close(SNOW_ABI_ID(conn), code, SNOW_STRING_DATA(reason), (int64_t)reason->len);
}

static int64_t snow_abi_join_or_leave(void *conn, const SnowString *room, int join, const char *func)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (conn == NULL)
        return snow_abi_null(func, "conn");
    if (snow_abi_check_string(room, func, "room") != 0)
        return -1;
    if (join)
        return snow_abi_py_join(SNOW_ABI_ID(conn), SNOW_STRING_DATA(room), (int64_t)room->len);
    return snow_abi_py_leave(SNOW_ABI_ID(conn), SNOW_STRING_DATA(room), (int64_t)room->len);
}

static int64_t snow_abi_broadcast(const SnowString *room, const SnowString *msg, int has_except, void *except_conn,
                                  const char *func)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (snow_abi_check_string(room, func, "room") != 0 || snow_abi_check_string(msg, func, "msg") != 0)
        return -1;
    return snow_abi_py_broadcast(SNOW_STRING_DATA(room), (int64_t)room->len, SNOW_STRING_DATA(msg),
                                 (int64_t)msg->len, has_except && except_conn != NULL, SNOW_ABI_ID(except_conn));
}

SNOW_WS_API int64_t snow_room_join(void *conn, const SnowString *room)
{
    return snow_abi_join_or_leave(conn, room, 1, "snow_room_join");
}

SNOW_WS_API int64_t snow_room_leave(void *conn, const SnowString *room)
{
    return snow_abi_join_or_leave(conn, room, 0, "snow_room_leave");
}

SNOW_WS_API int64_t snow_room_broadcast(const SnowString *room, const SnowString *msg)
{
    return snow_abi_broadcast(room, msg, 0, NULL, "snow_room_broadcast");
}

SNOW_WS_API int64_t snow_room_broadcast_except(const SnowString *room, const SnowString *msg, void *except_conn)
{
    return snow_abi_broadcast(room, msg, 1, except_conn, "snow_room_broadcast_except");
}

SNOW_WS_API int64_t snow_ws_join(void *conn, const SnowString *room)
{
    return snow_abi_join_or_leave(conn, room, 1, "snow_ws_join");
}

SNOW_WS_API int64_t snow_ws_leave(void *conn, const SnowString *room)
{
    return snow_abi_join_or_leave(conn, room, 0, "snow_ws_leave");
}

SNOW_WS_API int64_t snow_ws_broadcast(const SnowString *room, const SnowString *msg)
{
    return snow_abi_broadcast(room, msg, 0, NULL, "snow_ws_broadcast");
}

SNOW_WS_API int64_t snow_ws_broadcast_except(const SnowString *room, const SnowString *msg, void *except_conn)
{
    return snow_abi_broadcast(room, msg, 1, except_conn, "snow_ws_broadcast_except");
}

SNOW_WS_API int64_t snow_room_member_count(const SnowString *room)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (snow_abi_check_string(room, "snow_room_member_count", "room") != 0)
        return -1;
    return snow_abi_py_member_count(SNOW_STRING_DATA(room), (int64_t)room->len);
}

SNOW_WS_API int64_t snow_room_join_meta(void *conn, const SnowString *room, const SnowString *meta)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (conn == NULL)
        return snow_abi_null("snow_room_join_meta", "conn");
    if (snow_abi_check_string(room, "snow_room_join_meta", "room") != 0)
        return -1;
    if (meta == NULL)
        return snow_abi_py_join_meta(SNOW_ABI_ID(conn), SNOW_STRING_DATA(room), (int64_t)room->len, "", 0);
    if (snow_abi_check_string(meta, "snow_room_join_meta", "meta") != 0)
        return -1;
    return snow_abi_py_join_meta(SNOW_ABI_ID(conn), SNOW_STRING_DATA(room), (int64_t)room->len,
                                 SNOW_STRING_DATA(meta), (int64_t)meta->len);
}

SNOW_WS_API int64_t snow_room_presence(const SnowString *room, SnowWsMember *out, int64_t capacity)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (snow_abi_check_string(room, "snow_room_presence", "room") != 0)
        return -1;
    if (capacity < 0)
        return snow_abi_fail(SNOW_WS_E_INVALID_ARGUMENT, "snow_room_presence: capacity is negative");
    if (out == NULL && capacity > 0)
        return snow_abi_null("snow_room_presence", "out");
    return snow_abi_py_presence(SNOW_STRING_DATA(room), (int64_t)room->len, out, capacity);
}

SNOW_WS_API int64_t snow_room_presence_count(const SnowString *room)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (snow_abi_check_string(room, "snow_room_presence_count", "room") != 0)
        return -1;
    return snow_abi_py_presence(SNOW_STRING_DATA(room), (int64_t)room->len, NULL, 0);
}

SNOW_WS_API int64_t snow_ws_rooms_of(void *conn, SnowString **out, int64_t capacity)
{
    if (snow_abi_enter() != 0)
        return -1;
    if (conn == NULL)
        return snow_abi_null("snow_ws_rooms_of", "conn");
    if (capacity < 0)
        return snow_abi_fail(SNOW_WS_E_INVALID_ARGUMENT, "snow_ws_rooms_of: capacity is negative");
    if (out == NULL && capacity > 0)
        return snow_abi_null("snow_ws_rooms_of", "out");
    return snow_abi_py_rooms_of(SNOW_ABI_ID(conn), out, capacity);
}

SNOW_WS_API const SnowString *snow_ws_header_get(const SnowHeaders *headers, const char *name)
{
    if (snow_abi_enter() != 0)
        return NULL;
    if (headers == NULL) {
        snow_abi_null("snow_ws_header_get", "headers");
        return NULL;
    }
    if (name == NULL) {
        snow_abi_null("snow_ws_header_get", "name");
        return NULL;
    }
    return snow_abi_py_header_get(SNOW_ABI_ID(headers), name);
}
