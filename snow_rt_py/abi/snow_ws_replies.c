/* libsnow_ws.so, part 6 of 7: the reply fast path (see snow_ws_api.c for the seven files and their order). */

#include "runtime/_connection_core.h"

/* -- replies from inside a callback: the send fast path ------------------------------------------------------- *
 *
 * While on_message / on_binary of connection C runs on a thread, snow_ws_send / snow_ws_send_binary to C itself
 * (the common "reply" case) do not go back into Python: the frame is encoded here, appended to this thread's
 * reply buffer, and Python hands the whole buffer to the connection in one call when the callback returns. That
 * saves a C -> Python transition (GIL, argument conversion, a Python call) per message.
 *
 * The answers stay what the Python path would give:
 *   - the fast path is armed only if the connection could send when the callback started; the runtime then gives
 *     a byte budget (Connection.reply_budget: what its queue bound accepts right now) and C does not apply the
 *     rule itself, it only compares: a send that would take the callback's replies past the budget goes the
 *     Python way, which applies the rule (and the slow-consumer policy) and gives the exact answer;
 *   - text that is not valid UTF-8 or a payload over SNOW_ABI_FAST_MAX goes the Python way too;
 *   - on a connection with permessage-deflate, a payload of compression_min_size bytes or more goes the Python
 *     way, which compresses it (the frames made here are plain, as the Python path makes shorter ones: RFC 7692
 *     §6 lets any message go uncompressed, and a plain message leaves a compression context as it was);
 *   - any other call into the runtime during the callback (close, join, broadcast, a send to another
 *     connection...) first delivers what is buffered, in order, and disarms the fast path for the rest of the
 *     callback, since it may change what a later send must answer (a close makes it SNOW_WS_E_CLOSED).
 * A callback that another callback's call made run on the same thread (nested) gets no fast path of its own. */

#define SNOW_ABI_FAST_MAX 65535 /* payloads above this take the Python path (copy-bound anyway) */

typedef struct SnowAbiReplies {
    uint64_t conn;     /* the connection whose callback runs on this thread and may reply fast; 0 = none */
    int64_t budget;    /* bytes buf may hold before a send must go the Python way (see snow_abi_arm) */
    int64_t plain_max; /* payloads of this many bytes or more go the Python way (compressed there); -1: none */
    int64_t count;     /* frames in buf */
    char *buf;         /* encoded frames in send order (the thread's buffer, see snow_abi_set_reply_buffer) */
    size_t len, cap;
    const char *in_data; /* on_binary: the message handed to the callback (Python's own bytes), else NULL */
    int64_t in_len;
} SnowAbiReplies;

/* initial-exec: the library is linked by the program (or dlopen'ed into python, whose static TLS surplus holds
 * these few bytes), and every access is then a plain %fs-relative load instead of a __tls_get_addr call. */
static __thread SnowAbiReplies snow_abi_replies __attribute__((tls_model("initial-exec")));

/* Give this thread its reply buffer: cap bytes owned by Python (a bytearray kept by the thread's
 * threading.local, so it lives as long as the thread). Python calls it once per thread, before the first
 * callback it runs there, and reads the replies straight out of its bytearray. */
static void snow_abi_set_reply_buffer(char *buf, size_t cap)
{
    snow_abi_replies.buf = buf;
    snow_abi_replies.cap = cap;
}

/* Deliver what is buffered and disarm the fast path (before any other call into Python from a callback). */
static void snow_abi_settle(void)
{
    SnowAbiReplies *r = &snow_abi_replies;
    uint64_t conn = r->conn;
    r->conn = 0;
    if (r->len > 0) {
        /* Failures (the connection closed meanwhile on another thread) are those of a close that came just
         * after the sends: what they sent is dropped with the connection, as it would have been. */
        snow_abi_py_deliver(conn, r->buf, (int64_t)r->len, r->count);
        r->len = 0;
        r->count = 0;
    }
}

