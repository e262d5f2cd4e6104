"""Exceptions of the Python API -> the error codes of include/snow_ws.h.

The codes themselves are defined once, in the header's ``SNOW_WS_ERRORS`` list; build_ffi.py turns it into the
enum the embedded module exposes (``lib.SNOW_WS_E_...``), and the C library builds ``snow_ws_strerror`` from the
same list. This module only says which exception means which code, by name: :func:`resolve` looks every name up
in ``lib`` when the library starts, so a name missing from the header fails the start-up, loudly.
"""

from __future__ import annotations

from typing import Any

from snow_rt_py.runtime.errors import (
    ConnectionClosedError,
    InvalidArgumentError,
    InvalidUtf8Error,
    QueueFullError,
    ServerStartError,
)


class AbiError(Exception):
    """An error found by the ABI layer itself (a stale handle, an unknown server...), with its code's name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# First match wins: UnicodeDecodeError and InvalidArgumentError are ValueErrors, so they come before it.
EXCEPTION_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (UnicodeDecodeError, "SNOW_WS_E_INVALID_UTF8"),
    (InvalidUtf8Error, "SNOW_WS_E_INVALID_UTF8"),
    (ConnectionClosedError, "SNOW_WS_E_CLOSED"),
    (QueueFullError, "SNOW_WS_E_QUEUE_FULL"),
    (ServerStartError, "SNOW_WS_E_SERVER_START"),
    (InvalidArgumentError, "SNOW_WS_E_INVALID_ARGUMENT"),
    (ValueError, "SNOW_WS_E_INVALID_ARGUMENT"),
    (RuntimeError, "SNOW_WS_E_INTERNAL"),  # a refusal of the runtime, e.g. waiting for the loop on its own thread
)
FALLBACK_CODE = "SNOW_WS_E_INTERNAL"  # any other exception: a bug, reported with its type (and logged)


class ErrorMap:
    """Exception -> (code, message), with the codes' values taken from the embedded module."""

    def __init__(self, lib: Any) -> None:
        names = {name for _, name in EXCEPTION_CODES} | {FALLBACK_CODE, *_ABI_CODES}
        self._values = {name: int(getattr(lib, name)) for name in sorted(names)}

    def value(self, name: str) -> int:
        """The value of the code called ``name``."""
        return self._values[name]

    def classify(self, exc: BaseException) -> tuple[int, str, bool]:
        """The code and message ``exc`` maps to, and whether it is an expected error (False: a bug)."""
        if isinstance(exc, AbiError):
            return self._values[exc.code], str(exc), True
        if isinstance(exc, UnicodeDecodeError):
            return self._values["SNOW_WS_E_INVALID_UTF8"], f"not valid UTF-8: {exc.reason} at byte {exc.start}", True
        for kind, name in EXCEPTION_CODES:
            if isinstance(exc, kind):
                return self._values[name], str(exc) or type(exc).__name__, True
        return self._values[FALLBACK_CODE], f"{type(exc).__name__}: {exc}", False


# Codes raised by the ABI layer itself (AbiError).
BAD_HANDLE = "SNOW_WS_E_BAD_HANDLE"
BAD_SERVER = "SNOW_WS_E_BAD_SERVER"
NOT_FOUND = "SNOW_WS_E_NOT_FOUND"
INVALID_ARGUMENT = "SNOW_WS_E_INVALID_ARGUMENT"
INTERNAL = "SNOW_WS_E_INTERNAL"
CONNECT = "SNOW_WS_E_CONNECT"  # a client connection could not be opened (the reason is the message)
TIMEOUT = "SNOW_WS_E_TIMEOUT"  # a client wait ran out of time
_ABI_CODES = (BAD_HANDLE, BAD_SERVER, NOT_FOUND, INVALID_ARGUMENT, INTERNAL, CONNECT, TIMEOUT)
