"""A wss:// connection is over once its WebSocket closing handshake is: the server sends TLS close_notify and closes
TCP without waiting for the peer's close_notify (which a raw or embedded client often never sends), so a drain or a
stop ends as soon as every WebSocket has closed (issue 21, defect 1). The same through the C ABI is in
tests/c/test_tls_close.py."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from snow_rt_py.testing import RawClient
from tests import support

pytestmark = pytest.mark.timeout(30)

PROMPT = 2.0
"""Seconds within which a server must be gone once the last close handshake is complete (the drain's own timeout
is 10 s: a server that waited for close_notify would take that long)."""


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ssl.SSLContext]:
    return support.tls_files(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_exits_once_the_close_handshake_is_done_without_the_peer_close_notify(
    tls: tuple[Path, Path, ssl.SSLContext], sig: signal.Signals
) -> None:
    cert, key, ctx = tls
    argv = ["serve", "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key), "--ping-interval", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "snow_rt_py", *argv, "--drain-timeout", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on wss://127.0.0.1:"), line
        port = int(line.strip().rstrip("/").rsplit(":", 1)[1])
        with RawClient.connect(port, tls=ctx) as client:
            client.send_text("hello")
            assert client.recv_message() == "hello"  # the echo app: the connection is open
            proc.send_signal(sig)
            assert support.answer_close_without_close_notify(client) == (1001, "going away")
            answered = time.monotonic()
            assert proc.wait(timeout=15) == 0
            took = time.monotonic() - answered
            assert support.server_close_notify(client)
        assert took < PROMPT, f"the server exited {took:.2f} s after the close handshake"
        assert "did not close" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_on_close_runs_once_the_close_handshake_is_done_without_the_peer_close_notify(
    start_server, recorder: support.Recorder, tls: tuple[Path, Path, ssl.SSLContext]
) -> None:
    cert, key, ctx = tls
    server = start_server(recorder, tls_cert=cert, tls_key=key, close_timeout=10)
    with RawClient.connect(server.port, tls=ctx) as client:
        client.send_close(1000, "bye")  # the client closes: the server answers and ends the connection
        assert client.expect_close()[0] == 1000
        answered = time.monotonic()
        assert recorder.wait_close(timeout=PROMPT + 1) == (1000, "bye")
        assert time.monotonic() - answered < PROMPT
        assert support.server_close_notify(client)


def test_drain_ends_once_every_close_handshake_is_done(
    start_server, recorder: support.Recorder, tls: tuple[Path, Path, ssl.SSLContext]
) -> None:
    cert, key, ctx = tls
    server = start_server(recorder, tls_cert=cert, tls_key=key)
    clients = [RawClient.connect(server.port, tls=ctx) for _ in range(3)]
    try:
        recorder.wait_count("connect", 3)
        started = time.monotonic()
        done = threading.Thread(target=server.drain, args=(10.0, 0.0))
        done.start()
        for client in clients:
            assert support.answer_close_without_close_notify(client) == (1001, "going away")
        done.join(15)
        assert not done.is_alive()
        took = time.monotonic() - started
        assert all(support.server_close_notify(client) for client in clients)
        assert took < PROMPT, f"drain took {took:.2f} s"
        assert [call[2:] for call in recorder.of("close")] == [(1001, "going away")] * 3
    finally:
        for client in clients:
            client.close()


def test_stop_runs_on_close_for_a_tls_peer_that_never_answers_the_close(
    start_server, recorder: support.Recorder, tls: tuple[Path, Path, ssl.SSLContext]
) -> None:
    cert, key, ctx = tls
    server = start_server(recorder, tls_cert=cert, tls_key=key)
    with RawClient.connect(server.port, tls=ctx):
        recorder.wait_count("connect")
        server.stop(timeout=0.5)  # the client reads nothing: its connection is aborted after 0.5 s
        assert recorder.closed == {recorder.newest().id: (1001, "server shutting down")}  # before stop returned
