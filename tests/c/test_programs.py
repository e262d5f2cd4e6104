"""C programs (tests/c/*.c) linked against build/libsnow_ws.so, driven by a `websockets` client over 127.0.0.1.

Every program runs from a temporary directory with an empty environment; its whole stdout is compared line for
line (connection ids and ports normalized). The programs marked ``asan`` also run compiled with AddressSanitizer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from snow_rt_py.testing import RawClient
from tests import support
from tests.c.harness import Program, free_port, signal_when_caught, wait_listening

pytestmark = pytest.mark.timeout(60)

Run = Callable[..., Program]
ASAN = [pytest.param(False, id="plain"), pytest.param(True, id="asan")]
STALE = "-1 SNOW_WS_E_BAD_HANDLE: connection handle N is unknown or its connection has ended"


def client(port: int, path: str = "/", **kwargs: object) -> ClientConnection:
    # No permessage-deflate offer unless a test asks: these tests count bytes and exercise the plain reply fast path.
    kwargs.setdefault("compression", None)
    return connect(f"ws://127.0.0.1:{port}{path}", open_timeout=10, close_timeout=10, **kwargs)  # type: ignore[arg-type]


def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Wait (bounded) for the server to close ``ws``; its close code and reason."""
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=10)
    return ws.close_code, ws.close_reason


# -- callbacks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("asan", ASAN)
def test_echo_without_env_pointers(run: Run, asan: bool) -> None:
    prog = run("echo", "plain", asan=asan)
    with client(prog.port(), "/echo?x=1") as ws:
        prog.expect("connect /echo?x=1 headers=yes")
        for text in ["hello", "héllo ✓ 🐍", ""]:
            ws.send(text)
            assert ws.recv(timeout=10) == text
        ws.close(1000, "bye")
    prog.expect(
        "message 'hello' (5 bytes)",
        "send -> 0",
        "message 'héllo ✓ 🐍' (15 bytes)",
        "send -> 0",
        "message '' (0 bytes)",
        "send -> 0",
        "close 1000 'bye'",
        "stop -> 0",
        "done",
    )
    assert prog.finish() == 0


@pytest.mark.parametrize("workers", ["0", "2"])
def test_echo_with_env_pointers(run: Run, workers: str) -> None:
    prog = run("echo", "env", workers)
    with client(prog.port(), "/e") as ws:
        ws.send("one")
        assert ws.recv(timeout=10) == "one"
        ws.send("x" * 1000)  # beyond the library's on-stack copy
        assert ws.recv(timeout=10) == "x" * 1000
    prog.expect(
        "[connect ok] connect /e headers=yes",
        "[message ok] message 'one' (3 bytes)",
        "send -> 0",
        f"[message ok] message '{'x' * 1000}' (1000 bytes)",
        "send -> 0",
        "[close ok] close 1000 ''",
        "stop -> 0",
        "done",
    )
    assert prog.finish() == 0


def test_reject_closes_1008_without_on_close_and_absent_on_connect_accepts(run: Run) -> None:
    prog = run("reject")
    port = prog.port()
    with client(port, "/deny/me") as ws:
        assert closed_with(ws) == (1008, "rejected")
    prog.expect("reject /deny/me")
    with client(port, "/ok") as ws:
        assert ws.recv(timeout=10) == "welcome"
        prog.expect("accept /ok", "send from on_connect -> 0")
    prog.expect(
        "close 1000 ''",
        "send to the rejected handle -> -1 SNOW_WS_E_BAD_HANDLE: "
        "connection handle N is unknown or its connection has ended",
    )
    with client(prog.port(), "/anything") as ws:  # the second server: on_connect NULL
        ws.send("accepted")
        assert ws.recv(timeout=10) == "accepted"
    prog.expect("message 'accepted'", "close 1000 ''", "stop first -> 0", "stop second -> 0", "done")
    assert prog.finish() == 0


@pytest.mark.parametrize("asan", ASAN)
def test_headers(run: Run, asan: bool) -> None:
    prog = run("headers", asan=asan)
    headers = [("x-custom", "Value One"), ("X-Repeat", "a"), ("x-repeat", "b")]
    with client(prog.port(), "/h?q", additional_headers=headers) as ws:
        ws.send("later")
        assert ws.recv(timeout=10) == "ok"
    prog.expect(
        "connect /h?q",
        "X-Custom -> 'Value One'",
        "x-custom -> 'Value One'",
        "X-CUSTOM -> 'Value One'",
        "x-repeat -> 'a, b'",
        "Missing -> NULL SNOW_WS_E_NOT_FOUND: no header named 'Missing'",
        "NULL name -> NULL SNOW_WS_E_INVALID_ARGUMENT: snow_ws_header_get: name is NULL",
        "NULL headers -> NULL SNOW_WS_E_INVALID_ARGUMENT: snow_ws_header_get: headers is NULL",
        "X-Custom from another thread -> 'Value One'",
        "X-Custom after on_connect returned -> NULL SNOW_WS_E_BAD_HANDLE: "
        "these headers are no longer valid: their on_connect has returned",
        "close 1000",
        "stop -> 0",
        "done",
    )
    assert prog.finish() == 0


@pytest.mark.parametrize("mode", ["onbinary", "onmessage"])
@pytest.mark.parametrize("asan", ASAN)
def test_binary_both_paths(run: Run, mode: str, asan: bool) -> None:
    prog = run("binary", mode, asan=asan)
    small = b"\x00\xff\x80abc"  # not UTF-8
    big = bytes(range(256)) * 300
    with client(prog.port()) as ws:
        ws.send(small)
        assert ws.recv(timeout=10) == small
        ws.send(big)
        assert ws.recv(timeout=10) == big
        ws.send("text")
        assert ws.recv(timeout=10) == "text"
    path = ["on_binary env=binary-env", "binary"] if mode == "onbinary" else [None, "on_message"]
    lines: list[str] = []
    for data in (small, big):
        if path[0] is not None:
            lines.append(path[0])
        hex8 = " ".join(f"{b:02x}" for b in data[:8]) + " "
        lines += [f"{path[1]} {len(data)} bytes: {hex8}...", "send_binary -> 0"]
    lines += ["on_message 4 bytes: 74 65 78 74 ...", "send -> 0", "close 1000", "stop -> 0", "done"]
    prog.expect(*lines)
    assert prog.finish() == 0


