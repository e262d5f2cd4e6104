"""The client of the C ABI (snow_ws_connect and the snow_ws_client_* functions of include/snow_ws.h): C programs
(tests/c/client_*.c, and examples/echo_client.c) against our own server, a `websockets` server and servers that
fail the opening in each way a client must answer: refused, DNS, an HTTP status instead of 101, TLS verification,
an opening handshake that never completes.

Each program's whole stdout is compared line for line (connection ids and ports normalized), and what the servers
received is checked too: the bytes of each message, the close code and reason.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.sync.server import Server, ServerConnection, serve

from tests import support
from tests.c.harness import TIMEOUT, Program, free_port

pytestmark = pytest.mark.timeout(90)

Run = Callable[..., Program]
ASAN = [pytest.param(False, id="plain"), pytest.param(True, id="asan")]
STALE = "-1 SNOW_WS_E_BAD_HANDLE: connection handle N is unknown or its connection has ended"


# -- servers ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def websockets_server(handler: Callable[[ServerConnection], None]) -> Iterator[int]:
    """A `websockets` server on 127.0.0.1 (a free port) running ``handler`` for each connection; its port."""
    server: Server = serve(handler, "127.0.0.1", 0, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.socket.getsockname()[1])
    finally:
        server.shutdown()
        thread.join(TIMEOUT)


class Seen:
    """What a `websockets` echo handler received: each message and how its connection ended."""

    def __init__(self) -> None:
        self.messages: queue.Queue[str | bytes] = queue.Queue()
        self.closes: queue.Queue[tuple[int | None, str | None]] = queue.Queue()

    def echo(self, ws: ServerConnection) -> None:
        for message in ws:
            self.messages.put(message)
            ws.send(message)
        self.closes.put((ws.close_code, ws.close_reason))

    def message(self) -> str | bytes:
        return self.messages.get(timeout=TIMEOUT)


@contextlib.contextmanager
def listening_socket(answer: bytes | None) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that reads each request's head and writes ``answer`` (then closes), or, with
    ``None``, accepts and never answers (the kernel completes the TCP handshakes: it never reads). Its port."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=16)
    stop = threading.Event()

    def serve_http() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(TIMEOUT)
                head = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in head and (chunk := conn.recv(4096)):
                        head += chunk
                    assert answer is not None
                    conn.sendall(answer)

    thread = threading.Thread(target=serve_http, daemon=True) if answer is not None else None
    if thread is not None:
        thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        if thread is not None:
            thread.join(TIMEOUT)
        sock.close()


@pytest.fixture
def our_server() -> Iterator[Callable[..., tuple[int, support.Recorder]]]:
    """``start(**options)``: our Python server (an echo :class:`~tests.support.Recorder`), stopped at teardown."""
    servers = []

    def start(**options: Any) -> tuple[int, support.Recorder]:
        recorder = support.Recorder()
        server = support.start(recorder, ping_interval=None, compression="off", **options)
        servers.append(server)
        return server.port, recorder

    yield start
    for server in servers:
        server.stop()


def tls_with_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A certificate chain and key for 127.0.0.1 from a fresh trustme CA, and that CA's certificate (PEM files)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    return cert_path, key_path, ca_path


# -- a client connection: callbacks, sends, rooms, handles ------------------------------------------------------


def echo_transcript(path: str, by: str = "conn") -> list[str]:
    return [
        "options_init -> 0",
        "connect -> 1",
        f"on_connect {path} env=connect-env Upgrade=websocket",
        "send -> 0",
        "send_binary -> 0",
        "on_message 'hello ✓' (9 bytes)",
        "on_binary 4 bytes: 00 01 02 ff ",
        "join r -> 0",
        "member_count r -> 1",
        "wait_open -> 0",
        "snow_ws_close -> 0" if by == "conn" else "snow_ws_client_close -> 0",
        "on_close 1000 'done' same conn: yes",
        "member_count r after on_close -> 0",
        "wait_closed -> 0",
        "wait_closed again -> -1 SNOW_WS_E_BAD_HANDLE: client 1 is unknown or was waited for",
        "wait_open after -> -1 SNOW_WS_E_BAD_HANDLE: client 1 is unknown or was waited for",
        f"send to the ended conn -> {STALE}",
        "done",
    ]


@pytest.mark.parametrize("by", ["conn", "client"])
@pytest.mark.parametrize("asan", ASAN)
def test_echo_against_our_server(
    run: Run, our_server: Callable[..., tuple[int, support.Recorder]], asan: bool, by: str
) -> None:
    port, recorder = our_server()
    prog = run("client_echo", f"ws://127.0.0.1:{port}/echo?x=1", by, asan=asan)
    prog.expect(*echo_transcript("/echo?x=1", by))
    assert prog.finish() == 0
    recorder.wait_close()
    assert [call[2] for call in recorder.of("message")] == ["hello ✓", b"\x00\x01\x02\xff"]
    assert [call[2] for call in recorder.of("connect")] == ["/echo?x=1"]
    assert recorder.wait_close() == (1000, "done")


def test_echo_against_websockets(run: Run) -> None:
    seen = Seen()
    with websockets_server(seen.echo) as port:
        prog = run("client_echo", f"ws://127.0.0.1:{port}", "conn")
        prog.expect(*echo_transcript("/"))
        assert prog.finish() == 0
        assert [seen.message(), seen.message()] == ["hello ✓", b"\x00\x01\x02\xff"]
        assert seen.closes.get(timeout=TIMEOUT) == (1000, "done")


def test_echo_over_wss_verified_with_the_ca_given(
    run: Run, our_server: Callable[..., tuple[int, support.Recorder]], tmp_path: Path
) -> None:
    cert, key, ca = tls_with_ca(tmp_path)
    port, recorder = our_server(tls_cert=str(cert), tls_key=str(key))
    prog = run("client_echo", f"wss://127.0.0.1:{port}/tls", "client", str(ca))
    prog.expect(*echo_transcript("/tls", "client"))
    assert prog.finish() == 0
    assert recorder.wait_close() == (1000, "done")


def test_a_room_bridges_a_client_connection_and_server_connections(run: Run) -> None:
    """The client connection joins room r; a server connection of the same program broadcasts to r: its own peer
    gets the text, and so does the upstream server, through the client connection."""
    got: queue.Queue[str | bytes] = queue.Queue()

    def upstream(ws: ServerConnection) -> None:
        got.put(ws.recv(timeout=TIMEOUT))
        ws.close(1000, "bye")

    with websockets_server(upstream) as upstream_port:
        prog = run("client_rooms", f"ws://127.0.0.1:{upstream_port}/")
        prog.expect("client: joins r -> 0", "wait_open -> 0", "member_count r -> 1")
        port = prog.port()
        with support_client(port, "/member") as peer:
            prog.expect("server: /member joins r -> 0")
            peer.send("broadcast over the bridge")
            assert peer.recv(timeout=TIMEOUT) == "over the bridge"
            assert got.get(timeout=TIMEOUT) == "over the bridge"
            prog.expect(
                "server: broadcast 'over the bridge' to r (members: 2), failed for -> 0",
                "client: on_close 1000 'bye', members of r now 1",
                "wait_closed -> 0",
            )
        prog.expect("server: on_close 1000", "stop -> 0", "done")
        assert prog.finish() == 0


@contextlib.contextmanager
def support_client(port: int, path: str) -> Iterator[Any]:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}{path}", open_timeout=TIMEOUT, compression=None) as ws:
        yield ws


# -- failures to connect: one error code and the reason, and on_close 1006 with it -------------------------------


def failure_lines(label: str, reason: str) -> list[str]:
    return [
        f"{label}:",
        "  connect -> 0",
        f"  wait_open -> -1 SNOW_WS_E_CONNECT: {reason}",
        "  on_connect calls 0",
        f"  on_close 1006 '{reason}', send with its conn -> -1 SNOW_WS_E_BAD_HANDLE",
        "  wait_closed -> 0",
    ]


def test_every_failure_to_connect_is_one_error_with_its_reason(
    run: Run, our_server: Callable[..., tuple[int, support.Recorder]], tmp_path: Path
) -> None:
    cert, key, _ = tls_with_ca(tmp_path)
    tls_port, tls_recorder = our_server(tls_cert=str(cert), tls_key=str(key))
    forbidden = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with listening_socket(forbidden) as http_port, listening_socket(None) as silent_port:
        prog = run(
            "client_failures",
            *("refused", f"ws://127.0.0.1:{free_port()}/", "0"),
            *("http", f"ws://127.0.0.1:{http_port}/", "0"),
            *("tls", f"wss://127.0.0.1:{tls_port}/", "0"),
            *("timeout", f"ws://127.0.0.1:{silent_port}/", "300"),
            *("dns", "ws://nonexistent.invalid/", "0"),
        )
        prog.expect(*failure_lines("refused", "connection refused (127.0.0.1:PORT)"))
        prog.expect(*failure_lines("http", "HTTP 403 Forbidden instead of 101"))
        prog.expect("tls:", "  connect -> 0")
        line = prog.line()
        prefix = "  wait_open -> -1 SNOW_WS_E_CONNECT: TLS certificate verify failed: "
        assert line.startswith(prefix), line
        reason = line.split("SNOW_WS_E_CONNECT: ", 1)[1]
        prog.expect(
            "  on_connect calls 0",
            f"  on_close 1006 '{reason}', send with its conn -> -1 SNOW_WS_E_BAD_HANDLE",
            "  wait_closed -> 0",
        )
        prog.expect(*failure_lines("timeout", "opening handshake timed out after 0.3 s"))
        prog.expect("dns:", "  connect -> 0")
        line = prog.line()
        assert line.startswith("  wait_open -> -1 SNOW_WS_E_CONNECT: DNS lookup of nonexistent.invalid failed: "), line
        reason = line.split("SNOW_WS_E_CONNECT: ", 1)[1]
        prog.expect(
            "  on_connect calls 0",
            f"  on_close 1006 '{reason}', send with its conn -> -1 SNOW_WS_E_BAD_HANDLE",
            "  wait_closed -> 0",
            "done",
        )
        assert prog.finish() == 0
    assert tls_recorder.of("connect") == []  # the TLS handshake failed: no WebSocket connection on the server


# -- wrong arguments and the struct_size rule --------------------------------------------------------------------


def test_wrong_arguments_and_an_older_smaller_struct(run: Run) -> None:
    arg = "-1 SNOW_WS_E_INVALID_ARGUMENT:"
    unknown = "-1 SNOW_WS_E_BAD_HANDLE: client {} is unknown or was waited for"
    with listening_socket(None) as silent_port:
        prog = run("client_args", f"ws://127.0.0.1:{silent_port}/")
        prog.expect(
            "-- options_init",
            f"NULL opts -> {arg} snow_ws_client_options_init: opts is NULL",
            f"struct_size 4 -> {arg} snow_ws_client_options_init: struct_size is 4: pass sizeof(SnowWsClientOptions)",
            "sizeof -> 0",
            "struct_size = sizeof, every other byte zero: yes",
            "older struct -> 0",
            "bytes past the older struct untouched: yes",
            "-- snow_ws_connect",
            f"NULL url -> {arg} snow_ws_connect: url is NULL",
        )
        # the URL and option checks are the Python API's (snow_rt_py.connect, ClientOptions.validate): one line each
        for label in ("ftp://", "no host"):
            line = prog.line()
            assert line.startswith(f"{label} -> {arg} "), line
        prog.expect(
            "not UTF-8 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 5",
            f"struct_size 4 -> {arg} SnowWsClientOptions.struct_size is 4: set it to sizeof(SnowWsClientOptions)",
            f"compression 9 -> {arg} SnowWsClientOptions.compression is 9: use 0 (default), "
            "SNOW_WS_COMPRESSION_SHARED (1), SNOW_WS_COMPRESSION_DEDICATED (2), SNOW_WS_COMPRESSION_OFF (3)",
            f"slow_consumer 7 -> {arg} SnowWsClientOptions.slow_consumer is 7: use 0 (default), "
            "SNOW_WS_SLOW_CONSUMER_CLOSE (1), SNOW_WS_SLOW_CONSUMER_DROP (2)",
            f"headers -> {arg} SnowWsClientOptions.headers: 'no colon here' is not a 'Name: value' line",
        )
        line = prog.line()
        assert line.startswith(f"open_timeout_ms -5 -> {arg} ") and "open_timeout" in line, line
        prog.expect(
            "-- unknown client ids",
            f"wait_open 999 -> {unknown.format(999)}",
            f"close 999 -> {unknown.format(999)}",
            f"wait_closed 999 -> {unknown.format(999)}",
            f"wait_open -1 -> {unknown.format(-1)}",
            "-- an older, smaller struct: open_timeout_ms 300 is read, the garbage after it is not",
            "connect -> 0",
            "wait_open -> -1 SNOW_WS_E_CONNECT: opening handshake timed out after 0.3 s",
            "on_close 1006 'opening handshake timed out after 0.3 s'",
            "wait_closed -> 0",
            "-- waits that run out, and closing a client still connecting",
            f"wait_open negative timeout -> {arg} snow_ws_client_wait_open: timeout_ms is negative",
            f"wait_closed negative timeout -> {arg} snow_ws_client_wait_closed: timeout_ms is negative",
            "wait_open 50 ms -> -1 SNOW_WS_E_TIMEOUT: client 2 is not open after 50 ms",
            "wait_closed 50 ms -> -1 SNOW_WS_E_TIMEOUT: client 2 has not ended after 50 ms",
        )
        line = prog.line()
        assert line.startswith(f"close code 999 -> {arg} ") and "999" in line, line
        line = prog.line()
        assert line.startswith("close reason not UTF-8 -> -1 SNOW_WS_E_INVALID_UTF8: "), line
        prog.expect(
            "close -> 0",
            "on_close 1006 'closed by the program while connecting'",
            "wait_open after close -> -1 SNOW_WS_E_CONNECT: closed by the program while connecting",
            "close again -> 0",
            "wait_closed -> 0",
            f"close after wait_closed -> {unknown.format(2)}",
            "done",
        )
        assert prog.finish() == 0


# -- examples/echo_client.c ------------------------------------------------------------------------------------


def test_echo_client_echoes_text_as_text_and_binary_as_binary_until_the_server_closes(
    run: Run, our_server: Callable[..., tuple[int, support.Recorder]]
) -> None:
    replies: queue.Queue[list[str | bytes]] = queue.Queue()
    sent: list[str | bytes] = ["hello", "héllo ✓", "", b"\x00\xff\x80", b"", "x" * 70000, bytes(range(256)) * 400]

    def drive(ws: ServerConnection) -> None:
        got = []
        for message in sent:
            ws.send(message)
            got.append(ws.recv(timeout=TIMEOUT))
        ws.close(1000, "enough")
        replies.put(got)

    with websockets_server(drive) as port:
        prog = run("echo_client", f"ws://127.0.0.1:{port}/")
        assert replies.get(timeout=TIMEOUT) == sent  # the same types: str for text, bytes for binary
        assert prog.finish() == 0
        assert prog.stderr == []


@pytest.mark.parametrize(
    ("args", "status", "error"),
    [
        ((), 2, "echo_client: error: no URL (usage: echo_client URL [--help])"),
        (("a", "b"), 2, "echo_client: error: more than one argument (usage: echo_client URL [--help])"),
        (("--bogus",), 2, "echo_client: error: --bogus: unknown option (see echo_client --help)"),
        (("ftp://127.0.0.1/",), 2, None),
        (("ws://127.0.0.1:{port}/",), 1, "echo_client: error: connection refused (127.0.0.1:{port})"),
    ],
)
def test_echo_client_bad_arguments_and_a_refused_connection(
    run: Run, args: tuple[str, ...], status: int, error: str | None
) -> None:
    port = free_port()  # nothing listens there
    prog = run("echo_client", *(arg.format(port=port) for arg in args))
    assert prog.finish() == status
    assert len(prog.stderr) == 1, prog.stderr
    if error is None:
        assert prog.stderr[0].startswith("echo_client: error: ftp://127.0.0.1/: "), prog.stderr
    else:
        assert prog.stderr[0] == error.format(port=port) + "\n"


def test_echo_client_help(run: Run) -> None:
    prog = run("echo_client", "--help")
    prog.expect("usage: echo_client URL [--help]")
    assert prog.finish() == 0
