"""examples/echo_server.c and examples/chat_server.c, compiled as the README says, run with an empty environment.

The chat server in C must answer exactly like the Python CLI's ``--app chat`` / ``--app bench`` (ChatApp and
BenchApp of snow_rt_py/apps.py): the same scripted session is played against both and every frame each client
receives is compared.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.c.harness import REPO, TIMEOUT, Program

pytestmark = pytest.mark.timeout(60)

LISTENING = re.compile(r"listening on ws://127\.0\.0\.1:(\d+)/")


@pytest.fixture
def python_server() -> Iterator[Callable[[str], int]]:
    """``start(app)``: the Python CLI serving ``--app app`` on an ephemeral port; stopped at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(app: str) -> int:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snow_rt_py", "serve", "--app", app, "--port", "0", "--ping-interval", "0"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = LISTENING.fullmatch(line.strip())
        assert match is not None, line
        return int(match.group(1))

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(TIMEOUT)


def start_c(run: Callable[..., Program], name: str, *args: str) -> tuple[Program, int]:
    prog = run(name, "--port", "0", "--ping-interval", "0", *args)
    raw = prog.line(normalized=False)
    match = LISTENING.fullmatch(raw)
    assert match is not None, raw
    return prog, int(match.group(1))


Step = tuple[str, str | bytes]  # (client, message)


def play(port: int, clients: str, steps: list[Step]) -> list[tuple[str, list[tuple[str, str | bytes]]]]:
    """Play ``steps``; after each, every frame each client received (in order), settled with ping barriers."""
    transcript = []
    with contextlib.ExitStack() as stack:
        ws: dict[str, ClientConnection] = {
            name: stack.enter_context(connect(f"ws://127.0.0.1:{port}/", open_timeout=10, close_timeout=10))
            for name in clients
        }
        for sender, message in steps:
            ws[sender].send(message)
            ws[sender].ping().wait(TIMEOUT)  # the server has handled the message (pong queued after any reply)
            for name in clients:
                ws[name].ping().wait(TIMEOUT)  # frames it queued for anyone arrived before this pong
            got: list[tuple[str, str | bytes]] = []
            for name in clients:
                with contextlib.suppress(TimeoutError):
                    while True:
                        got.append((name, ws[name].recv(timeout=0)))
            transcript.append((f"{sender}: {message!r}", got))
    return transcript


CHAT_SESSION: list[Step] = [
    ("A", "hello"),
    ("A", b"\x01\x02\xff"),
    ("A", "/join lobby"),
    ("B", "/join lobby"),
    ("B", "/join ünï cödé"),
    ("A", "/say lobby hi there"),
    ("A", "/all lobby everyone"),
    ("B", "/rooms"),
    ("B", '/join q"\\\t\x01🐍\x7f'),
    ("B", "/rooms"),
    ("A", "/rooms "),
    ("A", "/join"),
    ("A", "/join "),
    ("A", "/say lobby"),
    ("A", "/say nowhere x"),
    ("A", "/nope x"),
    ("A", "/"),
    ("C", "/join lobby"),
    ("C", "/say lobby to A and B"),
    ("A", "/leave lobby"),
    ("A", "/leave lobby"),
    ("A", "/all lobby after"),
    ("B", "/rooms"),
    ("A", "/rooms"),
    ("A", "/ROOMS"),
]

BENCH_SESSION: list[Step] = [
    ("A", "Bhello"),
    ("B", "B"),
    ("C", "not a broadcast"),
    ("A", b"B binary is echoed"),
    ("B", ""),
    ("C", "b lower case is echoed"),
]


def test_chat_server_matches_the_python_chat_app(
    run: Callable[..., Program], python_server: Callable[..., int]
) -> None:
    expected = play(python_server("chat"), "ABC", CHAT_SESSION)
    assert expected[7][1] == [("B", '["lobby", "\\u00fcn\\u00ef c\\u00f6d\\u00e9"]')]  # the script tests something
    prog, port = start_c(run, "chat_server")
    assert play(port, "ABC", CHAT_SESSION) == expected
    assert prog.finish(signal.SIGTERM) == 0


