"""permessage-deflate benchmarks (issue 13), every peer in the same run with the same clients.

Sections (``--only`` picks some; all by default):

* ``idle``: server memory per connection with compression negotiated, after one 1 KiB JSON message each way
  (``bench/loadgen.c idle -z -e``: so a dedicated context exists), held ``--hold`` s. Ours in ``shared`` and
  ``dedicated`` mode (defaults), ours with no offer (what a plain connection costs), ``websockets`` (compression
  on by default) and Node ``ws`` with perMessageDeflate on.
* ``broadcast``: a 1 KiB JSON text to every member of one room, ``--members`` (10,000) members that all negotiated
  compression (``bench/fanout.c -z -j``): deliveries/s. Ours (Python CLI and C chat_server, default = shared),
  ``websockets`` and Node ``ws`` with compression on (both compress per connection).
* ``echo``: 1 KiB JSON text echoed with compression, 100 connections x 16 in flight (``loadgen echo -z -j``):
  messages/s, with 64 different messages in turn (``-V 64``: chat traffic) and with one message repeated. Ours
  shared and dedicated, ``websockets`` (default: compression on), Node ``ws`` (perMessageDeflate).
* ``c_echo``: a C program's replies with compression negotiated: ``build/echo_server`` and the Python CLI's echo,
  each with and without an offer, 32-byte texts (under ``compression_min_size``: plain replies, the C reply fast
  path) and 1 KiB JSON (compressed): messages/s; websockets beside them.
* ``wire``: bytes on the wire both ways for a stream of ``--messages`` (10,000) JSON chat messages (100-300 bytes,
  drawn from a fixed seed) sent by a ``websockets`` client (its default offer) and echoed, through a counting TCP
  proxy: ours in each mode against ``websockets``' default.
* ``stall``: how long the event loop is held while a large message is compressed and inflated: one client sends
  1 MiB and 16 MiB (compressible and not) messages to our echo server, another measures round trips of small
  messages meanwhile; the worst round trip, compression on and off.

Server pinned to core 0, clients to core 1 (taskset). One run per figure by default (``--runs``): this machine is
shared, medians of more runs are better where time allows.

    .venv/bin/python bench/bench_deflate.py                  # everything, about 6 minutes
    .venv/bin/python bench/bench_deflate.py --quick          # smaller counts, about 2 minutes
    .venv/bin/python bench/bench_deflate.py --only echo,wire

Every process started here is stopped here, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_echo as be  # shared helpers: pinning, server start/stop, loadgen
from bench_broadcast import FANOUT, NODE_WS, build_fanout

ROOT = be.ROOT
PYTHON = sys.executable
SERVERS = be.SERVERS_DIR
SNOW = [PYTHON, "-m", "snow_rt_py", "serve", "--host", "127.0.0.1", "--port", "0", "--ping-interval", "0"]
NODE_ENV = {"WS_MODULE": str(NODE_WS), "NODE_PATH": str(NODE_WS.parent)}


def spec(name: str, argv: list[str], env: dict[str, str] | None = None) -> be.ServerSpec:
    return be.ServerSpec(name, argv, env or {})


def echo_servers() -> dict[str, be.ServerSpec]:
    return {
        s.name: s
        for s in [
            spec("snow shared", [*SNOW, "--app", "echo", "--compression", "shared"]),
            spec("snow dedicated", [*SNOW, "--app", "echo", "--compression", "dedicated"]),
            spec("snow off", [*SNOW, "--app", "echo", "--compression", "off"]),
            spec("websockets", [PYTHON, str(SERVERS / "websockets_echo.py"), "--ping-interval", "0"]),
            spec("node ws", ["node", str(SERVERS / "node_ws_echo.mjs"), "--deflate"], NODE_ENV),
        ]
    }


def broadcast_servers() -> dict[str, be.ServerSpec]:
    chat = str(ROOT / "build" / "chat_server")
    return {
        s.name: s
        for s in [
            spec("snow (Python CLI)", [*SNOW, "--app", "bench"]),
            spec("snow (C chat_server)", [chat, "--app", "bench", "--port", "0", "--ping-interval", "0"]),
            spec("websockets", [PYTHON, str(SERVERS / "bench_websockets.py"), "--deflate"]),
            spec("node ws", ["node", str(SERVERS / "bench_node_ws.mjs"), "--deflate"], NODE_ENV),
        ]
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


# -- idle memory --------------------------------------------------------------------------------------------------


def idle(opts: argparse.Namespace, tmp: Path) -> list[str]:
    servers = echo_servers()
    plan = [
        ("snow, no offer (plain)", servers["snow shared"], False),
        ("snow shared", servers["snow shared"], True),
        ("snow dedicated", servers["snow dedicated"], True),
        ("websockets (compression on)", servers["websockets"], True),
        ("node ws (perMessageDeflate)", servers["node ws"], True),
    ]
    rows = []
    results: dict[str, list[float]] = {}
    for _ in range(opts.runs):
        for label, server_spec, offer in plan:
            with be.running_server(server_spec, tmp) as server:
                time.sleep(0.5)
                before = be.proc_status_kib(server.pid, "VmRSS")
                samples: list[int] = []

                def sample(pid: int = server.pid, samples: list[int] = samples) -> None:
                    samples.append(be.proc_status_kib(pid, "VmRSS"))

                def on_event(name: str) -> None:
                    if name == "open":  # RSS a second before the hold ends: every connection has had its echo
                        threading.Timer(opts.hold - 1.0, sample).start()

                args = ["idle", "-u", server.url, "-c", str(opts.connections), "-H", str(opts.hold), "-s", "1024"]
                args += ["-j", "-e", "-C", "100", "-T", "120", "-q"] + (["-z"] if offer else [])
                result = be.run_loadgen(args, timeout=opts.hold + 180, on_event=on_event)
                if result["errors"] or (offer and result["deflate_conns"] != opts.connections) or not samples:
                    print(f"  ! {label}: {json.dumps({k: v for k, v in result.items() if k != 'stderr'})}")
                per_conn = (samples[0] - before) / opts.connections if samples else float("nan")
                results.setdefault(label, []).append(per_conn)
                print(f"  idle {label}: {per_conn:.2f} KiB/connection (RSS {before} -> {samples} KiB)", flush=True)
    base = median(results["snow, no offer (plain)"])
    rows.append(f"| server ({opts.connections} connections, one 1 KiB JSON message each, then idle) | KiB per "
                "connection | vs snow plain |")  # fmt: skip
    rows.append("|---|---:|---:|")
    for label, _, _ in plan:
        value = median(results[label])
        rows.append(f"| {label} | {value:.2f} | {value - base:+.2f} KiB |")
    return rows


# -- broadcast ------------------------------------------------------------------------------------------------------


def broadcast(opts: argparse.Namespace, tmp: Path) -> list[str]:
    build_fanout()
    servers = broadcast_servers()
    results: dict[str, list[dict[str, Any]]] = {}
    for _ in range(opts.runs):
        for name, server_spec in servers.items():
            with be.running_server(server_spec, tmp) as server:
                args = ["-u", server.url, "-n", str(opts.members), "-s", "1024", "-j", "-z", "-W", "16", "-K", "10"]
                args += ["-d", str(opts.duration), "-w", "1", "-C", "100", "-T", "180", "-R", "60"]  # -R: a slow peer
                cpu: dict[str, float] = {}

                def on_event(event: str, pid: int = server.pid, cpu: dict[str, float] = cpu) -> None:
                    if event in ("measure_start", "measure_end"):
                        cpu[event] = be.proc_cpu_seconds(pid)

                result = be.run_loadgen(args, timeout=600, on_event=on_event, program=FANOUT)
                server_cpu = cpu.get("measure_end", 0.0) - cpu.get("measure_start", 0.0)
                result["server_cpu_s"] = server_cpu
                result["per_cpu_s"] = result["deliveries"] / server_cpu if server_cpu > 0 else float("nan")
                ok = result.get("ok") and result.get("deflate_members") == opts.members
                if not ok:
                    print(f"  ! {name}: {json.dumps({k: v for k, v in result.items() if k != 'stderr'})}")
                results.setdefault(name, []).append(result)
                print(
                    f"  broadcast {name}: {result['deliveries_per_s']:.0f} deliveries/s, "
                    f"p50 {result['latency_ms_p50']:.1f} ms, compressed members {result.get('deflate_members')}, "
                    f"bytes in {result.get('bytes_in')}, inflates saved {result.get('inflate_reused')}, client cpu "
                    f"{result['cpu_pct']:.0f}%, server cpu "
                    f"{result['server_cpu_s']:.2f} s: {result['per_cpu_s']:,.0f} deliveries per server CPU second",
                    flush=True,
                )
    rows = [
        f"| server ({opts.members} members, all with permessage-deflate) | deliveries/s | client CPU "
        "| deliveries per server CPU second | one broadcast to all, p50 | vs websockets (per s; per CPU s) "
        "| vs node ws (per s; per CPU s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    med = {n: median([r["deliveries_per_s"] for r in rs]) for n, rs in results.items()}
    eff = {n: median([r["per_cpu_s"] for r in rs]) for n, rs in results.items()}
    lat = {n: median([r["latency_ms_p50"] for r in rs]) for n, rs in results.items()}
    client = {n: median([r["cpu_pct"] for r in rs]) for n, rs in results.items()}
    for name in servers:
        ws, node = med.get("websockets") or float("nan"), med.get("node ws") or float("nan")
        ws_eff, node_eff = eff.get("websockets") or float("nan"), eff.get("node ws") or float("nan")
        rows.append(
            f"| {name} | {med[name]:,.0f} | {client[name]:.0f} % | {eff[name]:,.0f} | {lat[name]:.0f} ms "
            f"| {med[name] / ws:.1f}x; {eff[name] / ws_eff:.1f}x "
            f"| {med[name] / node:.1f}x; {eff[name] / node_eff:.1f}x |"
        )
    return rows


# -- echo -------------------------------------------------------------------------------------------------------------


def echo(opts: argparse.Namespace, tmp: Path) -> list[str]:
    be.build_loadgen()
    servers = echo_servers()
    names = ["snow shared", "snow dedicated", "websockets", "node ws"]
    rows = [
        "| server (1 KiB JSON, compressed both ways, 100 connections x 16 in flight) | messages | messages/s | p50 "
        "| vs websockets |",
        "|---|---|---:|---:|---:|",
    ]
    # -V 64: every connection sends 64 different messages in turn (chat traffic: no message repeats the previous
    # one); -V 1: the same message every time, which a compressor with a context turns into a few bytes.
    for variants, what in ((64, "64 different"), (1, "one, repeated")):
        results: dict[str, list[dict[str, Any]]] = {}
        for _ in range(opts.runs):
            for name in names:
                with be.running_server(servers[name], tmp) as server:
                    args = ["echo", "-u", server.url, "-c", "100", "-k", "16", "-s", "1024", "-j", "-z"]
                    args += ["-V", str(variants), "-d", str(opts.duration), "-w", "1", "-q"]
                    result = be.run_loadgen(args, timeout=120)
                    if result["errors"] or result["deflate_conns"] != 100:
                        print(f"  ! {name}: {json.dumps({k: v for k, v in result.items() if k != 'stderr'})}")
                    results.setdefault(name, []).append(result)
                    print(
                        f"  echo {what} {name}: {result['msgs_per_sec']:.0f} msg/s, p50 {result['p50_us']:.0f} us, "
                        f"loadgen cpu {result['cpu_pct']:.0f}%, bytes in {result['bytes_in']}",
                        flush=True,
                    )
        med = {n: median([r["msgs_per_sec"] for r in rs]) for n, rs in results.items()}
        for name in names:
            p50 = median([r["p50_us"] for r in results[name]])
            ratio = med[name] / med["websockets"]
            rows.append(f"| {name} | {what} | {med[name]:,.0f} | {p50 / 1000:.1f} ms | {ratio:.1f}x |")
    return rows


def c_echo(opts: argparse.Namespace, tmp: Path) -> list[str]:
    """A C program's replies on connections with compression negotiated: ``build/echo_server`` (libsnow_ws.so,
    the header's defaults: shared mode, compression_min_size 128) against the Python CLI's echo, each also with no
    compression offered; websockets (compression on) beside them. 32-byte texts (under compression_min_size: the
    replies go out plain) and 1 KiB JSON (compressed both ways), 100 connections x 16 in flight."""
    be.build_loadgen()
    py = echo_servers()
    servers = {
        "snow C echo_server": spec(
            "snow C echo_server", [str(ROOT / "build" / "echo_server"), "--port", "0", "--ping-interval", "0"]
        ),
        "snow Python CLI": py["snow shared"],
        "websockets": py["websockets"],
    }
    rows = [
        "| server | messages | offer | messages/s | vs the same server without compression |",
        "|---|---|---|---:|---:|",
    ]
    for what, size_args in (("32 B text", ["-s", "32"]), ("1 KiB JSON", ["-s", "1024", "-j", "-V", "64"])):
        for name, server_spec in servers.items():
            rates: dict[str, list[float]] = {}
            for _ in range(opts.runs):
                for offer in (["-z"], []):
                    with be.running_server(server_spec, tmp) as server:
                        args = ["echo", "-u", server.url, "-c", "100", "-k", "16", *size_args, *offer]
                        args += ["-d", str(opts.duration), "-w", "1", "-q"]
                        result = be.run_loadgen(args, timeout=120)
                    label = "deflate" if offer else "none"
                    if result["errors"] or result["deflate_conns"] != (100 if offer else 0):
                        print(f"  ! {name} {label}: {json.dumps({k: v for k, v in result.items() if k != 'stderr'})}")
                    rates.setdefault(label, []).append(result["msgs_per_sec"])
                    print(f"  c_echo {what} {name} {label}: {result['msgs_per_sec']:.0f} msg/s", flush=True)
            on, off = median(rates["deflate"]), median(rates["none"])
            rows.append(f"| {name} | {what} | permessage-deflate | {on:,.0f} | {on / off:.2f}x |")
            rows.append(f"| {name} | {what} | none | {off:,.0f} | |")
    return rows


# -- bytes on the wire ---------------------------------------------------------------------------------------------


def chat_stream(n: int) -> list[str]:
    """``n`` JSON chat messages, 100-300 bytes, from a fixed seed (the same stream for every server)."""
    rng = random.Random(13)
    vocabulary = (
        "hello hi hey ok yes no maybe today tomorrow game room lobby match ready play win lose again nice good "
    )
    words = (vocabulary + "great thanks see you later brb lol gg wp who where when what why how team red blue").split()
    users = [f"user{i}" for i in range(40)]
    out = []
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
        message = {"type": "chat", "room": "lobby", "user": rng.choice(users), "id": 100000 + i, "ts": 1733200000000
                   + i * 137, "text": text}  # fmt: skip
        out.append(json.dumps(message, separators=(",", ":")))
    return out


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts the bytes each way (in its own thread and loop)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = 0  # client -> server
        self.down = 0  # server -> client
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(pipe(reader, server_writer, True), pipe(server_reader, writer, False))

        async def start() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()


def wire(opts: argparse.Namespace, tmp: Path) -> list[str]:
    from websockets.sync.client import connect

    servers = echo_servers()
    stream = chat_stream(opts.messages)
    raw = sum(len(m.encode()) for m in stream)
    plan = [("snow shared", "snow shared"), ("snow dedicated", "snow dedicated"), ("snow off", "snow off"),
            ("websockets (default)", "websockets")]  # fmt: skip
    rows = [
        f"| server ({opts.messages:,} JSON chat messages, {raw / opts.messages:.0f} bytes on average, echoed to a "
        "websockets client) | negotiated | bytes server -> client | bytes client -> server | down vs uncompressed |",
        "|---|---|---:|---:|---:|",
    ]
    for label, name in plan:
        with be.running_server(servers[name], tmp) as server:
            port = int(server.url.rsplit(":", 1)[1].strip("/"))
            with CountingProxy(port) as proxy, connect(f"ws://127.0.0.1:{proxy.port}/", max_size=None) as ws:
                agreed = ws.response.headers.get("Sec-WebSocket-Extensions", "") or "(none)"
                window = 100
                for i in range(0, len(stream), window):  # 100 in flight, so the run takes seconds
                    batch = stream[i : i + window]
                    for message in batch:
                        ws.send(message)
                    for message in batch:
                        if ws.recv(timeout=30) != message:
                            raise RuntimeError(f"{label}: echo differs")
            time.sleep(0.2)
            print(f"  wire {label}: down {proxy.down:,} up {proxy.up:,} ({agreed})", flush=True)
            rows.append(f"| {label} | `{agreed}` | {proxy.down:,} | {proxy.up:,} | {proxy.down / raw:.0%} |")
    rows.append(f"| (the messages themselves) | | {raw:,} | {raw:,} | 100% |")
    return rows


# -- event-loop stall ------------------------------------------------------------------------------------------------


def stall(opts: argparse.Namespace, tmp: Path) -> list[str]:
    import os

    from websockets.sync.client import connect

    servers = echo_servers()
    json_mib = json.dumps([{"user": f"u{i % 50}", "text": "hello " * (i % 7 + 1)} for i in range(30000)]).encode()
    payloads = {
        "1 MiB JSON": json_mib[: 1 << 20],
        "1 MiB random": os.urandom(1 << 20),
        "16 MiB JSON": (json_mib * 17)[: 16 << 20],
        "16 MiB random": os.urandom(16 << 20),
    }
    rows = [
        "| message (echoed by our server) | compression, handlers | echo time | worst small round trip meanwhile |",
        "|---|---|---:|---:|",
    ]
    variants = {
        "shared, workers=0": servers["snow shared"],
        "shared, workers=2": spec("snow shared w2", [*SNOW, "--app", "echo", "--workers", "2"]),
        "off, workers=0": servers["snow off"],
    }
    for mode, server_spec in variants.items():
        name = server_spec.name
        with be.running_server(server_spec, tmp) as server:
            for label, payload in payloads.items():
                worst = [0.0]
                done = threading.Event()

                def prober(url: str = server.url, worst: list[float] = worst, done: threading.Event = done) -> None:
                    with connect(url, compression=None) as probe:
                        while not done.is_set():
                            t0 = time.perf_counter()
                            probe.send("ping")
                            probe.recv(timeout=30)
                            worst[0] = max(worst[0], time.perf_counter() - t0)
                            time.sleep(0.001)

                with connect(server.url, max_size=None, compression=None if name == "snow off" else "deflate") as big:
                    thread = threading.Thread(target=prober, daemon=True)
                    thread.start()
                    time.sleep(0.3)
                    worst[0] = 0.0
                    t0 = time.perf_counter()
                    big.send(payload)
                    assert big.recv(timeout=60) == payload
                    took = time.perf_counter() - t0
                    time.sleep(0.1)
                    done.set()
                    thread.join(30)
                print(f"  stall {label} {mode}: echo {took * 1000:.0f} ms, worst probe {worst[0] * 1000:.1f} ms")
                rows.append(f"| {label} | {mode} | {took * 1000:.0f} ms | {worst[0] * 1000:.1f} ms |")
    return rows


SECTIONS = {"idle": idle, "broadcast": broadcast, "echo": echo, "c_echo": c_echo, "wire": wire, "stall": stall}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="1,000 connections and members, 2,000 messages")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--connections", type=int, default=5000, help="idle: connections")
    parser.add_argument("--hold", type=float, default=8.0, help="idle: seconds held before RSS is read")
    parser.add_argument("--members", type=int, default=10000, help="broadcast: members")
    parser.add_argument("--duration", type=float, default=5.0, help="broadcast and echo: measured seconds")
    parser.add_argument("--messages", type=int, default=10000, help="wire: messages in the chat stream")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.connections, opts.members, opts.messages, opts.duration = 1000, 1000, 2000, 3.0
    be.raise_nofile_limit()
    be.print_versions(be.versions())
    print(f"machine: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; server on core 0, clients on core 1")
    out: list[str] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for section in opts.only.split(","):
            print(f"== {section}", flush=True)
            rows = SECTIONS[section](opts, Path(tmpdir))
            out += ["", f"### {section}", "", *rows]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
