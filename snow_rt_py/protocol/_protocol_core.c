/* The protocol layer's C part: snow_rt_py.protocol._protocol_core (build_ffi.py, target "speedups").
 *
 * ProtocolCore is the base class of protocol.connection.ServerProtocol. It owns the fields the fast receive looks
 * at -- state, close_sent, _buf, _stream, _msg_opcode, _max_message_size, _inflater -- as C members under the
 * attribute names the Python code uses, so ServerProtocol reads and writes them unchanged; with
 * SNOW_RT_PY_NO_SPEEDUPS=1 (or unbuilt) protocol/core.py's PyProtocolCore holds the same fields as __slots__.
 *
 * Its C API (_protocol_core.h, a capsule) is what the runtime's C part calls for one read of whole simple frames:
 * the frame scan, unmasking, the UTF-8 check and the bounded inflate of a compressed frame (take_simple), and the
 * encoding of a reply, compressed or not (encode, encode_deflated). Each of these decides only the common case;
 * everything the rules may have to answer is left, unconsumed, to ServerProtocol.receive_data (the reference), so
 * the two give the same events for any input in any chunking (tests/runtime/test_hotpath.py).
 *
 * permessage-deflate: the zlib state here is the process's, not a connection's -- one decompressor, a few
 * compressors (one per window / strategy / level / memLevel in use) and one scratch buffer, each reset by a full
 * flush after every message, so a connection holds no zlib state between messages, as in the Python path. It is
 * used with the GIL held and never across a call into Python; Z_BUSY makes a re-entrant user (none is expected)
 * take the Python path instead. What is held: the decompressor's 32 KiB window plus ~7 KiB, each compressor's
 * zlib state (256 KiB with window 15 and memLevel 8), and the scratch buffer, up to INFLATE_MAX + 1 bytes. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stddef.h>
#include <string.h>
#include <zlib.h>

#include "_protocol_core.h"

/* The protocol's C functions without state (masking, UTF-8, frame headers, the simple-frame scan), also compiled
 * into snow_rt_py._speedups and libsnow_ws.so: one translation unit with this file. */
#include "_codec.c"

#define FAST_PAYLOAD_MAX 65535 /* 7- and 16-bit lengths; larger frames go to the full parser */

typedef struct {
    PyObject_HEAD
    PyObject *state;      /* protocol.connection.State */
    PyObject *buf;        /* bytearray: unparsed input */
    PyObject *stream;     /* a large frame's payload still arriving, or None */
    PyObject *inflater;   /* protocol.deflate.Inflater, or None */
    int msg_opcode;       /* the fragmented message in progress (0: none) */
    char close_sent;      /* a Close frame was sent */
    int in_bits;          /* the inflater's raw window when it keeps no context between messages, else 0 */
    Py_ssize_t max_message_size;
} Core;

static PyObject *STATE_OPEN; /* State.OPEN, set by configure() */
static PyObject *s_stateless_window_bits;

static PyMemberDef core_members[] = {
    {"state", T_OBJECT, offsetof(Core, state), 0, NULL},
    {"_buf", T_OBJECT, offsetof(Core, buf), 0, NULL},
    {"_stream", T_OBJECT, offsetof(Core, stream), 0, NULL},
    {"_msg_opcode", T_INT, offsetof(Core, msg_opcode), 0, NULL},
    {"close_sent", T_BOOL, offsetof(Core, close_sent), 0, NULL},
    {"_max_message_size", T_PYSSIZET, offsetof(Core, max_message_size), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

/* _inflater: setting it also reads Inflater.stateless_window_bits once, so no message looks it up. */
static PyObject *core_get_inflater(Core *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->inflater != NULL ? self->inflater : Py_None);
}

static int core_set_inflater(Core *self, PyObject *value, void *closure)
{
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_inflater cannot be deleted");
        return -1;
    }
    long bits = 0;
    if (value != Py_None) {
        PyObject *v = PyObject_GetAttr(value, s_stateless_window_bits);
        if (v == NULL)
            return -1;
        bits = PyLong_AsLong(v);
        Py_DECREF(v);
        if (bits == -1 && PyErr_Occurred())
            return -1;
    }
    Py_XSETREF(self->inflater, Py_NewRef(value));
    self->in_bits = (int)bits;
    return 0;
}

