"""What a peer can make the server hold: every buffer has a bound, and an ended connection is freed at once.

Each test is a small-scale version of an abuse case (the full-scale figures are in BENCHMARKS.md, from
``bench/bench_abuse.py``): resets mid-frame, a ping flood from a client that never reads, a slow handler under a
fast sender.
"""

from __future__ import annotations

import contextlib
import gc
import select
import socket
import struct
import threading
import time
import weakref
from collections.abc import Iterator

import pytest

import snow_rt_py
from snow_rt_py import Connection, Handler, Headers
from snow_rt_py.testing import RawClient

pytestmark = pytest.mark.timeout(60)

MASK = b"\x01\x02\x03\x04"


def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame (payload up to 64 KiB), masked with MASK."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


@contextlib.contextmanager
def collector_disabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Keeper(Handler):
    """Keeps a weak reference to every connection and signals each on_close."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[Connection]] = []
        self.closed = threading.Semaphore(0)

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool:
        self.refs.append(weakref.ref(conn))
        return True

    def on_close(self, conn: Connection, code: int, reason: str) -> None:
        self.closed.release()


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("workers", [0, 1])
def test_a_connection_reset_mid_frame_is_freed_without_the_garbage_collector(start_server, workers: int) -> None:
    # Half of a 128 KiB frame, then RST: the connection, its actor and the half-received payload must go as soon as
    # the connection ends -- by reference counting, with the cyclic collector off -- not at a later gen-2 collection.
    handler = Keeper()
    server = start_server(handler, workers=workers)
    with collector_disabled():
        clients = []
        for _ in range(5):
            c = RawClient.connect(server.port)
            c.send_raw(bytes([0x82, 0xFF]) + struct.pack("!Q", 128 * 1024) + MASK + b"x" * 65536)
            clients.append(c)
        assert wait_until(lambda: len(handler.refs) == 5)
        for c in clients:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            c.sock.close()
        for _ in range(5):
            assert handler.closed.acquire(timeout=5)
        assert wait_until(lambda: all(ref() is None for ref in handler.refs)), [ref() for ref in handler.refs]


def test_pongs_owed_to_a_client_that_never_reads_stop_the_reading(start_server) -> None:
    # Pongs are never dropped, so they are exempt from the outbound queue's bound; instead the server stops reading a
    # client whose unread output is over max_queue_bytes: TCP backpressure stops the flood, memory stays bounded.
    server = start_server(max_queue_bytes=16 * 1024, ping_interval=0)
    client = RawClient(server.port, rcvbuf=4096)
    status, _, _ = client.handshake()
    assert status == 101
    ping = masked(0x9, b"p" * 100)  # a 106-byte ping owes a 102-byte pong
    burst = ping * 10_000  # ~1 MiB per write
    client.sock.settimeout(0.5)
    sent = 0
    with contextlib.suppress(TimeoutError, BlockingIOError):
        deadline = time.monotonic() + 10
        while sent < 200 * len(burst) and time.monotonic() < deadline:  # up to ~200 MiB, until the server stops
            sent += client.sock.send(burst)
    [conn] = server.server.connections()
    stats = conn.statistics()
    held = stats["queued_bytes"] + stats["write_buffer_bytes"]
    # Bounded by max_queue_bytes plus the pongs of one read (256 KiB of pings), whatever was sent.
    assert stats["reading_paused"] == 1, stats
    assert held < 16 * 1024 + 300 * 1024, (held, sent)
    assert sent < 100 * len(burst), sent  # the sender was stopped by TCP, long before the 200 MiB
    client.close()


class Slow(Handler):
    """Echoes, but only once released: until then every message waits in the connection's inbox."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.blocked = threading.Event()

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        self.blocked.set()
        self.release.wait(30)
        conn.send(message)


def test_a_slow_handler_pauses_the_reading_and_loses_nothing(start_server) -> None:
    handler = Slow()
    server = start_server(handler, workers=1, max_inbox_bytes=64 * 1024, max_queue_bytes=64 * 1024 * 1024)
    count, size = 200, 16 * 1024  # 3.2 MiB, far more than the inbox bound
    with RawClient.connect(server.port, timeout=10) as c:
        payloads = [bytes([i]) * size for i in range(count)]

        def send_all() -> None:
            for p in payloads:
                c.sock.sendall(masked(0x2, p))

        sender = threading.Thread(target=send_all)
        sender.start()
        assert handler.blocked.wait(5)
        [conn] = server.server.connections()
        assert wait_until(lambda: conn.statistics()["reading_paused"] == 1), conn.statistics()
        time.sleep(0.3)  # let whatever TCP still delivers arrive: the inbox must not grow past its bound
        inbox = conn.statistics()["inbox_bytes"]
        assert inbox <= 64 * 1024 + 256 * 1024 + size, inbox  # the bound, plus one read's messages
        handler.release.set()
        got = [c.recv_message() for _ in range(count)]
        sender.join(10)
    assert got == payloads  # every message, in order
    assert snow_rt_py.ServerOptions(max_inbox_bytes=1024).max_inbox_bytes == 1024


def test_a_slowloris_handshake_gets_408_before_the_connection_closes(start_server) -> None:
    server = start_server(handshake_timeout=0.3)
    with RawClient(server.port, timeout=5) as c:
        c.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # ... and never the rest
        status, _, body = c.read_response()
        assert status == 408
        assert b"handshake took too long" in body
        assert c.wait_eof()


def test_a_431_reaches_a_client_still_sending_its_request_head(start_server) -> None:
    # The server answers 431 after 16 KiB; the client goes on writing its head. The server reads and drops the rest
    # (up to LINGER_BYTES) before closing, so the client reads the 431 and a clean end of stream, not a reset.
    server = start_server()
    with RawClient(server.port, timeout=5) as c:
        c.sock.sendall(c.request_bytes(headers={"X-Big": "a" * (20 * 1024)}))
        readable, _, _ = select.select([c.sock], [], [], 5)  # the answer has arrived (not read yet)
        assert readable
        c.sock.sendall(b"X-More: " + b"b" * (40 * 1024) + b"\r\n")  # still sending when the answer came
        c.sock.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            chunk = c.sock.recv(65536)  # a reset would raise ConnectionResetError here
            if not chunk:
                break
            received += chunk
    assert received.startswith(b"HTTP/1.1 431 ")
