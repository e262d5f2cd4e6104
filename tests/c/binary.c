/* Binary messages through both paths: `binary onbinary` (SnowWsOptions.on_binary_fn, with an env pointer) and
 * `binary onmessage` (no on_binary: they reach on_message as a SnowString, snow-rt's way). Echoed with
 * snow_ws_send_binary; text is echoed with snow_ws_send. */
#include "testlib.h"

static const char *binary_env = "binary-env";

static void show_bytes(const char *what, const uint8_t *data, uint64_t len)
{
    char hex[3 * 8 + 1] = "";
    uint64_t i;
    for (i = 0; i < len && i < 8; i++)
        snprintf(hex + 3 * i, 4, "%02x ", data[i]);
    out("%s %llu bytes: %s...", what, (unsigned long long)len, hex);
}

static void *on_binary(void *env, void *conn, const uint8_t *data, int64_t len)
{
    out("on_binary env=%s", (const char *)env);
    show_bytes("binary", data, (uint64_t)len);
    result("send_binary", snow_ws_send_binary(conn, data, len));
    return NULL;
}

static void *on_message(void *conn, const SnowString *msg)
{
    const uint8_t *data = (const uint8_t *)SNOW_STRING_DATA(msg);
    show_bytes("on_message", data, msg->len);
    if (msg->len > 0 && data[0] == 't')
        result("send", snow_ws_send(conn, msg));
    else
        result("send_binary", snow_ws_send_binary(conn, data, (int64_t)msg->len));
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

int main(int argc, char **argv)
{
    SnowWsOptions opts;
    int64_t server;
    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    if (argc > 1 && strcmp(argv[1], "onbinary") == 0) {
        opts.on_binary_fn = (void *)on_binary;
        opts.on_binary_env = (void *)binary_env;
    }
    server = start(&opts, NULL, NULL, (void *)on_message, NULL, (void *)on_close, NULL);
    wait_for(0, 1);
    result("stop", snow_ws_stop(server, 2000));
    out("done");
    return 0;
}
