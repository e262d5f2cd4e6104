/* The client's argument checks and the struct_size rule: `client_args SILENT_URL`, SILENT_URL being a server that
 * accepts TCP and never answers. Every line is a call and its result (the error code and message when it failed). */
#include <stddef.h>

#include "testlib.h"

static char close_line[512];

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    char *r = cstr(reason);
    (void)conn;
    snprintf(close_line, sizeof close_line, "on_close %lld '%s'", (long long)code, r);
    free(r);
    bump(0);
    return NULL;
}

/* What a program compiled against an older header holds: the struct up to close_timeout_ms, then (as far as the
 * library can tell) anything. */
typedef struct OldOptions {
    uint64_t struct_size;
    int64_t open_timeout_ms;
    int64_t close_timeout_ms;
} OldOptions;

static int64_t connect_with(const SnowWsClientOptions *o, const char *url)
{
    return snow_ws_connect(o, url, NULL, NULL, NULL, NULL, (void *)on_close, NULL);
}

int main(int argc, char **argv)
{
    SnowWsClientOptions o;
    union {
        OldOptions old;
        unsigned char bytes[sizeof(SnowWsClientOptions)];
    } older;
    unsigned char zero[sizeof o];
    SnowString *bad_reason = snow_string_new("\xff", 1);
    int64_t client;
    const char *silent = argc > 1 ? argv[1] : "ws://127.0.0.1:9/";

    out("-- options_init");
    result("NULL opts", snow_ws_client_options_init(NULL, sizeof o));
    result("struct_size 4", snow_ws_client_options_init(&o, 4));
    memset(&o, 0xab, sizeof o);
    memset(zero, 0, sizeof zero);
    result("sizeof", snow_ws_client_options_init(&o, sizeof o));
    out("struct_size %s, every other byte zero: %s", o.struct_size == sizeof o ? "= sizeof" : "WRONG",
        memcmp((unsigned char *)&o + 8, zero, sizeof o - 8) == 0 ? "yes" : "NO");
    memset(&older, 0xab, sizeof older);
    result("older struct", snow_ws_client_options_init((SnowWsClientOptions *)&older.old, sizeof older.old));
    out("bytes past the older struct untouched: %s", older.bytes[sizeof older.old] == 0xab ? "yes" : "NO");

    out("-- snow_ws_connect");
    result("NULL url", connect_with(NULL, NULL));
    result("ftp://", connect_with(NULL, "ftp://127.0.0.1/"));
    result("no host", connect_with(NULL, "ws:///path"));
    result("not UTF-8", connect_with(NULL, "ws://\xff/"));
    o.struct_size = 4;
    result("struct_size 4", connect_with(&o, silent));
    snow_ws_client_options_init(&o, sizeof o);
    o.compression = 9;
    result("compression 9", connect_with(&o, silent));
    snow_ws_client_options_init(&o, sizeof o);
    o.slow_consumer = 7;
    result("slow_consumer 7", connect_with(&o, silent));
    snow_ws_client_options_init(&o, sizeof o);
    o.headers = "X-Good: 1\nno colon here";
    result("headers", connect_with(&o, silent));
    snow_ws_client_options_init(&o, sizeof o);
    o.open_timeout_ms = -5;
    result("open_timeout_ms -5", connect_with(&o, silent));

    out("-- unknown client ids");
    result("wait_open 999", snow_ws_client_wait_open(999, 0));
    result("close 999", snow_ws_client_close(999, 1000, NULL));
    result("wait_closed 999", snow_ws_client_wait_closed(999, 0));
    result("wait_open -1", snow_ws_client_wait_open(-1, 0));

    out("-- an older, smaller struct: open_timeout_ms 300 is read, the garbage after it is not");
    memset(&older, 0xff, sizeof older);
    older.old.struct_size = sizeof older.old;
    older.old.open_timeout_ms = 300;
    older.old.close_timeout_ms = 0;
    client = connect_with((const SnowWsClientOptions *)&older.old, silent);
    result("connect", client > 0 ? 0 : client);
    result("wait_open", snow_ws_client_wait_open(client, 10000));
    wait_for(0, 1);
    out("%s", close_line);
    result("wait_closed", snow_ws_client_wait_closed(client, 10000));

    out("-- waits that run out, and closing a client still connecting");
    client = connect_with(NULL, silent);
    result("wait_open negative timeout", snow_ws_client_wait_open(client, -1));
    result("wait_closed negative timeout", snow_ws_client_wait_closed(client, -1));
    result("wait_open 50 ms", snow_ws_client_wait_open(client, 50));
    result("wait_closed 50 ms", snow_ws_client_wait_closed(client, 50));
    result("close code 999", snow_ws_client_close(client, 999, NULL));
    result("close reason not UTF-8", snow_ws_client_close(client, 1000, bad_reason));
    result("close", snow_ws_client_close(client, 1000, NULL));
    wait_for(0, 2);
    out("%s", close_line);
    result("wait_open after close", snow_ws_client_wait_open(client, 1000));
    result("close again", snow_ws_client_close(client, 1000, NULL));
    result("wait_closed", snow_ws_client_wait_closed(client, 10000));
    result("close after wait_closed", snow_ws_client_close(client, 1000, NULL));
    snow_string_free(bad_reason);
    out("done");
    return 0;
}
