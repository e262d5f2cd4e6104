"""Client throughput: 100 connections x 16 messages in flight, 32-byte texts, against our C echo server.

    .venv/bin/python bench/bench_client.py [--clients snow,websockets,picows] [--seconds 5] [--cpu 1]

The server (``build/echo_server``, examples/echo_server.c) runs unpinned; each client runs in its own process pinned
to one core (``taskset -c CPU``) and, for ``--seconds`` after every connection is open, sends a new 32-byte text
for each echo it gets back (16 in flight per connection). It prints one line per client: messages echoed per
second; then the memory of idle client connections (ours: RSS growth per open idle connection, 1,000 of them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 100
IN_FLIGHT = 16
MESSAGE = "x" * 32


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([str(ROOT / "build" / "echo_server"), "--port", "0"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    match = re.search(r"(ws://\S+)", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"bench_client: echo_server printed {line!r}")
    return proc, match.group(1)


def run_snow(url: str, seconds: float) -> float:
    import snow_rt_py

    counted = [0]
    measuring = [False]

    class Pump(snow_rt_py.Handler):
        def on_connect(self, conn: Any, path: str, headers: Any) -> None:
            for _ in range(IN_FLIGHT):
                conn.send_text(MESSAGE)

        def on_message(self, conn: Any, message: str | bytes) -> None:
            if measuring[0]:
                counted[0] += 1
            conn.send_text(MESSAGE)

    clients = [snow_rt_py.connect(url, Pump()) for _ in range(CONNECTIONS)]
    for client in clients:
        client.wait_open(30)
    time.sleep(0.5)  # warm-up (a benchmark, not a test: a fixed measuring window)
    measuring[0] = True
    time.sleep(seconds)
    measuring[0] = False
    rate = counted[0] / seconds
    for client in clients:
        client.close()
    return rate


async def _websockets(url: str, seconds: float) -> float:
    from websockets.asyncio.client import connect

    counted = [0]
    measuring = [False]

    async def one() -> None:
        async with connect(url, compression=None) as ws:
            for _ in range(IN_FLIGHT):
                await ws.send(MESSAGE)
            async for _ in ws:
                if measuring[0]:
                    counted[0] += 1
                await ws.send(MESSAGE)

    tasks = [asyncio.ensure_future(one()) for _ in range(CONNECTIONS)]
    await asyncio.sleep(2.0)
    measuring[0] = True
    await asyncio.sleep(seconds)
    measuring[0] = False
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return counted[0] / seconds


async def _picows(url: str, seconds: float) -> float:
    import picows

    counted = [0]
    measuring = [False]

    class Listener(picows.WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            for _ in range(IN_FLIGHT):
                transport.send(picows.WSMsgType.TEXT, MESSAGE.encode())

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if measuring[0]:
                counted[0] += 1
            transport.send(picows.WSMsgType.TEXT, MESSAGE.encode())

    conns = [await picows.ws_connect(Listener, url) for _ in range(CONNECTIONS)]
    await asyncio.sleep(1.0)
    measuring[0] = True
    await asyncio.sleep(seconds)
    measuring[0] = False
    for transport, _ in conns:
        transport.disconnect()
    return counted[0] / seconds


def idle_memory(url: str, count: int = 1000) -> float:
    """RSS growth per idle open client connection of ours, in bytes."""
    import snow_rt_py

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    snow_rt_py.connect(url, snow_rt_py.Handler()).wait_open(30)  # the runtime's loop and first allocations
    before = rss()
    clients = [snow_rt_py.connect(url, snow_rt_py.Handler()) for _ in range(count)]
    for client in clients:
        client.wait_open(60)
    after = rss()
    for client in clients:
        client.close()
    return (after - before) / count


def child(kind: str, url: str, seconds: float) -> None:
    if kind == "snow":
        rate = run_snow(url, seconds)
    elif kind == "memory":
        print(f"{idle_memory(url):.0f}")
        return
    else:
        import uvloop

        runner = _websockets if kind == "websockets" else _picows
        rate = uvloop.run(runner(url, seconds)) if kind == "picows" else asyncio.run(runner(url, seconds))
    print(f"{rate:.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="snow,websockets,picows")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--cpu", default="1", help="the core each client process is pinned to")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.seconds)
        return 0
    server, url = start_server()
    pin = ["taskset", "-c", args.cpu] if shutil.which("taskset") else []
    results: dict[str, float] = {}
    try:
        for kind in [*args.clients.split(","), "memory"]:
            cmd = [*pin, sys.executable, __file__, "--seconds", str(args.seconds), "--child", kind, url]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120 + args.seconds)
            if out.returncode != 0:
                print(f"{kind}: failed: {out.stderr.strip()[-500:]}")
                continue
            results[kind] = float(out.stdout.strip().splitlines()[-1])
            unit = "bytes per idle connection (RSS)" if kind == "memory" else "msgs/s"
            print(f"{kind:12} {results[kind]:>12,.0f} {unit}", flush=True)
    finally:
        server.terminate()
        server.wait(10)
    if "snow" in results and "websockets" in results and "picows" in results:
        print(
            f"snow / websockets = {results['snow'] / results['websockets']:.2f}x, "
            f"snow / picows = {results['snow'] / results['picows']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
