"""A blocking raw WebSocket client for tests, conformance checks and examples.

It speaks to a server over a plain socket with a timeout on every read, sends exactly the bytes it is told
(including invalid frames), and parses server frames itself -- independently of the server's parser -- so tests
can assert what is on the wire.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import ssl
import struct
from dataclasses import dataclass

from snow_rt_py.protocol.frames import encode_frame


@dataclass(slots=True)
class WireFrame:
    """A frame as read from the server."""

    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    def close_code(self) -> int | None:
        """The code of a Close frame (None if it has no payload)."""
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def close_reason(self) -> str:
        """The reason of a Close frame."""
        return self.payload[2:].decode("utf-8")


def parse_frame(data: bytes | bytearray, pos: int = 0) -> tuple[WireFrame, int] | None:
    """The frame that starts at ``data[pos]`` (unmasked if it was masked) and where the next one starts, or None
    while ``data`` holds only part of it."""
    if len(data) - pos < 2:
        return None
    b0, b1 = data[pos], data[pos + 1]
    masked = bool(b1 & 0x80)
    n = b1 & 0x7F
    offset = pos + 2
    if n == 126:
        if len(data) < offset + 2:
            return None
        n = struct.unpack_from("!H", data, offset)[0]
        offset += 2
    elif n == 127:
        if len(data) < offset + 8:
            return None
        n = struct.unpack_from("!Q", data, offset)[0]
        offset += 8
    key = b""
    if masked:
        key = bytes(data[offset : offset + 4])
        offset += 4
    if len(data) < offset + n:
        return None
    payload = bytes(data[offset : offset + n])
    if masked:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return WireFrame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload), offset + n


class RawClient:
    """A test client. ``RawClient.connect(port)`` performs a valid handshake; ``RawClient(port)`` only connects.

    Args:
        port: server port on ``host``.
        host: server address (tests use 127.0.0.1 only).
        timeout: seconds any single read may wait.
        tls: an SSL context to wrap the socket with (wss://).
        rcvbuf: SO_RCVBUF to set before connecting (simulates a client that reads slowly).
        source: the local address to connect from (e.g. ``"127.0.0.2"``: another client IP on Linux's loopback).
    """

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
        rcvbuf: int | None = None,
        source: str | None = None,
    ) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        if source is not None:
            sock.bind((source, 0))
        if rcvbuf is not None:  # before connect, so the advertised window stays small (a slow reader)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.connect((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.buf = bytearray()
        self.host = host
        self.port = port

    @classmethod
    def connect(
        cls,
        port: int,
        path: str = "/",
        headers: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> RawClient:
        """Connect and complete a handshake; raises AssertionError unless the answer is 101."""
        client = cls(port, host, timeout, tls)
        status, _, _ = client.handshake(path, headers)
        if status != 101:
            raise AssertionError(f"expected 101, got {status}")
        return client

    # -- HTTP ---------------------------------------------------------------------------------------------

    def request_bytes(self, path: str = "/", headers: dict[str, str] | None = None) -> bytes:
        """A valid upgrade request with ``headers`` overriding/adding fields (a value of "" removes it)."""
        fields = {
            "Host": f"{self.host}:{self.port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
        }
        for k, v in (headers or {}).items():
            fields[k] = v
        lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items() if v != ""]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def handshake(self, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Send an upgrade request, return ``(status, headers with lower-case names, body)``."""
        self.sock.sendall(self.request_bytes(path, headers))
        return self.read_response()

    def read_response(self) -> tuple[int, dict[str, str], bytes]:
        """Read one HTTP response head (and its body if Content-Length says so)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf[:length] = bytes(self.buf[:length]), b""
        return status, headers, body

    # -- frames --------------------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are."""
        self.sock.sendall(data)

    def send_frame(
        self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bool = True
    ) -> None:
        """Send one frame, masked with a random key unless ``mask=False``."""
        self.sock.sendall(encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=os.urandom(4) if mask else None))

    def send_text(self, text: str) -> None:
        """Send a masked text frame."""
        self.send_frame(1, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        """Send a masked binary frame."""
        self.send_frame(2, data)

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        """Send a masked Close frame (``code=None``: empty payload)."""
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode("utf-8")
        self.send_frame(8, payload)

    def recv_frame(self) -> WireFrame:
        """Read one frame (raises ``socket.timeout`` or ``ConnectionError`` if none comes)."""
        while (parsed := parse_frame(self.buf)) is None:
            self._fill()
        frame, end = parsed
        del self.buf[:end]
        return frame

    def recv_message(self) -> str | bytes:
        """Read frames until a complete data message (skipping pings/pongs); text comes back as str."""
        parts: list[bytes] = []
        opcode = 0
        while True:
            frame = self.recv_frame()
            if frame.opcode in (9, 10):
                continue
            if frame.opcode == 8:
                raise AssertionError(f"expected a message, got Close {frame.close_code()} {frame.payload[2:]!r}")
            if frame.opcode != 0:
                opcode = frame.opcode
            parts.append(frame.payload)
            if frame.fin:
                data = b"".join(parts)
                return data.decode("utf-8") if opcode == 1 else data

    def expect_close(self) -> tuple[int | None, str]:
        """Read frames until a Close arrives (skipping others); return its code and reason."""
        while True:
            frame = self.recv_frame()
            if frame.opcode == 8:
                return frame.close_code(), frame.close_reason()

    def wait_eof(self) -> bool:
        """Read (and discard) until the server closes TCP; True if it did before the timeout."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except ConnectionError:  # a reset is a close too
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        """Close the socket."""
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            self._fill()
