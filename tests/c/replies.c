/* Sends made inside on_message / on_binary to the connection itself take the library's reply fast path (encoded in
 * C, handed to Python in one batch after the callback). This program checks that their answers, their order and
 * the bytes on the wire are those of the ordinary path (the test also runs it with the fast path switched off,
 * SNOW_RT_PY_ABI_NO_FAST_REPLY=1, and compares the transcripts). Text commands:
 *   "burst N SIZE"   N sends of SIZE bytes in one callback, until one fails (the outbound queue bound)
 *   "order"          send, join + broadcast to a room it is in, send again, leave
 *   "close-after"    send, close 4002, send again
 *   "utf8"           sends of valid and invalid UTF-8 at every length class of the validator
 *   "utf8-random N"  N sends of pseudo-random short strings (random_unit below; the test replays the sequence
 *                    with Python's decoder as the oracle)
 *   "relay"          send to itself, then to the connection that connected first, then to itself again
 *   "binary"         send_binary at 0, 125, 126, 65535 and 65536 bytes
 * Binary messages (on_binary): "E..." is sent back as it came (the same pointer: for large ones the library
 * queues Python's own message object) between a binary "before" and a text "after"; "C..." is copied first and
 * the copy sent back (same length, another pointer).
 * Ends after argv[1] on_close (default 1). */
#include "testlib.h"

static void *first_conn; /* the first connection: "relay" sends to it */

static void *on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    (void)path;
    (void)headers;
    if (first_conn == NULL)
        first_conn = conn;
    return conn;
}

static int64_t send_text(void *conn, const char *data, size_t len)
{
    SnowString *s = snow_string_new(data, len);
    int64_t rc = snow_ws_send(conn, s);
    snow_string_free(s);
    return rc;
}

static void burst(void *conn, long n, long size)
{
    char *buf = malloc((size_t)size + 1), what[64];
    long i;
    int64_t rc = 0;
    for (i = 0; i < n; i++) {
        memset(buf, 'a' + (int)(i % 26), (size_t)size);
        if ((rc = send_text(conn, buf, (size_t)size)) != 0)
            break;
    }
    out("burst %ld x %ld: %ld sent", n, size, i);
    if (rc != 0) {
        snprintf(what, sizeof what, "send #%ld", i);
        result(what, rc);
    }
    free(buf);
}

