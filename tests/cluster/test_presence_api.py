"""The Python API of the cluster in one process: two runtimes are two nodes on one real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import zlib
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import ClientConnection, connect

import snow_rt_py
from snow_rt_py import Connection, Handler, PresenceEvent, RunningServer, ServerStartError
from snow_rt_py.protocol.frames import encode_text
from snow_rt_py.testing import RawClient
from tests.cluster.conftest import Redis, free_port

pytestmark = pytest.mark.timeout(60)


class Watcher(Handler):
    def __init__(self) -> None:
        self.events: list[tuple[int, str, str, int, str]] = []
        self.conns: list[Connection] = []
        self.cond = threading.Condition()

    def on_connect(self, conn: Connection, path: str, headers: object) -> bool:
        with self.cond:
            self.conns.append(conn)
            self.cond.notify_all()
        return True

    def on_presence(self, conn: Connection, event: PresenceEvent) -> None:
        with self.cond:
            self.events.append((conn.id, event.room, event.kind, event.member.id, event.member.meta))
            self.cond.notify_all()

    def wait(self, predicate: object, timeout: float = 10.0) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), self.events  # type: ignore[arg-type]


@contextlib.contextmanager
def two_nodes(
    redis: Redis,
) -> Iterator[tuple[snow_rt_py.Runtime, Watcher, RunningServer, snow_rt_py.Runtime, Watcher, RunningServer]]:
    """Two runtimes in this process, each a node of one cluster on ``redis``, each with a server and a Watcher."""
    with snow_rt_py.Runtime() as rt1, snow_rt_py.Runtime() as rt2:
        h1, h2 = Watcher(), Watcher()
        s1 = rt1.start(h1, snow_rt_py.ServerOptions(port=0, cluster_url=redis.url))
        s2 = rt2.start(h2, snow_rt_py.ServerOptions(port=0, cluster_url=redis.url))
        yield rt1, h1, s1, rt2, h2, s2


async def one_on_each(
    s1: RunningServer, h1: Watcher, s2: RunningServer, h2: Watcher
) -> tuple[ClientConnection, Connection, ClientConnection, Connection]:
    """A client on each node: (client 1, its connection on node 1, client 2, its connection on node 2)."""
    a = await connect(s1.url)
    b = await connect(s2.url)
    h1.wait(lambda: len(h1.conns) == 1)
    h2.wait(lambda: len(h2.conns) == 1)
    return a, h1.conns[0], b, h2.conns[0]


def test_presence_events_and_remote_exclusion(redis: Redis) -> None:
    with two_nodes(redis) as (rt1, h1, s1, rt2, h2, s2):

        async def run() -> None:
            a, ca, b, cb = await one_on_each(s1, h1, s2, h2)
            assert ca.id >> 40 != cb.id >> 40  # two nodes, ids unique across them
            snow_rt_py.join(ca, "r", meta="alice")
            h1.wait(lambda: (ca.id, "r", "join", ca.id, "alice") in h1.events)  # told of its own join
            deadline = time.monotonic() + 10
            while len(rt2.rooms.presence("r")) != 1 and time.monotonic() < deadline:  # off-loop: a Redis read
                await asyncio.sleep(0.05)
            assert [(m.id, m.meta) for m in rt2.rooms.presence("r")] == [(ca.id, "alice")]
            snow_rt_py.join(cb, "r", meta="bob")
            h1.wait(lambda: (ca.id, "r", "join", cb.id, "bob") in h1.events)  # a's handler hears b's join
            h2.wait(lambda: (cb.id, "r", "join", cb.id, "bob") in h2.events)
            deadline = time.monotonic() + 10  # node 2 has just subscribed: it reads the others' members next
            while rt2.rooms.presence_count("r") != 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert rt1.rooms.presence_count("r") == 2 and rt2.rooms.presence_count("r") == 2
            # broadcast_except with a remote connection id: b (on node 2) is excluded from node 1's broadcast.
            assert rt1.rooms.broadcast("r", "not for b", cb.id) == 0
            assert rt1.rooms.broadcast("r", "for all") == 0
            assert await asyncio.wait_for(a.recv(), 5) == "not for b"
            assert await asyncio.wait_for(a.recv(), 5) == "for all"
            assert await asyncio.wait_for(b.recv(), 5) == "for all"
            await b.close()
            h1.wait(lambda: (ca.id, "r", "leave", cb.id, "bob") in h1.events)
            await a.close()

        asyncio.run(run())
        stats = rt1.cluster.statistics() if rt1.cluster is not None else {}
        assert stats["published"] >= 2 and stats["publish_dropped"] == 0
        s1.stop()
        s2.stop()
        assert rt1.cluster is None  # the last cluster server took the backplane down


def test_presence_read_that_predates_a_join_does_not_lose_it(redis: Redis) -> None:
    """Node 1 re-reads a room's presence from Redis when it subscribes (its first member joins). If node 2's member
    joins while that read is on its way, node 1 applies the join event and then gets an answer without it: the
    member must stay in node 1's presence, and node 1's handlers must not be told it left."""
    with two_nodes(redis) as (rt1, h1, s1, _rt2, h2, s2):
        backplane = rt1.cluster
        assert backplane is not None
        directory = backplane.directory  # the Redis backplane's presence directory (runtime/backplane/)
        read_presence = directory.read_presence
        answered = threading.Event()  # node 1 has its (early) answer
        release = threading.Event()  # the test has made node 2's member join meanwhile
        returned = threading.Event()  # node 1 has the older answer (and applies it in the same step)

        async def late_answer(rooms: object, live_only: bool = True) -> object:
            found = await read_presence(rooms, live_only)  # type: ignore[arg-type]
            if not answered.is_set():  # the first read only: the one of node 1's subscribing
                answered.set()
                while not release.is_set():
                    await asyncio.sleep(0.01)
                returned.set()
            return found

        directory.read_presence = late_answer

        async def run() -> None:
            a, ca, b, cb = await one_on_each(s1, h1, s2, h2)
            snow_rt_py.join(ca, "r", meta="alice")
            assert await asyncio.to_thread(answered.wait, 10)  # node 1's read of "r" has come back without bob
            snow_rt_py.join(cb, "r", meta="bob")
            h1.wait(lambda: (ca.id, "r", "join", cb.id, "bob") in h1.events)  # node 1 applied bob's join event
            release.set()  # now node 1 gets its older answer
            assert await asyncio.to_thread(returned.wait, 10)
            # Node 1 applies the answer in the same step of its loop as the read returns: a call that node 1's
            # loop runs after it has seen it applied.
            assert backplane.loop is not None
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(asyncio.sleep(0), backplane.loop))
            assert sorted((m.id, m.meta) for m in rt1.rooms.presence("r")) == [(ca.id, "alice"), (cb.id, "bob")]
            assert rt1.rooms.presence_count("r") == 2
            assert (ca.id, "r", "leave", cb.id, "bob") not in h1.events
            await b.close()
            h1.wait(lambda: (ca.id, "r", "leave", cb.id, "bob") in h1.events)  # a real leave is still told
            assert rt1.rooms.presence_count("r") == 1
            await a.close()

        asyncio.run(run())


def test_remote_broadcast_is_compressed_for_members_that_negotiated_it(redis: Redis) -> None:
    """Node 1's broadcasts reach node 2 as plain frames (one publish); node 2 compresses them for its members that
    negotiated permessage-deflate (RSV1 set, from compression_min_size, 128, on) and not for the others, in order."""
    with two_nodes(redis) as (rt1, h1, s1, _rt2, h2, s2):
        long_text = "a broadcast long enough to be compressed " * 8
        client = RawClient(s2.port)
        try:
            status, headers, _ = client.handshake("/", {"Sec-WebSocket-Extensions": "permessage-deflate"})
            assert status == 101 and headers.get("sec-websocket-extensions", "").startswith("permessage-deflate")

            async def run() -> None:
                a = await connect(s1.url)
                b = await connect(s2.url, compression=None)  # no offer: everything plain
                h1.wait(lambda: len(h1.conns) == 1)
                h2.wait(lambda: len(h2.conns) == 2)
                for conn in (*h1.conns, *h2.conns):
                    snow_rt_py.join(conn, "z")
                deadline = time.monotonic() + 10
                while rt1.rooms.presence_count("z") != 3 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert rt1.rooms.presence_count("z") == 3
                assert rt1.rooms.broadcast("z", long_text) == 0
                assert rt1.rooms.broadcast("z", "short") == 0
                assert rt1.rooms.broadcast("z", long_text.encode()) == 0  # binary
                # Not one frame (two, joined): node 2 passes it on as it is, to every member.
                assert rt1.rooms.broadcast_frame("z", encode_text(long_text) + encode_text("y")) == 0
                for ws in (a, b):
                    got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(5)]
                    assert got == [long_text, "short", long_text.encode(), long_text, "y"]
                await a.close()
                await b.close()

            asyncio.run(run())
            inflater = zlib.decompressobj(-15)
            frames = [client.recv_frame() for _ in range(5)]
            assert [(f.opcode, f.rsv) for f in frames] == [(1, 4), (1, 0), (2, 4), (1, 0), (1, 0)]
            assert [f.payload for f in frames[3:]] == [long_text.encode(), b"y"]
            assert inflater.decompress(frames[0].payload + b"\x00\x00\xff\xff") == long_text.encode()
            assert frames[1].payload == b"short"
            assert inflater.decompress(frames[2].payload + b"\x00\x00\xff\xff") == long_text.encode()
            assert len(frames[0].payload) < len(long_text) // 2
        finally:
            client.close()


def test_burst_across_nodes_keeps_order_and_exclusions(redis: Redis) -> None:
    """A burst of broadcasts reaches the other node in one read and is fanned out in runs (consecutive broadcasts
    to one room with the same excluded connection go out together): every member still gets exactly its messages,
    each its own frame, in order; the exclusions of the burst hold; the deliveries are counted one per message."""
    with two_nodes(redis) as (rt1, h1, s1, rt2, h2, s2):

        async def run() -> None:
            a = await connect(s1.url)
            b = await connect(s2.url)
            c = await connect(s2.url)
            h1.wait(lambda: len(h1.conns) == 1)
            h2.wait(lambda: len(h2.conns) == 2)
            ca, (cb, cc) = h1.conns[0], h2.conns
            for conn in (ca, cb, cc):
                snow_rt_py.join(conn, "burst")
            deadline = time.monotonic() + 10
            while rt1.rooms.presence_count("burst") != 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            # From a thread that is not the loop's: queued, then written to Redis in one pipeline, a burst.
            expected_b, expected_c = [], []
            for i in range(120):
                text = f"m{i}"
                if i % 3 == 0:  # runs of one: the excluded connection changes at every third message
                    rt1.rooms.broadcast("burst", text, cb.id)
                else:
                    rt1.rooms.broadcast("burst", text)
                    expected_b.append(text)
                expected_c.append(text)
            got_b = [await asyncio.wait_for(b.recv(), 5) for _ in expected_b]
            got_c = [await asyncio.wait_for(c.recv(), 5) for _ in expected_c]
            assert got_b == expected_b
            assert got_c == expected_c
            assert [await asyncio.wait_for(a.recv(), 5) for _ in range(120)] == expected_c
            rt1.rooms.broadcast("burst", "end")
            assert await asyncio.wait_for(b.recv(), 5) == "end"  # nothing extra was queued for b before it
            for ws in (a, b, c):
                await ws.close()

        asyncio.run(run())
        stats = rt2.cluster.statistics() if rt2.cluster is not None else {}
        assert stats["remote_deliveries"] == 80 + 120 + 2  # b: 80 and "end", c: 120 and "end"
        assert stats["remote_delivery_failures"] == 0
        s1.stop()
        s2.stop()


def test_unreachable_redis_fails_the_start() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    expected = f"cannot reach the cluster.s Redis at {url}"
    with snow_rt_py.Runtime() as rt, pytest.raises(ServerStartError, match=expected):
        rt.start(Handler(), snow_rt_py.ServerOptions(port=0, cluster_url=url))
