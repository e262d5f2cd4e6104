/* The runtime's per-message path in C: snow_rt_py.runtime._hotpath (built by build_ffi.py, target "hotpath",
 * together with the protocol layer's C half, protocol/_codec.c).
 *
 * ConnectionCore is the base class of runtime.connection.Connection. It holds the fields one message touches
 * (the same names as the Python attributes, so Python code reads and writes them unchanged) and implements, for
 * the common case only, the methods one message goes through:
 *
 *   data_received   a read of whole simple frames (protocol/_codec.c: snow_scan_simple) on a connection at rest:
 *                   unmasked (and inflated, see below), UTF-8 checked, handed to the connection's actor -- run at
 *                   once, as Scheduler.deliver does for an idle actor on the loop thread -- and the replies written;
 *   send, send_text, send_binary, offer_frame
 *                   a frame under 64 KiB queued from the loop thread (compressed, see below);
 *   _flush          the output FIFO written while our Close is not in it.
 *
 * permessage-deflate (RFC 7692), in each direction where no compression context is kept (compression.py:
 * ConnectionDeflate.hot_path, read once by the _deflate setter): a whole compressed frame (RSV1, FIN) is inflated
 * here with zlib, never into more than max_message_size + 1 bytes, and dispatched like a plain one; anything
 * irregular about it (over the limit, not valid deflate, a final block, a client window under 15 bits) is not
 * decided here: that frame and the rest of the read go to the Python path, which answers (1009, 1007, 1002). A
 * message from compression_min_size bytes up to 64 KiB sent on the loop thread is compressed here as the Python
 * pool compresses it (same level, memLevel, window, strategy, full flush: the same bytes). The zlib state is the
 * process's, not a connection's (see "permessage-deflate" below). A message compressed with a connection's own
 * context (dedicated mode) and the C ABI's reply fast path on a compressed connection stay on the Python path.
 *
 * Everything else -- the handshake, fragments, control frames, a frame cut by the read, invalid input, sends from
 * other threads, a full queue, a closing connection -- goes to the Python methods the class also has (_receive,
 * _send_any, _send_text_py, _send_binary_py, _send_utf8_py, _offer_py, _flush_py), which are the reference: with
 * SNOW_RT_PY_NO_SPEEDUPS=1 (or conn._fast = False) they do everything, and tests/runtime/test_hotpath.py checks
 * that both give the same callbacks and the same bytes on the wire for any input and any chunking.
 *
 * Threads: every method here runs with the GIL held and calls no Python code between reading and writing an
 * actor's running/mailbox fields, so each such check-and-set is atomic against Scheduler.deliver on other threads
 * (see the comment in dispatch_direct). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <structmember.h>
#include <stddef.h>
#include <string.h>
#include <zlib.h>

/* protocol/_codec.c, compiled into this module. */
typedef struct SnowSimpleFrame {
    int opcode;
    int compressed;
    size_t offset;
    size_t length;
} SnowSimpleFrame;
size_t snow_scan_simple(const char *data, size_t n, size_t max_payload, int rsv1, SnowSimpleFrame *frames,
                        size_t max_frames, size_t *consumed);
void snow_mask_copy(const char *src, size_t len, const char *key, char *dst);
int snow_utf8_valid(const char *s, size_t n);
size_t snow_frame_header(char *out, int opcode, uint64_t len);
size_t snow_frame_header_size(uint64_t len);

#define MAX_FRAMES 64               /* simple frames taken from one read; the rest go to the full parser */
#define FAST_PAYLOAD_MAX 65535      /* 7- and 16-bit lengths; larger frames go to the full parser */
#define SEPARATE_PAYLOAD_MIN 65536  /* connection.SEPARATE_PAYLOAD_MIN: from here on sends take the Python path */
#define FLUSH_NOW 64                /* connection._FLUSH_NOW */

static PyTypeObject CoreType;

/* Set once by configure() (connection.py, at import). */
static PyObject *PHASE_OPEN, *PHASE_CLOSED, *STATE_OPEN, *TAG_TEXT, *TAG_BINARY, *TEXT_MESSAGE;

/* Direct access to a few __slots__ of two Python classes, ServerProtocol (protocol/connection.py) and Actor
 * (runtime/scheduler.py): configure() finds each slot's offset in its member descriptor, and an object of exactly
 * that class then has the slot at that offset -- what the attribute lookup would find, without the lookup (it is
 * a third of the C path's time otherwise). Any other class goes through the attribute protocol. */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t state, buf, stream, msg_opcode, close_sent; /* ServerProtocol */
} ProtoSlots;
typedef struct {
    PyTypeObject *type;
    Py_ssize_t alive, running, mailbox; /* Actor */
} ActorSlots;
static ProtoSlots PROTO;
static ActorSlots ACTOR;

static Py_ssize_t slot_offset(PyTypeObject *type, const char *name)
{
    PyObject *descr = PyDict_GetItemString(type->tp_dict, name);
    if (descr == NULL || Py_TYPE(descr) != &PyMemberDescr_Type) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ member", type->tp_name, name);
        return -1;
    }
    PyMemberDef *def = ((PyMemberDescrObject *)descr)->d_member;
    if (def->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", type->tp_name, name);
        return -1;
    }
    return def->offset;
}

/* obj.<slot> as a new reference; NULL with AttributeError when unset (as the attribute lookup would). */
static inline PyObject *get_slot(PyObject *obj, PyTypeObject *type, Py_ssize_t offset, PyObject *name)
{
    if (Py_TYPE(obj) != type)
        return PyObject_GetAttr(obj, name);
    PyObject *v = *(PyObject **)((char *)obj + offset);
    if (v == NULL) {
        PyErr_SetObject(PyExc_AttributeError, name);
        return NULL;
    }
    return Py_NewRef(v);
}

