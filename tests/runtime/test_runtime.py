"""The Runtime object: the one owner of loop thread, actors, rooms and connection ids (runtime/runtime.py)."""

from __future__ import annotations

import threading
import time

import pytest
from websockets.sync.client import connect

import snow_rt_py
from snow_rt_py import Connection, Handler, Runtime

pytestmark = pytest.mark.timeout(30)


class Joiner(Handler):
    """Joins every connection to room "r" and reports the connection."""

    def __init__(self) -> None:
        self.conns: list[Connection] = []
        self.joined = threading.Semaphore(0)
        self.infos: list[object] = []
        self.got_info = threading.Semaphore(0)

    def on_info(self, conn: Connection, message: object) -> None:
        self.infos.append(message)
        self.got_info.release()

    def on_connect(self, conn: Connection, path: str, headers: snow_rt_py.Headers) -> bool:
        snow_rt_py.join(conn, "r")  # the connection's own runtime's room
        self.conns.append(conn)
        self.joined.release()
        return True


def test_two_runtimes_share_nothing() -> None:
    with Runtime() as a, Runtime() as b:
        ha, hb = Joiner(), Joiner()
        sa = a.start(ha, snow_rt_py.ServerOptions(port=0))
        sb = b.start(hb, snow_rt_py.ServerOptions(port=0))
        with connect(sa.url, open_timeout=5) as ca, connect(sb.url, open_timeout=5) as cb:
            assert ha.joined.acquire(timeout=5) and hb.joined.acquire(timeout=5)
            # Each runtime numbers its own connections and has its own room "r".
            assert ha.conns[0].id == 1 and hb.conns[0].id == 1
            assert ha.conns[0].runtime is a and hb.conns[0].runtime is b
            assert a.rooms.member_count("r") == 1 == b.rooms.member_count("r")
            assert snow_rt_py.member_count("r") == 0  # the default runtime has no such room
            assert a.rooms.broadcast("r", "to a") == 0
            assert ca.recv(timeout=5) == "to a"
            assert snow_rt_py.broadcast("r", "to the default runtime") == 0
            assert b.rooms.broadcast("r", "to b") == 0
            assert cb.recv(timeout=5) == "to b"  # not "to a", not the default runtime's
            # Pids are per runtime too: the same pid names a's actor in a and b's actor in b.
            assert ha.conns[0].pid == hb.conns[0].pid == 1
            assert b.send(1, "for b") and hb.got_info.acquire(timeout=5)
            assert a.send(1, "for a") and ha.got_info.acquire(timeout=5)
            assert ha.infos == ["for a"] and hb.infos == ["for b"]


def test_close_stops_servers_and_threads() -> None:
    before = set(threading.enumerate())
    runtime = Runtime()
    server = runtime.start(Handler(), snow_rt_py.ServerOptions(port=0))
    loop_thread = runtime.loop_thread.thread
    pid = runtime.spawn(lambda message: None)
    assert runtime.send(pid, "hello")
    with connect(server.url, open_timeout=5) as ws:
        runtime.close()
        with pytest.raises(Exception, match="1001"):
            ws.recv(timeout=5)
    loop_thread.join(5)
    assert not loop_thread.is_alive()
    assert server.server.loop.is_closed()  # the server was closed on its own loop, then the loop
    # Nothing the runtime started outlives it: no loop thread made anew to stop the servers on, no executor
    # thread of a loop (they end shortly after their loop closes).
    deadline = time.monotonic() + 5
    while (left := [t for t in threading.enumerate() if t not in before]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert left == []
    runtime.close()  # idempotent
    server.stop()  # also after the runtime's close: a no-op, no loop thread made for it
    assert [t for t in threading.enumerate() if t not in before] == []


def test_default_runtime_is_shared_by_the_python_api() -> None:
    assert snow_rt_py.default_runtime() is snow_rt_py.default_runtime()
    handler = Joiner()
    with snow_rt_py.start(handler, port=0) as server, connect(server.url, open_timeout=5) as ws:
        assert handler.joined.acquire(timeout=5)
        assert handler.conns[0].runtime is snow_rt_py.default_runtime()
        assert snow_rt_py.default_runtime().rooms.member_count("r") == 1
        assert snow_rt_py.broadcast("r", "hi") == 0
        assert ws.recv(timeout=5) == "hi"


class BytesHandler(Handler):
    """Has on_text_bytes (what the C ABI's handler has): text arrives as its UTF-8 bytes, binary at on_message."""

    def __init__(self) -> None:
        self.got: list[tuple[str, object]] = []

    def on_text_bytes(self, conn: Connection, data: bytes) -> None:
        self.got.append(("text", data))
        conn.send_utf8(data)

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        self.got.append(("message", message))
        conn.send(message)


def test_a_handler_with_on_text_bytes_gets_text_as_the_bytes_it_came_with(start_server) -> None:
    handler = BytesHandler()
    server = start_server(handler)
    text = "h\u00e9llo \U0001f600"
    with connect(server.url, open_timeout=5) as ws:
        ws.send(text)
        assert ws.recv(timeout=5) == text
        ws.send(b"\xff\x00")
        assert ws.recv(timeout=5) == b"\xff\x00"
    assert handler.got == [("text", text.encode()), ("message", b"\xff\x00")]


def test_send_utf8_refuses_invalid_bytes_and_says_where(start_server) -> None:
    errors: list[str] = []

    def on_message(conn: Connection, message: str | bytes) -> None:
        try:
            conn.send_utf8(b"ok \xed\xa0\x80")  # a surrogate: not UTF-8
        except snow_rt_py.InvalidArgumentError as exc:
            errors.append(str(exc))
        conn.send_utf8(b"fine")

    server = start_server(snow_rt_py.make_handler(on_message=on_message))
    with connect(server.url, open_timeout=5) as ws:
        ws.send("go")
        assert ws.recv(timeout=5) == "fine"
    assert errors == ["not valid UTF-8: invalid continuation byte at byte 3"]
