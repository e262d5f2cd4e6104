"""An independent raw RFC 6455 client for the conformance suite.

It shares no code with the server under test: its own frame encoder and masking, its own HTTP and frame parsers.
It sends exactly the bytes it is told (including invalid frames), bounds every read and write by ``IO_TIMEOUT``,
and checks every frame it reads for what RFC 6455 requires of a server (§5.1 no masking, §5.2 no RSV bits
without an extension and no reserved opcodes, §5.5 control frames unfragmented and at most 125 bytes).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# -- RFC 6455 constants (§5.2 opcodes, §1.3 GUID) ---------------------------------------------------------------

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: The message size limit of the shared small-limit servers (the "9-like" limit cases use it; fast to exercise).
LIMIT = 64 * 1024
#: The limit servers are expected to apply when started without one.
DEFAULT_LIMIT = 16 * 1024 * 1024
#: Seconds any single read or write may block.
IO_TIMEOUT = 5.0


# -- frame encoding (independent of the server's encoder) --------------------------------------------------------


def mask_payload(key: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated (RFC 6455 §5.3); one big-integer XOR, fast at any size."""
    n = len(data)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def frame_header(opcode: int, length: int, *, fin: bool = True, rsv: int = 0, mask: bool = True) -> bytes:
    """The base header of a frame declaring ``length`` payload bytes (RFC 6455 §5.2), without masking key.

    ``rsv`` is the 3-bit RSV1..RSV3 field (4 = RSV1, 2 = RSV2, 1 = RSV3). The shortest length encoding is used.
    """
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    m = 0x80 if mask else 0
    if length <= 125:
        return bytes((b0, m | length))
    if length <= 0xFFFF:
        return bytes((b0, m | 126)) + length.to_bytes(2, "big")
    return bytes((b0, m | 127)) + length.to_bytes(8, "big")


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bool = True, key: bytes | None = None
) -> bytes:
    """A complete client frame, masked with a random (or the given) key unless ``mask=False``."""
    head = frame_header(opcode, len(payload), fin=fin, rsv=rsv, mask=mask)
    if not mask:
        return head + payload
    key = os.urandom(4) if key is None else key
    return head + key + mask_payload(key, payload)


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    """A Close frame body: 2-byte code then reason (RFC 6455 §5.5.1); ``None`` gives an empty body."""
    return b"" if code is None else code.to_bytes(2, "big") + reason


def chunk_pattern(data: bytes, sizes: Iterable[int] = (1, 2, 3, 5, 8, 13, 89, 997, 4093)) -> Iterator[bytes]:
    """Split ``data`` into pieces whose sizes cycle through ``sizes`` (so cuts fall inside headers too)."""
    sizes = list(sizes)
    i = pos = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        yield data[pos : pos + n]
        pos += n
        i += 1


@dataclass(slots=True)
class Frame:
    """A frame as read from the server."""

    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def code(self) -> int | None:
        """The status code of a Close frame, or None when its body is empty."""
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else None

    def __repr__(self) -> str:
        shown = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return f"Frame(op={self.opcode:#x} fin={self.fin} rsv={self.rsv} len={len(self.payload)} {shown!r})"


# -- the raw client ----------------------------------------------------------------------------------------------


