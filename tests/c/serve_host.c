/* snow_ws_serve on the address of SNOW_WS_HOST (the test sets it in the environment; unset or empty: 127.0.0.1).
 * argv[1]: a free port. Echoes text; "stop" makes the callback call snow_ws_shutdown(). Prints how serve returned. */
#include "testlib.h"

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    if (strcmp(m, "stop") == 0)
        result("shutdown from the callback", snow_ws_shutdown());
    else
        snow_ws_send(conn, msg);
    free(m);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    result("init", snow_ws_init());
    snow_ws_serve(NULL, NULL, (void *)on_message, NULL, NULL, NULL, atoll(argv[1]));
    out("serve returned: %s: %s", code_name(snow_ws_last_error_code()), snow_ws_last_error());
    out("done");
    return 0;
}
