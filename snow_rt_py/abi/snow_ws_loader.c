/* libsnow_ws.so, the library a C program links: it finds the Python runtime from where it is, then hands every call
 * to the runtime's library.
 *
 * Two shared objects sit side by side in snow_rt_py/lib/ (the package's own folder, in a wheel as in a clone):
 *   libsnow_ws.so       this loader. It needs nothing of Python, so a program linked with it always starts, and
 *                       it exports every function of include/snow_ws.h as a forwarder (snow_ws_forward.c, which
 *                       build_ffi.py generates from the header).
 *   _snow_ws_embed.so   the runtime's library (cffi embedding mode: the C wrappers of snow_ws_api.c and the files
 *                       after it, and the embedded interpreter). It is not linked with libpython, like a Python
 *                       extension module: its Python symbols come from the libpython this loader loaded first, or
 *                       from the process that already runs Python (a Python program that loaded this library).
 *
 * On the first call that needs the runtime, the loader works out, from its own real path (dladdr, then realpath:
 * a symlink such as `make install`'s PREFIX/lib/libsnow_ws.so leads back to the package) and never from a path
 * written at build time:
 *   - the package: <dir>/../ is snow_rt_py (it has abi/exports.py), so <dir>/../.. goes first on sys.path;
 *   - the Python to run as: $SNOW_WS_PYTHON if set; else, when the package sits in <prefix>/lib/pythonX.Y/
 *     site-packages (a venv or a Python installation), <prefix>/bin/pythonX.Y; else the python of the build tree's
 *     venv, a path relative to this library written by an in-place build (SNOW_LD_TREE_PYTHON: `make build`);
 *   - libpython (unless the process has it already): <home>/../lib/<soname> for the home named in the venv's
 *     pyvenv.cfg, then <prefix>/lib/<soname> of the python's real path, then the soname alone (the system's
 *     search: /etc/ld.so.cache, LD_LIBRARY_PATH). A pyenv Python keeps libpython3.X.so in its own prefix, which no
 *     rpath relative to this library can name once the package sits in a venv elsewhere: hence found at run time.
 * $SNOW_WS_PYTHONPATH (entries separated by ':') is added to sys.path after the package's folder.
 * When something is missing the call fails with SNOW_WS_E_INIT and snow_ws_last_error() says what was looked for;
 * every later call gives the same answer. The "(no runtime)" functions answer without any of this.
 *
 * Baked in by build_ffi.py (snow_ws_loader_config.h, names only, no paths): SNOW_LD_PY_VERSION ("3.11"),
 * SNOW_LD_LIBPYTHON (libpython's soname, "" for a Python without one), SNOW_LD_IMPL (the runtime library's file
 * name), SNOW_LD_TREE_PYTHON ("" except in a build tree) and SNOW_LD_VERSION_NUMBER.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SNOW_WS_BUILDING
#include "snow_ws_common.h"
#include "snow_ws_loader.h"
#include "snow_ws_loader_config.h"

#define SNOW_LD_ERR_MAX 1024

int snow_ld_ready;
static pthread_once_t snow_ld_once = PTHREAD_ONCE_INIT;
static char snow_ld_reason[SNOW_LD_ERR_MAX]; /* why the runtime could not be loaded (set once) */

/* The calling thread's last error while the runtime is not loaded (afterwards the runtime's own is used). */
static __thread char snow_ld_err_msg[SNOW_LD_ERR_MAX];
static __thread int64_t snow_ld_err_code;

static void snow_ld_set_error(int64_t code, const char *msg)
{
    snprintf(snow_ld_err_msg, sizeof snow_ld_err_msg, "%s", msg);
    snow_ld_err_code = code;
}

/* -- building the message and the paths ------------------------------------------------------------------------ */

typedef struct SnowLdText {
    char buf[SNOW_LD_ERR_MAX];
    size_t len;
} SnowLdText;

static void snow_ld_add(SnowLdText *t, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (t->len >= sizeof t->buf - 1)
        return;
    va_start(ap, fmt);
    n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len = t->len + (size_t)n < sizeof t->buf ? t->len + (size_t)n : sizeof t->buf - 1;
}

