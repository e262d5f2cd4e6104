/* snow_ws_close: refused codes and reasons, a custom code seen by the client and by on_close, a NULL reason, and
 * calls on a connection that is closing. Text commands: "close CODE [REASON]", "close-null", "close-long",
 * "close-bad-utf8". */
#include "testlib.h"

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg), reason[200];
    long long code;
    int64_t rc;
    int used = 0;
    if (strcmp(m, "close-null") == 0) {
        result("close 1000 NULL reason", snow_ws_close(conn, 1000, NULL));
    }
    else if (strcmp(m, "close-long") == 0) {
        SnowString *r;
        memset(reason, 'x', 124);
        r = snow_string_new(reason, 124);
        result("close 1000 with a 124-byte reason", snow_ws_close(conn, 1000, r));
        snow_string_free(r);
    }
    else if (strcmp(m, "close-bad-utf8") == 0) {
        SnowString *r = snow_string_new("\xc3\x28", 2);
        result("close 1000 with an invalid UTF-8 reason", snow_ws_close(conn, 1000, r));
        snow_string_free(r);
    }
    else if (sscanf(m, "close %lld %n", &code, &used) == 1) {
        SnowString *r = S(m + used);
        char what[64];
        snprintf(what, sizeof what, "close %lld '%s'", code, m + used);
        rc = snow_ws_close(conn, code, r);
        result(what, rc);
        if (rc == 0) { /* closing now, not yet ended */
            result("send while closing", snow_ws_send(conn, r));
            result("join while closing", snow_room_join(conn, r));
            result("close again", snow_ws_close(conn, 1000, NULL));
        }
        snow_string_free(r);
    }
    free(m);
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    char *r = cstr(reason);
    SnowString *x = S("x");
    out("on_close %lld '%s'", (long long)code, r);
    result("send from on_close", snow_ws_send(conn, x));
    result("close from on_close", snow_ws_close(conn, 1000, NULL));
    snow_string_free(x);
    free(r);
    bump(0);
    return NULL;
}

int main(void)
{
    int64_t server = start(NULL, NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL);
    wait_for(0, 2);
    result("stop", snow_ws_stop(server, 2000));
    out("done");
    return 0;
}
