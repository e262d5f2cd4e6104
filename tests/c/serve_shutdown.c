/* snow_ws_serve blocking in a thread the program created, ended by snow_ws_shutdown() from the main thread, then
 * from inside a callback; a shutdown made while nothing is blocked is kept for the next call; a bind failure
 * returns at once. argv[1]: a free port. Text "stop" asks main to shut down; "stop-here" shuts down from the
 * callback itself. */
#include "testlib.h"

static int64_t port;

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    out("message '%s'", m);
    if (strcmp(m, "stop") == 0)
        bump(1);
    else if (strcmp(m, "stop-here") == 0)
        out("shutdown from the callback -> %lld", (long long)snow_ws_shutdown());
    else
        snow_ws_send(conn, msg);
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    char *r = cstr(reason);
    (void)conn;
    out("close %lld '%s'", (long long)code, r);
    free(r);
    return NULL;
}

static void *serve_thread(void *arg)
{
    (void)arg;
    out("serving on the given port");
    snow_ws_serve(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port);
    out("serve returned");
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t thread;
    int64_t woken, busy_server;
    SnowWsOptions opts;

    if (argc < 2)
        return 2;
    port = atoll(argv[1]);
    result("init", snow_ws_init());

    out("-- a shutdown with nobody blocked is kept");
    result("shutdown", snow_ws_shutdown());
    snow_ws_serve(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, port);
    out("serve returned at once");
    result("wait_shutdown after a consumed request: shutdown", snow_ws_shutdown());
    result("wait_shutdown", snow_ws_wait_shutdown());

    out("-- serve in a thread, shutdown from main");
    pthread_create(&thread, NULL, serve_thread, NULL);
    wait_for(1, 1);
    woken = snow_ws_shutdown();
    pthread_join(thread, NULL);
    result("shutdown woke", woken);

    out("-- serve in a thread, shutdown from a callback");
    pthread_create(&thread, NULL, serve_thread, NULL);
    pthread_join(thread, NULL);

    out("-- bind failure returns at once");
    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    busy_server = snow_ws_start(&opts, NULL, NULL, NULL, NULL, NULL, NULL);
    snow_ws_serve(NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL, snow_ws_server_port(busy_server));
    out("serve returned: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
    snow_ws_serve(NULL, NULL, NULL, NULL, NULL, NULL, -1);
    out("serve returned: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
    result("stop", snow_ws_stop(busy_server, 1000));
    out("done");
    return 0;
}