static inline int set_slot(PyObject *obj, PyTypeObject *type, Py_ssize_t offset, PyObject *name, PyObject *value)
{
    if (Py_TYPE(obj) != type)
        return PyObject_SetAttr(obj, name, value);
    PyObject **slot = (PyObject **)((char *)obj + offset);
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

static PyObject *s_receive, *s_send_any, *s_send_text_py, *s_send_binary_py, *s_send_utf8_py, *s_send_frame, *s_offer_py, *s_flush_py,
    *s_handle, *s_handled, *s_update_reading, *s_get_write_buffer_size, *s_write, *s_writelines, *s_schedule_flush,
    *s_state, *s_buf, *s_stream, *s_msg_opcode, *s_close_sent, *s_alive, *s_running, *s_mailbox, *s_run,
    *s_crashed, *s_deliver, *s_on_message, *s_receive_data, *s_offer_frame, *s_min_size, *s_flush_scheduled,
    *s_dirty, *s_append, *s_popleft, *s_flush, *s_hot_path;

typedef struct {
    PyObject_HEAD
    PyObject *phase;
    PyObject *out; /* the protocol's outgoing list */
    PyObject *transport;
    PyObject *actor;
    PyObject *proto;
    PyObject *handler_state;
    PyObject *server;
    PyObject *handler;
    PyObject *on_text_bytes;
    PyObject *scheduler;
    /* None, or the C ABI's on_message called without Python in between (abi/callbacks.py, CHandler.native):
     * (address of snow_abi_call_on_message, address of its SnowAbiTarget, the loop thread's reply buffer,
     * whether the reply fast path is on) */
    PyObject *native;
    PyObject *deflate; /* permessage-deflate as negotiated (compression.ConnectionDeflate), or None */
    unsigned long long id;
    Py_ssize_t out_bytes;
    Py_ssize_t linger_left;
    Py_ssize_t max_queue_bytes;
    Py_ssize_t max_message_size;
    Py_ssize_t messages_in;
    Py_ssize_t messages_out;
    Py_ssize_t bytes_out; /* bytes of data frames queued, headers included (statistics) */
    Py_ssize_t inbox_given;
    Py_ssize_t inbox_done;
    Py_ssize_t inbox_high;
    /* permessage-deflate, from deflate.hot_path when _deflate is set (see core_set_deflate); all 0 without it */
    Py_ssize_t z_min; /* compression_min_size: shorter messages go out plain */
    int z_in_bits;    /* raw window of the decompressor when the client keeps no context, else 0 */
    int z_out_bits;   /* raw window of the compressor when we keep no context, else 0 */
    int z_level;
    int z_mem_level;
    char z_rle;
    unsigned long loop_thread;
    char flush_pending;
    char in_read;
    char paused_in;
    char fast;   /* False: every method takes the Python path (tests compare the two) */
    char direct; /* the scheduler has no workers: an idle actor's message runs at once on the loop */
} Core;

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
    int in_bits = 0, out_bits = 0, rle = 0, level = 0, mem_level = 0;
    Py_ssize_t min_size = 0;
    if (value != Py_None) {
        PyObject *hot = PyObject_GetAttr(value, s_hot_path);
        if (hot == NULL)
            return -1;
        int ok = PyTuple_Check(hot) && PyArg_ParseTuple(hot, "iipiin", &in_bits, &out_bits, &rle, &level,
                                                         &mem_level, &min_size);
        Py_DECREF(hot);
        if (!ok) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "_deflate.hot_path must be a tuple");
            return -1;
        }
        if ((in_bits && (in_bits < 9 || in_bits > 15)) || (out_bits && (out_bits < 9 || out_bits > 15)) ||
            level < 0 || level > 9 || mem_level < 1 || mem_level > 9 || min_size < 0) {
            PyErr_SetString(PyExc_ValueError, "_deflate.hot_path out of range");
            return -1;
        }
    }
    Py_XSETREF(self->deflate, Py_NewRef(value));
    self->z_in_bits = in_bits;
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

/* -- small helpers ------------------------------------------------------------------------------------------ */

static inline int on_loop(Core *self)
{
    return PyThread_get_thread_ident() == self->loop_thread;
}

static PyObject *call_method0(PyObject *obj, PyObject *name)
{
    return PyObject_CallMethodNoArgs(obj, name);
}

static PyObject *call_method1(PyObject *obj, PyObject *name, PyObject *arg)
{
    return PyObject_CallMethodOneArg(obj, name, arg);
}

/* Bytes queued and not yet accepted by the kernel: ours plus the transport's buffer. -1 with an exception. */
static Py_ssize_t queued_bytes(Core *self)
{
    Py_ssize_t queued = self->out_bytes;
    if (self->transport != Py_None) {
        PyObject *size = call_method0(self->transport, s_get_write_buffer_size);
        if (size == NULL)
            return -1;
        Py_ssize_t extra = PyLong_AsSsize_t(size);
        Py_DECREF(size);
        if (extra == -1 && PyErr_Occurred())
            return -1;
        queued += extra;
    }
    return queued;
}

/* Server.schedule_flush(self): its common case (a flush already scheduled this iteration: just join the list) in
 * C, the first one of the iteration through the Python method. -1 error. */
