"""Graceful drain with 2,000 connections, and 2,000 slow half-open handshakes that must not starve a real client.

Raw sockets on 127.0.0.1, bounded counts and times. The drain test checks what the clients see (a Close 1001
"going away" each, at times spread over the window) and what the program sees (on_close 1001 for every one).
"""

from __future__ import annotations

import os
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from snow_rt_py.testing import RawClient

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]
N = 2000
GOING_AWAY_FRAME = b"\x88\x0c" + struct.pack("!H", 1001) + b"going away"


def upgrade_request(port: int) -> bytes:
    return (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def open_many(port: int, n: int) -> list[socket.socket]:
    """``n`` WebSocket connections (requests first, then every 101 read)."""
    socks = []
    request = upgrade_request(port)
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(request)
        socks.append(sock)
    for sock in socks:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101 "), head[:40]
        assert head.endswith(b"\r\n\r\n"), "nothing may follow the 101 before the drain"
    return socks


def test_drain_spreads_1001_over_the_window_and_every_connection_gets_on_close(start_server, recorder) -> None:
    window = 1.0
    server = start_server(recorder, drain_window=window, drain_timeout=20.0)
    socks = open_many(server.port, N)
    recorder.wait_count("connect", N, timeout=20)
    got: dict[int, tuple[float, bytes]] = {}
    started = time.monotonic()
    drainer = threading.Thread(target=server.drain, daemon=True)
    drainer.start()
    sel = selectors.DefaultSelector()
    buffers: dict[int, bytes] = {}
    for i, sock in enumerate(socks):
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, i)
    deadline = started + 15
    while len(got) < N and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            i = key.data
            sock = socks[i]
            data = sock.recv(64)
            buffers[i] = buffers.get(i, b"") + data
            if len(buffers[i]) >= len(GOING_AWAY_FRAME) and i not in got:
                got[i] = (time.monotonic() - started, buffers[i])
                sel.unregister(sock)
                sock.setblocking(True)
                # Our half of the close handshake (masked, code 1001).
                sock.sendall(b"\x88\x82" + b"\x00\x00\x00\x00" + struct.pack("!H", 1001))
            elif not data:
                sel.unregister(sock)
    drainer.join(20)
    assert not drainer.is_alive(), "drain did not return"
    assert len(got) == N, f"only {len(got)} of {N} connections got a Close"
    assert all(frame == GOING_AWAY_FRAME for _, frame in got.values())  # exactly a Close 1001 "going away"
    times = sorted(t for t, _ in got.values())
    spread = times[-1] - times[0]
    early = sum(1 for t in times if t < times[0] + window / 10)
    print(f"\ndrain of {N}: closes spread over {spread:.3f} s (window {window} s); first 10 % of it: {early}")
    assert spread >= 0.6 * window, f"the closes came within {spread:.3f} s: not spread over the {window} s window"
    assert early <= 0.3 * N, f"{early} of {N} closes in the first tenth of the window: not spread"
    closes = recorder.wait_closes(N, timeout=20)
    assert closes == [(1001, "going away")] * N
    for sock in socks:
        sock.close()


def test_drain_aborts_what_does_not_answer_and_still_reports_on_close(start_server, recorder) -> None:
    server = start_server(recorder, drain_window=0.2)
    port = server.port
    silent = [RawClient.connect(port) for _ in range(5)]  # they never send their Close
    recorder.wait_count("connect", 5)
    started = time.monotonic()
    server.drain(timeout=1.0)
    took = time.monotonic() - started
    assert 0.9 <= took < 5.0
    for ws in silent:
        assert ws.expect_close() == (1001, "going away")
        assert ws.wait_eof()
    assert recorder.wait_closes(5) == [(1001, "going away")] * 5
    with pytest.raises(OSError):
        RawClient(port).handshake()  # no longer accepting


def test_2000_slow_half_open_handshakes_do_not_starve_a_real_client() -> None:
    """A slowloris: 2,000 clients send their request head one byte at a time (a byte each per round, as fast as
    the test can). A real client meanwhile echoes 200 messages; its latency stays bounded, and every slow client
    gets 408 once ``handshake_timeout`` (3 s) is up. The server runs in its own process (the CLI)."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snow_rt_py",
            "serve",
            *("--port", "0", "--handshake-timeout", "3", "--ping-interval", "0"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1].rstrip("/"))
        baseline = echo_latencies(port, 200)
        request = upgrade_request(port)
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(N)]
        attack_started = time.monotonic()
        stop = threading.Event()

        def drip() -> None:
            offset = 0
            while not stop.is_set() and offset < len(request) - 4 and time.monotonic() - attack_started < 2.5:
                for sock in slow:
                    sock.send(request[offset : offset + 1])
                offset += 1

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        during = echo_latencies(port, 200)
        stop.set()
        dripper.join(10)
        print(
            f"\necho RTT of a real client: p50 {statistics.median(baseline) * 1e3:.2f} ms, max "
            f"{max(baseline) * 1e3:.2f} ms alone; p50 {statistics.median(during) * 1e3:.2f} ms, max "
            f"{max(during) * 1e3:.2f} ms during the attack"
        )
        assert max(during) < 1.0, "the real client waited over a second for an echo during the attack"
        statuses = []
        for sock in slow:
            sock.settimeout(10)
            head = b""
            while b"\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
            statuses.append(head.split(b" ", 2)[1] if head else b"EOF")
            sock.close()
        assert statuses == [b"408"] * N
        assert time.monotonic() - attack_started < 30
    finally:
        server.terminate()
        server.wait(20)


def echo_latencies(port: int, count: int) -> list[float]:
    with RawClient.connect(port) as ws:
        times = []
        for i in range(count):
            started = time.perf_counter()
            ws.send_text(f"ping {i}")
            assert ws.recv_message() == f"ping {i}"
            times.append(time.perf_counter() - started)
        return times
