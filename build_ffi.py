"""Build the C parts of snow_rt_py with cffi (out-of-line API mode).

Usage::

    python build_ffi.py [TARGET ...]      # default: all

Targets:

* ``speedups`` -- the extension module ``snow_rt_py._speedups`` (RFC 6455 §5.3 masking at C speed, and the
  C UTF-8 check and frame header the tests compare with Python). The C source is the protocol layer's
  ``snow_rt_py/protocol/_codec.c`` (:data:`CODEC_SOURCE`); cffi writes its generated C and object files under
  ``build/`` and the finished ``_speedups.<abi>.so`` is moved into ``snow_rt_py/`` so the package imports it.
* ``hotpath`` -- the C parts of :data:`EXTENSIONS`, one per Python class they speed up, each in that class's
  folder: ``snow_rt_py.protocol._protocol_core`` (the base of ``ServerProtocol``, with the protocol's
  ``_codec.c``), ``snow_rt_py.runtime._scheduler_core`` (the base of ``Actor``) and
  ``snow_rt_py.runtime._connection_core`` (the base of ``Connection``); written against the CPython C API and
  compiled with setuptools' ``build_ext``; each installed beside its Python module.
* ``embedding`` -- ``build/libsnow_ws.so``, the C ABI of ``include/snow_ws.h`` (cffi embedding mode): a shared
  library that embeds the Python interpreter and runs this package. The header is the single source of truth:
  its declarations (minus preprocessor lines and comments) are the cdef, and its ``SNOW_WS_ERRORS`` list
  becomes the error enum seen by Python. The C wrappers live in three files of ``snow_rt_py/abi/``
  (:data:`EMBED_C_SOURCES`, concatenated in that order), the Python skin in ``snow_rt_py/abi/*.py``. The
  absolute paths of this repository, of the venv's python and of its site-packages are baked into the library,
  so C programs find the runtime with no PYTHONPATH or VIRTUAL_ENV; rebuild after moving the repository.
* ``all`` -- every target above, in order.

Each target is one function in :data:`TARGETS`; ``main()`` and ``all`` pick a new one up without further
changes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
BUILD_DIR = ROOT / "build"
PACKAGE_DIR = ROOT / "snow_rt_py"

# Appended after Python's own CFLAGS, so these win (gcc and clang keep the last -O).
EXTRA_COMPILE_ARGS = ["-O3", "-std=c99", "-Wall", "-Wextra"]


# ----------------------------------------------------------------------------------------------------------
# speedups: snow_rt_py._speedups
# ----------------------------------------------------------------------------------------------------------

SPEEDUPS_MODULE = "snow_rt_py._speedups"

# What Python sees (``lib.<name>``). Pointers are ``char *`` so that cffi accepts ``bytes`` and
# ``ffi.from_buffer(...)`` results directly, without a cast.
SPEEDUPS_CDEF = """
void snow_mask_copy(const char *src, size_t len, const char *key, char *dst);
void snow_mask_inplace(char *buf, size_t len, const char *key);
int snow_utf8_valid(const char *s, size_t n);
size_t snow_frame_header_size(uint64_t len);
size_t snow_frame_header(char *out, int opcode, uint64_t len);
"""

# The C source: the C half of the protocol layer, shared with the embedding target (its reply fast path).
CODEC_SOURCE = PACKAGE_DIR / "protocol" / "_codec.c"


def speedups_ffi() -> FFI:
    """The cffi builder of ``snow_rt_py._speedups`` (declarations and C source, not yet compiled)."""
    ffibuilder = FFI()
    ffibuilder.cdef(SPEEDUPS_CDEF)
    ffibuilder.set_source(SPEEDUPS_MODULE, CODEC_SOURCE.read_text(), extra_compile_args=EXTRA_COMPILE_ARGS)
    return ffibuilder


def build_speedups(verbose: bool) -> Path:
    """Compile ``snow_rt_py._speedups`` under ``build/`` and install the shared object into the package.

    Args:
        verbose: echo the compiler commands.

    Returns:
        The path of the installed extension module.
    """
    BUILD_DIR.mkdir(exist_ok=True)
    built = Path(speedups_ffi().compile(tmpdir=str(BUILD_DIR), verbose=verbose))
    return _install(built, PACKAGE_DIR / built.name)


def _install(built: Path, dest: Path) -> Path:
    """Copy ``built`` to ``dest`` atomically.

    A process that has the old shared object loaded keeps its mapping intact: the old file is replaced by a
    rename, never overwritten in place.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copy2(built, tmp_name)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest


# ----------------------------------------------------------------------------------------------------------
# hotpath: the C parts of the protocol, the scheduler and the connection (EXTENSIONS)
# ----------------------------------------------------------------------------------------------------------

# The C parts written against the CPython C API (cffi cannot define a Python class), one per Python class they
# speed up, each in that class's folder: (module, sources, libraries). Each C part's internal header (its C API
# for the next layer up, a capsule) sits beside it; sources include them as "protocol/..." and "runtime/...".
EXTENSIONS: tuple[tuple[str, tuple[Path, ...], tuple[str, ...]], ...] = (
    # ServerProtocol's base: the fast receive (frame scan, unmasking, UTF-8, bounded inflate; _codec.c is
    # included into it) and the encoding of replies, with zlib (permessage-deflate, RFC 7692)
    ("snow_rt_py.protocol._protocol_core", (PACKAGE_DIR / "protocol" / "_protocol_core.c",), ("z",)),
    # Actor's base: the mailbox, its marks and lock, and the rules that change them
    ("snow_rt_py.runtime._scheduler_core", (PACKAGE_DIR / "runtime" / "_scheduler_core.c",), ()),
    # Connection's base: one message's path through the connection, and its outbound queue
    (
        "snow_rt_py.runtime._connection_core",
        (PACKAGE_DIR / "runtime" / "_connection_core.c", PACKAGE_DIR / "runtime" / "_connection_out.c"),
        (),
    ),
)
EXTENSION_COMPILE_ARGS = ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]


def build_hotpath(verbose: bool) -> Path:
    """Compile every module of :data:`EXTENSIONS` with setuptools' ``build_ext`` under ``build/`` and install each
    into its package folder.

    Args:
        verbose: echo the compiler commands.

    Returns:
        The path of the last installed extension module.
    """
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    tmpdir = BUILD_DIR / "hotpath"
    # a changed header (a C API table, the fields) rebuilds too
    headers = sorted(str(h.relative_to(ROOT)) for h in PACKAGE_DIR.glob("*/_*.h"))
    exts = [
        Extension(
            name,
            [str(src.relative_to(ROOT)) for src in sources],
            include_dirs=[str(PACKAGE_DIR.relative_to(ROOT))],
            depends=[*headers, str(CODEC_SOURCE.relative_to(ROOT))],
            extra_compile_args=EXTENSION_COMPILE_ARGS,
            libraries=list(libraries),
        )
        for name, sources, libraries in EXTENSIONS
    ]
    cmd = build_ext(Distribution({"name": "snow_rt_py_c_parts", "ext_modules": exts}))
    cmd.build_lib = str(tmpdir / "lib")
    cmd.build_temp = str(tmpdir / "temp")
    cmd.verbose = verbose  # type: ignore[assignment]
    cmd.ensure_finalized()
    cwd = os.getcwd()
    os.chdir(ROOT)  # the sources are given relative to the repository (object paths stay under build_temp)
    try:
        cmd.run()
    finally:
        os.chdir(cwd)
    installed = PACKAGE_DIR
    for name, _, _ in EXTENSIONS:
        built = Path(cmd.get_ext_fullpath(name))
        installed = _install(built, PACKAGE_DIR.parent.joinpath(*name.split(".")[:-1]) / built.name)
    return installed


# ----------------------------------------------------------------------------------------------------------
# embedding: build/libsnow_ws.so
# ----------------------------------------------------------------------------------------------------------