/* 0 when the runtime is up (started now if needed), else -1 with SNOW_WS_E_INIT on this thread. Every public
 * function that goes into Python calls it first, so a callback's buffered replies always leave before whatever
 * that call does. */
static inline int64_t snow_abi_enter(void)
{
    if (__builtin_expect(snow_abi_replies.conn != 0, 0))
        snow_abi_settle();
    if (__builtin_expect(__atomic_load_n(&snow_abi_ready, __ATOMIC_ACQUIRE), 1))
        return 0;
    return snow_abi_start_runtime();
}

/* Append one unmasked server frame (FIN set, opcode 0x1 or 0x2) to the reply buffer if the fast path applies to
 * conn: 1 if appended, 0 if the caller must take the Python path. */
static int snow_abi_fast_send(uint64_t conn, int opcode, const char *data, uint64_t size)
{
    SnowAbiReplies *r = &snow_abi_replies;
    size_t len = (size_t)size, head;

    if (r->conn != conn || conn == 0 || size > SNOW_ABI_FAST_MAX)
        return 0;
    if (r->plain_max >= 0 && size >= (uint64_t)r->plain_max)
        return 0; /* compressed by the Python path (permessage-deflate) */
    head = snow_frame_header_size(len);
    if (r->cap - r->len < head + len)
        return 0;
    if ((int64_t)(r->len + head + len) > r->budget)
        return 0; /* past what the queue bound surely accepts: Python applies it */
    if (opcode == 0x1 && !snow_utf8_valid(data, len))
        return 0;
    snow_frame_header(r->buf + r->len, opcode, len);
    if (len > 0)
        memcpy(r->buf + r->len + head, data, len);
    r->len += head + len;
    r->count++;
    return 1;
}

/* What on_message / on_binary call, set up once per server by Python: the C callback. */
typedef struct SnowAbiTarget {
    void *fn;
    void *env;
} SnowAbiTarget;

/* Arm the fast path for conn around one callback. budget: Connection.reply_budget(), the bytes its outbound queue
 * accepts right now (-1: it cannot send now, so no fast path); plain_max: with permessage-deflate the connection's
 * compression_min_size (replies from that size on go the Python way, to be compressed), else -1; in_data, in_len:
 * the message on_binary gets (NULL for on_message). Returns nonzero if this callback is nested in another one's
 * call (it then stays disarmed). */
static int snow_abi_arm(uint64_t conn, int64_t budget, int64_t plain_max, const char *in_data, int64_t in_len)
{
    SnowAbiReplies *r = &snow_abi_replies;
    if (r->conn != 0)
        return 1;
    r->len = 0;
    r->count = 0;
    r->in_data = in_data;
    r->in_len = in_len;
    if (budget >= 0 && r->buf != NULL) {
        r->conn = conn;
        r->budget = budget;
        r->plain_max = plain_max;
    }
    return 0;
}

/* Disarm after the callback: what Python must deliver, as (frames << 32) | bytes (0: nothing). */
static int64_t snow_abi_disarm(int nested)
{
    SnowAbiReplies *r = &snow_abi_replies;
    if (nested)
        return 0;
    r->conn = 0;
    r->in_data = NULL;
    return (r->count << 32) | (int64_t)r->len;
}

/* on_message / on_binary of connection conn (budget, plain_max: see snow_abi_arm), with the reply fast path armed.
 * Returns -1
 * out of memory (nothing was called), else the replies buffered for Python to deliver as (frames << 32) | bytes, 0
 * if none. */
