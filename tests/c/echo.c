/* Echo through the three Snow callbacks, called without env pointers (`echo plain`) or with them (`echo env`),
 * optionally on worker threads (`echo env 2`). Ends after the first connection's on_close. */
#include "testlib.h"

typedef struct Env {
    const char *name;
    int magic;
} Env;

static Env connect_env = {"connect", 0x5a5a}, message_env = {"message", 0x5a5a}, close_env = {"close", 0x5a5a};

static void *plain_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    char *p = cstr(path);
    out("connect %s headers=%s", p, headers != NULL ? "yes" : "no");
    free(p);
    return conn;
}

static void *plain_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    out("message '%s' (%llu bytes)", m, (unsigned long long)msg->len);
    free(m);
    result("send", snow_ws_send(conn, msg));
    return NULL;
}

static void *plain_close(void *conn, int64_t code, const SnowString *reason)
{
    char *r = cstr(reason);
    (void)conn;
    out("close %lld '%s'", (long long)code, r);
    free(r);
    bump(0);
    return NULL;
}

static void *env_connect(void *env, void *conn, const SnowString *path, const SnowHeaders *headers)
{
    Env *e = env;
    char *p = cstr(path);
    out("[%s %s] connect %s headers=%s", e->name, e->magic == 0x5a5a ? "ok" : "BAD", p,
        headers != NULL ? "yes" : "no");
    free(p);
    return conn;
}

static void *env_message(void *env, void *conn, const SnowString *msg)
{
    Env *e = env;
    char *m = cstr(msg);
    out("[%s %s] message '%s' (%llu bytes)", e->name, e->magic == 0x5a5a ? "ok" : "BAD", m,
        (unsigned long long)msg->len);
    free(m);
    result("send", snow_ws_send(conn, msg));
    return NULL;
}

static void *env_close(void *env, void *conn, int64_t code, const SnowString *reason)
{
    Env *e = env;
    char *r = cstr(reason);
    (void)conn;
    out("[%s %s] close %lld '%s'", e->name, e->magic == 0x5a5a ? "ok" : "BAD", (long long)code, r);
    free(r);
    bump(0);
    return NULL;
}

int main(int argc, char **argv)
{
    SnowWsOptions opts;
    int64_t server;
    int with_env = argc > 1 && strcmp(argv[1], "env") == 0;

    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    opts.workers = argc > 2 ? atoi(argv[2]) : 0;
    if (with_env)
        server = start(&opts, (void *)env_connect, &connect_env, (void *)env_message, &message_env,
                       (void *)env_close, &close_env);
    else
        server = start(&opts, (void *)plain_connect, NULL, (void *)plain_message, NULL, (void *)plain_close, NULL);
    wait_for(0, 1);
    result("stop", snow_ws_stop(server, 2000));
    out("done");
    return 0;
}