# -- rooms, close, handles, threads ----------------------------------------------------------------------------


def recv_all(clients: dict[str, ClientConnection], names: str, text: str) -> None:
    for name in names:
        assert clients[name].recv(timeout=10) == text, name


def nothing_pending(ws: ClientConnection) -> None:
    ws.ping().wait(10)  # a pong proves nothing queued before it: the server answers in order
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0)


@pytest.mark.parametrize("asan", ASAN)
def test_rooms_broadcast_and_except(run: Run, asan: bool) -> None:
    prog = run("rooms", asan=asan)
    port = prog.port()
    with contextlib.ExitStack() as stack:
        c = {name: stack.enter_context(client(port, f"/{name}")) for name in "ABC"}
        prog.expect("A joins r -> 0", "B joins r -> 0", "C joins r -> 0")
        c["A"].send("all hi")
        recv_all(c, "ABC", "hi")
        prog.expect("A: all hi -> 0")
        c["B"].send("others from-b")
        recv_all(c, "AC", "from-b")
        prog.expect("B: others from-b -> 0")
        c["C"].send("everyone e")
        recv_all(c, "ABC", "e")
        prog.expect("C: everyone e -> 0")
        c["A"].send("alias a")
        recv_all(c, "ABC", "a")
        prog.expect("A: alias a -> 0")
        c["C"].send("count")
        prog.expect("C: count -> 3")
        c["C"].send("leave")
        prog.expect("C: leave -> 0", "leave again (no-op) -> 0")
        c["C"].send("join news")
        prog.expect("C: join news -> 0", "join again (no-op) -> 0")
        c["C"].send("join lobby")
        prog.expect("C: join lobby -> 0", "join again (no-op) -> 0")
        c["C"].send("rooms")
        prog.expect("C: rooms -> 2 (capacity 1)", "  room 'lobby'", "  room 'news'")
        c["A"].send("all after-leave")
        recv_all(c, "AB", "after-leave")
        prog.expect("A: all after-leave -> 0")
        nothing_pending(c["C"])
        c["B"].close()
        # An ended connection has left every room: excluding it (from its own on_close or later) excludes nobody.
        prog.expect(
            "B closed; broadcast_except 'B left' from on_close -> 0", f"B closed 1000; joins r from on_close -> {STALE}"
        )
        assert c["A"].recv(timeout=10) == "B left"
        c["A"].send("stale x")
        assert c["A"].recv(timeout=10) == "x"
        prog.expect("A: stale x -> 0")
        c["A"].send("count")
        prog.expect("A: count -> 1")
        nothing_pending(c["A"])
    lines = [prog.line() for _ in range(4)]
    assert sorted(lines) == sorted(
        [
            "A closed; broadcast_except 'A left' from on_close -> 0",
            f"A closed 1000; joins r from on_close -> {STALE}",
            "C closed; broadcast_except 'C left' from on_close -> 0",
            f"C closed 1000; joins r from on_close -> {STALE}",
        ]
    )
    prog.expect("members of r after every close -> 0", "stop -> 0", "done")
    assert prog.finish() == 0


def test_close_with_code(run: Run) -> None:
    prog = run("close")
    port = prog.port()
    with client(port) as ws:
        ws.send("close 1005 no")
        prog.expect(
            "close 1005 'no' -> -1 SNOW_WS_E_INVALID_ARGUMENT: close code 1005 may not be sent "
            "(use 1000-1003, 1007-1014, 3000-4999)"
        )
        ws.send("close-long")
        prog.expect(
            "close 1000 with a 124-byte reason -> -1 SNOW_WS_E_INVALID_ARGUMENT: "
            "close reason is longer than 123 UTF-8 bytes"
        )
        ws.send("close-bad-utf8")
        prog.expect(
            "close 1000 with an invalid UTF-8 reason -> -1 SNOW_WS_E_INVALID_UTF8: "
            "not valid UTF-8: invalid continuation byte at byte 0"
        )
        ws.send("close 4001 custom reason")
        assert closed_with(ws) == (4001, "custom reason")
    prog.expect(
        "close 4001 'custom reason' -> 0",
        "send while closing -> -1 SNOW_WS_E_CLOSED: connection N is closed",
        "join while closing -> -1 SNOW_WS_E_CLOSED: connection N has ended; it cannot join 'custom reason'",
        "close again -> -1 SNOW_WS_E_CLOSED: connection N is closed",
        "on_close 4001 'custom reason'",
        f"send from on_close -> {STALE}",
        f"close from on_close -> {STALE}",
    )
    with client(port) as ws:
        ws.send("close-null")
        assert closed_with(ws) == (1000, "")
    prog.expect(
        "close 1000 NULL reason -> 0",
        "on_close 1000 ''",
        f"send from on_close -> {STALE}",
        f"close from on_close -> {STALE}",
        "stop -> 0",
        "done",
    )
    assert prog.finish() == 0


