/* serve_node.c -- snow-rt's blocking snow_ws_serve(port) in a cluster, configured from the environment only
 * (tests/cluster/test_c_presence.py): SNOW_WS_CLUSTER, SNOW_WS_REUSE_PORT.
 *
 *     SNOW_WS_CLUSTER=redis://HOST:PORT/DB SNOW_WS_REUSE_PORT=1 serve_node PORT
 *
 * A client's "/join ROOM" joins ROOM ("joined ROOM"); "/all ROOM TEXT" broadcasts TEXT to ROOM; "/id" answers
 * "id N". When snow_ws_serve returns (SIGTERM, or a failure to start) it prints "serve returned: CODE MESSAGE".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snow_ws.h"

static void *on_message(void *conn, const SnowString *msg)
{
    const char *p = SNOW_STRING_DATA(msg);
    size_t n = (size_t)msg->len;
    char line[64];
    if (n > 6 && memcmp(p, "/join ", 6) == 0) {
        SnowString *room = snow_string_new(p + 6, n - 6), *reply;
        snow_ws_join(conn, room);
        reply = snow_string_new("joined", 6);
        snow_ws_send(conn, reply);
        snow_string_free(reply);
        snow_string_free(room);
    }
    else if (n > 5 && memcmp(p, "/all ", 5) == 0) {
        const char *room = p + 5, *space = memchr(room, ' ', n - 5);
        if (space != NULL) {
            SnowString *r = snow_string_new(room, (size_t)(space - room));
            SnowString *t = snow_string_new(space + 1, n - 5 - (size_t)(space - room) - 1);
            snow_ws_broadcast(r, t);
            snow_string_free(r);
            snow_string_free(t);
        }
    }
    else if (n == 3 && memcmp(p, "/id", 3) == 0) {
        int len = snprintf(line, sizeof line, "id %llu", (unsigned long long)(uintptr_t)conn);
        SnowString *reply = snow_string_new(line, (size_t)len);
        snow_ws_send(conn, reply);
        snow_string_free(reply);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    snow_ws_serve(NULL, NULL, (void *)on_message, NULL, NULL, NULL, atoll(argv[1]));
    printf("serve returned: %lld %s\n", (long long)snow_ws_last_error_code(), snow_ws_last_error());
    return 0;
}
