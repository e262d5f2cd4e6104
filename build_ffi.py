"""Build the C parts of snow_rt_py: one build, used by the PEP 517 backend (``pip install .``, ``pip wheel .``, via
setup.py) and by ``make build`` (``python build_ffi.py``, in place).

Every C part is one entry of :data:`EXTENSIONS` (Python extension modules) or :data:`LIBRARIES` (the C ABI's two
shared libraries); setuptools' ``build_ext`` with the :class:`BuildC` command compiles them all, skipping what is up
to date. Adding an extension module is one :class:`CPart` entry: its dotted name, its C sources (relative to the
repository), include dirs and libraries; the headers in its sources' folders are its dependencies.

* ``snow_rt_py._speedups`` -- RFC 6455 §5.3 masking at C speed and the C UTF-8 check and frame header the tests
  compare with Python (cffi, out-of-line API mode); its C is the protocol layer's ``protocol/_codec.c``.
* the C parts of the layers, one per Python class they speed up, each in that class's folder, against the CPython
  C API: ``snow_rt_py.protocol._protocol_core`` (the base of ``ServerProtocol``, with ``_codec.c`` included and
  zlib), ``snow_rt_py.runtime._scheduler_core`` (the base of ``Actor``) and ``snow_rt_py.runtime._connection_core``
  (the base of ``Connection``); each one's C API for the next layer is its internal header beside it.
* ``snow_rt_py/lib/_snow_ws_embed.so`` -- the C ABI of ``include/snow_ws.h`` (cffi embedding mode): the C wrappers of
  ``snow_rt_py/abi/*.c`` (:data:`EMBED_C_SOURCES`) and the embedded interpreter running this package. The header is
  the single source of truth: its declarations (minus preprocessor lines and comments) are the cdef, and its
  ``SNOW_WS_ERRORS`` list becomes the error enum seen by Python. Not linked with libpython.
* ``snow_rt_py/lib/libsnow_ws.so`` -- what a C program links: the loader (``abi/snow_ws_loader.c``) that finds the
  Python runtime and the package from its own location at run time, loads libpython and ``_snow_ws_embed.so``, and
  forwards every header function to it (forwarders generated from the header by build_loader.py). No path is
  baked into either library; an in-place build (``make build``) only records where its venv's python is *relative*
  to the library.

Beside the libraries the build writes ``snow_rt_py/include/snow_ws.h`` (a copy of ``include/snow_ws.h``) and
``snow_rt_py/lib/pkgconfig/snow_ws.pc`` (paths relative to itself), so the package carries what a C build needs
(``snow-ws config``). Without a working C compiler each part that fails is skipped with a warning: the package is
then the pure-Python one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cffi import FFI
from setuptools import Distribution, Extension
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # build_loader.py, beside this file, however this file was loaded
import build_loader  # noqa: E402

BUILD_DIR = ROOT / "build"
PACKAGE_DIR = ROOT / "snow_rt_py"

# Appended after Python's own CFLAGS, so these win (gcc and clang keep the last -O).
EXTRA_COMPILE_ARGS = ("-O3", "-std=c99", "-Wall", "-Wextra")
C_API_COMPILE_ARGS = ("-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-missing-field-initializers")


class CPart(NamedTuple):
    """One compiled part of the package.

    Attributes:
        name: the dotted module name (for a library: its place in the package, e.g. ``snow_rt_py.lib.libsnow_ws``).
        sources: C sources relative to the repository.
        include_dirs: include directories relative to the repository.
        libraries: libraries to link (``z`` for zlib).
        compile_args: compiler arguments after Python's own.
        link_args: linker arguments.
        generate: writes one more C source into the given directory (only when its content changed) and returns it:
            cffi's generated C, or the loader's forwarders.
        filename: for a shared library that is not a Python module, its path in the package (``libsnow_ws.so``).
        extra_depends: more files it is rebuilt after (a C file it includes).
    """

    name: str
    sources: tuple[str, ...] = ()
    include_dirs: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()
    compile_args: tuple[str, ...] = EXTRA_COMPILE_ARGS
    link_args: tuple[str, ...] = ()
    generate: Callable[[BuildC, Path], Path] | None = None
    filename: str | None = None
    extra_depends: tuple[str, ...] = ()

    def depends(self) -> list[str]:
        """What the part is rebuilt after: the headers beside its sources, and this file."""
        dirs = {ROOT / Path(src).parent for src in self.sources} | {ROOT / d for d in self.include_dirs}
        headers = sorted(str(h.relative_to(ROOT)) for d in dirs for h in d.glob("*.h"))
        return [*headers, *self.extra_depends, "build_ffi.py"]


def write_if_changed(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` unless it holds it already (so an unchanged source keeps its time stamp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _cffi_source(builder: Callable[[], FFI], filename: str) -> Callable[[BuildC, Path], Path]:
    def generate(cmd: BuildC, out_dir: Path) -> Path:
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):  # cffi's "generating"
            emitted = Path(tmp) / filename
            builder().emit_c_code(str(emitted))
            return write_if_changed(out_dir / filename, emitted.read_text())

    return generate


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
    ffibuilder.set_source(SPEEDUPS_MODULE, CODEC_SOURCE.read_text())
    return ffibuilder


# ----------------------------------------------------------------------------------------------------------
# embedding: snow_rt_py/lib/_snow_ws_embed.so, and its loader snow_rt_py/lib/libsnow_ws.so
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
        "snow_ws_history.c",  # room history, positions, delivery policies, round-trip time
        "snow_ws_client.c",  # the public wrappers of the client (snow_ws_connect, snow_ws_client_*)
    )
)
EMBED_MODULE = "_snow_ws_abi"  # the name cffi gives the embedded module (import it from the init code)
EMBED_FILE = "_snow_ws_embed.so"  # the runtime's library, beside the loader libsnow_ws.so in snow_rt_py/lib/
EMBED_COMPILE_ARGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden")

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
    int64_t snow_abi_py_room_configure(const char *room, int64_t room_len, int64_t size, int64_t ttl_ms,
                                       int64_t policy);
    int64_t snow_abi_py_room_publish(const char *room, int64_t room_len, const char *msg, int64_t msg_len,
                                     int64_t has_except, uint64_t except_conn, const char *key, int64_t key_len,
                                     int64_t has_key, SnowWsPosition *out);
    int64_t snow_abi_py_room_position(const char *room, int64_t room_len, SnowWsPosition *out);
    int64_t snow_abi_py_room_join_from(uint64_t conn, const char *room, int64_t room_len, const char *epoch,
                                       int64_t offset, int64_t *replayed);
    int64_t snow_abi_py_conn_rtt_us(uint64_t conn);
    int64_t snow_abi_py_room_stats(SnowWsRoomStats *out);
    int64_t snow_abi_py_connect(const SnowWsClientOptions *opts, const char *url, void *on_connect_fn,
                                void *on_connect_env, void *on_message_fn, void *on_message_env, void *on_close_fn,
                                void *on_close_env);
    int64_t snow_abi_py_client_wait_open(int64_t client, int64_t timeout_ms);
    int64_t snow_abi_py_client_close(int64_t client, int64_t code, const char *reason, int64_t reason_len);
    int64_t snow_abi_py_client_wait_closed(int64_t client, int64_t timeout_ms);
}

typedef struct SnowAbiTarget {
    void *fn;
    void *env;
} SnowAbiTarget;
void snow_abi_set_reply_buffer(char *buf, size_t cap);
int snow_abi_register_native(void);

void snow_abi_set_error(int64_t code, const char *msg);
const char *snow_abi_sys_path(void);
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
    # where the loader (libsnow_ws.so) found the package, then $SNOW_WS_PYTHONPATH: first on sys.path
    _paths = ffi.string(lib.snow_abi_sys_path()).decode("utf-8", "surrogateescape").split(":")
    for _path in reversed([_p for _p in _paths if _p]):
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
    """The cffi builder of ``_snow_ws_embed.so`` (declarations, C source and init code, not yet compiled)."""
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
    baked = f"#define SNOW_ABI_VERSION_NUMBER {version_number(package_version())}\n\n"

    ffibuilder = FFI()
    ffibuilder.cdef(header_cdef(header))
    ffibuilder.cdef(EMBED_INTERNAL_CDEF)
    ffibuilder.embedding_init_code(EMBED_INIT_CODE.format(module=EMBED_MODULE))
    ffibuilder.set_source(
        EMBED_MODULE,
        baked + CODEC_SOURCE.read_text() + "".join(source.read_text() for source in EMBED_C_SOURCES),
    )
    return ffibuilder


def loader_config(cmd: BuildC) -> str:
    """``snow_ws_loader_config.h``: the names the loader needs (no paths; see snow_ws_loader.c)."""
    shared = sysconfig.get_config_var("Py_ENABLE_SHARED")
    soname = sysconfig.get_config_var("INSTSONAME") if shared else ""
    tree_python = ""
    if cmd.inplace or cmd.editable_mode:  # a build tree: its venv's python, relative to snow_rt_py/lib
        tree_python = os.path.relpath(sys.executable, PACKAGE_DIR / "lib")  # not resolved: the venv is its path
    return (
        "/* Generated by build_ffi.py (do not edit). */\n"
        f'#define SNOW_LD_PY_VERSION "{sys.version_info.major}.{sys.version_info.minor}"\n'
        f"#define SNOW_LD_LIBPYTHON {_c_string(soname or '')}\n"
        f"#define SNOW_LD_IMPL {_c_string(EMBED_FILE)}\n"
        f"#define SNOW_LD_TREE_PYTHON {_c_string(tree_python)}\n"
        f"#define SNOW_LD_VERSION_NUMBER {version_number(package_version())}\n"
    )


def _loader_sources(cmd: BuildC, out_dir: Path) -> Path:
    write_if_changed(out_dir / "snow_ws_loader_config.h", loader_config(cmd))
    forwarders = build_loader.forwarders_source(header_cdef(HEADER.read_text()))
    return write_if_changed(out_dir / "snow_ws_forward.c", forwarders)


def _c_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


PKGCONFIG = """\
# snow_ws: the C interface of snow_rt_py. Every path is relative to this file, so it moves with the package.
prefix=${{pcfiledir}}/../..
libdir=${{prefix}}/lib
includedir=${{prefix}}/include

