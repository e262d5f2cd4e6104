/* The fields of ConnectionCore, shared by the two files of the connection's C part (_connection_core.c: the type,
 * receiving and dispatch; _connection_out.c: sending, the outbound queue and its flush). Internal. */

#ifndef SNOW_CONNECTION_FIELDS_H
#define SNOW_CONNECTION_FIELDS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

typedef struct {
    PyObject_HEAD
    PyObject *phase;         /* runtime.connection.Phase */
    PyObject *out;           /* list: the protocol's outgoing FIFO */
    PyObject *transport;     /* asyncio transport, or None */
    PyObject *actor;         /* runtime.scheduler.Actor, or None before the upgrade */
    PyObject *proto;         /* protocol.connection.ServerProtocol */
    PyObject *handler_state; /* str: "" while the handler takes messages */
    PyObject *server;
    PyObject *handler;
    PyObject *on_text_bytes; /* callable or None */
    PyObject *scheduler;
    PyObject *native;        /* (target, reply buffer, armed) set by the C ABI's handler, or None */
    PyObject *deflate;       /* runtime.compression.ConnectionDeflate, or None */
    unsigned long long id;
    Py_ssize_t out_bytes;
    Py_ssize_t linger_left;
    Py_ssize_t max_queue_bytes;
    Py_ssize_t max_message_size;
    Py_ssize_t messages_in;
    Py_ssize_t messages_out;
    Py_ssize_t bytes_out;
    Py_ssize_t inbox_given;
    Py_ssize_t inbox_done;
    Py_ssize_t inbox_high;
    /* permessage-deflate sends, from deflate.hot_path when _deflate is set (see core_set_deflate); 0 without it */
    Py_ssize_t z_min;  /* compression_min_size: shorter messages go out plain */
    int z_out_bits;    /* raw window of the compressor when we keep no context, else 0 */
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

/* Set once by configure() (runtime/connection.py, at import): what the C part compares with and builds, and the
 * constants whose one definition is in Python (runtime/outbound.py). */
extern PyObject *PHASE_OPEN, *PHASE_CLOSED, *TAG_TEXT, *TAG_BINARY, *TEXT_MESSAGE;
extern Py_ssize_t SEPARATE_PAYLOAD_MIN, FLUSH_NOW;
extern PyTypeObject CoreType;

/* Interned method and attribute names (made at the module's init). */
extern PyObject *s_receive, *s_send_any, *s_send_text_py, *s_send_binary_py, *s_send_utf8_py, *s_send_frame,
    *s_offer_py, *s_flush_py, *s_handle, *s_handled, *s_update_reading, *s_get_write_buffer_size, *s_write,
    *s_writelines, *s_schedule_flush, *s_run, *s_crashed, *s_deliver, *s_on_message, *s_receive_data,
    *s_offer_frame, *s_flush_scheduled, *s_dirty, *s_append, *s_popleft, *s_flush, *s_hot_path;

static inline int on_loop(Core *self)
{
    return PyThread_get_thread_ident() == self->loop_thread;
}

/* _connection_out.c */
int snow_out_init(void);
Py_ssize_t snow_queued_bytes(Core *self);
int snow_queue_admits(Core *self, Py_ssize_t queued, Py_ssize_t size);
int snow_offer_fast(Core *self, PyObject *frame, Py_ssize_t count);
PyObject *snow_core_flush(Core *self, PyObject *unused);
PyObject *snow_core_send(Core *self, PyObject *message);
PyObject *snow_core_send_text(Core *self, PyObject *text);
PyObject *snow_core_send_binary(Core *self, PyObject *data);
PyObject *snow_core_send_utf8(Core *self, PyObject *data);
PyObject *snow_core_offer_frame(Core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *snow_core_flush_all(PyObject *cls, PyObject *dirty);
PyObject *snow_core_offer_all(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);

#endif
