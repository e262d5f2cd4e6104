"""The constants the connection's C part uses are the ones runtime/connection_base.py defines (one definition)."""

from __future__ import annotations

import pytest

import snow_rt_py.runtime.connection  # noqa: F401  (configures the C part at import)
from snow_rt_py.runtime.connection_base import C_CONNECTION, FLUSH_NOW, SEPARATE_PAYLOAD_MIN, c_constants


@pytest.mark.skipif(not C_CONNECTION, reason="the connection's C part is not in use")
def test_the_c_part_uses_the_constants_python_defines() -> None:
    assert c_constants() == {"SEPARATE_PAYLOAD_MIN": SEPARATE_PAYLOAD_MIN, "FLUSH_NOW": FLUSH_NOW}


@pytest.mark.skipif(C_CONNECTION, reason="only without the connection's C part")
def test_without_the_c_part_there_are_no_c_constants() -> None:
    assert c_constants() is None