HEADER = ROOT / "include" / "snow_ws.h"
# The C half of the library, by job, concatenated in this order (later files use what earlier ones define; the first
# declares what it uses from the later ones; snow_ws_api.c's header comment says what each holds).
EMBED_C_SOURCES = tuple(
    PACKAGE_DIR / "abi" / name
    for name in (
        "snow_ws_api.c",  # the last error, start-up, strings, argument checks
        "snow_ws_callbacks.c",  # calling the host's on_connect / on_close / on_presence
        "snow_ws_connections.c",  # the public wrappers for connections and rooms
        "snow_ws_servers.c",  # the public wrappers for servers
        "snow_ws_mesh.c",  # Mesh's names
        "snow_ws_replies.c",  # the reply fast path
        "snow_ws_wait.c",  # waiting for snow_ws_shutdown() or a signal
    )
)
EMBED_MODULE = "_snow_ws_abi"  # the name cffi gives the embedded module (import it from the init code)
EMBED_LIBRARY = BUILD_DIR / "libsnow_ws.so"
EMBED_COMPILE_ARGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden"]

# Internal declarations, not part of the header: the ``extern "Python"`` functions the C wrappers call (static in
# the library, not exported; implemented in snow_rt_py/abi/exports.py) and the C helpers Python calls.
EMBED_INTERNAL_CDEF = """
extern "Python" {
    int64_t snow_abi_py_send_text(uint64_t conn, const char *data, int64_t len);
    int64_t snow_abi_py_send_binary(uint64_t conn, const char *data, int64_t len);
    int64_t snow_abi_py_join(uint64_t conn, const char *room, int64_t room_len);
    int64_t snow_abi_py_leave(uint64_t conn, const char *room, int64_t room_len);
    int64_t snow_abi_py_broadcast(const char *room, int64_t room_len, const char *msg, int64_t msg_len,
                                  int64_t has_except, uint64_t except_conn);
    int64_t snow_abi_py_close(uint64_t conn, int64_t code, const char *reason, int64_t reason_len);
    int64_t snow_abi_py_start(const SnowWsOptions *opts, void *on_connect_fn, void *on_connect_env,
                              void *on_message_fn, void *on_message_env, void *on_close_fn, void *on_close_env);
    int64_t snow_abi_py_server_port(int64_t server);
    int64_t snow_abi_py_stop(int64_t server, int64_t timeout_ms);
    SnowString *snow_abi_py_header_get(uint64_t headers, const char *name);
    int64_t snow_abi_py_member_count(const char *room, int64_t room_len);
    int64_t snow_abi_py_rooms_of(uint64_t conn, SnowString **out, int64_t capacity);
    int64_t snow_abi_py_deliver(uint64_t conn, const char *frames, int64_t len, int64_t count);
    int64_t snow_abi_py_send_input(uint64_t conn);
    int64_t snow_abi_py_drain(int64_t server, int64_t timeout_ms);
    int64_t snow_abi_py_server_stats(int64_t server, SnowWsStats *out);
    SnowString *snow_abi_py_subprotocol(uint64_t conn);
    int64_t snow_abi_py_join_meta(uint64_t conn, const char *room, int64_t room_len, const char *meta,
                                  int64_t meta_len);
    int64_t snow_abi_py_presence(const char *room, int64_t room_len, SnowWsMember *out, int64_t capacity);
}

typedef struct SnowAbiTarget {
    void *fn;
    void *env;
} SnowAbiTarget;
void snow_abi_set_reply_buffer(char *buf, size_t cap);
int snow_abi_register_native(void);

void snow_abi_set_error(int64_t code, const char *msg);
void snow_abi_init_failed(const char *reason);
void snow_abi_mark_ready(const char *version);
int snow_abi_call_on_connect(void *fn, void *env, uint64_t conn, const char *path, size_t path_len,
                             uint64_t headers);
int64_t snow_abi_call_on_message(const SnowAbiTarget *t, uint64_t conn, const char *data, size_t len,
                                 int64_t budget, int64_t plain_max);
int64_t snow_abi_call_on_binary(const SnowAbiTarget *t, uint64_t conn, const char *data, size_t len,
                                int64_t budget, int64_t plain_max);
int snow_abi_call_on_close(void *fn, void *env, uint64_t conn, int64_t code, const char *reason,
                           size_t reason_len);
int snow_abi_call_on_presence(void *fn, void *env, uint64_t conn, const char *room, size_t room_len, int64_t joined,
                              uint64_t member, int64_t node, const char *meta, size_t meta_len);
"""

