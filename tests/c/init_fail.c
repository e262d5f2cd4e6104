/* Run with SNOW_RT_PY_ABI_FAIL_IMPORT=1: the embedded runtime cannot start, and every entry point returns its
 * error value (never cffi's 0) with the reason; no callback ever runs; the "(no runtime)" helpers still work, and
 * snow_ws_version_number does not even try to start it. */
#include "testlib.h"

static void *callback(void *conn, const SnowString *msg)
{
    (void)conn;
    (void)msg;
    out("CALLBACK CALLED");
    return NULL;
}

static void *from_thread(void *arg)
{
    (void)arg;
    out("other thread, before any call: '%s'", snow_ws_last_error());
    result("other thread: send", snow_ws_send((void *)1, NULL));
    return NULL;
}

int main(void)
{
    SnowString *s = S("x");
    SnowString *got[1];
    pthread_t thread;

    /* No runtime: answers before anything tried to start it, and without trying (no SNOW_WS_E_INIT left). */
    out("version_number %lld, header %lld: %s; last error code %lld", (long long)snow_ws_version_number(),
        (long long)SNOW_WS_VERSION_NUMBER, snow_ws_version_number() == SNOW_WS_VERSION_NUMBER ? "match" : "MISMATCH",
        (long long)snow_ws_last_error_code());
    result("init", snow_ws_init());
    result("init again", snow_ws_init());
    result_ptr("version", snow_ws_version());
    result("send", snow_ws_send((void *)1, s));
    result("send_binary", snow_ws_send_binary((void *)1, (const uint8_t *)"x", 1));
    result("close", snow_ws_close((void *)1, 1000, NULL));
    result("join", snow_room_join((void *)1, s));
    result("leave", snow_ws_leave((void *)1, s));
    result("broadcast", snow_room_broadcast(s, s));
    result("broadcast_except", snow_ws_broadcast_except(s, s, NULL));
    result("member_count", snow_room_member_count(s));
    result("rooms_of", snow_ws_rooms_of((void *)1, got, 1));
    result("start", snow_ws_start(NULL, NULL, NULL, (void *)callback, NULL, NULL, NULL));
    result("server_port", snow_ws_server_port(1));
    result("stop", snow_ws_stop(1, 0));
    result_ptr("header_get", snow_ws_header_get((const SnowHeaders *)1, "Host"));
    snow_ws_serve(NULL, NULL, (void *)callback, NULL, NULL, NULL, 0);
    out("serve returned: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
    snow_ws_serve_tls(NULL, NULL, (void *)callback, NULL, NULL, NULL, 0, s, s);
    out("serve_tls returned: %s", code_name(snow_ws_last_error_code()));
    pthread_create(&thread, NULL, from_thread, NULL);
    pthread_join(thread, NULL);

    out("-- without the runtime");
    result("shutdown", snow_ws_shutdown());
    result("wait_shutdown (pending request)", snow_ws_wait_shutdown());
    out("strerror(SNOW_WS_E_INIT): %s", snow_ws_strerror(SNOW_WS_E_INIT));
    result("version_number", snow_ws_version_number());
    out("string: %llu bytes '%c'", (unsigned long long)s->len, SNOW_STRING_DATA(s)[0]);
    snow_string_free(s);
    out("done");
    return 0;
}