static int64_t snow_abi_call_on_message(const SnowAbiTarget *t, uint64_t conn, const char *data, size_t len,
                                        int64_t budget, int64_t plain_max)
{
    SnowAbiTmp tmp;
    int nested;
    if (snow_abi_tmp(&tmp, data, len) == NULL)
        return -1;
    nested = snow_abi_arm(conn, budget, plain_max, NULL, 0);
    if (t->env == NULL)
        ((SnowWsOnMessageFn)t->fn)((void *)(uintptr_t)conn, tmp.s);
    else
        ((SnowWsOnMessageEnvFn)t->fn)(t->env, (void *)(uintptr_t)conn, tmp.s);
    snow_abi_tmp_free(&tmp);
    return snow_abi_disarm(nested);
}

static int64_t snow_abi_call_on_binary(const SnowAbiTarget *t, uint64_t conn, const char *data, size_t len,
                                       int64_t budget, int64_t plain_max)
{
    int nested = snow_abi_arm(conn, budget, plain_max, data, (int64_t)len);
    if (t->env == NULL)
        ((SnowWsOnBinaryFn)t->fn)((void *)(uintptr_t)conn, (const uint8_t *)data, (int64_t)len);
    else
        ((SnowWsOnBinaryEnvFn)t->fn)(t->env, (void *)(uintptr_t)conn, (const uint8_t *)data, (int64_t)len);
    return snow_abi_disarm(nested);
}

/* The runtime's connection C part calls on_message directly (C to C) when a message runs inline: this is what it
 * calls, with the type declared in runtime/_connection_core.h. */
static int64_t snow_abi_native_on_message(const void *target, uint64_t conn, const char *data, size_t len,
                                          int64_t budget, int64_t plain_max)
{
    return snow_abi_call_on_message((const SnowAbiTarget *)target, conn, data, len, budget, plain_max);
}

/* Hand that function to snow_rt_py.runtime._connection_core (through its C API table). 0; -1 if the module or its
 * table is missing or of another version: the runtime then calls on_message the Python way. Python calls this once,
 * without the GIL (cffi releases it). */
static int snow_abi_register_native(void)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    int rc = -1;
    PyObject *module = PyImport_ImportModule("snow_rt_py.runtime._connection_core");
    if (module != NULL) {
        const SnowConnectionAPI *api = (const SnowConnectionAPI *)PyCapsule_Import(SNOW_CONNECTION_CAPSULE, 0);
        if (api != NULL && api->version == SNOW_CONNECTION_API_VERSION)
            rc = api->set_native_on_message(snow_abi_native_on_message);
        Py_DECREF(module);
    }
    if (rc != 0)
        PyErr_Clear();
    PyGILState_Release(gil);
    return rc;
}

/* A send to conn that goes the Python way: if the fast path was armed for conn, it is armed again afterwards
 * when that send cannot have changed what later sends must answer: it queued its frame (the budget shrinks by what
 * was delivered and that frame), or it only refused text that is not UTF-8. Any other outcome (closed, queue full)
 * leaves it disarmed. */
static int64_t snow_abi_slow_send(uint64_t conn, int opcode, const char *data, int64_t len)
{
    SnowAbiReplies *r = &snow_abi_replies;
    int armed = conn != 0 && r->conn == conn;
    int64_t left = r->budget - (int64_t)r->len, rc; /* the budget once what is buffered is delivered */
    /* Sending back the very bytes on_binary was given (an echo, a large one since small replies went fast):
     * Python queues its own message object, without copying it out of C. */
    int echo = armed && opcode == 0x2 && len > 0 && data == r->in_data && len == r->in_len;
    if (snow_abi_enter() != 0) /* delivers what is buffered, disarms */
        return -1;
    if (echo)
        rc = snow_abi_py_send_input(conn);
    else if (opcode == 0x1)
        rc = snow_abi_py_send_text(conn, data, len);
    else
        rc = snow_abi_py_send_binary(conn, data, len);
    if (armed && r->conn == 0 && (rc == 0 || snow_abi_err_code == SNOW_WS_E_INVALID_UTF8)) {
        r->conn = conn;
        r->budget = rc == 0 ? left - len - (int64_t)snow_frame_header_size((uint64_t)len) : left;
    }
    return rc;
}

