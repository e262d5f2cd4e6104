"""build_ffi.py's embedding target: the header is the single source of truth of what the library exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import snow_rt_py

REPO = Path(__file__).resolve().parents[2]


def header_functions(text: str) -> set[str]:
    """Names of the functions the header declares."""
    return set(re.findall(r"^[A-Za-z][\w ]*?\**\b(snow_\w+)\(", text, re.MULTILINE))


def exported_functions(library: Path) -> set[str]:
    """The functions a shared library exports (``nm -D``)."""
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return {line.split()[-1] for line in out.splitlines() if line.split()[1] == "T"}


def test_the_library_exports_exactly_the_header_functions(build_ffi: ModuleType) -> None:
    declared = header_functions(build_ffi.HEADER.read_text())
    # issue 15 added snow_ws_drain, snow_ws_server_stats, snow_ws_subprotocol; issue 14 snow_room_join_meta,
    # snow_room_presence, snow_room_presence_count
    assert len(declared) == 35
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
