/* A client connection through the three callbacks (on_connect with an env pointer, the others without) and
 * on_binary: `client_echo URL conn|client [CA_FILE]` connects to an echo server at URL (wss:// verified against
 * CA_FILE when given), sends a text and a binary message from on_connect, prints both echoes, joins a room from
 * on_binary; then the main thread closes with 1000 "done" through the conn handle (snow_ws_close) or the client id
 * (snow_ws_client_close). Then the handles' lifetimes: the ended conn handle and the waited-for client id are
 * stale. Lines of the main thread are printed once on_close has run, so the transcript has one order. */
#include "testlib.h"

static void *client_conn;
static char close_line[512];

static void *on_connect(void *env, void *conn, const SnowString *path, const SnowHeaders *headers)
{
    char *p = cstr(path), *upgrade = cstr(snow_ws_header_get(headers, "upgrade"));
    SnowString *text = S("hello \xe2\x9c\x93");
    const uint8_t bytes[] = {0x00, 0x01, 0x02, 0xff};
    out("on_connect %s env=%s Upgrade=%s", p, (const char *)env, upgrade);
    client_conn = conn;
    result("send", snow_ws_send(conn, text));
    result("send_binary", snow_ws_send_binary(conn, bytes, sizeof bytes));
    free(p);
    free(upgrade);
    snow_string_free(text);
    return conn;
}

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    out("on_message '%s' (%llu bytes)", m, (unsigned long long)msg->len);
    free(m);
    (void)conn;
    return NULL;
}

static void *on_binary(void *conn, const uint8_t *data, int64_t len)
{
    char hex[64] = "";
    SnowString *room = S("r");
    int64_t i;
    for (i = 0; i < len && i < 16; i++)
        snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x ", data[i]);
    out("on_binary %lld bytes: %s", (long long)len, hex);
    result("join r", snow_room_join(conn, room));
    result("member_count r", snow_room_member_count(room));
    snow_string_free(room);
    bump(1);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    char *r = cstr(reason);
    snprintf(close_line, sizeof close_line, "on_close %lld '%s' same conn: %s", (long long)code, r,
             conn == client_conn ? "yes" : "no");
    free(r);
    bump(0);
    return NULL;
}

int main(int argc, char **argv)
{
    SnowWsClientOptions o;
    int64_t client, opened, closed;
    SnowString *room = S("r"), *hi = S("hi"), *bye = S("done");
    int by_conn = argc > 2 && strcmp(argv[2], "conn") == 0;

    if (argc < 3)
        return 2;
    result("options_init", snow_ws_client_options_init(&o, sizeof o));
    o.on_binary_fn = (void *)on_binary;
    if (argc > 3)
        o.ca_file = argv[3];
    client = snow_ws_connect(&o, argv[1], (void *)on_connect, "connect-env", (void *)on_message, NULL,
                             (void *)on_close, NULL);
    result("connect", client);
    opened = snow_ws_client_wait_open(client, 10000);
    wait_for(1, 1); /* both echoes arrived */
    closed = by_conn ? snow_ws_close(client_conn, 1000, bye) : snow_ws_client_close(client, 1000, bye);
    wait_for(0, 1); /* on_close ran: every callback line is out, the main thread's lines follow */
    result("wait_open", opened);
    result(by_conn ? "snow_ws_close" : "snow_ws_client_close", closed);
    out("%s", close_line);
    result("member_count r after on_close", snow_room_member_count(room));
    result("wait_closed", snow_ws_client_wait_closed(client, 10000));
    result("wait_closed again", snow_ws_client_wait_closed(client, 10000));
    result("wait_open after", snow_ws_client_wait_open(client, 0));
    result("send to the ended conn", snow_ws_send(client_conn, hi));
    snow_string_free(room);
    snow_string_free(hi);
    snow_string_free(bye);
    out("done");
    return 0;
}