static int schedule_flush(Core *self)
{
    PyObject *scheduled = PyObject_GetAttr(self->server, s_flush_scheduled);
    if (scheduled == NULL)
        return -1;
    Py_DECREF(scheduled);
    PyObject *r;
    if (scheduled == Py_True) {
        PyObject *dirty = PyObject_GetAttr(self->server, s_dirty);
        if (dirty == NULL)
            return -1;
        r = PyObject_CallMethodOneArg(dirty, s_append, (PyObject *)self);
        Py_DECREF(dirty);
    } else {
        r = PyObject_CallMethodOneArg(self->server, s_schedule_flush, (PyObject *)self);
    }
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* offer_frame's common case (loop thread, one frame): 1 queued; 0 refused because the connection is not OPEN;
 * 2 the queue bound applies (the Python path decides: drop or close); -1 error. */
static int offer_fast(Core *self, PyObject *frame, Py_ssize_t count)
{
    if (self->phase != PHASE_OPEN)
        return 0;
    Py_ssize_t queued = queued_bytes(self);
    if (queued < 0)
        return -1;
    Py_ssize_t size = PyBytes_GET_SIZE(frame);
    if (queued && queued + size > self->max_queue_bytes)
        return 2;
    if (PyList_Append(self->out, frame) < 0)
        return -1;
    self->out_bytes += size;
    self->bytes_out += size;
    self->messages_out += count;
    if (!self->flush_pending) {
        self->flush_pending = 1;
        if (!self->in_read && schedule_flush(self) < 0)
            return -1;
    }
    return 1;
}

/* -- output ------------------------------------------------------------------------------------------------- */

/* Hand every queued frame to the transport in one write (loop thread): runtime.connection.Connection._flush_py,
 * which this calls once our Close is due (the protocol then orders the FIFO). */
static PyObject *core_flush(Core *self, PyObject *unused)
{
    (void)unused;
    if (!self->fast)
        return call_method0((PyObject *)self, s_flush_py);
    self->flush_pending = 0;
    if (self->transport == Py_None || self->phase == PHASE_CLOSED)
        Py_RETURN_NONE;
    PyObject *close_sent = get_slot(self->proto, PROTO.type, PROTO.close_sent, s_close_sent);
    if (close_sent == NULL)
        return NULL;
    int closing = close_sent == Py_True;
    Py_DECREF(close_sent);
    if (closing)
        return call_method0((PyObject *)self, s_flush_py);
    PyObject *out = self->out;
    Py_ssize_t n = PyList_GET_SIZE(out);
    if (n == 0)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!PyBytes_CheckExact(PyList_GET_ITEM(out, i))) /* a bytearray a caller queued: the general path */
            return call_method0((PyObject *)self, s_flush_py);
    PyObject *data, *r;
    if (n == 1) {
        data = Py_NewRef(PyList_GET_ITEM(out, 0));
        if (PyList_SetSlice(out, 0, 1, NULL) < 0) {
            Py_DECREF(data);
            return NULL;
        }
        Py_ssize_t left = self->out_bytes - PyBytes_GET_SIZE(data);
        self->out_bytes = left > 0 ? left : 0;
        r = call_method1(self->transport, s_write, data);
        Py_DECREF(data);
    } else {
        PyObject *items = PyList_GetSlice(out, 0, n);
        if (items == NULL)
            return NULL;
        if (PyList_SetSlice(out, 0, n, NULL) < 0) {
            Py_DECREF(items);
            return NULL;
        }
        Py_ssize_t total = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            total += PyBytes_GET_SIZE(PyList_GET_ITEM(items, i));
        int small = self->out_bytes < SEPARATE_PAYLOAD_MIN;
        Py_ssize_t left = self->out_bytes - total;
        self->out_bytes = left > 0 ? left : 0;
        if (small) { /* one copy, one write */
            data = PyBytes_FromStringAndSize(NULL, total);
            if (data == NULL) {
                Py_DECREF(items);
                return NULL;
            }
            char *p = PyBytes_AS_STRING(data);
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *item = PyList_GET_ITEM(items, i);
                memcpy(p, PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item));
                p += PyBytes_GET_SIZE(item);
            }
            r = call_method1(self->transport, s_write, data);
            Py_DECREF(data);
        } else { /* large payloads: not copied */
            r = call_method1(self->transport, s_writelines, items);
        }
        Py_DECREF(items);
    }
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* -- permessage-deflate (RFC 7692) ------------------------------------------------------------------------- */

/* The C path's zlib state is the process's, not a connection's: one decompressor, a few compressors (one per
 * window / strategy / level / memLevel in use) and one scratch buffer, each reset or ended by a full flush after
 * every message -- so a compressed connection holds no zlib state between messages, as in the Python path. They
 * are used only with the GIL held, and zlib runs here without releasing it: a runtime's loop thread is the only
 * one that receives (so the decompressor's inflateReset per message is all it needs), and the C path sends only on
 * the loop thread. Z_BUSY guards against re-entry anyway (none is expected): a second user takes the Python path.
 * What is held: the decompressor's 32 KiB window plus ~7 KiB, each compressor's zlib state (256 KiB with window
 * 15 and memLevel 8), and the scratch buffer, up to INFLATE_MAX + 1 bytes. */

#define INFLATE_BITS 15          /* the only decompressor window the C path inflates with (see z_inflate) */
#define INFLATE_MAX (256 << 10)  /* a message that inflates to more is left to the Python path */
#define SCRATCH_MIN (16 << 10)
#define DEFLATERS 4

static const char DEFLATE_TAIL[4] = {0, 0, (char)0xff, (char)0xff}; /* RFC 7692 §7.2.1 */
static char *SCRATCH;
static size_t SCRATCH_SIZE;
static int Z_BUSY;
static z_stream INFLATER;
static int INFLATER_READY;

typedef struct {
    int ready, bits, rle, level, mem_level;
    z_stream s;
} Deflater;
static Deflater DEFLATER[DEFLATERS];

/* SCRATCH of at least size bytes; -1 if there is no memory for it (no exception: the Python path then tries). */
static int scratch_reserve(size_t size)
{
    if (size <= SCRATCH_SIZE)
        return 0;
    if (size < SCRATCH_MIN)
        size = SCRATCH_MIN;
    char *p = PyMem_RawRealloc(SCRATCH, size);
    if (p == NULL)
        return -1;
    SCRATCH = p;
    SCRATCH_SIZE = size;
    return 0;
}

/* The process's compressor for these parameters (made at first use; with DEFLATERS in use, the last one is ended
 * and remade), NULL if zlib refuses. */
