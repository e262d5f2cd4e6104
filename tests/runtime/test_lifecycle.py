"""Lifecycle callbacks, actors and the scheduler, observed over real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from websockets.sync.client import connect

import snow_rt_py
from snow_rt_py import (
    Connection,
    ConnectionClosedError,
    ExitSignal,
    Handler,
    Headers,
    InvalidArgumentError,
    Reject,
)
from snow_rt_py.testing import RawClient
from tests.support import CloseOnRequest, Recorder

pytestmark = pytest.mark.timeout(30)


def ws(url: str, **kw: Any):  # type: ignore[no-untyped-def]
    return connect(url, open_timeout=5, close_timeout=5, **kw)


def test_callbacks_in_order_with_their_arguments(start_server, recorder) -> None:
    server = start_server(recorder)
    with ws(server.url + "chat?room=1&x=%20y", additional_headers={"X-Token": "abc", "x-multi": "1"}) as c:
        c.send("hi")
        assert c.recv(timeout=5) == "hi"
        c.send(b"\x01")
        assert c.recv(timeout=5) == b"\x01"
        c.close(4001, "see you")
    recorder.wait_close()
    kinds = [call[0] for call in recorder.calls]
    assert kinds == ["connect", "message", "message", "close"]
    _, cid, path, headers = recorder.calls[0]
    assert path == "/chat?room=1&x=%20y"
    assert isinstance(headers, Headers)
    assert headers["x-token"] == "abc" and headers["X-TOKEN"] == "abc"
    assert headers.get("sec-websocket-key")
    assert recorder.calls[1][1:] == (cid, "hi")
    assert recorder.calls[2][1:] == (cid, b"\x01")
    assert recorder.calls[3][1:] == (cid, 4001, "see you")


def test_connection_ids_are_unique(start_server, recorder) -> None:
    server = start_server(recorder)
    for _ in range(5):
        with ws(server.url):
            pass
    recorder.wait_for(lambda calls: sum(c[0] == "close" for c in calls) == 5)
    ids = [c[1] for c in recorder.calls if c[0] == "connect"]
    assert len(set(ids)) == 5


class RejectAfterUpgrade(Recorder):
    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool | Reject:
        super().on_connect(conn, path, headers)
        if path == "/custom":
            return Reject("no entry", code=4003)
        return path != "/deny"


def test_reject_in_on_connect_sends_1008_and_skips_on_close(start_server) -> None:
    handler = RejectAfterUpgrade()
    server = start_server(handler)
    with RawClient.connect(server.port, "/deny") as c:
        assert c.expect_close() == (1008, "rejected")
        c.send_close(1008)
        assert c.wait_eof()
    with RawClient.connect(server.port, "/custom") as c:
        assert c.expect_close() == (4003, "no entry")
    with ws(server.url + "ok") as c:  # the server carries on
        c.send("x")
    assert [code for code, _ in handler.wait_closes(1)] == [1000]
    assert [handler.conns[conn_id].path for conn_id in handler.closed] == ["/ok"]


def test_reject_before_upgrade_with_http_status(start_server) -> None:
    def on_upgrade(path: str, headers: Headers) -> Reject | None:
        return None if headers.get("Authorization") == "Bearer good" else Reject("forbidden", status=403)

    calls: list[Any] = []
    server = start_server(snow_rt_py.make_handler(on_upgrade=on_upgrade, on_connect=lambda *a: calls.append(a)))
    with RawClient(server.port) as c:
        status, _, body = c.handshake(headers={"Authorization": "Bearer bad"})
        assert (status, body) == (403, b"forbidden\n")
        assert c.wait_eof()
    with RawClient(server.port) as c:
        assert c.handshake(headers={"Authorization": "Bearer good"})[0] == 101
    assert len(calls) <= 1


class Crashy(Recorder):
    def on_message(self, conn: Connection, message: str | bytes) -> None:
        if message == "boom":
            raise RuntimeError("handler exploded")
        super().on_message(conn, message)


@pytest.mark.parametrize("workers", [0, 2])
def test_handler_crash_closes_only_its_connection_with_1011(start_server, caplog, workers: int) -> None:
    handler = Crashy()
    server = start_server(handler, workers=workers)
    with caplog.at_level(logging.ERROR), ws(server.url) as other:
        with RawClient.connect(server.port) as bad:
            bad.send_text("boom")
            assert bad.expect_close() == (1011, "internal error")
        other.send("still here")
        assert other.recv(timeout=5) == "still here"
        with ws(server.url) as fresh:  # still accepting
            fresh.send("new")
            assert fresh.recv(timeout=5) == "new"
        handler.wait_until(lambda: any(code == 1011 for code, _ in handler.closed.values()))
    assert any(
        "handler exploded" in (r.exc_text or "") or (r.exc_info and "handler exploded" in str(r.exc_info[1]))
        for r in caplog.records
    )


class Closer(CloseOnRequest):
    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool:
        super().on_connect(conn, path, headers)
        conn.send("welcome")  # sent from inside on_connect: must arrive before anything else
        return True


def test_explicit_close_and_use_after_close(start_server) -> None:
    handler = Closer()
    server = start_server(handler)
    with RawClient.connect(server.port) as c:
        assert c.recv_message() == "welcome"
        c.send_text("close me")
        assert c.expect_close() == (4100, "as requested")
        c.send_close(4100)
        assert c.wait_eof()
    assert handler.wait_closes(1) == [(4100, "as requested")]
    conn = handler.newest()
    with pytest.raises(ConnectionClosedError):
        conn.send_text("late")
    with pytest.raises(ConnectionClosedError):
        conn.close()


def test_close_argument_errors(start_server) -> None:
    handler = Closer()
    server = start_server(handler)
    with ws(server.url) as c:
        assert c.recv(timeout=5) == "welcome"
        conn = handler.newest()
        with pytest.raises(InvalidArgumentError):
            conn.close(1005)
        with pytest.raises(InvalidArgumentError):
            conn.close(1000, "x" * 124)
        with pytest.raises(InvalidArgumentError):
            conn.send_text("\ud800")
        c.send("still open")
        assert c.recv(timeout=5) == "still open"


class BadCloser(Handler):
    """On "bad": conn.close with a reason that is not valid UTF-8 (a lone surrogate), on the handler's thread and
    from another thread; records what each raised, then goes on echoing."""

    def __init__(self) -> None:
        self.raised: list[tuple[str, type[BaseException] | None]] = []
        self.closed: list[tuple[int, str]] = []
        self.done = threading.Event()

    def _try_close(self, conn: Connection, where: str) -> None:
        try:
            conn.close(1000, "bad \udc80")
        except Exception as exc:
            self.raised.append((where, type(exc)))
        else:
            self.raised.append((where, None))

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        if message == "bad":
            self._try_close(conn, "handler")
            worker = threading.Thread(target=self._try_close, args=(conn, "thread"))
            worker.start()
            worker.join(5)
            conn.send(f"open={conn.open}")
        elif message == "bye":
            conn.close(4001, "fine")
        else:
            conn.send(message)

    def on_close(self, conn: Connection, code: int, reason: str) -> None:
        self.closed.append((code, reason))
        self.done.set()


@pytest.mark.parametrize("workers", [0, 1])
def test_invalid_close_reason_raises_and_leaves_the_connection_usable(start_server, workers: int) -> None:
    # Arguments are checked on the caller's thread before any state changes: InvalidArgumentError on every thread,
    # no half-closed zombie (no Close frame sent, sends refused, the heartbeat no longer reaping it).
    handler = BadCloser()
    server = start_server(handler, workers=workers)
    with RawClient.connect(server.port) as c:
        c.send_text("bad")
        assert c.recv_message() == "open=True"
        c.send_text("still here")
        assert c.recv_message() == "still here"
        c.send_text("bye")
        assert c.expect_close() == (4001, "fine")
        c.send_close(4001)
        assert c.wait_eof()
    assert handler.done.wait(5)
    assert handler.raised == [("handler", InvalidArgumentError), ("thread", InvalidArgumentError)]
    assert handler.closed == [(4001, "fine")]


def test_send_from_a_foreign_thread_and_on_info(start_server, recorder) -> None:
    server = start_server(recorder)
    with ws(server.url) as c:
        recorder.wait_for(lambda calls: calls and calls[0][0] == "connect")
        conn = server.server.connections()[0]
        threading.Thread(target=lambda: [conn.send_text(f"t{i}") for i in range(50)]).start()
        assert [c.recv(timeout=5) for _ in range(50)] == [f"t{i}" for i in range(50)]
        assert snow_rt_py.send(conn.pid, {"job": 1})
        recorder.wait_for(lambda calls: ("info", conn.id, {"job": 1}) in calls)
    recorder.wait_close()
    assert not snow_rt_py.send(conn.pid, "after the end")


def test_linked_actor_gets_exit_signal_with_the_close_reason(start_server, recorder) -> None:
    server = start_server(recorder)
    got: list[Any] = []
    event = threading.Event()

    def watcher(message: Any) -> None:
        got.append(message)
        event.set()

    pid = snow_rt_py.spawn(watcher)
    with ws(server.url) as c:
        recorder.wait_for(lambda calls: calls and calls[0][0] == "connect")
        conn = server.server.connections()[0]
        snow_rt_py.link(pid, conn.pid)
        c.close(4242, "bye")
    assert event.wait(5)
    assert got == [ExitSignal(conn.pid, (4242, "bye"))]
    with pytest.raises(LookupError):
        snow_rt_py.link(pid, conn.pid)


class Sleepy(Handler):
    """Blocks its worker for 1 s on "sleep" (``blocking`` is set when it starts), echoes everything."""

    def __init__(self) -> None:
        self.blocking = threading.Event()

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        if message == "sleep":
            self.blocking.set()
            time.sleep(1.0)
        conn.send(message)


def test_blocking_handler_does_not_delay_other_connections_with_workers(start_server) -> None:
    handler = Sleepy()
    server = start_server(handler, workers=2)
    with ws(server.url) as slow, ws(server.url) as fast:
        slow.send("sleep")
        assert handler.blocking.wait(5)
        delays = []
        for _ in range(5):
            t0 = time.monotonic()
            fast.send("ping")
            assert fast.recv(timeout=5) == "ping"
            delays.append(time.monotonic() - t0)
        assert max(delays) < 0.05, delays
        assert slow.recv(timeout=5) == "sleep"


def test_client_ping_answered_while_handler_busy(start_server) -> None:
    handler = Sleepy()
    server = start_server(handler, workers=1)
    with RawClient.connect(server.port) as c:
        c.send_text("sleep")
        assert handler.blocking.wait(5)
        t0 = time.monotonic()
        c.send_frame(9, b"hb")
        frame = c.recv_frame()
        assert (frame.opcode, frame.payload) == (10, b"hb")
        assert time.monotonic() - t0 < 0.5


def test_connection_closed_error_after_drop_never_touches_another(start_server) -> None:
    handler = Closer()
    server = start_server(handler)
    a = RawClient.connect(server.port)
    assert a.recv_message() == "welcome"
    with RawClient.connect(server.port) as b:
        assert b.recv_message() == "welcome"
        a.close()
        handler.wait_closes(1)
        first = handler.conns[min(handler.conns)]
        with pytest.raises(ConnectionClosedError):
            first.send_text("to a dead connection")
        b.send_text("mine")
        assert b.recv_message() == "mine"


class SlowEcho(Recorder):
    def on_message(self, conn: Connection, message: str | bytes) -> None:
        time.sleep(0.005)  # still busy with earlier messages when the client's close arrives
        super().on_message(conn, message)


def test_replies_after_the_peer_closed_are_not_reported_as_crashes(start_server, caplog) -> None:
    handler = SlowEcho()
    server = start_server(handler, workers=1)
    with caplog.at_level(logging.DEBUG, logger="snow_rt_py"):
        with RawClient.connect(server.port) as c:
            for i in range(20):
                c.send_text(f"m{i}")
            c.send_close(1000)
            assert c.expect_close()[0] == 1000
        closes = handler.wait_closes(1, timeout=10)
    assert [code for code, _ in closes] == [1000]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


class Aborter(Recorder):
    """Answers "abort" with conn.abort(), from the handler's thread or from another thread."""

    def __init__(self, from_thread: bool) -> None:
        super().__init__()
        self.from_thread = from_thread

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        if message != "abort":
            super().on_message(conn, message)
        elif self.from_thread:
            threading.Thread(target=conn.abort).start()
        else:
            conn.abort()
            self.record("phase", conn.phase.value, conn.open)


@pytest.mark.parametrize("from_thread", [False, True])
def test_abort_drops_tcp_at_once_and_on_close_reports_1006(start_server, from_thread: bool) -> None:
    handler = Aborter(from_thread)
    server = start_server(handler, close_timeout=5)
    with RawClient.connect(server.port) as c:
        c.send_text("abort")
        t0 = time.monotonic()
        assert c.wait_eof()  # no Close frame first, no close_timeout wait
        assert c.buf == b"" and time.monotonic() - t0 < 2
    assert handler.wait_close() == (1006, "")
    if not from_thread:
        assert ("phase", "closing", False) in handler.calls