class WsClient:
    """A blocking client over a plain socket: every read and write is bounded by ``IO_TIMEOUT``.

    ``WsClient(port)`` only connects; :meth:`open` performs a valid opening handshake.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.status_line = ""
        self.key = base64.b64encode(os.urandom(16)).decode()

    # HTTP (RFC 6455 §4.1, §4.2)

    def request(
        self,
        headers: dict[str, str | None] | None = None,
        *,
        method: str = "GET",
        path: str = "/",
        version: str = "HTTP/1.1",
        extra: list[tuple[str, str]] | None = None,
    ) -> bytes:
        """A valid upgrade request; ``headers`` override fields by name (``None`` removes one), ``extra`` appends."""
        fields: dict[str, str | None] = {
            "Host": f"{self.host}:{self.port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": self.key,
            "Sec-WebSocket-Version": "13",
        }
        fields.update(headers or {})
        lines = [f"{method} {path} {version}"]
        lines += [f"{k}: {v}" for k, v in fields.items() if v is not None]
        lines += [f"{k}: {v}" for k, v in extra or []]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def handshake(self, headers: dict[str, str | None] | None = None, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        """Send an upgrade request; return (status, headers with lower-case names, body)."""
        self.sock.sendall(self.request(headers, **kw))
        return self.read_response()

    def open(self) -> WsClient:
        """Complete a valid handshake and check the 101 response (RFC 6455 §4.2.2)."""
        status, headers, _ = self.handshake()
        assert status == 101, f"expected 101 Switching Protocols, got {status}"
        assert headers.get("sec-websocket-accept") == accept_for(self.key)
        return self

    def read_response(self) -> tuple[int, dict[str, str], bytes]:
        """Read one HTTP response head, and its body when Content-Length gives one."""
        while b"\r\n\r\n" not in self.buf:
            self._fill("an HTTP response")
        end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        status_line, *lines = head.split("\r\n")
        self.status_line = status_line
        proto, status, *_ = status_line.split(" ", 2)
        assert proto.startswith("HTTP/1."), f"bad status line {status_line!r}"
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill("an HTTP response body")
        body = bytes(self.buf[:length])
        del self.buf[:length]
        return int(status), headers, body

    # writing

    def send_raw(self, data: bytes, chunks: str = "one") -> None:
        """Write ``data`` in one write (``"one"``), in irregular chunks (``"chunks"``) or byte by byte (``"bytes"``)."""
        if chunks == "one":
            self.sock.sendall(data)
        elif chunks == "chunks":
            for piece in chunk_pattern(data):
                self.sock.sendall(piece)
        elif chunks == "bytes":
            view = memoryview(data)
            for i in range(len(view)):
                self.sock.sendall(view[i : i + 1])
        else:
            raise ValueError(chunks)

    def send(self, opcode: int, payload: bytes = b"", **kw: Any) -> None:
        """Encode and write one frame (see :func:`frame`)."""
        self.sock.sendall(frame(opcode, payload, **kw))

    def send_tolerant(self, data: bytes) -> None:
        """Write ``data``, ignoring the peer closing or resetting the connection midway (it may fail us early)."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(data)

    # reading

    def recv_frame(self) -> Frame:
        """Read one server frame and check what RFC 6455 requires of every server frame."""
        self._need(2, "a frame header")
        b0, b1 = self.buf[0], self.buf[1]
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._need(4, "a 16-bit length")
            n, pos = int.from_bytes(self.buf[2:4], "big"), 4
            assert n > 125, f"§5.2: the minimal length encoding MUST be used, got 16 bits for {n}"
        elif n == 127:
            self._need(10, "a 64-bit length")
            n, pos = int.from_bytes(self.buf[2:10], "big"), 10
            assert 0xFFFF < n < 1 << 63, f"§5.2: the minimal 64-bit length encoding MUST be used, got {n}"
        masked = bool(b1 & 0x80)
        if masked:
            pos += 4
        self._need(pos + n, f"a {n}-byte payload")
        payload = bytes(self.buf[pos : pos + n])
        if masked:
            payload = mask_payload(bytes(self.buf[pos - 4 : pos]), payload)
        del self.buf[: pos + n]
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload)
        assert not f.masked, f"§5.1: a server MUST NOT mask frames it sends: {f}"
        assert f.rsv == 0, f"§5.2: RSV bits set without a negotiated extension: {f}"
        assert f.opcode in (CONT, TEXT, BINARY, CLOSE, PING, PONG), f"§5.2: reserved opcode sent: {f}"
        if f.opcode >= 0x8:
            assert f.fin and len(f.payload) <= 125, f"§5.5: control frames are unfragmented, <= 125 bytes: {f}"
        return f

    def recv_message(self) -> tuple[int, bytes]:
        """Read one complete data message (the server may fragment it) as (opcode, payload); §5.4."""
        first = self.recv_frame()
        assert first.opcode in (TEXT, BINARY), f"expected a data message, got {first}"
        parts = [first.payload]
        f = first
        while not f.fin:
            f = self.recv_frame()
            assert f.opcode == CONT, f"§5.4: expected a continuation frame, got {f}"
            parts.append(f.payload)
        return first.opcode, b"".join(parts)

    def expect_message(self, opcode: int, payload: bytes) -> None:
        """Assert that the next message is exactly ``payload`` with the data type ``opcode`` (the echo)."""
        got_op, got = self.recv_message()
        assert got_op == opcode, f"expected opcode {opcode}, got {got_op}"
        assert len(got) == len(payload), f"expected {len(payload)} bytes, got {len(got)}"
        assert got == payload, "echoed payload differs"

    def expect_pong(self, payload: bytes) -> None:
        """Assert that the next frame is a Pong carrying ``payload`` (RFC 6455 §5.5.3)."""
        f = self.recv_frame()
        assert f.opcode == PONG, f"§5.5.2: expected a Pong, got {f}"
        assert f.payload == payload, f"§5.5.3: Pong must carry the Ping's payload, got {f}"

    def expect_interleaved(self, messages: list[tuple[int, bytes]], pongs: list[bytes]) -> None:
        """Assert the next frames are exactly ``messages`` (in order) and ``pongs`` (in order), interleaved in any way.

        RFC 6455 orders neither a Pong against the application's echo of a message nor the reverse, and §5.4 lets
        a control frame sit between the fragments of a message; only each kind's own order is checked.
        """
        messages, pongs = list(messages), list(pongs)
        parts: list[bytes] = []
        opcode = None
        while messages or pongs:
            f = self.recv_frame()
            if f.opcode == PONG:
                assert pongs, f"unexpected Pong {f}"
                assert f.payload == pongs.pop(0), f"§5.5.3: Pong payload differs / out of order: {f}"
                continue
            if opcode is None:
                assert f.opcode in (TEXT, BINARY), f"expected a data message or Pong, got {f}"
                opcode = f.opcode
            else:
                assert f.opcode == CONT, f"§5.4: expected a continuation frame, got {f}"
            parts.append(f.payload)
            if f.fin:
                assert messages, f"unexpected message {f}"
                want_op, want = messages.pop(0)
                got = b"".join(parts)
                assert (opcode, got) == (want_op, want), f"expected message {want_op}/{want[:40]!r}, got {f}"
                parts, opcode = [], None

    def expect_close(self, code: int | None) -> Frame:
        """Assert that the next frame is a Close with ``code`` (``None``: an empty body, or 1000)."""
        f = self.recv_frame()
        assert f.opcode == CLOSE, f"expected a Close frame (code {code}), got {f}"
        assert len(f.payload) != 1, f"§5.5.1: a Close body is empty or starts with a 2-byte code: {f}"
        if code is None:
            assert f.code in (None, 1000), f"§5.5.1: the reply to an empty Close is empty or 1000, got {f.code}"
        else:
            assert f.code == code, f"expected close code {code}, got {f.code} {f.payload[2:]!r}"
        f.payload[2:].decode("utf-8")  # §5.5.1: the reason is UTF-8
        return f

    def expect_eof(self) -> None:
        """Assert that the server closes TCP without sending anything more (RFC 6455 §7.1.1, §5.5.1)."""
        assert not self.buf, f"unexpected bytes before EOF: {bytes(self.buf[:60])!r}"
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return  # a reset after the Close frame is a close too
        except TimeoutError:
            raise AssertionError("the server did not close the TCP connection") from None
        assert data == b"", f"unexpected bytes before EOF: {data[:60]!r}"

    def expect_fail(self, code: int) -> None:
        """_Fail the WebSocket Connection_ (RFC 6455 §7.1.7): a Close with ``code``, then TCP closed, nothing else."""
        self.expect_close(code)
        self.expect_eof()

    def close_handshake(self, code: int = 1000) -> None:
        """Start the closing handshake and check the server finishes it: Close echoed, then EOF (§5.5.1, §7.1.1)."""
        self.send(CLOSE, close_payload(code))
        self.expect_close(code)
        self.expect_eof()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _fill(self, what: str) -> None:
        try:
            chunk = self.sock.recv(262144)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; have {bytes(self.buf[:60])!r}") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise AssertionError(f"connection closed while waiting for {what}; have {bytes(self.buf[:60])!r}")
        self.buf += chunk

    def _need(self, n: int, what: str) -> None:
        while len(self.buf) < n:
            self._fill(what)


def accept_for(key: str) -> str:
    """``Sec-WebSocket-Accept`` for ``key`` (RFC 6455 §4.2.2 item 5.4)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode()
