/* on_connect returning NULL rejects (1008 "rejected", no on_close, the handle is stale at once); sending from
 * on_connect works; an absent on_connect (NULL fn) accepts. */
#include "testlib.h"

static void *rejected_handle;

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    char *p = cstr(path);
    SnowString *welcome = S("welcome");
    (void)headers;
    if (strncmp(p, "/deny", 5) == 0) {
        out("reject %s", p);
        rejected_handle = conn;
        free(p);
        snow_string_free(welcome);
        bump(1);
        return NULL;
    }
    out("accept %s", p);
    result("send from on_connect", snow_ws_send(conn, welcome));
    snow_string_free(welcome);
    free(p);
    return conn;
}

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    out("message '%s'", m);
    free(m);
    snow_ws_send(conn, msg);
    return NULL;
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

int main(void)
{
    SnowString *x = S("x");
    int64_t first = start(NULL, (void *)on_connect, NULL, (void *)on_message, NULL, (void *)on_close, NULL);
    int64_t second;

    wait_for(1, 1); /* the rejected connection */
    wait_for(0, 1); /* the accepted one, closed by the client */
    result("send to the rejected handle", snow_ws_send(rejected_handle, x));

    second = start(NULL, NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL);
    wait_for(0, 2);
    result("stop first", snow_ws_stop(first, 2000));
    result("stop second", snow_ws_stop(second, 2000));
    snow_string_free(x);
    out("done");
    return 0;
}
