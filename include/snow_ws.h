/* snow_ws.h -- the C ABI of snow_rt_py, Snow's WebSocket runtime (libsnow_ws.so).
 *
 * Build and link (after `pip install snow_rt_py`, or `make build` in a clone):
 *     cc -Wall -Wextra prog.c $(snow-ws config --cflags) $(snow-ws config --libs)
 *     cc -Wall -Wextra prog.c $(pkg-config --cflags --libs snow_ws)
 *         (with PKG_CONFIG_PATH=$(snow-ws config --pkgconfig-dir), or after `make install`)
 * The library embeds a Python interpreter running the snow_rt_py package. It finds the interpreter, the package
 * and its dependencies by itself, from where the library is (nothing is baked in at build time): the package is the
 * one the library sits in (snow_rt_py/lib/), the Python the one of the venv or installation that holds it. A
 * program linked with it runs from any working directory with no PYTHONPATH or VIRTUAL_ENV, and a moved clone or
 * venv keeps working. Two environment variables, read at start-up, override what it finds:
 *     SNOW_WS_PYTHON      the python executable to run as (e.g. a venv's bin/python)
 *     SNOW_WS_PYTHONPATH  more sys.path entries (':'-separated), after the package's own folder
 * If no Python can be found, the first call fails with SNOW_WS_E_INIT and snow_ws_last_error() names what was
 * looked for (see "Start-up" below).
 *
 * The first section mirrors snow-rt v4.0's WebSocket entry points (same symbols, argument order and return
 * conventions), so Snow-compiled binaries link against this library unchanged. The second gives the same eight
 * functions under the names of Mesh (Snow's new name: mesh_ws_*, MeshString), with mesh-rt's one difference, a
 * mesh_ws_serve that does not block, so Mesh-compiled binaries link too. The third section holds the extensions,
 * which neither ABI can express.
 *
 * ---------------------------------------------------------------------------------------------------------------
 * Rules that hold for every function below
 * ---------------------------------------------------------------------------------------------------------------
 *
 * Errors. A function that fails returns -1 (functions returning int64_t) or NULL (functions returning a pointer)
 *   and leaves a message for snow_ws_last_error() and a code (enum SnowWsError) for snow_ws_last_error_code(),
 *   on the calling thread. A void function (snow_ws_serve, snow_ws_serve_tls, mesh_ws_serve_tls) that fails
 *   returns at once and leaves the same. NULL pointers and negative lengths are errors (-1), never a crash. A call that fails never
 *   fires a callback. No Python exception ever crosses into C.
 *
 * Start-up. The embedded runtime starts on the first call of any function that needs it (or on snow_ws_init()).
 *   If it cannot start (the interpreter, the snow_rt_py package or a dependency cannot be loaded), every such
 *   call returns its error value with code SNOW_WS_E_INIT and the reason in snow_ws_last_error(); nothing ever
 *   looks like success. Functions marked "(no runtime)" work without it.
 *   If the library cannot even find its Python (a broken install: see SNOW_WS_PYTHON above), the same holds, with
 *   two differences: snow_ws_wait_shutdown fails too (-1, SNOW_WS_E_INIT), and snow_ws_shutdown returns 0.
 *   When the library starts the interpreter itself (a C program), it sets SIGPIPE to "ignore" if it was at its
 *   default (a peer closing its socket must not kill the process); it installs no other signal handler, except
 *   during snow_ws_serve, snow_ws_serve_tls, mesh_ws_serve_tls and snow_ws_wait_shutdown (see there; never
 *   during mesh_ws_serve, which does not block).
 *   Test hook: with SNOW_RT_PY_ABI_FAIL_IMPORT=1 in the environment at start-up, the runtime simulates a failed
 *   import of snow_rt_py (used by the test suite to prove the failure path).
 *
 * Threads. Every function may be called from any thread, including from inside any callback, without deadlock.
 *   Callbacks run on the runtime's event-loop thread when a server has workers == 0 (the default: callbacks must
 *   then not block, or every connection waits), and on one of the server's worker threads when workers >= 1.
 *   Callbacks for one connection never run concurrently and arrive in order: on_connect, then on_message /
 *   on_binary for each message, then on_close. Callbacks of different connections may run concurrently when
 *   workers >= 2.
 *   Exceptions: snow_ws_start, mesh_ws_serve and snow_ws_stop wait for the event-loop thread, so from a callback
 *   running on that thread (workers == 0) they return -1 (SNOW_WS_E_INTERNAL) instead of deadlocking; use snow_ws_shutdown, or
 *   call them from another thread. snow_ws_stop from a callback running on a worker of the server being stopped
 *   returns, but only after waiting up to timeout_ms for that worker (itself) to finish.
 *
 * Strings. A SnowString is a length followed directly by that many bytes (no NUL terminator), UTF-8 for text.
 *   - Strings passed IN (const SnowString *, const char *, const uint8_t *) are read or copied before the call
 *     returns; the caller keeps ownership.
 *   - Strings handed to a CALLBACK (path, msg, reason, data) are borrowed for the duration of that call: the
 *     library frees them when the callback returns. Copy them (snow_string_new) to keep them.
 *   - Strings RETURNED by snow_string_new and snow_ws_rooms_of are owned by the caller (free them with
 *     snow_string_free); the one returned by snow_ws_header_get is borrowed until on_connect returns.
 *   - const char * results (snow_ws_last_error, snow_ws_strerror, snow_ws_version) are owned by the library.
 *
 * Connection handles. `conn` is an opaque value (never NULL) identifying one connection; it is never reused for
 *   another connection. It is valid from the start of on_connect until the connection ends: on_close (which
 *   receives it, so a program can find and forget what it stored under it) or, for a rejected connection, the
 *   return of on_connect. A call with a handle whose connection has ended (from on_close on, in every thread), or
 *   with a made-up handle, returns -1 with SNOW_WS_E_BAD_HANDLE: never a crash, never another client's socket.
 *   While a connection is closing (its close handshake started, on_close not yet called) its handle is still
 *   known: sends and joins give SNOW_WS_E_CLOSED.
 */
#ifndef SNOW_WS_H
#define SNOW_WS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the package this header belongs to; compare it with snow_ws_version() at run time. */
#define SNOW_WS_VERSION "0.1.0"

/* The same version as one number, major * 10000 + minor * 100 + patch (0.1.0 -> 100), for #if tests; compare it
 * with snow_ws_version_number() at run time. */
#define SNOW_WS_VERSION_NUMBER 100

/* Marks every function of the library. The library exports exactly these (it is built with hidden visibility);
 * on Windows, the library's own sources define SNOW_WS_BUILDING before including this header, and programs import.
 * A program may define SNOW_WS_API itself (e.g. empty, for static linking) before including this header. */
#ifndef SNOW_WS_API
#if defined(_WIN32) || defined(__CYGWIN__)
#ifdef SNOW_WS_BUILDING
#define SNOW_WS_API __declspec(dllexport)
#else
#define SNOW_WS_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define SNOW_WS_API __attribute__((visibility("default")))
#else
#define SNOW_WS_API
#endif
#endif

/* Every error code, once: X(name, value, message). The enum below, snow_ws_strerror() and the Python mapping of
 * the runtime's exceptions (snow_rt_py/abi/errors.py, which names the codes and is checked against this list when
 * the library starts) all come from it. */
#define SNOW_WS_ERRORS(X)                                                                                         \
    X(SNOW_WS_OK, 0, "no error")                                                                                  \
    X(SNOW_WS_E_INIT, 1, "the embedded runtime could not start")                                                  \
    X(SNOW_WS_E_INVALID_ARGUMENT, 2, "invalid argument")                                                          \
    X(SNOW_WS_E_INVALID_UTF8, 3, "text is not valid UTF-8")                                                       \
    X(SNOW_WS_E_BAD_HANDLE, 4, "unknown or expired handle")                                                       \
    X(SNOW_WS_E_CLOSED, 5, "the connection is closing or closed")                                                 \
    X(SNOW_WS_E_QUEUE_FULL, 6, "the connection's outbound queue is full: message dropped")                        \
    X(SNOW_WS_E_SERVER_START, 7, "the server could not start")                                                    \
    X(SNOW_WS_E_BAD_SERVER, 8, "unknown or stopped server")                                                       \
    X(SNOW_WS_E_NOT_FOUND, 9, "not found")                                                                        \
    X(SNOW_WS_E_INTERNAL, 10, "internal error")                                                                   \
    X(SNOW_WS_E_CONNECT, 11, "the connection could not be opened")                                                \
    X(SNOW_WS_E_TIMEOUT, 12, "timed out")

