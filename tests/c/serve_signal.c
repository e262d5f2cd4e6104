/* snow_ws_serve on the main thread, ended by SIGINT or SIGTERM (sent by the test): connections get 1001, serve
 * returns, and the program's own SIGTERM handler is back in place afterwards. argv[1]: a free port. */
#include <signal.h>

#include "testlib.h"

static volatile sig_atomic_t own_handler_ran;

static void own_handler(int sig)
{
    (void)sig;
    own_handler_ran = 1;
}

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    (void)path;
    (void)headers;
    out("connected");
    return conn;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    char *r = cstr(reason);
    (void)conn;
    out("close %lld '%s'", (long long)code, r);
    free(r);
    return NULL;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    if (argc < 2)
        return 2;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = own_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);

    result("init", snow_ws_init());
    snow_ws_serve((void *)on_connect, NULL, NULL, NULL, (void *)on_close, NULL, atoll(argv[1]));
    out("serve returned");
    raise(SIGTERM);
    out("own SIGTERM handler ran after serve returned: %s", own_handler_ran ? "yes" : "no");
    return 0;
}
