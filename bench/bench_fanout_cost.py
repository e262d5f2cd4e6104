"""The runtime's own cost of one broadcast to a large room, without sockets (issue 21).

10,000 ``Connection`` objects of a real ``Server`` (echo handler, inline, uvloop), each with a fake transport
that only counts writes, all members of one room; each step is ``rooms.broadcast`` of a 64-byte text (the frame
queued on every member: ``ConnectionCore.offer_all``) and then the server's end-of-iteration flush (every member's
FIFO written: ``flush_all``), timed apart. What it leaves out is the kernel: the write system calls and the
readers they wake.

    .venv/bin/python bench/bench_fanout_cost.py                 # median of 30 broadcasts, 10,000 members
    SNOW_RT_PY_NO_SPEEDUPS=1 .venv/bin/python bench/bench_fanout_cost.py   # the pure-Python configuration
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench_hotpath import HANDSHAKE, FakeTransport

from snow_rt_py.apps import APPS
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.loop import new_event_loop
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.runtime import Runtime
from snow_rt_py.runtime.server import Server


async def measure(members: int, rounds: int) -> tuple[float, float]:
    """Median seconds of (queueing on every member, writing every member) over ``rounds`` broadcasts."""
    runtime = Runtime()
    server = Server(APPS["echo"](), ServerOptions(ping_interval=0), asyncio.get_running_loop(), runtime)
    for _ in range(members):
        conn = Connection(server)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        conn.data_received(HANDSHAKE)
        runtime.rooms.join(conn, "room")
    server._flush_dirty()
    queue, flush = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        runtime.rooms.broadcast("room", "x" * 64)
        t1 = time.perf_counter()
        server._flush_dirty()
        queue.append(t1 - t0)
        flush.append(time.perf_counter() - t1)
    return statistics.median(queue), statistics.median(flush)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=30)
    opts = parser.parse_args()
    loop = new_event_loop()
    try:
        queue, flush = loop.run_until_complete(measure(opts.members, opts.rounds))
    finally:
        loop.close()
    n = opts.members
    print(
        f"{n:,} members: queue {queue * 1e3:.2f} ms ({queue / n * 1e9:.0f} ns per member), "
        f"flush {flush * 1e3:.2f} ms ({flush / n * 1e9:.0f} ns per member, the fake transport's write included)"
    )


if __name__ == "__main__":
    main()