# Runs once, inside the embedded interpreter, when the library starts (cffi's embedding_init_code). It must never
# raise: it either attaches every ``extern "Python"`` function and, as its very last step, sets the C-side ready
# flag, or records why it could not (the C wrappers then return their error value with that reason).
EMBED_INIT_CODE = """\
import os
import sys

from {module} import ffi, lib

try:
    for _path in reversed({paths!r}):
        if _path not in sys.path:
            sys.path.insert(0, _path)
    if os.environ.get("SNOW_RT_PY_ABI_FAIL_IMPORT") == "1":  # test hook: prove the failure path
        raise ImportError("simulated failure to import snow_rt_py (test hook SNOW_RT_PY_ABI_FAIL_IMPORT=1)")
    from snow_rt_py.abi import exports

    exports.install(ffi, lib)
except BaseException as _exc:
    lib.snow_abi_init_failed(
        f"the embedded runtime could not start: {{type(_exc).__name__}}: {{_exc}}".encode("utf-8", "replace")
    )
else:
    lib.snow_abi_mark_ready(exports.VERSION.encode("ascii"))
"""

_ERROR_ITEM = re.compile(r'X\(\s*(\w+)\s*,\s*(-?\d+)\s*,\s*"((?:[^"\\]|\\.)*)"\s*\)')


def header_errors(text: str) -> list[tuple[str, int, str]]:
    """The ``(name, value, message)`` entries of the header's ``SNOW_WS_ERRORS(X)`` list, in order."""
    joined = text.replace("\\\n", " ")
    match = re.search(r"^#define SNOW_WS_ERRORS\(X\)(.*)$", joined, re.MULTILINE)
    if match is None:
        raise ValueError("include/snow_ws.h has no SNOW_WS_ERRORS(X) list")
    return [(name, int(value), message) for name, value, message in _ERROR_ITEM.findall(match.group(1))]


def header_version(text: str) -> str:
    """The ``SNOW_WS_VERSION`` of the header."""
    match = re.search(r'^#define SNOW_WS_VERSION "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise ValueError("include/snow_ws.h has no SNOW_WS_VERSION")
    return match.group(1)


def header_version_number(text: str) -> int:
    """The ``SNOW_WS_VERSION_NUMBER`` of the header."""
    match = re.search(r"^#define SNOW_WS_VERSION_NUMBER (\d+)\s*$", text, re.MULTILINE)
    if match is None:
        raise ValueError("include/snow_ws.h has no SNOW_WS_VERSION_NUMBER")
    return int(match.group(1))


def version_number(version: str) -> int:
    """``major * 10000 + minor * 100 + patch`` of a version such as ``"1.2.3"`` (a suffix such as ``rc1`` on the
    patch is ignored).

    Raises:
        ValueError: not three dot-separated numbers, or minor or patch over 99.
    """
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(part) for part in match.groups())
    if minor > 99 or patch > 99:
        raise ValueError(f"version {version!r}: minor and patch must be at most 99 to fit the version number")
    return major * 10000 + minor * 100 + patch


def header_cdef(text: str) -> str:
    """The header as cffi's cdef: comments, ``#ifdef __cplusplus`` blocks and preprocessor lines removed, and the
    X-macro expansion of the error enum (which cffi cannot expand) replaced by its items."""
    items = "".join(f"    {name} = {value},\n" for name, value, _ in header_errors(text))
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", "", text)
    text = text.replace("\\\n", " ")
    text = re.sub(r"^\s*#ifdef __cplusplus\n.*?^\s*#endif[^\n]*\n", "", text, flags=re.DOTALL | re.MULTILINE)
    text = re.sub(r"^\s*#[^\n]*\n?", "", text, flags=re.MULTILINE)
    text = re.sub(r"\bSNOW_WS_API\s+", "", text)  # the export macro (defined by the lines just removed)
    text, count = re.subn(r"SNOW_WS_ERRORS\(\w+\)", items, text)
    if count != 1:
        raise ValueError("include/snow_ws.h: expected one expansion of SNOW_WS_ERRORS in the error enum")
    return text


