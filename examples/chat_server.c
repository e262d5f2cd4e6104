/* chat_server.c -- rooms over WebSocket in C on libsnow_ws: the chat line protocol of snow_rt_py's ChatApp
 * (`python -m snow_rt_py serve --app chat`), byte for byte, and the benchmark protocol behind `--app bench`.
 *
 *     make run              # builds everything, then runs this on ws://127.0.0.1:8765/
 *     build/chat_server --port 0 [--app chat|bench] [--host H] [--max-message-size N] [--workers N]
 *                       [--static-dir DIR --static-index FILE]   (serve a browser page on the same port)
 *                       [--cluster redis://HOST:PORT/DB] [--cluster-presence-ttl-ms N] [--reuse-port 1]
 *
 * Chat protocol (text messages; binary messages are echoed as binary):
 *     /join ROOM       -> "joined ROOM"          /leave ROOM     -> "left ROOM"
 *     /joinas ROOM NAME -> "joined ROOM", NAME (the rest of the line) shown in presence, also when already in
 *                        ROOM (it leaves and joins again with the new name); a NAME over 256 bytes of UTF-8 ->
 *                        "not joined ROOM: a name is at most 256 bytes of UTF-8"
 *     /say ROOM TEXT   -> TEXT to the other members of ROOM
 *     /all ROOM TEXT   -> TEXT to every member of ROOM, sender included
 *     /rooms           -> the JSON array of the sender's rooms, sorted, e.g. ["lobby", "news"]
 *     /who ROOM        -> "who ROOM " + the JSON array of its members, [id, node, meta] each (cluster-wide)
 *     /id              -> "id N", the connection's id
 *     anything else    -> echoed
 * Bench protocol: every connection joins room "bench"; a text message starting with 'B' is broadcast to the room
 * (sender included); every other message is echoed with its type.
 *
 * --help prints the usage line. Prints `listening on ws://HOST:PORT/` when ready; SIGINT/SIGTERM close every
 * connection with 1001, exit 0; a bad option prints one line naming it and what is wrong
 * (`chat_server: error: --app: nosuch is not chat or bench`) and exits 2; an address that cannot be bound (or a
 * cluster that cannot be reached) prints one error line and exits 1.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snow_ws.h"

/* -- small helpers over SnowString ---------------------------------------------------------------------------- */

typedef struct Slice {
    const char *data;
    size_t len;
} Slice;

static int slice_is(Slice s, const char *word)
{
    return s.len == strlen(word) && memcmp(s.data, word, s.len) == 0;
}

/* Python's str.partition(" "): head before the first space, tail after it (empty if there is no space). */
static void partition(Slice s, Slice *head, Slice *tail)
{
    const char *space = memchr(s.data, ' ', s.len);
    if (space == NULL) {
        *head = s;
        tail->data = s.data + s.len;
        tail->len = 0;
    }
    else {
        head->data = s.data;
        head->len = (size_t)(space - s.data);
        tail->data = space + 1;
        tail->len = s.len - head->len - 1;
    }
}

/* snow_* functions take SnowStrings: copy a slice into one (owned: free with snow_string_free). */
static SnowString *string_of(Slice s)
{
    return snow_string_new(s.data, s.len);
}

/* Send the text prefix + s + suffix. */
static void send_text(void *conn, const char *prefix, Slice s, const char *suffix)
{
    size_t n = strlen(prefix), m = strlen(suffix);
    char *buf = malloc(n + s.len + m + 1);
    SnowString *msg;
    if (buf == NULL)
        return;
    memcpy(buf, prefix, n);
    memcpy(buf + n, s.data, s.len);
    memcpy(buf + n + s.len, suffix, m);
    msg = snow_string_new(buf, n + s.len + m);
    free(buf);
    snow_ws_send(conn, msg);
    snow_string_free(msg);
}

