"""Rooms that remember, in one process, over real sockets: positions and the envelope, history reads, join-from
with gap-free recovery while a publisher keeps broadcasting, unrecoverable cases, bad input, and the delivery
policies drop_oldest and latest_per_key with a member that does not read."""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import pytest

import snow_rt_py
from snow_rt_py import Connection, Headers, InvalidArgumentError, Position, Recovery
from snow_rt_py.runtime.history import open_envelope
from snow_rt_py.testing import RawClient
from tests.support import Recorder

pytestmark = pytest.mark.timeout(90)

_rooms = itertools.count()


def fresh_room(**options: Any) -> str:
    """A room name no other test uses (the default runtime's rooms outlive a test), configured with ``options``."""
    room = f"history-{next(_rooms)}"
    if options:
        snow_rt_py.configure_room(room, **options)
    return room


class Rejoin(Recorder):
    """``/?room=R`` joins R; ``/?room=R&from=EPOCH:OFFSET`` joins R from that position and records the Recovery
    as ``("recovery", conn.id, recovery)``."""

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool:
        query = dict(part.split("=", 1) for part in path.partition("?")[2].split("&") if "=" in part)
        super().on_connect(conn, path, headers)
        if "from" in query:
            epoch, offset = query["from"].split(":")
            self.record("recovery", conn.id, snow_rt_py.join_from(conn, query["room"], epoch, int(offset)))
        elif "room" in query:
            snow_rt_py.join(conn, query["room"])
        return True


def member(server: Any, handler: Rejoin, query: str, rcvbuf: int | None = None) -> tuple[RawClient, Connection]:
    before = len(handler.conns)
    client = RawClient(server.port, rcvbuf=rcvbuf)
    status, _, _ = client.handshake(f"/?{query}")
    assert status == 101
    handler.wait_until(lambda: len(handler.conns) > before)
    return client, handler.newest()


def envelopes(client: RawClient, count: int) -> list[tuple[str, Position, str | bytes]]:
    return [open_envelope(client.recv_message()) for _ in range(count)]


def test_positions_and_the_envelope(start_server) -> None:
    handler = Rejoin()
    server = start_server(handler)
    room = fresh_room(history_size=100)
    a, _ = member(server, handler, f"room={room}")
    first = snow_rt_py.publish(room, 'hi "there" ✓')
    second = snow_rt_py.publish(room, b"\x00\x01bin")
    assert first is not None and second is not None
    p1, p2 = first.result(1), second.result(1)
    assert p1.offset == 1 and p2 == Position(p1.epoch, 2)
    assert len(p1.epoch) == 16
    text = a.recv_message()
    assert json.loads(text) == {"room": room, "epoch": p1.epoch, "offset": 1, "data": 'hi "there" ✓'}
    binary = a.recv_message()
    assert isinstance(binary, bytes)
    assert binary == b"\x01\x10" + p1.epoch.encode() + (2).to_bytes(8, "big") + len(room).to_bytes(2, "big") + (
        room.encode() + b"\x00\x01bin"
    )
    # broadcast() to a room with history numbers its messages too; a room without history has no position
    assert snow_rt_py.broadcast(room, "third") == 0
    assert open_envelope(a.recv_message()) == (room, Position(p1.epoch, 3), "third")
    assert snow_rt_py.room_position(room) == Position(p1.epoch, 3)
    page = snow_rt_py.history(room, since=1)
    assert page.position == Position(p1.epoch, 3) and page.complete
    assert [(i.offset, i.message) for i in page.items] == [(2, b"\x00\x01bin"), (3, "third")]
    plain = fresh_room()
    assert snow_rt_py.publish(plain, "x") is None
    a.close()


def test_recovery_after_1000_missed_while_a_publisher_keeps_broadcasting(start_server) -> None:
    handler = Rejoin()
    server = start_server(handler)
    room = fresh_room(history_size=5000)
    a, _ = member(server, handler, f"room={room}")
    for i in range(10):
        snow_rt_py.publish(room, f"before-{i}")
    seen = envelopes(a, 10)
    last = seen[-1][1]
    assert last.offset == 10
    a.send_close(1000)
    handler.wait_count("close")
    for i in range(1000):
        snow_rt_py.publish(room, f"missed-{i}")
    stop = threading.Event()
    published = [0]

    def keep_publishing() -> None:
        while not stop.is_set() and published[0] < 100_000:
            snow_rt_py.publish(room, f"live-{published[0]}")
            published[0] += 1

    publisher = threading.Thread(target=keep_publishing)
    publisher.start()
    try:
        b, _ = member(server, handler, f"room={room}&from={last.epoch}:{last.offset}")
        got = envelopes(b, 1000)
        assert [m for _, _, m in got] == [f"missed-{i}" for i in range(1000)]
        assert [p.offset for _, p, _ in got] == list(range(11, 1011))
        # then the live messages, in order, no gap and no duplicate, whatever interleaved with the recovery
        live = envelopes(b, 200)
    finally:
        stop.set()
        publisher.join(10)
    assert [p.offset for _, p, _ in live] == list(range(1011, 1211))
    assert [m for _, _, m in live] == [f"live-{i}" for i in range(200)]
    (recovery,) = [c[2] for c in handler.of("recovery")]
    assert recovery.recovered and recovery.replayed >= 1000
    top = snow_rt_py.room_position(room).offset
    rest = envelopes(b, top - 1210)
    assert [p.offset for _, p, _ in rest] == list(range(1211, top + 1))
    b.close()