typedef enum SnowWsError {
#define SNOW_WS_ENUM_ITEM_(name, value, message) name = value,
    SNOW_WS_ERRORS(SNOW_WS_ENUM_ITEM_)
#undef SNOW_WS_ENUM_ITEM_
} SnowWsError;

/* A string: len bytes follow the header directly (see "Strings" above). */
typedef struct SnowString {
    uint64_t len;
} SnowString;

/* The bytes of a SnowString. */
#define SNOW_STRING_DATA(s) ((const char *)((const SnowString *)(s) + 1))

/* The request headers, handed to on_connect; read them with snow_ws_header_get. Opaque. */
typedef struct SnowHeaders SnowHeaders;

/* Callback types. Snow's closure convention: every callback is a (fn, env) pair. When env is NULL, fn is called
 * as fn(args...) (the first type of each pair below); otherwise as fn(env, args...) (the *EnvFn type). A NULL fn
 * means "absent": on_connect then accepts, the others do nothing. Pass functions as void * (cast them).
 *
 * on_connect: once per connection, after the 101 response, before any message. Return non-NULL to accept (any
 *   value: it is not kept), NULL to reject: the connection is then closed with 1008 "rejected" and on_close is
 *   not called. path is the raw request target, query included. Sending from on_connect is allowed.
 * on_message: once per complete message, in order. Text messages arrive as UTF-8; binary messages too when no
 *   on_binary callback is set (the SnowString then holds the raw bytes, not necessarily UTF-8). Return ignored.
 * on_close: exactly once per accepted connection, with what happened: the peer's close code and reason, 1006 for
 *   a drop without a close frame, 1001 on server shutdown, 1011 after a heartbeat timeout, the code given to
 *   snow_ws_close, or the code the server failed the connection with (1002, 1007, 1009...). The connection has
 *   already left every room, and its handle is already stale (calls with it fail with
 *   SNOW_WS_E_BAD_HANDLE). Return ignored.
 * on_binary (extension, SnowWsOptions): receives binary messages instead of on_message. Return ignored. */
typedef void *(*SnowWsOnConnectFn)(void *conn, const SnowString *path, const SnowHeaders *headers);
typedef void *(*SnowWsOnConnectEnvFn)(void *env, void *conn, const SnowString *path, const SnowHeaders *headers);
typedef void *(*SnowWsOnMessageFn)(void *conn, const SnowString *msg);
typedef void *(*SnowWsOnMessageEnvFn)(void *env, void *conn, const SnowString *msg);
typedef void *(*SnowWsOnCloseFn)(void *conn, int64_t code, const SnowString *reason);
typedef void *(*SnowWsOnCloseEnvFn)(void *env, void *conn, int64_t code, const SnowString *reason);
typedef void *(*SnowWsOnBinaryFn)(void *conn, const uint8_t *data, int64_t len);
typedef void *(*SnowWsOnBinaryEnvFn)(void *env, void *conn, const uint8_t *data, int64_t len);
/* on_presence (extension, SnowWsOptions): a member joined (joined = 1) or left (joined = 0) `room`, a room conn is
 * in; cluster-wide with SnowWsOptions.cluster_url. member is that connection's handle (on this process only when
 * node is this process's: compare with a handle you hold, or pass it to snow_room_broadcast_except; never
 * dereference it), node its process's number (0 without a cluster), meta the string given at join ("" if none).
 * Called once per member of the room on this process whose server set on_presence (the joiner too, for its own
 * join), in that connection's order with its messages. room and meta are borrowed for the call. Return ignored. */
typedef void *(*SnowWsOnPresenceFn)(void *conn, const SnowString *room, int64_t joined, void *member, int64_t node,
                                    const SnowString *meta);
typedef void *(*SnowWsOnPresenceEnvFn)(void *env, void *conn, const SnowString *room, int64_t joined, void *member,
                                       int64_t node, const SnowString *meta);

/* ===============================================================================================================
 * Snow-compatible entry points (snow-rt v4.0)
 * =============================================================================================================== */

/* Serve ws:// on 127.0.0.1:port (snow-rt binds 0.0.0.0; see "Address" below) with the three callbacks, blocking
 * the calling thread until snow_ws_shutdown() is called (from any thread or callback) or the process receives
 * SIGINT or SIGTERM; then close every connection with 1001 (their on_close runs), wait up to 5 s for them, and
 * return.
 * While it blocks (and while it stops its server), SIGINT and SIGTERM are caught, even if they were ignored; the
 * previous dispositions are restored before it returns. Several snow_ws_serve calls may block at once (on
 * different threads and ports); shutdown and signals end all of them.
 * port: 0 to 65535 (0 binds an ephemeral port, which snow_ws_serve cannot report: use snow_ws_start). Like
 * snow-rt's, it announces nothing once it listens (snow_ws_start returns when it does).
 * Cluster: with SNOW_WS_CLUSTER=redis://HOST:PORT/DB in the environment (read at each call; empty or unset = no
 * cluster), rooms span every process started with that URL, as SnowWsOptions.cluster_url (see there), and
 * SNOW_WS_CLUSTER_PRESENCE_TTL_MS sets cluster_presence_ttl_ms. SNOW_WS_REUSE_PORT=1 sets reuse_port.
 * Address: 127.0.0.1, unless the environment variable SNOW_WS_HOST (read at each call) names another one, so a
 * deployed program can listen elsewhere without recompiling (e.g. SNOW_WS_HOST=0.0.0.0 for every IPv4 interface);
 * empty or unset = 127.0.0.1. A program that chooses the address itself uses snow_ws_start and SnowWsOptions.host.
 * A bind failure (port in use, an address from SNOW_WS_HOST that cannot be bound...) returns at once, without
 * firing a callback, with SNOW_WS_E_SERVER_START and the reason, naming the address, in snow_ws_last_error()
 * (snow-rt only prints it). If a snow_ws_shutdown() request is pending (made while nothing was blocked), it returns
 * at once without starting a server and consumes the request. */
SNOW_WS_API void snow_ws_serve(void *on_connect_fn, void *on_connect_env, void *on_message_fn,
                               void *on_message_env, void *on_close_fn, void *on_close_env, int64_t port);

/* snow_ws_serve over TLS (wss://), on the same address (127.0.0.1, or SNOW_WS_HOST). cert_path: PEM certificate
 * chain file; key_path: PEM private key file (both copied before the call blocks). A missing, unreadable or
 * invalid file, or a key that does not match the certificate, returns at once with SNOW_WS_E_SERVER_START and a
 * message naming the file. NULL paths: SNOW_WS_E_INVALID_ARGUMENT. */
SNOW_WS_API void snow_ws_serve_tls(void *on_connect_fn, void *on_connect_env, void *on_message_fn,
                                   void *on_message_env, void *on_close_fn, void *on_close_env, int64_t port,
                                   const SnowString *cert_path, const SnowString *key_path);

/* Queue msg as one text frame to conn. Returns at once (the write happens on the event loop); messages from one
 * thread to one connection leave in call order. Returns 0, or -1: NULL conn or msg (SNOW_WS_E_INVALID_ARGUMENT),
 * msg not valid UTF-8 (SNOW_WS_E_INVALID_UTF8: nothing is sent), unknown/ended handle (SNOW_WS_E_BAD_HANDLE),
 * connection closing (SNOW_WS_E_CLOSED), outbound queue over max_queue_bytes (a slow consumer: the message is
 * dropped; by default the connection is closed with 1008 "slow consumer" and the call returns SNOW_WS_E_CLOSED,
 * what was queued before still going out first; with SnowWsOptions.slow_consumer = SNOW_WS_SLOW_CONSUMER_DROP the
 * connection stays open and the call returns SNOW_WS_E_QUEUE_FULL).
 * Replies are cheap: a send from inside on_message / on_binary to the connection that callback is for is encoded
 * by the library and handed to the runtime in one batch when the callback returns, without a call into Python per
 * message. Return values and order are the same as for any other send: every other call the callback makes
 * (close, join, broadcast, a send elsewhere...) sees the replies sent before it already queued. */
