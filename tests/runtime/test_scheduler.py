"""Actors and their scheduler (runtime/scheduler.py) through the public API (``spawn``, ``send``, ``link``,
``exit_actor``, ``ExitSignal``) and the Scheduler class; connection actors over a real socket on 127.0.0.1.

Nothing here sleeps to synchronise: an actor that must be busy blocks on an Event the test releases, and "nothing
more will arrive" is shown by a later message overtaking nothing (mailboxes are FIFO, and with one worker thread
the run queue is too).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import snow_rt_py
from snow_rt_py import ExitSignal, exit_actor, link, send, spawn
from snow_rt_py.runtime.scheduler import Scheduler, Tag
from tests.support import CallLog, CloseOnRequest

pytestmark = pytest.mark.timeout(30)

WAIT = 5.0  # seconds any single expected event may take


def watcher() -> tuple[int, CallLog]:
    """An actor spawned with the public API that records every message it gets as ``("got", message)``."""
    log = CallLog()
    return spawn(lambda message: log.record("got", message)), log


def received(log: CallLog) -> list[Any]:
    return [message for _, message in log.of("got")]


class _Marker:
    pass


def settle(pid: int, log: CallLog) -> list[Any]:
    """Everything ``pid`` got before a marker sent now (messages are handled in delivery order), markers aside."""
    marker = _Marker()
    assert send(pid, marker)
    log.wait_until(lambda: marker in received(log), WAIT)
    got = received(log)
    return [message for message in got[: got.index(marker)] if not isinstance(message, _Marker)]


@pytest.fixture
def one_worker() -> Iterator[Scheduler]:
    """A Scheduler with a single worker thread, so the order in which actors run is the run queue's."""
    loop = asyncio.new_event_loop()  # unused with workers >= 1, but the constructor wants one
    scheduler = Scheduler(loop, snow_rt_py.default_runtime().actors, workers=1, name="test-sched")
    yield scheduler
    scheduler.close()
    scheduler.join(WAIT)
    loop.close()


def info_actor(scheduler: Scheduler, fn: Callable[[Any], None]) -> int:
    """An actor on ``scheduler`` calling ``fn(message)`` for what :func:`send` gives it; returns its pid."""

    def behaviour(tag: Tag, payload: Any) -> None:
        fn(payload)

    return scheduler.spawn(behaviour).pid


# -- one message at a time, in order ------------------------------------------------------------------------------


def test_messages_are_handled_one_at_a_time_in_delivery_order() -> None:
    log = CallLog()
    running = 0
    overlaps = 0
    guard = threading.Lock()

    def fn(message: Any) -> None:
        nonlocal running, overlaps
        with guard:
            running += 1
            overlaps += running > 1
        log.record("got", message)
        with guard:
            running -= 1

    pid = spawn(fn)
    senders = [
        threading.Thread(target=lambda k=k: [send(pid, (k, i)) for i in range(300)]) for k in range(3)
    ]  # three threads at once: each one's messages keep their order
    for t in senders:
        t.start()
    for t in senders:
        t.join(WAIT)
    got = settle(pid, log)
    assert len(got) == 900
    for k in range(3):
        assert [i for sender, i in got if sender == k] == list(range(300))
    assert overlaps == 0  # never two messages of the actor at the same time, though the pool has several threads
    exit_actor(pid)


# -- links and exit signals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exiting", "links"),
    [("first", 1), ("second", 1), ("first", 2)],  # linking again (either way round) changes nothing
)
def test_links_are_symmetric_and_the_exit_signal_arrives_exactly_once(exiting: str, links: int) -> None:
    a, a_log = watcher()
    b, b_log = watcher()
    link(a, b)
    if links == 2:
        link(b, a)
    gone, stays, stays_log = (a, b, b_log) if exiting == "first" else (b, a, a_log)
    assert exit_actor(gone, "boom")
    assert settle(stays, stays_log) == [ExitSignal(gone, "boom")]
    assert not exit_actor(gone, "again")  # idempotent: no second signal either
    assert settle(stays, stays_log) == [ExitSignal(gone, "boom")]
    exit_actor(stays)


def test_exit_signals_reach_only_live_linked_actors() -> None:
    hub, hub_log = watcher()
    left, left_log = watcher()
    right, right_log = watcher()
    unlinked, unlinked_log = watcher()
    link(hub, left)
    link(hub, right)
    assert exit_actor(left, "first")  # hub learns; right (not linked to left) does not
    assert settle(hub, hub_log) == [ExitSignal(left, "first")]
    assert exit_actor(hub, ("code", 7))  # right learns; left is dead and gets nothing
    assert settle(right, right_log) == [ExitSignal(hub, ("code", 7))]
    assert settle(unlinked, unlinked_log) == []
    assert received(left_log) == []
    assert not send(hub, "late") and not send(left, "late")
    exit_actor(right)
    exit_actor(unlinked)


