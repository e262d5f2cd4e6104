"""build_ffi.py's embedding target: the header is the single source of truth of what the library exports."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import snow_rt_py

REPO = Path(__file__).resolve().parents[2]


def header_functions(text: str) -> set[str]:
    """Names of the functions the header declares."""
    return set(re.findall(r"^[A-Za-z][\w ]*?\**\b((?:snow|mesh)_\w+)\(", text, re.MULTILINE))


def exported_functions(library: Path) -> set[str]:
    """The functions a shared library exports (``nm -D``)."""
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return {line.split()[-1] for line in out.splitlines() if line.split()[1] == "T"}


def test_the_library_exports_exactly_the_header_functions(build_ffi: ModuleType) -> None:
    declared = header_functions(build_ffi.HEADER.read_text())
    # issue 15 added snow_ws_drain, snow_ws_server_stats, snow_ws_subprotocol; issue 14 snow_room_join_meta,
    # snow_room_presence, snow_room_presence_count; issue 22 Mesh's eight mesh_ws_* names; issue 24 the 6 of "Rooms
    # that remember"; issue 23 the client's snow_ws_client_options_init, snow_ws_connect, snow_ws_client_wait_open,
    # _close, _wait_closed
    assert len(declared) == 54
    # the loader a program links: the header's functions and nothing else (issue 22)
    assert exported_functions(REPO / "build" / "libsnow_ws.so") == declared
    # the runtime's library beside it: the same, cffi's module init and the loader's hand-over (the init code's
    # extern "Python" helpers are static)
    embed = REPO / "snow_rt_py" / "lib" / "_snow_ws_embed.so"
    assert exported_functions(embed) == declared | {"PyInit__snow_ws_abi", "snow_abi_configure"}


def test_header_version_is_the_package_version(build_ffi: ModuleType, abi: tuple[Any, Any]) -> None:
    ffi, lib = abi
    assert build_ffi.header_version(build_ffi.HEADER.read_text()) == snow_rt_py.__version__
    assert ffi.string(lib.snow_ws_version()).decode() == snow_rt_py.__version__


def test_version_number_is_baked_from_the_package_version(build_ffi: ModuleType, abi: tuple[Any, Any]) -> None:
    _, lib = abi
    number = build_ffi.version_number(snow_rt_py.__version__)
    assert build_ffi.header_version_number(build_ffi.HEADER.read_text()) == number
    assert lib.snow_ws_version_number() == number
    assert [build_ffi.version_number(v) for v in ("0.1.0", "1.2.3", "10.0.99rc1")] == [100, 10203, 100099]
    for bad in ("1.2", "1.100.0", "x.y.z"):
        with pytest.raises(ValueError):
            build_ffi.version_number(bad)


def test_every_function_is_marked_for_export(build_ffi: ModuleType) -> None:
    text = build_ffi.HEADER.read_text()
    unmarked = [name for name in header_functions(text) if not re.search(rf"^SNOW_WS_API [^;(]*\b{name}\(", text, re.M)]
    assert unmarked == []
    assert "SNOW_WS_API" not in build_ffi.header_cdef(text)


def test_one_error_list_feeds_the_enum_and_strerror(build_ffi: ModuleType, abi: tuple[Any, Any]) -> None:
    ffi, lib = abi
    errors = build_ffi.header_errors(build_ffi.HEADER.read_text())
    assert [name for name, _, _ in errors][:2] == ["SNOW_WS_OK", "SNOW_WS_E_INIT"]
    assert len({value for _, value, _ in errors}) == len(errors)
    for name, value, message in errors:
        assert getattr(lib, name) == value
        assert ffi.string(lib.snow_ws_strerror(value)).decode() == message
    assert ffi.string(lib.snow_ws_strerror(12345)).decode() == "unknown error code"


def test_header_cdef_strips_what_cffi_cannot_parse(build_ffi: ModuleType) -> None:
    cdef = build_ffi.header_cdef(build_ffi.HEADER.read_text())
    assert "#" not in cdef and "/*" not in cdef and 'extern "C"' not in cdef
    assert "SNOW_WS_E_INTERNAL = 10," in cdef


def test_the_header_compiles_as_c_and_cplusplus(tmp_path: Path) -> None:
    for compiler, ext in (("gcc", "c"), ("g++", "cpp")):
        source = tmp_path / f"h.{ext}"
        source.write_text('#include "snow_ws.h"\nint main(void) { return SNOW_WS_OK; }\n')
        subprocess.run(
            [compiler, "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{REPO / 'include'}", "-c", str(source)],
            cwd=tmp_path,
            check=True,
            timeout=60,
        )


# -- issue 22: a library that finds its runtime from where it is -------------------------------------------------

LIB_DIR = REPO / "snow_rt_py" / "lib"


def test_the_c_abi_names_no_path_and_links_no_libpython(tmp_path: Path) -> None:
    for library in (LIB_DIR / "libsnow_ws.so", LIB_DIR / "_snow_ws_embed.so"):
        dynamic = subprocess.run(
            ["readelf", "-d", str(library)], capture_output=True, text=True, check=True, timeout=30
        ).stdout
        assert "RPATH" not in dynamic and "RUNPATH" not in dynamic, dynamic
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", dynamic)
        assert needed and not [name for name in needed if "python" in name], needed
        # what the loader reads at run time (debug information aside, which may name Python's include dirs)
        stripped = tmp_path / library.name
        subprocess.run(["objcopy", "--strip-debug", str(library), str(stripped)], check=True, timeout=30)
        data = stripped.read_bytes()
        for path in {str(REPO), sys.prefix, sys.base_prefix}:
            assert path.encode() not in data, f"{library.name} holds {path}"
    soname = subprocess.run(
        ["readelf", "-d", str(LIB_DIR / "libsnow_ws.so")], capture_output=True, text=True, timeout=30
    )
    assert "Library soname: [libsnow_ws.so]" in soname.stdout


def compile_against(tmp_path: Path, lib_dir: Path, source: Path) -> Path:
    """``source`` compiled and linked with the libsnow_ws.so in ``lib_dir`` (rpath to it)."""
    exe = tmp_path / source.stem
    subprocess.run(
        ["gcc", "-Wall", "-Wextra", "-Werror", f"-I{REPO / 'include'}", str(source), f"-L{lib_dir}", "-lsnow_ws",
         f"-Wl,-rpath,{lib_dir}", "-o", str(exe)],
        check=True,
        timeout=120,
    )  # fmt: skip
    return exe


@pytest.fixture
def lonely_lib(tmp_path: Path) -> Path:
    """The two libraries copied into a folder with no package and no Python around them."""
    lib_dir = tmp_path / "somewhere" / "lib"
    lib_dir.mkdir(parents=True)
    for name in ("libsnow_ws.so", "_snow_ws_embed.so"):
        shutil.copy2(LIB_DIR / name, lib_dir / name)
    return lib_dir


def transcript(exe: Path, cwd: Path, env: dict[str, str]) -> list[str]:
    """Every line ``exe`` prints, once it ended by itself with status 0 and nothing on stderr."""
    done = subprocess.run([str(exe)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, ""), done  # no crash, no abort inside Python's start-up
    return done.stdout.splitlines()


def test_a_library_far_from_its_runtime_says_what_it_looked_for(tmp_path: Path, lonely_lib: Path) -> None:
    """tests/c/init_fail.c, the program that proves a runtime failing to start answers every call with its error,
    gives the same answers when the library cannot even find its Python, with the reason naming what was tried."""
    exe = compile_against(tmp_path, lonely_lib, REPO / "tests" / "c" / "init_fail.c")
    looked = f"the package snow_rt_py at {lonely_lib.parent} (not there); SNOW_WS_PYTHON (not set)"
    tree_python = _tree_python()
    if tree_python:  # an in-place build (make build) also tries its venv's python, relative to the library
        looked += f"; the build tree's {lonely_lib}/{tree_python} (missing)"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    reason = (
        f"libsnow_ws.so could not find its Python runtime; looked for: {looked}. "
        f"Set SNOW_WS_PYTHON to the python{version} of an environment where snow_rt_py is installed"
    )
    hooked_reason = (
        "the embedded runtime could not start: ImportError: simulated failure to import snow_rt_py "
        "(test hook SNOW_RT_PY_ABI_FAIL_IMPORT=1)"
    )
    lonely = transcript(exe, tmp_path, {})
    assert lonely[1] == f"init -> -1 SNOW_WS_E_INIT: {reason}"
    normal = tmp_path / "normal"
    normal.mkdir()
    linked_to_the_tree = compile_against(normal, LIB_DIR, REPO / "tests" / "c" / "init_fail.c")
    expected = [
        line.replace(hooked_reason, reason)
        for line in transcript(linked_to_the_tree, tmp_path, {"SNOW_RT_PY_ABI_FAIL_IMPORT": "1"})
    ]
    # two differences (header, "Start-up"): with no runtime nothing can be blocked, and there is nothing to wait for
    assert "wait_shutdown (pending request) -> 0" in expected
    expected[expected.index("wait_shutdown (pending request) -> 0")] = (
        f"wait_shutdown (pending request) -> -1 SNOW_WS_E_INIT: {reason}"
    )
    assert lonely == expected


def _tree_python() -> str:
    config = REPO / "build" / "c" / "temp" / "generated" / "snow_ws_loader_config.h"
    match = re.search(r'SNOW_LD_TREE_PYTHON "([^"]*)"', config.read_text()) if config.exists() else None
    return match.group(1) if match else ""


INIT_PROGRAM = r"""
#include <stdio.h>
#include "snow_ws.h"
int main(void)
{
    int64_t rc = snow_ws_init();
    printf("init %lld %s\n", (long long)rc, rc == 0 ? snow_ws_version() : snow_ws_last_error());
    return rc == 0 ? 0 : 1;
}
"""


def test_snow_ws_python_names_the_runtime(tmp_path: Path, lonely_lib: Path) -> None:
    source = tmp_path / "init.c"
    source.write_text(INIT_PROGRAM)
    exe = compile_against(tmp_path, lonely_lib, source)

    def run(env: dict[str, str]) -> tuple[int, str]:
        done = subprocess.run([str(exe)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout + done.stderr

    code, out = run({"SNOW_WS_PYTHON": str(tmp_path / "no-python")})
    assert code == 1
    assert f"looked for: the package snow_rt_py at {lonely_lib.parent} (not there); SNOW_WS_PYTHON=" in out
    assert f"SNOW_WS_PYTHON={tmp_path / 'no-python'} (not an executable). Set SNOW_WS_PYTHON" in out
    # the venv's python and the package from SNOW_WS_PYTHONPATH: the runtime starts
    code, out = run({"SNOW_WS_PYTHON": sys.executable, "SNOW_WS_PYTHONPATH": str(REPO)})
    assert (code, out) == (0, f"init 0 {snow_rt_py.__version__}\n")


def test_a_function_the_header_gains_is_forwarded_by_the_loader(build_ffi: ModuleType) -> None:
    cdef = (
        "typedef struct MeshString { uint64_t len; } MeshString;\n"
        "int64_t mesh_ws_send(void *conn, const MeshString *msg);\n"
        "void mesh_ws_serve(void *, int64_t port);\n"
        "MeshString *mesh_string(void);\n"
    )
    source = build_ffi.build_loader.forwarders_source(cdef)
    assert "int64_t (*snow_fw_mesh_ws_send)(void *a0, const MeshString *a1);\n" in source
    assert '    if ((*(void **)&snow_fw_mesh_string = dlsym(handle, "mesh_string")) == NULL)\n' in source
    assert (
        "SNOW_WS_API int64_t mesh_ws_send(void *a0, const MeshString *a1)\n{\n    if (snow_ld_load() != 0)\n"
        "        return -1;\n    return snow_fw_mesh_ws_send(a0, a1);\n}\n"
    ) in source
    assert (
        "SNOW_WS_API void mesh_ws_serve(void *a0, int64_t a1)\n{\n    if (snow_ld_load() != 0)\n        return;\n"
        "    snow_fw_mesh_ws_serve(a0, a1);\n}\n"
    ) in source
    assert (
        "SNOW_WS_API MeshString *mesh_string(void)\n{\n    if (snow_ld_load() != 0)\n        return NULL;\n"
        "    return snow_fw_mesh_string();\n}\n"
    ) in source
