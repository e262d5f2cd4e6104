/* The connection's C part, sending (compiled with _connection_core.c into snow_rt_py.runtime._connection_core):
 * the outbound queue's common case -- a frame under 64 KiB queued from the loop thread on an open connection --
 * and the write of the FIFO while our Close is not in it. The rules are Connection's (runtime/connection.py:
 * _offer_py, _flush_py, _send_*_py), which this file calls for everything else; the queue bound is decided once
 * here (snow_queue_admits) and once there (Connection._admits). */

#include <string.h>

#include "_connection_fields.h"
#include "protocol/_protocol_core.h"

/* This file's copy of the protocol's C API (the header's table is per translation unit): at the module's init. */
int snow_out_init(void)
{
    return snow_protocol_import();
}

/* Bytes queued and not yet accepted by the kernel: ours plus the transport's buffer. -1 with an exception. */
Py_ssize_t snow_queued_bytes(Core *self)
{
    Py_ssize_t queued = self->out_bytes;
    if (self->transport != Py_None) {
        PyObject *size = PyObject_CallMethodNoArgs(self->transport, s_get_write_buffer_size);
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

/* The queue bound (Connection._admits): a frame always fits an empty queue, else only within max_queue_bytes. */
int snow_queue_admits(Core *self, Py_ssize_t queued, Py_ssize_t size)
{
    return queued == 0 || queued + size <= self->max_queue_bytes;
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

/* offer_frame's common case (loop thread, one frame object): 1 queued; 0 refused because the connection is not
 * OPEN; 2 the queue bound refuses it (Connection._offer_py applies the slow-consumer policy); -1 error. */
int snow_offer_fast(Core *self, PyObject *frame, Py_ssize_t count)
{
    if (self->phase != PHASE_OPEN)
        return 0;
    Py_ssize_t queued = snow_queued_bytes(self);
    if (queued < 0)
        return -1;
    Py_ssize_t size = PyBytes_GET_SIZE(frame);
    if (!snow_queue_admits(self, queued, size))
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

/* Hand every queued frame to the transport in one write (loop thread): Connection._flush_py's common case; that
 * method once our Close is due (the protocol then orders the FIFO) or for a queued bytearray. */
PyObject *snow_core_flush(Core *self, PyObject *unused)
{
    (void)unused;
    if (!self->fast)
        return PyObject_CallMethodNoArgs((PyObject *)self, s_flush_py);
    self->flush_pending = 0;
    if (self->transport == Py_None || self->phase == PHASE_CLOSED)
        Py_RETURN_NONE;
    int closing = snow_protocol_api->close_sent(self->proto);
    if (closing < 0)
        return NULL;
    if (closing)
        return PyObject_CallMethodNoArgs((PyObject *)self, s_flush_py);
    PyObject *out = self->out;
    Py_ssize_t n = PyList_GET_SIZE(out);
    if (n == 0)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!PyBytes_CheckExact(PyList_GET_ITEM(out, i)))
            return PyObject_CallMethodNoArgs((PyObject *)self, s_flush_py);
    PyObject *r;
    if (n == 1) { /* the common case: one frame, written as it is */
        PyObject *data = Py_NewRef(PyList_GET_ITEM(out, 0));
        if (PyList_SetSlice(out, 0, 1, NULL) < 0) {
            Py_DECREF(data);
            return NULL;
        }
        Py_ssize_t rest = self->out_bytes - PyBytes_GET_SIZE(data);
        self->out_bytes = rest > 0 ? rest : 0;
        r = PyObject_CallMethodOneArg(self->transport, s_write, data);
        Py_DECREF(data);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
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
        PyObject *data = PyBytes_FromStringAndSize(NULL, total);
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
        r = PyObject_CallMethodOneArg(self->transport, s_write, data);
        Py_DECREF(data);
    } else { /* large payloads: not copied */
        r = PyObject_CallMethodOneArg(self->transport, s_writelines, items);
    }
    Py_DECREF(items);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* -- sending ------------------------------------------------------------------------------------------------ */

/* Queue an encoded frame from the fast path, or let the Python path say why not (it raises). */
static PyObject *queue_or_refuse(Core *self, PyObject *frame)
{
    int r = snow_offer_fast(self, frame, 1);
    if (r == 1)
        Py_RETURN_NONE;
    if (r < 0)
        return NULL;
    return PyObject_CallMethodOneArg((PyObject *)self, s_send_frame, frame); /* raises ConnectionClosedError... */
}

/* After encode_message: queue the frame (a reference taken), or take the Python path (*fallback stays 1) when
 * there is no frame and no exception. */
static PyObject *queue_encoded(Core *self, PyObject *frame, int *fallback)
{
    if (frame == NULL && !PyErr_Occurred())
        return NULL;
    *fallback = 0;
    if (frame == NULL)
        return NULL;
    PyObject *r = queue_or_refuse(self, frame);
    Py_DECREF(frame);
    return r;
}

/* A message's frame on the fast path: plain, or compressed from compression_min_size bytes on when the connection
 * has permessage-deflate. NULL with an exception on failure, without one to take the Python path (a message we
 * compress with our own context -- dedicated mode, whose compress-and-queue step is ordered under a lock -- or one
 * the protocol's C does not compress). */
static PyObject *encode_message(Core *self, int opcode, const char *data, Py_ssize_t len)
{
    if (self->deflate == Py_None || len < self->z_min)
        return snow_protocol_api->encode(opcode, data, len);
    if (!self->z_out_bits)
        return NULL;
    return snow_protocol_api->encode_deflated(opcode, data, len, self->z_out_bits, self->z_rle, self->z_level,
                                              self->z_mem_level, SEPARATE_PAYLOAD_MIN);
}

/* The fast path of send_text: NULL with no exception set and *fallback = 1 means "take the Python path". */
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
    return queue_encoded(self, frame, fallback);
}

/* The fast path of send_binary (opcode 2) and send_utf8 (opcode 1: text given as UTF-8 bytes, checked here; not
 * UTF-8 takes the Python path, which raises): as send_text_fast. */
static PyObject *send_bytes_fast(Core *self, PyObject *data, int opcode, int *fallback)
{
    *fallback = 1;
    if (!self->fast || self->phase != PHASE_OPEN || PyBytes_GET_SIZE(data) >= SEPARATE_PAYLOAD_MIN || !on_loop(self))
        return NULL;
    if (opcode == 1 && !snow_protocol_api->utf8_valid(PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data)))
        return NULL;
    PyObject *frame = encode_message(self, opcode, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    return queue_encoded(self, frame, fallback);
}

PyObject *snow_core_send(Core *self, PyObject *message)
{
    int fallback = 1;
    PyObject *r = NULL;
    if (PyUnicode_CheckExact(message))
        r = send_text_fast(self, message, &fallback);
    else if (PyBytes_CheckExact(message))
        r = send_bytes_fast(self, message, 2, &fallback);
    if (!fallback)
        return r;
    return PyObject_CallMethodOneArg((PyObject *)self, s_send_any, message);
}

PyObject *snow_core_send_text(Core *self, PyObject *text)
{
    int fallback = 1;
    PyObject *r = NULL;
    if (PyUnicode_CheckExact(text))
        r = send_text_fast(self, text, &fallback);
    if (!fallback)
        return r;
    return PyObject_CallMethodOneArg((PyObject *)self, s_send_text_py, text);
}

static PyObject *send_bytes(Core *self, PyObject *data, int opcode, PyObject *python_name)
{
    int fallback = 1;
    PyObject *r = NULL;
    if (PyBytes_CheckExact(data))
        r = send_bytes_fast(self, data, opcode, &fallback);
    if (!fallback)
        return r;
    return PyObject_CallMethodOneArg((PyObject *)self, python_name, data);
}

PyObject *snow_core_send_binary(Core *self, PyObject *data)
{
    return send_bytes(self, data, 2, s_send_binary_py);
}

PyObject *snow_core_send_utf8(Core *self, PyObject *data)
{
    return send_bytes(self, data, 1, s_send_utf8_py);
}

/* offer_frame(frame, count=1, payload=None) -> bool */
PyObject *snow_core_offer_frame(Core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (self->fast && kwnames == NULL && nargs >= 1 && nargs <= 2 && PyBytes_CheckExact(args[0]) && on_loop(self)) {
        Py_ssize_t count = 1;
        if (nargs == 2) {
            count = PyLong_AsSsize_t(args[1]);
            if (count == -1 && PyErr_Occurred())
                return NULL;
        }
        int r = snow_offer_fast(self, args[0], count);
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

/* -- many connections at once ------------------------------------------------------------------------------ */

/* ConnectionCore.flush_all(dirty): pop every connection of the deque and write what it queued (Server's
 * end-of-iteration flush), until the deque is empty. */
PyObject *snow_core_flush_all(PyObject *cls, PyObject *dirty)
{
    (void)cls;
    for (;;) {
        Py_ssize_t n = PyObject_Length(dirty);
        if (n < 0)
            return NULL;
        if (n == 0)
            Py_RETURN_NONE;
        PyObject *conn = PyObject_CallMethodNoArgs(dirty, s_popleft);
        if (conn == NULL)
            return NULL;
        PyObject *r = PyObject_TypeCheck(conn, &CoreType) ? snow_core_flush((Core *)conn, NULL)
                                                          : PyObject_CallMethodNoArgs(conn, s_flush);
        Py_DECREF(conn);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
}

/* ConnectionCore.offer_all(targets, frame, except_conn, count, write_now) -> failures: offer_frame(frame, count)
 * for every connection of the list but except_conn (a room's broadcast: count is the messages frame holds, joined
 * frames from another node). write_now: each member's queue is written as soon as the frame is queued, instead of
 * by the flush at the end of the loop iteration (so the first member does not wait for the whole room). */
PyObject *snow_core_offer_all(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != 5 || !PyList_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "offer_all(list, bytes, except_conn, count, write_now)");
        return NULL;
    }
    PyObject *targets = args[0], *frame = args[1], *except_conn = args[2], *count_obj = args[3];
    Py_ssize_t count = PyLong_AsSsize_t(count_obj);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    int write_now = PyObject_IsTrue(args[4]);
    if (write_now < 0)
        return NULL;
    Py_ssize_t failures = 0;
    unsigned long me = PyThread_get_thread_ident();
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(targets); i++) {
        PyObject *conn = PyList_GET_ITEM(targets, i);
        if (conn == except_conn)
            continue;
        int r = 2;
        Py_INCREF(conn);
        Core *core = PyObject_TypeCheck(conn, &CoreType) ? (Core *)conn : NULL;
        if (core != NULL && core->fast && core->loop_thread == me)
            r = snow_offer_fast(core, frame, count);
        if (r == 2) { /* the Python path: a full queue, another thread, a member with _fast off */
            PyObject *ok = PyObject_CallMethodObjArgs(conn, s_offer_frame, frame, count_obj, NULL);
            r = ok == NULL ? -1 : PyObject_IsTrue(ok);
            Py_XDECREF(ok);
        }
        /* written now, not at the end of the loop iteration: whichever path queued it (rooms._offer_all's rule) */
        if (r == 1 && write_now && core != NULL && core->loop_thread == me) {
            PyObject *done = snow_core_flush(core, NULL);
            r = done == NULL ? -1 : 1;
            Py_XDECREF(done);
        }
        Py_DECREF(conn);
        if (r < 0)
            return NULL;
        if (r == 0)
            failures++;
    }
    return PyLong_FromSsize_t(failures);
}
