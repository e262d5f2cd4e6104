"""Rooms over real sockets: membership, cleanup for every way a connection ends, fan-out, ordering,
slow consumers, thread safety, and the chat and bench apps end to end."""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from typing import Any

import pytest
from websockets.sync.client import connect

import snow_rt_py
from snow_rt_py import Connection, ConnectionClosedError, Handler, Headers, InvalidArgumentError, Reject
from snow_rt_py.apps import BenchApp, ChatApp
from snow_rt_py.testing import RawClient
from tests.support import Recorder

pytestmark = pytest.mark.timeout(60)


class Members(Recorder):
    """Joins the rooms named in the query string (``/?r=a&r=b``) on connect and rejects ``/?reject``; "crash"
    raises; records like Recorder, plus each connection's rooms as on_close saw them."""

    def __init__(self) -> None:
        super().__init__()
        self.rooms_at_close: dict[int, list[str]] = {}

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool | Reject:
        query = path.partition("?")[2]
        for part in query.split("&"):
            if part.startswith("r="):
                snow_rt_py.join(conn, part[2:])
        super().on_connect(conn, path, headers)
        return Reject("go away") if "reject" in query else True

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        if message == "crash":
            raise RuntimeError("crash on purpose")
        super().on_message(conn, message)

    def on_close(self, conn: Connection, code: int, reason: str) -> None:
        with self.cond:
            self.rooms_at_close[conn.id] = snow_rt_py.rooms_of(conn)
            super().on_close(conn, code, reason)


def joined(server: Any, handler: Members, path: str) -> tuple[RawClient, Connection]:
    before = len(handler.conns)
    client = RawClient.connect(server.port, path)
    handler.wait_until(lambda: len(handler.conns) > before)
    return client, handler.newest()


def test_join_leave_idempotent_many_rooms_any_name(start_server) -> None:
    handler = Members()
    server = start_server(handler)
    client, conn = joined(server, handler, "/")
    names = ["", "général", "a b", "A", "a", "🎉" * 10]
    for name in names:
        snow_rt_py.join(conn, name)
        snow_rt_py.join(conn, name)
    assert snow_rt_py.rooms_of(conn) == sorted(names)
    for name in names:
        assert snow_rt_py.member_count(name) == 1
    assert set(names) <= set(snow_rt_py.room_names())
    snow_rt_py.leave(conn, "a")
    snow_rt_py.leave(conn, "a")
    snow_rt_py.leave(conn, "never joined")
    assert snow_rt_py.member_count("a") == 0 and snow_rt_py.member_count("A") == 1
    assert "a" not in snow_rt_py.room_names()
    with pytest.raises(InvalidArgumentError):
        snow_rt_py.join(conn, 42)  # type: ignore[arg-type]
    client.close()


def test_broadcast_text_and_binary_and_except(start_server) -> None:
    handler = Members()
    server = start_server(handler)
    clients = [joined(server, handler, "/?r=room1") for _ in range(3)]
    outsider, _ = joined(server, handler, "/?r=room2")
    assert snow_rt_py.broadcast("room1", "hello all") == 0
    assert snow_rt_py.broadcast("room1", b"\x00bin") == 0
    assert snow_rt_py.broadcast_except("room1", "not you", clients[0][1]) == 0
    for i, (client, _) in enumerate(clients):
        assert client.recv_message() == "hello all"
        assert client.recv_message() == b"\x00bin"
        if i:
            assert client.recv_message() == "not you"
    clients[0][0].send_text("echo")  # the excluded member got nothing in between
    assert clients[0][0].recv_message() == "echo"
    outsider.send_text("mine")
    assert outsider.recv_message() == "mine"
    assert snow_rt_py.broadcast("no such room", "x") == 0
    assert snow_rt_py.broadcast_except("room1", "all", None) == 0
    for client, _ in clients:
        assert client.recv_message() == "all"
        client.close()
    outsider.close()


def test_broadcast_is_encoded_once_and_queued_as_the_same_bytes(start_server, monkeypatch) -> None:
    handler = Members()
    server = start_server(handler)
    pairs = [joined(server, handler, "/?r=same") for _ in range(3)]
    members = {id(conn) for _, conn in pairs}
    seen: list[bytes] = []
    original = Connection.offer_frame

    def spy(self: Connection, frame: bytes, *args: Any) -> bool:
        if id(self) in members:
            seen.append(frame)
        return original(self, frame, *args)

    monkeypatch.setattr(Connection, "offer_frame", spy)
    snow_rt_py.broadcast("same", "x" * 64)
    assert len(seen) == 3 and seen[0] is seen[1] is seen[2]
    for client, _ in pairs:
        assert client.recv_message() == "x" * 64
        client.close()