static PyGetSetDef core_getset[] = {
    {"_inflater", (getter)core_get_inflater, (setter)core_set_inflater,
     "permessage-deflate's decompressor (protocol.deflate.Inflater), or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    Core *self = (Core *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->state = Py_NewRef(Py_None);
    self->buf = Py_NewRef(Py_None);
    self->stream = Py_NewRef(Py_None);
    self->inflater = Py_NewRef(Py_None);
    return (PyObject *)self;
}

static int core_traverse(Core *self, visitproc visit, void *arg)
{
    Py_VISIT(self->state);
    Py_VISIT(self->buf);
    Py_VISIT(self->stream);
    Py_VISIT(self->inflater);
    return 0;
}

static int core_clear(Core *self)
{
    Py_CLEAR(self->state);
    Py_CLEAR(self->buf);
    Py_CLEAR(self->stream);
    Py_CLEAR(self->inflater);
    return 0;
}

static void core_dealloc(Core *self)
{
    PyObject_GC_UnTrack(self);
    core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "snow_rt_py.protocol._protocol_core.ProtocolCore",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The fields of a ServerProtocol that its C fast receive reads (see the module).",
    .tp_new = core_new,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_members = core_members,
    .tp_getset = core_getset,
};

/* -- permessage-deflate (RFC 7692) ------------------------------------------------------------------------- */

#define INFLATE_BITS 15         /* the only decompressor window this path inflates with (see z_inflate) */
#define INFLATE_MAX (256 << 10) /* a message that inflates to more is left to the Python path */
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
 * 00 00 ff ff tail appended (RFC 7692 §7.2.2), producing at most min(limit, INFLATE_MAX) + 1 bytes: 1 with the
 * message in SCRATCH[0..*out_len); 0 for anything irregular -- more than that, data that is not valid deflate, a
 * deflate stream that ends (a final block: the Python path decides what may follow it), no memory -- for which
 * nothing is decided here: the Python path inflates the frame again and answers (1009, 1007, ...). The caller
 * holds Z_BUSY.
 *
 * Only with a 15-bit window: a smaller one (client_max_window_bits) is enforced by zlib only across its calls, so
 * a back-reference past it could pass here and fail in Python; with 15 bits every distance deflate can express is
 * in the window, and zlib's answer does not depend on how the output is cut. */
static int z_inflate(size_t limit, const char *data, size_t len, const char *key, size_t *out_len)
{
    if (limit > INFLATE_MAX)
        limit = INFLATE_MAX;
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

static PyObject *encode_deflated(int opcode, const char *data, Py_ssize_t len, int bits, int rle, int level,
                                 int mem_level, Py_ssize_t max_payload)
{
    if (Z_BUSY || bits < 9 || bits > 15 || level < 0 || level > 9 || mem_level < 1 || mem_level > 9)
        return NULL;
    Deflater *d = deflater(bits, rle, level, mem_level);
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
        if ((Py_ssize_t)(out - 4) < max_payload) {
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

/* -- receiving ---------------------------------------------------------------------------------------------- */

/* proto is a ProtocolCore. ServerProtocol is a subclass, so the exact type that last passed is remembered (one
 * pointer compare instead of a walk of the MRO on every read). */
static PyTypeObject *LAST_TYPE;

static inline int is_core(PyObject *proto)
{
    PyTypeObject *t = Py_TYPE(proto);
    if (t == LAST_TYPE)
        return 1;
    if (!PyType_IsSubtype(t, &CoreType))
        return 0;
    Py_XSETREF(LAST_TYPE, (PyTypeObject *)Py_NewRef(t));
    return 1;
}

/* Open, nothing buffered, no message or frame in progress. */
static int at_rest(Core *p)
{
    return p->state == STATE_OPEN && PyByteArray_CheckExact(p->buf) && PyByteArray_GET_SIZE(p->buf) == 0 &&
           p->stream == Py_None && p->msg_opcode == 0;
}

/* A message's objects from its checked payload p[0..len) (valid UTF-8 if text). 0, or -1 with an exception. */
static int make_message(SnowMessage *m, const char *p, Py_ssize_t len, int text_form)
{
    m->rawlen = len;
    m->raw = NULL;
    if (m->opcode == 2 || text_form == SNOW_TEXT_BYTES) {
        m->obj = PyBytes_FromStringAndSize(p, len);
        return m->obj == NULL ? -1 : 0;
    }
    m->obj = PyUnicode_DecodeUTF8(p, len, NULL); /* valid: no exception but MemoryError */
    if (m->obj == NULL)
        return -1;
    if (text_form == SNOW_TEXT_BOTH) {
        m->raw = PyBytes_FromStringAndSize(p, len);
        if (m->raw == NULL) {
            Py_CLEAR(m->obj);
            return -1;
        }
    }
    return 0;
}

/* A plain frame's message: unmasked straight into its object where the object is bytes, checked on the way. 1
 * made, 0 not valid UTF-8 (left to the Python path), -1 error. */
static int plain_message(SnowMessage *m, const char *data, const SnowSimpleFrame *f, int text_form)
{
    const char *key = data + f->offset - 4;
    Py_ssize_t len = (Py_ssize_t)f->length;
    m->rawlen = len;
    m->raw = NULL;
    if (f->opcode == 2 || text_form != SNOW_TEXT_STR) {
        PyObject *b = PyBytes_FromStringAndSize(NULL, len);
        if (b == NULL)
            return -1;
        snow_mask_copy(data + f->offset, f->length, key, PyBytes_AS_STRING(b));
        if (f->opcode == 2 || text_form == SNOW_TEXT_BYTES) {
            if (f->opcode == 1 && !snow_utf8_valid(PyBytes_AS_STRING(b), f->length)) {
                Py_DECREF(b);
                return 0;
            }
            m->obj = b;
            return 1;
        }
        /* SNOW_TEXT_BOTH: the decoder is the check */
        m->obj = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(b), len, NULL);
        if (m->obj == NULL) {
            Py_DECREF(b);
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                return -1;
            PyErr_Clear();
            return 0;
        }
        m->raw = b;
        return 1;
    }
    char stack[4096];
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
        return 0;
    }
    return 1;
}

static Py_ssize_t take_simple(PyObject *proto, const char *data, size_t len, int text_form, SnowMessage *msgs,
                              size_t max_msgs, size_t *consumed)
{
    Core *p = (Core *)proto;
    *consumed = 0;
    if (!is_core(proto) || !at_rest(p))
        return 0;
    SnowSimpleFrame frames[SNOW_SIMPLE_MAX];
    if (max_msgs > SNOW_SIMPLE_MAX)
        max_msgs = SNOW_SIMPLE_MAX;
    size_t limit = (size_t)p->max_message_size;
    size_t max_payload = limit < FAST_PAYLOAD_MAX ? limit : FAST_PAYLOAD_MAX;
    /* RSV1 frames too when the client keeps no context and our decompressor's window is z_inflate's */
    int rsv1 = p->in_bits == INFLATE_BITS;
    size_t scanned = 0;
    size_t nframes = snow_scan_simple(data, len, max_payload, rsv1, frames, max_msgs, &scanned);
    size_t n = 0;
    for (; n < nframes; n++) {
        const SnowSimpleFrame *f = &frames[n];
        SnowMessage *m = &msgs[n];
        m->opcode = f->opcode;
        int r;
        if (f->compressed) {
            if (Z_BUSY)
                break;
            size_t out_len;
            Z_BUSY = 1; /* until the message is copied out of SCRATCH (no Python code runs meanwhile) */
            r = z_inflate(limit, data + f->offset, f->length, data + f->offset - 4, &out_len);
            if (r == 1 && f->opcode == 1 && !snow_utf8_valid(SCRATCH, out_len))
                r = 0;
            if (r == 1)
                r = make_message(m, SCRATCH, (Py_ssize_t)out_len, text_form) < 0 ? -1 : 1;
            Z_BUSY = 0;
        } else {
            r = plain_message(m, data, f, text_form);
        }
        if (r < 0) {
            for (size_t i = 0; i < n; i++) {
                Py_DECREF(msgs[i].obj);
                Py_XDECREF(msgs[i].raw);
            }
            return -1;
        }
        if (r == 0)
            break;
    }
    /* the frame that stopped the list starts where the last good one ends */
    *consumed = n == nframes ? scanned : (n ? frames[n - 1].offset + frames[n - 1].length : 0);
    return (Py_ssize_t)n;
}

static int close_sent(PyObject *proto)
{
    if (is_core(proto))
        return ((Core *)proto)->close_sent;
    PyObject *v = PyObject_GetAttrString(proto, "close_sent");
    int r = v == NULL ? -1 : PyObject_IsTrue(v);
    Py_XDECREF(v);
    return r;
}

static int utf8_valid(const char *data, size_t len)
{
    return snow_utf8_valid(data, len);
}

static const SnowProtocolAPI API = {
    SNOW_PROTOCOL_API_VERSION, &CoreType, take_simple, close_sent, encode, encode_deflated, utf8_valid,
};

/* -- large payloads arriving in pieces (protocol/mask.py: MaskedPayload) ------------------------------------ */

/* payload_buffer(n): a new bytes object of n bytes, not initialised. Only the protocol's MaskedPayload makes one,
 * and it fills every byte with mask_into before the object is handed to anyone: the payload is unmasked straight
 * into the message's own object, with no scratch buffer and no final copy. */
static PyObject *payload_buffer(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "payload_buffer: negative length");
        return NULL;
    }
    return PyBytes_FromStringAndSize(NULL, n);
}

