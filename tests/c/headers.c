/* snow_ws_header_get: case-insensitive, repeated headers joined, absent -> NULL, callable from another thread
 * during on_connect, stale once on_connect has returned. */
#include "testlib.h"

static const SnowHeaders *saved;

static void show(const char *what, const SnowHeaders *headers, const char *name)
{
    const SnowString *value = snow_ws_header_get(headers, name);
    if (value == NULL) {
        result_ptr(what, value);
        return;
    }
    char *v = cstr(value);
    out("%s -> '%s'", what, v);
    free(v);
}

static void *from_thread(void *arg)
{
    show("X-Custom from another thread", arg, "X-Custom");
    return NULL;
}

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    pthread_t thread;
    char *p = cstr(path);
    out("connect %s", p);
    free(p);
    show("X-Custom", headers, "X-Custom");
    show("x-custom", headers, "x-custom");
    show("X-CUSTOM", headers, "X-CUSTOM");
    show("x-repeat", headers, "x-repeat");
    show("Missing", headers, "Missing");
    show("NULL name", headers, NULL);
    show("NULL headers", NULL, "X-Custom");
    pthread_create(&thread, NULL, from_thread, (void *)headers);
    pthread_join(thread, NULL);
    saved = headers;
    return conn;
}

static void *on_message(void *conn, const SnowString *msg)
{
    SnowString *ok = S("ok");
    (void)msg;
    show("X-Custom after on_connect returned", saved, "X-Custom");
    snow_ws_send(conn, ok);
    snow_string_free(ok);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    (void)conn;
    (void)reason;
    out("close %lld", (long long)code);
    bump(0);
    return NULL;
}

int main(void)
{
    int64_t server = start(NULL, (void *)on_connect, NULL, (void *)on_message, NULL, (void *)on_close, NULL);
    wait_for(0, 1);
    result("stop", snow_ws_stop(server, 2000));
    out("done");
    return 0;
}
