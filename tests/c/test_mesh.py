"""Mesh's names (tests/c/mesh_*.c): the mesh_ws_* entry points a Mesh-compiled program calls, linked and run as C
programs and driven by a `websockets` client over 127.0.0.1, their whole stdout compared line for line.

mesh_ws_serve differs from snow_ws_serve in one way, mesh-rt's: it binds, returns the server's id and lets the
server accept while the program goes on; mesh_ws_serve_tls blocks as snow_ws_serve_tls does.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.c.harness import Program, free_port, wait_listening
from tests.c.test_programs import ASAN, STALE, client, closed_with, nothing_pending, recv_all
from tests.c.test_programs import tls_files as tls_files  # the module's fixture: a trustme certificate and context

pytestmark = pytest.mark.timeout(60)

Run = Callable[..., Program]


def test_mesh_ws_serve_returns_at_once_and_the_server_accepts_meanwhile(run: Run) -> None:
    port = free_port()
    prog = run("mesh_serve", str(port))
    # All of this is printed after mesh_ws_serve returned, before any client connected: it did not block.
    prog.expect(
        "mesh_ws_serve returned a server id",
        "its port is the given one: yes",
        "mesh_ws_serve on the same port -> -1 SNOW_WS_E_SERVER_START: "
        "cannot listen on 127.0.0.1:PORT: address already in use",
        "mesh_ws_serve on port -1 -> -1 SNOW_WS_E_INVALID_ARGUMENT: port must be between 0 and 65535, got -1",
        "shutdown with nobody blocked -> 0",
        "port 0 binds an ephemeral port: yes",
        "wait_shutdown: mesh_ws_serve left the request pending -> 0",
        "stop the ephemeral server -> 0",
        "main goes on: waiting for snow_ws_shutdown",
    )
    with client(port, "/mesh") as ws:  # no wait_listening: the port was bound before mesh_ws_serve returned
        prog.expect("connect /mesh")
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        prog.expect("message 'hello'", "mesh_ws_send -> 0")
        ws.send("serve here")
        prog.expect(
            "message 'serve here'",
            "mesh_ws_serve from a callback -> -1 SNOW_WS_E_INTERNAL: this call waits for the event loop and cannot "
            "be made from the loop thread (a callback with workers=0); call it from another thread or run the "
            "server with workers >= 1",
        )
        # snow_ws_shutdown() wakes main's snow_ws_wait_shutdown() but does not stop a mesh_ws_serve server.
        ws.send("shutdown")
        prog.expect(
            "message 'shutdown'",
            "wait_shutdown -> 0",
            "the callback's snow_ws_shutdown woke 1; the server still serves",
        )
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"
        prog.expect("message 'still here'", "mesh_ws_send -> 0")
        ws.send("last")
        assert ws.recv(timeout=10) == "last"
        assert closed_with(ws) == (1001, "server shutting down")  # snow_ws_stop(server) from main
    prog.expect(
        "message 'last'",
        "mesh_ws_send -> 0",
        "on_close 1001 'server shutting down'",
        "stop -> 0",
        "stop again -> -1 SNOW_WS_E_BAD_SERVER: server 1 is unknown or stopped",
        "done",
    )
    assert prog.finish() == 0


@pytest.mark.parametrize("asan", ASAN)
def test_mesh_echo_with_mesh_ws_send_and_mesh_ws_send_binary(run: Run, asan: bool) -> None:
    prog = run("mesh_echo", asan=asan)
    port = prog.port()
    small, big = b"\x00\xff\x80abc", bytes(range(256)) * 300  # not UTF-8; over the 64 KiB reply fast path
    with client(port) as ws:
        for text in ["T héllo ✓", "T" + "x" * 70000]:
            ws.send(text)
            assert ws.recv(timeout=10) == text
        for data in (small, big):
            ws.send(data)
            assert ws.recv(timeout=10) == data
        ws.send("errors")
        assert ws.recv(timeout=10) == b""  # mesh_ws_send_binary(conn, NULL, 0): one empty binary frame
        nothing_pending(ws)
        ws.close(1000, "bye")
    prog.expect(
        "text 12 bytes",
        "mesh_ws_send -> 0",
        "text 70001 bytes",
        "mesh_ws_send -> 0",
        "binary 6 bytes",
        "mesh_ws_send_binary -> 0",
        "binary 76800 bytes",
        "mesh_ws_send_binary -> 0",
        "mesh_ws_send NULL conn -> -1 SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_send: conn is NULL",
        "mesh_ws_send NULL msg -> -1 SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_send: msg is NULL",
        "mesh_ws_send invalid UTF-8 -> -1 SNOW_WS_E_INVALID_UTF8: not valid UTF-8: invalid start byte at byte 0",
        "mesh_ws_send_binary NULL conn -> -1 SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_send_binary: conn is NULL",
        "mesh_ws_send_binary NULL data -> -1 SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_send_binary: data is NULL",
        "mesh_ws_send_binary negative len -> -1 SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_send_binary: len is negative",
        "mesh_ws_send_binary NULL data, len 0 -> 0",
        "on_close 1000 'bye'",
        f"mesh_ws_send to the closed connection -> {STALE}",
        f"mesh_ws_send_binary to the closed connection -> {STALE}",
    )
    # The process may end with a mesh_ws_serve server running: its connections drop without a close frame.
    with client(port) as ws:
        ws.send("exit")
        prog.expect("exit with the server running")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.protocol.close_rcvd is None
    assert prog.finish() == 0


@pytest.mark.parametrize("asan", ASAN)
def test_mesh_rooms_join_leave_broadcast_and_except(run: Run, asan: bool) -> None:
    prog = run("mesh_rooms", asan=asan)
    port = prog.port()
    with contextlib.ExitStack() as stack:
        c = {name: stack.enter_context(client(port, f"/{name}")) for name in "ABC"}
        prog.expect("A joins r -> 0", "B joins r -> 0", "C joins r -> 0")
        # (sender, command, who receives, what): broadcast, broadcast_except the sender, broadcast_except NULL
        for sender, command, receivers, text in [
            ("A", "all hi", "ABC", "hi"),
            ("B", "others from-b", "AC", "from-b"),
            ("C", "everyone e", "ABC", "e"),
        ]:
            c[sender].send(command)
            recv_all(c, receivers, text)
            prog.expect(f"{command} -> 0")
        c["C"].send("count")
        prog.expect("members of r -> 3")  # snow_room_member_count: the rooms are the Snow names' rooms
        c["C"].send("leave")
        prog.expect("leave -> 0", "leave again (no-op) -> 0")
        c["C"].send("join news")
        prog.expect("join news -> 0", "join again (no-op) -> 0")
        c["A"].send("all after-leave")
        recv_all(c, "AB", "after-leave")
        prog.expect("all after-leave -> 0")
        nothing_pending(c["C"])  # C left r: the broadcast did not reach it
        c["A"].send("count")
        prog.expect("members of r -> 2")
        c["A"].send("errors")
        prog.expect(
            "broadcast to an empty room -> 0",
            "join NULL conn -> -1 SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_join: conn is NULL",
            "leave NULL room -> -1 SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_leave: room is NULL",
            "broadcast NULL room -> -1 SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_broadcast: room is NULL",
            "broadcast_except NULL msg -> -1 SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_broadcast_except: msg is NULL",
            "broadcast_except a made-up handle -> -1 SNOW_WS_E_BAD_HANDLE: "
            "connection handle N is unknown or its connection has ended",
        )
        for name in "ABC":
            nothing_pending(c[name])  # the failed broadcasts sent nothing
            c[name].close()
            prog.expect("on_close 1000 ''")
    prog.expect("members of r after every close -> 0", "stop -> 0", "done")
    assert prog.finish() == 0


def test_mesh_ws_serve_tls_blocks_and_serves_wss(run: Run, tls_files: tuple[Path, Path, ssl.SSLContext]) -> None:
    cert, key, ctx = tls_files
    port = free_port()
    prog = run("mesh_tls", str(port), str(cert), str(key))
    prog.expect(
        "missing cert: SNOW_WS_E_SERVER_START: TLS certificate file '/nonexistent/mesh-cert.pem' does not exist",
        "NULL cert: SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_serve_tls: cert_path is NULL",
        "NULL key: SNOW_WS_E_INVALID_ARGUMENT: mesh_ws_serve_tls: key_path is NULL",
        "port in use: SNOW_WS_E_SERVER_START: cannot listen on 127.0.0.1:PORT: address already in use",
        "stop the busy server -> 0",
        "serving wss",
    )
    wait_listening(port)  # mesh_ws_serve_tls announces nothing once it listens (it does not return)
    with connect(f"wss://127.0.0.1:{port}/", ssl=ctx, open_timeout=10, close_timeout=10) as ws:
        ws.send("secret")
        assert ws.recv(timeout=10) == "secret"
        # Still blocked: nothing printed but what the callbacks printed.
        prog.expect("message 'secret'", "mesh_ws_send -> 0")
        ws.send("stop")
        assert closed_with(ws) == (1001, "server shutting down")
    prog.expect(
        "message 'stop'", "shutdown woke 1", "on_close 1001 'server shutting down'", "mesh_ws_serve_tls returned"
    )
    assert prog.finish() == 0


@pytest.mark.parametrize("asan", ASAN)
def test_mesh_names_fail_with_the_reason_when_the_runtime_cannot_start(run: Run, asan: bool) -> None:
    prog = run("mesh_init_fail", asan=asan, env={"SNOW_RT_PY_ABI_FAIL_IMPORT": "1"})
    reason = (
        "SNOW_WS_E_INIT: the embedded runtime could not start: ImportError: "
        "simulated failure to import snow_rt_py (test hook SNOW_RT_PY_ABI_FAIL_IMPORT=1)"
    )
    prog.expect(
        f"mesh_ws_serve -> -1 {reason}",
        f"mesh_ws_serve_tls returned: {reason}",
        *[
            f"mesh_ws_{name} -> -1 {reason}"
            for name in ["send", "send_binary", "join", "leave", "broadcast", "broadcast_except"]
        ],
        "done",
    )
    assert prog.finish() == 0
    assert "CALLBACK" not in "".join(prog.lines)
