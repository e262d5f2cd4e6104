/* SnowWsOptions.max_queue_bytes and .slow_consumer. First the option checks (bad values, and a struct_size that
 * ends before the two fields: their garbage is ignored). Then a server with a 4 KiB queue and the policy argv[1]
 * ("drop" or "close"); its first client never reads. The main thread (not a callback) sends 1000-byte messages to
 * it until a send is refused, and prints how many went ("sent N") and the refusal. The client then reads; a text
 * message from it is answered "still open". */
#include <stddef.h>

#include "testlib.h"

static void *slow_conn;

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    (void)path;
    (void)headers;
    slow_conn = conn;
    bump(0);
    return conn;
}

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg), what[128];
    SnowString *reply = S("still open");
    snprintf(what, sizeof what, "on_message '%s', reply", m);
    result(what, snow_ws_send(conn, reply));
    snow_string_free(reply);
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    (void)conn;
    out_close(code, reason);
    bump(1);
    return NULL;
}

int main(int argc, char **argv)
{
    SnowWsOptions o;
    int64_t server, rc = 0;
    long sent;
    char text[1001];
    SnowString *msg;
    int drop = argc > 1 && strcmp(argv[1], "drop") == 0;

    o = fresh_options();
    o.slow_consumer = 3;
    result("slow_consumer 3", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.slow_consumer = -1;
    result("slow_consumer -1", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.max_queue_bytes = 100;
    result("max_queue_bytes 100", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.struct_size = offsetof(SnowWsOptions, max_queue_bytes); /* a program built before the two fields */
    o.max_queue_bytes = 100;
    o.slow_consumer = 3;
    server = snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL);
    out("struct_size without the new fields -> %s", server > 0 ? "started" : snow_ws_last_error());
    result("stop", snow_ws_stop(server, 0));

    o = fresh_options();
    o.max_queue_bytes = 4096;
    o.slow_consumer = drop ? SNOW_WS_SLOW_CONSUMER_DROP : SNOW_WS_SLOW_CONSUMER_CLOSE;
    server = start(&o, (void *)on_connect, NULL, (void *)on_message, NULL, (void *)on_close, NULL);
    wait_for(0, 1);
    out("connected");
    for (sent = 0; sent < 200000; sent++) { /* the kernel's socket buffers take a few MB first */
        snprintf(text, sizeof text, "%06ld%0994d", sent, 0);
        msg = S(text);
        rc = snow_ws_send(slow_conn, msg);
        snow_string_free(msg);
        if (rc != 0)
            break;
    }
    out("sent %ld", sent);
    result("refused send", rc);
    wait_for(1, 1);
    result("stop", snow_ws_stop(server, 2000));
    out("done");
    return 0;
}
