"""examples/echo_server.c and examples/chat_server.c, compiled as the README says, run with an empty environment.

The chat server in C must answer exactly like the Python CLI's ``--app chat`` / ``--app bench`` (ChatApp and
BenchApp of snow_rt_py/apps.py): the same scripted session is played against both and every frame each client
receives is compared.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as asyncio_connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.c.harness import REPO, TIMEOUT, Program
from tests.support import tls_files

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


def test_echo_server_serves_wss_with_tls_cert_and_key(run: Callable[..., Program], tmp_path: Path) -> None:
    """--tls-cert/--tls-key: the listening line says wss://, a client that trusts the CA gets its echoes over TLS
    (and a plain ws:// client gets no WebSocket), SIGTERM still closes with 1001."""
    cert, key, client_ctx = tls_files(tmp_path)
    prog = run("echo_server", "--port", "0", "--ping-interval", "0", "--tls-cert", str(cert), "--tls-key", str(key))
    raw = prog.line(normalized=False)
    match = re.fullmatch(r"listening on wss://127\.0\.0\.1:(\d+)/", raw)
    assert match is not None, raw
    url = f"wss://127.0.0.1:{match.group(1)}/"

    async def exchange() -> list[str | bytes]:  # asyncio's client: see tests/runtime/test_tls.py on the threaded one
        async with asyncio_connect(url, ssl=client_ctx, open_timeout=10, close_timeout=10) as ws:
            await ws.send("over TLS ✓")
            text = await asyncio.wait_for(ws.recv(), 10)
            await ws.send(b"\x00\x01" * 40)
            return [text, await asyncio.wait_for(ws.recv(), 10)]

    assert asyncio.run(exchange()) == ["over TLS ✓", b"\x00\x01" * 40]
    with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=10) as plain:  # no TLS: no upgrade
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := plain.recv(4096):
                answer += chunk
        assert b"101" not in answer

    async def stopped() -> tuple[int | None, str | None]:
        async with asyncio_connect(url, ssl=client_ctx, open_timeout=10, close_timeout=10) as ws:
            prog.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return ws.close_code, ws.close_reason

    assert asyncio.run(stopped()) == (1001, "server shutting down")
    assert prog.finish() == 0
    assert prog.stderr == []


