/* The protocol layer's C API, for the runtime's C (runtime/_connection_core.c): internal, not installed.
 *
 * snow_rt_py.protocol._protocol_core (protocol/_protocol_core.c) defines ProtocolCore, the C base class of
 * protocol.connection.ServerProtocol, which owns the fields its fast receive looks at, and exports the functions
 * below in a capsule (the CPython way for one extension module to call another: "Providing a C API for an
 * Extension Module"). This header is the one declaration of that table; a module that uses it calls
 * snow_protocol_import() once, at its own import. */

#ifndef SNOW_PROTOCOL_CORE_H
#define SNOW_PROTOCOL_CORE_H

#include <Python.h>

#define SNOW_PROTOCOL_CAPSULE "snow_rt_py.protocol._protocol_core._C_API"
#define SNOW_PROTOCOL_API_VERSION 1

/* The most simple frames one take_simple call returns (the rest of the read goes to ServerProtocol.receive_data). */
#define SNOW_SIMPLE_MAX 64

/* How take_simple makes a text message's objects. */
enum {
    SNOW_TEXT_STR = 0,   /* obj: the str */
    SNOW_TEXT_BYTES = 1, /* obj: the validated UTF-8 bytes (a handler that takes text as bytes) */
    SNOW_TEXT_BOTH = 2,  /* obj: the str, raw: its bytes (an events.TextMessage will be made of both) */
};

/* One whole message of one simple frame, unmasked, inflated and checked. The caller owns obj and raw. */
typedef struct {
    int opcode;        /* 1 text, 2 binary */
    Py_ssize_t rawlen; /* its payload's length in bytes (after inflating) */
    PyObject *obj;     /* str or bytes, see the SNOW_TEXT_* forms; bytes for binary */
    PyObject *raw;     /* with SNOW_TEXT_BOTH, the text's bytes; else NULL */
} SnowMessage;

typedef struct {
    int version;         /* SNOW_PROTOCOL_API_VERSION */
    PyTypeObject *type;  /* ProtocolCore; only its instances may be given to the functions below */
    /* The messages of the whole simple frames at the start of data, if the protocol is at rest (OPEN, nothing
     * buffered, no message or frame in progress): FIN data frames under 64 KiB that fit max_message_size,
     * compressed ones too when the inflater keeps no context (inflated, bounded by max_message_size). Anything
     * the rules may have to answer (invalid UTF-8, a control frame, a frame cut by the read, invalid deflate)
     * ends the list there, unconsumed: ServerProtocol.receive_data is the reference and decides. Fills
     * msgs[0..n) and *consumed (the bytes those frames took); returns n >= 0, or -1 with an exception. */
    Py_ssize_t (*take_simple)(PyObject *proto, const char *data, size_t len, int text_form, SnowMessage *msgs,
                              size_t max_msgs, size_t *consumed);
    /* 1 if a Close frame was sent (ServerProtocol.close_sent: the protocol orders the FIFO from then on). */
    int (*close_sent)(PyObject *proto);
    /* A data frame (FIN, no mask: the server's side) of data[0..len): a new bytes object, NULL with an exception. */
    PyObject *(*encode)(int opcode, const char *data, Py_ssize_t len);
    /* The compressed frame (RSV1) of a message, as runtime.compression's shared pool makes it: raw window bits,
     * strategy (rle), level and memLevel, a full flush, the 00 00 ff ff tail stripped (RFC 7692 §7.2.1). A new
     * bytes object; NULL with an exception on failure; NULL without one if this path cannot make it (zlib
     * refused, busy, a payload of max_payload bytes or more): the caller then takes the Python path. */
    PyObject *(*encode_deflated)(int opcode, const char *data, Py_ssize_t len, int bits, int rle, int level,
                                 int mem_level, Py_ssize_t max_payload);
    /* 1 if data[0..len) is valid UTF-8. */
    int (*utf8_valid)(const char *data, size_t len);
} SnowProtocolAPI;

/* Set by snow_protocol_import(). */
static const SnowProtocolAPI *snow_protocol_api;

/* Import the protocol's C API (once, at the importing module's init): 0, or -1 with an exception. */
static inline int snow_protocol_import(void)
{
    PyObject *module = PyImport_ImportModule("snow_rt_py.protocol._protocol_core"); /* PyCapsule_Import only looks the name up */
    if (module == NULL)
        return -1;
    Py_DECREF(module);
    snow_protocol_api = (const SnowProtocolAPI *)PyCapsule_Import(SNOW_PROTOCOL_CAPSULE, 0);
    if (snow_protocol_api == NULL)
        return -1;
    if (snow_protocol_api->version != SNOW_PROTOCOL_API_VERSION) {
        PyErr_Format(PyExc_ImportError, "%s: version %d, expected %d", SNOW_PROTOCOL_CAPSULE,
                     snow_protocol_api->version, SNOW_PROTOCOL_API_VERSION);
        snow_protocol_api = NULL;
        return -1;
    }
    return 0;
}

#endif
