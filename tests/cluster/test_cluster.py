"""Rooms and presence across processes on a real Redis (runtime/backplane/), with real server processes: the
Python API (tests/cluster/node_api.py), the CLI (`snow-ws serve --cluster`) and the C chat server
(examples/chat_server.c through libsnow_ws.so), all speaking ChatApp's line protocol."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.c.harness import free_port
from tests.cluster.conftest import Node, Redis, node_argv

pytestmark = pytest.mark.timeout(120)


class Client:
    """A chat client; messages are read in the background into a queue."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str) -> Client:
        return cls(await connect(url, ping_interval=None, max_queue=None))

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.queue.put_nowait(str(message))
        except ConnectionClosed:
            pass
        if not self.closed.done():
            self.closed.set_result(self.ws.close_code)

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self, timeout: float = 10.0) -> str:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def ask(self, text: str, prefix: str, timeout: float = 10.0) -> str:
        """Send ``text`` and return the first message starting with ``prefix`` (others are dropped)."""
        await self.send(text)
        deadline = time.monotonic() + timeout
        while True:
            message = await self.recv(max(0.01, deadline - time.monotonic()))
            if message.startswith(prefix):
                return message

    async def who(self, room: str) -> list[list[object]]:
        reply = await self.ask(f"/who {room}", f"who {room} ")
        members: list[list[object]] = json.loads(reply[len(f"who {room} ") :])
        return members

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


async def wait_presence(client: Client, room: str, count: int, timeout: float = 20.0) -> list[list[object]]:
    """Poll ``/who room`` until it lists ``count`` members."""
    deadline = time.monotonic() + timeout
    while True:
        members = await client.who(room)
        if len(members) == count or time.monotonic() > deadline:
            return members
        await asyncio.sleep(0.05)


async def join_all(clients: list[Client], room: str, meta: Callable[[int], str] | None = None) -> None:
    for i, c in enumerate(clients):
        await c.send(f"/joinas {room} {meta(i)}" if meta else f"/join {room}")
    for c in clients:
        assert await c.recv() == f"joined {room}"


def test_three_kinds_of_node_300_clients(redis: Redis, nodes: Callable[..., Node]) -> None:
    """Python API, CLI and C nodes on one Redis, 100 clients each: broadcast and broadcast_except reach every
    member on every node, per-sender order holds, presence lists and counts are cluster-wide."""
    servers = [nodes(node_argv(kind, redis.url)) for kind in ("api", "cli", "c")]

    async def run() -> None:
        clients = [await Client.open(servers[i % 3].url) for i in range(300)]
        await join_all(clients, "lobby", lambda i: f"user{i}")
        # Presence: the same 300 members, from each kind of node, with their node and meta.
        for asker in clients[:3]:
            members = await wait_presence(asker, "lobby", 300)
            assert len(members) == 300
            assert sorted(str(m[2]) for m in members) == sorted(f"user{i}" for i in range(300))
            assert len({m[0] for m in members}) == 300  # ids unique across the cluster
            assert len({m[1] for m in members}) == 3  # three nodes
        ids = [int((await c.ask("/id", "id ")).split()[1]) for c in clients]
        by_id = {int(str(m[0])): (int(str(m[1])), str(m[2])) for m in await clients[0].who("lobby")}
        assert [by_id[ids[i]][1] for i in range(300)] == [f"user{i}" for i in range(300)]
        assert len({by_id[ids[i]][0] for i in range(3)}) == 3  # clients 0, 1, 2 are on three different nodes

        # broadcast from each node reaches all 300.
        for i in range(3):
            await clients[i].send(f"/all lobby hello-{i}")
        for c in clients:
            got = sorted([await c.recv(), await c.recv(), await c.recv()])
            assert got == ["hello-0", "hello-1", "hello-2"]

        # broadcast_except from a C-node client: the 299 others, wherever they are; never the sender.
        await clients[2].send("/say lobby not-for-2")
        for i, c in enumerate(clients):
            if i != 2:
                assert await c.recv() == "not-for-2"
        assert await clients[2].ask("/id", "id ") == f"id {ids[2]}"  # and nothing before that reply
        assert clients[2].queue.empty()

        # Order per sender: three senders (one per node) x 30 messages, interleaved.
        for j in range(30):
            for i in range(3):
                await clients[i].send(f"/all lobby s{i}:{j}")
        for c in clients:
            seen: dict[str, list[int]] = {"s0": [], "s1": [], "s2": []}
            for _ in range(90):
                sender, seq = (await c.recv()).split(":")
                seen[sender].append(int(seq))
            assert seen == {f"s{i}": list(range(30)) for i in range(3)}

        # Leaving: counts follow on every node.
        for c in clients[:30]:
            await c.send("/leave lobby")
        for c in clients[:30]:
            assert await c.recv() == "left lobby"
        for asker in clients[30:33]:
            assert len(await wait_presence(asker, "lobby", 270)) == 270
        for c in clients:
            await c.close()

    asyncio.run(run())
    for node in servers:
        assert node.proc.poll() is None