def test_join_after_end_is_an_error_and_closing_members_count_as_failures(start_server) -> None:
    handler = Members()
    server = start_server(handler)
    client, conn = joined(server, handler, "/?r=r")
    other, _ = joined(server, handler, "/?r=r")
    conn.close(1000)  # closing: not a member that can be sent to any more
    assert snow_rt_py.broadcast("r", "after close") in (0, 1)  # 1 unless it already ended and left
    client.send_close(1000)
    handler.wait_until(lambda: conn.id in handler.closed)
    with pytest.raises(ConnectionClosedError):
        snow_rt_py.join(conn, "r")
    with pytest.raises(ConnectionClosedError):
        snow_rt_py.leave(conn, "r")
    assert snow_rt_py.member_count("r") == 1
    assert other.recv_message() == "after close"
    client.close()
    other.close()


def _drop(client: RawClient) -> None:
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def _answer_close(client: RawClient) -> None:
    code, _ = client.expect_close()
    client.send_close(code)


ENDINGS = {
    "client close": (lambda c, conn: (c.send_close(1000), c.wait_eof()), 1000),
    "drop": (lambda c, conn: _drop(c), 1006),
    "crash": (lambda c, conn: (c.send_text("crash"), _answer_close(c)), 1011),
    "explicit close": (lambda c, conn: (conn.close(4000, "bye"), _answer_close(c)), 4000),
}


@pytest.mark.parametrize("how", sorted(ENDINGS))
def test_every_ending_leaves_every_room_before_on_close(start_server, how: str) -> None:
    handler = Members()
    server = start_server(handler)
    tag = how.replace(" ", "-")
    room_a, room_b = f"end-{tag}-a", f"end-{tag}-b"
    client, conn = joined(server, handler, f"/?r={room_a}&r={room_b}")
    assert snow_rt_py.member_count(room_a) == 1
    end, code = ENDINGS[how]
    end(client, conn)
    handler.wait_until(lambda: conn.id in handler.closed)
    assert handler.closed[conn.id][0] == code
    assert handler.rooms_at_close[conn.id] == []
    assert snow_rt_py.member_count(room_a) == 0 and snow_rt_py.member_count(room_b) == 0
    with pytest.raises(ConnectionClosedError):
        snow_rt_py.join(conn, room_a)
    client.close()


def test_heartbeat_timeout_leaves_rooms(start_server) -> None:
    handler = Members()
    server = start_server(handler, ping_interval=0.1, pong_timeout=0.2, close_timeout=0.3)
    client, conn = joined(server, handler, "/?r=hb")
    handler.wait_until(lambda: conn.id in handler.closed)
    assert handler.closed[conn.id] == (1011, "keepalive ping timeout")
    assert snow_rt_py.member_count("hb") == 0
    client.close()


def test_rejected_after_joining_in_on_connect_leaves(start_server) -> None:
    handler = Members()
    server = start_server(handler)
    client, conn = joined(server, handler, "/?r=rej&reject")
    assert client.expect_close() == (1008, "go away")
    client.close()
    deadline = time.monotonic() + 5
    while snow_rt_py.member_count("rej") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert snow_rt_py.member_count("rej") == 0
    assert conn.id not in handler.closed  # on_close is not called for a rejection
    with pytest.raises(ConnectionClosedError):
        snow_rt_py.join(conn, "rej")


def test_server_shutdown_leaves_rooms(start_server) -> None:
    handler = Members()
    server = start_server(handler)
    client, conn = joined(server, handler, "/?r=shut")
    threading.Thread(target=lambda: (client.expect_close(), client.send_close(1001))).start()
    server.stop()
    assert handler.closed[conn.id][0] == 1001
    assert snow_rt_py.member_count("shut") == 0
    client.close()


def test_one_broadcaster_order_is_kept_for_every_member(start_server) -> None:
    handler = Members()
    server = start_server(handler)
    clients = [joined(server, handler, "/?r=order")[0] for _ in range(5)]
    n = 500
    sender = threading.Thread(target=lambda: [snow_rt_py.broadcast("order", f"{i}") for i in range(n)])
    sender.start()
    for client in clients:
        assert [client.recv_message() for _ in range(n)] == [str(i) for i in range(n)]
        client.close()
    sender.join()


