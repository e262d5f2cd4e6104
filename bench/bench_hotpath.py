"""The Python cost of one echoed message, without sockets (issue 12's groundwork).

A :class:`~snow_rt_py.runtime.connection.Connection` of a real :class:`~snow_rt_py.runtime.server.Server` (echo
handler, inline, uvloop) is given a fake transport; after the opening handshake, each step is one
``data_received`` of one masked 32-byte text frame, then the server's end-of-iteration flush, exactly what one
read of one message costs in Python on the loop thread (the reply is "written" to the fake transport). What this
leaves out is uvloop's own read callback, the ``bytes`` object of each read and the system calls.

Usage::

    .venv/bin/python bench/bench_hotpath.py              # µs per message, median of 5 runs of 200,000
    .venv/bin/python bench/bench_hotpath.py --calls      # also: Python and built-in calls per message
    .venv/bin/python bench/bench_hotpath.py --profile    # also: cProfile's table (inflates every call)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from snow_rt_py.apps import APPS
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.loop import new_event_loop
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.runtime import Runtime
from snow_rt_py.runtime.server import Server

HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class FakeTransport:
    """What a Connection asks of its transport, doing nothing but counting writes."""

    def __init__(self) -> None:
        self.writes = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def writelines(self, items: list[bytes]) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def is_reading(self) -> bool:
        return True

    def close(self) -> None:
        pass


def text_frame(payload: bytes, mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    """A masked client text frame (payload under 126 bytes)."""
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def make_step(runtime: Runtime, app: str = "echo") -> tuple[Callable[[int], None], FakeTransport]:
    """A function running ``n`` messages through an accepted connection, and its transport."""
    server = Server(APPS[app](), ServerOptions(ping_interval=0), asyncio.get_running_loop(), runtime)
    conn = Connection(server)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(HANDSHAKE)
    server._flush_dirty()
    frame = text_frame(b"x" * 32)
    received, flush = conn.data_received, server._flush_dirty

    def run(n: int) -> None:
        for _ in range(n):
            received(frame)
            flush()

    run(1000)  # warm up
    return run, transport


def count_calls(run: Callable[[int], None], n: int = 1000) -> None:
    calls: collections.Counter[str] = collections.Counter()

    def profiler(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls[frame.f_code.co_qualname] += 1
        elif event == "c_call":
            calls["(builtin) " + getattr(arg, "__qualname__", str(arg))] += 1

    sys.setprofile(profiler)
    run(n)
    sys.setprofile(None)
    ours = {k: v for k, v in calls.items() if k not in ("run", "FakeTransport.write", "(builtin) setprofile")}
    python = sum(v for k, v in ours.items() if not k.startswith("(builtin)")) / n
    builtin = sum(v for k, v in ours.items() if k.startswith("(builtin)")) / n
    print(f"per message: {python:.1f} Python calls, {builtin:.1f} built-in calls")
    for name, count in sorted(ours.items(), key=lambda kv: -kv[1]):
        print(f"  {count / n:5.2f}  {name}")


async def main_async(opts: argparse.Namespace) -> None:
    runtime = Runtime()
    run, transport = await make_step(runtime, opts.app)
    times = []
    for _ in range(opts.runs):
        t0 = time.perf_counter()
        run(opts.messages)
        times.append((time.perf_counter() - t0) / opts.messages * 1e6)
    spread = (max(times) - min(times)) / statistics.median(times)
    print(
        f"{statistics.median(times):.2f} µs per message (median of {opts.runs} runs of {opts.messages:,}; "
        f"spread {spread:.0%}; {transport.writes:,} writes)"
    )
    if opts.calls:
        count_calls(run)
    if opts.profile:
        profile = cProfile.Profile()
        profile.enable()
        run(50_000)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", action="store_true", help="count Python and built-in calls per message")
    parser.add_argument("--app", default="echo", choices=["echo", "bench"], help="the handler (--app of the CLI)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's table for 50,000 messages")
    opts = parser.parse_args()
    loop = new_event_loop()
    try:
        loop.run_until_complete(main_async(opts))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