/* dst = the directory part of src ("" when there is none). */
static void snow_ld_dirname(char *dst, const char *src)
{
    const char *slash = strrchr(src, '/');
    size_t n = slash != NULL ? (size_t)(slash - src) : 0;
    memmove(dst, src, n);
    dst[n] = '\0';
}

static const char *snow_ld_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

static int snow_ld_join(char *dst, const char *dir, const char *name)
{
    int n = snprintf(dst, PATH_MAX, "%s/%s", dir, name);
    return n > 0 && n < PATH_MAX;
}

/* The "home = DIR" line of PREFIX/pyvenv.cfg, or 0. */
static int snow_ld_venv_home(const char *prefix, char *home)
{
    char cfg[PATH_MAX], line[PATH_MAX + 16];
    FILE *f;
    int found = 0;
    if (!snow_ld_join(cfg, prefix, "pyvenv.cfg") || (f = fopen(cfg, "r")) == NULL)
        return 0;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        char *key = line, *value = strchr(line, '='), *end;
        if (value == NULL)
            continue;
        *value++ = '\0';
        while (*key == ' ' || *key == '\t')
            key++;
        for (end = value - 2; end >= key && (*end == ' ' || *end == '\t'); end--)
            *end = '\0';
        if (strcmp(key, "home") != 0)
            continue;
        value += strspn(value, " \t");
        value[strcspn(value, "\r\n")] = '\0';
        found = snprintf(home, PATH_MAX, "%s", value) < PATH_MAX;
    }
    fclose(f);
    return found;
}

/* -- finding the runtime ---------------------------------------------------------------------------------------- */

typedef struct SnowLdFound {
    char library[PATH_MAX]; /* this library's real path */
    char dir[PATH_MAX];     /* its directory: snow_rt_py/lib */
    char entry[PATH_MAX];   /* the sys.path entry holding snow_rt_py ("" if the package is not next to us) */
    char python[PATH_MAX];  /* the program to configure the interpreter as ("" if none was found) */
} SnowLdFound;

static int snow_ld_executable(const char *path)
{
    return path[0] != '\0' && access(path, X_OK) == 0;
}

/* Where is the package, and which python runs it? Appends what was looked for to `looked`. */
static void snow_ld_find_python(SnowLdFound *f, SnowLdText *looked)
{
    static const char *const names[] = {"python" SNOW_LD_PY_VERSION, "python3", "python"};
    const char *env = getenv("SNOW_WS_PYTHON");
    char pkg[PATH_MAX], probe[PATH_MAX], up[PATH_MAX], bin[PATH_MAX];
    size_t i;

    snow_ld_dirname(pkg, f->dir);
    if (snow_ld_join(probe, pkg, "abi/exports.py") && access(probe, R_OK) == 0)
        snow_ld_dirname(f->entry, pkg);
    else
        snow_ld_add(looked, "the package snow_rt_py at %s (not there); ", pkg);

    if (env != NULL && env[0] != '\0') {
        if (snow_ld_executable(env))
            snprintf(f->python, sizeof f->python, "%s", env);
        else
            snow_ld_add(looked, "SNOW_WS_PYTHON=%s (not an executable); ", env);
        return;
    }
    snow_ld_add(looked, "SNOW_WS_PYTHON (not set); ");
    /* <prefix>/lib/pythonX.Y/site-packages (dist-packages and lib/python3 on Debian) */
    if (f->entry[0] != '\0') {
        const char *base = snow_ld_basename(f->entry);
        snow_ld_dirname(up, f->entry);
        if ((strcmp(base, "site-packages") == 0 || strcmp(base, "dist-packages") == 0) &&
            (strcmp(snow_ld_basename(up), "python" SNOW_LD_PY_VERSION) == 0 ||
             strcmp(snow_ld_basename(up), "python3") == 0)) {
            snow_ld_dirname(up, up); /* <prefix>/lib */
            snow_ld_dirname(up, up); /* <prefix> */
            for (i = 0; i < sizeof names / sizeof names[0]; i++) {
                if (snow_ld_join(bin, up, "bin") && snow_ld_join(probe, bin, names[i]) &&
                    snow_ld_executable(probe)) {
                    snprintf(f->python, sizeof f->python, "%s", probe);
                    return;
                }
            }
            snow_ld_add(looked, "%s/bin/python" SNOW_LD_PY_VERSION " (missing); ", up);
        } else {
            snow_ld_add(looked, "a Python prefix around %s (not lib/python" SNOW_LD_PY_VERSION "/site-packages); ",
                        f->entry);
        }
    }
    if (SNOW_LD_TREE_PYTHON[0] != '\0') {
        if (snow_ld_join(probe, f->dir, SNOW_LD_TREE_PYTHON) && snow_ld_executable(probe)) {
            snprintf(f->python, sizeof f->python, "%s", probe);
            return;
        }
        snow_ld_add(looked, "the build tree's %s (missing); ", probe);
    }
}