Name: snow_ws
Description: WebSocket server runtime (RFC 6455) with a C ABI, running snow_rt_py
Version: {version}
Cflags: -I${{includedir}}
Libs: -L${{libdir}} -lsnow_ws -Wl,-rpath,${{libdir}}
"""


# ----------------------------------------------------------------------------------------------------------
# the table of C parts, and the build command
# ----------------------------------------------------------------------------------------------------------

EXTENSIONS: tuple[CPart, ...] = (
    CPart(SPEEDUPS_MODULE, generate=_cffi_source(speedups_ffi, "_speedups.c"), include_dirs=("snow_rt_py/protocol",)),
    # The C parts of the layers, written against the CPython C API (cffi cannot define a Python class), one per
    # Python class they speed up; their sources include each other's internal headers as "protocol/..." and
    # "runtime/...". ServerProtocol's base: the fast receive (frame scan, unmasking, UTF-8, bounded inflate;
    # _codec.c is included into it) and the encoding of replies, with zlib (permessage-deflate, RFC 7692).
    CPart(
        "snow_rt_py.protocol._protocol_core",
        sources=("snow_rt_py/protocol/_protocol_core.c",),
        include_dirs=("snow_rt_py",),
        libraries=("z",),
        compile_args=C_API_COMPILE_ARGS,
        extra_depends=("snow_rt_py/protocol/_codec.c",),
    ),
    # Actor's base: the mailbox, its marks and lock, and the rules that change them.
    CPart(
        "snow_rt_py.runtime._scheduler_core",
        sources=("snow_rt_py/runtime/_scheduler_core.c",),
        include_dirs=("snow_rt_py",),
        compile_args=C_API_COMPILE_ARGS,
    ),
    # Connection's base: one message's path through the connection, and its outbound queue.
    CPart(
        "snow_rt_py.runtime._connection_core",
        sources=("snow_rt_py/runtime/_connection_core.c", "snow_rt_py/runtime/_connection_out.c"),
        include_dirs=("snow_rt_py",),
        compile_args=C_API_COMPILE_ARGS,
    ),
)
"""The Python extension modules: one entry each."""

LIBRARIES: tuple[CPart, ...] = (
    CPart(
        "snow_rt_py.lib._snow_ws_embed",
        generate=_cffi_source(embedding_ffi, "_snow_ws_abi.c"),
        include_dirs=("include", "snow_rt_py/abi", "snow_rt_py"),  # and runtime/_connection_core.h
        compile_args=EMBED_COMPILE_ARGS,
        link_args=("-Wl,-Bsymbolic",),  # its own calls to its exported functions stay inside it
        filename=f"snow_rt_py/lib/{EMBED_FILE}",
    ),
    CPart(
        "snow_rt_py.lib.libsnow_ws",
        sources=("snow_rt_py/abi/snow_ws_loader.c",),
        generate=_loader_sources,
        include_dirs=("include", "snow_rt_py/abi"),
        libraries=("dl", "pthread"),
        compile_args=("-O2", "-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden"),
        link_args=("-Wl,-soname,libsnow_ws.so",),
        filename="snow_rt_py/lib/libsnow_ws.so",
    ),
)
"""The C ABI: the runtime's library, then the loader a C program links (built only if the first one was)."""

