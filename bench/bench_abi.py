"""The cost of the C boundary (issue 5): the same handlers written in C on libsnow_ws and in Python, same run.

1. Echo of 32-byte text messages: ``build/echo_server`` (examples/echo_server.c: a C on_message calling
   snow_ws_send) against the Python CLI's ``--app echo`` (EchoApp: ``conn.send(message)``). Both run on the same
   runtime (one event loop, handlers inline, no heartbeat); the difference is what one message costs to cross
   into C and back: a SnowString copy and one cffi transition (Python -> C callback); the reply (snow_ws_send to
   the same connection inside the callback) is encoded in C and queued in one batch when the callback returns.
   Run with SNOW_RT_PY_ABI_NO_FAST_REPLY=1 in the environment to measure the plain path (a second transition,
   C -> snow_ws_send -> Python, per reply).
2. The bench protocol (``--app bench`` of issue 4) as a C program: ``build/chat_server --app bench`` against the
   Python CLI's ``--app bench``.
   a. its echo path (text not starting with 'B'), loaded like 1;
   b. its broadcast path: M members in room "bench", one of them sends 64-byte 'B' messages; a fan-out client
      (below, raw asyncio on uvloop: it only counts bytes, every delivery being one 66-byte frame) measures
      deliveries per second over bursts of broadcasts, and the time for one broadcast to reach every member.

Load for 1 and 2a comes from bench/loadgen.c through bench_echo.py's harness (server on core 0, load on core 1,
100 connections, k=16 and k=1 in flight); the fan-out client runs pinned to core 1 too. Medians of ``--runs``
(3) interleaved runs, each server a fresh process.

    make build && .venv/bin/python bench/bench_abi.py            # about 5 minutes
    .venv/bin/python bench/bench_abi.py --quick                  # 1 run, short windows
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_echo as be

ROOT = be.ROOT
PYTHON = sys.executable
SNOW = [PYTHON, "-m", "snow_rt_py", "serve", "--host", "127.0.0.1", "--port", "0", "--ping-interval", "0"]

ECHO_SERVERS = {
    "python echo (--app echo)": be.ServerSpec("python echo (--app echo)", [*SNOW, "--app", "echo"]),
    "C echo (echo_server)": be.ServerSpec(
        "C echo (echo_server)", [str(ROOT / "build" / "echo_server"), "--port", "0", "--ping-interval", "0"]
    ),
    "python bench app": be.ServerSpec("python bench app", [*SNOW, "--app", "bench"]),
    "C bench app (chat_server)": be.ServerSpec(
        "C bench app (chat_server)",
        [str(ROOT / "build" / "chat_server"), "--app", "bench", "--port", "0", "--ping-interval", "0"],
    ),
}
PAIRS = [("python echo (--app echo)", "C echo (echo_server)"), ("python bench app", "C bench app (chat_server)")]
FANOUT_SERVERS = ["python bench app", "C bench app (chat_server)"]


# -- the fan-out client (run as `bench_abi.py --fanout-client URL ...`, pinned to the load core) --------------


class Member(asyncio.Protocol):
    """One member connection: does the opening handshake, then only counts the bytes it receives."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.head = b""
        self.count = 0
        self.target = 0
        self.reached: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(f"handshake failed: {self.head[:80]!r}"))
                return
            self.count = len(self.head) - end - 4
            self.opened.set_result(None)
        else:
            self.count += len(data)
        if self.reached is not None and self.count >= self.target:
            self.reached.set_result(None)
            self.reached = None

    def expect(self, nbytes: int) -> asyncio.Future[None]:
        self.target = self.count + nbytes
        self.reached = asyncio.get_running_loop().create_future()
        if self.count >= self.target:
            self.reached.set_result(None)
        return self.reached


def client_frame(payload: bytes) -> bytes:
    """A masked text frame (payload < 126 bytes)."""
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + key + masked


async def fanout(url: str, members: int, size: int, rounds: int, bursts: int, burst: int) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    conns: list[Member] = []
    gate = asyncio.Semaphore(100)

    async def open_one() -> None:
        async with gate:
            _, member = await loop.create_connection(Member, host, port)
            assert member.transport is not None
            member.transport.write(request)
            await member.opened
            conns.append(member)

    t_open = time.perf_counter()
    await asyncio.gather(*(open_one() for _ in range(members)))
    open_s = time.perf_counter() - t_open
    # No wait needed before the first broadcast: with workers=0, on_connect (the room join) runs before the 101 is
    # flushed. Every wait below is bounded, so a member that missed a broadcast fails the run instead of hanging.
    frame = client_frame(b"B" + b"x" * (size - 1))
    delivery = 2 + size  # the server's unmasked frame
    sender = conns[0].transport
    assert sender is not None

    latencies = []
    for _ in range(rounds):  # one broadcast at a time: until the last member has it
        waits = [m.expect(delivery) for m in conns]
        t0 = time.perf_counter()
        sender.write(frame)
        await asyncio.wait_for(asyncio.gather(*waits), 30)
        latencies.append(time.perf_counter() - t0)
    rates = []
    for _ in range(bursts):  # bursts of broadcasts back to back: deliveries per second
        waits = [m.expect(delivery * burst) for m in conns]
        t0 = time.perf_counter()
        sender.write(frame * burst)
        await asyncio.wait_for(asyncio.gather(*waits), 60)
        rates.append(members * burst / (time.perf_counter() - t0))
    for m in conns:
        if m.transport is not None:
            m.transport.close()
    return {
        "members": members,
        "open_s": open_s,
        "latency_ms_p50": 1000 * statistics.median(latencies),
        "latency_ms_max": 1000 * max(latencies),
        "deliveries_per_s": statistics.median(rates),
    }