def test_link_to_a_dead_or_unknown_actor_raises_lookup_error() -> None:
    alive, _ = watcher()
    dead, _ = watcher()
    assert exit_actor(dead)
    with pytest.raises(LookupError):
        link(alive, dead)
    with pytest.raises(LookupError):
        link(dead, alive)
    with pytest.raises(LookupError):
        link(alive, 10**12)  # never spawned
    exit_actor(alive)


def test_exit_is_idempotent_and_drops_pending_messages(one_worker: Scheduler) -> None:
    log = CallLog()
    gate = threading.Event()

    def blocked(message: Any) -> None:
        log.record("got", message)
        if message == 1:
            assert gate.wait(WAIT)

    pid = info_actor(one_worker, blocked)
    assert send(pid, 1)
    log.wait_for(lambda calls: calls == [("got", 1)], WAIT)  # busy with 1: 2, 3, 4 wait in its mailbox
    assert all(send(pid, n) for n in (2, 3, 4))
    assert exit_actor(pid, "stop") is True
    assert exit_actor(pid, "stop") is False
    assert not send(pid, 5)
    probe = info_actor(one_worker, lambda message: log.record("probe", message))
    assert send(probe, "after")  # queued behind the busy actor on the only worker
    gate.set()
    log.wait_count("probe", 1, WAIT)
    assert log.calls == [("got", 1), ("probe", "after")]  # 2, 3 and 4 were dropped, not run late
    exit_actor(probe)


def test_a_crashing_behaviour_is_logged_and_the_actor_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    log = CallLog()

    def fn(message: Any) -> None:
        if message == "boom":
            raise RuntimeError("exploded on purpose")
        log.record("got", message)

    pid = spawn(fn)
    with caplog.at_level(logging.ERROR, logger="snow_rt_py"):
        assert send(pid, "before") and send(pid, "boom") and send(pid, "after")
        assert settle(pid, log) == ["before", "after"]
    crashes = [r for r in caplog.records if r.exc_info and "exploded on purpose" in str(r.exc_info[1])]
    assert len(crashes) == 1 and str(pid) in crashes[0].getMessage()
    assert send(pid, "still alive")
    exit_actor(pid)


# -- fairness -----------------------------------------------------------------------------------------------------


def test_a_flooded_actor_yields_the_worker_before_its_flood_is_done(one_worker: Scheduler) -> None:
    flood = 1000
    handled: list[int] = []
    seen_by_other: list[int] = []
    started, gate, other_done, flood_done = threading.Event(), threading.Event(), threading.Event(), threading.Event()

    def flooded(message: int) -> None:
        if message == -1:
            started.set()
            assert gate.wait(WAIT)
        elif message == flood:
            flood_done.set()
        else:
            handled.append(message)

    def other(message: str) -> None:
        seen_by_other.append(len(handled))  # how far the flood had got
        other_done.set()

    busy = info_actor(one_worker, flooded)
    quiet = info_actor(one_worker, other)
    assert send(busy, -1)
    assert started.wait(WAIT)  # the only worker is inside busy's first message
    assert all(send(busy, i) for i in range(flood + 1))
    assert send(quiet, "me too")  # sent after the whole flood
    gate.set()
    assert other_done.wait(WAIT)
    assert flood_done.wait(WAIT)
    assert len(seen_by_other) == 1 and seen_by_other[0] < flood  # it did not wait for the 1000 messages
    assert handled == list(range(flood))  # and the flood was handled whole, in order
    exit_actor(busy)
    exit_actor(quiet)


# -- connection actors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_a_connection_actor_exiting_signals_its_linked_actor_with_code_and_reason(start_server, workers: int) -> None:
    handler = CloseOnRequest()
    server = start_server(handler, workers=workers)
    pid, log = watcher()
    with connect(server.url, open_timeout=WAIT, close_timeout=WAIT) as ws:
        ws.send("hello")
        assert ws.recv(timeout=WAIT) == "hello"
        conn = handler.newest()
        link(conn.pid, pid)  # the connection's end of the link this time
        ws.send("close me")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=WAIT)
        assert ws.close_code == 4100
    assert handler.wait_close() == (4100, "as requested")
    log.wait_count("got", 1, WAIT)
    assert settle(pid, log) == [ExitSignal(conn.pid, (4100, "as requested"))]  # once
    assert not send(conn.pid, "after the end")
    with pytest.raises(LookupError):
        link(pid, conn.pid)
    exit_actor(pid)
