"""Shared fixtures: servers started through the Python API on 127.0.0.1, port 0, stopped after each test.

The recording handler and the start function behind them are in tests/support.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from snow_rt_py import Handler, RunningServer
from tests import support


@pytest.fixture
def server_options() -> dict[str, Any]:
    """Options every ``start_server`` call gets unless it passes its own; a folder's conftest.py may override it."""
    return {}


@pytest.fixture
def start_server(server_options: dict[str, Any]) -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``start_server(handler=None, **options)`` (a Recorder by default, see ``support.start``); every
    server is stopped at teardown."""
    servers: list[RunningServer] = []

    def factory(handler: Handler | None = None, **options: Any) -> RunningServer:
        server = support.start(handler, **{**server_options, **options})
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop(timeout=2.0)


@pytest.fixture
def recorder() -> support.Recorder:
    return support.Recorder()