def package_version() -> str:
    """``snow_rt_py.__version__``, read from the source (the package is not imported here)."""
    match = re.search(r'^__version__ = "([^"]+)"', (PACKAGE_DIR / "__init__.py").read_text(), re.MULTILINE)
    if match is None:
        raise ValueError("snow_rt_py/__init__.py has no __version__")
    return match.group(1)


def embedding_ffi() -> FFI:
    """The cffi builder of ``libsnow_ws.so`` (declarations, C source and init code, not yet compiled)."""
    header = HEADER.read_text()
    if header_version(header) != package_version():
        raise SystemExit(
            f"include/snow_ws.h says SNOW_WS_VERSION {header_version(header)!r} but the package is "
            f"{package_version()!r}: update the header"
        )
    if header_version_number(header) != version_number(package_version()):
        raise SystemExit(
            f"include/snow_ws.h says SNOW_WS_VERSION_NUMBER {header_version_number(header)} but the package "
            f"{package_version()!r} is {version_number(package_version())}: update the header"
        )
    python = sys.executable  # not resolved: a venv's python is a symlink, and the venv is found from its path
    paths = [str(ROOT), sysconfig.get_paths()["purelib"]]
    libdir = sysconfig.get_config_var("LIBDIR")
    baked = (
        f"#define SNOW_ABI_PYTHON {_c_string(python)}\n"
        f"#define SNOW_ABI_VERSION_NUMBER {version_number(package_version())}\n\n"
    )

    ffibuilder = FFI()
    ffibuilder.cdef(header_cdef(header))
    ffibuilder.cdef(EMBED_INTERNAL_CDEF)
    ffibuilder.embedding_init_code(EMBED_INIT_CODE.format(module=EMBED_MODULE, paths=paths))
    ffibuilder.set_source(
        EMBED_MODULE,
        baked + CODEC_SOURCE.read_text() + "".join(source.read_text() for source in EMBED_C_SOURCES),
        include_dirs=[str(ROOT / "include"), str(PACKAGE_DIR)],  # and runtime/_connection_core.h
        extra_compile_args=EMBED_COMPILE_ARGS,
        # libpython is a shared library: find it where it was at build time, whatever the program's rpath.
        library_dirs=[libdir] if libdir else [],
        extra_link_args=[f"-Wl,-rpath,{libdir}"] if libdir and sysconfig.get_config_var("Py_ENABLE_SHARED") else [],
    )
    return ffibuilder


def _c_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def build_embedding(verbose: bool) -> Path:
    """Compile ``build/libsnow_ws.so`` (cffi embedding mode) from include/snow_ws.h and snow_rt_py/abi/.

    Args:
        verbose: echo the compiler commands.

    Returns:
        The path of the library.
    """
    tmpdir = BUILD_DIR / "embedding"
    tmpdir.mkdir(parents=True, exist_ok=True)
    built = Path(embedding_ffi().compile(tmpdir=str(tmpdir), target="libsnow_ws.*", verbose=verbose))
    return _install(built, EMBED_LIBRARY)


# ----------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------

TARGETS: dict[str, Callable[[bool], Path]] = {
    "speedups": build_speedups,
    "hotpath": build_hotpath,
    "embedding": build_embedding,
}


def main(argv: list[str] | None = None) -> int:
    """Build the requested targets (``all`` when none is named).

    Returns:
        The process exit status (0 on success).
    """
    parser = argparse.ArgumentParser(description="Build the C parts of snow_rt_py with cffi.")
    known = [*TARGETS, "all"]
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"one of {', '.join(known)} (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo the compiler commands")
    args = parser.parse_args(argv)
    # Checked here rather than with choices=: argparse (3.11) rejects an empty list for nargs="*" + choices.
    unknown = [target for target in args.targets if target not in known]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r} (choose from {', '.join(known)})")

    names: list[str] = []
    for target in args.targets or ["all"]:
        for name in TARGETS if target == "all" else [target]:
            if name not in names:
                names.append(name)
    for name in names:
        path = TARGETS[name](args.verbose)
        print(f"built {name}: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