def test_membership_under_concurrency_with_dropping_connections(start_server) -> None:
    handler = Members()
    server = start_server(handler, workers=2)
    stable = [joined(server, handler, "/?r=busy") for _ in range(4)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def churn() -> None:  # connections that join and drop, fast
        try:
            for _ in range(15):
                c, _ = joined(server, handler, "/?r=busy&r=busy2")
                if random.random() < 0.5:
                    _drop(c)
                else:
                    c.send_close(1000)
                    c.close()
        except BaseException as exc:
            errors.append(exc)

    def joiner_leaver() -> None:
        try:
            while not stop.is_set():
                for _, conn in stable:
                    snow_rt_py.join(conn, "flap")
                    snow_rt_py.leave(conn, "flap")
                    snow_rt_py.join(conn, "flap")
        except BaseException as exc:
            errors.append(exc)

    def broadcaster() -> None:
        try:
            while not stop.is_set():
                assert snow_rt_py.broadcast("busy", "tick") >= 0
                snow_rt_py.broadcast_except("busy2", b"x", None)
                time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)

    actor_rounds = threading.Semaphore(0)

    def actor(message: Any) -> None:  # an actor joining, broadcasting and leaving on every message it gets
        try:
            _, conn = stable[message % len(stable)]
            snow_rt_py.join(conn, "actor-room")
            snow_rt_py.broadcast("busy2", "from actor")
            snow_rt_py.leave(conn, "actor-room")
        except BaseException as exc:
            errors.append(exc)
        actor_rounds.release()

    pids = [snow_rt_py.spawn(actor) for _ in range(3)]
    threads = [threading.Thread(target=f) for f in (churn, churn, joiner_leaver, broadcaster)]
    for t in threads:
        t.start()
    for i in range(300):
        assert snow_rt_py.send(pids[i % 3], i)
    threads[0].join(30)
    threads[1].join(30)
    stop.set()
    for t in threads[2:]:
        t.join(10)
    for _ in range(300):
        assert actor_rounds.acquire(timeout=10)
    assert errors == []
    assert snow_rt_py.member_count("actor-room") == 0
    handler.wait_until(lambda: len(handler.closed) == 30, timeout=10)
    assert snow_rt_py.member_count("busy") == 4
    assert snow_rt_py.member_count("busy2") == 0
    assert snow_rt_py.member_count("flap") == 4
    for client, conn in stable:
        assert snow_rt_py.rooms_of(conn) == ["busy", "flap"]
        client.send_text("alive")
        while (msg := client.recv_message()) == "tick":
            pass
        assert msg == "alive"
        client.close()


def _slow_client(port: int, path: str) -> RawClient:
    client = RawClient(port, rcvbuf=4096)
    status, _, _ = client.handshake(path)
    assert status == 101
    return client


def test_slow_consumer_is_closed_with_1008_and_others_keep_full_rate(start_server) -> None:
    handler = Members()
    server = start_server(handler, max_queue_bytes=256 * 1024, close_timeout=0.5)
    fast = [joined(server, handler, "/?r=feed")[0] for _ in range(3)]
    slow = _slow_client(server.port, "/?r=feed")
    handler.wait_until(lambda: len(handler.conns) == 4)
    slow_conn = handler.newest()
    payload = "p" * 2000
    n = 3000
    failures = 0
    results: list[list[str | bytes]] = [[] for _ in fast]

    def reader(i: int) -> None:
        results[i] = [fast[i].recv_message() for _ in range(n)]

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(len(fast))]
    for t in readers:
        t.start()
    t0 = time.monotonic()
    for i in range(n):
        failures += snow_rt_py.broadcast("feed", f"{i:05d}{payload}")
        if i % 10 == 0:
            time.sleep(0.001)  # a steady ~5 MB/s: what a reading client takes easily, a stalled one cannot
    elapsed = time.monotonic() - t0
    for t in readers:
        t.join(20)
    for got in results:
        assert got == [f"{i:05d}{payload}" for i in range(n)]
    assert failures >= 1  # the slow member, once its queue was full
    assert elapsed < 10
    handler.wait_until(lambda: slow_conn.id in handler.closed, timeout=10)
    assert handler.closed[slow_conn.id] == (1008, "slow consumer")
    assert slow_conn.statistics()["drops"] >= 1
    assert snow_rt_py.member_count("feed") == 3
    slow.close()
    for c in fast:
        c.close()


