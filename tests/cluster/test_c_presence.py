"""The C ABI's presence in a cluster: on_presence events, snow_room_join_meta, snow_room_broadcast_except with
another node's handle (tests/cluster/presence_node.c, compiled as the README says), next to a Python API node."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.c.harness import compile_program, signal_when_caught
from tests.cluster.conftest import Node, Redis, free_port, node_argv
from tests.cluster.test_cluster import Client, join_all, wait_presence

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def presence_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_program(
        "presence_node", tmp_path_factory.mktemp("c"), source=Path(__file__).with_name("presence_node.c")
    )


def test_c_on_presence_and_remote_except(redis: Redis, nodes: Callable[..., Node], presence_node: Path) -> None:
    c_node = nodes([str(presence_node), redis.url])
    py_node = nodes(node_argv("api", redis.url))

    async def run() -> None:
        alice = await Client.open(c_node.url)
        bob = await Client.open(py_node.url)
        carol = await Client.open(py_node.url)
        alice_id = int((await alice.ask("/id", "id ")).split()[1])
        bob_id = int((await bob.ask("/id", "id ")).split()[1])
        node_a, node_b = alice_id >> 40, bob_id >> 40
        await alice.send("/joinas r alice")
        assert await alice.recv() == "joined r"
        assert await alice.recv() == f"presence join r {alice_id} {node_a} alice"  # told of its own join
        await wait_presence(bob, "r", 1)  # bob's node sees alice
        await join_all([bob], "r", lambda i: "bob")
        assert await alice.recv() == f"presence join r {bob_id} {node_b} bob"
        await join_all([carol], "r", lambda i: "carol")
        carol_id = int((await carol.ask("/id", "id ")).split()[1])
        assert await alice.recv() == f"presence join r {carol_id} {node_b} carol"
        # From C, exclude a connection of the other node by its handle: carol gets it, bob does not.
        await alice.send(f"/except r hello {bob_id}")
        assert await carol.recv() == "hello"
        assert await alice.recv() == "hello"  # the sender is a member too
        assert await bob.ask("/id", "id ") == f"id {bob_id}"  # nothing came before it
        await bob.close()
        assert await alice.recv() == f"presence leave r {bob_id} {node_b} bob"
        for c in (alice, carol):
            await c.close()

    asyncio.run(run())


def test_c_start_fails_with_unreachable_redis(presence_node: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = subprocess.run([str(presence_node), url], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"presence_node: error 7: cannot reach the cluster's Redis at {url}")


@pytest.fixture(scope="module")
def serve_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_program("serve_node", tmp_path_factory.mktemp("c"), source=Path(__file__).with_name("serve_node.c"))


def listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:port (state 0A in /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == want and row.split()[3] == "0A")


def test_snow_ws_serve_from_the_environment(redis: Redis, serve_node: Path, nodes: Callable[..., Node]) -> None:
    """SNOW_WS_CLUSTER and SNOW_WS_REUSE_PORT: two snow_ws_serve binaries share one port (SO_REUSEPORT) and one
    cluster with a Python node; a broadcast from the Python node reaches clients of both binaries."""
    port = free_port()
    env = {**os.environ, "SNOW_WS_CLUSTER": redis.url, "SNOW_WS_REUSE_PORT": "1"}
    procs = [subprocess.Popen([str(serve_node), str(port)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    py_node = nodes(node_argv("api", redis.url))
    try:

        async def run() -> set[int]:
            deadline = time.monotonic() + 20
            while listeners(port) < 2:  # snow_ws_serve announces nothing: wait until both listen
                assert time.monotonic() < deadline, f"{listeners(port)} of 2 snow_ws_serve are listening"
                await asyncio.sleep(0.1)
            clients = [await Client.open(f"ws://127.0.0.1:{port}/") for _ in range(30)]
            node_ids = {int((await c.ask("/id", "id ")).split()[1]) >> 40 for c in clients}
            for c in clients:
                await c.send("/join r")
                assert await c.recv() == "joined"
            speaker = await Client.open(py_node.url)
            await join_all([speaker], "r")
            assert len(await wait_presence(speaker, "r", 31)) == 31
            await speaker.send("/all r from-python")
            for c in clients:
                assert await c.recv() == "from-python"
            for c in [*clients, speaker]:
                await c.close()
            return node_ids

        assert len(asyncio.run(run())) == 2  # both processes served clients, each a node of the cluster
    finally:
        for proc in procs:
            signal_when_caught(proc, signal.SIGTERM)
        outs = [proc.communicate(timeout=20)[0] for proc in procs]
    assert outs == ["serve returned: 0 \n"] * 2  # stopped by the signal, no error


def test_snow_ws_serve_unreachable_cluster(serve_node: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = {**os.environ, "SNOW_WS_CLUSTER": url}
    proc = subprocess.run([str(serve_node), str(free_port())], env=env, capture_output=True, text=True, timeout=30)
    assert proc.stdout.startswith(f"serve returned: 7 cannot reach the cluster's Redis at {url}")