SNOW_WS_API int64_t snow_ws_send(void *conn, const SnowString *msg);

/* Queue len bytes from data as one binary frame to conn. data may be NULL only when len == 0. Returns 0, or -1
 * as snow_ws_send (negative len: SNOW_WS_E_INVALID_ARGUMENT). */
SNOW_WS_API int64_t snow_ws_send_binary(void *conn, const uint8_t *data, int64_t len);

/* Rooms: named groups of connections, process-wide (shared with Python callers of snow_rt_py). Any UTF-8 string
 * is a room name, compared exactly. A connection leaves every room when it ends, before its on_close.
 * join: add conn to room (no-op if already in). Returns 0, or -1 (NULL argument, room not UTF-8, unknown/ended
 *   handle, or a connection that is closing: it cannot join).
 * leave: remove conn from room (no-op if not in). Returns 0, or -1 (as join; leaving while closing is allowed). */
SNOW_WS_API int64_t snow_room_join(void *conn, const SnowString *room);
SNOW_WS_API int64_t snow_room_leave(void *conn, const SnowString *room);

/* Queue msg as one text frame (encoded once) to every member of room. Never waits for a socket.
 * Returns the number of members it could not be queued for (members closing or ended at that instant, or over
 * their outbound queue bound), 0 for an empty or unknown room; or -1: NULL room or msg, room or msg not UTF-8.
 * In a cluster (SnowWsOptions.cluster_url) it also reaches the members on the other processes (one Redis PUBLISH,
 * at most once); the return value counts this process's members only (see snow_rt_py/runtime/cluster.py). */
SNOW_WS_API int64_t snow_room_broadcast(const SnowString *room, const SnowString *msg);

/* snow_room_broadcast to every member but except_conn (NULL excludes nobody). A connection that has ended has
 * already left every room, so an ended except_conn excludes nobody either: from its on_close (or later),
 * broadcast_except(room, "X left", X) reaches every member. A made-up except_conn, one that was never issued, is an
 * error (-1, SNOW_WS_E_BAD_HANDLE): nothing is sent. */
SNOW_WS_API int64_t snow_room_broadcast_except(const SnowString *room, const SnowString *msg, void *except_conn);

/* In a cluster, except_conn may also be the handle of a connection on another process (a member handle from
 * on_presence or snow_room_presence): that connection is excluded wherever it is. */
/* snow-rt's own names for the four room functions above (same behaviour). */
SNOW_WS_API int64_t snow_ws_join(void *conn, const SnowString *room);
SNOW_WS_API int64_t snow_ws_leave(void *conn, const SnowString *room);
SNOW_WS_API int64_t snow_ws_broadcast(const SnowString *room, const SnowString *msg);
SNOW_WS_API int64_t snow_ws_broadcast_except(const SnowString *room, const SnowString *msg, void *except_conn);

/* ===============================================================================================================
 * Mesh-compatible entry points (mesh-rt: Snow renamed itself Mesh)
 * ===============================================================================================================
 * Mesh-compiled programs call these. Each is the snow_ws_ function of the same suffix under another name: the same
 * arguments in the same order, the same (fn, env) callbacks (the Snow callback types above, called on the same
 * threads, with the same borrowed strings), the same return values and error codes; error messages name the mesh_
 * function. Connections, rooms and servers are shared with the Snow names: a handle given to an on_connect works
 * with mesh_ws_send and snow_ws_send alike, and a room is one room under both names. The one difference is
 * mesh-rt's: mesh_ws_serve does not block (mesh_ws_serve_tls still does). */

/* Mesh's string: the same type as SnowString (a length followed directly by that many bytes, no NUL), so
 * SNOW_STRING_DATA, snow_string_new and snow_string_free apply to it. */
typedef SnowString MeshString;

/* Serve ws:// as snow_ws_serve does (same address: 127.0.0.1 or SNOW_WS_HOST; same environment variables:
 * SNOW_WS_CLUSTER, SNOW_WS_CLUSTER_PRESENCE_TTL_MS, SNOW_WS_REUSE_PORT, SNOW_WS_COMPRESSION; same callbacks), but
 * without blocking, as mesh-rt's does: bind the port during the call, then return at once while the runtime's
 * event-loop thread (not the calling thread) accepts connections; the callbacks then run on that thread.
 * port: 0 to 65535 (0 binds an ephemeral port: snow_ws_server_port(id) reports it).
 * Returns the server's id (> 0, never reused, as snow_ws_start's), or -1 without firing a callback: the port cannot
 * be bound (in use, an address from SNOW_WS_HOST that cannot be bound...: SNOW_WS_E_SERVER_START, with the address
 * in snow_ws_last_error()), port out of range or a bad SNOW_WS_COMPRESSION (SNOW_WS_E_INVALID_ARGUMENT), the
 * runtime could not start (SNOW_WS_E_INIT), a call from a callback on the event-loop thread (SNOW_WS_E_INTERNAL).
 * (Mesh-compiled code declares it as returning nothing and never reads the value; that is safe, the value is
 * returned in a register.)
 * The server runs until snow_ws_stop(id, timeout_ms) or snow_ws_drain(id, timeout_ms) stops it (every connection
 * closed with 1001, their on_close run, before the call returns) or the process exits (connections are then
 * dropped without a close frame). snow_ws_shutdown() and SIGINT/SIGTERM do not stop it: mesh_ws_serve installs no
 * signal handler, and leaves a pending snow_ws_shutdown() request pending. A program that wants snow_ws_serve's
 * way of waiting calls snow_ws_wait_shutdown() after mesh_ws_serve, then snow_ws_stop(id, timeout_ms). */
SNOW_WS_API int64_t mesh_ws_serve(void *on_connect_fn, void *on_connect_env, void *on_message_fn,
                                  void *on_message_env, void *on_close_fn, void *on_close_env, int64_t port);

/* snow_ws_serve_tls under Mesh's name: it blocks, as mesh-rt's does, until snow_ws_shutdown() is called or the
 * process receives SIGINT or SIGTERM (caught while it blocks, then restored), then closes every connection with
 * 1001 and returns; cert_path and key_path (PEM files) are copied before it blocks. A file that is missing,
 * unreadable or invalid, or a key that does not match the certificate, returns at once with SNOW_WS_E_SERVER_START
 * naming the file; a port in use returns at once with SNOW_WS_E_SERVER_START; NULL paths:
 * SNOW_WS_E_INVALID_ARGUMENT ("mesh_ws_serve_tls: cert_path is NULL"). */
SNOW_WS_API void mesh_ws_serve_tls(void *on_connect_fn, void *on_connect_env, void *on_message_fn,
                                   void *on_message_env, void *on_close_fn, void *on_close_env, int64_t port,
                                   const MeshString *cert_path, const MeshString *key_path);

/* snow_ws_send: queue msg as one text frame to conn (msg is read before the call returns; the caller keeps it).
 * Returns 0, or -1: NULL conn or msg, msg not UTF-8 (nothing is sent), unknown/ended handle, connection closing,
 * outbound queue over its bound (see snow_ws_send). */
SNOW_WS_API int64_t mesh_ws_send(void *conn, const MeshString *msg);

/* snow_ws_send_binary: queue len bytes from data as one binary frame to conn (data may be NULL only when
 * len == 0; copied before the call returns). Returns 0, or -1 as snow_ws_send_binary (negative len:
 * SNOW_WS_E_INVALID_ARGUMENT). */
SNOW_WS_API int64_t mesh_ws_send_binary(void *conn, const uint8_t *data, int64_t len);

/* snow_ws_join / snow_ws_leave (= snow_room_join / snow_room_leave): add conn to room, or remove it (room is
 * copied). Both idempotent. Returns 0, or -1: NULL argument, room not UTF-8, unknown/ended handle, or (join only)
 * a connection that is closing. */
SNOW_WS_API int64_t mesh_ws_join(void *conn, const MeshString *room);
SNOW_WS_API int64_t mesh_ws_leave(void *conn, const MeshString *room);

