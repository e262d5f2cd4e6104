"""The C ABI's embedded interpreter runs the configuration under test (see tests/runtime/test_configuration.py):
with ``SNOW_RT_PY_NO_SPEEDUPS=1`` the C programs of tests/c run on the pure-Python runtime, not on the C parts."""

from __future__ import annotations

from collections.abc import Callable

from tests.c.harness import Program
from tests.runtime.test_configuration import expected


def test_the_embedded_runtime_runs_the_configuration_under_test(run: Callable[..., Program]) -> None:
    want = expected()
    prog = run("config")
    prog.expect(
        "init -> 0",
        "runtime loaded by init: True",
        *(f"{name}: {value}" for name, value in want.items()),
        "report -> 0",
    )
    assert prog.finish() == 0
