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

from typing import Any

from snow_rt_py import speedups

__all__ = ["C_THRESHOLD", "HAVE_SPEEDUPS", "MaskedPayload", "apply_mask", "apply_mask_inplace", "apply_mask_py"]

C_THRESHOLD = 160
"""Payloads at least this long go to C. A cffi call has a fixed cost (~0.5 µs on the reference machine) that
the pure-Python XOR only exceeds from ~150 bytes on; see ``bench/bench_parser.py --mask``."""

_ffi: Any
_lib: Any
_speedups = speedups.load("snow_rt_py._speedups")
_ffi, _lib = (None, None) if _speedups is None else (_speedups.ffi, _speedups.lib)
# The protocol's C part: a large payload is unmasked straight into its message's bytes (MaskedPayload).
_core: Any = speedups.load("snow_rt_py.protocol._protocol_core")

HAVE_SPEEDUPS: bool = _lib is not None
"""True when :func:`apply_mask` and :func:`apply_mask_inplace` use the C accelerator."""

# apply_mask's C path writes into a scratch buffer, then copies it into the result. A fresh scratch buffer per
# call would be two big allocations alive at once, and when both are freed glibc hands the top of the heap back
# to the kernel (trim threshold = 2x the largest freed chunk): every call then page-faults its memory in again,
# 15x slower at 1 MiB on a VM. So scratch buffers are reused. Each caller pops one from the pool and puts it
# back (list.pop/append are atomic), so threads -- the C call releases the GIL -- never share one; the pool
# holds at most one buffer per concurrent caller, each at most _SCRATCH_MAX bytes (bigger payloads get a
# one-off buffer). Scratch memory is fully overwritten, so ffi.new()'s zero-fill is skipped.
_SCRATCH_MIN = 64 << 10
_SCRATCH_MAX = 4 << 20
_POOL_MAX = 16  # buffers kept for reuse (MaskedPayload holds one per connection receiving a large frame)
_scratch_pool: list[Any] = []
_new_uncleared: Any = _ffi.new_allocator(should_clear_after_alloc=False) if HAVE_SPEEDUPS else None
_CHAR_ARRAY: Any = _ffi.typeof("char[]") if HAVE_SPEEDUPS else None

_from_bytes = int.from_bytes


BytesLike = bytes | bytearray | memoryview


def _key(mask: BytesLike) -> bytes:
    """``mask`` as ``bytes`` (what both implementations need), after checking its length."""
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
    if type(mask) is not bytes or len(mask) != 4:
        mask = _key(mask)
    n = len(data)
    if n == 0:
        return b""
    # One big-integer XOR runs at C speed inside CPython: far faster than a loop over the octets.
    # Big-endian keeps octet i of the integer at offset i, so the key repeated and cut to n lines up.
    return (_from_bytes(data, "big") ^ _from_bytes((mask * ((n + 3) >> 2))[:n], "big")).to_bytes(n, "big")