def fanout_client_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--bursts", type=int, default=5)
    p.add_argument("--burst", type=int, default=50)
    a = p.parse_args(argv)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(json.dumps(runner(fanout(a.url, a.members, a.size, a.rounds, a.bursts, a.burst))), flush=True)
    return 0


def run_fanout(url: str, opts: argparse.Namespace) -> dict[str, Any]:
    cmd = be.pinned(
        be.LOADGEN_CORE,
        [PYTHON, __file__, "--fanout-client", url, "--members", str(opts.members), "--rounds", str(opts.rounds)],
    )
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"fan-out client failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- main ---------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--fanout-client"]:
        return fanout_client_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run, 2 s windows")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--members", type=int, default=1000, help="fan-out: members of room 'bench'")
    parser.add_argument("--rounds", type=int, default=30, help="fan-out: single broadcasts timed")
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--max-others", type=float, default=20.0)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--servers", default=",".join(ECHO_SERVERS), help="comma-separated subset of the servers")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.runs, opts.duration, opts.warmup, opts.quiet_wait, opts.retries = 1, 2.0, 0.5, 5.0, 0
    for exe in ("echo_server", "chat_server", "libsnow_ws.so"):
        if not (ROOT / "build" / exe).exists():
            print(f"build/{exe} is missing: run `make build`", file=sys.stderr)
            return 2
    be.raise_nofile_limit()
    be.build_loadgen()
    be.print_versions(be.versions())
    print(
        f"echo: {opts.connections} connections, {opts.size}-byte text, k={opts.inflight} and k=1; fan-out: "
        f"{opts.members} members, 64-byte broadcasts; {opts.runs} run(s), server on core {be.SERVER_CORE}, "
        f"load on core {be.LOADGEN_CORE}"
    )
    names = [n.strip() for n in opts.servers.split(",") if n.strip()]
    if any(n not in ECHO_SERVERS for n in names):
        parser.error(f"--servers: choose from {', '.join(ECHO_SERVERS)}")
    echo: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    fan: dict[str, list[dict[str, Any]]] = {name: [] for name in FANOUT_SERVERS if name in names}
    with tempfile.TemporaryDirectory(prefix="bench_abi.") as tmp:
        for run in range(1, opts.runs + 1):
            for name in names:
                spec = ECHO_SERVERS[name]
                be.wait_for_quiet(0.25, opts.quiet_wait)
                with be.running_server(spec, Path(tmp)) as server:
                    tput = be.measure(server, opts.inflight, opts)
                    lat = be.measure(server, 1, opts)
                    fanned = run_fanout(server.url, opts) if name in fan else None
                echo[name].append({"tput": tput, "lat": lat})
                line = (
                    f"  run {run} {name:26} {be.fmt_int(tput['msgs_per_sec']):>9} msg/s "
                    f"{1e6 / tput['msgs_per_cpu_s']:5.2f} us CPU/msg | k=1 p50 {lat['p50_us']:4.0f} us | errors "
                    f"{tput['errors'] + lat['errors']}"
                )
                if fanned is not None:
                    fan[name].append(fanned)
                    line += (
                        f" | fan-out {be.fmt_int(fanned['deliveries_per_s'])} deliveries/s, one broadcast "
                        f"{fanned['latency_ms_p50']:.1f} ms"
                    )
                print(line, flush=True)

    def med(recs: list[dict[str, Any]], part: str, key: str) -> float:
        return float(statistics.median(r[part][key] for r in recs))

    print("\nmarkdown rows (medians):\n")
    print("| handler | msg/s (k=16) | µs server CPU per message | p50 µs (k=1) | C / Python msg/s | C / Python CPU |")
    print("|---|---:|---:|---:|---:|---:|")
    for py, c in PAIRS:
        if py not in echo or c not in echo:
            continue
        for name in (py, c):
            recs = echo[name]
            tput, cpu = med(recs, "tput", "msgs_per_sec"), 1e6 / med(recs, "tput", "msgs_per_cpu_s")
            ratio = ratio_cpu = ""
            if name == c:
                ratio = f"{tput / med(echo[py], 'tput', 'msgs_per_sec'):.2f}x"
                ratio_cpu = f"{cpu / (1e6 / med(echo[py], 'tput', 'msgs_per_cpu_s')):.2f}x"
            p50 = med(recs, "lat", "p50_us")
            print(f"| {name} | {be.fmt_int(tput)} | {cpu:.2f} | {p50:.0f} | {ratio} | {ratio_cpu} |")
    print(f"\n| bench app, {opts.members} members | deliveries/s | one broadcast to all, p50 ms | max ms |")
    print("|---|---:|---:|---:|")
    for name, recs in fan.items():
        rate = statistics.median(r["deliveries_per_s"] for r in recs)
        p50 = statistics.median(r["latency_ms_p50"] for r in recs)
        worst = max(r["latency_ms_max"] for r in recs)
        print(f"| {name} | {be.fmt_int(rate)} | {p50:.1f} | {worst:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