/* -- JSON, as Python's json.dumps(list_of_str) writes it (ensure_ascii: \uXXXX for non-ASCII) --------------- */

typedef struct Buf {
    char *data;
    size_t len, cap;
} Buf;

static void put(Buf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *grown;
        while (cap < b->len + n)
            cap *= 2;
        grown = realloc(b->data, cap);
        if (grown == NULL)
            abort();
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void put_u16(Buf *b, unsigned v)
{
    char esc[8];
    snprintf(esc, sizeof esc, "\\u%04x", v);
    put(b, esc, 6);
}

/* Decode one UTF-8 sequence at s (valid UTF-8: room names come from text messages). */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *used)
{
    if (s[0] < 0x80 || len < 2) {
        *used = 1;
        return s[0];
    }
    if (s[0] < 0xE0) {
        *used = 2;
        return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (s[0] < 0xF0 || len < 4) {
        *used = 3;
        return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *used = 4;
    return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
           (s[3] & 0x3F);
}

static void put_json_string(Buf *b, const SnowString *str)
{
    const unsigned char *s = (const unsigned char *)SNOW_STRING_DATA(str);
    size_t i = 0, used;
    put(b, "\"", 1);
    while (i < str->len) {
        uint32_t c = utf8_next(s + i, (size_t)str->len - i, &used);
        i += used;
        if (c == '"')
            put(b, "\\\"", 2);
        else if (c == '\\')
            put(b, "\\\\", 2);
        else if (c == '\n')
            put(b, "\\n", 2);
        else if (c == '\r')
            put(b, "\\r", 2);
        else if (c == '\t')
            put(b, "\\t", 2);
        else if (c == '\b')
            put(b, "\\b", 2);
        else if (c == '\f')
            put(b, "\\f", 2);
        else if (c < 0x20 || (c >= 0x7F && c < 0x10000)) /* json.dumps escapes all but " " to "~" */
            put_u16(b, c);
        else if (c >= 0x10000) {
            c -= 0x10000;
            put_u16(b, 0xD800 | (c >> 10));
            put_u16(b, 0xDC00 | (c & 0x3FF));
        }
        else {
            char ch = (char)c;
            put(b, &ch, 1);
        }
    }
    put(b, "\"", 1);
}

static void send_rooms(void *conn)
{
    SnowString *names[64];
    SnowString **rooms = names;
    int64_t n = snow_ws_rooms_of(conn, names, 64), i;
    Buf json = {NULL, 0, 0};
    SnowString *msg;
    if (n > 64) { /* more rooms than the array holds: ask again with room for all of them */
        int64_t again;
        for (i = 0; i < 64; i++)
            snow_string_free(names[i]);
        rooms = calloc((size_t)n, sizeof *rooms);
        if (rooms == NULL)
            return;
        again = snow_ws_rooms_of(conn, rooms, n);
        n = again < n ? again : n;
    }
    if (n < 0)
        n = 0;
    put(&json, "[", 1);
    for (i = 0; i < n; i++) {
        if (i > 0)
            put(&json, ", ", 2);
        put_json_string(&json, rooms[i]);
        snow_string_free(rooms[i]);
    }
    put(&json, "]", 1);
    msg = snow_string_new(json.data, json.len);
    snow_ws_send(conn, msg);
    snow_string_free(msg);
    free(json.data);
    if (rooms != names)
        free(rooms);
}

static void send_who(void *conn, Slice room)
{
    SnowString *name = string_of(room), *msg;
    SnowWsMember small[64], *members = small;
    int64_t n = snow_room_presence(name, small, 64), i;
    Buf json = {NULL, 0, 0};
    char num[64];
    if (n > 64) { /* more members than the array holds: ask again with room for all of them */
        for (i = 0; i < 64; i++)
            snow_string_free(small[i].meta);
        members = calloc((size_t)n, sizeof *members);
        if (members == NULL) {
            snow_string_free(name);
            return;
        }
        i = snow_room_presence(name, members, n);
        n = i < n ? i : n;
    }
    if (n < 0)
        n = 0;
    put(&json, "who ", 4);
    put(&json, room.data, room.len);
    put(&json, " [", 2);
    for (i = 0; i < n; i++) {
        snprintf(num, sizeof num, "%s[%llu, %lld, ", i > 0 ? ", " : "",
                 (unsigned long long)(uintptr_t)members[i].conn, (long long)members[i].node);
        put(&json, num, strlen(num));
        put_json_string(&json, members[i].meta);
        put(&json, "]", 1);
        snow_string_free(members[i].meta);
    }
    put(&json, "]", 1);
    msg = snow_string_new(json.data, json.len);
    snow_ws_send(conn, msg);
    snow_string_free(msg);
    snow_string_free(name);
    free(json.data);
    if (members != small)
        free(members);
}

/* -- the chat app ------------------------------------------------------------------------------------------------ */

/* --history N: every room keeps its last N messages (as ChatApp(history=N)). /join ROOM -> "joined ROOM", then
 * its last N messages in their envelopes; /rejoin ROOM EPOCH OFFSET -> what was missed, then "recovered ROOM N"
 * or "unrecoverable ROOM"; a bad position (or, on a cluster, this callback being on the event loop thread: run
 * with --workers 1) -> "not joined ROOM: WHY". */
static int64_t history = 0;

static void join_history(void *conn, int plain_join, Slice rest)
{
    Slice room, position, epoch, offset;
    SnowWsPosition at;
    int64_t replayed = 0, rc;
    char number[32];
    partition(rest, &room, &position);
    SnowString *name = string_of(room);
    rc = snow_room_configure(name, history, 0, SNOW_WS_POLICY_DEFAULT);
    if (rc == 0 && plain_join) {
        rc = snow_room_position(name, &at);
        if (rc == 0) {
            send_text(conn, "joined ", room, "");
            at.offset = at.offset > history ? at.offset - history : 0;
            rc = snow_room_join_from(conn, name, &at, &replayed) < 0 ? -1 : 0;
        }
    }
    else if (rc == 0) {
        partition(position, &epoch, &offset);
        memset(&at, 0, sizeof at);
        if (epoch.len == 0 || epoch.len > 32 || offset.len == 0 || offset.len > 18 ||
            strspn(offset.data, "0123456789") < offset.len) {
            send_text(conn, "not joined ", room, ": /rejoin ROOM EPOCH OFFSET");
            snow_string_free(name);
            return;
        }
        memcpy(at.epoch, epoch.data, epoch.len);
        memcpy(number, offset.data, offset.len);
        number[offset.len] = '\0';
        at.offset = strtoll(number, NULL, 10);
        rc = snow_room_join_from(conn, name, &at, &replayed);
        if (rc == 1) {
            snprintf(number, sizeof number, " %lld", (long long)replayed);
            send_text(conn, "recovered ", room, number);
        }
        else if (rc == 0)
            send_text(conn, "unrecoverable ", room, "");
    }
    if (rc < 0) {
        char suffix[1100];
        snprintf(suffix, sizeof suffix, ": %s", snow_ws_last_error());
        send_text(conn, "not joined ", room, suffix);
    }
    snow_string_free(name);
}

static void *chat_on_message(void *conn, const SnowString *msg)
{
    Slice all = {SNOW_STRING_DATA(msg), (size_t)msg->len}, command, rest, room, text;
    if (all.len == 0 || all.data[0] != '/') {
        snow_ws_send(conn, msg);
        return NULL;
    }
    partition(all, &command, &rest);
    if (history > 0 && (slice_is(command, "/join") || slice_is(command, "/rejoin")) && rest.len > 0) {
        join_history(conn, slice_is(command, "/join"), rest);
    }
    else if (slice_is(command, "/join") && rest.len > 0) {
        SnowString *name = string_of(rest);
        if (snow_room_join(conn, name) == 0)
            send_text(conn, "joined ", rest, "");
        snow_string_free(name);
    }
    else if (slice_is(command, "/joinas") && rest.len > 0) {
        SnowString *name, *meta;
        partition(rest, &room, &text);
        if (text.len > 256) { /* snow_room_join_meta's bound, checked before leaving anything */
            send_text(conn, "not joined ", room, ": a name is at most 256 bytes of UTF-8");
            return NULL;
        }
        name = string_of(room);
        meta = text.len > 0 ? string_of(text) : NULL;
        snow_room_leave(conn, name); /* a no-op unless a member: joining again replaces the name in presence */
        if (snow_room_join_meta(conn, name, meta) == 0)
            send_text(conn, "joined ", room, "");
        snow_string_free(name);
        snow_string_free(meta);
    }
    else if (slice_is(command, "/leave") && rest.len > 0) {
        SnowString *name = string_of(rest);
        if (snow_room_leave(conn, name) == 0)
            send_text(conn, "left ", rest, "");
        snow_string_free(name);
    }
    else if ((slice_is(command, "/say") || slice_is(command, "/all")) && rest.len > 0) {
        SnowString *name, *body;
        partition(rest, &room, &text);
        name = string_of(room);
        body = string_of(text);
        if (slice_is(command, "/say"))
            snow_room_broadcast_except(name, body, conn);
        else
            snow_room_broadcast(name, body);
        snow_string_free(name);
        snow_string_free(body);
    }
    else if (slice_is(command, "/rooms") && rest.len == 0) {
        send_rooms(conn);
    }
    else if (slice_is(command, "/who") && rest.len > 0) {
        send_who(conn, rest);
    }
    else if (slice_is(command, "/id") && rest.len == 0) {
        char line[32];
        SnowString *reply;
        snprintf(line, sizeof line, "id %llu", (unsigned long long)(uintptr_t)conn);
        reply = snow_string_new(line, strlen(line));
        snow_ws_send(conn, reply);
        snow_string_free(reply);
    }
    else {
        snow_ws_send(conn, msg);
    }
    return NULL;
}

/* -- the bench app ----------------------------------------------------------------------------------------------- */

static SnowString *bench_room;

static void *bench_on_connect(void *conn, const SnowString *path, const SnowHeaders *headers)
{
    (void)path;
    (void)headers;
    snow_room_join(conn, bench_room);
    return conn; /* non-NULL: accept */
}

static void *bench_on_message(void *conn, const SnowString *msg)
{
    if (msg->len > 0 && SNOW_STRING_DATA(msg)[0] == 'B')
        snow_room_broadcast(bench_room, msg);
    else
        snow_ws_send(conn, msg);
    return NULL;
}

/* Both apps echo binary messages as binary. */
static void *on_binary(void *conn, const uint8_t *data, int64_t len)
{
    snow_ws_send_binary(conn, data, len);
    return NULL;
}

/* -- main -------------------------------------------------------------------------------------------------------- */

#define USAGE                                                                                                \
    "usage: chat_server [--app chat|bench] [--host H] [--port N] [--max-message-size N] [--ping-interval S] "  \
    "[--workers N] [--static-dir DIR] [--static-index FILE] [--history N] [--cluster URL] [--cluster-presence-ttl-ms N] "    \
    "[--reuse-port 0|1] [--help]"

/* A bad command line gets one line naming the option and what is wrong with it, and exit status 2. */
static void bad_option(const char *option, const char *text, const char *what)
{
    fprintf(stderr, "chat_server: error: %s: %s%s\n", option, text, what);
    exit(2);
}

/* The value after option argv[*i] (moving *i to it). */
static const char *value_of(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        bad_option(argv[*i], "", "needs a value");
    return argv[++*i];
}

/* text as an integer from min to max; else the error "OPTION: TEXT is not EXPECTED". */
static long long int_option(const char *option, const char *text, long long min, long long max, const char *expected)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        bad_option(option, text, expected);
    return v;
}

int main(int argc, char **argv)
{
    SnowWsOptions opts;
    long long value;
    int64_t server;
    const char *host = "127.0.0.1", *app = "chat";
    void *on_connect = NULL, *on_message;
    int i;

    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    opts.port = 8765;
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0) {
            puts(USAGE);
            return 0;
        }
        else if (strcmp(arg, "--app") == 0) {
            app = value_of(argc, argv, &i);
            if (strcmp(app, "chat") != 0 && strcmp(app, "bench") != 0)
                bad_option(arg, app, " is not chat or bench");
        }
        else if (strcmp(arg, "--host") == 0) {
            host = value_of(argc, argv, &i);
        }
        else if (strcmp(arg, "--port") == 0) {
            opts.port = int_option(arg, value_of(argc, argv, &i), 0, 65535, " is not a port number (0-65535)");
        }
        else if (strcmp(arg, "--max-message-size") == 0) {
            opts.max_message_size = int_option(arg, value_of(argc, argv, &i), 1, INT64_MAX,
                                               " is not a number of bytes >= 1");
        }
        else if (strcmp(arg, "--ping-interval") == 0) {
            value = int_option(arg, value_of(argc, argv, &i), 0, INT64_MAX / 1000,
                               " is not a whole number of seconds >= 0");
            opts.ping_interval_ms = value == 0 ? -1 : value * 1000; /* 0 = off; in the struct 0 = default */
        }
        else if (strcmp(arg, "--workers") == 0) {
            opts.workers = int_option(arg, value_of(argc, argv, &i), 0, 1024, " is not a number of threads (0-1024)");
        }
        else if (strcmp(arg, "--static-dir") == 0) {
            opts.static_dir = value_of(argc, argv, &i);
        }
        else if (strcmp(arg, "--static-index") == 0) {
            opts.static_index = value_of(argc, argv, &i);
        }
        else if (strcmp(arg, "--history") == 0) {
            history = int_option(arg, value_of(argc, argv, &i), 0, 100000, " is not a number of messages (0-100000)");
        }
        else if (strcmp(arg, "--cluster") == 0) {
            opts.cluster_url = value_of(argc, argv, &i);
        }
        else if (strcmp(arg, "--cluster-presence-ttl-ms") == 0) {
            opts.cluster_presence_ttl_ms = int_option(arg, value_of(argc, argv, &i), 200, 86400000,
                                                      " is not a number of milliseconds from 200 to 86400000");
        }
        else if (strcmp(arg, "--reuse-port") == 0) {
            opts.reuse_port = int_option(arg, value_of(argc, argv, &i), 0, 1, " is not 0 or 1");
        }
        else {
            bad_option(arg, "", "unknown option (see chat_server --help)");
        }
    }
    if (strcmp(app, "chat") == 0) {
        on_message = (void *)chat_on_message;
    }
    else { /* "bench": --app takes nothing else */
        bench_room = snow_string_new("bench", 5);
        on_connect = (void *)bench_on_connect;
        on_message = (void *)bench_on_message;
    }
    opts.host = host;
    opts.on_binary_fn = (void *)on_binary;

    server = snow_ws_start(&opts, on_connect, NULL, on_message, NULL, NULL, NULL);
    if (server < 0) {
        fprintf(stderr, "chat_server: error: %s\n", snow_ws_last_error());
        return 1;
    }
    if (strchr(host, ':') != NULL)
        printf("listening on ws://[%s]:%lld/\n", host, (long long)snow_ws_server_port(server));
    else
        printf("listening on ws://%s:%lld/\n", host, (long long)snow_ws_server_port(server));
    fflush(stdout);

    snow_ws_wait_shutdown();
    snow_ws_stop(server, 5000);
    snow_string_free(bench_room);
    return 0;
}