/* dlopen libpython (RTLD_GLOBAL: the runtime's library and every extension module take their symbols from it). */
static int snow_ld_open_libpython(const SnowLdFound *f, SnowLdText *looked)
{
    char candidates[3][PATH_MAX], home[PATH_MAX], up[PATH_MAX], real[PATH_MAX];
    int n = 0, i;

    if (SNOW_LD_LIBPYTHON[0] == '\0') {
        snow_ld_add(looked, "a shared libpython (the Python this library was built with has none); ");
        return -1;
    }
    if (f->python[0] != '\0') {
        snow_ld_dirname(up, f->python);
        snow_ld_dirname(up, up);
        if (snow_ld_venv_home(up, home)) {
            snow_ld_dirname(up, home);
            if (snow_ld_join(candidates[n], up, "lib/" SNOW_LD_LIBPYTHON))
                n++;
        }
        if (realpath(f->python, real) != NULL) {
            snow_ld_dirname(up, real);
            snow_ld_dirname(up, up);
            if (snow_ld_join(candidates[n], up, "lib/" SNOW_LD_LIBPYTHON) && (n == 0 || strcmp(candidates[0], candidates[n]) != 0))
                n++;
        }
    }
    snprintf(candidates[n++], PATH_MAX, "%s", SNOW_LD_LIBPYTHON);
    for (i = 0; i < n; i++) {
        if (strchr(candidates[i], '/') != NULL && access(candidates[i], R_OK) != 0) {
            snow_ld_add(looked, "%s (missing); ", candidates[i]);
            continue;
        }
        if (dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL) != NULL)
            return 0;
        snow_ld_add(looked, "%s (%s); ", candidates[i], dlerror());
    }
    return -1;
}

/* Is a Python of the right version in the process already? 1 yes, 0 no, -1 one of another version. */
static int snow_ld_python_in_process(SnowLdText *looked)
{
    const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
    const char *v;
    if (version == NULL)
        return 0;
    v = version();
    if (strncmp(v, SNOW_LD_PY_VERSION ".", strlen(SNOW_LD_PY_VERSION ".")) == 0)
        return 1;
    snow_ld_add(looked, "this process already runs Python %.12s, but the library was built for Python "
                        SNOW_LD_PY_VERSION "; ", v);
    return -1;
}

static void snow_ld_fail(SnowLdText *looked, const char *what)
{
    size_t n = looked->len;
    while (n > 0 && (looked->buf[n - 1] == ' ' || looked->buf[n - 1] == ';'))
        n--;
    looked->buf[n] = '\0';
    snprintf(snow_ld_reason, sizeof snow_ld_reason, "libsnow_ws.so could not %s; looked for: %.880s. Set SNOW_WS_PYTHON "
             "to the python" SNOW_LD_PY_VERSION " of an environment where snow_rt_py is installed", what, looked->buf);
}