def test_chat_server_bench_app_matches_python(run: Callable[..., Program], python_server: Callable[..., int]) -> None:
    expected = play(python_server("bench"), "ABC", BENCH_SESSION)
    assert expected[0][1] == [("A", "Bhello"), ("B", "Bhello"), ("C", "Bhello")]
    prog, port = start_c(run, "chat_server", "--app", "bench")
    assert play(port, "ABC", BENCH_SESSION) == expected
    assert prog.finish(signal.SIGINT) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_echo_server(run: Callable[..., Program], sig: signal.Signals) -> None:
    prog, port = start_c(run, "echo_server", "--max-message-size", "100")
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=10, close_timeout=10) as ws:
        ws.send("text ✓")
        assert ws.recv(timeout=10) == "text ✓"
        ws.send(b"\x00\xff" * 50)
        assert ws.recv(timeout=10) == b"\x00\xff" * 50
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=10, close_timeout=10) as ws:
        ws.send("x" * 101)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1009
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=10, close_timeout=10) as ws:
        prog.proc.send_signal(sig)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")
    assert prog.finish() == 0
    assert prog.stderr == []


@pytest.mark.parametrize("workers", ["0", "2"])
def test_echo_server_many_clients_get_only_their_own_replies(run: Callable[..., Program], workers: str) -> None:
    """20 clients at once, each with 16 messages in flight: every reply comes back to its sender, in order, and
    nothing else does. Replies leave through each callback thread's own buffer (the C reply fast path); with
    workers=2 two threads fill theirs at the same time."""
    prog, port = start_c(run, "echo_server", "--workers", workers)

    def client(n: int) -> list[str | bytes]:
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=10, close_timeout=10) as ws:
            got: list[str | bytes] = []
            sent = 0
            for i in range(200):
                ws.send(f"client {n} message {i} " + "x" * (i % 130) if i % 3 else f"{n}:{i}".encode() * (i % 40))
                sent += 1
                if sent - len(got) >= 16:
                    got.append(ws.recv(timeout=10))
            while len(got) < sent:
                got.append(ws.recv(timeout=10))
            return got

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(client, range(20)))
    for n, got in enumerate(results):
        assert got == [
            f"client {n} message {i} " + "x" * (i % 130) if i % 3 else f"{n}:{i}".encode() * (i % 40)
            for i in range(200)
        ]
    assert prog.finish(signal.SIGTERM) == 0
    assert prog.stderr == []


def test_echo_server_port_in_use_and_bad_options(run: Callable[..., Program], tmp_path: Path) -> None:
    first, port = start_c(run, "echo_server")
    second = run("echo_server", "--port", str(port))
    assert second.finish() == 1
    assert second.stderr == [f"echo_server: error: cannot listen on 127.0.0.1:{port}: address already in use\n"]
    for args in (["--port", "70000"], ["--max-message-size", "0"], ["--bogus", "1"], ["--port"]):
        bad = run("echo_server", *args)
        assert bad.finish() == 2
        assert bad.stderr[0].startswith("usage: echo_server")
    assert first.finish(signal.SIGTERM) == 0


def test_chat_server_serves_the_chat_page_on_the_same_port(run: Callable[..., Program]) -> None:
    from snow_rt_py.testing import RawClient

    examples = str(REPO / "examples")
    prog, port = start_c(run, "chat_server", "--static-dir", examples, "--static-index", "chat.html")
    with RawClient(port) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, body = c.read_response()
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert body == (REPO / "examples" / "chat.html").read_bytes()
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:  # and still a chat server
        ws.send("/join lobby")
        assert ws.recv(timeout=TIMEOUT) == "joined lobby"
    assert prog.finish(signal.SIGTERM) == 0
