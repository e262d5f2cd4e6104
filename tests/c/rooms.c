/* Rooms: join/leave (and snow-rt's alias names), broadcast, broadcast_except, member counts, rooms_of, an ended
 * except handle, and joining from on_close. Clients connect to /NAME; each joins room "r" in on_connect, and its
 * on_close broadcasts "NAME left" to r except itself. Text commands: "all X", "others X", "everyone X"
 * (broadcast_except with NULL), "leave", "join ROOM", "count", "rooms", "stale X" (broadcast_except excluding the
 * first connection that closed). */
#include "testlib.h"

static SnowString *room_r;
static void *first_closed;
static int closed_count;

typedef struct Named {
    void *conn;
    char name[16];
} Named;

static Named names[8];
static int named;

static const char *name_of(void *conn)
{
    int i;
    for (i = 0; i < named; i++)
        if (names[i].conn == conn)
            return names[i].name;
    return "?";
}

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    char *p = cstr(path), what[64];
    (void)headers;
    names[named].conn = conn;
    snprintf(names[named].name, sizeof names[named].name, "%s", p + 1);
    named++;
    snprintf(what, sizeof what, "%s joins r", p + 1);
    result(what, named % 2 ? snow_room_join(conn, room_r) : snow_ws_join(conn, room_r));
    free(p);
    return conn;
}

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg), what[128];
    const char *who = name_of(conn), *arg = strchr(m, ' ') ? strchr(m, ' ') + 1 : "";
    SnowString *text = S(arg);
    snprintf(what, sizeof what, "%s: %s", who, m);
    if (strncmp(m, "all ", 4) == 0) {
        result(what, snow_room_broadcast(room_r, text));
    }
    else if (strncmp(m, "others ", 7) == 0) {
        result(what, snow_room_broadcast_except(room_r, text, conn));
    }
    else if (strncmp(m, "everyone ", 9) == 0) {
        result(what, snow_ws_broadcast_except(room_r, text, NULL));
    }
    else if (strncmp(m, "alias ", 6) == 0) {
        result(what, snow_ws_broadcast(room_r, text));
    }
    else if (strcmp(m, "leave") == 0) {
        result(what, snow_room_leave(conn, room_r));
        result("leave again (no-op)", snow_ws_leave(conn, room_r));
    }
    else if (strncmp(m, "join ", 5) == 0) {
        result(what, snow_room_join(conn, text));
        result("join again (no-op)", snow_room_join(conn, text));
    }
    else if (strcmp(m, "count") == 0) {
        result(what, snow_room_member_count(room_r));
    }
    else if (strcmp(m, "rooms") == 0) {
        SnowString *got[4] = {NULL, NULL, NULL, NULL};
        int64_t n = snow_ws_rooms_of(conn, got, 1), i;
        out("%s -> %lld (capacity 1)", what, (long long)n);
        snow_string_free(got[0]);
        n = snow_ws_rooms_of(conn, got, 4);
        for (i = 0; i < n && i < 4; i++) {
            char *r = cstr(got[i]);
            out("  room '%s'", r);
            free(r);
            snow_string_free(got[i]);
        }
    }
    else if (strncmp(m, "stale ", 6) == 0) {
        result(what, snow_room_broadcast_except(room_r, text, first_closed));
    }
    snow_string_free(text);
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    char what[128], left[32];
    SnowString *text;
    (void)reason;
    snprintf(left, sizeof left, "%s left", name_of(conn));
    text = S(left);
    snprintf(what, sizeof what, "%s closed; broadcast_except '%s' from on_close", name_of(conn), left);
    result(what, snow_room_broadcast_except(room_r, text, conn));
    snow_string_free(text);
    snprintf(what, sizeof what, "%s closed %lld; joins r from on_close", name_of(conn), (long long)code);
    result(what, snow_room_join(conn, room_r));
    if (closed_count++ == 0)
        first_closed = conn;
    bump(0);
    return NULL;
}

int main(int argc, char **argv)
{
    int64_t server;
    int expected_closes = argc > 1 ? atoi(argv[1]) : 3;
    room_r = S("r");
    server = start(NULL, (void *)on_connect, NULL, (void *)on_message, NULL, (void *)on_close, NULL);
    wait_for(0, expected_closes);
    result("members of r after every close", snow_room_member_count(room_r));
    result("stop", snow_ws_stop(server, 2000));
    snow_string_free(room_r);
    out("done");
    return 0;
}
