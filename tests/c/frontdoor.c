/* The front door from C: SnowWsOptions' admission fields (Origin allow-list, subprotocols, max_connections,
 * handshake rate, metrics_path), snow_ws_subprotocol, snow_ws_server_stats (and its struct_size rule), snow_ws_drain.
 * The test (test_programs.py) makes the handshakes; this program prints what C sees. */
#include <stddef.h>

#include "testlib.h"

static int64_t server;

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    SnowString *sub = snow_ws_subprotocol(conn);
    char *p = cstr(path);
    char *s = cstr(sub);
    (void)headers;
    out("connect %s subprotocol %s", p, s);
    if (sub == NULL)
        result_ptr("snow_ws_subprotocol", sub);
    free(p);
    free(s);
    snow_string_free(sub);
    bump(0);
    return conn;
}

static void show_stats(const char *what, SnowWsStats *st)
{
    out("%s: open %lld total %lld refused origin %lld subprotocol %lld max_connections %lld rate %lld "
        "bad_request %lld messages in %lld out %lld bytes in %lld out %lld",
        what, (long long)st->connections_open, (long long)st->connections_total, (long long)st->refused_origin,
        (long long)st->refused_subprotocol, (long long)st->refused_max_connections,
        (long long)st->refused_rate_limit, (long long)st->refused_bad_request, (long long)st->messages_in,
        (long long)st->messages_out, (long long)st->bytes_in, (long long)st->bytes_out);
}

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    if (strcmp(m, "stats") == 0) {
        SnowWsStats st;
        memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        result("server_stats", snow_ws_server_stats(server, &st));
        show_stats("full", &st);
        /* An older, shorter struct: the fields past its struct_size are left alone. */
        memset(&st, 0, sizeof st);
        st.struct_size = offsetof(SnowWsStats, messages_in);
        st.messages_in = -7;
        result("server_stats short", snow_ws_server_stats(server, &st));
        show_stats("short", &st);
        st.struct_size = 4;
        result("server_stats struct_size 4", snow_ws_server_stats(server, &st));
        result("server_stats NULL", snow_ws_server_stats(server, NULL));
        st.struct_size = sizeof st;
        result("server_stats unknown", snow_ws_server_stats(999999, &st));
        result_ptr("subprotocol NULL", snow_ws_subprotocol(NULL));
        bump(1);
    }
    snow_ws_send(conn, msg);
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    out_close(code, reason);
    result_ptr("subprotocol after close", snow_ws_subprotocol(conn));
    bump(2);
    return NULL;
}

static void *plain_close(void *conn, int64_t code, const SnowString *reason)
{
    (void)conn;
    out("plain server:");
    out_close(code, reason);
    bump(3);
    return NULL;
}

int main(void)
{
    SnowWsOptions o = fresh_options();
    SnowWsStats st;
    int64_t plain;
    o.allowed_origins = "https://*.example.com, http://ok.test";
    o.subprotocols = "chat.v2,chat";
    o.require_subprotocol = 1;
    o.max_connections = 2;
    o.handshake_rate = 0.001;
    o.handshake_burst = 6;
    o.drain_window_ms = 500;
    o.metrics_path = "/metrics";
    server = start(&o, (void *)on_connect, NULL, (void *)on_message, NULL, (void *)on_close, NULL);
    /* A server without subprotocols: snow_ws_subprotocol gives NULL, SNOW_WS_E_NOT_FOUND. */
    plain = start(NULL, (void *)on_connect, NULL, NULL, NULL, (void *)plain_close, NULL);
    wait_for(3, 1);
    result("stop plain", snow_ws_stop(plain, 2000));
    wait_for(1, 1);
    result("drain", snow_ws_drain(server, 3000));
    wait_for(2, 2);
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    result("server_stats after drain", snow_ws_server_stats(server, &st));
    result("drain again", snow_ws_drain(server, 3000));
    result("drain negative", snow_ws_drain(server, -1));
    o = fresh_options();
    o.allowed_origins = "example.com";
    result("start with a bad origin", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.handshake_rate = -1.0;
    result("start with a negative rate", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    out("done");
    return 0;
}
