"""The C parts and their Python references give a user the same results beyond one connection on the loop thread.

tests/runtime/test_hotpath.py compares one connection's reads with ``workers=0``. This file runs the same
scenario twice more widely -- once with the C parts (``conn._fast`` True, the C fan-out and flush loops), once on
the Python path (``conn._fast`` False, rooms' and the server's Python loops) -- and compares what a program and
its peers observe: the handler's callbacks with their arguments, every write to each transport in order, the
return values of sends and broadcasts, close codes, ``statistics()`` and the server's and rooms' counters, for

* workers > 0: messages go through ``Scheduler.deliver`` to worker threads, replies come from those threads;
* a room's broadcast fan-out (``ConnectionCore.offer_all`` against ``rooms._offer_all``'s loop): members open,
  closing, ended, with a full queue (slow-consumer policy "close" and "drop"), compressed or not, with and
  without ``except_conn``, joined frames from another node (count > 1) and ``write_now`` both ways;
* the end-of-iteration flush (``ConnectionCore.flush_all`` against ``Server._flush_dirty``'s loop): small and
  large (writelines) frames, a connection whose Close is due;
* the scheduler's rules: ``ActorCore`` against ``PyActorCore`` for any sequence of offer / settle / take / kill,
  and under threads (no message lost or run twice, each sender's order kept).

The C ABI's direct call into a C program's on_message is compared in tests/c/test_reply_paths.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snow_rt_py.runtime import rooms as rooms_module
from snow_rt_py.runtime import server as server_module
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.connection_base import C_CONNECTION
from snow_rt_py.runtime.loop import new_event_loop
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.runtime import Runtime
from snow_rt_py.runtime.scheduler import C_SCHEDULER, PyActorCore, Tag
from snow_rt_py.runtime.server import Server
from tests.runtime.test_hotpath import (
    HANDSHAKE,
    HANDSHAKE_DEFLATE,
    LIMIT,
    Scripted,
    Transport,
    deflated,
    frame,
    offering,
    run,
    texts,
)

needs_c = pytest.mark.skipif(not C_CONNECTION, reason="the C parts are not built (or SNOW_RT_PY_NO_SPEEDUPS=1)")
needs_scheduler = pytest.mark.skipif(not C_SCHEDULER, reason="the scheduler's C part is not built")
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@contextmanager
def python_loops(python: bool) -> Iterator[None]:
    """With ``python``, rooms' fan-out and the server's flush run their Python loops, not the C ones."""
    saved = rooms_module._c_offer_all, server_module._flush_all
    if python:
        rooms_module._c_offer_all, server_module._flush_all = None, None
    try:
        yield
    finally:
        rooms_module._c_offer_all, server_module._flush_all = saved


def run_loop(go: Callable[[asyncio.AbstractEventLoop], Any]) -> Any:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(go(loop))
    finally:
        loop.close()


async def until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait for ``cond`` (set by worker threads) with a bound, letting the loop run meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.0005)


def same(c_side: Any, python_side: Any, where: str = "") -> None:
    """Assert the two sides are equal, naming the first place they differ (a readable failure)."""
    if isinstance(c_side, dict) and isinstance(python_side, dict) and c_side.keys() == python_side.keys():
        for key in c_side:
            same(c_side[key], python_side[key], f"{where}.{key}")
    elif isinstance(c_side, list) and isinstance(python_side, list) and len(c_side) == len(python_side):
        for i, (one, other) in enumerate(zip(c_side, python_side, strict=True)):
            same(one, other, f"{where}[{i}]")
    else:
        assert c_side == python_side, f"C and Python differ at {where or 'the top'}"


def opened(server: Server, head: bytes, fast: bool) -> tuple[Connection, Transport]:
    """A connection of ``server`` that got the handshake ``head`` (its 101 queued or written)."""
    conn = Connection(server)
    conn._fast = fast
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(head)
    return conn, transport


def observed(conn: Connection, transport: Transport, handler: Scripted) -> dict[str, Any]:
    return {
        "calls": list(handler.by_conn.get(conn.id, [])),
        "writes": list(transport.writes),
        "kinds": list(transport.kinds),
        "phase": conn.phase,
        "stats": conn.statistics(),
        "bytes_out": conn.bytes_out,
    }


# -- (a) workers > 0 --------------------------------------------------------------------------------------------

# Data frames only: with workers, a pong or our answer to the peer's Close (written by the loop) may overtake a
# worker's reply to an earlier message on either path, so their place on the wire is not the C part's to decide.
worker_frames = st.one_of(
    st.builds(lambda p, k: frame(0x81, p, k), texts, st.binary(min_size=4, max_size=4)),
    st.builds(lambda p: frame(0x82, p), st.binary(max_size=300)),
    st.builds(lambda p: frame(0x01, p[:3]) + frame(0x80, p[3:]), texts),
    st.builds(lambda p: frame(0xC1, deflated(p)), texts),
    st.builds(lambda p: frame(0xC2, deflated(p * 30)), st.binary(min_size=1, max_size=40)),
)
WORKER_HEADS = [HANDSHAKE, HANDSHAKE_DEFLATE, offering(b"permessage-deflate; server_no_context_takeover")]


def run_workers(heads: list[bytes], reads: list[tuple[int, bytes]], fast: bool, mode: str) -> list[dict[str, Any]]:
    handler = Scripted()

    async def go(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
        options = ServerOptions(ping_interval=0, max_message_size=LIMIT, compression=mode, workers=2)
        server = Server(handler, options, loop, Runtime())
        try:
            conns = [opened(server, head, fast) for head in heads]
            await until(lambda: len(handler.calls) == len(conns), "on_connect of every connection")
            for i, data in reads:  # one loop step: the workers run meanwhile
                conns[i][0].data_received(data)

            def idle() -> bool:
                return all(
                    c._inbox_done == c._inbox_given and c._actor is not None and not c._actor.running for c, _ in conns
                )

            await until(idle, "every message handled")

            # The workers' last call_soon_threadsafe (a close, a flush) runs on the loop, then its flush: wait until
            # every FIFO is written and stays so over several loop iterations (a callback queued by a worker runs
            # within one, but on a loaded machine not always in the first).
            quiet = [0]

            def written() -> bool:
                server._flush_dirty()
                quiet[0] = quiet[0] + 1 if all(not c._out and not c._flush_pending for c, _ in conns) else 0
                return quiet[0] >= 10

            await until(written, "every reply written")
            seen = [observed(c, t, handler) for c, t in conns]
            for one in seen:  # where a worker's reply starts a new write is timing: the bytes and order are not
                one["writes"], one["kinds"] = b"".join(one["writes"]), None
            for c, _ in conns:
                c.connection_lost(None)
            await until(lambda: sum(call[0] == "close" for call in handler.calls) == len(conns), "every on_close")
            for (c, _), one in zip(conns, seen, strict=True):
                one["closed"] = handler.by_conn[c.id][-1]
            return seen
        finally:
            server.scheduler.close()
            server.scheduler.join(5)

    with python_loops(not fast):
        result: list[dict[str, Any]] = run_loop(go)
        return result


@needs_c
@SETTINGS
@given(
    st.lists(st.sampled_from(WORKER_HEADS), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 2), st.lists(worker_frames, min_size=1, max_size=4)), max_size=10),
    st.sampled_from(["shared", "dedicated"]),
)
def test_workers_see_and_write_the_same(heads: list[bytes], parts: list[tuple[int, list[bytes]]], mode: str) -> None:
    # (a compressed frame on a connection without permessage-deflate is a protocol error, answered by the loop)
    # (an empty read would be the client's EOF: where it lands among the workers' replies is timing)
    reads = [
        (i % len(heads), data)
        for i, frames in parts
        if (data := b"".join(f for f in frames if heads[i % len(heads)] != HANDSHAKE or not f[0] & 0x40))
    ]
    same(run_workers(heads, reads, fast=True, mode=mode), run_workers(heads, reads, fast=False, mode=mode))


# -- (b) a room's broadcast fan-out -----------------------------------------------------------------------------

QUEUE = 4096  # the test servers' max_queue_bytes
ROOM = "r"
member_kinds = st.sampled_from(["plain", "deflate", "closing", "ended", "full", "half"])
message = st.one_of(
    st.text(max_size=40),
    st.builds(lambda c, n: c * n, st.sampled_from("ab€"), st.sampled_from([127, 128, 500, 1500, 5000, 70_000])),
    st.binary(max_size=200),
    st.builds(bytes, st.sampled_from([128, 3000, 70_000])),
)
except_choice = st.one_of(st.none(), st.tuples(st.sampled_from(["conn", "id"]), st.integers(0, 7)))
ops = st.one_of(
    st.tuples(st.just("broadcast"), message, except_choice),
    st.tuples(st.just("utf8"), st.text(max_size=300), except_choice),
    st.tuples(st.just("remote"), st.lists(st.text(max_size=300), min_size=1, max_size=4), st.integers(0, 7)),
    st.tuples(st.just("flush"), st.none(), st.none()),
    st.tuples(st.just("drain"), st.integers(0, 7), st.sampled_from([0, QUEUE // 2, QUEUE * 2])),
)


def run_broadcasts(
    kinds: list[str], script: list[tuple[Any, ...]], fast: list[bool], python: bool, policy: str, mode: str
) -> dict[str, Any]:
    handler = Scripted()

    async def go(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        options = ServerOptions(ping_interval=0, max_queue_bytes=QUEUE, slow_consumer=policy, compression=mode)
        runtime = Runtime()
        server = Server(handler, options, loop, runtime)
        rooms = runtime.rooms
        members = []
        for kind, quick in zip(kinds, fast, strict=True):
            conn, transport = opened(server, HANDSHAKE_DEFLATE if kind == "deflate" else HANDSHAKE, quick)
            rooms.join(conn, ROOM)
            members.append((conn, transport))
        server._flush_dirty()
        for (conn, transport), kind in zip(members, kinds, strict=True):
            if kind == "closing":
                conn.close(4001, "leaving")
            elif kind == "ended":
                conn.connection_lost(None)  # leaves the room
            elif kind in ("full", "half"):
                transport.buffered = QUEUE + 1 if kind == "full" else QUEUE // 2
        returns: list[Any] = []
        for op, arg, other in script:
            target: Any = None
            if isinstance(other, tuple):
                conn = members[other[1] % len(members)][0]
                target = conn if other[0] == "conn" else conn.id
            if op == "broadcast":
                returns.append(rooms.broadcast(ROOM, arg, target))
            elif op == "utf8":
                returns.append(rooms.broadcast_utf8(ROOM, arg.encode("utf-8", "surrogatepass"), target))
            elif op == "remote":
                frames = [rooms_module.encode_text(one) for one in arg]
                returns.append(rooms.deliver_remote(ROOM, frames, members[other % len(members)][0].id))
            elif op == "flush":
                server._flush_dirty()
            else:
                members[arg % len(members)][1].buffered = other
        server._flush_dirty()
        return {
            "returns": returns,
            "members": [observed(c, t, handler) for c, t in members],
            "drops": [c.drops for c, _ in members],
            "server": (server.slow_consumer_closes, rooms.broadcasts, rooms.deliveries),
        }

    with python_loops(python):
        result: dict[str, Any] = run_loop(go)
        return result


def _invalid(message: Any) -> bool:
    return isinstance(message, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in message)


@needs_c
@SETTINGS
@given(
    st.lists(member_kinds, min_size=1, max_size=8),
    st.lists(ops, max_size=8),
    st.lists(st.booleans(), min_size=8, max_size=8),
    st.sampled_from(["close", "drop"]),
    st.sampled_from(["shared", "dedicated"]),
)
def test_broadcast_fan_out_queues_and_writes_the_same(
    kinds: list[str], script: list[tuple[Any, ...]], fast: list[bool], policy: str, mode: str
) -> None:
    """The C fan-out (some members on the Python path: ``_fast`` False, as while a message is compressed off the
    loop) against the Python loop with every member on the Python path."""
    script = [one for one in script if not _invalid(one[1]) and not (one[0] == "remote" and any(map(_invalid, one[1])))]
    fast = fast[: len(kinds)]
    c_side = run_broadcasts(kinds, script, fast, python=False, policy=policy, mode=mode)
    python_side = run_broadcasts(kinds, script, [False] * len(kinds), python=True, policy=policy, mode=mode)
    same(c_side, python_side)


@needs_c
def test_a_member_on_the_python_path_is_written_at_once_by_a_remote_broadcast() -> None:
    """deliver_remote writes each member's queue as soon as its frames are on it (``write_now``), whichever path
    the member takes: the C fan-out used to leave a ``_fast = False`` member to the end-of-iteration flush."""
    script = [("remote", ["one", "two"], 7), ("remote", ["three"], 7)]
    c_side = run_broadcasts(["plain", "plain"], script, [False, True], python=False, policy="close", mode="shared")
    python_side = run_broadcasts(["plain", "plain"], script, [False, False], python=True, policy="close", mode="shared")
    assert python_side["members"][0]["writes"][1:] == [b"\x81\x03one\x81\x03two", b"\x81\x05three"]
    same(c_side, python_side)


@needs_c
@SETTINGS
@given(
    st.lists(
        st.sampled_from([frame(0x81, b"twice"), frame(0x82, b"b"), frame(0x89, b"p"), frame(0x81, b"hi")]), max_size=150
    ),
    st.sampled_from([HANDSHAKE, HANDSHAKE_DEFLATE]),
)
def test_a_read_of_many_frames_is_written_at_once_or_at_the_end_of_the_iteration_alike(
    parts: list[bytes], head: bytes
) -> None:
    """From FLUSH_NOW frames queued by one read on, they are written at once; fewer wait for the end of the loop
    iteration (the read's events counted the same way on both paths)."""
    stream = head + b"".join(parts)
    same(run(stream, [len(head)], fast=True, buffered=0), run(stream, [len(head)], fast=False, buffered=0))


# -- (c) the end-of-iteration flush ------------------------------------------------------------------------------

sends = st.lists(
    st.tuples(
        st.sampled_from(["text", "binary", "frame", "utf8"]),
        st.sampled_from([0, 5, 125, 126, 1000, 65_535, 65_536, 100_000]),
    ),
    max_size=5,
)
ending = st.sampled_from(["", "close", "close-queued", "lost", "full"])


Plan = list[tuple[list[tuple[str, int]], str, bool]]


def run_flush(plan: Plan, rounds: int, fast: bool) -> list[dict[str, Any]]:
    handler = Scripted()

    async def go(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
        options = ServerOptions(ping_interval=0, max_queue_bytes=1 << 20)
        server = Server(handler, options, loop, Runtime())
        conns = [opened(server, HANDSHAKE_DEFLATE if compressed else HANDSHAKE, fast) for _, _, compressed in plan]
        server._flush_dirty()
        refused: list[list[str]] = [[] for _ in plan]
        for _ in range(rounds):
            for i, ((conn, transport), (items, end, _)) in enumerate(zip(conns, plan, strict=True)):
                for kind, size in items:
                    try:
                        if kind == "text":
                            conn.send_text("t" * size)
                        elif kind == "binary":
                            conn.send_binary(bytes(size))
                        elif kind == "utf8":
                            conn.send_utf8(b"u" * size)
                        else:
                            refused[i].append(str(conn.offer_frame(rooms_module.encode_binary(b"f" * size))))
                    except Exception as exc:  # what the caller sees: the exception's type and message
                        refused[i].append(f"{type(exc).__name__}: {exc}")
                if end == "close" and conn.open:
                    conn.close(4000, "done")
                elif end == "close-queued":  # our Close due behind the queued frames (as a read's _finish leaves it)
                    if conn._proto.state.name == "OPEN":
                        conn._proto.send_close_payload(b"\x0f\xa0due")
                elif end == "lost" and conn.phase.name != "CLOSED":
                    conn.connection_lost(None)
                elif end == "full":
                    transport.buffered = 2 << 20
            server._flush_dirty()
        return [
            {**observed(c, t, handler), "refused": r, "dirty": len(server._dirty)}
            for (c, t), r in zip(conns, refused, strict=True)
        ]

    with python_loops(not fast):
        result: list[dict[str, Any]] = run_loop(go)
        return result


@needs_c
@SETTINGS
@given(st.lists(st.tuples(sends, ending, st.booleans()), min_size=1, max_size=6), st.integers(1, 2))
def test_the_end_of_iteration_flush_writes_the_same(plan: Plan, rounds: int) -> None:
    """Sends from the loop thread outside a read (each queued for the flush at the end of the iteration), on
    connections with and without permessage-deflate (sends of 128 bytes or more compressed)."""
    same(run_flush(plan, rounds, fast=True), run_flush(plan, rounds, fast=False))


# -- (d) the scheduler's rules ------------------------------------------------------------------------------------


def _core(c: bool) -> Any:
    from snow_rt_py.runtime.scheduler import ActorCore

    return ActorCore() if c else PyActorCore()


actor_ops = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), st.integers(0, 99), st.booleans()),
        st.tuples(st.just("settle"), st.none(), st.none()),
        st.tuples(st.just("take"), st.none(), st.booleans()),
        st.tuples(st.just("kill"), st.none(), st.none()),
    ),
    max_size=40,
)


