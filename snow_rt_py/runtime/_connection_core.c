/* The connection's C part: snow_rt_py.runtime._connection_core (build_ffi.py, target "hotpath"), from this file
 * and _connection_out.c (sending).
 *
 * ConnectionCore is the base class of runtime.connection.Connection. It owns the fields one message touches (the
 * same names as the Python attributes, so Python code reads and writes them unchanged; runtime/connection_base.py's
 * PyConnectionCore holds them as __slots__ without the compiled parts) and implements, for the common case only,
 * the connection's methods one message goes through:
 *
 *   data_received   a read of whole simple frames on an open connection: the protocol's C takes them (scan,
 *                   unmask, UTF-8, inflate: protocol/_protocol_core.h), each message goes to the connection's
 *                   actor -- run at once when the scheduler's rule lets it (runtime/_scheduler_core.h: claim,
 *                   settle), else through Scheduler.deliver -- and the replies are written;
 *   send, send_text, send_binary, send_utf8, offer_frame, _flush, flush_all, offer_all
 *                   see _connection_out.c.
 *
 * Everything else -- the handshake, fragments, control frames, a frame cut by the read, invalid input, sends from
 * other threads, a full queue, a closing connection -- goes to the Python methods of Connection (_receive,
 * _handle, _send_*_py, _offer_py, _flush_py), which are the reference: with SNOW_RT_PY_NO_SPEEDUPS=1 (or
 * conn._fast = False) they do everything, and tests/runtime/test_hotpath.py checks that both give the same
 * callbacks and the same bytes on the wire. No field of another class is read here but through its own C API. */

#include "_connection_fields.h"
#include <structmember.h>
#include <stddef.h>

#include "protocol/_protocol_core.h"
#include "runtime/_connection_core.h"
#include "runtime/_scheduler_core.h"

PyObject *PHASE_OPEN, *PHASE_CLOSED, *TAG_TEXT, *TAG_BINARY, *TEXT_MESSAGE;
Py_ssize_t SEPARATE_PAYLOAD_MIN = -1, FLUSH_NOW = -1; /* until configure(): no fast path can be taken before */

PyObject *s_receive, *s_send_any, *s_send_text_py, *s_send_binary_py, *s_send_utf8_py, *s_send_frame, *s_offer_py,
    *s_flush_py, *s_handle, *s_handled, *s_update_reading, *s_get_write_buffer_size, *s_write, *s_writelines,
    *s_schedule_flush, *s_run, *s_crashed, *s_deliver, *s_on_message, *s_receive_data, *s_offer_frame,
    *s_flush_scheduled, *s_dirty, *s_append, *s_popleft, *s_flush, *s_hot_path;

static SnowNativeOnMessage NATIVE_ON_MESSAGE; /* the C ABI library's, once it registered it */

#define OBJ_FIELDS(X)                                                                                           \
    X(phase) X(out) X(transport) X(actor) X(proto) X(handler_state) X(server) X(handler) X(on_text_bytes)      \
        X(scheduler) X(native) X(deflate)

