/* Sends from threads the program created (pthreads, not the runtime's): two threads send 100 messages each to
 * one connection at once; the client sees each thread's messages in order. Then one closes with 1000 "done". */
#include "testlib.h"

#define PER_THREAD 100

static void *conn_handle;

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    (void)path;
    (void)headers;
    conn_handle = conn;
    bump(1);
    return conn;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    char *r = cstr(reason);
    (void)conn;
    out("close %lld '%s'", (long long)code, r);
    free(r);
    bump(0);
    return NULL;
}

typedef struct Sender {
    const char *tag;
    int failures;
} Sender;

static void *sender(void *arg)
{
    Sender *me = arg;
    int i;
    char text[32];
    for (i = 0; i < PER_THREAD; i++) {
        SnowString *s;
        snprintf(text, sizeof text, "%s %d", me->tag, i);
        s = S(text);
        if (snow_ws_send(conn_handle, s) != 0)
            me->failures++;
        snow_string_free(s);
    }
    return NULL;
}

int main(void)
{
    pthread_t a, b;
    Sender sa = {"a", 0}, sb = {"b", 0};
    SnowString *done = S("done");
    int64_t server = start(NULL, (void *)on_connect, NULL, NULL, NULL, (void *)on_close, NULL);
    wait_for(1, 1);
    pthread_create(&a, NULL, sender, &sa); /* both at once */
    pthread_create(&b, NULL, sender, &sb);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    out("thread a: %d sent, %d failed", PER_THREAD - sa.failures, sa.failures);
    out("thread b: %d sent, %d failed", PER_THREAD - sb.failures, sb.failures);
    result("close from main", snow_ws_close(conn_handle, 1000, done));
    wait_for(0, 1);
    result("stop", snow_ws_stop(server, 2000));
    snow_string_free(done);
    out("done");
    return 0;
}
