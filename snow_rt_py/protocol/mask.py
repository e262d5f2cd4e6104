"""RFC 6455 §5.3 masking: XOR the payload with the 4-byte masking key, repeated.

``apply_mask`` uses the C accelerator (``snow_rt_py._speedups``, built by ``make build``) when it is present and
falls back to a pure-Python implementation with identical results otherwise. Masking is its own inverse.
"""

from __future__ import annotations

from typing import Any

_lib: Any
_ffi: Any
try:  # pragma: no cover - depends on whether the accelerator was built
    from snow_rt_py._speedups import ffi as _ffi
    from snow_rt_py._speedups import lib as _lib
except ImportError:  # pragma: no cover
    _lib = None
    _ffi = None


def apply_mask_py(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """Pure-Python masking (reference implementation, always available).

    Args:
        data: the payload.
        mask: exactly 4 bytes.

    Returns:
        The masked (or unmasked) payload.
    """
    n = len(data)
    if n == 0:
        return b""
    # One big-int XOR runs at C speed inside CPython: much faster than a per-byte loop.
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """Mask or unmask ``data`` with the 4-byte ``mask`` (C speed when the accelerator is built).

    Args:
        data: the payload.
        mask: exactly 4 bytes.

    Returns:
        The masked (or unmasked) payload as new ``bytes``.
    """
    if _lib is None or len(data) < 64:
        return apply_mask_py(data, mask)
    out = _ffi.new("unsigned char[]", len(data))
    _lib.snow_apply_mask(_ffi.from_buffer(data), len(data), mask, out)
    return bytes(_ffi.buffer(out))


HAVE_SPEEDUPS = _lib is not None
