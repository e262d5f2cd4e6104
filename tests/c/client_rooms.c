/* A room bridging a client connection and server connections: `client_rooms UPSTREAM_URL` starts a server (prints
 * "port N"), and a client connection to UPSTREAM_URL that joins room "r" from its on_connect. A peer connecting to
 * the server's /member path joins "r" too; its "broadcast TEXT" is broadcast to "r" by the server side, which
 * sends TEXT to that peer and, through the client connection, to the upstream server. The upstream server then
 * closes the client connection; the program ends when the peer has closed too. */
#include "testlib.h"

static SnowString *room;

static void *server_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    char *p = cstr(path);
    (void)headers;
    if (strcmp(p, "/member") == 0)
        result("server: /member joins r", snow_room_join(conn, room));
    free(p);
    return conn;
}

static void *server_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg), line[300];
    SnowString *text;
    (void)conn;
    if (strncmp(m, "broadcast ", 10) == 0) {
        text = S(m + 10);
        snprintf(line, sizeof line, "server: broadcast '%s' to r (members: %lld), failed for", m + 10,
                 (long long)snow_room_member_count(room));
        result(line, snow_room_broadcast(room, text));
        snow_string_free(text);
    }
    free(m);
    return NULL;
}

static void *server_close(void *conn, int64_t code, const SnowString *reason)
{
    (void)conn;
    (void)reason;
    out("server: on_close %lld", (long long)code);
    bump(2);
    return NULL;
}

static void *client_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    (void)path;
    (void)headers;
    result("client: joins r", snow_room_join(conn, room));
    bump(0);
    return conn;
}

static void *client_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    (void)conn;
    out("client: on_message '%s'", m); /* the upstream server sends nothing: this line must not appear */
    free(m);
    return NULL;
}

static void *client_close(void *conn, int64_t code, const SnowString *reason)
{
    char *r = cstr(reason);
    (void)conn;
    out("client: on_close %lld '%s', members of r now %lld", (long long)code, r,
        (long long)snow_room_member_count(room));
    free(r);
    bump(1);
    return NULL;
}

int main(int argc, char **argv)
{
    SnowWsOptions so;
    int64_t server, client;

    if (argc < 2)
        return 2;
    room = S("r");
    memset(&so, 0, sizeof so);
    so.struct_size = sizeof so;
    server = snow_ws_start(&so, (void *)server_connect, NULL, (void *)server_message, NULL, (void *)server_close, NULL);
    client = snow_ws_connect(NULL, argv[1], (void *)client_connect, NULL, (void *)client_message, NULL,
                             (void *)client_close, NULL);
    if (server < 0 || client < 0) {
        out("start failed: %s", snow_ws_last_error());
        return 1;
    }
    wait_for(0, 1);
    result("wait_open", snow_ws_client_wait_open(client, 10000));
    result("member_count r", snow_room_member_count(room));
    out("port %lld", (long long)snow_ws_server_port(server));
    wait_for(1, 1);
    result("wait_closed", snow_ws_client_wait_closed(client, 10000));
    wait_for(2, 1);
    result("stop", snow_ws_stop(server, 5000));
    snow_string_free(room);
    out("done");
    return 0;
}
