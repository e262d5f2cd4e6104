"""Conformance fixtures: the servers under test ("targets"), started once per session.

A target is a function ``start(max_size) -> (port, stop)`` that starts an echo server on 127.0.0.1 answering
every text message with the same text and every binary message with the same bytes, with a message size limit
of ``max_size`` bytes (``None``: the target's default limit, expected to be 16 MiB). Servers are started lazily,
once per (target, limit), and stopped at the end of the session. The raw client lives in ``rawws.py``.

Markers understood by the ``server`` / ``default_server`` fixtures:

- ``@pytest.mark.skip_target("websockets", reason="...")``: the case does not apply to that target (a documented,
  RFC-permitted difference); skipped for that target only.
- ``@pytest.mark.xfail_target("ours", reason="server bug: ...")``: a known bug of that target; strict xfail for
  that target only, so the case fails loudly once the bug is fixed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from tests.conformance.rawws import DEFAULT_LIMIT, LIMIT, WsClient

REPO = Path(__file__).resolve().parents[2]
#: The C target's executable; CONFORMANCE_C_ECHO_SERVER overrides it (any program with the same command line).
C_ECHO_SERVER = Path(os.environ.get("CONFORMANCE_C_ECHO_SERVER", REPO / "build" / "echo_server"))

StartFn = Callable[[int | None], tuple[int, Callable[[], None]]]


# -- targets -----------------------------------------------------------------------------------------------------


def start_ours(max_size: int | None) -> tuple[int, Callable[[], None]]:
    """Our echo server through the Python API (no heartbeat, so no unsolicited pings on the wire)."""
    from snow_rt_py.apps import EchoApp
    from tests.support import start

    options: dict[str, Any] = {"ping_interval": 0}
    if max_size is not None:
        options["max_message_size"] = max_size
    server = start(EchoApp(), **options)
    return server.port, lambda: server.stop(timeout=2.0)


def start_websockets(max_size: int | None) -> tuple[int, Callable[[], None]]:
    """The ``websockets`` library's sync echo server in a thread: checks the suite itself.

    Text is read with ``recv_streaming`` so invalid UTF-8 is detected per fragment, as it arrives. Its own
    default limit is 1 MiB, so ``None`` is given explicitly as 16 MiB.
    """
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import ServerConnection, serve

    def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                parts = list(ws.recv_streaming())  # one str per text frame (decoded as it arrives) or bytes
                if isinstance(parts[0], str):
                    ws.send("".join(cast(list[str], parts)))
                else:
                    ws.send(b"".join(cast(list[bytes], parts)))

    quiet = logging.getLogger("conformance.websockets")
    quiet.disabled = True
    server = serve(
        echo,
        "127.0.0.1",
        0,
        max_size=DEFAULT_LIMIT if max_size is None else max_size,
        compression=None,
        ping_interval=None,
        logger=quiet,
    )
    thread = threading.Thread(target=server.serve_forever, name="websockets-echo", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(5.0)

    return server.socket.getsockname()[1], stop


def start_c(max_size: int | None) -> tuple[int, Callable[[], None]]:
    """``build/echo_server``: prints ``listening on ws://127.0.0.1:PORT/`` when ready, stops on SIGTERM."""
    if not os.access(C_ECHO_SERVER, os.X_OK):
        pytest.skip("C echo server not built")
    args = [str(C_ECHO_SERVER), "--port", "0"]
    if max_size is not None:
        args += ["--max-message-size", str(max_size)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + 10.0
    line = b""
    while b"\n" not in line:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 256) if ready else b""
        if not chunk:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"C echo server did not report its port; got {line!r}")
        line += chunk
    text = line.split(b"\n", 1)[0].decode().strip()
    prefix = "listening on ws://127.0.0.1:"
    if not (text.startswith(prefix) and text.endswith("/")):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"unexpected readiness line {text!r}")

    def stop() -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    return int(text[len(prefix) : -1]), stop


TARGETS: dict[str, StartFn] = {"ours": start_ours, "websockets": start_websockets, "c_echo": start_c}


@dataclass
class Server:
    """A running target: where it listens and the limit it was started with."""

    name: str
    port: int
    max_size: int
    clients: list[WsClient] = field(default_factory=list)

    def raw(self) -> WsClient:
        """A connected client that has sent nothing yet."""
        client = WsClient(self.port)
        self.clients.append(client)
        return client

    def connect(self) -> WsClient:
        """A client after a successful opening handshake."""
        return self.raw().open()


class ServerPool:
    """Starts each (target, limit) once, on first use; stops them all at the end of the session."""

    def __init__(self) -> None:
        self.running: dict[tuple[str, int | None], tuple[int, Callable[[], None]]] = {}
        self.skipped: dict[tuple[str, int | None], str] = {}
        self.failed: dict[tuple[str, int | None], str] = {}

    def get(self, name: str, max_size: int | None) -> int:
        """The port of target ``name`` started with ``max_size``; skips or fails the same way on every call."""
        key = (name, max_size)
        if key in self.skipped:
            pytest.skip(self.skipped[key])
        if key in self.failed:
            pytest.fail(self.failed[key], pytrace=False)
        if key not in self.running:
            try:
                self.running[key] = TARGETS[name](max_size)
            except pytest.skip.Exception as exc:
                self.skipped[key] = str(exc.msg)
                raise
            except Exception as exc:
                self.failed[key] = f"target {name} (max size {max_size}) failed to start: {exc!r}"
                raise
        return self.running[key][0]

    def stop_all(self) -> None:
        for _, stop in self.running.values():
            stop()
        self.running.clear()


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.stop_all()


def _server(request: pytest.FixtureRequest, pool: ServerPool, max_size: int | None) -> Iterator[Server]:
    name: str = request.param
    for mark in request.node.iter_markers("skip_target"):
        if name in mark.args:
            pytest.skip(f"{name}: {mark.kwargs['reason']}")
    for mark in request.node.iter_markers("xfail_target"):
        if name in mark.args:
            request.applymarker(pytest.mark.xfail(strict=True, reason=mark.kwargs["reason"]))
    port = pool.get(name, max_size)
    server = Server(name, port, DEFAULT_LIMIT if max_size is None else max_size)
    yield server
    for client in server.clients:
        client.close()


@pytest.fixture(params=list(TARGETS))
def server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Iterator[Server]:
    """The target under test, started with ``max_message_size = LIMIT`` (64 KiB)."""
    yield from _server(request, server_pool, LIMIT)


@pytest.fixture(params=list(TARGETS))
def default_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Iterator[Server]:
    """The target under test, started without a size limit option (its default, expected to be 16 MiB)."""
    yield from _server(request, server_pool, None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "skip_target(*names, reason): the case does not apply to these targets")
    config.addinivalue_line("markers", "xfail_target(*names, reason): a known bug of these targets (strict)")