static void utf8(void *conn)
{
    static const struct {
        const char *name, *bytes;
    } cases[] = {
        {"ascii 9 bytes", "abcdefghi"},
        {"U+0080", "\xc2\x80"},
        {"U+07FF", "\xdf\xbf"},
        {"U+0800", "\xe0\xa0\x80"},
        {"U+D7FF", "\xed\x9f\xbf"},
        {"U+E000", "\xee\x80\x80"},
        {"U+FFFF", "\xef\xbf\xbf"},
        {"U+10000", "\xf0\x90\x80\x80"},
        {"U+10FFFF", "\xf4\x8f\xbf\xbf"},
        {"ascii then U+1F40D", "snake \xf0\x9f\x90\x8d!"},
        {"C0 overlong", "\xc0\xaf"},
        {"C1 overlong", "\xc1\xbf"},
        {"E0 overlong", "\xe0\x9f\xbf"},
        {"surrogate D800", "\xed\xa0\x80"},
        {"surrogate DFFF", "\xed\xbf\xbf"},
        {"F0 overlong", "\xf0\x8f\xbf\xbf"},
        {"above U+10FFFF", "\xf4\x90\x80\x80"},
        {"F5", "\xf5\x80\x80\x80"},
        {"lone continuation", "ab\x80"},
        {"truncated 2 of 3", "abcdefgh\xe2\x82"},
        {"truncated 3 of 4", "\xf0\x9f\x90"},
        {"bad second byte", "\xc3\x28"},
        {"bad fourth byte", "\xf0\x9f\x90\x28"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        result(cases[i].name, send_text(conn, cases[i].bytes, strlen(cases[i].bytes)));
}

/* The generator the test replays: a 64-bit LCG drawing 1-3 units per string, each a character encoding of 1-4
 * bytes around the boundaries the validator checks (overlong leads, E0/ED/F0/F4 second bytes, F5), a lone
 * continuation byte or a truncated sequence; one continuation byte in 7 is not one. */
static uint64_t lcg_state;

static unsigned lcg_next(unsigned bound)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((lcg_state >> 33) % bound);
}

static size_t random_unit(unsigned char *p)
{
    static const unsigned char cont[] = {0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0x41};
    static const unsigned char lead2[] = {0xc0, 0xc1, 0xc2, 0xdf};
    static const unsigned char lead3[] = {0xe0, 0xe1, 0xed, 0xee, 0xef};
    static const unsigned char lead4[] = {0xf0, 0xf1, 0xf4, 0xf5};
    size_t n = 0, tail = 0;
    switch (lcg_next(8)) {
    case 0:
        p[n++] = lcg_next(2) ? 0x41 : 0x7f;
        break;
    case 1:
        p[n++] = lead2[lcg_next(sizeof lead2)];
        tail = 1;
        break;
    case 2:
    case 3:
        p[n++] = lead3[lcg_next(sizeof lead3)];
        tail = 2;
        break;
    case 4:
    case 5:
        p[n++] = lead4[lcg_next(sizeof lead4)];
        tail = 3;
        break;
    case 6:
        tail = 1; /* a lone continuation byte */
        break;
    default:
        p[n++] = lcg_next(2) ? 0xe1 : 0xf1; /* truncated */
        tail = 1;
        break;
    }
    while (tail-- > 0)
        p[n++] = cont[lcg_next(sizeof cont)];
    return n;
}

static void utf8_random(void *conn, long n)
{
    unsigned char buf[16];
    long sent = 0;
    lcg_state = 42;
    for (long i = 0; i < n; i++) {
        size_t len = 0;
        for (unsigned units = 1 + lcg_next(3); units > 0; units--)
            len += random_unit(buf + len);
        int64_t rc = send_text(conn, (const char *)buf, len);
        if (rc == 0)
            sent++;
        else if (snow_ws_last_error_code() != SNOW_WS_E_INVALID_UTF8)
            result("utf8-random: unexpected", rc);
    }
    out("utf8-random %ld: %ld sent", n, sent);
}

static void *on_message(void *conn, const SnowString *msg)
{
    char *m = cstr(msg);
    long n, size;
    SnowString *room = S("r"), *text = S("2 broadcast");
    if (sscanf(m, "burst %ld %ld", &n, &size) == 2) {
        burst(conn, n, size);
    } else if (strcmp(m, "order") == 0) {
        result("send 1", send_text(conn, "1 before", 8));
        result("join", snow_room_join(conn, room));
        result("broadcast", snow_room_broadcast(room, text));
        result("send 3", send_text(conn, "3 after", 7));
        result("leave", snow_room_leave(conn, room));
    } else if (strcmp(m, "close-after") == 0) {
        result("send before", send_text(conn, "before", 6));
        result("close 4002", snow_ws_close(conn, 4002, room));
        result("send after", send_text(conn, "after", 5));
    } else if (sscanf(m, "utf8-random %ld", &n) == 1) {
        utf8_random(conn, n);
    } else if (strcmp(m, "utf8") == 0) {
        utf8(conn);
    } else if (strcmp(m, "relay") == 0) {
        result("send to itself", send_text(conn, "r1", 2));
        result("send to the first connection", send_text(first_conn, "for the first", 13));
        result("send to itself again", send_text(conn, "r2", 2));
    } else if (strcmp(m, "binary") == 0) {
        static const int64_t sizes[] = {0, 125, 126, 65535, 65536};
        uint8_t *data = malloc(65536);
        char what[64];
        for (int i = 0; i < 65536; i++)
            data[i] = (uint8_t)(i * 7);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            snprintf(what, sizeof what, "send_binary %lld", (long long)sizes[i]);
            result(what, snow_ws_send_binary(conn, data, sizes[i]));
        }
        free(data);
    }
    snow_string_free(room);
    snow_string_free(text);
    free(m);
    return NULL;
}

static void *on_binary(void *conn, const uint8_t *data, int64_t len)
{
    char what[64];
    if (len > 0 && data[0] == 'E') {
        result("binary before", snow_ws_send_binary(conn, (const uint8_t *)"before", 6));
        snprintf(what, sizeof what, "echo %lld bytes", (long long)len);
        result(what, snow_ws_send_binary(conn, data, len));
        result("text after", send_text(conn, "after", 5));
    } else if (len > 0 && data[0] == 'C') {
        uint8_t *copy = malloc((size_t)len);
        memcpy(copy, data, (size_t)len);
        snprintf(what, sizeof what, "copy of %lld bytes", (long long)len);
        result(what, snow_ws_send_binary(conn, copy, len));
        free(copy);
    }
    return NULL;
}

static void *on_close(void *conn, int64_t code, const SnowString *reason)
{
    (void)conn;
    out_close(code, reason);
    bump(0);
    return NULL;
}

int main(int argc, char **argv)
{
    SnowWsOptions opts;
    int64_t server;
    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    opts.on_binary_fn = (void *)on_binary;
    server = start(&opts, (void *)on_connect, NULL, (void *)on_message, NULL, (void *)on_close, NULL);
    wait_for(0, argc > 1 ? atoi(argv[1]) : 1);
    result("stop", snow_ws_stop(server, 2000));
    out("done");
    return 0;
}
