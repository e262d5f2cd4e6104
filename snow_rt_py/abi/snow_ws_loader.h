/* Internal to libsnow_ws.so, the loader (not installed): what snow_ws_loader.c shares with the forwarders
 * build_ffi.py generates from include/snow_ws.h (snow_ws_forward.c). See snow_ws_loader.c for the design. */
#ifndef SNOW_WS_LOADER_H
#define SNOW_WS_LOADER_H

#include "snow_ws.h"

/* Set (release) once the runtime's library is loaded and every forwarder's target is resolved. */
extern int snow_ld_ready;

/* Find and load the runtime on the first call; 0 when loaded, -1 (the reason is the calling thread's last error,
 * SNOW_WS_E_INIT) when it cannot be. */
int snow_ld_load_slow(void);

static inline int snow_ld_load(void)
{
    if (__builtin_expect(__atomic_load_n(&snow_ld_ready, __ATOMIC_ACQUIRE), 1))
        return 0;
    return snow_ld_load_slow();
}

/* Generated: look every header function up in the runtime's library (dlopen handle); NULL when all were found,
 * else the name of the first one missing. */
const char *snow_ld_resolve(void *handle);

/* Generated: the runtime library's own functions (snow_fw_<name> for every header function), here the ones the
 * loader's own "(no runtime)" functions hand over to once the runtime is loaded. */
extern const char *(*snow_fw_snow_ws_last_error)(void);
extern int64_t (*snow_fw_snow_ws_last_error_code)(void);
extern SnowString *(*snow_fw_snow_string_new)(const char *data, uint64_t len);
extern void (*snow_fw_snow_string_free)(SnowString *s);
extern int64_t (*snow_fw_snow_ws_shutdown)(void);

#endif /* SNOW_WS_LOADER_H */
