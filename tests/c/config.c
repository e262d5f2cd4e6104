/* Which configuration the library's embedded runtime runs (the C parts, or the pure-Python reference with
 * SNOW_RT_PY_NO_SPEEDUPS=1): after snow_ws_init, a few lines of Python run in the library's own interpreter print
 * what its modules chose at import. Test-only: the interpreter's C API is looked up with dlsym, which no user
 * program needs. */
#include <dlfcn.h>

#include "testlib.h"

typedef int (*GilEnsureFn)(void);
typedef void (*GilReleaseFn)(int);
typedef int (*RunStringFn)(const char *);

static const char REPORT[] =
    "import sys\n"
    "from snow_rt_py.protocol import mask, utf8\n"
    "from snow_rt_py.protocol import core\n"
    "from snow_rt_py.runtime import connection_base, scheduler\n"
    "print('runtime loaded by init:', 'snow_rt_py.abi.exports' in sys.modules)\n"
    "print('C protocol:', core.C_PROTOCOL)\n"
    "print('C scheduler:', scheduler.C_SCHEDULER)\n"
    "print('C connection:', connection_base.C_CONNECTION)\n"
    "print('masking accelerator:', mask.HAVE_SPEEDUPS)\n"
    "print('UTF-8 accelerator:', utf8._lib is not None)\n"
    "print('C fan-out:', connection_base.offer_all is not None)\n"
    "print('C flush:', connection_base.flush_all is not None)\n"
    "sys.stdout.flush()\n";

int main(void)
{
    GilEnsureFn ensure;
    GilReleaseFn release;
    RunStringFn run;
    int state, rc;

    result("init", snow_ws_init());
    ensure = (GilEnsureFn)dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
    release = (GilReleaseFn)dlsym(RTLD_DEFAULT, "PyGILState_Release");
    run = (RunStringFn)dlsym(RTLD_DEFAULT, "PyRun_SimpleString");
    if (ensure == NULL || release == NULL || run == NULL) {
        out("the embedded interpreter's C API is not reachable: %s", dlerror());
        return 1;
    }
    state = ensure();
    rc = run(REPORT);
    release(state);
    out("report -> %d", rc);
    return rc == 0 ? 0 : 1;
}
