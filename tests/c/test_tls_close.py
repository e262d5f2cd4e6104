"""The C ABI's wss:// servers stop as soon as every close handshake is done, also with a client that never sends TLS
close_notify (issue 21, defect 1; the Python side is tests/runtime/test_tls_close.py): snow_ws_serve_tls ended by
SIGTERM, and snow_ws_stop of a server started with TLS files."""

from __future__ import annotations

import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from snow_rt_py.testing import RawClient
from tests import support
from tests.c.harness import Program, free_port, signal_when_caught, wait_listening
from tests.runtime.test_tls_close import PROMPT

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ssl.SSLContext]:
    return support.tls_files(tmp_path_factory.mktemp("tls"))


def test_serve_tls_returns_on_sigterm_once_the_close_handshake_is_done(
    run: Callable[..., Program], tls: tuple[Path, Path, ssl.SSLContext]
) -> None:
    cert, key, ctx = tls
    port = free_port()
    prog = run("tls_close", "serve", str(port), str(cert), str(key))
    prog.expect("init -> 0")
    wait_listening(port)
    with RawClient.connect(port, tls=ctx) as client:
        prog.expect("connected")
        signal_when_caught(prog.proc, signal.SIGTERM)
        assert support.answer_close_without_close_notify(client) == (1001, "server shutting down")
        answered = time.monotonic()
        prog.expect("on_close 1001 'server shutting down'", "serve_tls returned", timeout=10)
        assert prog.finish() == 0
        took = time.monotonic() - answered
        assert support.server_close_notify(client)
    assert took < PROMPT, f"the program ended {took:.2f} s after the close handshake"


def test_snow_ws_stop_returns_once_the_close_handshake_is_done(
    run: Callable[..., Program], tls: tuple[Path, Path, ssl.SSLContext]
) -> None:
    cert, key, ctx = tls
    prog = run("tls_close", "stop", str(cert), str(key))
    port = prog.port()
    with RawClient.connect(port, tls=ctx) as client:
        prog.expect("connected")
        client.send_text("stop")  # the program then calls snow_ws_stop(server, 10000)
        prog.expect("message 'stop'")
        assert support.answer_close_without_close_notify(client) == (1001, "server shutting down")
        answered = time.monotonic()
        prog.expect("on_close 1001 'server shutting down'", "stop -> 0", timeout=15)
        took = time.monotonic() - answered
        assert prog.finish() == 0
        assert support.server_close_notify(client)
    assert took < PROMPT, f"snow_ws_stop returned {took:.2f} s after the close handshake"
