"""Where one connection's server time goes (issue 26): cProfile of our echo server under connection churn.

The echo app (``--app echo``'s handler, default options: heartbeat on) runs in this process on uvloop, pinned to
core 0; ``bench/churn.c`` (built by bench_churn.py's rules) drives it from core 1 with ``--inflight`` cycles in
flight. cProfile is on for the measured window only. The table groups the profile by stage of a connection's life
(accept, handshake parse and checks, admission, actor and on_connect, heartbeat, the echo, close and teardown) as
microseconds per cycle of profiled time, then prints cProfile's own top functions.

cProfile slows Python code (about 2x here), so the per-stage figures are shares of a profiled cycle, not real
time; the unprofiled server CPU per cycle is what bench_churn.py reports.

    .venv/bin/python bench/profile_churn.py                  # ws://, 3 s
    .venv/bin/python bench/profile_churn.py --tls --top 40   # wss://, full TLS handshakes
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import bench_churn as bc
import bench_echo as be

from snow_rt_py.apps import APPS
from snow_rt_py.runtime.loop import new_event_loop
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.runtime import Runtime
from snow_rt_py.runtime.server import Server

STAGES = {  # function name (as cProfile names it: file:line(name)) -> stage; cumulative time
    "connection_made": "accept: connection_made (transport, TCP_NODELAY, peer, handshake timer)",
    "__init__ (connection.py)": "accept: Connection.__init__ (fields, ServerProtocol)",
    "_on_request": "handshake accepted: _on_request (all of admission, actor, on_connect, heartbeat, 101)",
    "check": "  of which admission.check",
    "spawn": "  of which scheduler.spawn (actor)",
    "connection_accepted": "  of which server.connection_accepted",
    "start (heartbeat.py)": "  of which heartbeat start",
    "accept (connection.py)": "  of which protocol accept (101)",
    "connection_lost": "teardown: connection_lost (actor DISCONNECT, on_close, heartbeat stop, rooms)",
    "_finish": "close: _finish (flush, close_transport)",
}


def stage_rows(stats: pstats.Stats, cycles: int) -> list[tuple[str, float]]:
    rows = []
    table: Any = stats.stats  # type: ignore[attr-defined]
    for key, stage in STAGES.items():
        name, _, where = key.partition(" (")
        where = where.rstrip(")")
        total = 0.0
        for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in table.items():
            if func == name and (not where or Path(filename).name == where) and "snow_rt_py" in filename:
                total += ct
        rows.append((stage, total / cycles * 1e6))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tls", action="store_true", help="wss://, a full TLS handshake per cycle")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--top", type=int, default=25, help="cProfile's top functions by own time")
    opts = parser.parse_args()
    bc.build_churn()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(be.SERVER_CORE)})
    tmp = Path(tempfile.mkdtemp(prefix="profile_churn."))
    cert = bc.make_certificate(tmp) if opts.tls else None
    options = ServerOptions(host="127.0.0.1", port=0)
    if cert is not None:
        options.tls_cert, options.tls_key = str(cert[0]), str(cert[1])
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(Server.start(APPS["echo"](), options, Runtime()))
    profile = cProfile.Profile()
    result: dict[str, Any] = {}

    def on_event(event: str) -> None:
        if event == "measure_start":
            loop.call_soon_threadsafe(profile.enable)
        elif event == "measure_end":
            loop.call_soon_threadsafe(profile.disable)

    def drive() -> None:
        args = ["-u", server.url, "-k", str(opts.inflight), "-d", str(opts.duration), "-w", "1", "-q"]
        try:
            result.update(be.run_loadgen(args, opts.duration + 30, on_event, program=bc.CHURN))
        finally:
            loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=drive, daemon=True).start()
    loop.run_forever()
    profile.disable()
    loop.run_until_complete(server.close(2.0))
    cycles = max(1, int(result.get("cycles", 0)))
    stats = pstats.Stats(profile)
    total = sum(tt for (_cc, _nc, tt, _ct, _c) in stats.stats.values())  # type: ignore[attr-defined]
    print(
        f"{cycles} cycles profiled ({result.get('cycles_per_sec', 0):,.0f}/s under cProfile); "
        f"profiled Python time {total / cycles * 1e6:,.1f} µs per cycle"
    )
    print("| stage | µs per cycle (cumulative, profiled) |\n|---|---:|")
    for stage, us in stage_rows(stats, cycles):
        print(f"| {stage} | {us:,.1f} |")
    stats.sort_stats("tottime").print_stats(opts.top)
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