def test_echo_server_tls_files_are_checked_at_start(run: Callable[..., Program], tmp_path: Path) -> None:
    """A missing TLS file is one error line naming it, and exit status 1."""
    _, key, _ = tls_files(tmp_path)
    missing = run("echo_server", "--port", "0", "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(key))
    assert missing.finish() == 1
    assert missing.stderr == [
        f"echo_server: error: TLS certificate file {str(tmp_path / 'nope.pem')!r} does not exist\n"
    ]


def test_echo_server_port_in_use_and_bad_options(run: Callable[..., Program], tmp_path: Path) -> None:
    first, port = start_c(run, "echo_server")
    second = run("echo_server", "--port", str(port))
    assert second.finish() == 1
    assert second.stderr == [f"echo_server: error: cannot listen on 127.0.0.1:{port}: address already in use\n"]
    assert first.finish(signal.SIGTERM) == 0


BAD_OPTIONS = [
    ("echo_server", ["--port", "99999"], "--port: 99999 is not a port number (0-65535)"),
    ("echo_server", ["--port", "abc"], "--port: abc is not a port number (0-65535)"),
    ("echo_server", ["--port", "80x"], "--port: 80x is not a port number (0-65535)"),
    ("echo_server", ["--port"], "--port: needs a value"),
    ("echo_server", ["--bogus", "1"], "--bogus: unknown option (see echo_server --help)"),
    ("echo_server", ["--max-message-size", "0"], "--max-message-size: 0 is not a number of bytes >= 1"),
    ("echo_server", ["--ping-interval", "-1"], "--ping-interval: -1 is not a whole number of seconds >= 0"),
    ("echo_server", ["--workers", "2000"], "--workers: 2000 is not a number of threads (0-1024)"),
    ("echo_server", ["--compression", "zip"], "--compression: zip is not shared, dedicated or off"),
    ("echo_server", ["--tls-cert", "c.pem"], "--tls-cert: needs --tls-key too"),
    ("echo_server", ["--tls-key", "k.pem"], "--tls-key: needs --tls-cert too"),
    ("echo_server", ["--tls-key"], "--tls-key: needs a value"),
    ("chat_server", ["--app", "nosuch"], "--app: nosuch is not chat or bench"),
    ("chat_server", ["--port", "99999"], "--port: 99999 is not a port number (0-65535)"),
    ("chat_server", ["--bogus"], "--bogus: unknown option (see chat_server --help)"),
    ("chat_server", ["--static-dir"], "--static-dir: needs a value"),
    ("chat_server", ["--reuse-port", "yes"], "--reuse-port: yes is not 0 or 1"),
    (
        "chat_server",
        ["--cluster-presence-ttl-ms", "100"],
        "--cluster-presence-ttl-ms: 100 is not a number of milliseconds from 200 to 86400000",
    ),
]


@pytest.mark.parametrize(
    ("name", "args", "error"), BAD_OPTIONS, ids=[f"{name} {' '.join(args)}" for name, args, _ in BAD_OPTIONS]
)
def test_a_bad_option_is_one_line_naming_it_and_exit_2(
    run: Callable[..., Program], name: str, args: list[str], error: str
) -> None:
    bad = run(name, "--ping-interval", "0", *args)
    assert bad.finish() == 2
    assert bad.stderr == [f"{name}: error: {error}\n"]


def ask(ws: ClientConnection, message: str) -> str | bytes:
    ws.send(message)
    return ws.recv(timeout=TIMEOUT)


@pytest.mark.parametrize("server", ["python", "c"])
def test_joinas_sets_the_name_also_for_a_member_and_who_and_id_show_it(
    run: Callable[..., Program], python_server: Callable[..., int], server: str
) -> None:
    """``/joinas lobby alice`` after ``/join lobby`` renames the member (it once answered "joined lobby" and left
    the name empty); a name over 256 bytes is refused with a line and changes nothing. The same in Python and C."""
    port = python_server("chat") if server == "python" else start_c(run, "chat_server")[1]
    with (
        connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as a,
        connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as b,
    ):
        ids = {}
        for name, ws in (("a", a), ("b", b)):
            reply = ask(ws, "/id")
            assert isinstance(reply, str) and re.fullmatch(r"id \d+", reply), reply
            ids[name] = int(reply.split()[1])

        def who() -> dict[int, str]:
            reply = ask(b, "/who lobby")
            assert isinstance(reply, str) and reply.startswith("who lobby "), reply
            members = json.loads(reply.removeprefix("who lobby "))
            return {member[0]: member[2] for member in members}

        assert ask(a, "/join lobby") == "joined lobby"
        assert ask(b, "/joinas lobby bob") == "joined lobby"
        assert who() == {ids["a"]: "", ids["b"]: "bob"}
        assert ask(a, "/joinas lobby alice") == "joined lobby"
        assert who() == {ids["a"]: "alice", ids["b"]: "bob"}
        assert ask(a, "/joinas lobby alice smith") == "joined lobby"  # the rest of the line
        assert who() == {ids["a"]: "alice smith", ids["b"]: "bob"}
        assert ask(a, "/joinas lobby " + "é" * 129) == "not joined lobby: a name is at most 256 bytes of UTF-8"
        assert ask(a, "/joinas lobby " + "é" * 128) == "joined lobby"  # 256 bytes: allowed
        assert who() == {ids["a"]: "é" * 128, ids["b"]: "bob"}
        assert ask(a, "/joinas lobby") == "joined lobby"  # no name: the name is cleared
        assert who() == {ids["a"]: "", ids["b"]: "bob"}
        b.send("/say lobby still a member")  # renaming kept a in the room
        assert a.recv(timeout=TIMEOUT) == "still a member"


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
