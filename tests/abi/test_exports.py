"""snow_rt_py/abi (exports, callbacks, handles) driven through the library's C entry points from this process.

The C callbacks are Python functions made C-callable with ``ffi.callback``; a ``websockets`` client talks to the
server over 127.0.0.1. Because the library runs on this interpreter, the tests can also check that what C sees
is the Python API's state (same connection ids, same rooms), i.e. that the ABI is only a skin.
"""

from __future__ import annotations

import importlib
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect

import snow_rt_py
from snow_rt_py.abi import exports, handles
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.testing import RawClient
from tests.abi.conftest import LIBRARY
from tests.support import CallLog

pytestmark = pytest.mark.timeout(30)

CONNECT = "void *(*)(void *, const SnowString *, const SnowHeaders *)"
CONNECT_ENV = "void *(*)(void *, void *, const SnowString *, const SnowHeaders *)"
MESSAGE = "void *(*)(void *, const SnowString *)"
MESSAGE_ENV = "void *(*)(void *, void *, const SnowString *)"
CLOSE = "void *(*)(void *, int64_t, const SnowString *)"
BINARY = "void *(*)(void *, const uint8_t *, int64_t)"


def text(ffi: Any, s: Any) -> bytes:
    data: bytes = ffi.unpack(ffi.cast("char *", s + 1), s.len)
    return data


def handle(ffi: Any, conn: Any) -> int:
    return int(ffi.cast("uintptr_t", conn))


def last_error(ffi: Any, lib: Any) -> tuple[int, str]:
    return lib.snow_ws_last_error_code(), ffi.string(lib.snow_ws_last_error()).decode()


@pytest.fixture
def servers(abi: tuple[Any, Any]) -> Iterator[list[int]]:
    """Server ids to stop at teardown (then no connection handle may be left registered)."""
    _, lib = abi
    ids: list[int] = []
    yield ids
    for server in ids:
        lib.snow_ws_stop(server, 2000)
    assert handles.connection_count() == 0


def options(ffi: Any, **fields: Any) -> Any:
    opts = ffi.new("SnowWsOptions *")
    opts.struct_size = ffi.sizeof("SnowWsOptions")
    opts.ping_interval_ms = -1
    for name, value in fields.items():
        setattr(opts, name, value)
    return opts


@pytest.mark.parametrize(("workers", "thread_prefix"), [(0, "snow-loop"), (2, "snow-ws-worker-")])
def test_echo_and_callback_threads(abi: tuple[Any, Any], servers: list[int], workers: int, thread_prefix: str) -> None:
    ffi, lib = abi
    events = CallLog()  # what the C callbacks saw, in order

    @ffi.callback(CONNECT)
    def on_connect(conn: Any, path: Any, headers: Any) -> Any:
        value = lib.snow_ws_header_get(headers, b"user-agent")
        events.record("connect", handle(ffi, conn), text(ffi, path), value != ffi.NULL, threading.current_thread().name)
        return conn

    @ffi.callback(MESSAGE)
    def on_message(conn: Any, msg: Any) -> Any:
        events.record("message", text(ffi, msg), threading.current_thread().name)
        assert lib.snow_ws_send(conn, msg) == 0
        return ffi.NULL

    @ffi.callback(CLOSE)
    def on_close(conn: Any, code: int, reason: Any) -> Any:
        events.record("close", handle(ffi, conn), code, text(ffi, reason))
        return ffi.NULL

    server = lib.snow_ws_start(
        options(ffi, workers=workers), on_connect, ffi.NULL, on_message, ffi.NULL, on_close, ffi.NULL
    )
    assert server > 0, last_error(ffi, lib)
    servers.append(server)
    port = lib.snow_ws_server_port(server)
    with connect(f"ws://127.0.0.1:{port}/p?q=1", open_timeout=10) as ws:
        ws.send("hé")
        assert ws.recv(timeout=10) == "hé"
        [(_, conn_id, path, has_ua, connect_thread)] = events.wait_count("connect", timeout=10)
        conn = handles.connection(conn_id)  # the handle is the Python API's Connection.id
        assert conn.path == "/p?q=1" and path == b"/p?q=1" and has_ua
        assert conn.remote_address is not None and conn.remote_address[1] == ws.local_address[1]
        ws.close(4000, "bye")
    [(_, message, message_thread)] = events.wait_count("message", timeout=10)
    assert message == "hé".encode()
    assert events.wait_count("close", timeout=10) == [("close", conn_id, 4000, b"bye")]
    assert connect_thread.startswith(thread_prefix) and message_thread.startswith(thread_prefix)
    assert handles.connection_count() == 0