static PyMemberDef core_members[] = {
    {"phase", T_OBJECT, offsetof(Core, phase), 0, NULL},
    {"_out", T_OBJECT, offsetof(Core, out), 0, NULL},
    {"_transport", T_OBJECT, offsetof(Core, transport), 0, NULL},
    {"_actor", T_OBJECT, offsetof(Core, actor), 0, NULL},
    {"_proto", T_OBJECT, offsetof(Core, proto), 0, NULL},
    {"_handler_state", T_OBJECT, offsetof(Core, handler_state), 0, NULL},
    {"server", T_OBJECT, offsetof(Core, server), 0, NULL},
    {"_handler", T_OBJECT, offsetof(Core, handler), 0, NULL},
    {"_on_text_bytes", T_OBJECT, offsetof(Core, on_text_bytes), 0, NULL},
    {"_scheduler", T_OBJECT, offsetof(Core, scheduler), 0, NULL},
    {"_native", T_OBJECT, offsetof(Core, native), 0, NULL},
    {"id", T_ULONGLONG, offsetof(Core, id), 0, NULL},
    {"_out_bytes", T_PYSSIZET, offsetof(Core, out_bytes), 0, NULL},
    {"_linger_left", T_PYSSIZET, offsetof(Core, linger_left), 0, NULL},
    {"max_queue_bytes", T_PYSSIZET, offsetof(Core, max_queue_bytes), 0, NULL},
    {"_max_message_size", T_PYSSIZET, offsetof(Core, max_message_size), 0, NULL},
    {"messages_in", T_PYSSIZET, offsetof(Core, messages_in), 0, NULL},
    {"messages_out", T_PYSSIZET, offsetof(Core, messages_out), 0, NULL},
    {"bytes_out", T_PYSSIZET, offsetof(Core, bytes_out), 0, NULL},
    {"_inbox_given", T_PYSSIZET, offsetof(Core, inbox_given), 0, NULL},
    {"_inbox_done", T_PYSSIZET, offsetof(Core, inbox_done), 0, NULL},
    {"_inbox_high", T_PYSSIZET, offsetof(Core, inbox_high), 0, NULL},
    {"_loop_thread", T_ULONG, offsetof(Core, loop_thread), 0, NULL},
    {"_flush_pending", T_BOOL, offsetof(Core, flush_pending), 0, NULL},
    {"_in_read", T_BOOL, offsetof(Core, in_read), 0, NULL},
    {"_paused_in", T_BOOL, offsetof(Core, paused_in), 0, NULL},
    {"_fast", T_BOOL, offsetof(Core, fast), 0, NULL},
    {"_direct", T_BOOL, offsetof(Core, direct), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

/* _deflate: setting it (once, at the handshake: Connection._on_request) also reads its hot_path tuple (see
 * compression.ConnectionDeflate.hot_path) into the z_* fields, so no message looks anything up. */
static PyObject *core_get_deflate(Core *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->deflate != NULL ? self->deflate : Py_None); /* NULL only once tp_clear ran */
}

static int core_set_deflate(Core *self, PyObject *value, void *closure)
{
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_deflate cannot be deleted");
        return -1;
    }
    int out_bits = 0, rle = 0, level = 0, mem_level = 0;
    Py_ssize_t min_size = 0;
    if (value != Py_None) {
        PyObject *hot = PyObject_GetAttr(value, s_hot_path);
        if (hot == NULL)
            return -1;
        int ok = PyTuple_Check(hot) && PyArg_ParseTuple(hot, "ipiin", &out_bits, &rle, &level, &mem_level, &min_size);
        Py_DECREF(hot);
        if (!ok) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "_deflate.hot_path must be a tuple");
            return -1;
        }
        if ((out_bits && (out_bits < 9 || out_bits > 15)) || level < 0 || level > 9 || mem_level < 1 ||
            mem_level > 9 || min_size < 0) {
            PyErr_SetString(PyExc_ValueError, "_deflate.hot_path out of range");
            return -1;
        }
    }
    Py_XSETREF(self->deflate, Py_NewRef(value));
    self->z_out_bits = out_bits;
    self->z_rle = (char)rle;
    self->z_level = level;
    self->z_mem_level = mem_level;
    self->z_min = min_size;
    return 0;
}

