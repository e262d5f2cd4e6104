/* presence_node.c -- a cluster node in C that reports presence events (tests/cluster/test_c_presence.py).
 *
 *     presence_node redis://HOST:PORT/DB
 *
 * Serves 127.0.0.1, a free port, in the cluster; prints "listening on ws://127.0.0.1:PORT/". A client's text
 * "/joinas ROOM META" joins ROOM with META (snow_room_join_meta) and answers "joined ROOM"; "/except ROOM TEXT ID"
 * broadcasts TEXT to ROOM but connection ID (any node). Every presence event of a room the client is in is sent
 * to it as "presence join|leave ROOM MEMBER NODE META". Runs until SIGTERM/SIGINT.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snow_ws.h"

static void send_line(void *conn, const char *text, size_t len)
{
    SnowString *s = snow_string_new(text, len);
    snow_ws_send(conn, s);
    snow_string_free(s);
}

static void *on_message(void *conn, const SnowString *msg)
{
    const char *p = SNOW_STRING_DATA(msg);
    size_t n = (size_t)msg->len;
    char line[512];
    if (n > 8 && n < 400 && memcmp(p, "/joinas ", 8) == 0) {
        const char *room = p + 8, *space = memchr(room, ' ', n - 8);
        size_t room_len = space ? (size_t)(space - room) : n - 8;
        SnowString *r = snow_string_new(room, room_len);
        SnowString *m = space ? snow_string_new(space + 1, n - 8 - room_len - 1) : NULL;
        if (snow_room_join_meta(conn, r, m) == 0) {
            int len = snprintf(line, sizeof line, "joined %.*s", (int)room_len, room);
            send_line(conn, line, (size_t)len);
        }
        snow_string_free(r);
        snow_string_free(m);
    }
    else if (n > 8 && n < 400 && memcmp(p, "/except ", 8) == 0) {
        char buf[400], room[400], text[400];
        unsigned long long id;
        memcpy(buf, p, n);
        buf[n] = '\0';
        if (sscanf(buf + 8, "%399s %399s %llu", room, text, &id) == 3) {
            SnowString *r = snow_string_new(room, strlen(room)), *t = snow_string_new(text, strlen(text));
            int64_t rc = snow_room_broadcast_except(r, t, (void *)(uintptr_t)id);
            if (rc < 0) {
                int len = snprintf(line, sizeof line, "error %s", snow_ws_last_error());
                send_line(conn, line, (size_t)len);
            }
            snow_string_free(r);
            snow_string_free(t);
        }
    }
    else if (n == 3 && memcmp(p, "/id", 3) == 0) {
        int len = snprintf(line, sizeof line, "id %llu", (unsigned long long)(uintptr_t)conn);
        send_line(conn, line, (size_t)len);
    }
    return NULL;
}

static void *on_presence(void *conn, const SnowString *room, int64_t joined, void *member, int64_t node,
                         const SnowString *meta)
{
    char line[1024];
    int len = snprintf(line, sizeof line, "presence %s %.*s %llu %lld %.*s", joined ? "join" : "leave",
                       (int)room->len, SNOW_STRING_DATA(room), (unsigned long long)(uintptr_t)member,
                       (long long)node, (int)meta->len, SNOW_STRING_DATA(meta));
    send_line(conn, line, (size_t)len);
    return NULL;
}

int main(int argc, char **argv)
{
    SnowWsOptions opts;
    int64_t server;
    if (argc != 2) {
        fprintf(stderr, "usage: presence_node redis://HOST:PORT/DB\n");
        return 2;
    }
    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    opts.cluster_url = argv[1];
    opts.on_presence_fn = (void *)on_presence;
    server = snow_ws_start(&opts, NULL, NULL, (void *)on_message, NULL, NULL, NULL);
    if (server < 0) {
        fprintf(stderr, "presence_node: error %lld: %s\n", (long long)snow_ws_last_error_code(), snow_ws_last_error());
        return 1;
    }
    printf("listening on ws://127.0.0.1:%lld/\n", (long long)snow_ws_server_port(server));
    fflush(stdout);
    snow_ws_wait_shutdown();
    snow_ws_stop(server, 5000);
    return 0;
}
