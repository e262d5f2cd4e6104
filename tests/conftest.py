"""Shared fixtures: servers started through the Python API on 127.0.0.1, port 0, stopped after each test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import snow_rt_py
from snow_rt_py import Connection, Handler, Headers, RunningServer


class Recorder(Handler):
    """An echo handler that records every callback with its arguments, thread-safely."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.cond = threading.Condition()

    def _record(self, *item: Any) -> None:
        with self.cond:
            self.calls.append(item)
            self.cond.notify_all()

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool:
        self._record("connect", conn.id, path, headers)
        return True

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        self._record("message", conn.id, message)
        conn.send(message)

    def on_close(self, conn: Connection, code: int, reason: str) -> None:
        self._record("close", conn.id, code, reason)

    def on_info(self, conn: Connection, message: Any) -> None:
        self._record("info", conn.id, message)

    def wait_for(self, predicate: Callable[[list[tuple[Any, ...]]], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate(calls)`` holds, or fail the test."""
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.calls), timeout):
                raise AssertionError(f"timed out; calls so far: {self.calls!r}")

    def closes(self) -> list[tuple[Any, ...]]:
        with self.cond:
            return [c for c in self.calls if c[0] == "close"]

    def wait_close(self, timeout: float = 5.0) -> tuple[int, str]:
        """Wait for the first on_close; return its (code, reason)."""
        self.wait_for(lambda calls: any(c[0] == "close" for c in calls), timeout)
        _, _, code, reason = self.closes()[0]
        return code, reason


@pytest.fixture
def start_server() -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``start_server(handler=None, **options)``; every server is stopped at teardown."""
    servers: list[RunningServer] = []

    def factory(handler: Handler | None = None, **options: Any) -> RunningServer:
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        server = snow_rt_py.start(handler or Recorder(), **options)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop(timeout=2.0)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