PARTS = {part.name: part for part in (*EXTENSIONS, *LIBRARIES)}
HEADER_IN_PACKAGE = "snow_rt_py/include/snow_ws.h"
PKGCONFIG_IN_PACKAGE = "snow_rt_py/lib/pkgconfig/snow_ws.pc"


def extensions() -> list[Extension]:
    """Every :class:`CPart` as a setuptools extension (sources generated later, by :class:`BuildC`)."""
    return [
        Extension(
            part.name,
            list(part.sources),
            include_dirs=list(part.include_dirs),
            libraries=list(part.libraries),
            extra_compile_args=list(part.compile_args),
            extra_link_args=list(part.link_args),
            depends=part.depends(),
            optional=True,  # without a compiler: the pure-Python package (BuildC says so)
        )
        for part in PARTS.values()
    ]


class BuildC(build_ext):
    """setuptools' ``build_ext`` for :data:`EXTENSIONS` and :data:`LIBRARIES`: generates their C, names the
    libraries, links them without any rpath, and installs the header and the pkg-config file beside them."""

    def run(self) -> None:
        """Generate the sources, build every part (a failed one is skipped with a warning), add the C files."""
        self.failed: list[str] = []
        generated = Path(self.build_temp) / "generated"
        for ext in self.extensions:
            part = PARTS[ext.name]
            ext.sources = list(part.sources)
            if part.generate is not None:
                ext.sources.append(os.path.relpath(part.generate(self, generated), ROOT))
                ext.include_dirs = [*part.include_dirs, os.path.relpath(generated, ROOT)]
        cwd = os.getcwd()
        os.chdir(ROOT)  # sources are relative to the repository (object paths stay under build_temp)
        try:
            super().run()
            self._write_c_files()
        finally:
            os.chdir(cwd)
        if self.failed:
            rule = "=" * 100
            self.warn(
                f"\n{rule}\nWARNING: snow_rt_py is built WITHOUT {', '.join(self.failed)}: the C compiler failed (see "
                "above).\nThe pure-Python runtime runs instead of the C parts, and without libsnow_ws.so there is no "
                f"C ABI.\nInstall gcc (and zlib's headers) and build again to get them.\n{rule}"
            )

    def build_extension(self, ext: Any) -> None:
        """Build one part; on a compiler error, record it and go on."""
        part = PARTS[ext.name]
        if part.name == "snow_rt_py.lib.libsnow_ws" and "snow_rt_py.lib._snow_ws_embed" in self.failed:
            self.failed.append(part.name)
            return
        linker = list(self.compiler.linker_so)
        if part.filename is not None:  # no rpath of Python's own (LDSHARED) in the C ABI: found at run time
            self.compiler.linker_so = [arg for arg in linker if not arg.startswith("-Wl,-rpath")]
        # not even in the debug information: the compile directory is written as "."
        ext.extra_compile_args = [*part.compile_args, f"-ffile-prefix-map={ROOT}=."]
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError, DistutilsExecError, OSError: the compiler failed
            self.warn(f"could not build {part.name}: {exc}")
            self.failed.append(part.name)
        finally:
            self.compiler.linker_so = linker

    def get_ext_filename(self, fullname: str) -> str:
        """A library's own name (``libsnow_ws.so``) instead of a module's."""
        for part in LIBRARIES:
            if fullname == part.name and part.filename:
                return part.filename
            if fullname == part.name.rsplit(".", 1)[-1] and part.filename:
                return os.path.basename(part.filename)
        return str(super().get_ext_filename(fullname))

    def copy_extensions_to_source(self) -> None:
        """In place: replace a changed file by a rename (a process that has the old one loaded keeps it intact)."""
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            inplace_file, regular_file = self._get_inplace_equivalent(build_py, ext)
            if ext.name in self.failed or not os.path.exists(regular_file):
                continue
            _install(Path(regular_file), Path(inplace_file))

    def initialize_options(self) -> None:
        """setuptools' options, and no part failed yet."""
        super().initialize_options()
        self.failed = []

    def get_outputs(self) -> list[str]:
        """The files built (not those of a part that failed), and the header and pkg-config file."""
        if self.inplace:
            return list(super().get_outputs())
        outputs = [self.get_ext_fullpath(ext.name) for ext in self.extensions if ext.name not in self.failed]
        if "snow_rt_py.lib.libsnow_ws" not in self.failed:
            outputs += [os.path.join(self.build_lib, name) for name in (HEADER_IN_PACKAGE, PKGCONFIG_IN_PACKAGE)]
        return outputs

    def _write_c_files(self) -> None:
        if "snow_rt_py.lib.libsnow_ws" in self.failed:
            return
        roots = [Path(self.build_lib)]
        if self.inplace or self.editable_mode:
            roots.append(ROOT)
        for root in roots:
            write_if_changed(root / HEADER_IN_PACKAGE, HEADER.read_text())
            write_if_changed(root / PKGCONFIG_IN_PACKAGE, PKGCONFIG.format(version=package_version()))