def apply_mask(data: BytesLike, mask: BytesLike) -> bytes:
    """Mask or unmask ``data`` with the 4-byte ``mask`` (in C when the payload is long enough).

    ``data`` may be a ``memoryview`` into a receive buffer: it is read in place, never modified, and no view
    on it is kept. The C path writes the result into a reused scratch buffer (no allocation, no zero-filling)
    and copies it once into the returned ``bytes``. Safe to call from several threads at once.

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
    if type(mask) is not bytes or len(mask) != 4:
        mask = _key(mask)  # C reads exactly 4 octets of the key: never pass it a shorter one
    # cffi passes a bytes object's own storage to a `const char *`; other buffers need from_buffer.
    src = data if type(data) is bytes else _ffi.from_buffer(data)
    scratch = _take_scratch(n)
    try:
        _lib.snow_mask_copy(src, n, mask, scratch)
        return _ffi.unpack(scratch, n)  # type: ignore[no-any-return]
    finally:
        _give_scratch(scratch)


def apply_mask_inplace(buf: bytearray | memoryview, mask: BytesLike) -> None:
    """Mask or unmask a writable buffer in place (in C when it is long enough).

    Cheaper than :func:`apply_mask` when the caller already owns a mutable copy of the payload (a message
    reassembled from several frames, say): no allocation, a single pass over the octets.

    Args:
        buf: the payload, writable: a ``bytearray`` or a writable ``memoryview`` of format ``B``.
        mask: the masking key, exactly 4 bytes.

    Raises:
        ValueError: ``mask`` is not 4 bytes long.
        TypeError: ``buf`` is not a writable buffer.
    """
    if type(mask) is not bytes or len(mask) != 4:
        mask = _key(mask)
    if not (type(buf) is bytearray or (isinstance(buf, memoryview) and not buf.readonly)):
        raise TypeError(f"apply_mask_inplace() needs a writable buffer, got {type(buf).__name__}")
    n = len(buf)
    if n < C_THRESHOLD or _lib is None:
        buf[:] = apply_mask_py(buf, mask)
    else:
        _lib.snow_mask_inplace(_ffi.from_buffer(buf, require_writable=True), n, mask)


def _take_scratch(n: int) -> Any:
    """A C buffer of at least ``n`` octets, uncleared: from the pool if one is big enough, else a new one."""
    if n > _SCRATCH_MAX:
        return _new_uncleared(_CHAR_ARRAY, n)
    try:
        scratch = _scratch_pool.pop()
    except IndexError:
        scratch = None
    if scratch is None or len(scratch) < n:
        scratch = _new_uncleared(_CHAR_ARRAY, max(_SCRATCH_MIN, 1 << (n - 1).bit_length()))
    return scratch


def _give_scratch(scratch: Any) -> None:
    if len(scratch) <= _SCRATCH_MAX and len(_scratch_pool) < _POOL_MAX:
        _scratch_pool.append(scratch)


class MaskedPayload:
    """A masked payload of known length that arrives in pieces (a large frame spread over several reads).

    Each piece is unmasked straight into one buffer as it arrives, so the whole payload is read once and
    copied once into the final ``bytes`` -- instead of being accumulated in a receive buffer (and copied
    again each time that buffer grows) and then unmasked. With the C accelerator the buffer is a pooled
    scratch buffer (no allocation, no zero-filling); without it, a ``bytearray`` and :func:`apply_mask_py`.

    Call :meth:`take` once :attr:`complete` (or :meth:`discard` to give the buffer back early).

    Args:
        length: the payload length, > 0.
        key: the frame's 4-byte masking key.
    """

    __slots__ = ("_buf", "_key", "filled", "length")

    def __init__(self, length: int, key: BytesLike) -> None:
        self.length = length
        self.filled = 0
        self._key = _key(key)
        # Small payloads (a text frame split over reads, say) get a buffer of their own size, not a pooled one. A
        # large one is unmasked into its own bytes object when the protocol's C part is there: no final copy.
        self._buf: Any
        if length < _SCRATCH_MIN or _lib is None:
            self._buf = bytearray(length)
        elif _core is not None:
            self._buf = _core.payload_buffer(length)
        else:
            self._buf = _take_scratch(length)

    @property
    def complete(self) -> bool:
        """True when all ``length`` octets have been fed."""
        return self.filled == self.length

    def feed(self, data: BytesLike, start: int = 0, end: int | None = None) -> int:
        """Unmask octets of ``data[start:end]`` into place, at most as many as the payload still needs.

        ``data`` is only read during the call (no view on it is kept).

        Returns:
            How many octets were taken from ``data`` (the rest belongs to what follows the payload).
        """
        if end is None:
            end = len(data)
        count = min(end - start, self.length - self.filled)
        if count <= 0:
            return 0
        filled = self.filled
        phase = filled & 3
        key = self._key if not phase else self._key[phase:] + self._key[:phase]
        buf = self._buf
        if type(buf) is bytes:
            _core.mask_into(buf, filled, data, start, count, self._key)
        elif type(buf) is bytearray:
            with memoryview(data) as view:
                buf[filled : filled + count] = apply_mask(view[start : start + count], key)
        else:
            src = _ffi.from_buffer(data)
            _lib.snow_mask_copy(src + start, count, key, buf + filled)
        self.filled = filled + count
        return count

    def peek(self, start: int, end: int) -> bytes:
        """A copy of the unmasked octets ``start:end`` received so far (``end <= filled``)."""
        buf = self._buf
        if type(buf) is bytes:
            return buf[start:end]
        if type(buf) is bytearray:
            return bytes(buf[start:end])
        return _ffi.unpack(buf + start, end - start)  # type: ignore[no-any-return]

    def take(self) -> bytes:
        """The unmasked payload (call once, when :attr:`complete`); the buffer goes back to the pool.

        Raises:
            ValueError: the payload is not complete yet.
        """
        if self.filled != self.length:
            raise ValueError(f"payload incomplete: {self.filled} of {self.length} octets")
        buf, self._buf = self._buf, None
        if type(buf) is bytes:
            return buf  # filled in place: the message's own object
        if type(buf) is bytearray:
            return bytes(buf)
        try:
            return _ffi.unpack(buf, self.length)  # type: ignore[no-any-return]
        finally:
            _give_scratch(buf)

    def discard(self) -> None:
        """Give the buffer back without producing the payload (the connection failed or ended). Idempotent."""
        buf, self._buf = self._buf, None
        if buf is not None and type(buf) is not bytearray and type(buf) is not bytes:
            _give_scratch(buf)
