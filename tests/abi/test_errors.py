"""snow_rt_py/abi/errors.py: the runtime's exceptions map to the header's codes."""

from __future__ import annotations

from typing import Any

import pytest

from snow_rt_py.abi.errors import AbiError, ErrorMap
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError, QueueFullError, ServerStartError


@pytest.mark.parametrize(
    ("exc", "name", "message", "expected"),
    [
        (ConnectionClosedError("connection 3 is closed"), "SNOW_WS_E_CLOSED", "connection 3 is closed", True),
        (QueueFullError("full"), "SNOW_WS_E_QUEUE_FULL", "full", True),
        (ServerStartError("in use"), "SNOW_WS_E_SERVER_START", "in use", True),
        (InvalidArgumentError("bad code"), "SNOW_WS_E_INVALID_ARGUMENT", "bad code", True),
        (ValueError("port"), "SNOW_WS_E_INVALID_ARGUMENT", "port", True),
        (AbiError("SNOW_WS_E_BAD_HANDLE", "stale"), "SNOW_WS_E_BAD_HANDLE", "stale", True),
        (RuntimeError("would deadlock"), "SNOW_WS_E_INTERNAL", "would deadlock", True),
        (KeyError("x"), "SNOW_WS_E_INTERNAL", "KeyError: 'x'", False),  # a bug: logged with its traceback
    ],
)
def test_classify(abi: tuple[Any, Any], exc: BaseException, name: str, message: str, expected: bool) -> None:
    _, lib = abi
    assert ErrorMap(lib).classify(exc) == (getattr(lib, name), message, expected)


def test_invalid_utf8_names_the_byte(abi: tuple[Any, Any]) -> None:
    _, lib = abi
    try:
        b"ok\xff".decode("utf-8")
    except UnicodeDecodeError as exc:
        assert ErrorMap(lib).classify(exc) == (
            lib.SNOW_WS_E_INVALID_UTF8,
            "not valid UTF-8: invalid start byte at byte 2",
            True,
        )


def test_a_code_missing_from_the_header_fails_loudly() -> None:
    class Lib:
        SNOW_WS_E_CLOSED = 5

    with pytest.raises(AttributeError):
        ErrorMap(Lib())