def test_drop_policy_keeps_the_slow_member_and_counts_drops(start_server) -> None:
    handler = Members()
    server = start_server(handler, max_queue_bytes=32 * 1024, slow_consumer="drop", ping_interval=0)
    slow = _slow_client(server.port, "/?r=lossy")
    handler.wait_until(lambda: len(handler.conns) == 1)
    conn = handler.newest()
    failures = sum(snow_rt_py.broadcast("lossy", f"{i:04d}" + "d" * 1000) for i in range(500))
    assert failures > 0
    stats = conn.statistics()
    assert stats["drops"] == failures
    assert stats["queued_bytes"] + stats["write_buffer_bytes"] <= 32 * 1024 + 1100
    assert conn.open and conn.id not in handler.closed
    # When the member reads again it gets every message that was queued, in order, and nothing else.
    slow.sock.settimeout(5)
    indices = [int(str(slow.recv_message())[:4]) for _ in range(500 - failures)]
    assert indices == sorted(set(indices))
    assert snow_rt_py.broadcast("lossy", "after") == 0
    assert slow.recv_message() == "after"
    slow.close()


class Budgets(Handler):
    """Records ``reply_budget()`` around its own replies (on the loop thread: nothing is written meanwhile)."""

    def __init__(self) -> None:
        self.budgets: list[int] = []
        self.done = threading.Event()

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        self.budgets.append(conn.reply_budget())
        if message == "small":
            conn.send(b"s" * 100)  # a 102-byte frame
        elif message == "big":
            conn.send(b"b" * 40_000)  # fits the empty queue, then exceeds the bound
        elif message == "close":
            conn.close(1000, "bye")
        self.budgets.append(conn.reply_budget())
        self.done.set()


def test_reply_budget_is_what_the_queue_bound_still_accepts(start_server) -> None:
    handler = Budgets()
    server = start_server(handler, max_queue_bytes=32 * 1024, ping_interval=0)
    # No permessage-deflate: the budgets below are frame sizes of plain frames.
    with connect(server.url, open_timeout=5, max_size=None, compression=None) as ws:
        for message, reply_size, budgets in [
            ("small", 100, [32 * 1024, 32 * 1024 - 102]),
            ("big", 40_000, [32 * 1024, 0]),  # never negative: 0 sends everything through offer_frame's rule
            ("close", None, [32 * 1024, -1]),  # -1: closing, it cannot send
        ]:
            handler.done.clear()
            handler.budgets.clear()
            ws.send(message)
            if reply_size is not None:
                assert len(ws.recv(timeout=5)) == reply_size
            assert handler.done.wait(5)
            assert handler.budgets == budgets, message


def test_statistics_shape(start_server) -> None:
    handler = Members()
    server = start_server(handler)
    client, conn = joined(server, handler, "/")
    client.send_text("one")
    assert client.recv_message() == "one"
    stats = conn.statistics()
    assert stats["messages_in"] == 1 and stats["messages_out"] == 1 and stats["drops"] == 0
    assert set(stats) >= {"queued_frames", "queued_bytes", "write_buffer_bytes", "max_queue_bytes"}
    client.close()


# -- apps ----------------------------------------------------------------------------------------------------


def test_chat_app_end_to_end(start_server) -> None:
    server = start_server(ChatApp())
    with connect(server.url, open_timeout=5) as alice, connect(server.url, open_timeout=5) as bob:
        alice.send("/join lobby")
        assert alice.recv(timeout=5) == "joined lobby"
        bob.send("/join lobby")
        assert bob.recv(timeout=5) == "joined lobby"
        bob.send("/join zoo")
        assert bob.recv(timeout=5) == "joined zoo"
        alice.send("/say lobby hi bob")
        assert bob.recv(timeout=5) == "hi bob"
        alice.send("/all lobby hi all")
        assert alice.recv(timeout=5) == "hi all"  # nothing else reached alice before
        assert bob.recv(timeout=5) == "hi all"
        bob.send("/rooms")
        assert json.loads(bob.recv(timeout=5)) == ["lobby", "zoo"]
        bob.send("/leave lobby")
        assert bob.recv(timeout=5) == "left lobby"
        alice.send("/all lobby only me")
        assert alice.recv(timeout=5) == "only me"
        bob.send("plain text")
        assert bob.recv(timeout=5) == "plain text"  # bob did not get "only me"
        bob.send(b"\x01\x02")
        assert bob.recv(timeout=5) == b"\x01\x02"


def test_bench_app(start_server) -> None:
    server = start_server(BenchApp())
    with connect(server.url, open_timeout=5) as a, connect(server.url, open_timeout=5) as b:
        a.send("echo me")
        assert a.recv(timeout=5) == "echo me"
        a.send(b"bin")
        assert a.recv(timeout=5) == b"bin"
        b.send("Bcast")
        assert a.recv(timeout=5) == "Bcast"
        assert b.recv(timeout=5) == "Bcast"
