"""Rooms with history on a cluster (a real redis-server, two nodes in this process): offsets the same on every
node, one script call per broadcast, a member recovering on node B what was broadcast on node A while node A keeps
broadcasting, and a Redis restarted empty giving a new epoch (recoveries across it: unrecoverable)."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import ClientConnection, connect

import snow_rt_py
from snow_rt_py import Position, RunningServer
from snow_rt_py.runtime.history import open_envelope
from tests.support import Recorder

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def node(url: str, room: str) -> Iterator[tuple[snow_rt_py.Runtime, Recorder, RunningServer]]:
    with snow_rt_py.Runtime() as rt:
        snow_rt_py.configure_room(room, history_size=5000, runtime=rt)
        handler = Recorder()
        server = rt.start(handler, snow_rt_py.ServerOptions(port=0, cluster_url=url))
        try:
            yield rt, handler, server
        finally:
            server.stop()


def client(stack: contextlib.ExitStack, server: RunningServer, handler: Recorder) -> tuple[ClientConnection, int]:
    before = set(handler.conns)
    ws = stack.enter_context(connect(server.url, open_timeout=10, max_queue=None))
    handler.wait_until(lambda: len(handler.conns) > len(before), 10)
    (conn_id,) = set(handler.conns) - before
    return ws, conn_id


def offsets(ws: ClientConnection, count: int) -> list[tuple[int, str | bytes]]:
    out = []
    for _ in range(count):
        _, position, message = open_envelope(ws.recv(timeout=10))
        out.append((position.offset, message))
    return out


def script_calls(redis) -> int:
    found = re.search(r"cmdstat_eval:calls=(\d+)", redis.cli("INFO", "commandstats"))
    return int(found.group(1)) if found else 0


def subscribed(rt: snow_rt_py.Runtime, room: str) -> None:
    deadline = time.monotonic() + 10
    while room not in rt.cluster.subscriptions():  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "node never subscribed"
        threading.Event().wait(0.01)


def test_recovery_across_nodes_with_a_publisher_running(redis) -> None:
    room = "chat-history"
    with contextlib.ExitStack() as stack:
        rt_a, handler_a, server_a = stack.enter_context(node(redis.url, room))
        rt_b, handler_b, server_b = stack.enter_context(node(redis.url, room))
        a, a_id = client(stack, server_a, handler_a)
        b, b_id = client(stack, server_b, handler_b)
        snow_rt_py.join(handler_a.conns[a_id], room)
        snow_rt_py.join(handler_b.conns[b_id], room)
        subscribed(rt_a, room)
        subscribed(rt_b, room)
        calls = script_calls(redis)
        positions = [snow_rt_py.publish(room, f"first-{i}", runtime=rt_a) for i in range(10)]
        done = [p.result(5) for p in positions if p is not None]
        assert [p.offset for p in done] == list(range(1, 11))
        epoch = done[0].epoch
        assert script_calls(redis) - calls == 10  # one script call per broadcast, whatever the members
        # the same offsets on both nodes, the broadcaster's local member served in that order too
        assert offsets(a, 10) == offsets(b, 10) == [(i + 1, f"first-{i}") for i in range(10)]
        b.close()
        handler_b.wait_count("close", 1, 10)
        missed = [snow_rt_py.publish(room, f"missed-{i}", runtime=rt_a) for i in range(1000)]
        assert missed[-1] is not None and missed[-1].result(10).offset == 1010
        stop = threading.Event()
        sent = [0]

        def keep_publishing() -> None:
            while not stop.is_set() and sent[0] < 20_000:
                snow_rt_py.publish(room, f"live-{sent[0]}", runtime=rt_a).result(5)  # type: ignore[union-attr]
                sent[0] += 1

        publisher = threading.Thread(target=keep_publishing)
        publisher.start()
        try:
            again, again_id = client(stack, server_b, handler_b)
            recovery = snow_rt_py.join_from(handler_b.conns[again_id], room, epoch, 10)
            assert recovery.recovered and recovery.replayed >= 1000
            got = offsets(again, 1100)
        finally:
            stop.set()
            publisher.join(20)
        assert [o for o, _ in got] == list(range(11, 1111))  # no gap, no duplicate, across the merge
        assert [m for _, m in got[:1000]] == [f"missed-{i}" for i in range(1000)]
        assert [m for _, m in got[1000:]] == [f"live-{i}" for i in range(100)]
        page = snow_rt_py.history(room, since=1105, limit=3, runtime=rt_b)
        assert page.complete and [i.offset for i in page.items] == [1106, 1107, 1108]

        # Redis restarted empty: a new epoch; a recovery from the old one is unrecoverable (and joins)
        redis.stop()
        redis.start()
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "the nodes did not reconnect"
            with contextlib.suppress(ConnectionError):
                fresh = snow_rt_py.publish(room, "after restart", runtime=rt_a).result(5)  # type: ignore[union-attr]
                break
            threading.Event().wait(0.05)
        assert fresh.epoch != epoch and fresh.offset == 1
        _late, late_id = client(stack, server_b, handler_b)
        lost = snow_rt_py.join_from(handler_b.conns[late_id], room, epoch, 1000)
        assert not lost.recovered and lost.position == Position(fresh.epoch, 1)
        with pytest.raises(RuntimeError, match="not on the event loop thread"):
            _on_loop(rt_b, room)


def _on_loop(rt: snow_rt_py.Runtime, room: str) -> None:
    """history() from the loop thread of a cluster node: refused."""
    import concurrent.futures

    result: concurrent.futures.Future[None] = concurrent.futures.Future()

    def attempt() -> None:
        try:
            snow_rt_py.history(room, runtime=rt)
            result.set_result(None)
        except BaseException as exc:
            result.set_exception(exc)

    rt.loop_thread.loop.call_soon_threadsafe(attempt)
    result.result(10)