/* mask_into(dst, offset, src, start, count, key): unmask src[start:start+count] into dst[offset:offset+count] with
 * the 4-byte key, rotated by offset (the payload's position of that octet). dst must come from payload_buffer. */
static PyObject *mask_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6 || !PyBytes_CheckExact(args[0]) || !PyBytes_CheckExact(args[5]) || PyBytes_GET_SIZE(args[5]) != 4) {
        PyErr_SetString(PyExc_TypeError, "mask_into(dst: bytes, offset, src, start, count, key: 4 bytes)");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]), start = PyLong_AsSsize_t(args[3]), count = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred())
        return NULL;
    Py_buffer src;
    if (PyObject_GetBuffer(args[2], &src, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *dst = args[0];
    if (offset < 0 || start < 0 || count < 0 || offset > PyBytes_GET_SIZE(dst) - count || start > src.len - count) {
        PyBuffer_Release(&src);
        PyErr_SetString(PyExc_ValueError, "mask_into: out of bounds");
        return NULL;
    }
    const char *k = PyBytes_AS_STRING(args[5]);
    char key[4];
    for (int i = 0; i < 4; i++)
        key[i] = k[(offset + i) & 3];
    snow_mask_copy((const char *)src.buf + start, (size_t)count, key, PyBytes_AS_STRING(dst) + offset);
    PyBuffer_Release(&src);
    Py_RETURN_NONE;
}

/* -- module ------------------------------------------------------------------------------------------------- */

static PyObject *configure(PyObject *module, PyObject *state_open)
{
    (void)module;
    Py_XSETREF(STATE_OPEN, Py_NewRef(state_open));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"payload_buffer", payload_buffer, METH_O, "payload_buffer(n): n bytes to fill with mask_into (see above)."},
    {"mask_into", (PyCFunction)(void (*)(void))mask_into, METH_FASTCALL,
     "mask_into(dst, offset, src, start, count, key): unmask into a payload_buffer."},
    {"configure", configure, METH_O,
     "configure(State.OPEN): the state take_simple compares with (called once by protocol/connection.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "snow_rt_py.protocol._protocol_core",
    "The protocol layer's C part: ServerProtocol's base class and its C API (see _protocol_core.c).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__protocol_core(void)
{
    if ((s_stateless_window_bits = PyUnicode_InternFromString("stateless_window_bits")) == NULL)
        return NULL;
    if (PyType_Ready(&CoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    PyObject *capsule = PyCapsule_New((void *)&API, SNOW_PROTOCOL_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(m, "_C_API", capsule) < 0 ||
        PyModule_AddObjectRef(m, "ProtocolCore", (PyObject *)&CoreType) < 0 ||
        PyModule_AddIntConstant(m, "SIMPLE_PAYLOAD_MAX", FAST_PAYLOAD_MAX) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
