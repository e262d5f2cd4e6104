/* The connection's C API for the C ABI library (snow_rt_py/abi/snow_ws_replies.c): internal, not installed.
 *
 * When a C program's on_message runs inline on the loop thread, the connection's C part
 * (runtime/_connection_core.c) calls it directly, with the library's reply fast path armed, instead of going
 * through Python. The library hands over that function once, C to C, through this table (a capsule of
 * snow_rt_py.runtime._connection_core); its type is declared here and nowhere else. A connection only keeps
 * which C callback to call (the library's opaque target) and its reply buffer: Connection._native. */

#ifndef SNOW_CONNECTION_CORE_H
#define SNOW_CONNECTION_CORE_H

#include <stddef.h>
#include <stdint.h>

#define SNOW_CONNECTION_CAPSULE "snow_rt_py.runtime._connection_core._C_API"
#define SNOW_CONNECTION_API_VERSION 1

/* on_message of connection conn with the reply fast path armed: target is the library's own (what it put in
 * Connection._native), budget what the outbound queue accepts now (-1: not armed), plain_max the size from which
 * a reply goes the Python way to be compressed (-1: none). Returns -1 out of memory, else the replies buffered in
 * the reply buffer as (frames << 32) | bytes (0: none). Called without the GIL. */
typedef int64_t (*SnowNativeOnMessage)(const void *target, uint64_t conn, const char *data, size_t len,
                                       int64_t budget, int64_t plain_max);

typedef struct {
    int version; /* SNOW_CONNECTION_API_VERSION */
    /* Register the library's on_message caller (once; the last one wins). 0. */
    int (*set_native_on_message)(SnowNativeOnMessage fn);
} SnowConnectionAPI;

#endif
