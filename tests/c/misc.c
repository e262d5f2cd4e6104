/* Version, error codes and messages, options (struct_size, ranges, TLS, host), server ids, strings, and the
 * per-thread last error. No client. */
#include "testlib.h"

static void *second_thread(void *arg)
{
    (void)arg;
    out("thread: last error before any call '%s' code %lld", snow_ws_last_error(),
        (long long)snow_ws_last_error_code());
    result("thread: server_port(424242)", snow_ws_server_port(424242));
    return NULL;
}

int main(void)
{
    SnowWsOptions o;
    int64_t code, server;
    pthread_t thread;
    SnowString *empty, *nobody = S("nobody"), *hi = S("hi"), *bad = snow_string_new("\xff", 1);

    out("last error before any call '%s' code %lld", snow_ws_last_error(), (long long)snow_ws_last_error_code());
    out("version %s, header %s: %s", snow_ws_version(), SNOW_WS_VERSION,
        strcmp(snow_ws_version(), SNOW_WS_VERSION) == 0 ? "match" : "MISMATCH");
    out("version_number %lld, header %lld: %s", (long long)snow_ws_version_number(), (long long)SNOW_WS_VERSION_NUMBER,
        snow_ws_version_number() == SNOW_WS_VERSION_NUMBER ? "match" : "MISMATCH");
    for (code = 0; code <= 13; code++)
        out("strerror(%lld) %s: %s", (long long)code, code_name(code), snow_ws_strerror(code));
    out("strerror(-1): %s", snow_ws_strerror(-1));

    out("-- options");
    o = fresh_options();
    o.struct_size = 4;
    result("struct_size 4", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.port = 70000;
    result("port 70000", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.pong_timeout_ms = -5;
    result("pong_timeout_ms -5", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.max_message_size = -1;
    result("max_message_size -1", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.workers = -2;
    result("workers -2", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.tls_cert_path = "/nonexistent/cert.pem";
    result("tls cert alone", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o.tls_key_path = "/nonexistent/key.pem";
    result("tls files missing", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));
    o = fresh_options();
    o.host = "\xff";
    result("host not UTF-8", snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL));

    /* A caller compiled against a shorter struct: only struct_size and host; the rest counts as 0. */
    o = fresh_options();
    o.struct_size = 16;
    o.host = "127.0.0.1";
    o.port = 1; /* past struct_size: ignored (port 0, ephemeral), else binding port 1 would fail */
    server = snow_ws_start(&o, NULL, NULL, NULL, NULL, NULL, NULL);
    out("struct_size 16 -> server %s, port %s", server > 0 ? "started" : snow_ws_last_error(),
        snow_ws_server_port(server) > 1 ? "ephemeral" : "WRONG");
    result("stop", snow_ws_stop(server, 0));
    result("stop again", snow_ws_stop(server, 0));
    result("server_port of the stopped server", snow_ws_server_port(server));
    server = snow_ws_start(NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    out("NULL options -> server %s", server > 0 ? "started" : snow_ws_last_error());
    result("stop negative timeout", snow_ws_stop(server, -1));
    result("stop", snow_ws_stop(server, 0));
    result("server_port(0)", snow_ws_server_port(0));
    result("stop(-3)", snow_ws_stop(-3, 0));

    out("-- rooms without members");
    result("member_count nobody", snow_room_member_count(nobody));
    result("broadcast to nobody", snow_room_broadcast(nobody, hi));
    result("broadcast invalid UTF-8 msg", snow_room_broadcast(nobody, bad));
    result("broadcast invalid UTF-8 room", snow_room_broadcast(bad, hi));
    result("member_count NULL", snow_room_member_count(NULL));

    out("-- strings");
    empty = snow_string_new(NULL, 0);
    out("snow_string_new(NULL, 0): %s, len %llu", empty != NULL ? "ok" : "NULL", (unsigned long long)empty->len);
    result_ptr("snow_string_new(NULL, 1)", snow_string_new(NULL, 1));
    snow_string_free(NULL);
    out("snow_string_free(NULL): ok");

    out("-- the last error is per thread");
    result("main: server_port(31337)", snow_ws_server_port(31337));
    pthread_create(&thread, NULL, second_thread, NULL);
    pthread_join(thread, NULL);
    out("main: last error still '%s'", snow_ws_last_error());

    snow_string_free(empty);
    snow_string_free(nobody);
    snow_string_free(hi);
    snow_string_free(bad);
    out("done");
    return 0;
}
