"""The backplane interface (runtime/backplane/base.py): one room scenario, through a RoomRegistry with real
sockets, run against both implementations: in-process, and Redis (a real redis-server, with a second node in
the room). The registry reaches its backplane only through the interface: a spy that has exactly the
Protocol's methods stands in front of the real one and records every call."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

import snow_rt_py
from snow_rt_py import Member, PresenceEvent, RunningServer
from snow_rt_py.protocol.frames import encode_binary, encode_text
from snow_rt_py.runtime.backplane.base import Backplane, Position
from snow_rt_py.runtime.backplane.local import InProcessBackplane
from snow_rt_py.runtime.backplane.redis_backplane import RedisBackplane
from tests.support import Recorder

pytestmark = pytest.mark.timeout(60)


class Spy:
    """A Backplane that forwards every call to ``real`` and records it (any thread)."""

    def __init__(self, real: Backplane) -> None:
        self.real = real
        self.calls: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    @property
    def node(self) -> int:
        return self.real.node

    def broadcast(self, room: str, frame: bytes, except_id: int) -> Position | None:
        position = self.real.broadcast(room, frame, except_id)
        with self._lock:
            self.calls.append(("broadcast", room, frame, except_id, position))
        return position

    def member_changed(self, joined: bool, room: str, member: Member) -> None:
        with self._lock:
            self.calls.append(("member_changed", joined, room, member))
        self.real.member_changed(joined, room, member)

    def presence(self, room: str, local: list[Member]) -> list[Member]:
        return self.real.presence(room, local)

    def statistics(self) -> dict[str, int]:
        return self.real.statistics()

    async def start(self) -> None:
        await self.real.start()

    async def close(self) -> None:
        await self.real.close()


class Watcher(Recorder):
    """A Recorder that also records presence events: ``("presence", conn.id, room, kind, member)``."""

    def on_presence(self, conn: snow_rt_py.Connection, event: PresenceEvent) -> None:
        self.record("presence", conn.id, event.room, event.kind, event.member)


@contextlib.contextmanager
def node(redis_url: str | None) -> Iterator[tuple[snow_rt_py.Runtime, Watcher, RunningServer]]:
    with snow_rt_py.Runtime() as rt:
        handler = Watcher()
        server = rt.start(handler, snow_rt_py.ServerOptions(port=0, cluster_url=redis_url))
        try:
            yield rt, handler, server
        finally:
            server.stop()


def client(
    stack: contextlib.ExitStack, server: RunningServer, handler: Recorder
) -> tuple[ClientConnection, snow_rt_py.Connection]:
    before = set(handler.conns)
    ws = stack.enter_context(connect(server.url, open_timeout=10))
    handler.wait_until(lambda: len(handler.conns) > len(before))
    (conn_id,) = set(handler.conns) - before
    return ws, handler.conns[conn_id]


def recv(ws: ClientConnection) -> str | bytes:
    return ws.recv(timeout=5)


@pytest.mark.parametrize("kind", ["in-process", "redis"])
def test_room_scenario_through_the_backplane_interface(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis").url if kind == "redis" else None
    with contextlib.ExitStack() as stack:
        rt, handler, server = stack.enter_context(node(url))
        real = rt.rooms.backplane
        assert isinstance(real, Backplane)
        assert isinstance(real, InProcessBackplane if kind == "in-process" else RedisBackplane)
        assert (rt.cluster is real) == (kind == "redis")  # nothing but the chooser tells them apart
        spy = Spy(real)
        assert isinstance(spy, Backplane)
        rt.rooms.attach(spy)

        a, ca = client(stack, server, handler)
        b, cb = client(stack, server, handler)
        snow_rt_py.join(ca, "r", meta="alice")
        snow_rt_py.join(cb, "r", meta="bob")
        expected = [Member(ca.id, real.node, "alice"), Member(cb.id, real.node, "bob")]
        remote: ClientConnection | None = None
        if kind == "redis":  # a second node's member of the room, heard of through Redis
            rt2, handler2, server2 = stack.enter_context(node(url))
            remote, cc = client(stack, server2, handler2)
            snow_rt_py.join(cc, "r", meta="carol")
            expected.append(Member(cc.id, rt2.rooms.node, "carol"))
            assert rt2.rooms.node not in (0, real.node)
            # Node 1's view is updated before its watchers hear of the join.
            handler.wait_until(lambda: ("presence", ca.id, "r", "join", expected[2]) in handler.calls, 10)
        assert rt.rooms.presence("r") == sorted(expected, key=lambda m: m.id)

        assert rt.rooms.broadcast("r", "one", ca) == 0  # every member but a
        assert rt.rooms.broadcast("r", b"two", cb.id) == 0  # but b, named by id
        assert rt.rooms.broadcast("r", "three") == 0
        assert [recv(a), recv(a)] == [b"two", "three"]
        assert [recv(b), recv(b)] == ["one", "three"]
        if remote is not None:
            assert [recv(remote) for _ in range(3)] == ["one", b"two", "three"]

        snow_rt_py.leave(cb, "r")
        left = [m for m in expected if m.id != cb.id]
        assert rt.rooms.presence("r") == sorted(left, key=lambda m: m.id)
        # One backplane call per broadcast (never per member), with the frame encoded once; no position (no
        # room keeps history yet); the local joins and leave in order.
        assert spy.calls == [
            ("member_changed", True, "r", expected[0]),
            ("member_changed", True, "r", expected[1]),
            ("broadcast", "r", encode_text("one"), ca.id, None),
            ("broadcast", "r", encode_binary(b"two"), cb.id, None),
            ("broadcast", "r", encode_text("three"), 0, None),
            ("member_changed", False, "r", expected[1]),
        ]
        if kind == "redis":
            stats = real.statistics()
            assert stats["published"] == 3 and stats["publish_dropped"] == 0
        else:
            assert real.statistics() == {}
