"""Servers that break the protocol (raw sockets on 127.0.0.1): each gives the client one exact error or close code."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from snow_rt_py import ConnectError, connect
from snow_rt_py.protocol.frames import encode_frame
from snow_rt_py.protocol.handshake import accept_key
from tests.runtime.test_client import ClientLog

Script = Callable[[socket.socket, str], None]  # (the accepted socket, the request's Sec-WebSocket-Key)


@pytest.fixture
def bad_server() -> Iterator[Callable[[Script], str]]:
    """``bad_server(script)``: a one-connection server that reads the request and runs ``script``; its URL."""
    threads: list[threading.Thread] = []
    listeners: list[socket.socket] = []

    def start(script: Script) -> str:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)
        listeners.append(listener)

        def serve() -> None:
            with listener.accept()[0] as sock:
                sock.settimeout(10)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                key = next(
                    line.split(b": ", 1)[1].decode()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                script(sock, key)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return f"ws://127.0.0.1:{listener.getsockname()[1]}/"

    yield start
    for thread in threads:
        thread.join(10)
    for listener in listeners:
        listener.close()


def ok(key: str, *extra: str) -> bytes:
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"]
    lines.append(f"Sec-WebSocket-Accept: {accept_key(key)}")
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


def wait_for_close(sock: socket.socket) -> bytes:
    """What the client sends until it closes TCP (bounded by the socket's timeout)."""
    got = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return got
        got += chunk


def failure(url: str, **options: object) -> tuple[ConnectError, tuple[int, str]]:
    log = ClientLog()
    client = connect(url, log, **options)  # type: ignore[arg-type]
    with pytest.raises(ConnectError) as info:
        client.wait_open(10)
    client.wait_closed(10)
    return info.value, log.wait_close()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            lambda key: ok(key).replace(accept_key(key).encode(), b"d3JvbmcgYWNjZXB0IGtleQ=="),
            "wrong Sec-WebSocket-Accept",
        ),
        (lambda key: ok(key, "Sec-WebSocket-Extensions: permessage-deflate"), "server chose extension"),
        (lambda key: ok(key, "Sec-WebSocket-Protocol: chat"), "server chose subprotocol 'chat', not offered"),
        (lambda key: b"\x16\x03\x01\x02\x00garbage\r\n\r\n", "invalid HTTP response: "),
        (lambda key: b"HTTP/1.1 101 Switching", "connection closed during the opening handshake"),
    ],
)
def test_handshake_failures(bad_server: Callable[[Script], str], answer: Callable[[str], bytes], reason: str) -> None:
    url = bad_server(lambda sock, key: sock.sendall(answer(key)))
    error, closed = failure(url)
    assert error.reason.startswith(reason), error.reason
    assert closed == (1006, error.reason)


def test_masked_frame_from_the_server_is_1002(bad_server: Callable[[Script], str]) -> None:
    seen: list[bytes] = []

    def script(sock: socket.socket, key: str) -> None:
        sock.sendall(ok(key) + encode_frame(1, b"masked", mask=b"abcd"))
        seen.append(wait_for_close(sock))

    log = ClientLog()
    client = connect(bad_server(script), log)
    client.wait_open(10)
    assert log.wait_close(10) == (1002, "server frame masked")
    client.wait_closed(15)
    assert seen[0][:2] == bytes((0x88, 0x80 | (2 + len("server frame masked"))))  # our masked Close, 1002


def test_oversized_frame_is_1009(bad_server: Callable[[Script], str]) -> None:
    def script(sock: socket.socket, key: str) -> None:
        sock.sendall(ok(key) + encode_frame(2, b"x" * 2000))
        wait_for_close(sock)

    log = ClientLog()
    client = connect(bad_server(script), log, max_message_size=1000)
    assert log.wait_close(10) == (1009, "message too big")
    client.wait_closed(15)


def test_client_closes_tcp_itself_after_close_timeout(bad_server: Callable[[Script], str]) -> None:
    """RFC 6455 §7.1.1: the server should close TCP first; one that never does is dropped after close_timeout."""

    def script(sock: socket.socket, key: str) -> None:
        sock.sendall(ok(key) + encode_frame(8, b"\x03\xe8"))  # its Close, then TCP left open
        wait_for_close(sock)

    log = ClientLog()
    client = connect(bad_server(script), log, close_timeout=0.3)
    assert log.wait_close(10) == (1000, "")
    client.wait_closed(10)