def test_unrecoverable_other_epoch_trimmed_and_expired(start_server) -> None:
    handler = Rejoin()
    server = start_server(handler)
    room = fresh_room(history_size=10)
    for i in range(20):
        snow_rt_py.publish(room, f"m{i}")
    now = snow_rt_py.room_position(room)
    # trimmed: offsets 1-10 are gone
    a, _ = member(server, handler, f"room={room}&from={now.epoch}:5")
    (rec,) = [c[2] for c in handler.of("recovery")]
    assert rec == Recovery(False, now, 0)
    snow_rt_py.publish(room, "after")
    assert open_envelope(a.recv_message())[2] == "after"  # joined from now on
    # another epoch (a restart of this process looks like this)
    member(server, handler, f"room={room}&from=0123456789abcdef:20")
    assert handler.of("recovery")[-1][2].recovered is False
    # within the history: recovered
    b, _ = member(server, handler, f"room={room}&from={now.epoch}:18")
    assert handler.of("recovery")[-1][2] == Recovery(True, Position(now.epoch, 21), 3)
    assert [m for _, _, m in envelopes(b, 3)] == ["m18", "m19", "after"]
    # expired by age
    aged = fresh_room(history_size=100, history_ttl=0.05)
    snow_rt_py.publish(aged, "old")
    at = snow_rt_py.room_position(aged)
    done = threading.Event()
    while not done.wait(0.01):  # bounded by the test's timeout: history empties once 50 ms have passed
        if not snow_rt_py.history(aged).items:
            done.set()
    member(server, handler, f"room={aged}&from={at.epoch}:0")
    assert handler.of("recovery")[-1][2].recovered is False
    stats = snow_rt_py.room_statistics()
    assert stats["recoveries"] >= 1 and stats["unrecoverable"] >= 3