static void snow_ld_open(void)
{
    static SnowLdFound f;
    SnowLdText looked = {{0}, 0};
    Dl_info info;
    const char *missing, *extra = getenv("SNOW_WS_PYTHONPATH");
    char impl[PATH_MAX], path[2 * PATH_MAX];
    int (*configure)(const char *, const char *);
    int in_process;
    void *handle;

    if (dladdr((void *)&snow_ld_open, &info) == 0 || info.dli_fname == NULL ||
        realpath(info.dli_fname, f.library) == NULL) {
        snprintf(snow_ld_reason, sizeof snow_ld_reason, "libsnow_ws.so could not find its own path (dladdr)");
        return;
    }
    snow_ld_dirname(f.dir, f.library);
    snow_ld_find_python(&f, &looked);
    in_process = snow_ld_python_in_process(&looked);
    if (in_process < 0) {
        snow_ld_fail(&looked, "use the Python of this process");
        return;
    }
    if (!in_process && f.python[0] == '\0') {
        snow_ld_fail(&looked, "find its Python runtime");
        return;
    }
    if (!in_process && snow_ld_open_libpython(&f, &looked) != 0) {
        snow_ld_fail(&looked, "load libpython");
        return;
    }
    if (!snow_ld_join(impl, f.dir, SNOW_LD_IMPL) || (handle = dlopen(impl, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        snow_ld_add(&looked, "%s (%s)", impl, dlerror());
        snow_ld_fail(&looked, "load the runtime's library");
        return;
    }
    configure = (int (*)(const char *, const char *))dlsym(handle, "snow_abi_configure");
    if (configure == NULL || (missing = snow_ld_resolve(handle)) != NULL) {
        snow_ld_add(&looked, "%s in %s (missing)", configure == NULL ? "snow_abi_configure" : missing, impl);
        snow_ld_fail(&looked, "use the runtime's library");
        return;
    }
    snprintf(path, sizeof path, "%s%s%s", f.entry, f.entry[0] != '\0' && extra != NULL && extra[0] != '\0' ? ":" : "",
             extra != NULL ? extra : "");
    configure(f.python, path);
    __atomic_store_n(&snow_ld_ready, 1, __ATOMIC_RELEASE);
}

/* 1 if the runtime is loaded (loading it on the first call), else 0; leaves the last error alone. */
static int snow_ld_try(void)
{
    pthread_once(&snow_ld_once, snow_ld_open);
    return __atomic_load_n(&snow_ld_ready, __ATOMIC_ACQUIRE);
}

int snow_ld_load_slow(void)
{
    if (snow_ld_try())
        return 0;
    snow_ld_set_error(SNOW_WS_E_INIT, snow_ld_reason);
    return -1;
}

/* -- the "(no runtime)" functions: they answer whether or not the runtime can be loaded -------------------------- */

SNOW_WS_API const char *snow_ws_last_error(void)
{
    if (__atomic_load_n(&snow_ld_ready, __ATOMIC_ACQUIRE))
        return snow_fw_snow_ws_last_error();
    return snow_ld_err_msg;
}

SNOW_WS_API int64_t snow_ws_last_error_code(void)
{
    if (__atomic_load_n(&snow_ld_ready, __ATOMIC_ACQUIRE))
        return snow_fw_snow_ws_last_error_code();
    return snow_ld_err_code;
}

SNOW_WS_API const char *snow_ws_strerror(int64_t code)
{
    return snow_common_strerror(code);
}

SNOW_WS_API int64_t snow_ws_version_number(void)
{
    return SNOW_LD_VERSION_NUMBER;
}

/* Never fails: without a runtime no snow_ws_serve or snow_ws_wait_shutdown can be blocked (0 woken). */
SNOW_WS_API int64_t snow_ws_shutdown(void)
{
    if (snow_ld_try())
        return snow_fw_snow_ws_shutdown();
    return 0;
}

/* The runtime's own strings when it is loaded; plain malloc/free (the same as the runtime's) when it cannot be. */
SNOW_WS_API SnowString *snow_string_new(const char *data, uint64_t len)
{
    if (snow_ld_try())
        return snow_fw_snow_string_new(data, len);
    return snow_common_string_new(data, len, snow_ld_set_error);
}

SNOW_WS_API void snow_string_free(SnowString *s)
{
    if (__atomic_load_n(&snow_ld_ready, __ATOMIC_ACQUIRE))
        snow_fw_snow_string_free(s);
    else
        free(s);
}