/* snow_ws_broadcast / snow_ws_broadcast_except (= snow_room_broadcast / snow_room_broadcast_except): queue msg as
 * one text frame to every member of room (room first), but except_conn (NULL excludes nobody). Never waits for a
 * socket; in a cluster it reaches the other processes' members too. Returns the number of this process's members
 * it could not be queued for (0 for an empty or unknown room), or -1: NULL room or msg, room or msg not UTF-8,
 * (broadcast_except) a made-up except_conn. */
SNOW_WS_API int64_t mesh_ws_broadcast(const MeshString *room, const MeshString *msg);
SNOW_WS_API int64_t mesh_ws_broadcast_except(const MeshString *room, const MeshString *msg, void *except_conn);

/* ===============================================================================================================
 * Extensions
 * =============================================================================================================== */

/* Start the embedded runtime now (otherwise the first call that needs it does). Idempotent.
 * Returns 0, or -1 with SNOW_WS_E_INIT if it could not start (the reason is in snow_ws_last_error(); the same
 * error is then returned by every later call that needs the runtime). */
SNOW_WS_API int64_t snow_ws_init(void);

/* The message of the last failed call made by the calling thread ("" if none failed yet). (no runtime)
 * The pointer is owned by the library, per thread, and stays valid for the life of the thread; its content is
 * replaced by the thread's next failed call. Successful calls do not change it. */
SNOW_WS_API const char *snow_ws_last_error(void);

/* The SnowWsError code of the last failed call made by the calling thread (SNOW_WS_OK if none). (no runtime) */
SNOW_WS_API int64_t snow_ws_last_error_code(void);

/* A static description of an error code ("unknown error code" for a value not in SNOW_WS_ERRORS). (no runtime) */
SNOW_WS_API const char *snow_ws_strerror(int64_t code);

/* The version of the snow_rt_py package the library runs, e.g. "0.1.0" (static, owned by the library); compare
 * with SNOW_WS_VERSION. NULL if the runtime could not start. */
SNOW_WS_API const char *snow_ws_version(void);

/* The version of the library as a number, major * 10000 + minor * 100 + patch (see SNOW_WS_VERSION_NUMBER, its
 * value for this header), fixed when the library was built. Never fails; does not start the runtime, so it works
 * even when the runtime cannot start. (no runtime) */
SNOW_WS_API int64_t snow_ws_version_number(void);

/* Values of SnowWsOptions.slow_consumer (see there). */
typedef enum SnowWsSlowConsumer {
    SNOW_WS_SLOW_CONSUMER_DEFAULT = 0, /* = SNOW_WS_SLOW_CONSUMER_CLOSE */
    SNOW_WS_SLOW_CONSUMER_CLOSE = 1,
    SNOW_WS_SLOW_CONSUMER_DROP = 2
} SnowWsSlowConsumer;

/* Values of SnowWsOptions.compression: permessage-deflate (RFC 7692) for clients that offer it (browsers do). */
typedef enum SnowWsCompression {
    SNOW_WS_COMPRESSION_DEFAULT = 0,   /* = SNOW_WS_COMPRESSION_SHARED, unless SNOW_WS_COMPRESSION names a mode */
    SNOW_WS_COMPRESSION_SHARED = 1,    /* no zlib state outlives a message; a broadcast is compressed once */
    SNOW_WS_COMPRESSION_DEDICATED = 2, /* a compression context per connection, within compression_memory_budget */
    SNOW_WS_COMPRESSION_OFF = 3        /* never negotiated */
} SnowWsCompression;

/* Options of snow_ws_start. Zero-initialise the struct, set struct_size = sizeof(SnowWsOptions), then set the
 * fields you need: a 0 or NULL field means the default. Fields past struct_size are taken as 0 (so a program
 * compiled against an older, shorter struct keeps working); struct_size < 8 is SNOW_WS_E_INVALID_ARGUMENT.
 *   host:             address to bind (copied); NULL = "127.0.0.1". "0.0.0.0" or "::" for every interface.
 *   port:             0 to 65535; 0 binds an ephemeral port (read it back with snow_ws_server_port).
 *   tls_cert_path,
 *   tls_key_path:     PEM files (copied); both set = wss://, both NULL = ws://, one alone is an error.
 *   ping_interval_ms: interval of the server's pings; 0 = 30000; negative = no heartbeat.
 *   pong_timeout_ms:  time a pong has to arrive before close 1011; 0 = 10000; negative is an error.
 *   max_message_size: largest message (and frame) in bytes, bigger ones are closed with 1009; 0 = 16 MiB.
 *   workers:          0 = callbacks run on the event-loop thread (must not block); N >= 1 = on N worker threads.
 *   on_binary_fn,
 *   on_binary_env:    receives binary messages (SnowWsOnBinaryFn / SnowWsOnBinaryEnvFn); NULL fn = binary
 *                     messages go to on_message as a SnowString.
 *   static_dir:       directory (copied) whose files answer plain HTTP GETs (no Upgrade header) on the same port,
 *                     e.g. a browser page; NULL = such requests get 400. Must exist (else SNOW_WS_E_INVALID_ARGUMENT).
 *   static_index:     file served for "GET /" from static_dir (copied); NULL = "index.html".
 *   max_queue_bytes:  bound of each connection's outbound queue (bytes sent to it that its peer has not taken yet);
 *                     0 = 1 MiB; under 1024 is an error. One message always fits an empty queue. A send, reply or
 *                     broadcast that finds the queue over the bound applies slow_consumer.
 *   slow_consumer:    what happens then (SnowWsSlowConsumer): 0 = SNOW_WS_SLOW_CONSUMER_CLOSE; any other value is
 *                     SNOW_WS_E_INVALID_ARGUMENT.
 *                     SNOW_WS_SLOW_CONSUMER_CLOSE: the message is dropped and the connection closed with 1008 "slow
 *                       consumer" (what was queued before still goes out first); the send returns -1 with
 *                       SNOW_WS_E_CLOSED, and on_close reports 1008.
 *                     SNOW_WS_SLOW_CONSUMER_DROP: the message is dropped and the connection stays open; the send
 *                       returns -1 with SNOW_WS_E_QUEUE_FULL (try again once the peer has read).
 *   (max_queue_bytes and slow_consumer came last: a program compiled against the struct without them passes a
 *   smaller struct_size and gets their defaults.)
 * Admission, drain, metrics and logs (appended after slow_consumer; every string is copied before the call
 * returns; the refusals below are answered before any callback runs, and counted: see SnowWsStats):
 *   allowed_origins:  comma-separated origins whose pages may connect: exact ("https://app.example.com",
 *                     "http://127.0.0.1:8000") or every subdomain of a domain: the scheme, "://", then
 *                     "*.example.com" (written without a space; with a port if any). A request with another
 *                     Origin gets HTTP 403. NULL = no Origin check (the default; any web page could then open a
 *                     socket with its visitors' cookies: cross-site WebSocket hijacking). "" = no origin allowed.
 *                     An entry that is not an origin is SNOW_WS_E_INVALID_ARGUMENT.
 *   require_origin:   nonzero = a request without an Origin header (non-browser clients) gets 403; 0 = allowed.
 *   subprotocols:     comma-separated subprotocols the server speaks, in its order of preference (NULL = none);
 *                     the first one the client offered is selected (snow_ws_subprotocol), never another.
 *   require_subprotocol: nonzero = a client offering none of them gets HTTP 400 with the reason.
 *   max_connections:  open WebSocket connections cap (0 = none): over it a handshake gets HTTP 503 with
 *                     Retry-After and its socket is closed; open connections are never affected.
 *   max_connections_per_ip: the same cap per client IP address (0 = none).
 *   handshake_rate:   handshakes per second per client IP (token bucket; 0 = no limit): over it HTTP 429 with
 *                     Retry-After. Negative or not finite: SNOW_WS_E_INVALID_ARGUMENT.
 *   handshake_burst:  the bucket's size (handshakes at once after a quiet spell); 0 = 10.
 *   handshake_timeout_ms: time a client has to complete its handshake, else HTTP 408; 0 = 10000.
 *   drain_window_ms:  snow_ws_drain spreads its 1001 closes over this window (at most half its timeout);
 *                     0 = 2000; negative = all at once.
 *   metrics_path:     serve OpenMetrics (Prometheus text) to plain HTTP GETs of this path on the same port, e.g.
 *                     "/metrics" (copied); NULL = off.
 *   metrics_port:     serve the same on this separate port of host (1-65535); 0 = off.
 *   access_log:       nonzero = one log record per connection when it ends (Python logger snow_rt_py.access,
 *                     INFO): peer, path, duration, bytes each way, close code.
 *   reuse_port:       nonzero: bind with SO_REUSEPORT, so several processes can serve one port (the kernel spreads
 *                     new connections over them).
 *   cluster_url:      "redis://HOST:PORT/DB" (copied): rooms and presence span every process started with this URL
 *                     (Redis pub/sub; see snow_rt_py/runtime/cluster.py): broadcasts reach every member of every
 *                     process, connection handles are unique across the cluster, snow_room_presence is
 *                     cluster-wide. NULL = rooms stay in this process (no Redis). Redis unreachable at start:
 *                     SNOW_WS_E_SERVER_START naming the URL. Lost later: local delivery goes on, remote deliveries
 *                     are dropped (at most once) until it is back. Every cluster server of a process shares the URL.
 *   cluster_presence_ttl_ms: the members of a process that died leave the others' presence within this time;
 *                     0 = 10000; under 200 is an error.
 *   on_presence_fn,
 *   on_presence_env:  told who joins and leaves the rooms of its connections (SnowWsOnPresenceFn /
 *                     SnowWsOnPresenceEnvFn); NULL fn = not told.
 *   compression:      permessage-deflate mode (SnowWsCompression); any other value is SNOW_WS_E_INVALID_ARGUMENT.
 *                     0 = SNOW_WS_COMPRESSION_SHARED, unless the environment variable SNOW_WS_COMPRESSION names
 *                     a mode ("shared", "dedicated" or "off", read at each start; another value fails the start with
 *                     SNOW_WS_E_INVALID_ARGUMENT naming the variable). snow_ws_serve / snow_ws_serve_tls read the
 *                     variable too, so a Snow-compiled binary can change its mode without recompiling.
 *   compression_min_size: messages shorter than this many bytes are sent uncompressed; 0 = 128.
 *   compression_window_bits: DEDICATED: window of each connection's compressor (and of the client's, when it lets
 *                     the server choose), 8 to 15; 0 = 12.
 *   compression_mem_level: DEDICATED: zlib memLevel of each connection's compressor, 1 to 9; 0 = 5.
 *   compression_memory_budget: DEDICATED: bytes of zlib state all dedicated connections of the process may hold;
 *                     0 = 64 MiB; negative is an error. A connection that would exceed it is served in SHARED mode.
 *   (the five compression fields come after the cluster's, under the same struct_size rule.)
 * Starting a server raises glibc's malloc mmap and trim thresholds once for the whole process (32 MiB and
 * 128 MiB, see snow_rt_py/runtime/allocator.py) so large message buffers are reused rather than faulted in
 * afresh for every message; freed heap up to 128 MiB then stays with the process. */