@pytest.mark.parametrize("asan", ASAN)
def test_stale_made_up_and_null_handles(run: Run, asan: bool) -> None:
    prog = run("handles", asan=asan)
    port = prog.port()
    bad = STALE
    null = "-1 SNOW_WS_E_INVALID_ARGUMENT:"
    prog.expect(
        "-- made-up and NULL handles",
        f"send made-up -> {bad}",
        f"send_binary made-up -> {bad}",
        f"send_binary made-up, NULL data, len 0 -> {bad}",
        f"close made-up -> {bad}",
        f"join made-up -> {bad}",
        f"leave made-up -> {bad}",
        f"rooms_of made-up -> {bad}",
        f"broadcast_except made-up -> {bad}",
        f"send NULL conn -> {null} snow_ws_send: conn is NULL",
        f"send NULL msg -> {null} snow_ws_send: msg is NULL",
        f"send_binary negative len -> {null} snow_ws_send_binary: len is negative",
        f"send_binary NULL data, len 2 -> {null} snow_ws_send_binary: data is NULL",
        f"join NULL room -> {null} snow_room_join: room is NULL",
        f"close NULL conn -> {null} snow_ws_close: conn is NULL",
        f"broadcast NULL room -> {null} snow_room_broadcast: room is NULL",
        f"broadcast NULL msg -> {null} snow_room_broadcast: msg is NULL",
        f"rooms_of negative capacity -> {null} snow_ws_rooms_of: capacity is negative",
        f"rooms_of NULL out -> {null} snow_ws_rooms_of: out is NULL",
    )
    with client(port) as ws:
        prog.expect(
            "-- invalid UTF-8 on a live connection",
            "send invalid UTF-8 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 0",
            "send invalid UTF-8 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 0",
            "send invalid UTF-8 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid continuation byte at byte 0",
            "send invalid UTF-8 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: unexpected end of data at byte 2",
            "send valid -> 0",
        )
        assert ws.recv(timeout=10) == "after the invalid ones"  # nothing invalid went on the wire before it
        ws.send("stop-from-callback")
        prog.expect(
            "snow_ws_stop from a loop-thread callback -> -1 SNOW_WS_E_INTERNAL: "
            "this call waits for the event loop and cannot be made from the loop thread (a callback with workers=0); "
            "call it from another thread or run the server with workers >= 1",
            "snow_ws_start from a loop-thread callback -> -1 SNOW_WS_E_INTERNAL: "
            "this call waits for the event loop and cannot be made from the loop thread (a callback with workers=0); "
            "call it from another thread or run the server with workers >= 1",
            "send from the same callback -> 0",
        )
        assert ws.recv(timeout=10) == "stop-from-callback"
    prog.expect(
        "close 1000",
        "-- stale handle (its connection ended)",
        f"send stale -> {bad}",
        f"send_binary stale -> {bad}",
        f"close stale -> {bad}",
        f"join stale -> {bad}",
        f"rooms_of stale -> {bad}",
        "stop -> 0",
        "stop again -> -1 SNOW_WS_E_BAD_SERVER: server 1 is unknown or stopped",
        "done",
    )
    assert prog.finish() == 0


@pytest.mark.parametrize("asan", ASAN)
def test_sends_from_program_threads(run: Run, asan: bool) -> None:
    prog = run("thread_send", asan=asan)
    with client(prog.port()) as ws:
        got: list[str] = []
        with pytest.raises(ConnectionClosed):
            while True:
                got.append(str(ws.recv(timeout=10)))
        assert (ws.close_code, ws.close_reason) == (1000, "done")
    for tag in "ab":
        assert [m for m in got if m.startswith(tag)] == [f"{tag} {i}" for i in range(100)]
    assert len(got) == 200
    prog.expect("thread a: 100 sent, 0 failed", "thread b: 100 sent, 0 failed")
    # snow_ws_close returns once the Close is queued; on_close runs on the loop thread when the client's answer
    # arrives, which on a loaded machine can be before the main thread prints what snow_ws_close returned
    assert sorted([prog.line(), prog.line()]) == ["close 1000 'done'", "close from main -> 0"]
    prog.expect("stop -> 0", "done")
    assert prog.finish() == 0


# -- blocking serve, shutdown, signals, TLS ----------------------------------------------------------------------


def test_serve_and_shutdown_from_another_thread(run: Run) -> None:
    port = free_port()
    prog = run("serve_shutdown", str(port))
    prog.expect(
        "init -> 0",
        "-- a shutdown with nobody blocked is kept",
        "shutdown -> 0",
        "serve returned at once",
        "wait_shutdown after a consumed request: shutdown -> 0",
        "wait_shutdown -> 0",
        "-- serve in a thread, shutdown from main",
        "serving on the given port",
    )
    wait_listening(port)
    with client(port) as ws:
        ws.send("echo me")
        assert ws.recv(timeout=10) == "echo me"
        ws.send("stop")
        assert closed_with(ws) == (1001, "server shutting down")
    prog.expect(
        "message 'echo me'",
        "message 'stop'",
        "close 1001 'server shutting down'",
        "serve returned",
        "shutdown woke -> 1",
        "-- serve in a thread, shutdown from a callback",
        "serving on the given port",
    )
    wait_listening(port)
    with client(port) as ws:
        ws.send("stop-here")
        assert closed_with(ws) == (1001, "server shutting down")
    prog.expect(
        "message 'stop-here'",
        "shutdown from the callback -> 1",
        "close 1001 'server shutting down'",
        "serve returned",
        "-- bind failure returns at once",
        "serve returned: SNOW_WS_E_SERVER_START: cannot listen on 127.0.0.1:PORT: address already in use",
        "serve returned: SNOW_WS_E_INVALID_ARGUMENT: port must be between 0 and 65535, got -1",
        "stop -> 0",
        "done",
    )
    assert prog.finish() == 0