static Deflater *deflater(int bits, int rle, int level, int mem_level)
{
    Deflater *d = NULL;
    for (int i = 0; i < DEFLATERS; i++) {
        Deflater *c = &DEFLATER[i];
        if (c->ready && c->bits == bits && c->rle == rle && c->level == level && c->mem_level == mem_level)
            return c;
        if (!c->ready && d == NULL)
            d = c;
    }
    if (d == NULL) {
        d = &DEFLATER[DEFLATERS - 1];
        deflateEnd(&d->s);
        d->ready = 0;
    }
    memset(&d->s, 0, sizeof d->s);
    if (deflateInit2(&d->s, level, Z_DEFLATED, -bits, mem_level, rle ? Z_RLE : Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    d->ready = 1;
    d->bits = bits;
    d->rle = rle;
    d->level = level;
    d->mem_level = mem_level;
    return d;
}

/* Inflate one whole compressed frame (its masked payload data[0..len) and masking key) into SCRATCH, the
 * 00 00 ff ff tail appended (RFC 7692 §7.2.2), producing at most min(max_message_size, INFLATE_MAX) + 1 bytes:
 * 1 with the message in SCRATCH[0..*out_len); 0 for anything irregular -- more than that, data that is not valid
 * deflate, a deflate stream that ends (a final block: the Python path decides what may follow it), no memory --
 * for which nothing is decided here: the Python path inflates the frame again and answers (1009, 1007, ...).
 * The caller holds Z_BUSY.
 *
 * Only with a 15-bit window: a smaller one (client_max_window_bits) is enforced by zlib only across its calls, so
 * a back-reference past it could pass here and fail in Python; with 15 bits every distance deflate can express is
 * in the window, and zlib's answer does not depend on how the output is cut. */
static int z_inflate(Core *self, const char *data, size_t len, const char *key, size_t *out_len)
{
    size_t limit = (size_t)self->max_message_size < INFLATE_MAX ? (size_t)self->max_message_size : INFLATE_MAX;
    z_stream *z = &INFLATER;
    *out_len = 0;
    if (!INFLATER_READY) {
        memset(z, 0, sizeof *z);
        if (inflateInit2(z, -INFLATE_BITS) != Z_OK)
            return 0;
        INFLATER_READY = 1;
    }
    char stack[4096];
    size_t in_len = len + 4;
    char *in = in_len <= sizeof stack ? stack : PyMem_Malloc(in_len);
    if (in == NULL)
        return 0;
    snow_mask_copy(data, len, key, in);
    memcpy(in + len, DEFLATE_TAIL, 4);
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)in_len;
    size_t produced = 0;
    int ok = 0;
    for (;;) {
        if (produced == SCRATCH_SIZE) { /* full, and produced <= limit: room for more, up to limit + 1 */
            size_t want = SCRATCH_SIZE ? SCRATCH_SIZE * 2 : SCRATCH_MIN;
            if (scratch_reserve(want < limit + 1 ? want : limit + 1) < 0)
                break;
        }
        size_t room = SCRATCH_SIZE - produced;
        if (room > limit + 1 - produced)
            room = limit + 1 - produced;
        z->next_out = (Bytef *)SCRATCH + produced;
        z->avail_out = (uInt)room;
        int rc = inflate(z, Z_SYNC_FLUSH);
        produced += room - z->avail_out;
        if ((rc != Z_OK && rc != Z_BUF_ERROR) || produced > limit)
            break; /* Z_STREAM_END, Z_DATA_ERROR, ...; or over the limit */
        if (z->avail_out != 0) { /* room left: zlib gave all it had */
            ok = z->avail_in == 0;
            break;
        }
    }
    inflateReset(z);
    if (in != stack)
        PyMem_Free(in);
    *out_len = produced;
    return ok;
}

/* -- sending ------------------------------------------------------------------------------------------------ */

/* Queue an encoded frame from the fast path, or let the Python path say why not (it raises). */
static PyObject *queue_or_refuse(Core *self, PyObject *frame)
{
    int r = offer_fast(self, frame, 1);
    if (r == 1)
        Py_RETURN_NONE;
    if (r < 0)
        return NULL;
    return call_method1((PyObject *)self, s_send_frame, frame); /* raises ConnectionClosedError / QueueFullError */
}

static PyObject *encode(int opcode, const char *data, Py_ssize_t len)
{
    size_t head = snow_frame_header_size((uint64_t)len);
    PyObject *frame = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)head + len);
    if (frame == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(frame);
    snow_frame_header(p, opcode, (uint64_t)len);
    memcpy(p + head, data, (size_t)len);
    return frame;
}

/* The compressed frame (RSV1 set) of a message, made as compression.CompressorPool makes it (the connection's
 * level, memLevel, raw window and strategy; a full flush; the 00 00 ff ff tail stripped, RFC 7692 §7.2.1): a new
 * bytes object, or NULL -- with an exception on failure, without one to take the Python path (zlib refused, the
 * state is busy, or a payload of 64 KiB or more, which the Python path queues apart from its header). */
static PyObject *encode_deflated(Core *self, int opcode, const char *data, Py_ssize_t len)
{
    if (Z_BUSY)
        return NULL;
    Deflater *d = deflater(self->z_out_bits, self->z_rle, self->z_level, self->z_mem_level);
    if (d == NULL)
        return NULL;
    z_stream *z = &d->s;
    if (scratch_reserve(deflateBound(z, (uLong)len) + 16) < 0)
        return NULL;
    Z_BUSY = 1;
    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)len;
    z->next_out = (Bytef *)SCRATCH;
    z->avail_out = (uInt)SCRATCH_SIZE;
    int rc = deflate(z, Z_FULL_FLUSH); /* empties the history: the next message, anyone's, starts afresh */
    size_t out = SCRATCH_SIZE - z->avail_out;
    PyObject *frame = NULL;
    if (rc == Z_OK && z->avail_in == 0 && z->avail_out != 0 && out >= 4 &&
        memcmp(SCRATCH + out - 4, DEFLATE_TAIL, 4) == 0) {
        if (out - 4 < SEPARATE_PAYLOAD_MIN) {
            frame = encode(opcode, SCRATCH, (Py_ssize_t)(out - 4));
            if (frame != NULL)
                PyBytes_AS_STRING(frame)[0] |= 0x40; /* RSV1: a compressed message (RFC 7692 §6) */
        }
    } else {
        deflateReset(z); /* whatever is pending is dropped: the next message starts from an empty stream */
    }
    Z_BUSY = 0;
    return frame;
}

/* A message's frame on the fast path: plain, or compressed from compression_min_size bytes on when the connection
 * has permessage-deflate. NULL with an exception on failure, without one to take the Python path (a message we
 * compress with our own context: dedicated mode, whose compress-and-queue step is ordered under a lock). */
static PyObject *encode_message(Core *self, int opcode, const char *data, Py_ssize_t len)
{
    if (self->deflate == Py_None || len < self->z_min)
        return encode(opcode, data, len);
    if (!self->z_out_bits)
        return NULL;
    return encode_deflated(self, opcode, data, len);
}

/* The fast path of send_text: NULL with no exception set means "take the Python path". */
static PyObject *send_text_fast(Core *self, PyObject *text, int *fallback)
{
    *fallback = 1;
    if (!self->fast || self->phase != PHASE_OPEN || !on_loop(self))
        return NULL;
    PyObject *frame;
    if (PyUnicode_IS_COMPACT_ASCII(text)) {
        Py_ssize_t len = PyUnicode_GET_LENGTH(text);
        if (len >= SEPARATE_PAYLOAD_MIN)
            return NULL;
        frame = encode_message(self, 1, (const char *)PyUnicode_DATA(text), len);
    } else {
        if (PyUnicode_GET_LENGTH(text) >= SEPARATE_PAYLOAD_MIN / 4)
            return NULL;
        PyObject *utf8 = PyUnicode_AsUTF8String(text);
        if (utf8 == NULL) { /* a lone surrogate: the Python path raises InvalidArgumentError */
            PyErr_Clear();
            return NULL;
        }
        frame = encode_message(self, 1, PyBytes_AS_STRING(utf8), PyBytes_GET_SIZE(utf8));
        Py_DECREF(utf8);
    }
    if (frame == NULL && !PyErr_Occurred())
        return NULL;
    *fallback = 0;
    if (frame == NULL)
        return NULL;
    PyObject *r = queue_or_refuse(self, frame);
    Py_DECREF(frame);
    return r;
}

