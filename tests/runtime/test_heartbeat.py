"""Server heartbeat over real sockets, with short intervals (no test waits 30 s)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from websockets.sync.client import connect

from snow_rt_py.testing import RawClient

pytestmark = pytest.mark.timeout(30)


def test_unanswered_ping_closes_with_1011_and_on_close_reports_it(start_server, recorder) -> None:
    server = start_server(recorder, ping_interval=0.2, pong_timeout=0.3)
    with RawClient.connect(server.port) as c:
        t0 = time.monotonic()
        ping = c.recv_frame()
        assert ping.opcode == 9 and len(ping.payload) == 4
        assert c.expect_close() == (1011, "keepalive ping timeout")
        assert 0.4 < time.monotonic() - t0 < 5
    assert recorder.wait_close() == (1011, "keepalive ping timeout")


def test_heartbeat_timeout_fails_the_connection_without_waiting_for_the_peer(start_server, recorder) -> None:
    # RFC 6455 §7.1.7: a peer that answers no ping will not answer a Close either. The server sends 1011 and closes
    # TCP at once: on_close(1011) runs within a heartbeat tick of the pong deadline (~0.4 s after the connect here),
    # not close_timeout (5 s) later.
    server = start_server(recorder, ping_interval=0.2, pong_timeout=0.2, close_timeout=5)
    with RawClient.connect(server.port, timeout=5) as c:
        t0 = time.monotonic()
        assert c.recv_frame().opcode == 9
        assert c.expect_close() == (1011, "keepalive ping timeout")
        assert c.wait_eof()  # we never sent our Close: the server did not wait for it
        eof_after = time.monotonic() - t0
        assert recorder.wait_close(timeout=5) == (1011, "keepalive ping timeout")
        closed_after = time.monotonic() - t0
    assert eof_after < 1.0 and closed_after < 1.0, (eof_after, closed_after)


def test_mismatched_and_unsolicited_pongs_are_ignored(start_server, recorder) -> None:
    server = start_server(recorder, ping_interval=0.2, pong_timeout=0.4)
    with RawClient.connect(server.port) as c:
        c.send_frame(10, b"unsolicited")
        ping = c.recv_frame()
        assert ping.opcode == 9
        c.send_frame(10, ping.payload[::-1] + b"x")  # wrong payload
        assert c.expect_close()[0] == 1011
    assert recorder.wait_close()[0] == 1011


def test_answered_pings_keep_the_connection_with_fresh_payloads(start_server, recorder) -> None:
    server = start_server(recorder, ping_interval=0.1, pong_timeout=0.3)
    with RawClient.connect(server.port) as c:
        payloads = []
        for _ in range(5):
            ping = c.recv_frame()
            assert ping.opcode == 9
            payloads.append(ping.payload)
            c.send_frame(10, ping.payload)
        assert len(set(payloads)) == 5
        c.send_text("alive")
        assert c.recv_message() == "alive"
    assert recorder.wait_close()[0] == 1006  # we dropped TCP without a close


def test_websockets_client_answers_pings_automatically(start_server) -> None:
    server = start_server(ping_interval=0.1, pong_timeout=0.5)
    wheel = server.server.heartbeat
    answered = threading.Semaphore(0)
    pong_received = wheel.pong_received

    def counting(conn, payload):  # type: ignore[no-untyped-def]
        matched = pong_received(conn, payload)
        if matched:
            answered.release()
        return matched

    wheel.pong_received = counting  # type: ignore[method-assign]
    with connect(server.url, open_timeout=5, close_timeout=5, ping_interval=None) as ws:
        for _ in range(5):  # five heartbeat rounds, each ping answered by the client's library, past pong_timeout
            assert answered.acquire(timeout=5)
        ws.send("ok")
        assert ws.recv(timeout=5) == "ok"


def test_heartbeat_disabled_sends_no_ping(start_server) -> None:
    server = start_server(ping_interval=0)
    with RawClient.connect(server.port, timeout=0.5) as c, pytest.raises(TimeoutError):
        c.recv_frame()


# -- the wheel itself, on a fake loop clock -------------------------------------------------------------------


class FakeLoop:
    """Just what HeartbeatWheel uses: time() and call_at(), run by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.queue: list[tuple[float, int, FakeHandle]] = []
        self.seq = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback) -> FakeHandle:  # type: ignore[no-untyped-def]
        import heapq

        self.seq += 1
        handle = FakeHandle(callback)
        heapq.heappush(self.queue, (when, self.seq, handle))
        return handle

    def run_until(self, t: float) -> None:
        import heapq

        while self.queue and self.queue[0][0] <= t:
            when, _, handle = heapq.heappop(self.queue)
            if not handle.cancelled:
                self.now = max(self.now, when)
                handle.callback()
        self.now = t


class FakeHandle:
    def __init__(self, callback) -> None:  # type: ignore[no-untyped-def]
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Peer:
    def __init__(self, loop: FakeLoop, wheel, answer: bool = True, wrong: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.hb_due = -1
        self.hb_payload: bytes | None = None
        self.loop, self.wheel, self.answer, self.wrong = loop, wheel, answer, wrong
        self.pings: list[tuple[float, bytes]] = []
        self.expired: list[float] = []

    def send_heartbeat_ping(self, payload: bytes) -> None:
        self.pings.append((self.loop.now, payload))
        if self.answer:
            reply = payload[::-1] + b"!" if self.wrong else payload
            self.loop.call_at(self.loop.now + 0.01, lambda: self.wheel.pong_received(self, reply))

    def heartbeat_expired(self) -> None:
        self.expired.append(self.loop.now)


def test_wheel_pings_every_connection_on_time_with_fresh_payloads() -> None:
    from snow_rt_py.runtime.heartbeat import HeartbeatWheel

    loop = FakeLoop()
    wheel = HeartbeatWheel(loop, interval=2.0, timeout=10.0)  # type: ignore[arg-type]
    peers = []
    for i in range(2000):
        loop.now = i * 0.0001
        peer = Peer(loop, wheel)
        wheel.start(peer)
        peers.append(peer)
    loop.run_until(6.9)
    tick = 0.2
    for i, peer in enumerate(peers):
        times = [t for t, _ in peer.pings]
        assert len(times) == 3, (i, times)
        start = i * 0.0001
        assert start + 2.0 <= times[0] <= start + 2.0 + tick + 1e-6
        assert all(1.99 <= b - a <= 2.0 + 0.01 + tick + 1e-6 for a, b in itertools.pairwise(times))
        assert len({p for _, p in peer.pings}) == 3 and not peer.expired


def test_wheel_expires_unanswered_and_mismatched_pings_once() -> None:
    from snow_rt_py.runtime.heartbeat import HeartbeatWheel

    loop = FakeLoop()
    wheel = HeartbeatWheel(loop, interval=1.0, timeout=0.5)  # type: ignore[arg-type]
    silent, wrong, good = Peer(loop, wheel, answer=False), Peer(loop, wheel, wrong=True), Peer(loop, wheel)
    for peer in (silent, wrong, good):
        wheel.start(peer)
    loop.run_until(1.0 + 0.5 + 0.05 + 1e-6)  # one tick (0.05) of slack
    assert len(silent.expired) == 1 and len(wrong.expired) == 1 and not good.expired
    assert 1.5 <= silent.expired[0] <= 1.55 + 1e-6
    wheel.stop(silent)
    wheel.stop(wrong)
    loop.run_until(10.0)
    assert len(silent.expired) == 1 and len(silent.pings) == 1  # stopped: nothing more
    assert len(good.pings) >= 9 and not good.expired