typedef struct SnowWsOptions {
    uint64_t struct_size;
    const char *host;
    int64_t port;
    const char *tls_cert_path;
    const char *tls_key_path;
    int64_t ping_interval_ms;
    int64_t pong_timeout_ms;
    int64_t max_message_size;
    int64_t workers;
    void *on_binary_fn;
    void *on_binary_env;
    const char *static_dir;
    const char *static_index;
    int64_t max_queue_bytes;
    int64_t slow_consumer;
    const char *allowed_origins;
    int64_t require_origin;
    const char *subprotocols;
    int64_t require_subprotocol;
    int64_t max_connections;
    int64_t max_connections_per_ip;
    double handshake_rate;
    int64_t handshake_burst;
    int64_t handshake_timeout_ms;
    int64_t drain_window_ms;
    const char *metrics_path;
    int64_t metrics_port;
    int64_t access_log;
    int64_t reuse_port;
    const char *cluster_url;
    int64_t cluster_presence_ttl_ms;
    void *on_presence_fn;
    void *on_presence_env;
    int64_t compression;
    int64_t compression_min_size;
    int64_t compression_window_bits;
    int64_t compression_mem_level;
    int64_t compression_memory_budget;
} SnowWsOptions;

/* Start a server and return at once; it runs until snow_ws_stop (snow_ws_shutdown does not stop it).
 * opts: NULL = every default. Callbacks: as for snow_ws_serve (plus opts->on_binary_fn).
 * Returns a server id > 0 (never reused), or -1: an invalid option (SNOW_WS_E_INVALID_ARGUMENT), host not UTF-8,
 * or a bind/TLS failure (SNOW_WS_E_SERVER_START, with the address or file named in the message). */
SNOW_WS_API int64_t snow_ws_start(const SnowWsOptions *opts, void *on_connect_fn, void *on_connect_env,
                                  void *on_message_fn, void *on_message_env, void *on_close_fn, void *on_close_env);

/* The TCP port server is bound to, or -1 (SNOW_WS_E_BAD_SERVER: unknown or stopped server). */
SNOW_WS_API int64_t snow_ws_server_port(int64_t server);

/* Graceful stop: stop accepting, close every connection with 1001 (their on_close runs), wait up to timeout_ms
 * for the close handshakes, then drop what remains; the call returns when that is done. Returns 0, or -1:
 * negative timeout_ms (SNOW_WS_E_INVALID_ARGUMENT), unknown or already stopped server (SNOW_WS_E_BAD_SERVER). */
SNOW_WS_API int64_t snow_ws_stop(int64_t server, int64_t timeout_ms);

/* Graceful drain: stop accepting, close every connection with 1001 "going away" in batches spread over the
 * server's drain_window_ms (at most half of timeout_ms; so many clients do not all reconnect in the same
 * millisecond), wait until timeout_ms from the start for the close handshakes, then drop what remains; on_close
 * runs for every connection. The server is then stopped (as by snow_ws_stop) and the call returns. Same return
 * values and thread rules as snow_ws_stop. */
SNOW_WS_API int64_t snow_ws_drain(int64_t server, int64_t timeout_ms);

/* A server's counters, filled by snow_ws_server_stats. Zero-initialise it and set struct_size = sizeof(SnowWsStats):
 * fields past struct_size are left untouched (a program compiled against an older, shorter struct keeps working;
 * new fields are only ever appended). Every count is since the server started.
 *   connections_open, connections_total: WebSocket connections open now / accepted in all.
 *   refused_*:        handshakes refused, by reason: server draining or stopping (503), rate limit (429), Origin
 *                     (403), subprotocol (400), max_connections (503), max_connections_per_ip (503), a malformed
 *                     request (400, 426, 431...), handshake timeout (408), refused by the program (on_upgrade).
 *   messages_in, messages_out: data messages received / queued for sending.
 *   bytes_in:         payload bytes of the data messages received; bytes_out: bytes of the data frames queued for
 *                     sending, frame headers included.
 *   broadcasts, deliveries: room broadcasts with members, and the messages they queued (process-wide: the rooms
 *                     are shared by every server).
 *   queue_drops:      messages refused by the slow-consumer policy; slow_consumer_closes: connections it closed.
 *   heartbeat_timeouts: connections failed with 1011 for an unanswered ping.
 *   handler_crashes:  callbacks of the program that raised (Python handlers; always 0 for C callbacks).
 *   inbound_pauses:   times flow control stopped reading a socket.
 *   closes[i]:        connections that ended with close code 1000 + i (as on_close reported it: 1006 for a drop);
 *   closes_other:     connections that ended with any other code (3000-4999, 1016-2999). */
typedef struct SnowWsStats {
    uint64_t struct_size;
    int64_t connections_open;
    int64_t connections_total;
    int64_t refused_shutting_down;
    int64_t refused_rate_limit;
    int64_t refused_origin;
    int64_t refused_subprotocol;
    int64_t refused_max_connections;
    int64_t refused_max_connections_per_ip;
    int64_t refused_bad_request;
    int64_t refused_handshake_timeout;
    int64_t refused_on_upgrade;
    int64_t messages_in;
    int64_t messages_out;
    int64_t bytes_in;
    int64_t bytes_out;
    int64_t broadcasts;
    int64_t deliveries;
    int64_t queue_drops;
    int64_t slow_consumer_closes;
    int64_t heartbeat_timeouts;
    int64_t handler_crashes;
    int64_t inbound_pauses;
    int64_t closes[16];
    int64_t closes_other;
} SnowWsStats;

