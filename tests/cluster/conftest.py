"""Fixtures of the cluster tests: a real redis-server on a free port (Debian's, installed by tests/cluster/setup.sh
from `make test`), and server processes (Python API, CLI, C) started against it. Everything started here is
stopped here; every wait is bounded."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snow_rt_py.supervisor import die_with_parent
from tests.c.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
C_CHAT = ROOT / "build" / "chat_server"
NODE_API = Path(__file__).resolve().parent / "node_api.py"

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server missing")


class Redis:
    """A redis-server of its own (no persistence) on 127.0.0.1:port; ``stop``/``start`` keep the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # a pytest that dies (a crash, a kill) leaves no redis-server behind
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cli(self, *args: str) -> str:
        """A command through redis-cli (raw output)."""
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout


@pytest.fixture
def redis() -> Iterator[Redis]:
    server = Redis()
    try:
        yield server
    finally:
        server.stop()


class Node:
    """A server process; ``port`` is read from its ``listening on ws://127.0.0.1:PORT/`` line."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.stopped: str | None = None  # stderr, once stopped
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the process exits (EOF) if it cannot start
        if not line.startswith("listening on ws://"):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"{argv} did not start: {line!r} {err}")
        self.port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
        self.url = f"ws://127.0.0.1:{self.port}/"

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Stop the process (``sig``, then SIGKILL after 20 s) and return what it wrote on stderr."""
        if self.stopped is not None:
            return self.stopped
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.stopped = err or ""
        return self.stopped


def node_argv(kind: str, url: str, *extra: str) -> list[str]:
    """The command of a chat node of ``kind`` "api" (snow_rt_py.start), "cli" (snow-ws serve) or "c" (C, through
    libsnow_ws.so) in the cluster at ``url``."""
    if kind == "api":
        return [sys.executable, str(NODE_API), url, *extra]
    if kind == "cli":
        return [sys.executable, "-m", "snow_rt_py", "serve", "--app", "chat", "--port", "0", "--cluster", url, *extra]
    return [str(C_CHAT), "--port", "0", "--cluster", url, *extra]


@pytest.fixture
def nodes() -> Iterator[Callable[..., Node]]:
    """Factory: ``nodes(argv, env=None)`` starts a Node; all are stopped at teardown."""
    started: list[Node] = []

    def factory(argv: list[str], env: dict[str, str] | None = None) -> Node:
        node = Node(argv, env)
        started.append(node)
        return node

    yield factory
    for node in started:
        node.stop()