def pubsub_channels(redis: Redis) -> set[str]:
    return set(redis.cli("PUBSUB", "CHANNELS", "snow:room:*").split())


def test_redis_restart(redis: Redis, nodes: Callable[..., Node]) -> None:
    """Redis stopped mid-test: local rooms keep working, no node crashes; restarted: remote delivery resumes,
    presence comes back and the subscriptions are exactly the rooms with local members."""
    a = nodes(node_argv("cli", redis.url))
    b = nodes(node_argv("c", redis.url))

    async def run() -> None:
        ca = [await Client.open(a.url) for _ in range(5)]
        cb = [await Client.open(b.url) for _ in range(5)]
        await join_all(ca + cb, "shared")
        await join_all(ca[:2], "only-a")
        await join_all(cb[:2], "only-b")
        assert len(await wait_presence(ca[0], "shared", 10)) == 10
        assert len(await wait_presence(cb[0], "shared", 10)) == 10
        assert pubsub_channels(redis) == {"snow:room:shared", "snow:room:only-a", "snow:room:only-b"}

        redis.stop()
        # Local delivery goes on during the outage, on both nodes, in local and shared rooms.
        for n in range(3):
            await ca[0].send(f"/all only-a down-{n}")
            await cb[0].send(f"/all shared b-down-{n}")
        for c in ca[:2]:
            assert [await c.recv() for _ in range(3)] == [f"down-{n}" for n in range(3)]
        for c in cb:
            assert [await c.recv() for _ in range(3)] == [f"b-down-{n}" for n in range(3)]
        await asyncio.sleep(0.3)
        for c in ca:
            assert c.queue.empty()  # the shared broadcasts from b were dropped for a's members (at most once)
        # Membership changes during the outage are taken into account once Redis is back.
        await cb[1].send("/leave only-b")
        assert await cb[1].recv() == "left only-b"
        await join_all(ca[2:3], "new-a")

        redis.start()
        # Remote delivery resumes: probe until a member on b hears a broadcast from a.
        deadline = time.monotonic() + 30
        n = 0
        while True:
            await ca[0].send(f"/all shared probe-{n}")
            try:
                got = await cb[4].recv(0.3)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "remote delivery did not resume"
                n += 1
        assert got.startswith("probe-")
        assert len(await wait_presence(ca[0], "shared", 10)) == 10
        assert len(await wait_presence(cb[0], "only-b", 1)) == 1
        assert pubsub_channels(redis) == {"snow:room:shared", "snow:room:only-a", "snow:room:only-b", "snow:room:new-a"}
        # The last member of only-b leaves: b unsubscribes.
        await cb[0].send("/leave only-b")
        assert await cb[0].recv() == "left only-b"
        deadline = time.monotonic() + 10
        while "snow:room:only-b" in pubsub_channels(redis) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert pubsub_channels(redis) == {"snow:room:shared", "snow:room:only-a", "snow:room:new-a"}
        for c in ca + cb:
            await c.close()

    asyncio.run(run())
    assert a.proc.poll() is None and b.proc.poll() is None
    for node in (a, b):
        err = node.stop()
        assert node.proc.returncode == 0
        # One warning when the outage starts and one when it ends, however many reconnection attempts failed.
        assert err.count(f"cluster: lost Redis at {redis.url}") == 1, err
        assert err.count(f"cluster: Redis at {redis.url} is back after") == 1, err


def test_sigkilled_node_leaves_presence_within_ttl(redis: Redis, nodes: Callable[..., Node]) -> None:
    ttl = 2.0
    a = nodes(node_argv("api", redis.url, str(ttl)))
    b = nodes(node_argv("cli", redis.url, "--cluster-presence-ttl", str(ttl)))

    async def run() -> float:
        ca = [await Client.open(a.url) for _ in range(3)]
        cb = [await Client.open(b.url) for _ in range(4)]
        await join_all(ca + cb, "room")
        assert len(await wait_presence(ca[0], "room", 7)) == 7
        b.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        members = await wait_presence(ca[0], "room", 3, timeout=ttl * 3)
        gone_after = time.monotonic() - killed
        assert len(members) == 3
        for c in ca:
            await c.close()
        return gone_after

    gone_after = asyncio.run(run())
    assert gone_after < ttl, f"members of the killed node stayed {gone_after:.2f} s"


def test_processes_2_spread_and_drain(redis: Redis) -> None:
    """--processes 2: the kernel spreads clients over both processes (SO_REUSEPORT), SIGTERM drains both: every
    client gets 1001, the parent exits 0."""
    parent = Node(
        [sys.executable, "-m", "snow_rt_py", "serve", "--app", "chat", "--port", "0", "--processes", "2",
         "--cluster", redis.url]
    )  # fmt: skip

    async def run() -> set[int]:
        clients = [await Client.open(parent.url) for _ in range(40)]
        nodes_seen = {int((await c.ask("/id", "id ")).split()[1]) >> 40 for c in clients}
        parent.proc.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(c.closed, 20) for c in clients]
        assert codes == [1001] * 40
        return nodes_seen

    try:
        nodes_seen = asyncio.run(run())
        assert len(nodes_seen) == 2
        assert parent.proc.wait(20) == 0
    finally:
        parent.stop()


