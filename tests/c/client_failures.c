/* Connections that cannot be opened: `client_failures LABEL URL OPEN_TIMEOUT_MS [LABEL URL OPEN_TIMEOUT_MS]...`
 * connects to each URL in turn (OPEN_TIMEOUT_MS 0 = the default) and prints what the program sees: snow_ws_connect's
 * result, snow_ws_client_wait_open's (the error code and the reason), whether on_connect ran, the on_close it got
 * (1006 and the same reason), and snow_ws_client_wait_closed's. */
#include "testlib.h"

static char close_line[1200];
static int connects;

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    (void)path;
    (void)headers;
    connects++;
    return conn;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    char *r = cstr(reason);
    SnowString *hi = S("hi");
    int64_t sent = snow_ws_send(conn, hi); /* the handle of a connection that never opened was never valid */
    snprintf(close_line, sizeof close_line, "on_close %lld '%s', send with its conn -> %lld %s", (long long)code, r,
             (long long)sent, code_name(snow_ws_last_error_code()));
    free(r);
    snow_string_free(hi);
    bump(0);
    return NULL;
}

int main(int argc, char **argv)
{
    SnowWsClientOptions o;
    int64_t client, rc;
    int i, n = 0;

    for (i = 1; i + 2 < argc; i += 3) {
        snow_ws_client_options_init(&o, sizeof o);
        o.open_timeout_ms = atoi(argv[i + 2]);
        client = snow_ws_connect(&o, argv[i + 1], (void *)on_connect, NULL, NULL, NULL, (void *)on_close, NULL);
        out("%s:", argv[i]);
        result("  connect", client > 0 ? 0 : client);
        rc = snow_ws_client_wait_open(client, 20000);
        wait_for(0, ++n);
        result("  wait_open", rc);
        out("  on_connect calls %d", connects);
        out("  %s", close_line);
        result("  wait_closed", snow_ws_client_wait_closed(client, 10000));
    }
    out("done");
    return 0;
}