def drive(core: Any, script: list[tuple[str, Any, Any]]) -> list[Any]:
    seen: list[Any] = []
    for op, arg, flag in script:
        if op == "offer":
            result = core.offer(Tag.INFO, arg, flag)
        elif op == "settle":
            result = core.settle()
        elif op == "take":
            result = core.take(flag)
        else:
            result = core.kill()
        seen.append((op, result, core.alive, core.running, core.pending()))
    return seen


@needs_scheduler
@settings(max_examples=300, deadline=None, derandomize=True)
@given(actor_ops)
def test_actor_core_follows_the_python_rules_for_any_sequence(script: list[tuple[str, Any, Any]]) -> None:
    assert drive(_core(True), script) == drive(PyActorCore(), script)


@pytest.mark.parametrize("c", [pytest.param(True, marks=needs_scheduler), False], ids=["C", "Python"])
def test_threaded_actors_lose_nothing_run_nothing_twice_and_keep_each_senders_order(c: bool) -> None:
    """Four senders offer to three actors while three runners take from them, as Scheduler does (SCHEDULE puts
    the actor on the run queue; a run takes until None, or stops and requeues on False)."""
    import queue

    actors = [_core(c) for _ in range(3)]
    runq: queue.SimpleQueue[Any] = queue.SimpleQueue()
    got: list[list[tuple[int, int]]] = [[] for _ in actors]
    per_sender = 20_000
    all_taken = threading.Event()
    taken = [0]
    count_lock = threading.Lock()

    def sender(s: int) -> None:
        for n in range(per_sender):
            a = (s + n) % len(actors)
            if actors[a].offer(Tag.INFO, (s, n), False) == 2:  # SCHEDULE
                runq.put(a)

    def runner() -> None:
        while (a := runq.get()) is not None:
            handled = 0
            while True:
                message = actors[a].take(handled >= 7)
                if message is None:
                    break
                if message is False:
                    runq.put(a)
                    break
                got[a].append(message[1])  # one runner at a time per actor: the rule under test
                handled += 1
                with count_lock:
                    taken[0] += 1
                    if taken[0] == 4 * per_sender:
                        all_taken.set()

    runners = [threading.Thread(target=runner) for _ in range(3)]
    senders = [threading.Thread(target=sender, args=(s,)) for s in range(4)]
    for t in runners + senders:
        t.start()
    for t in senders:
        t.join(30)
    all_taken.wait(30)  # then no actor is on the run queue any more: the runners may stop
    for _ in runners:
        runq.put(None)
    for t in runners:
        t.join(30)
    assert not any(t.is_alive() for t in runners + senders)
    for a, messages in enumerate(got):
        expected = sorted((s, n) for s in range(4) for n in range(per_sender) if (s + n) % len(actors) == a)
        assert sorted(messages) == expected  # none lost, none twice
        for s in range(4):
            mine = [n for sender_id, n in messages if sender_id == s]
            assert mine == sorted(mine)  # each sender's order
        assert not actors[a].running and actors[a].pending() == 0