def test_processes_with_rooms_need_a_cluster() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snow_rt_py", "serve", "--app", "chat", "--port", "0", "--processes", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "snow-ws: error: --processes 2 with --app chat needs --cluster URL (its rooms would otherwise be split "
        "between the processes)"
    ]


@pytest.mark.parametrize("kind", ["cli", "c"])
def test_redis_unreachable_at_start(kind: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = subprocess.run(node_argv(kind, url), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert f"cannot reach the cluster's Redis at {url}" in proc.stderr
    assert proc.stdout == ""


def child_pids(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_processes_restart_a_crashed_child(redis: Redis) -> None:
    """A child killed under the supervisor is restarted (and logged); the port keeps serving on both."""
    parent = Node(
        [sys.executable, "-m", "snow_rt_py", "serve", "--app", "chat", "--port", "0", "--processes", "2",
         "--cluster", redis.url]
    )  # fmt: skip
    try:
        children = child_pids(parent.proc.pid)
        assert len(children) == 2
        victim = children[0]
        subprocess.run(["kill", "-9", str(victim)], check=True)
        assert parent.proc.stderr is not None
        line = parent.proc.stderr.readline()  # bounded: the supervisor logs at once
        assert f"(pid {victim}) exited with signal SIGKILL; restarting it" in line

        async def run() -> set[int]:
            clients = [await Client.open(parent.url) for _ in range(40)]
            seen = {int((await c.ask("/id", "id ")).split()[1]) >> 40 for c in clients}
            for c in clients:
                await c.close()
            return seen

        # Two processes serve the port again (the new child is a new node): connections reach both.
        deadline = time.monotonic() + 20
        while len(asyncio.run(run())) != 2:
            assert time.monotonic() < deadline, "the restarted child never took connections"
        alive = child_pids(parent.proc.pid)
        assert len(alive) == 2 and victim not in alive
        parent.proc.send_signal(signal.SIGTERM)
        assert parent.proc.wait(20) == 0
    finally:
        parent.stop()


def test_stalled_redis_never_blocks_local_delivery(redis: Redis, nodes: Callable[..., Node]) -> None:
    """Redis frozen (SIGSTOP) for a second: local broadcasts are delivered at once meanwhile; once it runs again
    the broadcasts queued for the other node arrive, in order."""
    a = nodes(node_argv("cli", redis.url))
    b = nodes(node_argv("api", redis.url))

    async def run() -> None:
        ca = await Client.open(a.url)
        cb = await Client.open(b.url)
        await join_all([ca, cb], "room")
        assert len(await wait_presence(ca, "room", 2)) == 2
        assert redis.proc is not None
        redis.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            for n in range(5):
                await ca.send(f"/all room stalled-{n}")
                assert await ca.recv(2.0) == f"stalled-{n}"  # local: never waits for Redis
            assert time.monotonic() - started < 1.0
            assert cb.queue.empty()
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        assert [await cb.recv(10) for _ in range(5)] == [f"stalled-{n}" for n in range(5)]
        await ca.close()
        await cb.close()

    asyncio.run(run())


def test_stopped_node_leaves_presence_at_once(redis: Redis, nodes: Callable[..., Node]) -> None:
    """SIGTERM (a graceful stop, TTL 10 s): the stopped node's members leave the others' presence right away."""
    a = nodes(node_argv("api", redis.url))
    b = nodes(node_argv("c", redis.url))

    async def run() -> float:
        ca = [await Client.open(a.url) for _ in range(2)]
        cb = [await Client.open(b.url) for _ in range(3)]
        await join_all(ca + cb, "room")
        assert len(await wait_presence(ca[0], "room", 5)) == 5
        b.proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert [await asyncio.wait_for(c.closed, 10) for c in cb] == [1001] * 3
        assert len(await wait_presence(ca[0], "room", 2, timeout=5)) == 2
        gone_after = time.monotonic() - stopped
        for c in ca:
            await c.close()
        return gone_after

    assert asyncio.run(run()) < 3.0  # not the 10 s TTL
    assert b.proc.wait(20) == 0


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (one nobody reaped yet has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_processes_children_die_with_the_supervisor() -> None:
    """The supervisor SIGKILLed: its children get SIGTERM (PR_SET_PDEATHSIG) and exit; nothing keeps the port."""
    parent = Node([sys.executable, "-m", "snow_rt_py", "serve", "--app", "echo", "--port", "0", "--processes", "2"])
    children = child_pids(parent.proc.pid)
    assert len(children) == 2
    parent.stop(signal.SIGKILL)
    deadline = time.monotonic() + 20
    while any(running(pid) for pid in children):
        assert time.monotonic() < deadline, "a child outlived its supervisor"
        time.sleep(0.05)
