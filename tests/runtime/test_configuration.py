"""Which configuration this test run exercises: the C parts, or the pure-Python reference.

``make test`` runs the protocol, runtime, conformance, ABI and C-program tests twice, the second time with
``SNOW_RT_PY_NO_SPEEDUPS=1``. These tests make sure the variable took effect everywhere it must (the connection's
base class, the rooms' fan-out, the server's flush, masking and UTF-8 in protocol/), so the second run cannot quietly
test the C path again; and, without it, that the first run does use the C parts ``make build`` compiled. The same
check inside the C ABI's embedded interpreter is in tests/c/test_configuration.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snow_rt_py.protocol import core, mask, utf8
from snow_rt_py.runtime import connection_base, scheduler

PACKAGE = Path(__file__).resolve().parents[2] / "snow_rt_py"
PURE_PYTHON = os.environ.get("SNOW_RT_PY_NO_SPEEDUPS", "") not in ("", "0")


def built() -> bool:
    """True if both compiled modules exist (``make build``)."""
    return bool(list(PACKAGE.glob("_speedups*.so"))) and len(list(PACKAGE.glob("*/_*_core*.so"))) == 3


def in_use() -> dict[str, object]:
    """What the imported modules chose."""
    return {
        "C protocol": core.C_PROTOCOL,
        "C scheduler": scheduler.C_SCHEDULER,
        "C connection": connection_base.C_CONNECTION,
        "masking accelerator": mask.HAVE_SPEEDUPS,
        "UTF-8 accelerator": utf8._lib is not None,
        "C fan-out": connection_base.offer_all is not None,
        "C flush": connection_base.flush_all is not None,
    }


PYTHON_CONFIG = {
    "C protocol": False,
    "C scheduler": False,
    "C connection": False,
    "masking accelerator": False,
    "UTF-8 accelerator": False,
    "C fan-out": False,
    "C flush": False,
}
C_CONFIG = {
    "C protocol": True,
    "C scheduler": True,
    "C connection": True,
    "masking accelerator": True,
    "UTF-8 accelerator": True,
    "C fan-out": True,
    "C flush": True,
}


def expected() -> dict[str, object]:
    """The configuration this run must exercise (skips when the C parts were never built and none is forced)."""
    if PURE_PYTHON:
        return PYTHON_CONFIG
    if not built():
        pytest.skip("the C parts are not built (`make build`)")
    return C_CONFIG


def test_the_configuration_under_test_is_in_use() -> None:
    assert in_use() == expected()


@pytest.mark.skipif(not PURE_PYTHON, reason="only in the SNOW_RT_PY_NO_SPEEDUPS=1 run")
def test_pure_python_masking_is_the_reference_function() -> None:
    key = bytes([0x37, 0xFA, 0x21, 0x3D])
    payload = os.urandom(mask.C_THRESHOLD * 4)  # long enough that the accelerator would take it
    assert mask.apply_mask(payload, key) == mask.apply_mask_py(payload, key)
    assert mask._lib is None