def test_env_pointers_are_passed_first(abi: tuple[Any, Any], servers: list[int]) -> None:
    ffi, lib = abi
    env = ffi.new("int *", 42)
    seen: list[int] = []

    @ffi.callback(CONNECT_ENV)
    def on_connect(e: Any, conn: Any, path: Any, headers: Any) -> Any:
        seen.append(ffi.cast("int *", e)[0])
        return conn

    @ffi.callback(MESSAGE_ENV)
    def on_message(e: Any, conn: Any, msg: Any) -> Any:
        seen.append(ffi.cast("int *", e)[0])
        lib.snow_ws_send(conn, msg)
        return ffi.NULL

    server = lib.snow_ws_start(options(ffi), on_connect, env, on_message, env, ffi.NULL, ffi.NULL)
    servers.append(server)
    with connect(f"ws://127.0.0.1:{lib.snow_ws_server_port(server)}/", open_timeout=10) as ws:
        ws.send("x")
        assert ws.recv(timeout=10) == "x"
    assert seen == [42, 42]


def test_rooms_are_the_python_api_rooms(abi: tuple[Any, Any], servers: list[int]) -> None:
    ffi, lib = abi
    joined = threading.Event()
    room = ffi.new("char[]", b"\x03\x00\x00\x00\x00\x00\x00\x00abi")  # a SnowString: len 3, then "abi"
    room_s = ffi.cast("SnowString *", room)

    @ffi.callback(CONNECT)
    def on_connect(conn: Any, path: Any, headers: Any) -> Any:
        assert lib.snow_room_join(conn, room_s) == 0
        joined.set()
        return conn

    server = lib.snow_ws_start(options(ffi), on_connect, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL)
    servers.append(server)
    with connect(f"ws://127.0.0.1:{lib.snow_ws_server_port(server)}/", open_timeout=10) as ws:
        assert joined.wait(10)
        assert snow_rt_py.member_count("abi") == 1 == lib.snow_room_member_count(room_s)
        [member] = snow_rt_py.default_runtime().rooms.members("abi")
        assert snow_rt_py.rooms_of(member) == ["abi"]
        assert snow_rt_py.broadcast("abi", "from python") == 0  # a C-accepted connection, reached from Python
        assert ws.recv(timeout=10) == "from python"
    assert snow_rt_py.member_count("abi") == 0


def test_binary_goes_to_on_binary_when_set(abi: tuple[Any, Any], servers: list[int]) -> None:
    ffi, lib = abi
    got: list[bytes] = []

    @ffi.callback(BINARY)
    def on_binary(conn: Any, data: Any, length: int) -> Any:
        got.append(ffi.unpack(ffi.cast("char *", data), length))
        lib.snow_ws_send_binary(conn, data, length)
        return ffi.NULL

    server = lib.snow_ws_start(options(ffi, on_binary_fn=on_binary), *([ffi.NULL] * 6))
    servers.append(server)
    with connect(f"ws://127.0.0.1:{lib.snow_ws_server_port(server)}/", open_timeout=10) as ws:
        ws.send(b"\xff\x00")
        assert ws.recv(timeout=10) == b"\xff\x00"
        ws.send("text goes nowhere: no on_message")
        ws.ping().wait(10)
    assert got == [b"\xff\x00"]


def test_send_refuses_invalid_utf8_and_stale_handles(abi: tuple[Any, Any]) -> None:
    ffi, lib = abi
    bad = ffi.cast("SnowString *", ffi.new("char[]", b"\x01\x00\x00\x00\x00\x00\x00\x00\xff"))
    assert lib.snow_ws_send(ffi.cast("void *", 10**9), bad) == -1
    assert last_error(ffi, lib) == (
        lib.SNOW_WS_E_BAD_HANDLE,
        "connection handle 1000000000 is unknown or its connection has ended",
    )
    assert lib.snow_ws_header_get(ffi.cast("SnowHeaders *", 7), b"Host") == ffi.NULL
    assert last_error(ffi, lib)[0] == lib.SNOW_WS_E_BAD_HANDLE


def test_shutdown_is_kept_until_a_wait_consumes_it(abi: tuple[Any, Any]) -> None:
    _, lib = abi
    assert lib.snow_ws_shutdown() == 0  # nobody blocked: kept
    assert lib.snow_ws_wait_shutdown() == 0  # consumed at once
    results: list[int] = []
    waiter = threading.Thread(target=lambda: results.append(lib.snow_ws_wait_shutdown()))
    waiter.start()
    lib.snow_ws_shutdown()  # wakes it, or is kept and consumed by it: either way it returns
    waiter.join(10)
    assert results == [0]


def embedded() -> tuple[Any, Any]:
    module = importlib.import_module("_snow_ws_abi")  # the library's own cffi module, set up by its init code
    return module.ffi, module.lib


