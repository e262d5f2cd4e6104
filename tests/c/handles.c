/* Handles and arguments: made-up, NULL and stale handles; NULL strings, negative lengths, text that is not UTF-8
 * (refused, nothing reaches the wire); snow_ws_stop/snow_ws_start from a callback on the loop thread. */
#include "testlib.h"

static void *saved;
static int64_t server;

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    (void)path;
    (void)headers;
    saved = conn;
    bump(1);
    return conn;
}

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    if (strcmp(m, "stop-from-callback") == 0) {
        result("snow_ws_stop from a loop-thread callback", snow_ws_stop(server, 0));
        result("snow_ws_start from a loop-thread callback",
               snow_ws_start(NULL, NULL, NULL, NULL, NULL, NULL, NULL));
        result("send from the same callback", snow_ws_send(conn, msg));
    }
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    (void)conn;
    (void)reason;
    out("close %lld", (long long)code);
    bump(0);
    return NULL;
}

int main(void)
{
    SnowString *x = S("x"), *room = S("room");
    void *made_up = (void *)(uintptr_t)0x7fffffff;
    SnowString *got[1];

    server = start(NULL, (void *)on_connect, NULL, (void *)on_message, NULL, (void *)on_close, NULL);

    out("-- made-up and NULL handles");
    result("send made-up", snow_ws_send(made_up, x));
    result("send_binary made-up", snow_ws_send_binary(made_up, (const uint8_t *)"ab", 2));
    result("send_binary made-up, NULL data, len 0", snow_ws_send_binary(made_up, NULL, 0));
    result("close made-up", snow_ws_close(made_up, 1000, NULL));
    result("join made-up", snow_room_join(made_up, room));
    result("leave made-up", snow_room_leave(made_up, room));
    result("rooms_of made-up", snow_ws_rooms_of(made_up, NULL, 0));
    result("broadcast_except made-up", snow_room_broadcast_except(room, x, made_up));
    result("send NULL conn", snow_ws_send(NULL, x));
    result("send NULL msg", snow_ws_send(made_up, NULL));
    result("send_binary negative len", snow_ws_send_binary(made_up, (const uint8_t *)"ab", -1));
    result("send_binary NULL data, len 2", snow_ws_send_binary(made_up, NULL, 2));
    result("join NULL room", snow_room_join(made_up, NULL));
    result("close NULL conn", snow_ws_close(NULL, 1000, NULL));
    result("broadcast NULL room", snow_room_broadcast(NULL, x));
    result("broadcast NULL msg", snow_room_broadcast(room, NULL));
    result("rooms_of negative capacity", snow_ws_rooms_of(made_up, got, -1));
    result("rooms_of NULL out", snow_ws_rooms_of(made_up, NULL, 1));

    wait_for(1, 1);
    out("-- invalid UTF-8 on a live connection");
    {
        const char *bad[] = {"\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", "ok\xe2\x82"};
        size_t i;
        for (i = 0; i < 4; i++) {
            SnowString *s = snow_string_new(bad[i], strlen(bad[i]));
            result("send invalid UTF-8", snow_ws_send(saved, s));
            snow_string_free(s);
        }
        SnowString *after = S("after the invalid ones");
        result("send valid", snow_ws_send(saved, after));
        snow_string_free(after);
    }

    wait_for(0, 1);
    out("-- stale handle (its connection ended)");
    result("send stale", snow_ws_send(saved, x));
    result("send_binary stale", snow_ws_send_binary(saved, (const uint8_t *)"ab", 2));
    result("close stale", snow_ws_close(saved, 1000, x));
    result("join stale", snow_room_join(saved, room));
    result("rooms_of stale", snow_ws_rooms_of(saved, got, 1));

    result("stop", snow_ws_stop(server, 2000));
    result("stop again", snow_ws_stop(server, 2000));
    snow_string_free(x);
    snow_string_free(room);
    out("done");
    return 0;
}
