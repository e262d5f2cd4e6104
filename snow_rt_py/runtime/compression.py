"""permessage-deflate policy: the modes, the shared compressor pool, the dedicated-state memory budget.

The codec (negotiation, the per-message transform, bounded inflate) is sans-I/O in ``protocol/deflate.py``; this
module decides, per connection, what to offer and holds the zlib objects.

Modes (``ServerOptions.compression``):

* ``"shared"`` (the default): we answer ``server_no_context_takeover; client_no_context_takeover``, so no zlib
  state outlives a message. Compressors come from a pool of the runtime (``CompressorPool``; a full flush after
  every message empties a compressor's history, so any connection may use it next); each received compressed
  message is inflated by a fresh decompressor, dropped at the message's end. An idle connection holds no zlib
  state. A broadcast is compressed once, and the same frame object queued for every such member (rooms.py).
* ``"dedicated"``: context takeover both ways where the client allows it (a better ratio on small, repetitive
  messages): the connection keeps its own compressor (``compression_window_bits``, ``compression_mem_level``) and
  decompressor. Their memory (zlib's own formula, ``protocol/deflate.py: compressor_memory``) is reserved from
  ``compression_memory_budget``, one account for every server of the runtime; a connection whose state would not
  fit is served in ``shared`` mode instead, and counted (``Server.compression_statistics()["fallbacks"]``).
* ``"off"``: the extension is never negotiated.

Messages shorter than ``compression_min_size`` bytes go out uncompressed (RSV1 clear, RFC 7692 §6 allows it per
message).

Where the work runs: compression runs on the thread that sends (a handler's: the loop thread with ``workers=0``, a
worker thread otherwise; zlib releases the GIL while it works, so other threads -- the loop included -- keep
running while a worker compresses), except a message of ``OFFLOAD_FROM`` bytes or more sent from the loop thread:
that one is compressed on one of the pool's own threads (:meth:`CompressorPool.offload`) while the loop goes on,
and the connection holds whatever is sent after it until it is queued (``Connection._send_off_loop``), so the
order of messages never changes. Inflation runs on the loop thread, in ``receive_data``, 256 KiB of input at a
time. BENCHMARKS.md measures how long the loop is held by a large message either way.

The C parts do the common case of both, in each direction where no context is kept: the protocol's
(``protocol/_protocol_core.c``) inflates whole compressed frames as they are read (the loop thread), when the
protocol's inflater keeps no context (``Inflater.stateless_window_bits``); the connection's
(``runtime/_connection_core.c``, told by :attr:`ConnectionDeflate.hot_path`, read once when the handshake sets
``Connection._deflate``) has the protocol's C compress messages of
``compression_min_size`` bytes up to 64 KiB sent on the loop thread, with :data:`SHARED_LEVEL` and
:data:`SHARED_MEM_LEVEL` like the pool -- the same bytes -- and its own zlib state (the process's, reset after each
message, used under the GIL). Everything else (larger messages, other threads, dedicated contexts, anything
irregular in a received frame) is done here and in ``protocol/deflate.py``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from snow_rt_py.protocol.deflate import (
    MAX_WINDOW_BITS,
    DeflateParams,
    Inflater,
    compress_message,
    compressor_memory,
    decompressor_memory,
    negotiate,
    new_compressor,
)
from snow_rt_py.protocol.frames import frame_header

if TYPE_CHECKING:
    from snow_rt_py.runtime.options import ServerOptions

MODES = ("shared", "dedicated", "off")
POOL_KEEP = 4
"""Idle compressors kept per window size by the runtime's pool (more are made when more threads compress at once,
and dropped when returned beyond this)."""
SHARED_LEVEL = 1
SHARED_MEM_LEVEL = 5
"""zlib's compression level and memLevel for messages compressed from an empty context: the pool's compressors and
the C hot path's, which must agree (see :attr:`ConnectionDeflate.hot_path`). Not zlib's defaults (6 and 8): a
message from an empty context pays zlib's fixed costs every time -- among them clearing a hash table of
2**(memLevel + 8) bytes at the full flush -- and at level 1, memLevel 5 a 1 KiB JSON chat message compresses in
about 8.2 µs instead of 11.3, for output about 3 % bigger (BENCHMARKS.md: the echo and wire figures). Dedicated
compressors (with a context) keep level 6 and ``compression_mem_level``."""
PROBE_FROM = 256 << 10
"""Messages from this size on are probed before they are compressed (see :func:`worth_compressing`)."""
PROBE_BYTES = 64 << 10
OFFLOAD_FROM = 128 << 10
"""Messages from this size on, sent from the event loop's thread, are compressed on a thread of the pool (about a
millisecond of zlib's time at this size): the loop is never held longer than that by a handler's large message."""
OFFLOAD_THREADS = 2

T = TypeVar("T")


def worth_compressing(data: bytes | bytearray | memoryview) -> bool:
    """False for a large message that does not compress: its first 64 KiB, deflated at level 1, shrink by less than
    10 %. Such a message (already compressed media, random bytes) goes out plain, as RFC 7692 §6 allows per
    message: deflating 16 MiB of random bytes at the default level takes about half a second of the sending
    thread for nothing. Messages under 256 KiB are not probed."""
    if len(data) < PROBE_FROM:
        return True
    sample = bytes(memoryview(data)[:PROBE_BYTES])
    return len(zlib.compress(sample, 1, -15)) < PROBE_BYTES * 9 // 10


def compressed_frame(opcode: int, payload: bytes) -> tuple[bytes, bytes | None]:
    """A final frame with RSV1 set carrying a compressed ``payload``: ``(frame, None)``, or ``(header, payload)``
    for a large payload, queued apart (not copied)."""
    header = frame_header(opcode, len(payload))
    header = bytes((header[0] | 0x40,)) + header[1:]
    if len(payload) >= 64 << 10:
        return header, payload
    return header + payload, None


def _shared_compressor(window_bits: int, rle: bool) -> Any:
    return new_compressor(window_bits, SHARED_MEM_LEVEL, rle=rle, level=SHARED_LEVEL)


class CompressorPool:
    """The runtime's shared compressors and its account of dedicated state (``Runtime.component("compression")``).

    Thread-safe: a compressor is taken by one thread, used for one message (ended by a full flush), and returned.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[int, bool], list[Any]] = {}
        self.reserved = 0  # bytes of dedicated zlib state reserved by live connections
        self.dedicated = 0  # connections in dedicated mode now
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None  # made at the first offload
        self.offloaded = 0  # messages compressed off the loop

    def offload(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` (a compression) on one of the pool's threads (at most ``OFFLOAD_THREADS``)."""
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(OFFLOAD_THREADS, "snow-compress")
            self.offloaded += 1
            return self._executor.submit(fn, *args)

    def close(self) -> None:
        """End the pool's threads (the runtime closes; idempotent)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def compress(self, data: bytes | bytearray | memoryview, window_bits: int, rle: bool) -> bytes:
        """Compress one whole message with no context taken over (a pooled compressor, full flush)."""
        key = (window_bits, rle)
        idle = self._idle.get(key)
        try:
            compressor = idle.pop() if idle else _shared_compressor(window_bits, rle)
        except IndexError:  # another thread took the last one meanwhile
            compressor = _shared_compressor(window_bits, rle)
        payload = compress_message(compressor, data, reset=True)
        if idle is None:
            idle = self._idle.setdefault(key, [])
        if len(idle) < POOL_KEEP:
            idle.append(compressor)
        return payload

    def idle_compressors(self) -> int:
        """How many compressors the pool holds now."""
        return sum(len(v) for v in self._idle.values())

    def reserve(self, nbytes: int, budget: int) -> bool:
        """Reserve ``nbytes`` of dedicated state if the total stays within ``budget``."""
        with self._lock:
            if self.reserved + nbytes > budget:
                return False
            self.reserved += nbytes
            self.dedicated += 1
            return True

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.reserved -= nbytes
            self.dedicated -= 1


class ConnectionDeflate:
    """permessage-deflate as negotiated for one connection: ``Connection._deflate`` (None when not negotiated).

    Attributes:
        params: what was agreed.
        mode: ``"shared"`` or ``"dedicated"`` (what the connection got: a dedicated request over budget is shared).
        min_size: messages shorter than this go out uncompressed.
        inflater: the protocol's decompressor for this connection.
        shares_frames: our messages start from an empty context: one compressed frame fits every such connection
            with the same window (a broadcast compresses once for all of them).
        hot_path: what the connection's C part (``runtime/_connection_core.c``) reads once, when this object is set
            as a connection's ``_deflate``: ``(deflate_window_bits, rle, level, mem_level, min_size)``; the first is
            our compressor's window when we keep no context (``shares_frames``: the C path may compress a send
            exactly as :meth:`compress_shared` does), else 0.
    """

    __slots__ = (
        "_compressor",
        "_lock",
        "_mem_level",
        "_pool",
        "_reserved",
        "hot_path",
        "inflater",
        "min_size",
        "mode",
        "params",
        "shares_frames",
    )

    def __init__(
        self, params: DeflateParams, mode: str, options: ServerOptions, pool: CompressorPool, reserved: int
    ) -> None:
        self.params = params
        self.mode = mode
        self.min_size = options.compression_min_size
        self.inflater = Inflater(
            context_takeover=not params.client_no_context_takeover, window_bits=params.client_window_bits
        )
        self.shares_frames = params.server_no_context_takeover
        self.hot_path = _hot_path(params, self.min_size)
        self._pool = pool
        self._reserved = reserved
        self._mem_level = options.compression_mem_level
        self._compressor: Any = None  # dedicated: made at the first compressed message
        # Dedicated: compressing and queueing are one step, so the client inflates in the order we compressed.
        self._lock = threading.Lock() if not self.shares_frames else None

    @property
    def key(self) -> tuple[int, bool]:
        """What a frame shared between connections depends on: the window and the RLE strategy."""
        return self.params.server_window_bits, self.params.rle

    def compress_shared(self, data: bytes | bytearray | memoryview) -> bytes:
        """The compressed payload of ``data`` starting from an empty context (valid for any connection with the
        same :attr:`key`)."""
        return self._pool.compress(data, self.params.server_window_bits, self.params.rle)

    def compress_own(self, data: bytes | bytearray | memoryview) -> bytes:
        """Compress with this connection's own context (dedicated; call with :attr:`lock_` held)."""
        if self._compressor is None:
            self._compressor = new_compressor(self.params.server_window_bits, self._mem_level, rle=self.params.rle)
        return compress_message(self._compressor, data, reset=False)

    @property
    def lock_(self) -> threading.Lock | None:
        """Held across compressing and queueing a message in dedicated mode (None in shared mode)."""
        return self._lock

    def forget_context(self) -> None:
        """A message compressed with our context was not queued (slow consumer): start a new context, so no later
        message refers to bytes the client never got (a fresh compressor's output is valid in any stream)."""
        self._compressor = None

    def release(self) -> None:
        """The connection ended: give back its state and its reservation (idempotent)."""
        self._compressor = None
        self.inflater.discard()
        if self._reserved:
            self._pool.release(self._reserved)
            self._reserved = 0


@functools.lru_cache(maxsize=128)
def _hot_path(params: DeflateParams, min_size: int) -> tuple[int, bool, int, int, int]:
    """:attr:`ConnectionDeflate.hot_path` (one tuple for every connection with the same parameters)."""
    return (
        params.server_window_bits if params.server_no_context_takeover else 0,
        params.rle,
        SHARED_LEVEL,
        SHARED_MEM_LEVEL,
        min_size,
    )


def _negotiate(offers: tuple[str, ...], context_takeover: bool, window_bits: int) -> DeflateParams | None:
    """:func:`~snow_rt_py.protocol.deflate.negotiate`, remembered for short offers: clients of one kind send the
    same offer, and the connections then share one (immutable) DeflateParams and response string. (Long offers are
    not kept: a client could not fill the cache with large strings.)"""
    if sum(map(len, offers)) > 256:
        return negotiate(list(offers), context_takeover=context_takeover, window_bits=window_bits)
    return _negotiate_short(offers, context_takeover, window_bits)


@functools.lru_cache(maxsize=128)
def _negotiate_short(offers: tuple[str, ...], context_takeover: bool, window_bits: int) -> DeflateParams | None:
    return negotiate(list(offers), context_takeover=context_takeover, window_bits=window_bits)


def negotiate_for(
    options: ServerOptions, pool: CompressorPool, offers: list[str]
) -> tuple[ConnectionDeflate | None, bool]:
    """What to answer a client's ``Sec-WebSocket-Extensions`` offers under ``options``.

    Returns:
        ``(deflate, fell_back)``: the connection's :class:`ConnectionDeflate` (None: no compression), and whether a
        dedicated connection was served in shared mode because the budget was spent.
    """
    mode = options.compression
    if mode == "off" or not offers:
        return None, False
    if mode == "dedicated":
        params = _negotiate(tuple(offers), True, options.compression_window_bits)
        if params is None:
            return None, False
        cost = 0
        if not params.server_no_context_takeover:
            cost += compressor_memory(params.server_window_bits, options.compression_mem_level)
        if not params.client_no_context_takeover:
            cost += decompressor_memory(params.client_window_bits)
        if not cost:  # the client asked for no context either way: nothing to hold
            return ConnectionDeflate(params, "dedicated", options, pool, 0), False
        if pool.reserve(cost, options.compression_memory_budget):
            return ConnectionDeflate(params, "dedicated", options, pool, cost), False
        shared = _negotiate(tuple(offers), False, MAX_WINDOW_BITS)
        assert shared is not None  # the same offer fits: only our policy differs
        return ConnectionDeflate(shared, "shared", options, pool, 0), True
    params = _negotiate(tuple(offers), False, MAX_WINDOW_BITS)
    if params is None:
        return None, False
    return ConnectionDeflate(params, "shared", options, pool, 0), False
