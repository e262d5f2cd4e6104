"""runtime/client.py and client_connection.py against our own server: what a program sees through connect()."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import snow_rt_py
from snow_rt_py import Client, ClientOptions, ConnectError, Connection, Headers, Reject, connect
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError
from tests import support


def tls_files_with_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A certificate and key for 127.0.0.1 from a fresh trustme CA, and that CA's certificate (PEM files)."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_path = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_path))
    return cert, key, ca_path


class ClientLog(support.Recorder):
    """Records like the server's Recorder, but does not echo."""

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        self.record("message", conn.id, message)


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def factory(url: str, handler: snow_rt_py.Handler, **options: Any) -> Client:
        client = connect(url, handler, **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()
        client.wait_closed(15)


def test_echo_text_and_binary_with_response_headers(start_server: Any, clients: Any) -> None:
    server = start_server(subprotocols=["chat"])
    log = ClientLog()
    client = clients(server.url + "room?x=1", log, subprotocols=("other", "chat"))
    conn = client.wait_open(5)
    assert conn.open and conn.id > 0 and conn.subprotocol == "chat"
    (_, conn_id, path, headers) = log.wait_count("connect")[0]
    assert conn_id == conn.id and path == "/room?x=1"
    assert isinstance(headers, Headers) and headers["Sec-WebSocket-Protocol"] == "chat"
    conn.send("héllo")
    conn.send(b"\x00\x01" * 40000)  # 80 KB: header and payload queued apart on the server
    log.wait_count("message", 2)
    assert [m[2] for m in log.of("message")] == ["héllo", b"\x00\x01" * 40000]
    assert conn.statistics()["messages_out"] == 2 and conn.statistics()["messages_in"] == 2


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
def test_compression_both_modes(start_server: Any, clients: Any, mode: str) -> None:
    server = start_server(compression=mode)
    log = ClientLog()
    conn = clients(server.url, log, compression=mode).wait_open(5)
    assert conn._deflate is not None and conn._deflate.mode == mode
    big = "compressible " * 10000
    conn.send(big)
    conn.send(big)
    log.wait_count("message", 2)
    assert [m[2] for m in log.of("message")] == [big, big]
    assert conn.bytes_out < len(big)  # both went compressed


def test_close_handshake_client_side(start_server: Any, clients: Any) -> None:
    server_log = support.Recorder()
    server = start_server(server_log)
    log = ClientLog()
    client = clients(server.url, log)
    conn = client.wait_open(5)
    client.close(4001, "bye")
    client.wait_closed(5)
    assert log.wait_close() == (4001, "bye")
    assert server_log.wait_close() == (4001, "bye")
    assert client.closed and not conn.open
    with pytest.raises(ConnectionClosedError):
        conn.send("late")
    with pytest.raises(ConnectionClosedError):
        client.send("late")


def test_server_close_reaches_on_close(start_server: Any, clients: Any) -> None:
    server = start_server(support.CloseOnRequest(4100, "as requested"))
    log = ClientLog()
    client = clients(server.url, log)
    client.wait_open(5).send("close me")
    assert log.wait_close() == (4100, "as requested")
    client.wait_closed(5)


def test_on_connect_reject_closes_with_its_code(start_server: Any, clients: Any) -> None:
    server_log = support.Recorder()
    server = start_server(server_log)

    class No(ClientLog):
        def on_connect(self, conn: Connection, path: str, headers: Headers) -> Any:
            super().on_connect(conn, path, headers)
            return Reject("not today", code=4003)

    clients(server.url, No()).wait_closed(5)
    assert server_log.wait_close() == (4003, "not today")


def test_rooms_bridge_clients_and_server_connections(start_server: Any, clients: Any) -> None:
    class Joiner(support.Recorder):
        def on_connect(self, conn: Connection, path: str, headers: Headers) -> Any:
            snow_rt_py.join(conn, "bridge")
            return super().on_connect(conn, path, headers)

        def on_message(self, conn: Connection, message: str | bytes) -> None:
            self.record("message", conn.id, message)

    server = start_server(Joiner())
    a, b = Joiner(), Joiner()
    clients(server.url, a).wait_open(5)
    clients(server.url, b).wait_open(5)
    snow_rt_py.broadcast("bridge", "to all")  # two client connections, two server connections
    a.wait_count("message")
    b.wait_count("message")
    assert a.of("message")[0][2] == "to all" and b.of("message")[0][2] == "to all"


def test_refused_dns_and_http_status_are_answers(start_server: Any, clients: Any) -> None:
    class Gate(support.Recorder):
        def on_upgrade(self, path: str, headers: Headers) -> Reject | None:
            return Reject("go away", status=403)

    server = start_server(Gate())
    for url, reason, status in [
        (server.url, "HTTP 403 Forbidden instead of 101", 403),
        ("ws://127.0.0.1:1/", "connection refused (127.0.0.1:1)", None),
    ]:
        log = ClientLog()
        client = clients(url, log)
        with pytest.raises(ConnectError) as info:
            client.wait_open(5)
        assert (info.value.reason, info.value.status) == (reason, status)
        client.wait_closed(5)
        assert log.wait_close() == (1006, reason) and not log.of("connect")
        assert client.closed and client.connection is None
    log = ClientLog()
    client = clients("ws://no-such-host.invalid/", log)
    with pytest.raises(ConnectError, match=r"^DNS lookup of no-such-host.invalid failed: "):
        client.wait_open(15)


def test_open_timeout_against_a_silent_server(clients: Any) -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        log = ClientLog()
        client = clients(f"ws://127.0.0.1:{listener.getsockname()[1]}/", log, open_timeout=0.3)
        with pytest.raises(ConnectError, match=r"^opening handshake timed out after 0.3 s$"):
            client.wait_open(5)
        assert log.wait_close() == (1006, "opening handshake timed out after 0.3 s")


def test_reconnect_rejoins_rooms_and_fails_sends_meanwhile(start_server: Any, clients: Any) -> None:
    server = start_server(support.CloseOnRequest(1001, "restart"))

    class Member(ClientLog):
        def on_connect(self, conn: Connection, path: str, headers: Headers) -> Any:
            if not snow_rt_py.rooms_of(conn):
                snow_rt_py.join(conn, "lobby", "me")
            self.record("rooms", conn.id, snow_rt_py.rooms_of(conn))
            return super().on_connect(conn, path, headers)

    log = Member()
    client = clients(server.url, log, reconnect=True, reconnect_delay=0.05)
    first = client.wait_open(5)
    first.send("close me")
    log.wait_count("connect", 2)
    second = client.wait_open(5)
    assert second.id != first.id and second.open and not first.open
    assert log.of("close")[0][1:] == (first.id, 1001, "restart")
    assert [r[2] for r in log.of("rooms")] == [["lobby"], ["lobby"]]
    assert snow_rt_py.member_count("lobby") == 1
    with pytest.raises(ConnectionClosedError):
        first.send("old")


def test_wss_verified_with_ca_file_and_failures(start_server: Any, clients: Any, tmp_path: Path) -> None:
    cert, key, ca = tls_files_with_ca(tmp_path)
    server = start_server(tls_cert=str(cert), tls_key=str(key))
    log = ClientLog()
    conn = clients(server.url, log, ca_file=str(ca)).wait_open(5)
    conn.send("over tls")
    assert log.wait_count("message")[0][2] == "over tls"
    # Not trusted (the system store does not know the test CA): one clear reason.
    log = ClientLog()
    with pytest.raises(ConnectError, match=r"^TLS certificate verify failed: "):
        clients(server.url, log).wait_open(5)
    # verify=False: unsafe, but explicit.
    log = ClientLog()
    assert clients(server.url, log, verify=False).wait_open(5).open
    # The name does not match the certificate.
    log = ClientLog()
    with pytest.raises(ConnectError, match=r"^TLS certificate verify failed: .*[Hh]ostname mismatch"):
        clients(server.url, log, ca_file=str(ca), server_hostname="other.example").wait_open(5)


def test_invalid_arguments_raise_at_once() -> None:
    handler = ClientLog()
    with pytest.raises(InvalidArgumentError, match="the scheme must be ws:// or wss://"):
        connect("http://127.0.0.1/", handler)
    with pytest.raises(InvalidArgumentError, match="open_timeout must be a positive number"):
        connect("ws://127.0.0.1/", handler, open_timeout=0)
    with pytest.raises(InvalidArgumentError, match="headers: header Host is set by the handshake itself"):
        connect("ws://127.0.0.1/", handler, headers=(("Host", "x"),))
    with pytest.raises(InvalidArgumentError, match="compression must be 'off', 'shared' or 'dedicated'"):
        connect("ws://127.0.0.1/", handler, options=ClientOptions(compression="zip"))


def test_client_connection_never_takes_the_c_fast_path(start_server: Any, clients: Any) -> None:
    server = start_server()
    conn = clients(server.url, ClientLog()).wait_open(5)
    assert conn._fast is False  # take_simple takes masked frames: a server's input, never a client's
    done = threading.Event()
    conn.send("x")
    done.set()
    assert conn._fast is False