/* Fill *out with server's counters (see SnowWsStats; a consistent-enough snapshot: counters of open connections are
 * summed at the call). Any thread, any callback. Returns 0, or -1: NULL out or struct_size < 8
 * (SNOW_WS_E_INVALID_ARGUMENT), unknown or stopped server (SNOW_WS_E_BAD_SERVER). */
SNOW_WS_API int64_t snow_ws_server_stats(int64_t server, SnowWsStats *out);

/* Make every blocked snow_ws_serve / snow_ws_serve_tls / snow_ws_wait_shutdown return (they stop their servers
 * themselves; servers of snow_ws_start are not stopped). Returns at once, never fails: the number of blocked calls
 * it woke. If none was blocked (0), the request is kept and the next such call returns at once, consuming it. */
SNOW_WS_API int64_t snow_ws_shutdown(void);

/* Block the calling thread until snow_ws_shutdown() is called or the process receives SIGINT or SIGTERM (caught
 * as described for snow_ws_serve while it blocks). For programs that start servers with snow_ws_start and then
 * want snow_ws_serve's way of waiting (the examples do). Returns 0 for a snow_ws_shutdown request, or the number
 * of the signal (SIGINT, SIGTERM). (no runtime) */
SNOW_WS_API int64_t snow_ws_wait_shutdown(void);

/* Start the close handshake of conn with code and reason (NULL = empty; at most 123 bytes of UTF-8). on_close will
 * report this code; the TCP connection closes when the peer answers (or after 5 s). Returns 0, or -1: a code that
 * may not be sent (allowed: 1000-1003, 1007-1014, 3000-4999) or a reason too long or not UTF-8
 * (SNOW_WS_E_INVALID_ARGUMENT / SNOW_WS_E_INVALID_UTF8), unknown/ended handle, or already closing
 * (SNOW_WS_E_CLOSED). */
SNOW_WS_API int64_t snow_ws_close(void *conn, int64_t code, const SnowString *reason);

/* The value of request header `name` (NUL-terminated, ASCII case-insensitive), or NULL. Only valid with the
 * headers given to an on_connect that has not returned yet (from any thread). A header sent several times gives
 * its values joined with ", ". The result is borrowed until that on_connect returns (do not free it).
 * NULL result: no such header (SNOW_WS_E_NOT_FOUND), NULL argument or name not UTF-8
 * (SNOW_WS_E_INVALID_ARGUMENT / SNOW_WS_E_INVALID_UTF8), headers whose on_connect has returned
 * (SNOW_WS_E_BAD_HANDLE). */
SNOW_WS_API const SnowString *snow_ws_header_get(const SnowHeaders *headers, const char *name);

/* The subprotocol selected for conn in its handshake (one of SnowWsOptions.subprotocols that the client offered),
 * as a new string owned by the caller (free it with snow_string_free); valid from on_connect on. NULL: none was
 * selected (SNOW_WS_E_NOT_FOUND), NULL conn (SNOW_WS_E_INVALID_ARGUMENT), unknown/ended handle
 * (SNOW_WS_E_BAD_HANDLE). */
SNOW_WS_API SnowString *snow_ws_subprotocol(void *conn);

/* The number of members of room on this process (0 for an unknown room), or -1 (NULL room, room not UTF-8).
 * snow_room_presence_count counts the whole cluster. */
SNOW_WS_API int64_t snow_room_member_count(const SnowString *room);

/* snow_room_join with a short meta string shown in presence (a user name, say): at most 256 bytes of UTF-8,
 * copied; NULL = none. Returns 0, or -1 as snow_room_join (meta too long or not UTF-8: SNOW_WS_E_INVALID_ARGUMENT
 * / SNOW_WS_E_INVALID_UTF8). Joining a room conn is already in changes nothing (the first meta stays). */
SNOW_WS_API int64_t snow_room_join_meta(void *conn, const SnowString *room, const SnowString *meta);

/* One member of a room, as snow_room_presence gives it. conn: the connection's handle (usable with this process's
 * functions only when node is this process's; as except_conn of snow_room_broadcast_except anywhere in the
 * cluster). node: the process's number (0 without a cluster). meta: a new string owned by the caller (free it with
 * snow_string_free), "" if none was given. */
typedef struct SnowWsMember {
    void *conn;
    int64_t node;
    SnowString *meta;
} SnowWsMember;

/* The members of room, cluster-wide with a cluster (this process's members exactly, the others' as this process
 * last heard: their joins and leaves arrive as events and are re-read from Redis every TTL), sorted by handle.
 * Writes at most `capacity` members to out[0..] and returns the total number, which may exceed capacity (call
 * again with a bigger array). out may be NULL when capacity is 0. For a room with no member on this process the
 * list is read from Redis, which cannot be done from a callback running on the event-loop thread (workers == 0):
 * -1 with SNOW_WS_E_INTERNAL there. Other errors: -1 for a NULL room, room not UTF-8, negative capacity, NULL out
 * with capacity > 0. */
SNOW_WS_API int64_t snow_room_presence(const SnowString *room, SnowWsMember *out, int64_t capacity);

/* The number of members of room, cluster-wide with a cluster (as snow_room_presence), or -1 as there. */
SNOW_WS_API int64_t snow_room_presence_count(const SnowString *room);

/* The rooms conn is in, sorted by code point. Writes at most `capacity` new strings to out[0..] (the caller owns
 * them: snow_string_free each) and returns the total number of rooms, which may exceed capacity (call again with
 * a bigger array). out may be NULL when capacity is 0. Returns -1: NULL conn, negative capacity, NULL out with
 * capacity > 0, unknown/ended handle. */
SNOW_WS_API int64_t snow_ws_rooms_of(void *conn, SnowString **out, int64_t capacity);

/* -- Rooms that remember: history, positions, join-from, delivery policies; round-trip time (extension) ----------
 *
 * A room configured with history (snow_room_configure, history_size > 0) numbers its broadcasts: each gets a
 * position, an offset (1, 2, 3, ...) within an epoch (a short name of one life of the room's history: a restart of
 * this process, or on a cluster a Redis stream that expired or a Redis restarted empty, starts a new one). Its
 * members get every message inside an envelope that carries room, epoch and offset, built once per broadcast:
 * text as the JSON object {"room":R,"epoch":E,"offset":N,"data":TEXT}; binary as the byte 0x01, one byte len(E),
 * E, the offset (8 bytes, big-endian), len(R) (2 bytes, big-endian), R, then the message. A client keeps the last
 * position it saw and, after a reconnect, is joined with snow_room_join_from: it gets exactly what it missed, then
 * the live messages (no gap, no duplicate), or is told it is unrecoverable. Rooms never configured cost nothing. */

/* A room's position. epoch is NUL-terminated (at most 32 characters of [0-9a-zA-Z_-]); offset 0 = none yet. */
typedef struct SnowWsPosition {
    int64_t offset;
    char epoch[33];
} SnowWsPosition;

/* Delivery policies for a room's members whose outbound queue is full (snow_room_configure). */
typedef enum SnowWsRoomPolicy {
    SNOW_WS_POLICY_DEFAULT = 0,        /* each connection's slow_consumer (close with 1008, or drop) */
    SNOW_WS_POLICY_DROP_OLDEST = 1,    /* keep the newest: the member's oldest pending messages are dropped */
    SNOW_WS_POLICY_LATEST_PER_KEY = 2  /* a message published with a key replaces the pending one with that key */
} SnowWsRoomPolicy;

/* The rooms' counters (process-wide), filled by snow_room_stats. Set struct_size = sizeof(SnowWsRoomStats).
 *   policy_drops: messages dropped by drop_oldest / latest_per_key; policy_replacements: pending messages replaced
 *   by a newer one with the same key; recoveries / unrecoverable: snow_room_join_from outcomes. */
typedef struct SnowWsRoomStats {
    uint64_t struct_size;
    int64_t policy_drops;
    int64_t policy_replacements;
    int64_t recoveries;
    int64_t unrecoverable;
} SnowWsRoomStats;