static PyGetSetDef core_getset[] = {
    {"_deflate", (getter)core_get_deflate, (setter)core_set_deflate,
     "permessage-deflate as negotiated (runtime.compression.ConnectionDeflate), or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    Core *self = (Core *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
#define INIT_NONE(f) self->f = Py_NewRef(Py_None);
    OBJ_FIELDS(INIT_NONE)
#undef INIT_NONE
    self->fast = 1;
    return (PyObject *)self;
}

static int core_traverse(Core *self, visitproc visit, void *arg)
{
#define VISIT(f) Py_VISIT(self->f);
    OBJ_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int core_clear(Core *self)
{
#define CLEAR(f) Py_CLEAR(self->f);
    OBJ_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void core_dealloc(Core *self)
{
    PyObject_GC_UnTrack(self);
    core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* -- one message to the handler ---------------------------------------------------------------------------- */

/* The message as Scheduler.deliver's payload: TextMessage(str, bytes) for text, the bytes for binary. */
static PyObject *message_payload(SnowMessage *m)
{
    if (m->opcode == 2)
        return Py_NewRef(m->obj);
    PyObject *text, *raw;
    if (m->raw != NULL) {
        text = Py_NewRef(m->obj);
        raw = Py_NewRef(m->raw);
    } else if (PyBytes_CheckExact(m->obj)) {
        raw = Py_NewRef(m->obj);
        text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), NULL);
    } else {
        text = Py_NewRef(m->obj);
        raw = PyUnicode_AsUTF8String(text);
    }
    if (text == NULL || raw == NULL) {
        Py_XDECREF(text);
        Py_XDECREF(raw);
        return NULL;
    }
    PyObject *args[2] = {text, raw};
    PyObject *event = PyObject_Vectorcall(TEXT_MESSAGE, args, 2, NULL);
    Py_DECREF(text);
    Py_DECREF(raw);
    return event;
}

/* CHandler.on_text_bytes in C: the C program's on_message (registered by the library, see _connection_core.h),
 * with the library's reply fast path armed (budget: what the queue bound accepts now), then its buffered replies
 * queued as one offer. NULL with an exception on failure. */
static PyObject *call_native(Core *self, PyObject *raw)
{
    PyObject *native = self->native;
    const void *target = PyLong_AsVoidPtr(PyTuple_GET_ITEM(native, 0));
    PyObject *buffer = PyTuple_GET_ITEM(native, 1);
    int64_t budget = -1;
    /* replies encoded in C are plain frames: with permessage-deflate, those of compression_min_size bytes or more
     * go the Python way, which compresses them (plain_max) */
    int64_t plain_max = self->deflate == Py_None ? -1 : (int64_t)self->z_min;
    if (PyTuple_GET_ITEM(native, 2) == Py_True && self->phase == PHASE_OPEN) {
        Py_ssize_t queued = snow_queued_bytes(self);
        if (queued < 0)
            return NULL;
        budget = queued < self->max_queue_bytes ? (int64_t)(self->max_queue_bytes - queued) : 0;
    }
    const char *data = PyBytes_AS_STRING(raw);
    size_t len = (size_t)PyBytes_GET_SIZE(raw);
    uint64_t conn = (uint64_t)self->id;
    SnowNativeOnMessage fn = NATIVE_ON_MESSAGE;
    int64_t replies;
    Py_BEGIN_ALLOW_THREADS /* as cffi does: the callback may call back into the library, other threads run */
    replies = fn(target, conn, data, len, budget, plain_max);
    Py_END_ALLOW_THREADS
    if (replies < 0) {
        PyErr_SetString(PyExc_MemoryError, "no memory for the message given to on_message");
        return NULL;
    }
    if (replies > 0) {
        Py_ssize_t count = (Py_ssize_t)(replies >> 32);
        PyObject *frames = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(buffer), (Py_ssize_t)(replies & 0xFFFFFFFF));
        if (frames == NULL)
            return NULL;
        int r = self->fast && on_loop(self) ? snow_offer_fast(self, frames, count) : 2;
        if (r == 2) { /* the queue bound applies: the Python path decides */
            PyObject *n = PyLong_FromSsize_t(count);
            PyObject *ok = n == NULL ? NULL : PyObject_CallMethodObjArgs((PyObject *)self, s_offer_py, frames, n, NULL);
            Py_XDECREF(n);
            if (ok == NULL) {
                Py_DECREF(frames);
                return NULL;
            }
            Py_DECREF(ok);
        }
        Py_DECREF(frames);
        if (r < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* Connection._behave for a message plus Scheduler._call around it: the handler's on_message (or the C ABI's
 * on_text_bytes), the inbox accounting, and a crash given to Scheduler._crashed. -1 only for an exception that is
 * not an Exception (KeyboardInterrupt, SystemExit), which propagates as it does from Scheduler._call. */
static int behave(Core *self, SnowMessage *m)
{
    PyObject *r = Py_None;
    Py_INCREF(r);
    if (PyUnicode_Check(self->handler_state) && PyUnicode_GET_LENGTH(self->handler_state) == 0) {
        Py_DECREF(r);
        if (m->opcode == 1 && self->native != Py_None && NATIVE_ON_MESSAGE != NULL) {
            r = call_native(self, m->raw != NULL ? m->raw : m->obj);
        } else if (m->opcode == 1 && self->on_text_bytes != Py_None) {
            PyObject *args[3] = {NULL, (PyObject *)self, m->raw != NULL ? m->raw : m->obj};
            r = PyObject_Vectorcall(self->on_text_bytes, args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        } else {
            PyObject *args[4] = {NULL, self->handler, (PyObject *)self, m->obj}; /* args[0]: for the callee */
            r = PyObject_VectorcallMethod(s_on_message, args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
    }
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    if (r == NULL)
        PyErr_Fetch(&type, &value, &tb);
    else
        Py_DECREF(r);
    /* _behave's finally: */
    self->inbox_done += m->rawlen;
    if (self->paused_in) {
        PyObject *h = PyObject_CallMethodNoArgs((PyObject *)self, s_handled);
        if (h == NULL) { /* raised in the finally: that exception replaces the handler's */
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            PyErr_Fetch(&type, &value, &tb);
        } else {
            Py_DECREF(h);
        }
    }
    if (type == NULL)
        return 0;
    PyErr_NormalizeException(&type, &value, &tb);
    if (!PyErr_GivenExceptionMatches(type, PyExc_Exception)) {
        PyErr_Restore(type, value, tb);
        return -1;
    }
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    PyObject *crash_args[4] = {NULL, self->scheduler, self->actor, value};
    PyObject *c = PyObject_VectorcallMethod(s_crashed, crash_args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(type);
    Py_DECREF(value);
    Py_XDECREF(tb);
    if (c == NULL)
        return -1;
    Py_DECREF(c);
    return 0;
}

/* One message to the connection's actor, as Scheduler.deliver gives it: run now if the scheduler's rule lets it
 * (no workers -- _direct -- and the actor idle with an empty mailbox: claim; this runs on the loop thread), else
 * through Scheduler.deliver. -1 error. */
static int dispatch(Core *self, SnowMessage *m)
{
    PyObject *actor = self->actor;
    self->messages_in++;
    self->inbox_given += m->rawlen;
    if (self->direct) {
        int claimed = snow_scheduler_api->claim(actor);
        if (claimed == SNOW_ACTOR_DEAD)
            return 0; /* the actor has exited: the message is dropped (deliver returns False) */
        if (claimed == SNOW_ACTOR_INLINE) {
            if (behave(self, m) < 0)
                return -1;
            if (snow_scheduler_api->settle(actor))
                return 0;
            /* messages arrived meanwhile (e.g. to itself): run them, then idle */
            PyObject *run_args[4] = {NULL, self->scheduler, actor, Py_None};
            PyObject *r = PyObject_VectorcallMethod(s_run, run_args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
            return 0;
        }
    }
    PyObject *payload = message_payload(m);
    if (payload == NULL)
        return -1;
    PyObject *args[5] = {NULL, self->scheduler, actor, m->opcode == 2 ? TAG_BINARY : TAG_TEXT, payload};
    PyObject *r = PyObject_VectorcallMethod(s_deliver, args + 1, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(payload);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* asyncio.Protocol.data_received: Connection._receive for a read that starts with whole simple frames. */
static PyObject *core_data_received(Core *self, PyObject *data)
{
    if (!self->fast || FLUSH_NOW < 0 || self->linger_left > 0 || self->phase != PHASE_OPEN ||
        self->actor == Py_None || !PyBytes_CheckExact(data))
        return PyObject_CallMethodOneArg((PyObject *)self, s_receive, data);
    const char *bytes = PyBytes_AS_STRING(data);
    size_t n = (size_t)PyBytes_GET_SIZE(data), consumed = 0;
    SnowMessage msgs[SNOW_SIMPLE_MAX];
    int text_form = !self->direct ? SNOW_TEXT_BOTH : self->on_text_bytes != Py_None ? SNOW_TEXT_BYTES : SNOW_TEXT_STR;
    Py_ssize_t n_ok = snow_protocol_api->take_simple(self->proto, bytes, n, text_form, msgs, SNOW_SIMPLE_MAX, &consumed);
    if (n_ok < 0)
        return NULL;
    if (n_ok == 0)
        return PyObject_CallMethodOneArg((PyObject *)self, s_receive, data);

    /* The rest of the read (a frame cut by the read, a control frame, ...) is parsed now, before any message is
     * handled, as the Python path parses a whole read first: the events are the same. */
    PyObject *events = NULL;
    int failed = 0;
    if (consumed < n) {
        PyObject *rest = PyBytes_FromStringAndSize(bytes + consumed, (Py_ssize_t)(n - consumed));
        if (rest == NULL) {
            failed = 1;
        } else {
            events = PyObject_CallMethodOneArg(self->proto, s_receive_data, rest);
            Py_DECREF(rest);
            if (events == NULL)
                failed = 1;
        }
    }
    Py_ssize_t count = n_ok;
    self->in_read = 1;
    for (Py_ssize_t i = 0; i < n_ok; i++) {
        if (!failed) {
            if (dispatch(self, &msgs[i]) < 0) {
                failed = 1;
            } else if (self->inbox_given - self->inbox_done > self->inbox_high && !self->paused_in) {
                self->paused_in = 1; /* the handler is behind: let TCP hold the rest */
                PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, s_update_reading);
                if (r == NULL)
                    failed = 1;
                else
                    Py_DECREF(r);
            }
        }
        Py_DECREF(msgs[i].obj);
        Py_XDECREF(msgs[i].raw);
    }
    if (events != NULL) {
        count += PyList_GET_SIZE(events);
        if (!failed) {
            PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, s_handle, events);
            if (r == NULL)
                failed = 1;
            else
                Py_DECREF(r);
        }
        Py_DECREF(events);
    }
    /* Connection._receive's finally: a lone message is answered at once; a batch at the end of the iteration. */
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    if (failed)
        PyErr_Fetch(&type, &value, &tb);
    self->in_read = 0;
    Py_ssize_t queued = PyList_GET_SIZE(self->out);
    PyObject *r = Py_NewRef(Py_None);
    if (queued) {
        Py_DECREF(r);
        if (count <= 1 || queued >= FLUSH_NOW) {
            r = snow_core_flush(self, NULL);
        } else {
            self->flush_pending = 1;
            r = PyObject_CallMethodOneArg(self->server, s_schedule_flush, (PyObject *)self);
        }
    }
    if (failed) {
        Py_XDECREF(r);
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    return r == NULL ? NULL : (Py_DECREF(r), Py_NewRef(Py_None));
}

/* -- the type and the module ------------------------------------------------------------------------------ */

static PyMethodDef core_methods[] = {
    {"data_received", (PyCFunction)core_data_received, METH_O, "asyncio.Protocol.data_received (see the module)."},
    {"send", (PyCFunction)snow_core_send, METH_O, "send_text for str, send_binary for bytes-like."},
    {"send_text", (PyCFunction)snow_core_send_text, METH_O, "Queue a text message (see Connection.send_text)."},
    {"send_binary", (PyCFunction)snow_core_send_binary, METH_O, "Queue a binary message (see Connection.send_binary)."},
    {"send_utf8", (PyCFunction)snow_core_send_utf8, METH_O, "Queue UTF-8 bytes as text (see Connection.send_utf8)."},
    {"offer_frame", (PyCFunction)(void (*)(void))snow_core_offer_frame, METH_FASTCALL | METH_KEYWORDS,
     "Queue a data frame unless closing or full (see Connection._offer_py)."},
    {"_flush", (PyCFunction)snow_core_flush, METH_NOARGS, "Write the output FIFO (loop thread)."},
    {"flush_all", (PyCFunction)snow_core_flush_all, METH_O | METH_CLASS,
     "flush_all(deque): pop each connection and write its FIFO, until the deque is empty (Server's flush)."},
    {"offer_all", (PyCFunction)(void (*)(void))snow_core_offer_all, METH_FASTCALL | METH_CLASS,
     "offer_all(targets, frame, except_conn, count, write_now) -> failures: offer_frame to every target."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "snow_rt_py.runtime._connection_core.ConnectionCore",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The per-message fields and methods of a Connection, in C (see the module).",
    .tp_new = core_new,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_members = core_members,
    .tp_getset = core_getset,
    .tp_methods = core_methods,
};

static PyObject *configure(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *phase_open, *phase_closed, *tag_text, *tag_binary, *text_message;
    Py_ssize_t separate_min, flush_now;
    if (!PyArg_ParseTuple(args, "OOOOOnn", &phase_open, &phase_closed, &tag_text, &tag_binary, &text_message,
                          &separate_min, &flush_now))
        return NULL;
    if (separate_min <= 0 || flush_now <= 0) {
        PyErr_SetString(PyExc_ValueError, "configure: SEPARATE_PAYLOAD_MIN and FLUSH_NOW must be positive");
        return NULL;
    }
    Py_XSETREF(PHASE_OPEN, Py_NewRef(phase_open));
    Py_XSETREF(PHASE_CLOSED, Py_NewRef(phase_closed));
    Py_XSETREF(TAG_TEXT, Py_NewRef(tag_text));
    Py_XSETREF(TAG_BINARY, Py_NewRef(tag_binary));
    Py_XSETREF(TEXT_MESSAGE, Py_NewRef(text_message));
    SEPARATE_PAYLOAD_MIN = separate_min;
    FLUSH_NOW = flush_now;
    Py_RETURN_NONE;
}

static PyObject *constants(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return Py_BuildValue("{s:n,s:n}", "SEPARATE_PAYLOAD_MIN", SEPARATE_PAYLOAD_MIN, "FLUSH_NOW", FLUSH_NOW);
}

static PyObject *native_registered(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyBool_FromLong(NATIVE_ON_MESSAGE != NULL);
}

static int set_native_on_message(SnowNativeOnMessage fn)
{
    NATIVE_ON_MESSAGE = fn;
    return 0;
}

static const SnowConnectionAPI API = {SNOW_CONNECTION_API_VERSION, set_native_on_message};

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Phase.OPEN, Phase.CLOSED, Tag.TEXT, Tag.BINARY, TextMessage, SEPARATE_PAYLOAD_MIN, FLUSH_NOW): "
     "what the C part compares with and builds, and the constants defined in Python (runtime/connection.py)."},
    {"constants", constants, METH_NOARGS, "The constants configure() set, as the C part uses them (for tests)."},
    {"native_registered", native_registered, METH_NOARGS, "True once the C ABI library registered on_message."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "snow_rt_py.runtime._connection_core",
    "The connection's C part: Connection's base class (see _connection_core.c).", -1, module_methods, NULL, NULL,
    NULL, NULL,
};

#define INTERN(var, text)                                                                                       \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                                       \
        return NULL;

PyMODINIT_FUNC PyInit__connection_core(void)
{
    INTERN(s_receive, "_receive")
    INTERN(s_send_any, "_send_any")
    INTERN(s_send_text_py, "_send_text_py")
    INTERN(s_send_binary_py, "_send_binary_py")
    INTERN(s_send_utf8_py, "_send_utf8_py")
    INTERN(s_send_frame, "send_frame")
    INTERN(s_offer_py, "_offer_py")
    INTERN(s_flush_py, "_flush_py")
    INTERN(s_handle, "_handle")
    INTERN(s_handled, "_handled")
    INTERN(s_update_reading, "_update_reading")
    INTERN(s_get_write_buffer_size, "get_write_buffer_size")
    INTERN(s_write, "write")
    INTERN(s_writelines, "writelines")
    INTERN(s_schedule_flush, "schedule_flush")
    INTERN(s_run, "_run")
    INTERN(s_crashed, "_crashed")
    INTERN(s_deliver, "deliver")
    INTERN(s_on_message, "on_message")
    INTERN(s_receive_data, "receive_data")
    INTERN(s_offer_frame, "offer_frame")
    INTERN(s_flush_scheduled, "_flush_scheduled")
    INTERN(s_dirty, "_dirty")
    INTERN(s_append, "append")
    INTERN(s_popleft, "popleft")
    INTERN(s_flush, "_flush")
    INTERN(s_hot_path, "hot_path")
    if (snow_protocol_import() < 0 || snow_scheduler_import() < 0 || snow_out_init() < 0)
        return NULL;
    if (PyType_Ready(&CoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    PyObject *capsule = PyCapsule_New((void *)&API, SNOW_CONNECTION_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(m, "_C_API", capsule) < 0 ||
        PyModule_AddObjectRef(m, "ConnectionCore", (PyObject *)&CoreType) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
