"""RFC 6455 §5.3 masking: XOR the payload with the 4-byte masking key, repeated.

Octet ``i`` of the payload is XORed with octet ``i % 4`` of the key, so masking is its own inverse: the same
call masks (client side) and unmasks (server side).

Two implementations with identical results:

* the C accelerator ``snow_rt_py._speedups`` (built by ``make build``, i.e. ``python build_ffi.py speedups``),
  8 octets per step, used for payloads of :data:`C_THRESHOLD` octets or more;
* a pure-Python fallback (:func:`apply_mask_py`), always available, used for short payloads -- where it beats
  the fixed cost of a cffi call -- and for everything when the accelerator is missing or disabled.

The environment variable ``SNOW_RT_PY_NO_SPEEDUPS=1`` (read once, at import) forces the fallback, so CI can
check that both implementations behave the same. :data:`HAVE_SPEEDUPS` tells which one is in use.

Inputs are bytes-like objects of single octets (``bytes``, ``bytearray``, a ``memoryview`` of format ``B``).
A partial payload that does not start at offset 0 of its frame is (un)masked with the key rotated by the
offset: ``mask[offset % 4:] + mask[:offset % 4]``.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["C_THRESHOLD", "HAVE_SPEEDUPS", "apply_mask", "apply_mask_inplace", "apply_mask_py"]

C_THRESHOLD = 128
"""Payloads at least this long go to C. Below it one cffi call (allocate, call, copy out: ~0.5 µs) costs more
than the pure-Python XOR; measured with ``bench/bench_parser.py --mask``."""

_ffi: Any
_lib: Any
try:  # pragma: no cover - depends on whether the accelerator was built and on the environment
    if os.environ.get("SNOW_RT_PY_NO_SPEEDUPS", "") not in ("", "0"):
        raise ImportError("disabled by SNOW_RT_PY_NO_SPEEDUPS")
    import snow_rt_py._speedups as _speedups

    _ffi, _lib = _speedups.ffi, _speedups.lib
except ImportError:  # pragma: no cover
    _ffi = _lib = None

HAVE_SPEEDUPS: bool = _lib is not None
"""True when :func:`apply_mask` and :func:`apply_mask_inplace` use the C accelerator."""

# The result of a C mask is fully overwritten, so the usual zero-fill of ffi.new() is wasted work.
_new_uncleared: Any = _ffi.new_allocator(should_clear_after_alloc=False) if HAVE_SPEEDUPS else None

_from_bytes = int.from_bytes


BytesLike = bytes | bytearray | memoryview


def _key(mask: BytesLike) -> bytes:
    """``mask`` as ``bytes`` (what both implementations need), after checking its length."""
    if type(mask) is not bytes:
        mask = bytes(mask)
    if len(mask) != 4:
        raise ValueError(f"a masking key is 4 bytes, got {len(mask)}")
    return mask


def apply_mask_py(data: BytesLike, mask: BytesLike) -> bytes:
    """Mask or unmask ``data`` with the 4-byte ``mask`` in pure Python (the reference implementation).

    Args:
        data: the payload.
        mask: the masking key, exactly 4 bytes.

    Returns:
        The masked (or unmasked) payload as new ``bytes``.

    Raises:
        ValueError: ``mask`` is not 4 bytes long.
    """
    mask = _key(mask)
    n = len(data)
    if n == 0:
        return b""
    # One big-integer XOR runs at C speed inside CPython: far faster than a loop over the octets.
    # Big-endian keeps octet i of the integer at offset i, so the key repeated and cut to n lines up.
    return (_from_bytes(data, "big") ^ _from_bytes((mask * ((n + 3) >> 2))[:n], "big")).to_bytes(n, "big")


def apply_mask(data: BytesLike, mask: BytesLike) -> bytes:
    """Mask or unmask ``data`` with the 4-byte ``mask`` (in C when the payload is long enough).

    The input is read once and the result written once: no zero-filled scratch buffer, one copy into the
    returned ``bytes``. ``data`` may be a ``memoryview`` into a receive buffer; it is not modified.

    Args:
        data: the payload.
        mask: the masking key, exactly 4 bytes.

    Returns:
        The masked (or unmasked) payload as new ``bytes``.

    Raises:
        ValueError: ``mask`` is not 4 bytes long.
    """
    n = len(data)
    if n < C_THRESHOLD or _lib is None:
        return apply_mask_py(data, mask)
    mask = _key(mask)
    out = _new_uncleared("char[]", n)
    # cffi passes a bytes object's own storage to a `const char *`; other buffers need from_buffer.
    _lib.snow_mask_copy(data if type(data) is bytes else _ffi.from_buffer(data), n, mask, out)
    return _ffi.unpack(out, n)  # type: ignore[no-any-return]


def apply_mask_inplace(buf: bytearray | memoryview, mask: BytesLike) -> None:
    """Mask or unmask a writable buffer in place (in C when it is long enough).

    Cheaper than :func:`apply_mask` when the caller already owns a mutable copy of the payload (a frame
    reassembled from several reads, say): no allocation and a single pass over the octets.

    Args:
        buf: the payload, writable (a ``bytearray`` or a writable ``memoryview`` of format ``B``).
        mask: the masking key, exactly 4 bytes.

    Raises:
        ValueError: ``mask`` is not 4 bytes long.
        TypeError: ``buf`` is not a writable buffer.
    """
    mask = _key(mask)
    if not (type(buf) is bytearray or (isinstance(buf, memoryview) and not buf.readonly)):
        raise TypeError(f"apply_mask_inplace() needs a writable buffer, got {type(buf).__name__}")
    n = len(buf)
    if n < C_THRESHOLD or _lib is None:
        buf[:] = apply_mask_py(buf, mask)
        return
    _lib.snow_mask_inplace(_ffi.from_buffer(buf, require_writable=True), n, mask)