def _install(built: Path, dest: Path) -> Path:
    """Copy ``built`` to ``dest`` atomically, unless it holds the same bytes already."""
    if dest.exists() and dest.read_bytes() == built.read_bytes():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copy2(built, tmp_name)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest


def setup_kwargs() -> dict[str, Any]:
    """What setup.py passes to ``setuptools.setup()``: the C parts and the command that builds them."""
    return {"ext_modules": extensions(), "cmdclass": {"build_ext": BuildC}}


# ----------------------------------------------------------------------------------------------------------
# command line: make build
# ----------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Build every C part in place (what is up to date is skipped), as ``pip install -e .`` does.

    Returns:
        The process exit status: 0, or 1 when a part could not be built.
    """
    parser = argparse.ArgumentParser(description="Build the C parts of snow_rt_py in place (make build).")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo the compiler commands")
    parser.add_argument("-f", "--force", action="store_true", help="rebuild everything")
    args = parser.parse_args(argv)
    dist = Distribution({"name": "snow_rt_py", "ext_modules": extensions(), "cmdclass": {"build_ext": BuildC}})
    dist.verbose = args.verbose  # type: ignore[attr-defined]
    cmd = BuildC(dist)
    cmd.inplace = True
    cmd.force = args.force
    cmd.build_temp = str(BUILD_DIR / "c" / "temp")
    cmd.build_lib = str(BUILD_DIR / "c" / "lib")
    cmd.ensure_finalized()
    cmd.run()
    if cmd.failed:
        print(f"build_ffi.py: could not build {', '.join(cmd.failed)}", file=sys.stderr)
        return 1
    for part in PARTS.values():
        print(f"{part.name}: {Path(cmd.get_ext_fullpath(part.name)).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