def test_bad_input_is_refused_and_changes_nothing(start_server) -> None:
    handler = Rejoin()
    server = start_server(handler)
    room = fresh_room(history_size=10)
    snow_rt_py.publish(room, "one")
    now = snow_rt_py.room_position(room)
    _, conn = member(server, handler, "x=1")
    cases = [
        (lambda: snow_rt_py.join_from(conn, room, "not an epoch!", 0), "unknown epoch 'not an epoch!'"),
        (lambda: snow_rt_py.join_from(conn, room, "", 0), "unknown epoch ''"),
        (lambda: snow_rt_py.join_from(conn, room, now.epoch, -1), "offset must be an int >= 0, got -1"),
        (lambda: snow_rt_py.join_from(conn, room, now.epoch, 5), f"offset 5 is in the future: room {room!r} is at 1"),
        (lambda: snow_rt_py.history(room, since=7), f"offset 7 is in the future: room {room!r} is at 1"),
        (lambda: snow_rt_py.configure_room("r", history_size=-1), "history_size must be between 0 and 1000000"),
        (lambda: snow_rt_py.configure_room("r", history_size=10**9), "history_size must be between 0 and 1000000"),
        (lambda: snow_rt_py.configure_room("r", history_ttl=-1.0), "history_ttl must be between 0 and 2592000 s"),
        (lambda: snow_rt_py.configure_room("r", policy="newest"), "policy must be one of default, drop_oldest"),
        (lambda: snow_rt_py.publish(room, "x", key="k"), "a key needs a room with policy latest_per_key"),
        (lambda: snow_rt_py.publish(fresh_room(), "x", key="k"), "a key needs a room with policy latest_per_key"),
        (lambda: snow_rt_py.join_from(conn, fresh_room(), now.epoch, 0), "keeps no history"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidArgumentError) as info:
            call()
        assert message in str(info.value)
    assert snow_rt_py.rooms_of(conn) == []
    assert snow_rt_py.room_position(room) == now


def _fill(server: Any, handler: Rejoin, room: str, count: int, key: str | None = None) -> RawClient:
    """A member that does not read (a tiny receive buffer), and ``count`` 4 KiB broadcasts to it."""
    slow, _ = member(server, handler, f"room={room}", rcvbuf=4096)
    for i in range(count):
        snow_rt_py.publish(room, f"{i:06d}" + "x" * 4090, key=key)
    return slow


def test_drop_oldest_keeps_the_newest_and_the_gap_is_recoverable(start_server) -> None:
    handler = Rejoin()
    server = start_server(handler, max_queue_bytes=64 * 1024)
    room = fresh_room(history_size=2000, policy="drop_oldest")
    before = snow_rt_py.room_statistics()["policy_drops"]
    slow = _fill(server, handler, room, 1000)  # ~4 MiB to a member whose queue and kernel buffers take far less
    dropped = snow_rt_py.room_statistics()["policy_drops"] - before
    assert dropped > 0
    assert handler.of("close") == []  # not disconnected
    offsets = []
    while not offsets or offsets[-1] != 1000:
        _, position, message = open_envelope(slow.recv_message())
        assert isinstance(message, str) and int(message[:6]) == position.offset - 1
        offsets.append(position.offset)
    assert offsets == sorted(set(offsets))  # in order, no duplicate
    assert len(offsets) == 1000 - dropped  # each dropped message is missing, the newest arrived
    gap = next(o for i, o in enumerate(offsets) if o != i + 1) - 1  # the last offset before the first gap
    epoch = snow_rt_py.room_position(room).epoch
    again, _ = member(server, handler, f"room={room}&from={epoch}:{gap}")
    recovered = envelopes(again, 1000 - gap)
    assert [p.offset for _, p, _ in recovered] == list(range(gap + 1, 1001))
    slow.close()
    again.close()


def test_latest_per_key_replaces_pending_messages(start_server) -> None:
    handler = Rejoin()
    server = start_server(handler, max_queue_bytes=64 * 1024)
    room = fresh_room(policy="latest_per_key")
    before = snow_rt_py.room_statistics()["policy_replacements"]
    slow, _ = member(server, handler, f"room={room}", rcvbuf=4096)
    for i in range(400):
        snow_rt_py.publish(room, f"bulk-{i:04d}" + "x" * 4000)  # no key: fills the member's queue, then pends
    for i in range(50):
        snow_rt_py.publish(room, f"price-a {i}", key="a")
        snow_rt_py.publish(room, f"price-b {i}", key="b")
    replaced = snow_rt_py.room_statistics()["policy_replacements"] - before
    assert replaced == 98  # each key's pending message was replaced 49 times
    got: list[str] = []
    while "price-b 49" not in got:
        message = slow.recv_message()
        assert isinstance(message, str)
        got.append(message if message.startswith("price") else message[:9])
    prices = [m for m in got if m.startswith("price")]
    assert prices == ["price-a 49", "price-b 49"]  # only the latest of each key
    assert handler.of("close") == []
    slow.close()


def test_chat_app_with_history_join_shows_the_last_messages_and_rejoin_recovers(start_server) -> None:
    from snow_rt_py.apps import ChatApp

    server = start_server(ChatApp(history=3))
    room = f"chat-{next(_rooms)}"
    with RawClient.connect(server.port) as alice:
        alice.send_text(f"/join {room}")
        assert alice.recv_message() == f"joined {room}"
        for i in range(5):
            alice.send_text(f"/all {room} line {i}")
        got = [open_envelope(alice.recv_message()) for _ in range(5)]
        assert [(p.offset, m) for _, p, m in got] == [(i + 1, f"line {i}") for i in range(5)]
        epoch = got[0][1].epoch
        with RawClient.connect(server.port) as bob:
            bob.send_text(f"/join {room}")
            assert bob.recv_message() == f"joined {room}"
            assert [open_envelope(bob.recv_message())[2] for _ in range(3)] == ["line 2", "line 3", "line 4"]
        with RawClient.connect(server.port) as carol:
            carol.send_text(f"/rejoin {room} {epoch} 3")
            assert [open_envelope(carol.recv_message())[2] for _ in range(2)] == ["line 3", "line 4"]
            assert carol.recv_message() == f"recovered {room} 2"
            carol.send_text(f"/rejoin {room} {epoch} 0")  # trimmed: offsets 1 and 2 are gone
            assert carol.recv_message() == f"unrecoverable {room}"
            carol.send_text(f"/rejoin {room} {epoch} 99")
            assert carol.recv_message() == f"not joined {room}: offset 99 is in the future: room {room!r} is at 5"