/* Set room's options (copied): keep the last history_size messages (0: no history, at most 1000000) for at most
 * history_ttl_ms milliseconds (0: no age bound; at most 30 days), and the delivery policy (SnowWsRoomPolicy).
 * Configure a room before its first broadcast, the same way on every node of a cluster. Any thread.
 * Returns 0, or -1: NULL room, room not UTF-8, a bound negative or too large, an unknown policy
 * (SNOW_WS_E_INVALID_ARGUMENT; nothing changed). */
SNOW_WS_API int64_t snow_room_configure(const SnowString *room, int64_t history_size, int64_t history_ttl_ms,
                                        int64_t policy);

/* snow_room_broadcast_except of msg (text, copied) with a position and an optional key. except_conn NULL
 * excludes nobody; key NULL = none (a key needs a latest_per_key room). out may be NULL; else it receives the
 * position. Any thread. Returns the number of local members it could not be queued for (>= 0, as
 * snow_room_broadcast), with *out filled for a room with history (offset 0 for a room without); on a cluster the
 * position is Redis' one round trip later: called from the event loop thread (a callback of a server with
 * workers = 0) *out keeps offset 0, from any other thread the call waits for it (at most 10 s). -1: NULL room or
 * msg, not UTF-8, a key for a room without latest_per_key (SNOW_WS_E_INVALID_ARGUMENT), Redis unreachable
 * (SNOW_WS_E_INTERNAL). */
SNOW_WS_API int64_t snow_room_publish(const SnowString *room, const SnowString *msg, void *except_conn,
                                      const SnowString *key, SnowWsPosition *out);

/* Fill *out with room's current position. Any thread but, on a cluster, not the event loop thread (it waits for
 * Redis). Returns 0, or -1: NULL argument, room not UTF-8, a room without history (SNOW_WS_E_INVALID_ARGUMENT),
 * on the event loop thread with a cluster (SNOW_WS_E_INTERNAL). */
SNOW_WS_API int64_t snow_room_position(const SnowString *room, SnowWsPosition *out);

/* Join conn to room from the position *since (borrowed for the call) the client last saw. Returns 1: recovered,
 * the *replayed (may be NULL) messages it missed are queued in order, then the live ones, with no gap and no
 * duplicate; 0: unrecoverable (another epoch, or the history no longer holds every message after since->offset):
 * conn is joined from now on, *replayed = 0, and the program reloads its state; -1: NULL argument, a room
 * without history, a malformed epoch, a negative offset or one in the future (SNOW_WS_E_INVALID_ARGUMENT;
 * nothing changed), unknown/ended handle (SNOW_WS_E_BAD_HANDLE / SNOW_WS_E_CLOSED), and on a cluster the event
 * loop thread (SNOW_WS_E_INTERNAL: it waits for Redis; call it from a worker or a thread of yours). */
SNOW_WS_API int64_t snow_room_join_from(void *conn, const SnowString *room, const SnowWsPosition *since,
                                        int64_t *replayed);

/* The last round-trip time the heartbeat measured on conn (ping to its pong), in microseconds; -2 before the
 * first pong or with the heartbeat off; -1: NULL or unknown/ended handle. Any thread. */
SNOW_WS_API int64_t snow_ws_conn_rtt_us(void *conn);

/* Fill *out with the rooms' counters (fields past out->struct_size are left untouched). Any thread.
 * Returns 0, or -1: NULL out or struct_size < 8 (SNOW_WS_E_INVALID_ARGUMENT). */
SNOW_WS_API int64_t snow_room_stats(SnowWsRoomStats *out);

/* A new SnowString holding a copy of len bytes from data (data may be NULL only when len == 0), owned by the
 * caller; free it with snow_string_free. NULL on failure (out of memory, len too large). (no runtime) */
SNOW_WS_API SnowString *snow_string_new(const char *data, uint64_t len);

/* Free a string from snow_string_new or snow_ws_rooms_of. NULL is a no-op. Never free strings handed to a
 * callback or returned by snow_ws_header_get. (no runtime) */
SNOW_WS_API void snow_string_free(SnowString *s);

/* ===============================================================================================================
 * Client
 * ===============================================================================================================
 * A WebSocket client on the same runtime as the servers: snow_ws_connect opens a connection to a ws:// or wss://
 * URL and calls the same three callbacks as snow_ws_start, with the same (fn, env) convention and signatures; the
 * conn handle they get is a connection handle like a server's (see "Connection handles" at the top): snow_ws_send,
 * snow_ws_send_binary, snow_ws_close, snow_room_join / snow_room_leave (and the other room and connection
 * functions) take it, so a room can hold client and server connections alike and a broadcast reaches both.
 *
 *     static void *on_message(void *conn, const SnowString *msg) { snow_ws_send(conn, msg); return NULL; }
 *
 *     SnowWsClientOptions o;
 *     snow_ws_client_options_init(&o, sizeof o);
 *     o.open_timeout_ms = 5000;
 *     int64_t client = snow_ws_connect(&o, "ws://127.0.0.1:8765/", NULL, NULL, (void *)on_message, NULL, NULL, NULL);
 *     if (client < 0 || snow_ws_client_wait_open(client, 10000) < 0)
 *         fprintf(stderr, "%s\n", snow_ws_last_error());      // e.g. "connection refused"
 *     ...
 *     snow_ws_client_close(client, 1000, NULL);
 *     snow_ws_client_wait_closed(client, 10000);              // then the id is forgotten
 *
 * A client id (int64_t > 0, never reused) names one call of snow_ws_connect: the connection it opens and, with
 * reconnect, the ones it opens after a loss. The id stays known until snow_ws_client_wait_closed has returned 0 for
 * it (like a thread until it is joined): call it once for each client, even one that ended by itself, to free it.
 * Every client function given an id that is not known (made up, or already waited for) returns -1 with
 * SNOW_WS_E_BAD_HANDLE ("client N is unknown or was waited for").
 *
 * Callbacks of a client connection (threads and order as for a server's, "Threads" at the top; workers is
 * SnowWsClientOptions.workers):
 *   on_connect: once the server's 101 response has been validated, before any message; path is the request target
 *     that was sent (the URL's path and query, "/" if none), headers are the RESPONSE headers (snow_ws_header_get,
 *     borrowed until on_connect returns). Return non-NULL to keep the connection, NULL to close it with 1000.
 *   on_message / on_binary: as for a server's connection.
 *   on_close: exactly once for every connection the client tried to open, with what really happened: the
 *     server's close code and reason, the code given to snow_ws_close / snow_ws_client_close, 1006 for a lost
 *     connection, or the code the client failed it with (1002, 1007, 1009...). A connection that never opened
 *     gets on_close with 1006 and a reason naming the failure, without on_connect: "connection refused", "DNS
 *     lookup of HOST failed: ...", "TLS certificate verify failed: ...", "HTTP 403 Forbidden instead of 101",
 *     "opening handshake timed out after 10 s"... Its conn handle was never valid (every call with it returns
 *     SNOW_WS_E_BAD_HANDLE); compare it with nothing, it is only a number.
 * A send while no connection is open cannot be made: there is no handle (no hidden buffer).
 * A failure to connect never fails snow_ws_connect itself (it returns before any I/O): it reaches the program as
 * on_close with 1006, and as -1 with SNOW_WS_E_CONNECT and the same reason from snow_ws_client_wait_open.
 */

