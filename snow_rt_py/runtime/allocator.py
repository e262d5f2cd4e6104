"""Keep large message buffers in the heap instead of fresh mmap()s (glibc only).

By default glibc serves allocations above 128 KiB with their own ``mmap`` and gives them back with ``munmap``
(and trims the heap top above 128 KiB), so a server handling 1 MiB messages gets brand-new pages from the kernel
for every payload, header copy and frame: about 256 page faults per MiB, which measured here as over half of
the server's time on a 1 MiB echo (BENCHMARKS.md). Raising the mmap and trim thresholds lets freed buffers be
reused. The cost is that up to ``TRIM_THRESHOLD`` bytes of freed heap stay with the process instead of
returning to the kernel at once. It is process-wide, done once, and can be turned off with
``ServerOptions(tune_malloc=False)`` (CLI ``--no-tune-malloc``).
"""

from __future__ import annotations

import ctypes
import logging
import threading

log = logging.getLogger("snow_rt_py.allocator")

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's own ceiling for its dynamic threshold
TRIM_THRESHOLD = 128 * 1024 * 1024

_lock = threading.Lock()
_done = False


def tune_for_large_messages() -> bool:
    """Raise glibc's mmap and trim thresholds once per process.

    Returns:
        True if the allocator is (now) tuned, False where there is no glibc ``mallopt``.
    """
    global _done
    with _lock:
        if _done:
            return True
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
        if not ok:
            log.warning("mallopt refused the thresholds; large messages will cost page faults")
        _done = ok
        return ok


_trim: ctypes._CFuncPtr | None = None  # type: ignore[name-defined]
_trim_looked_up = False


def release_free_memory() -> bool:
    """Give the heap's free memory back to the kernel now (glibc ``malloc_trim(0)``).

    The raised trim threshold keeps up to 128 MiB of freed heap warm for large messages; after a flood of
    connections ends (an attack, a mass reconnect) that memory is what the flood left behind. The server calls this
    once many connections have ended (``Server.connection_ended``), so what they held returns to the kernel.

    Returns:
        True if memory was released, False if none could be (or there is no glibc ``malloc_trim``).
    """
    global _trim, _trim_looked_up
    with _lock:
        if not _trim_looked_up:
            _trim_looked_up = True
            try:
                _trim = ctypes.CDLL(None).malloc_trim
                _trim.argtypes = [ctypes.c_size_t]
                _trim.restype = ctypes.c_int
            except (OSError, AttributeError):
                _trim = None
        trim = _trim
    return trim is not None and bool(trim(0))
