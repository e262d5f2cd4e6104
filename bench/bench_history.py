"""Rooms that remember (issue 24): what history costs a broadcast, what a cluster broadcast costs Redis, and a
reconnect storm.

1. **History on vs off**: one room of ``--members`` (10,000) members, ``--broadcasts`` 64-byte text broadcasts
   with history off, then the same with history on (``history_size`` 1,000): deliveries per second of server CPU
   (the server's process CPU time: the clients run in another process), and the ratio (the goal: >= 0.9x).
2. **Redis commands per broadcast** (needs ``redis-server``): one cluster node, a room with history, K
   broadcasts: ``INFO commandstats`` before and after; ``eval`` calls per broadcast (the goal: <= 1 script call),
   and every command Redis counted per broadcast (those the script ran included).
3. **Reconnect storm**: a room with 1,000 messages of history; 1,000 members connect at once, each joining from
   offset 0 (``join_from`` in ``on_connect``): the time until every member has its 1,000 missed messages, and the
   server's peak RSS before and after.

    .venv/bin/python bench/bench_history.py                # about a minute
    .venv/bin/python bench/bench_history.py --members 1000 --broadcasts 50

Clients are raw sockets in a child process (selectors, no per-message Python beyond counting bytes); the server
is this process (snow_rt_py.Runtime, workers=0). Every process and server started here is stopped here.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import snow_rt_py  # noqa: E402
from snow_rt_py import Connection, Headers  # noqa: E402


class Members(snow_rt_py.Handler):
    """``/?r=ROOM`` joins ROOM; ``/?r=ROOM&from=EPOCH`` joins it from offset 0 of that epoch."""

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool:
        query = dict(p.split("=", 1) for p in path.partition("?")[2].split("&") if "=" in p)
        if "from" in query:
            snow_rt_py.join_from(conn, query["r"], query["from"], 0)
        else:
            snow_rt_py.join(conn, query["r"])
        return True


def _clients(port: int, path: str, count: int, expect_bytes: int, ready: Any, done: Any, go: Any) -> None:
    """Child process: ``count`` connections; report when all are open, then read until each has ``expect_bytes``
    bytes of frames after its handshake; report the time it took from ``go``."""
    sel = selectors.DefaultSelector()
    socks = []
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    if not go:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            socks.append(s)
    ready.send(True)
    if go:
        go_at = go.recv()
        start = time.perf_counter()
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            socks.append(s)
    got = {s.fileno(): -1 for s in socks}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    left = count
    head = b""
    while left:
        for key, _ in sel.select(30):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            data = s.recv(1 << 20)
            if not data:
                raise SystemExit("a connection closed")
            n = got[s.fileno()]
            if n < 0:  # the handshake's answer first
                head = data
                end = head.find(b"\r\n\r\n")
                n = len(head) - end - 4
            else:
                n += len(data)
            got[s.fileno()] = n
            if n >= expect_bytes and n - len(data) < expect_bytes:
                left -= 1
    elapsed = time.perf_counter() - start if go else 0.0
    done.send(elapsed if go else True)
    if go:
        del go_at
    for s in socks:
        s.close()


def envelope_text(room: str, offset: int, data: str) -> str:
    """The envelope of a plain ASCII text message (its length is what a member receives)."""
    return f'{{"room":"{room}","epoch":"{"0" * 16}","offset":{offset},"data":"{data}"}}'


def frame_len(payload: int) -> int:
    return payload + (2 if payload < 126 else 4)


def fan_out(members: int, broadcasts: int, history: bool) -> float:
    """Deliveries per server CPU-second for ``broadcasts`` broadcasts to ``members`` members."""
    with snow_rt_py.Runtime() as rt:
        room = f"bench-{'on' if history else 'off'}"
        if history:
            snow_rt_py.configure_room(room, history_size=1000, runtime=rt)
        server = rt.start(Members(), snow_rt_py.ServerOptions(port=0, max_queue_bytes=64 << 20, ping_interval=0))
        message = "B" * 64
        if history:  # each member gets the envelope around it (epoch: 16 characters, as the real one)
            expect = sum(frame_len(len(envelope_text(room, i + 1, message))) for i in range(broadcasts))
        else:
            expect = broadcasts * frame_len(len(message))
        ready_r, ready_w = multiprocessing.Pipe(False)
        done_r, done_w = multiprocessing.Pipe(False)
        child = multiprocessing.Process(
            target=_clients, args=(server.port, f"/?r={room}", members, expect, ready_w, done_w, None)
        )
        child.start()
        try:
            ready_r.recv()
            deadline = time.monotonic() + 120
            while rt.rooms.member_count(room) < members:
                if time.monotonic() > deadline:
                    raise SystemExit("members did not all join")
                time.sleep(0.05)
            cpu = time.process_time()
            for _ in range(broadcasts):
                rt.loop_thread.run(_broadcast(room, message, rt))
            if not done_r.poll(120):
                raise SystemExit("clients did not get every message")
            done_r.recv()
            used = time.process_time() - cpu
        finally:
            child.join(30)
            if child.is_alive():
                child.kill()
            server.stop()
        return members * broadcasts / used


async def _broadcast(room: str, message: str, rt: snow_rt_py.Runtime) -> None:
    """One broadcast made on the loop thread (as a handler's), then one loop iteration for its flush."""
    import asyncio

    rt.rooms.broadcast(room, message)
    await asyncio.sleep(0)


def redis_commands(broadcasts: int) -> dict[str, float] | None:
    """``eval`` calls and all commands Redis counted, per broadcast to a cluster room with history."""
    if shutil.which("redis-server") is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

        def stats() -> dict[str, int]:
            out = subprocess.run(
                ["redis-cli", "-p", str(port), "INFO", "commandstats"], capture_output=True, text=True, check=True
            ).stdout
            return {m[0]: int(m[1]) for m in re.findall(r"cmdstat_(\w+):calls=(\d+)", out)}

        with snow_rt_py.Runtime() as rt:
            snow_rt_py.configure_room("bench-cluster", history_size=1000, runtime=rt)
            server = rt.start(Members(), snow_rt_py.ServerOptions(port=0, cluster_url=f"redis://127.0.0.1:{port}/0"))
            try:
                last = snow_rt_py.publish("bench-cluster", "warm", runtime=rt)
                assert last is not None
                last.result(10)
                before = stats()
                for i in range(broadcasts):
                    last = snow_rt_py.publish("bench-cluster", f"m{i}", runtime=rt)
                assert last is not None
                last.result(10)
                after = stats()
            finally:
                server.stop()
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        delta.pop("info", None)
        return {
            "eval": delta.get("eval", 0) / broadcasts,
            "all": sum(delta.values()) / broadcasts,
            **{k: v / broadcasts for k, v in sorted(delta.items()) if v},
        }
    finally:
        redis.terminate()
        redis.wait(10)


def storm(members: int, missed: int) -> tuple[float, float, float]:
    """(seconds until every member has its missed messages, peak RSS MiB before, peak RSS MiB after)."""
    with snow_rt_py.Runtime() as rt:
        room = "bench-storm"
        snow_rt_py.configure_room(room, history_size=missed, runtime=rt)
        server = rt.start(Members(), snow_rt_py.ServerOptions(port=0, max_queue_bytes=64 << 20, ping_interval=0))
        try:
            for i in range(missed):
                snow_rt_py.publish(room, f"missed message {i:06d}", runtime=rt)
            epoch = snow_rt_py.room_position(room, rt).epoch
            sizes = sum(frame_len(len(envelope_text(room, i + 1, f"missed message {i:06d}"))) for i in range(missed))
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            ready_r, ready_w = multiprocessing.Pipe(False)
            done_r, done_w = multiprocessing.Pipe(False)
            go_r, go_w = multiprocessing.Pipe(False)
            child = multiprocessing.Process(
                target=_clients, args=(server.port, f"/?r={room}&from={epoch}", members, sizes, ready_w, done_w, go_r)
            )
            child.start()
            try:
                ready_r.recv()
                go_w.send(True)
                if not done_r.poll(300):
                    raise SystemExit("the storm did not finish in 300 s")
                elapsed = done_r.recv()
            finally:
                child.join(30)
                if child.is_alive():
                    child.kill()
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        finally:
            server.stop()
    return elapsed, rss_before, rss_after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--broadcasts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--storm-members", type=int, default=1000)
    parser.add_argument("--storm-missed", type=int, default=1000)
    args = parser.parse_args()
    print(f"fan-out: {args.members} members, {args.broadcasts} broadcasts of 64 bytes, {args.runs} runs (interleaved)")
    off, on = [], []
    for _ in range(args.runs):
        off.append(fan_out(args.members, args.broadcasts, False))
        on.append(fan_out(args.members, args.broadcasts, True))
    off.sort()
    on.sort()
    mid = args.runs // 2
    print(
        f"  history off: {off[mid]:,.0f} deliveries per server CPU-second (runs: {', '.join(f'{x:,.0f}' for x in off)})"
    )
    print(
        f"  history on:  {on[mid]:,.0f} deliveries per server CPU-second (runs: {', '.join(f'{x:,.0f}' for x in on)})"
    )
    print(f"  ratio on/off (medians): {on[mid] / off[mid]:.2f}x (goal >= 0.9x)")
    commands = redis_commands(1000)
    if commands is None:
        print("redis: redis-server missing, skipped")
    else:
        print(
            f"redis, 1000 broadcasts to a cluster room with history: {commands['eval']:.2f} EVAL per broadcast "
            f"(goal <= 1); all commands Redis counted per broadcast, the script's included: {commands['all']:.2f}"
        )
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in commands.items() if k not in ("eval", "all")))
    elapsed, before, after = storm(args.storm_members, args.storm_missed)
    print(
        f"reconnect storm: {args.storm_members} members each recovering {args.storm_missed} missed messages: "
        f"all live again after {elapsed:.2f} s; server peak RSS {before:.0f} MiB before, {after:.0f} MiB after"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