/* The fast path of send_binary (opcode 2) and send_utf8 (opcode 1: text given as UTF-8 bytes, checked here; not
 * UTF-8 takes the Python path, which raises): NULL with no exception set means "take the Python path". */
static PyObject *send_bytes_fast(Core *self, PyObject *data, int opcode, int *fallback)
{
    *fallback = 1;
    if (!self->fast || self->phase != PHASE_OPEN || PyBytes_GET_SIZE(data) >= SEPARATE_PAYLOAD_MIN || !on_loop(self))
        return NULL;
    if (opcode == 1 && !snow_utf8_valid(PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data)))
        return NULL;
    PyObject *frame = encode_message(self, opcode, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    if (frame == NULL && !PyErr_Occurred())
        return NULL;
    *fallback = 0;
    if (frame == NULL)
        return NULL;
    PyObject *r = queue_or_refuse(self, frame);
    Py_DECREF(frame);
    return r;
}

static PyObject *core_send(Core *self, PyObject *message)
{
    int fallback = 1;
    PyObject *r = NULL;
    if (PyUnicode_CheckExact(message))
        r = send_text_fast(self, message, &fallback);
    else if (PyBytes_CheckExact(message))
        r = send_bytes_fast(self, message, 2, &fallback);
    if (!fallback)
        return r;
    return call_method1((PyObject *)self, s_send_any, message);
}

static PyObject *core_send_text(Core *self, PyObject *text)
{
    int fallback = 1;
    PyObject *r = NULL;
    if (PyUnicode_CheckExact(text))
        r = send_text_fast(self, text, &fallback);
    if (!fallback)
        return r;
    return call_method1((PyObject *)self, s_send_text_py, text);
}

/* send_binary (opcode 2) and send_utf8 (opcode 1): the fast path for exact bytes, else the Python method named by
 * python_name (_send_binary_py, _send_utf8_py). */
static PyObject *send_bytes(Core *self, PyObject *data, int opcode, PyObject *python_name)
{
    int fallback = 1;
    PyObject *r = NULL;
    if (PyBytes_CheckExact(data))
        r = send_bytes_fast(self, data, opcode, &fallback);
    if (!fallback)
        return r;
    return call_method1((PyObject *)self, python_name, data);
}

static PyObject *core_send_binary(Core *self, PyObject *data)
{
    return send_bytes(self, data, 2, s_send_binary_py);
}

static PyObject *core_send_utf8(Core *self, PyObject *data)
{
    return send_bytes(self, data, 1, s_send_utf8_py);
}

/* offer_frame(frame, count=1, payload=None) -> bool */
static PyObject *core_offer_frame(Core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (self->fast && kwnames == NULL && nargs >= 1 && nargs <= 2 && PyBytes_CheckExact(args[0]) && on_loop(self)) {
        Py_ssize_t count = 1;
        if (nargs == 2) {
            count = PyLong_AsSsize_t(args[1]);
            if (count == -1 && PyErr_Occurred())
                return NULL;
        }
        int r = offer_fast(self, args[0], count);
        if (r < 0)
            return NULL;
        if (r == 0)
            Py_RETURN_FALSE;
        if (r == 1)
            Py_RETURN_TRUE;
    }
    PyObject *method = PyObject_GetAttr((PyObject *)self, s_offer_py);
    if (method == NULL)
        return NULL;
    PyObject *r = PyObject_Vectorcall(method, args, (size_t)nargs, kwnames);
    Py_DECREF(method);
    return r;
}

/* -- receiving ---------------------------------------------------------------------------------------------- */

typedef struct {
    int opcode;
    Py_ssize_t rawlen;
    PyObject *obj; /* str (text) or bytes (binary, or text for on_text_bytes) */
    PyObject *raw; /* text: its bytes when obj is the str and an event is built; else NULL */
} Msg;

/* The connection is open and its protocol at rest: nothing buffered, no message or frame in progress. -1 error. */
static int at_rest(Core *self)
{
    PyObject *proto = self->proto;
    PyObject *v = get_slot(proto, PROTO.type, PROTO.state, s_state);
    if (v == NULL)
        return -1;
    int ok = v == STATE_OPEN;
    Py_DECREF(v);
    if (!ok)
        return 0;
    v = get_slot(proto, PROTO.type, PROTO.buf, s_buf);
    if (v == NULL)
        return -1;
    ok = PyByteArray_CheckExact(v) && PyByteArray_GET_SIZE(v) == 0;
    Py_DECREF(v);
    if (!ok)
        return 0;
    v = get_slot(proto, PROTO.type, PROTO.stream, s_stream);
    if (v == NULL)
        return -1;
    ok = v == Py_None;
    Py_DECREF(v);
    if (!ok)
        return 0;
    v = get_slot(proto, PROTO.type, PROTO.msg_opcode, s_msg_opcode);
    if (v == NULL)
        return -1;
    ok = PyLong_CheckExact(v) && PyLong_AsLong(v) == 0;
    Py_DECREF(v);
    return ok;
}

/* A compressed frame's message (inflated into SCRATCH by z_inflate, len bytes) as build_messages makes a plain
 * one's: 1 made, 0 not valid UTF-8 (the Python path fails it), -1 error. */
static int inflated_message(Msg *m, const char *p, Py_ssize_t len, int want_bytes_text, int want_event)
{
    m->rawlen = len;
    if (m->opcode != 2 && !snow_utf8_valid(p, (size_t)len))
        return 0;
    if (m->opcode == 2 || (want_bytes_text && !want_event)) {
        m->obj = PyBytes_FromStringAndSize(p, len);
        return m->obj == NULL ? -1 : 1;
    }
    m->obj = PyUnicode_DecodeUTF8(p, len, NULL); /* valid: no exception */
    if (m->obj == NULL)
        return -1;
    if (want_event) {
        m->raw = PyBytes_FromStringAndSize(p, len);
        if (m->raw == NULL) {
            Py_CLEAR(m->obj);
            return -1;
        }
    }
    return 1;
}