@pytest.mark.parametrize(
    ("sig", "ignored"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGINT", "SIGTERM", "SIGINT-ignored-by-parent"],
)
def test_serve_returns_on_signal_and_restores_handlers(run: Run, sig: signal.Signals, ignored: bool) -> None:
    port = free_port()
    prog = run("serve_signal", str(port), ignore_sigint=ignored)
    prog.expect("init -> 0")
    wait_listening(port)
    with client(port) as ws:
        prog.expect("connected")
        prog.proc.send_signal(sig)
        assert closed_with(ws) == (1001, "server shutting down")
    prog.expect(
        "close 1001 'server shutting down'",
        "serve returned",
        "own SIGTERM handler ran after serve returned: yes",
    )
    assert prog.finish() == 0


@pytest.mark.parametrize("host", ["127.0.0.2", ""], ids=["SNOW_WS_HOST=127.0.0.2", "SNOW_WS_HOST-empty"])
def test_serve_binds_the_address_of_snow_ws_host(run: Run, host: str) -> None:
    port = free_port()
    prog = run("serve_host", str(port), env={"SNOW_WS_HOST": host})
    prog.expect("init -> 0")
    listening = host or "127.0.0.1"
    wait_listening(port, host=listening)
    if host:  # only there: not on the default address
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with connect(f"ws://{listening}:{port}/", open_timeout=10, close_timeout=10) as ws:
        ws.send("echo")
        assert ws.recv(timeout=10) == "echo"
        ws.send("stop")
        assert closed_with(ws) == (1001, "server shutting down")
    prog.expect("shutdown from the callback -> 1", "serve returned: SNOW_WS_OK: ", "done")
    assert prog.finish() == 0


def test_serve_with_an_unusable_snow_ws_host_fails_naming_it(run: Run) -> None:
    port = free_port()
    prog = run("serve_host", str(port), env={"SNOW_WS_HOST": "256.1.1.1"})
    prog.expect("init -> 0")
    line = prog.line()
    assert line.startswith(f"serve returned: SNOW_WS_E_SERVER_START: cannot listen on 256.1.1.1:{port}: "), line
    assert line.endswith(" (the address is SNOW_WS_HOST's)"), line
    prog.expect("done")
    assert prog.finish() == 0


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ssl.SSLContext]:
    return support.tls_files(tmp_path_factory.mktemp("tls"))


def test_tls_server(run: Run, tls_files: tuple[Path, Path, ssl.SSLContext]) -> None:
    cert, key, ctx = tls_files
    port = free_port()
    prog = run("tls", str(port), str(cert), str(key))
    prog.expect(
        "missing cert: SNOW_WS_E_SERVER_START: TLS certificate file '/nonexistent/snow-cert.pem' does not exist",
        "key as cert: SNOW_WS_E_SERVER_START",
        "NULL cert: SNOW_WS_E_INVALID_ARGUMENT: snow_ws_serve_tls: cert_path is NULL",
        "serving wss",
    )
    wait_listening(port)
    with connect(f"wss://127.0.0.1:{port}/", ssl=ctx, open_timeout=10, close_timeout=10) as ws:
        ws.send("secret")
        assert ws.recv(timeout=10) == "secret"
        ws.send("stop")
        assert closed_with(ws) == (1001, "server shutting down")
    prog.expect("message 'secret'", "message 'stop'", "close 1001", "serve_tls returned")
    assert prog.finish() == 0


# -- start-up failure, misc -------------------------------------------------------------------------------------


@pytest.mark.parametrize("asan", ASAN)
def test_init_failure_every_entry_point_fails(run: Run, asan: bool) -> None:
    prog = run("init_fail", asan=asan, env={"SNOW_RT_PY_ABI_FAIL_IMPORT": "1"})
    reason = (
        "SNOW_WS_E_INIT: the embedded runtime could not start: ImportError: "
        "simulated failure to import snow_rt_py (test hook SNOW_RT_PY_ABI_FAIL_IMPORT=1)"
    )
    calls = ["send", "send_binary", "close", "join", "leave", "broadcast", "broadcast_except", "member_count"]
    calls += ["rooms_of", "start", "server_port", "stop"]
    prog.expect(
        "version_number 100, header 100: match; last error code 0",
        f"init -> -1 {reason}",
        f"init again -> -1 {reason}",
        f"version -> NULL {reason}",
        *[f"{call} -> -1 {reason}" for call in calls],
        f"header_get -> NULL {reason}",
        f"serve returned: {reason}",
        "serve_tls returned: SNOW_WS_E_INIT",
        "other thread, before any call: ''",
        f"other thread: send -> -1 {reason}",
        "-- without the runtime",
        "shutdown -> 0",
        "wait_shutdown (pending request) -> 0",
        "strerror(SNOW_WS_E_INIT): the embedded runtime could not start",
        "version_number -> 100",
        "string: 1 bytes 'x'",
        "done",
    )
    assert prog.finish() == 0
    assert "CALLBACK" not in "".join(prog.lines)


