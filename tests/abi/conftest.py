"""build/libsnow_ws.so loaded into this test process with cffi's ABI mode (``ffi.dlopen``), declared from the same
header build_ffi.py compiles it from. The library then runs on this process's interpreter (it starts none of its
own), so what it does is visible through the Python API too."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cffi import FFI

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "build" / "libsnow_ws.so"


def load_build_ffi() -> ModuleType:
    """build_ffi.py as a module (it is a script at the repository root, not part of the package)."""
    spec = importlib.util.spec_from_file_location("build_ffi_under_test", REPO / "build_ffi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_ffi() -> ModuleType:
    return load_build_ffi()


@pytest.fixture(scope="session")
def abi(build_ffi: ModuleType) -> tuple[Any, Any]:
    """``(ffi, lib)`` of the library, initialised."""
    if not LIBRARY.exists():
        pytest.fail("build/libsnow_ws.so is missing: run `make build`")
    ffi = FFI()
    ffi.cdef(build_ffi.header_cdef(build_ffi.HEADER.read_text()))
    lib = ffi.dlopen(str(LIBRARY))
    assert lib.snow_ws_init() == 0, ffi.string(lib.snow_ws_last_error()).decode()
    return ffi, lib