/* Unmask and check the simple frames found in data (inflating the compressed ones); n_ok is how many make
 * messages (a text frame that is not valid UTF-8, or a compressed frame z_inflate does not take, ends the list:
 * the full parser answers for it). -1 error. */
static int build_messages(Core *self, const char *data, SnowSimpleFrame *frames, size_t nframes, Msg *msgs,
                          size_t *n_ok)
{
    char stack[4096];
    int want_bytes_text = self->on_text_bytes != Py_None;
    int want_event = !self->direct;
    size_t i;
    *n_ok = 0;
    for (i = 0; i < nframes; i++) {
        const SnowSimpleFrame *f = &frames[i];
        const char *key = data + f->offset - 4;
        Py_ssize_t len = (Py_ssize_t)f->length;
        Msg *m = &msgs[i];
        m->opcode = f->opcode;
        m->rawlen = len;
        m->raw = NULL;
        if (f->compressed) {
            if (Z_BUSY)
                break;
            size_t out_len;
            Z_BUSY = 1; /* until the message is copied out of SCRATCH (no Python code runs meanwhile) */
            int r = z_inflate(self, data + f->offset, f->length, key, &out_len);
            if (r == 1)
                r = inflated_message(m, SCRATCH, (Py_ssize_t)out_len, want_bytes_text, want_event);
            Z_BUSY = 0;
            if (r < 0)
                return -1;
            if (r == 0)
                break;
        } else if (f->opcode == 2 || want_bytes_text || want_event) {
            PyObject *b = PyBytes_FromStringAndSize(NULL, len);
            if (b == NULL)
                return -1;
            snow_mask_copy(data + f->offset, f->length, key, PyBytes_AS_STRING(b));
            if (f->opcode == 2) {
                m->obj = b;
            } else if (!snow_utf8_valid(PyBytes_AS_STRING(b), f->length)) {
                Py_DECREF(b);
                break;
            } else if (!want_event) {
                m->obj = b;
            } else {
                m->obj = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(b), len, NULL);
                if (m->obj == NULL) {
                    Py_DECREF(b);
                    return -1;
                }
                m->raw = b;
            }
        } else {
            char *buf = len <= (Py_ssize_t)sizeof(stack) ? stack : PyMem_Malloc((size_t)len);
            if (buf == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            snow_mask_copy(data + f->offset, f->length, key, buf);
            m->obj = PyUnicode_DecodeUTF8(buf, len, NULL);
            if (buf != stack)
                PyMem_Free(buf);
            if (m->obj == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                    return -1;
                PyErr_Clear();
                break;
            }
        }
        (*n_ok)++;
    }
    return 0;
}

/* The message as Scheduler.deliver's payload: TextMessage(str, bytes) for text, the bytes for binary. */
static PyObject *message_payload(Core *self, Msg *m)
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
    (void)self;
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

typedef int64_t (*NativeOnMessage)(const void *target, uint64_t conn, const char *data, size_t len, int64_t budget,
                                  int64_t plain_max);

/* CHandler.on_text_bytes in C: the C program's on_message, with the library's reply fast path armed (budget: what
 * may be queued now), then its buffered replies queued as one offer. NULL with an exception on failure. */