/* Options of snow_ws_connect. Initialise them with snow_ws_client_options_init (or zero the struct and set
 * struct_size = sizeof(SnowWsClientOptions)), then set the fields you need: a 0 or NULL field means the default.
 * Fields past struct_size are taken as 0 (so a program compiled against an older, shorter struct keeps working;
 * new fields are only ever appended); struct_size < 8 is SNOW_WS_E_INVALID_ARGUMENT. Every string is copied
 * before snow_ws_connect returns. An invalid value fails snow_ws_connect with SNOW_WS_E_INVALID_ARGUMENT and a
 * message naming the option.
 *   open_timeout_ms:  time the TCP connect, the proxy, TLS and the opening handshake have to complete, else the
 *                     connection fails (1006 "opening handshake timed out after N s"); 0 = 10000.
 *   close_timeout_ms: time the server has to close TCP after the closing handshake (RFC 6455 7.1.1), after which
 *                     the client closes it itself; 0 = 10000.
 *   max_message_size: largest message (and frame) accepted, bigger ones are failed with 1009; 0 = 16 MiB.
 *   max_queue_bytes:  bound of the connection's outbound queue, as SnowWsOptions.max_queue_bytes; 0 = 1 MiB.
 *   slow_consumer:    as SnowWsOptions.slow_consumer (SnowWsSlowConsumer); 0 = SNOW_WS_SLOW_CONSUMER_CLOSE.
 *   ping_interval_ms: interval of the client's pings; 0 = no heartbeat from the client (the default).
 *   pong_timeout_ms:  with a heartbeat, time a pong has to arrive before close 1011; 0 = 10000.
 *   compression:      SnowWsCompression: SHARED or DEDICATED offer permessage-deflate (with client_max_window_bits)
 *                     in that mode, OFF offers nothing; 0 = OFF. (SNOW_WS_COMPRESSION is not read.)
 *   subprotocols:     comma-separated subprotocols to offer, in order of preference; NULL = none. A server that
 *                     selects one that was not offered fails the connection.
 *   origin:           the Origin header to send; NULL = none.
 *   headers:          extra request headers, one "Name: value" per line, lines separated by "\n" (or "\r\n");
 *                     NULL = none. A line without ':' is SNOW_WS_E_INVALID_ARGUMENT.
 *   tls_no_verify:    nonzero = wss:// does NOT verify the server's certificate or host name. UNSAFE: anyone on
 *                     the path can then read and change the traffic; for tests only. 0 = verify (the default).
 *   ca_file:          PEM file of the certificate authorities to trust for wss://; NULL = the system's store.
 *   server_hostname:  the name to send in SNI and check the certificate against; NULL = the URL's host.
 *   proxy:            an HTTP CONNECT proxy, "http://HOST:PORT"; NULL = from https_proxy / http_proxy / no_proxy in
 *                     the environment (read at each connect); "" = no proxy.
 *   max_redirects:    3xx answers followed (never from wss:// to ws://); 0 = 5; negative = none followed.
 *   reconnect:        nonzero = after a lost or failed connection, connect again (a fresh handshake each time)
 *                     until snow_ws_client_close; each connection gets its own on_connect / on_close and a new conn
 *                     handle, and rooms the previous one had joined are joined again before its on_connect.
 *   reconnect_delay_ms: the first delay, random in [0, delay]; 0 = 500.
 *   reconnect_max_delay_ms: the delay's cap; 0 = 30000.
 *   reconnect_factor: each delay is the previous one times this; 0 = 2.0.
 *   workers:          0 = the callbacks run on the event-loop thread (must not block); N >= 1 = on N worker threads.
 *   on_binary_fn,
 *   on_binary_env:    as SnowWsOptions.on_binary_fn / on_binary_env.
 *   on_presence_fn,
 *   on_presence_env:  as SnowWsOptions.on_presence_fn / on_presence_env, for the rooms the client connection
 *                     joins. */
typedef struct SnowWsClientOptions {
    uint64_t struct_size;
    int64_t open_timeout_ms;
    int64_t close_timeout_ms;
    int64_t max_message_size;
    int64_t max_queue_bytes;
    int64_t slow_consumer;
    int64_t ping_interval_ms;
    int64_t pong_timeout_ms;
    int64_t compression;
    const char *subprotocols;
    const char *origin;
    const char *headers;
    int64_t tls_no_verify;
    const char *ca_file;
    const char *server_hostname;
    const char *proxy;
    int64_t max_redirects;
    int64_t reconnect;
    int64_t reconnect_delay_ms;
    int64_t reconnect_max_delay_ms;
    double reconnect_factor;
    int64_t workers;
    void *on_binary_fn;
    void *on_binary_env;
    void *on_presence_fn;
    void *on_presence_env;
} SnowWsClientOptions;

/* Set the struct_size bytes at opts to zero (every option's default) and opts->struct_size to struct_size. Pass
 * sizeof(SnowWsClientOptions) as your header defines it: the library writes exactly that many bytes, so a program
 * compiled against an older, shorter struct is safe with a newer library. Does not start the embedded interpreter.
 * Any thread. Returns 0, or -1: NULL opts or struct_size < 8 (SNOW_WS_E_INVALID_ARGUMENT), or a library that
 * cannot find its runtime at all (SNOW_WS_E_INIT, see "Start-up"). */
SNOW_WS_API int64_t snow_ws_client_options_init(SnowWsClientOptions *opts, uint64_t struct_size);

/* Connect to url and return at once: the connection (DNS, TCP, proxy, TLS, the opening handshake) is made on the
 * runtime's event loop, and what becomes of it reaches the callbacks and snow_ws_client_wait_open.
 * opts: NULL = every default. url: "ws://HOST[:PORT][/PATH][?QUERY]" or "wss://..." (NUL-terminated UTF-8,
 * copied). Callbacks: (fn, env) pairs as for snow_ws_start (NULL fn = absent; a NULL on_connect keeps the
 * connection); binary messages go to opts->on_binary_fn when it is set, else to on_message.
 * Any thread, also from inside a callback (it does not wait for the loop).
 * Returns a client id > 0 (see "Client" above), or -1 with no callback ever fired: NULL url, a URL that is not
 * ws:// or wss:// or has no host, url not UTF-8, an invalid option (SNOW_WS_E_INVALID_ARGUMENT /
 * SNOW_WS_E_INVALID_UTF8, naming what is wrong), the runtime could not start (SNOW_WS_E_INIT). */
SNOW_WS_API int64_t snow_ws_connect(const SnowWsClientOptions *opts, const char *url, void *on_connect_fn,
                                    void *on_connect_env, void *on_message_fn, void *on_message_env,
                                    void *on_close_fn, void *on_close_env);

/* Wait up to timeout_ms (0: do not wait) until client's connection is open (its handshake is done; its on_connect
 * may still be running on the callback thread). With reconnect, failed attempts are waited through until one
 * opens, the client is closed, or the time is up. Not from a callback running on the event-loop thread (workers
 * == 0): the loop could not open anything while it waits.
 * Returns 0 (open), or -1: the client ended without an open connection (SNOW_WS_E_CONNECT; snow_ws_last_error()
 * is the reason of the last failure, the same text as that connection's on_close, e.g. "HTTP 404 Not Found instead
 * of 101", "closed by the program while connecting"; or "the connection has ended" when the connection it had has
 * ended and it will not reconnect), not open within timeout_ms (SNOW_WS_E_TIMEOUT: with reconnect, still trying),
 * negative timeout_ms (SNOW_WS_E_INVALID_ARGUMENT), unknown id (SNOW_WS_E_BAD_HANDLE), a call with timeout_ms > 0
 * from a callback on the event-loop thread while the client is not open (SNOW_WS_E_INTERNAL). */
SNOW_WS_API int64_t snow_ws_client_wait_open(int64_t client, int64_t timeout_ms);

/* Close client: stop reconnecting, start the closing handshake of its open connection with code and reason (NULL =
 * empty; the same rules as snow_ws_close), or abandon a connection still being opened (its on_close reports 1006
 * "closed by the program while connecting"). Returns at once; on_close runs when the
 * connection has ended. A client that has ended already is left as it is (0). Any thread, any callback.
 * Returns 0, or -1: a code or reason snow_ws_close would refuse (SNOW_WS_E_INVALID_ARGUMENT /
 * SNOW_WS_E_INVALID_UTF8), unknown id (SNOW_WS_E_BAD_HANDLE). */
SNOW_WS_API int64_t snow_ws_client_close(int64_t client, int64_t code, const SnowString *reason);

/* Wait up to timeout_ms until client has ended for good: its last connection's on_close has returned and it will
 * not reconnect (after snow_ws_client_close, or without reconnect after the server closed or the connection was
 * lost or could not be opened). Returns 0 and forgets the id (later calls with it fail with SNOW_WS_E_BAD_HANDLE),
 * or -1: not ended within timeout_ms (SNOW_WS_E_TIMEOUT; the id stays), negative timeout_ms
 * (SNOW_WS_E_INVALID_ARGUMENT), unknown id (SNOW_WS_E_BAD_HANDLE), a call with timeout_ms > 0 from a callback on
 * the event-loop thread while the client has not ended (SNOW_WS_E_INTERNAL). */
SNOW_WS_API int64_t snow_ws_client_wait_closed(int64_t client, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* SNOW_WS_H */
