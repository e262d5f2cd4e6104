/* Internal (not installed): the "(no runtime)" helpers both shared objects of the C ABI need: the runtime's library
 * (snow_ws_api.c) and the loader (snow_ws_loader.c), which answers them while the runtime cannot be loaded. */
#ifndef SNOW_WS_COMMON_H
#define SNOW_WS_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snow_ws.h"

/* snow_ws_strerror: the message of a SNOW_WS_ERRORS code. */
static inline const char *snow_common_strerror(int64_t code)
{
    switch (code) {
#define SNOW_COMMON_ERROR_CASE_(name, value, message) \
    case value:                                       \
        return message;
        SNOW_WS_ERRORS(SNOW_COMMON_ERROR_CASE_)
#undef SNOW_COMMON_ERROR_CASE_
    default:
        return "unknown error code";
    }
}

/* snow_string_new: a malloc'ed copy, or NULL after set_error(code, message). */
static inline SnowString *snow_common_string_new(const char *data, uint64_t len,
                                                 void (*set_error)(int64_t code, const char *msg))
{
    SnowString *s;
    if (data == NULL && len > 0) {
        set_error(SNOW_WS_E_INVALID_ARGUMENT, "snow_string_new: data is NULL");
        return NULL;
    }
    if (len > (uint64_t)INT64_MAX - sizeof(SnowString)) {
        set_error(SNOW_WS_E_INVALID_ARGUMENT, "snow_string_new: len is too large");
        return NULL;
    }
    s = malloc(sizeof(SnowString) + (size_t)len);
    if (s == NULL) {
        set_error(SNOW_WS_E_INTERNAL, "snow_string_new: out of memory");
        return NULL;
    }
    s->len = len;
    if (len > 0)
        memcpy(s + 1, data, (size_t)len);
    return s;
}

#endif /* SNOW_WS_COMMON_H */