static PyObject *call_native(Core *self, PyObject *raw)
{
    PyObject *native = self->native;
    NativeOnMessage fn = (NativeOnMessage)PyLong_AsVoidPtr(PyTuple_GET_ITEM(native, 0));
    const void *target = PyLong_AsVoidPtr(PyTuple_GET_ITEM(native, 1));
    PyObject *buffer = PyTuple_GET_ITEM(native, 2);
    int64_t budget = -1;
    /* replies encoded in C are plain frames: with permessage-deflate, those of compression_min_size bytes or more
     * go the Python way, which compresses them (plain_max) */
    int64_t plain_max = self->deflate == Py_None ? -1 : (int64_t)self->z_min;
    if (PyTuple_GET_ITEM(native, 3) == Py_True && self->phase == PHASE_OPEN) {
        Py_ssize_t queued = queued_bytes(self);
        if (queued < 0)
            return NULL;
        budget = queued < self->max_queue_bytes ? (int64_t)(self->max_queue_bytes - queued) : 0;
    }
    const char *data = PyBytes_AS_STRING(raw);
    size_t len = (size_t)PyBytes_GET_SIZE(raw);
    uint64_t conn = (uint64_t)self->id;
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
        int r = self->fast && on_loop(self) ? offer_fast(self, frames, count) : 2;
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
static int behave(Core *self, Msg *m)
{
    PyObject *r = Py_None;
    Py_INCREF(r);
    if (PyUnicode_Check(self->handler_state) && PyUnicode_GET_LENGTH(self->handler_state) == 0) {
        Py_DECREF(r);
        if (m->opcode == 1 && self->native != Py_None) {
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
        PyObject *h = call_method0((PyObject *)self, s_handled);
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

/* One message to the connection's actor: Scheduler.deliver, with its inline case (an idle actor with an empty
 * mailbox, no workers, on the loop thread: run now) done here. -1 error. */
static int dispatch(Core *self, Msg *m)
{
    PyObject *actor = self->actor;
    self->messages_in++;
    self->inbox_given += m->rawlen;
    if (self->direct) {
        /* Scheduler.deliver checks and sets actor.running under actor._lock; other threads only ever deliver
         * (append to the mailbox, then look at running) under that lock. This check-and-set runs no Python code,
         * so under the GIL it happens between two of their steps, and every interleaving ends with the message
         * run: whoever sees the other's mark leaves it the work. */
        PyObject *alive = get_slot(actor, ACTOR.type, ACTOR.alive, s_alive);
        if (alive == NULL)
            return -1;
        Py_DECREF(alive);
        if (alive != Py_True)
            return 0; /* the actor has exited: the message is dropped (deliver returns False) */
        PyObject *running = get_slot(actor, ACTOR.type, ACTOR.running, s_running);
        if (running == NULL)
            return -1;
        Py_DECREF(running);
        PyObject *mailbox = get_slot(actor, ACTOR.type, ACTOR.mailbox, s_mailbox);
        if (mailbox == NULL)
            return -1;
        int empty = mailbox == Py_None || PyObject_Length(mailbox) == 0;
        Py_DECREF(mailbox);
        if (running == Py_False && empty) {
            if (set_slot(actor, ACTOR.type, ACTOR.running, s_running, Py_True) < 0)
                return -1;
            if (behave(self, m) < 0)
                return -1;
            mailbox = get_slot(actor, ACTOR.type, ACTOR.mailbox, s_mailbox);
            if (mailbox == NULL)
                return -1;
            empty = mailbox == Py_None || PyObject_Length(mailbox) == 0;
            Py_DECREF(mailbox);
            if (empty)
                return set_slot(actor, ACTOR.type, ACTOR.running, s_running, Py_False);
            /* messages arrived meanwhile (e.g. to itself): run them, then idle */
            PyObject *run_args[4] = {NULL, self->scheduler, actor, Py_None};
            PyObject *r = PyObject_VectorcallMethod(s_run, run_args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
            return 0;
        }
    }
    PyObject *payload = message_payload(self, m);
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

static PyObject *core_data_received(Core *self, PyObject *data)
{
    if (!self->fast || self->linger_left > 0 || self->phase != PHASE_OPEN || self->actor == Py_None ||
        !PyBytes_CheckExact(data))
        return call_method1((PyObject *)self, s_receive, data);
    int rest_state = at_rest(self);
    if (rest_state < 0)
        return NULL;
    if (!rest_state)
        return call_method1((PyObject *)self, s_receive, data);

    const char *bytes = PyBytes_AS_STRING(data);
    size_t n = (size_t)PyBytes_GET_SIZE(data), consumed = 0, n_ok = 0, i;
    size_t max_payload = self->max_message_size < FAST_PAYLOAD_MAX ? (size_t)self->max_message_size : FAST_PAYLOAD_MAX;
    SnowSimpleFrame frames[MAX_FRAMES];
    Msg msgs[MAX_FRAMES];
    /* RSV1 frames too when the client keeps no context and our decompressor's window is z_inflate's */
    int rsv1 = self->z_in_bits == INFLATE_BITS;
    size_t nframes = snow_scan_simple(bytes, n, max_payload, rsv1, frames, MAX_FRAMES, &consumed);
    if (nframes == 0)
        return call_method1((PyObject *)self, s_receive, data);
    if (build_messages(self, bytes, frames, nframes, msgs, &n_ok) < 0) {
        for (i = 0; i < n_ok; i++) {
            Py_DECREF(msgs[i].obj);
            Py_XDECREF(msgs[i].raw);
        }
        return NULL;
    }
    if (n_ok < nframes) /* the frame that stopped the list starts where the last good one ends */
        consumed = n_ok ? frames[n_ok - 1].offset + frames[n_ok - 1].length : 0;

    /* The rest of the read (a frame cut by the read, a control frame, ...) is parsed now, before any message is
     * handled, as the Python path parses a whole read first: the events are the same. */
    PyObject *events = NULL;
    int failed = 0;
    if (consumed < n) {
        PyObject *rest = PyBytes_FromStringAndSize(bytes + consumed, (Py_ssize_t)(n - consumed));
        if (rest == NULL) {
            failed = 1;
        } else {
            events = call_method1(self->proto, s_receive_data, rest);
            Py_DECREF(rest);
            if (events == NULL)
                failed = 1;
        }
    }
    Py_ssize_t count = (Py_ssize_t)n_ok;
    self->in_read = 1;
    for (i = 0; i < n_ok; i++) {
        if (!failed) {
            if (dispatch(self, &msgs[i]) < 0) {
                failed = 1;
            } else if (self->inbox_given - self->inbox_done > self->inbox_high && !self->paused_in) {
                self->paused_in = 1; /* the handler is behind: let TCP hold the rest */
                PyObject *r = call_method0((PyObject *)self, s_update_reading);
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
            PyObject *r = call_method1((PyObject *)self, s_handle, events);
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
    PyObject *r = Py_None;
    Py_INCREF(r);
    if (queued) {
        Py_DECREF(r);
        if (count <= 1 || queued >= FLUSH_NOW) {
            r = core_flush(self, NULL);
        } else {
            self->flush_pending = 1;
            r = call_method1(self->server, s_schedule_flush, (PyObject *)self);
        }
    }
    if (failed) {
        Py_XDECREF(r);
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    return r == NULL ? NULL : (Py_DECREF(r), Py_NewRef(Py_None));
}

/* -- fan-out ------------------------------------------------------------------------------------------------ */

/* flush_dirty(dirty): Server._flush_dirty's loop: pop every connection of the deque and write what it queued (the
 * C _flush for a ConnectionCore, its _flush method otherwise), until the deque is empty. */
static PyObject *flush_dirty(PyObject *module, PyObject *dirty)
{
    (void)module;
    for (;;) {
        Py_ssize_t n = PyObject_Length(dirty);
        if (n < 0)
            return NULL;
        if (n == 0)
            Py_RETURN_NONE;
        PyObject *conn = PyObject_CallMethodNoArgs(dirty, s_popleft);
        if (conn == NULL)
            return NULL;
        PyObject *r = PyObject_TypeCheck(conn, &CoreType) ? core_flush((Core *)conn, NULL)
                                                          : PyObject_CallMethodNoArgs(conn, s_flush);
        Py_DECREF(conn);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
}


/* fanout(targets, frame, except_conn[, count[, write_now]]) -> failures: RoomRegistry's member loop,
 * offer_frame(frame, count) for every connection of the list but except_conn (count: the messages frame holds,
 * joined frames from another node); the C path for each one it can take, offer_frame otherwise. write_now: each
 * member's queue is written as soon as the frame is queued, instead of by the flush at the end of the loop
 * iteration (so the first member does not wait for the whole room to be queued). */
static PyObject *fanout(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs < 3 || nargs > 5 || !PyList_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fanout(list, bytes, except_conn[, count[, write_now]])");
        return NULL;
    }
    PyObject *targets = args[0], *frame = args[1], *except_conn = args[2];
    Py_ssize_t count = 1; /* messages in frame (joined frames) */
    if (nargs >= 4) {
        count = PyLong_AsSsize_t(args[3]);
        if (count == -1 && PyErr_Occurred())
            return NULL;
    }
    int write_now = nargs == 5 ? PyObject_IsTrue(args[4]) : 0;
    if (write_now < 0)
        return NULL;
    PyObject *count_obj = NULL; /* made once, for members off the fast path */
    Py_ssize_t failures = 0;
    unsigned long me = PyThread_get_thread_ident();
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(targets); i++) {
        PyObject *conn = PyList_GET_ITEM(targets, i);
        if (conn == except_conn)
            continue;
        int r = 2;
        if (PyObject_TypeCheck(conn, &CoreType)) {
            Core *core = (Core *)conn;
            if (core->fast && core->loop_thread == me) {
                Py_INCREF(conn);
                r = offer_fast(core, frame, count);
                if (r == 1 && write_now) { /* written now, not at the end of the loop iteration */
                    PyObject *done = core_flush(core, NULL);
                    r = done == NULL ? -1 : 1;
                    Py_XDECREF(done);
                }
                Py_DECREF(conn);
            }
        }
        if (r == 2) {
            PyObject *ok = NULL;
            if (count == 1)
                ok = PyObject_CallMethodOneArg(conn, s_offer_frame, frame);
            else if (count_obj != NULL || (count_obj = PyLong_FromSsize_t(count)) != NULL)
                ok = PyObject_CallMethodObjArgs(conn, s_offer_frame, frame, count_obj, NULL);
            r = ok == NULL ? -1 : PyObject_IsTrue(ok);
            Py_XDECREF(ok);
        }
        if (r < 0) {
            Py_XDECREF(count_obj);
            return NULL;
        }
        if (r == 0)
            failures++;
    }
    Py_XDECREF(count_obj);
    return PyLong_FromSsize_t(failures);
}

/* -- module ------------------------------------------------------------------------------------------------- */

static PyMethodDef core_methods[] = {
    {"data_received", (PyCFunction)core_data_received, METH_O, "asyncio.Protocol.data_received (see the module)."},
    {"send", (PyCFunction)core_send, METH_O, "send_text for str, send_binary for bytes-like."},
    {"send_text", (PyCFunction)core_send_text, METH_O, "Queue a text message (see Connection.send_text)."},
    {"send_binary", (PyCFunction)core_send_binary, METH_O, "Queue a binary message (see Connection.send_binary)."},
    {"send_utf8", (PyCFunction)core_send_utf8, METH_O, "Queue a text message given as UTF-8 bytes (see Connection.send_utf8)."},
    {"offer_frame", (PyCFunction)(void (*)(void))core_offer_frame, METH_FASTCALL | METH_KEYWORDS,
     "Queue a data frame unless closing or full (see Connection._offer_py)."},
    {"_flush", (PyCFunction)core_flush, METH_NOARGS, "Write the output FIFO (loop thread)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "snow_rt_py.runtime._hotpath.ConnectionCore",
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
    PyObject *phase_open, *phase_closed, *state_open, *tag_text, *tag_binary, *text_message;
    PyTypeObject *proto_type, *actor_type;
    if (!PyArg_ParseTuple(args, "OOOOOOO!O!", &phase_open, &phase_closed, &state_open, &tag_text, &tag_binary,
                          &text_message, &PyType_Type, &proto_type, &PyType_Type, &actor_type))
        return NULL;
    ProtoSlots proto = {proto_type, slot_offset(proto_type, "state"), slot_offset(proto_type, "_buf"),
                        slot_offset(proto_type, "_stream"), slot_offset(proto_type, "_msg_opcode"),
                        slot_offset(proto_type, "close_sent")};
    ActorSlots actor = {actor_type, slot_offset(actor_type, "alive"), slot_offset(actor_type, "running"),
                        slot_offset(actor_type, "mailbox")};
    if (PyErr_Occurred())
        return NULL;
    Py_INCREF(proto_type);
    Py_INCREF(actor_type);
    Py_XDECREF(PROTO.type);
    Py_XDECREF(ACTOR.type);
    PROTO = proto;
    ACTOR = actor;
    Py_XSETREF(PHASE_OPEN, Py_NewRef(phase_open));
    Py_XSETREF(PHASE_CLOSED, Py_NewRef(phase_closed));
    Py_XSETREF(STATE_OPEN, Py_NewRef(state_open));
    Py_XSETREF(TAG_TEXT, Py_NewRef(tag_text));
    Py_XSETREF(TAG_BINARY, Py_NewRef(tag_binary));
    Py_XSETREF(TEXT_MESSAGE, Py_NewRef(text_message));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"flush_dirty", flush_dirty, METH_O, "flush_dirty(deque): Server._flush_dirty's loop (see _hotpath.c)."},
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(targets, frame, except_conn[, count[, write_now]]) -> failures: queue frame (count messages) for "
     "every connection but except_conn."},
    {"configure", configure, METH_VARARGS,
     "configure(Phase.OPEN, Phase.CLOSED, State.OPEN, Tag.TEXT, Tag.BINARY, TextMessage, ServerProtocol, Actor): "
     "the objects the fast path compares with and builds, and the classes whose slots it reads (called once by "
     "runtime/connection.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "snow_rt_py.runtime._hotpath", "The runtime's per-message path in C (see _hotpath.c).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

#define INTERN(var, text)                                                                                       \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                                       \
        return NULL;

PyMODINIT_FUNC PyInit__hotpath(void)
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
    INTERN(s_state, "state")
    INTERN(s_buf, "_buf")
    INTERN(s_stream, "_stream")
    INTERN(s_msg_opcode, "_msg_opcode")
    INTERN(s_close_sent, "close_sent")
    INTERN(s_alive, "alive")
    INTERN(s_running, "running")
    INTERN(s_mailbox, "mailbox")
    INTERN(s_run, "_run")
    INTERN(s_crashed, "_crashed")
    INTERN(s_deliver, "deliver")
    INTERN(s_on_message, "on_message")
    INTERN(s_receive_data, "receive_data")
    INTERN(s_offer_frame, "offer_frame")
    INTERN(s_min_size, "min_size")
    INTERN(s_flush_scheduled, "_flush_scheduled")
    INTERN(s_dirty, "_dirty")
    INTERN(s_append, "append")
    INTERN(s_popleft, "popleft")
    INTERN(s_flush, "_flush")
    INTERN(s_hot_path, "hot_path")
    if (PyType_Ready(&CoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "ConnectionCore", (PyObject *)&CoreType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