def test_options_zero_means_default_and_struct_size_cuts(abi: tuple[Any, Any]) -> None:
    ffi, _ = embedded()
    fields = exports._option_fields(ffi)
    opts = ffi.new("SnowWsOptions *")
    opts.struct_size = ffi.sizeof("SnowWsOptions")
    got, binary, _ = exports._options(ffi, opts, fields)
    assert got == ServerOptions() and binary == (ffi.NULL, ffi.NULL)
    assert exports._options(ffi, ffi.NULL, fields)[0] == ServerOptions()

    host = ffi.new("char[]", b"::1")
    opts.host, opts.port, opts.ping_interval_ms, opts.pong_timeout_ms = host, 9000, 1500, 250
    opts.max_message_size, opts.workers = 1024, 3
    got, _, _ = exports._options(ffi, opts, fields)
    assert got == ServerOptions(
        host="::1", port=9000, ping_interval=1.5, pong_timeout=0.25, max_message_size=1024, workers=3
    )
    opts.ping_interval_ms = -1
    assert exports._options(ffi, opts, fields)[0].ping_interval is None
    opts.struct_size = 24  # struct_size, host, port: the rest counts as 0
    assert exports._options(ffi, opts, fields)[0] == ServerOptions(host="::1", port=9000)


def test_heartbeat_timeout_reaches_on_close_within_a_second(abi: tuple[Any, Any], servers: list[int]) -> None:
    # A client that answers no ping: 1011 is sent and TCP closed at once (RFC 6455 §7.1.7), so C's on_close
    # runs ~0.4 s after the connect, not after close_timeout (5 s) more.
    ffi, lib = abi
    events = CallLog()

    @ffi.callback(CLOSE)
    def on_close(conn: Any, code: int, reason: Any) -> Any:
        events.record("close", code, text(ffi, reason), time.monotonic())
        return ffi.NULL

    opts = options(ffi)
    opts.ping_interval_ms = 200
    opts.pong_timeout_ms = 200
    server = lib.snow_ws_start(opts, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL, on_close, ffi.NULL)
    assert server > 0, last_error(ffi, lib)
    servers.append(server)
    with RawClient.connect(lib.snow_ws_server_port(server), timeout=5) as client:
        connected = time.monotonic()
        [(_, code, reason, closed)] = events.wait_count("close", timeout=10)
        assert client.expect_close() == (1011, "keepalive ping timeout")
    assert (code, reason) == (1011, b"keepalive ping timeout")
    assert closed - connected < 1.0, closed - connected


# -- Mesh's names ------------------------------------------------------------------------------------------------

MESH_NAMES = {
    "mesh_ws_serve",
    "mesh_ws_serve_tls",
    "mesh_ws_send",
    "mesh_ws_send_binary",
    "mesh_ws_join",
    "mesh_ws_leave",
    "mesh_ws_broadcast",
    "mesh_ws_broadcast_except",
}
"""The WebSocket symbols a Mesh-compiled program links against (mesh-rt's names of snow-rt's eight)."""


def test_every_mesh_name_is_exported_and_declared_like_its_snow_name(abi: tuple[Any, Any]) -> None:
    ffi, lib = abi
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(LIBRARY)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    exported = {line.split()[-1] for line in out.splitlines() if line.split()[1] == "T"}
    assert {name for name in exported if name.startswith("mesh_")} == MESH_NAMES
    assert ffi.typeof("MeshString") is ffi.typeof("SnowString")
    for name in MESH_NAMES:
        mesh, snow = ffi.typeof(getattr(lib, name)), ffi.typeof(getattr(lib, "snow" + name[len("mesh") :]))
        assert mesh.args == snow.args, name
        # the one difference: mesh_ws_serve does not block, and returns its server's id
        assert mesh.result == (ffi.typeof("int64_t") if name == "mesh_ws_serve" else snow.result), name


def test_mesh_ws_serve_returns_a_server_of_the_shared_runtime(abi: tuple[Any, Any], servers: list[int]) -> None:
    ffi, lib = abi
    events = CallLog()

    @ffi.callback(MESSAGE)
    def on_message(conn: Any, msg: Any) -> Any:
        events.record("message", handle(ffi, conn), text(ffi, msg), threading.current_thread().name)
        assert lib.mesh_ws_send(conn, msg) == 0
        return ffi.NULL

    server = lib.mesh_ws_serve(ffi.NULL, ffi.NULL, on_message, ffi.NULL, ffi.NULL, ffi.NULL, 0)
    assert server > 0, last_error(ffi, lib)  # it returned: the server is accepting on the loop thread
    servers.append(server)
    assert handles.server(server).port == lib.snow_ws_server_port(server) > 0
    with connect(f"ws://127.0.0.1:{lib.snow_ws_server_port(server)}/", open_timeout=10) as ws:
        ws.send("mesh")
        assert ws.recv(timeout=10) == "mesh"
        [(_, conn_id, message, thread)] = events.wait_count("message", timeout=10)
        assert handles.connection(conn_id).path == "/"  # the handle is the Python API's Connection.id
    assert (message, thread) == (b"mesh", "snow-loop")