def test_misc_options_errors_strings(run: Run) -> None:
    prog = run("misc")
    arg = "-1 SNOW_WS_E_INVALID_ARGUMENT:"
    prog.expect(
        "last error before any call '' code 0",
        "version 0.1.0, header 0.1.0: match",
        "version_number 100, header 100: match",
        "strerror(0) SNOW_WS_OK: no error",
        "strerror(1) SNOW_WS_E_INIT: the embedded runtime could not start",
        "strerror(2) SNOW_WS_E_INVALID_ARGUMENT: invalid argument",
        "strerror(3) SNOW_WS_E_INVALID_UTF8: text is not valid UTF-8",
        "strerror(4) SNOW_WS_E_BAD_HANDLE: unknown or expired handle",
        "strerror(5) SNOW_WS_E_CLOSED: the connection is closing or closed",
        "strerror(6) SNOW_WS_E_QUEUE_FULL: the connection's outbound queue is full: message dropped",
        "strerror(7) SNOW_WS_E_SERVER_START: the server could not start",
        "strerror(8) SNOW_WS_E_BAD_SERVER: unknown or stopped server",
        "strerror(9) SNOW_WS_E_NOT_FOUND: not found",
        "strerror(10) SNOW_WS_E_INTERNAL: internal error",
        "strerror(11) SNOW_WS_E_CONNECT: the connection could not be opened",
        "strerror(12) SNOW_WS_E_TIMEOUT: timed out",
        "strerror(13) ?: unknown error code",
        "strerror(-1): unknown error code",
        "-- options",
        f"struct_size 4 -> {arg} SnowWsOptions.struct_size is 4: set it to sizeof(SnowWsOptions)",
        f"port 70000 -> {arg} port must be between 0 and 65535, got 70000",
        f"pong_timeout_ms -5 -> {arg} pong_timeout must be positive, got -0.005",
        f"max_message_size -1 -> {arg} max_message_size must be positive, got -1",
        f"workers -2 -> {arg} workers must be >= 0, got -2",
        f"tls cert alone -> {arg} tls_cert and tls_key must be given together",
        "tls files missing -> -1 SNOW_WS_E_SERVER_START: TLS certificate file '/nonexistent/cert.pem' does not exist",
        "host not UTF-8 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 0",
        "struct_size 16 -> server started, port ephemeral",
        "stop -> 0",
        "stop again -> -1 SNOW_WS_E_BAD_SERVER: server 1 is unknown or stopped",
        "server_port of the stopped server -> -1 SNOW_WS_E_BAD_SERVER: server 1 is unknown or stopped",
        "NULL options -> server started",
        f"stop negative timeout -> {arg} snow_ws_stop: timeout_ms is negative",
        "stop -> 0",
        "server_port(0) -> -1 SNOW_WS_E_BAD_SERVER: server 0 is unknown or stopped",
        "stop(-3) -> -1 SNOW_WS_E_BAD_SERVER: server -3 is unknown or stopped",
        "-- rooms without members",
        "member_count nobody -> 0",
        "broadcast to nobody -> 0",
        "broadcast invalid UTF-8 msg -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 0",
        "broadcast invalid UTF-8 room -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 0",
        f"member_count NULL -> {arg} snow_room_member_count: room is NULL",
        "-- strings",
        "snow_string_new(NULL, 0): ok, len 0",
        f"snow_string_new(NULL, 1) -> NULL {arg[3:]} snow_string_new: data is NULL",
        "snow_string_free(NULL): ok",
        "-- the last error is per thread",
        "main: server_port(31337) -> -1 SNOW_WS_E_BAD_SERVER: server 31337 is unknown or stopped",
        "thread: last error before any call '' code 0",
        "thread: server_port(424242) -> -1 SNOW_WS_E_BAD_SERVER: server 424242 is unknown or stopped",
        "main: last error still 'server 31337 is unknown or stopped'",
        "done",
    )
    assert prog.finish() == 0


@pytest.mark.parametrize("policy", ["drop", "close"])
def test_max_queue_bytes_and_slow_consumer_options(run: Run, policy: str) -> None:
    prog = run("slow_consumer", policy)
    arg = "-1 SNOW_WS_E_INVALID_ARGUMENT:"
    choices = "use 0 (default), SNOW_WS_SLOW_CONSUMER_CLOSE (1) or SNOW_WS_SLOW_CONSUMER_DROP (2)"
    prog.expect(
        f"slow_consumer 3 -> {arg} SnowWsOptions.slow_consumer is 3: {choices}",
        f"slow_consumer -1 -> {arg} SnowWsOptions.slow_consumer is -1: {choices}",
        f"max_queue_bytes 100 -> {arg} max_queue_bytes must be at least 1024, got 100",
        "struct_size without the new fields -> started",
        "stop -> 0",
    )
    slow = RawClient(prog.port(), rcvbuf=4096, timeout=10)  # never reads until the sends are refused
    try:
        assert slow.handshake("/")[0] == 101
        prog.expect("connected")
        sent = prog.line()
        assert sent.startswith("sent ")
        count = int(sent.split()[1])
        assert 0 < count < 200000
        if policy == "drop":
            prog.expect("refused send -> -1 SNOW_WS_E_QUEUE_FULL: connection N: outbound queue full, message dropped")
        else:
            prog.expect("refused send -> -1 SNOW_WS_E_CLOSED: connection N is closed")
        # Everything sent before the refusal arrives, in order, and nothing after it.
        for i in range(count):
            assert slow.recv_message() == f"{i:06d}" + "0" * 994
        if policy == "drop":  # still open: it answers
            slow.send_text("anyone?")
            assert slow.recv_message() == "still open"
            prog.expect("on_message 'anyone?', reply -> 0")
            slow.send_close(1000)
            assert slow.expect_close() == (1000, "")
            prog.expect("on_close 1000 ''")
        else:
            assert slow.expect_close() == (1008, "slow consumer")
            slow.send_close(1008)
            prog.expect("on_close 1008 'slow consumer'")
    finally:
        slow.close()
    prog.expect("stop -> 0", "done")
    assert prog.finish() == 0


# -- replies from inside callbacks (the library's fast path) ----------------------------------------------------


def utf8_random_strings(n: int) -> list[bytes]:
    """The strings replies.c's "utf8-random N" sends (its LCG and random_unit, replayed)."""
    state = 42
    mask = (1 << 64) - 1

    def draw(bound: int) -> int:
        nonlocal state
        state = (state * 6364136223846793005 + 1442695040888963407) & mask
        return (state >> 33) % bound

    cont = [0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0x41]
    leads = {1: [0xC0, 0xC1, 0xC2, 0xDF], 2: [0xE0, 0xE1, 0xED, 0xEE, 0xEF], 3: [0xF0, 0xF1, 0xF4, 0xF5]}

    def unit() -> list[int]:
        kind = draw(8)
        if kind == 0:
            return [0x41 if draw(2) else 0x7F]
        tail = {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 1, 7: 1}[kind]
        if kind == 6:
            head: list[int] = []
        elif kind == 7:
            head = [0xE1 if draw(2) else 0xF1]
        else:
            options = leads[tail]
            head = [options[draw(len(options))]]
        return head + [cont[draw(len(cont))] for _ in range(tail)]

    strings = []
    for _ in range(n):
        data: list[int] = []
        for _ in range(1 + draw(3)):
            data += unit()
        strings.append(bytes(data))
    return strings


def valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "fast-path-off"])
def test_replies_inside_callbacks_answer_and_arrive_like_the_python_path(run: Run, fast: bool) -> None:
    """Sends to the connection whose on_message runs are encoded in C and delivered after the callback; with
    SNOW_RT_PY_ABI_NO_FAST_REPLY=1 each goes through Python at once. Both must give the same return codes, errors,
    frames and order: the transcript below is asserted for both."""
    prog = run("replies", "3", env={} if fast else {"SNOW_RT_PY_ABI_NO_FAST_REPLY": "1"})
    port = prog.port()
    with client(port) as first, client(port) as ws:
        ws.send("order")  # a join/broadcast between two sends: the first send must not overtake the broadcast
        assert [ws.recv(timeout=10) for _ in range(3)] == ["1 before", "2 broadcast", "3 after"]
        prog.expect("send 1 -> 0", "join -> 0", "broadcast -> 0", "send 3 -> 0", "leave -> 0")

        ws.send("relay")
        assert [ws.recv(timeout=10) for _ in range(2)] == ["r1", "r2"]
        assert first.recv(timeout=10) == "for the first"
        prog.expect("send to itself -> 0", "send to the first connection -> 0", "send to itself again -> 0")

        ws.send("utf8")
        valid = ["abcdefghi", "\x80", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0010ffff"]
        assert [ws.recv(timeout=10) for _ in range(len(valid) + 1)] == [*valid, "snake 🐍!"]
        prog.expect(
            "ascii 9 bytes -> 0",
            "U+0080 -> 0",
            "U+07FF -> 0",
            "U+0800 -> 0",
            "U+D7FF -> 0",
            "U+E000 -> 0",
            "U+FFFF -> 0",
            "U+10000 -> 0",
            "U+10FFFF -> 0",
            "ascii then U+1F40D -> 0",
            "C0 overlong -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 0",
            "C1 overlong -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 0",
            "E0 overlong -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid continuation byte at byte 0",
            "surrogate D800 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid continuation byte at byte 0",
            "surrogate DFFF -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid continuation byte at byte 0",
            "F0 overlong -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid continuation byte at byte 0",
            "above U+10FFFF -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid continuation byte at byte 0",
            "F5 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 0",
            "lone continuation -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 2",
            "truncated 2 of 3 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: unexpected end of data at byte 8",
            "truncated 3 of 4 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: unexpected end of data at byte 0",
            "bad second byte -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid continuation byte at byte 0",
            "bad fourth byte -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid continuation byte at byte 0",
        )

        # Python's decoder is the oracle: exactly the valid strings arrive, in order (an invalid one let through
        # would make the client fail the connection with 1007).
        strings = utf8_random_strings(20000)
        expected = [s.decode("utf-8") for s in strings if valid_utf8(s)]
        assert 1000 < len(expected) < 19000  # the alphabet mixes valid and invalid sequences
        ws.send("utf8-random 20000")
        prog.expect(f"utf8-random 20000: {len(expected)} sent")
        assert [ws.recv(timeout=10) for _ in expected] == expected

        ws.send("binary")
        pattern = bytes(i * 7 & 0xFF for i in range(65536))
        assert [ws.recv(timeout=10) for _ in range(5)] == [pattern[:n] for n in (0, 125, 126, 65535, 65536)]
        prog.expect(*(f"send_binary {n} -> 0" for n in (0, 125, 126, 65535, 65536)))

        for size in (100, 200_000):  # a fast reply; a large one (the echo queues the received bytes object)
            echo = b"E" + os.urandom(size - 1)
            ws.send(echo)
            assert [ws.recv(timeout=10) for _ in range(3)] == [b"before", echo, "after"]
            prog.expect("binary before -> 0", f"echo {size} bytes -> 0", "text after -> 0")
            copy = b"C" + os.urandom(size - 1)
            ws.send(copy)
            assert ws.recv(timeout=10) == copy
            prog.expect(f"copy of {size} bytes -> 0")

        ws.send("close-after")  # what was sent before the close leaves before the Close frame; nothing after it
        assert ws.recv(timeout=10) == "before"
        assert closed_with(ws) == (4002, "r")
        prog.expect(
            "send before -> 0",
            "close 4002 -> 0",
            "send after -> -1 SNOW_WS_E_CLOSED: connection N is closed",
            "on_close 4002 'r'",
        )

    prog.expect("on_close 1000 ''")
    # One callback that sends more than the outbound queue holds (1 MiB by default): 1,004-byte frames, so the
    # 1,045th would pass 1,048,576 bytes; it is refused and the connection closed as a slow consumer (1008), after
    # the 1,044 queued ones went out.
    with client(port, max_size=None) as ws:
        ws.send("burst 3000 1000")
        prog.expect("burst 3000 x 1000: 1044 sent", "send #1044 -> -1 SNOW_WS_E_CLOSED: connection N is closed")
        received = [ws.recv(timeout=10) for _ in range(1044)]
        assert received == [chr(ord("a") + i % 26) * 1000 for i in range(1044)]
        assert closed_with(ws) == (1008, "slow consumer")
    prog.expect("on_close 1008 'slow consumer'", "stop -> 0", "done")
    assert prog.finish() == 0


# -- the front door (issue 15) -----------------------------------------------------------------------------------


@pytest.mark.parametrize("asan", ASAN)
def test_front_door_options_subprotocol_stats_and_drain(run: Run, asan: bool) -> None:
    prog = run("frontdoor", asan=asan)
    port = prog.port()
    with client(prog.port(), "/plain") as ws:  # the second server: no subprotocols
        assert ws.subprotocol is None
        prog.expect(
            "connect /plain subprotocol (null)",
            "snow_ws_subprotocol -> NULL SNOW_WS_E_NOT_FOUND: connection N has no subprotocol",
        )
    prog.expect("plain server:", "on_close 1000 ''", "stop plain -> 0")

    def refused(headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with RawClient(port) as raw:
            return raw.handshake(headers=headers)

    good = {"Origin": "https://a.example.com", "Sec-WebSocket-Protocol": "chat, chat.v2"}
    status, _, body = refused({"Origin": "https://evil.test", "Sec-WebSocket-Protocol": "chat"})
    assert (status, body) == (403, b"Forbidden: origin 'https://evil.test' is not allowed.\n")
    status, _, body = refused({"Origin": "http://ok.test"})
    assert status == 400
    assert body == b"A subprotocol is required (Sec-WebSocket-Protocol): the server speaks chat.v2, chat.\n"
    stack = contextlib.ExitStack()
    first = stack.enter_context(client(port, "/one", origin="https://a.example.com", subprotocols=["chat", "chat.v2"]))
    assert first.subprotocol == "chat.v2"
    prog.expect("connect /one subprotocol chat.v2")
    second = stack.enter_context(client(port, "/two", origin="http://ok.test", subprotocols=["chat"]))
    assert second.subprotocol == "chat"
    prog.expect("connect /two subprotocol chat")
    for _ in range(2):  # handshakes 5 and 6: over max_connections
        status, headers, _ = refused(good)
        assert (status, headers["retry-after"]) == (503, "1")
    status, headers, _ = refused(good)  # handshake 7: over the burst of 6
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert "snow_ws_connections_open 2.0" in metrics
    assert 'snow_ws_handshakes_refused_total{reason="rate_limit"} 1.0' in metrics
    first.send("stats")
    assert first.recv(timeout=10) == "stats"  # the open connections were never affected
    prog.expect(
        "server_stats -> 0",
        "full: open 2 total 2 refused origin 1 subprotocol 1 max_connections 2 rate 1 bad_request 0 "
        "messages in 1 out 0 bytes in 5 out 0",
        "server_stats short -> 0",
        "short: open 2 total 2 refused origin 1 subprotocol 1 max_connections 2 rate 1 bad_request 0 "
        "messages in -7 out 0 bytes in 0 out 0",
        "server_stats struct_size 4 -> -1 SNOW_WS_E_INVALID_ARGUMENT: "
        "snow_ws_server_stats: out->struct_size is under 8: set it to sizeof(SnowWsStats)",
        "server_stats NULL -> -1 SNOW_WS_E_INVALID_ARGUMENT: snow_ws_server_stats: out is NULL",
        "server_stats unknown -> -1 SNOW_WS_E_BAD_SERVER: server 999999 is unknown or stopped",
        "subprotocol NULL -> NULL SNOW_WS_E_INVALID_ARGUMENT: snow_ws_subprotocol: conn is NULL",
    )
    for ws in (first, second):
        assert closed_with(ws) == (1001, "going away")
    stack.close()
    prog.expect(
        "on_close 1001 'going away'",
        "subprotocol after close -> NULL " + STALE.removeprefix("-1 "),
        "on_close 1001 'going away'",
        "subprotocol after close -> NULL " + STALE.removeprefix("-1 "),
        "drain -> 0",
        "server_stats after drain -> -1 SNOW_WS_E_BAD_SERVER: server 1 is unknown or stopped",
        "drain again -> -1 SNOW_WS_E_BAD_SERVER: server 1 is unknown or stopped",
        "drain negative -> -1 SNOW_WS_E_INVALID_ARGUMENT: snow_ws_drain: timeout_ms is negative",
        "start with a bad origin -> -1 SNOW_WS_E_INVALID_ARGUMENT: allowed_origins: 'example.com' is not an origin "
        "(scheme://host[:port] or scheme://*.domain[:port])",
        "start with a negative rate -> -1 SNOW_WS_E_INVALID_ARGUMENT: handshake_rate must be >= 0 (0: no limit), "
        "got -1.0",
        "done",
    )
    assert prog.finish() == 0


# -- permessage-deflate options (SnowWsOptions.compression*, SNOW_WS_COMPRESSION) --------------------------------

SHARED_ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
DEDICATED_ANSWER = "permessage-deflate; client_max_window_bits=12"


LONG_REPLY = b"a reply long enough to be compressed: over compression_min_size, which is 64 bytes here"


def _deflate_echo(port: int, frames: int = 5) -> tuple[str, list[tuple[int, bytes]]]:
    """Offer permessage-deflate, send a compressed text, then "three" and "hi"; return the server's answer header
    and the first ``frames`` frames that came back: (RSV bits, message), compressed ones inflated (one inflater for
    them all, as a client keeps)."""
    client = RawClient(port)
    got: list[tuple[int, bytes]] = []
    try:
        status, headers, _ = client.handshake(
            "/", {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
        )
        assert status == 101
        message = b"hello from C " * 20
        if headers.get("sec-websocket-extensions"):
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            client.send_frame(1, (c.compress(message) + c.flush(zlib.Z_SYNC_FLUSH))[:-4], rsv=4)
        else:  # not negotiated: RSV1 would be a protocol error
            client.send_frame(1, message)
        client.send_frame(1, b"three")  # short: sent plain, as RFC 7692 allows
        client.send_frame(1, b"hi")
        inflater = zlib.decompressobj(-15)
        for _ in range(frames):
            frame = client.recv_frame()
            data = inflater.decompress(frame.payload + b"\x00\x00\xff\xff") if frame.rsv & 4 else frame.payload
            got.append((frame.rsv, data))
        client.send_close(1000)
        client.expect_close()
    finally:
        client.close()
    return headers.get("sec-websocket-extensions", ""), got


@pytest.mark.parametrize(
    ("mode", "env", "answer"),
    [
        ("shared", None, SHARED_ANSWER),
        ("dedicated", None, DEDICATED_ANSWER),
        ("off", None, ""),
        ("env", None, SHARED_ANSWER),  # 0 and no variable: shared
        ("env", "dedicated", DEDICATED_ANSWER),
        ("env", "off", ""),
        ("shared", "dedicated", SHARED_ANSWER),  # the field wins over the variable
    ],
)
def test_compression_options_and_snow_ws_compression(run: Run, mode: str, env: str | None, answer: str) -> None:
    prog = run("compression", mode, env={"SNOW_WS_COMPRESSION": env} if env else None)
    arg = "-1 SNOW_WS_E_INVALID_ARGUMENT:"
    choices = (
        "use 0 (default), SNOW_WS_COMPRESSION_SHARED (1), SNOW_WS_COMPRESSION_DEDICATED (2), "
        "SNOW_WS_COMPRESSION_OFF (3)"
    )
    prog.expect(
        f"compression 7 -> {arg} SnowWsOptions.compression is 7: {choices}",
        f"compression_window_bits 16 -> {arg} compression_window_bits must be 8 to 15, got 16",
        f"compression_mem_level 10 -> {arg} compression_mem_level must be 1 to 9, got 10",
        f"compression_memory_budget -1 -> {arg} compression_memory_budget must be >= 0, got -1",
        "struct_size without the compression fields -> started",
        "stop -> 0",
    )
    got, frames = _deflate_echo(prog.port())
    assert got == answer
    # Replies from compression_min_size (64) bytes on are compressed when it was negotiated; shorter ones go out
    # plain (the C reply fast path), in the order the callback sent them.
    z = 4 if answer else 0
    assert frames == [(z, b"hello from C " * 20), (0, b"a"), (z, LONG_REPLY), (0, b"b"), (0, b"hi")]
    signal_when_caught(prog.proc, signal.SIGTERM)
    prog.expect("stop -> 0", "done")
    assert prog.finish() == 0


def test_snow_ws_compression_with_a_bad_value_fails_the_start_naming_it(run: Run) -> None:
    prog = run("compression", "env", env={"SNOW_WS_COMPRESSION": "fast"})
    prog.expect(
        "compression 7 -> -1 SNOW_WS_E_INVALID_ARGUMENT: SnowWsOptions.compression is 7: use 0 (default), "
        "SNOW_WS_COMPRESSION_SHARED (1), SNOW_WS_COMPRESSION_DEDICATED (2), SNOW_WS_COMPRESSION_OFF (3)"
    )
    for _ in range(3):
        prog.line()  # the other option checks, as above
    line = prog.line()
    bad_env = "SNOW_WS_COMPRESSION is 'fast': use one of shared, dedicated, off"
    assert line == f"struct_size without the compression fields -> {bad_env}", line
    prog.expect(
        "start -> SNOW_WS_E_INVALID_ARGUMENT: SNOW_WS_COMPRESSION is 'fast': use one of shared, dedicated, off", "done"
    )
    assert prog.finish() == 0


def test_snow_ws_serve_reads_snow_ws_compression(run: Run) -> None:
    port = free_port()
    prog = run("serve_host", str(port), env={"SNOW_WS_COMPRESSION": "dedicated"})
    prog.expect("init -> 0")
    wait_listening(port)
    got, frames = _deflate_echo(port, 3)  # an echo server: "three" is echoed
    assert got == DEDICATED_ANSWER and frames == [(4, b"hello from C " * 20), (0, b"three"), (0, b"hi")]
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=10, close_timeout=10) as ws:
        ws.send("stop")
        assert closed_with(ws) == (1001, "server shutting down")
    prog.expect("shutdown from the callback -> 1", "serve returned: SNOW_WS_OK: ", "done")
    assert prog.finish() == 0


def test_history_positions_and_bad_input(run: Run) -> None:
    prog = run("history")
    arg = "-1 SNOW_WS_E_INVALID_ARGUMENT:"
    prog.expect(
        f"configure size -1 -> {arg} history_size must be between 0 and 1000000, got -1",
        f"configure size 2000000 -> {arg} history_size must be between 0 and 1000000, got 2000000",
        f"configure ttl -5 -> {arg} history_ttl must be between 0 and 2592000 s, got -0.005",
        f"configure policy 7 -> {arg} policy must be 0, 1 or 2 (SnowWsRoomPolicy), got 7",
        "configure room not UTF-8 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 0",
        f"configure NULL room -> {arg} snow_room_configure: room is NULL",
        "configure -> 0",
        "position before any broadcast -> 0",
        "offset 0, epoch length 16",
        "publish 1 -> 0",
        "offset 1",
        "publish 2 (out NULL) -> 0",
        "publish 3 -> 0",
        "offset 3",
        "position -> 0",
        "offset 3, same epoch: yes",
        f"publish with a key (drop_oldest room) -> {arg} a key needs a room with policy latest_per_key; "
        "'c-history' has drop_oldest",
        "publish to a room without history -> 0",
        "offset 0",
        f"position of a room without history -> {arg} room 'c-plain' keeps no history "
        "(configure_room with history_size > 0)",
        f"position NULL out -> {arg} snow_room_position: out is NULL",
        f"join_from NULL conn -> {arg} snow_room_join_from: conn is NULL",
        f"join_from NULL since -> {arg} snow_room_join_from: since is NULL",
        "join_from unknown conn -> -1 SNOW_WS_E_BAD_HANDLE: connection handle N is unknown or its connection has ended",
        f"rtt NULL -> {arg} snow_ws_conn_rtt_us: conn is NULL",
        "rtt unknown conn -> -1 SNOW_WS_E_BAD_HANDLE: connection handle N is unknown or its connection has ended",
        f"room stats struct_size 0 -> {arg} snow_room_stats: out->struct_size is under 8",
        "room stats -> 0",
        "drops 0 replacements 0",
    )
    assert prog.finish() == 0
