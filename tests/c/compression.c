/* SnowWsOptions' compression fields and SNOW_WS_COMPRESSION. First the option checks (bad values, a struct_size that
 * ends before the five fields: their garbage is ignored, and the variable as set by the test). Then an echo server
 * whose mode is argv[1] ("shared", "dedicated", "off", or "env": 0, the variable's), compression_min_size 64, which
 * answers "three" with three messages; it prints its port. */
#include <stddef.h>

#include "testlib.h"

#define LONG_REPLY "a reply long enough to be compressed: over compression_min_size, which is 64 bytes here"

static void *on_message(void *conn, const SnowString *msg)
{
    if (msg->len == 5 && memcmp(SNOW_STRING_DATA(msg), "three", 5) == 0) {
        /* short, long, short: the short ones under compression_min_size (64) go out plain, the long one
         * compressed, in the order they were sent */
        SnowString *a = S("a"), *big = S(LONG_REPLY), *b = S("b");
        snow_ws_send(conn, a);
        snow_ws_send(conn, big);
        snow_ws_send(conn, b);
        snow_string_free(a);
        snow_string_free(big);
        snow_string_free(b);
        return NULL;
    }
    snow_ws_send(conn, msg);
    return NULL;
}

int main(int argc, char **argv)
{
    SnowWsOptions o;
    int64_t server;
    const char *mode = argc > 1 ? argv[1] : "env";

    o = fresh_options();
    o.compression = 7;
    result("compression 7", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.compression = SNOW_WS_COMPRESSION_DEDICATED;
    o.compression_window_bits = 16;
    result("compression_window_bits 16", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.compression_mem_level = 10;
    result("compression_mem_level 10", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.compression_memory_budget = -1;
    result("compression_memory_budget -1", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.struct_size = offsetof(SnowWsOptions, compression); /* a program built before the five fields */
    o.compression = 99;
    o.compression_window_bits = 99;
    server = snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL);
    out("struct_size without the compression fields -> %s", server > 0 ? "started" : snow_ws_last_error());
    if (server > 0)
        result("stop", snow_ws_stop(server, 0));

    o = fresh_options();
    if (strcmp(mode, "shared") == 0)
        o.compression = SNOW_WS_COMPRESSION_SHARED;
    else if (strcmp(mode, "dedicated") == 0)
        o.compression = SNOW_WS_COMPRESSION_DEDICATED;
    else if (strcmp(mode, "off") == 0)
        o.compression = SNOW_WS_COMPRESSION_OFF;
    o.compression_min_size = 64;
    server = snow_ws_start(&o, NULL, NULL, (void *)on_message, NULL, NULL, NULL);
    if (server < 0) {
        out("start -> %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
        out("done");
        return 0;
    }
    out("port %lld", (long long)snow_ws_server_port(server));
    snow_ws_wait_shutdown();
    result("stop", snow_ws_stop(server, 1000));
    out("done");
    return 0;
}
