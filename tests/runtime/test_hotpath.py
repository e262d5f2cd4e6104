"""The connection's C part (runtime/_connection_core.c) and the Python methods it stands in for give the same results.

Two connections of two servers get the same client bytes, cut into the same chunks: one with the C part
(``conn._fast`` True, the default), one with every method on the Python path (``_fast`` False, what
``SNOW_RT_PY_NO_SPEEDUPS=1`` runs). The handler's callbacks (and their arguments), every write on the transport,
the phase and the message counters must be identical -- for any mix of simple frames, fragments, control frames,
invalid frames and invalid UTF-8, any chunking, and a handler that replies, closes or crashes.

With permessage-deflate the C path inflates whole compressed frames and compresses replies itself (where no
context is kept in that direction). The writes are compared byte for byte there too: the C path's compressor is
reset to an empty stream (or ended by a full flush) before every message, and the Python pool's compressor has just
been ended by a full flush, which in zlib leaves nothing that shapes the next output (the hash chains are cleared
and the window position restarts at 0) -- so both give the same bytes for the same message.
"""

from __future__ import annotations

import asyncio
import os
import random
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from snow_rt_py.protocol.headers import Headers
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.connection_base import C_CONNECTION as C_HOT_PATH
from snow_rt_py.runtime.errors import InvalidUtf8Error
from snow_rt_py.runtime.handler import Handler
from snow_rt_py.runtime.loop import new_event_loop
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.runtime import Runtime
from snow_rt_py.runtime.server import Server
from snow_rt_py.testing import parse_frame

pytestmark = pytest.mark.skipif(not C_HOT_PATH, reason="the C hot path is not built (or SNOW_RT_PY_NO_SPEEDUPS=1)")

HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def offering(offer: bytes) -> bytes:
    """The handshake offering permessage-deflate (RFC 7692) with ``offer``: sends of 128 bytes or more are
    compressed, shorter ones stay plain, and the client may send compressed frames (RSV1)."""
    return HANDSHAKE.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: " + offer + b"\r\n\r\n")


HANDSHAKE_DEFLATE = offering(b"permessage-deflate")
# With mode "shared" or "dedicated" these cover each direction with and without a context kept (the C path
# compresses / inflates only without one), the Z_RLE compressor of an agreed 8-bit window, other windows, and a
# decompressor window the C path leaves to Python (client_max_window_bits under 15).
HANDSHAKES = [
    HANDSHAKE,
    HANDSHAKE_DEFLATE,
    offering(b"permessage-deflate; client_no_context_takeover"),
    offering(b"permessage-deflate; server_no_context_takeover"),
    offering(b"permessage-deflate; server_max_window_bits=8; client_max_window_bits"),
    offering(b"permessage-deflate; server_max_window_bits=11; client_max_window_bits=10"),
]


class Transport:
    """Records every write, in order; reports a write buffer size the test sets."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.kinds: list[str] = []  # "write" or "writelines", one per item of writes
        self.buffered = 0
        self.reading = True
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.kinds.append("write")

    def writelines(self, items: list[bytes]) -> None:
        self.writes.append(b"".join(items))
        self.kinds.append("writelines")

    def is_closing(self) -> bool:
        return self.closed

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True


class Scripted(Handler):
    """Records its callbacks; a text message is also a command: ``echo``, ``twice``, ``bin``, ``utf8``, ``close``,
    ``crash``."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.by_conn: dict[int, list[tuple[Any, ...]]] = {}  # the same calls, per connection id

    def _record(self, conn: Connection, *call: Any) -> None:
        self.calls.append(call)
        self.by_conn.setdefault(conn.id, []).append(call)  # (atomic steps: handlers may run on several workers)

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool:
        self._record(conn, "connect", path)
        return True

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        self._record(conn, "message", type(message).__name__, message)
        if isinstance(message, bytes):
            conn.send(message)
        elif message.startswith("twice"):
            conn.send(message)
            conn.send_text(message.upper())
        elif message.startswith("bin"):
            conn.send_binary(message.encode())
        elif message.startswith("utf8"):  # text as its UTF-8 bytes (the C ABI's send); then bytes that are not
            conn.send_utf8(message.encode())
            try:
                conn.send_utf8(message.encode()[:-1] + b"\xff")
            except InvalidUtf8Error as exc:
                conn.send(str(exc))
        elif message.startswith("close"):
            conn.close(4000, "asked")
        elif message.startswith("crash"):
            raise ValueError("handler crash (expected by the test)")
        else:
            conn.send(message)

    def on_close(self, conn: Connection, code: int, reason: str) -> None:
        self._record(conn, "close", code, reason)


def mask(payload: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def deflated(payload: bytes) -> bytes:
    """``payload`` compressed as one permessage-deflate message (RFC 7692 §7.2.1: the final 4 octets removed)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def finished(payload: bytes) -> bytes:
    """``payload`` as a whole deflate stream ended by a final block (BFINAL), as some clients send it."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(payload) + c.flush(zlib.Z_FINISH)


LIMIT = 4096  # the test server's max_message_size
NOISE = random.Random(7).randbytes(LIMIT + 200)  # incompressible: its compressed frame is over LIMIT on the wire


def frame(
    b0: int, payload: bytes, key: bytes = b"\x11\x22\x33\x44", masked: bool = True, long16: bool = False
) -> bytes:
    n = len(payload)
    if n < 126 and not long16:
        head = bytes([b0, (0x80 if masked else 0) | n])
    else:
        head = bytes([b0, (0x80 if masked else 0) | 126]) + n.to_bytes(2, "big")
    return head + (key + mask(payload, key) if masked else payload)


WORDS = ["hello", "twice", "bin", "utf8 é", "close", "crash", "é€😀", "x" * 130]

texts = st.builds(lambda w, tail: (w + tail).encode(), st.sampled_from(WORDS), st.text(max_size=20))
frames = st.one_of(
    st.builds(lambda p, k: frame(0x81, p, k), texts, st.binary(min_size=4, max_size=4)),  # simple text
    st.builds(lambda p: frame(0x82, p), st.binary(max_size=300)),  # simple binary (7- and 16-bit lengths)
    st.builds(lambda p: frame(0x81, p, long16=True), texts),  # 16-bit length for a short payload
    st.builds(lambda p: frame(0x81, p), st.sampled_from([b"\xff", b"ok\xc3", b"\xed\xa0\x80"])),  # invalid UTF-8
    st.builds(lambda p: frame(0x89, p), st.binary(max_size=10)),  # ping
    st.builds(lambda p: frame(0x8A, p), st.binary(max_size=10)),  # pong
    st.builds(lambda p: frame(0x01, p[:3]) + frame(0x80, p[3:]), texts),  # fragmented text
    st.builds(lambda p: frame(0x02, p) + frame(0x89, b"in") + frame(0x80, p), st.binary(max_size=20)),
    st.just(frame(0x88, (1000).to_bytes(2, "big") + b"bye")),  # close
    st.just(frame(0xC1, b"rsv")),  # RSV1 without an extension
    st.just(frame(0x81, b"unmasked", masked=False)),
    st.just(frame(0x80, b"no message")),  # continuation without a message
    # compressed (RSV1: 1002 unless negotiated), whole and valid: what the C path inflates
    st.builds(lambda p: frame(0xC1, deflated(p)), texts),
    st.builds(lambda p: frame(0xC2, deflated(p)), st.binary(max_size=300)),
    st.builds(lambda p, k: frame(0xC1, deflated(p * 40), k), texts, st.binary(min_size=4, max_size=4)),
    st.builds(lambda p: frame(0xC1, deflated(p), long16=True), texts),
    st.just(frame(0xC2, deflated(b""))),
    st.just(frame(0xC2, deflated(b"a" * LIMIT))),  # exactly the limit once inflated
    # compressed and irregular: left to the Python path, which answers
    st.just(frame(0xC2, deflated(b"\0" * (LIMIT + 1)))),  # 1009: one byte over the limit once inflated
    st.just(frame(0xC2, deflated(bytes(50_000)))),  # 1009: a small bomb
    st.just(frame(0xC2, deflated(NOISE))),  # over the limit on the wire too
    st.builds(lambda p: frame(0xC1, deflated(p)), st.sampled_from([b"\xff", b"ok\xc3", b"\xed\xa0\x80"])),  # 1007
    st.builds(lambda p: frame(0xC2, p), st.binary(min_size=1, max_size=30)),  # random bytes: mostly not deflate
    st.builds(lambda p, n: frame(0xC1, deflated(p)[:n]), texts, st.integers(0, 12)),  # cut short
    st.builds(lambda p: frame(0xC1, finished(p)), texts),  # a final block: Python decides
    st.builds(lambda p, x: frame(0xC2, finished(p) + x), st.binary(max_size=20), st.binary(min_size=1, max_size=4)),
    st.builds(lambda p: frame(0x41, deflated(p)[:2]) + frame(0x80, deflated(p)[2:]), texts),  # fragmented
    st.builds(lambda p: frame(0xC9, p), st.binary(max_size=4)),  # RSV1 on a control frame: 1002
    st.builds(lambda p: frame(0xE1, deflated(p)), texts),  # RSV1 and RSV2: 1002
)


def run(stream: bytes, cuts: list[int], fast: bool, buffered: int, mode: str = "shared") -> dict[str, Any]:
    """Feed ``stream`` in the chunks ``cuts`` gives to a fresh connection; what the program and the peer saw."""
    loop = new_event_loop()
    runtime = Runtime()
    handler = Scripted()

    async def go() -> dict[str, Any]:
        options = ServerOptions(ping_interval=0, max_message_size=LIMIT, compression=mode)
        server = Server(handler, options, asyncio.get_running_loop(), runtime)
        conn = Connection(server)
        conn._fast = fast
        transport = Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        transport.buffered = buffered
        pos = 0
        for cut in [*cuts, len(stream)]:
            cut = min(max(cut, pos), len(stream))
            if cut > pos:
                conn.data_received(stream[pos:cut])
                server._flush_dirty()  # the end of the loop iteration
                pos = cut
        conn.connection_lost(None)
        server._flush_dirty()
        return {
            "calls": handler.calls,
            "writes": transport.writes,
            "phase": conn.phase,
            "in": conn.messages_in,
            "out": conn.messages_out,
        }

    try:
        return loop.run_until_complete(go())
    finally:
        loop.close()


# Where the stream is cut into reads: at any offset after the handshake (an int), or at the end of the handshake
# or of a frame (("frame", i): after the first i parts) -- the C path takes a read that starts at a frame boundary.
cut_points = st.lists(
    st.one_of(st.integers(min_value=0, max_value=1500), st.tuples(st.just("frame"), st.integers(0, 12))),
    max_size=6,
)


def _after_handshake(*parts: bytes) -> dict[str, Any]:
    """An @example: ``parts`` in one read after the handshake's, shared mode (the C path inflates and compresses)."""
    return {"parts": list(parts), "points": [("frame", 0)], "buffered": 0, "head": HANDSHAKE_DEFLATE, "mode": "shared"}


_GOOD = frame(0xC1, deflated(b"twice " * 30))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The C path's decisions about compressed frames, every run (hypothesis finds them too, but not every time):
@example(**_after_handshake(_GOOD, frame(0xC2, deflated(b"a" * LIMIT)), _GOOD))  # at the limit: a message
@example(**_after_handshake(_GOOD, frame(0xC2, deflated(b"\0" * (LIMIT + 1))), _GOOD))  # 1009
@example(**_after_handshake(_GOOD, frame(0xC2, b"\xff\xff\xff"), _GOOD))  # 1007
@example(**_after_handshake(_GOOD, frame(0xC1, deflated(b"ok\xc3")), _GOOD))  # 1007 (UTF-8)
@example(**_after_handshake(_GOOD, frame(0xC2, finished(b"x" * 200) + b"\x01"), _GOOD))  # 1007 (after the end)
@example(**_after_handshake(_GOOD, frame(0xC2, finished(b"x" * 200)), _GOOD))  # a final block: a message
@given(
    st.lists(frames, min_size=1, max_size=12),
    cut_points,
    st.sampled_from([0, 2 << 20]),
    st.sampled_from(HANDSHAKES),
    st.sampled_from(["shared", "dedicated"]),
)
def test_c_and_python_paths_see_and_write_the_same(
    parts: list[bytes], points: list[int | tuple[str, int]], buffered: int, head: bytes, mode: str
) -> None:
    stream = head + b"".join(parts)
    cuts = sorted(len(head) + (p if isinstance(p, int) else sum(map(len, parts[: p[1]]))) for p in points)
    fast = run(stream, cuts, fast=True, buffered=buffered, mode=mode)
    slow = run(stream, cuts, fast=False, buffered=buffered, mode=mode)
    assert fast == slow


def test_one_read_of_three_messages_gives_three_callbacks_and_one_write() -> None:
    stream = HANDSHAKE + frame(0x81, b"hello") + frame(0x82, b"\x00\x01") + frame(0x81, "é".encode())
    result = run(stream, [len(HANDSHAKE)], fast=True, buffered=0)
    assert result["calls"] == [
        ("connect", "/chat"),
        ("message", "str", "hello"),
        ("message", "bytes", b"\x00\x01"),
        ("message", "str", "é"),
        ("close", 1006, ""),
    ]
    assert result["writes"][1:] == [b"\x81\x05hello\x82\x02\x00\x01\x81\x02\xc3\xa9"]  # after the 101


def test_a_crashing_handler_closes_with_1011_on_the_c_path() -> None:
    stream = HANDSHAKE + frame(0x81, b"crash") + frame(0x81, b"hello")
    result = run(stream, [len(HANDSHAKE)], fast=True, buffered=0)
    assert ("message", "str", "hello") not in result["calls"]  # no message reaches a crashed handler
    assert result["writes"][-1] == b"\x88\x10\x03\xf3internal error"  # 1011
    assert result["calls"][-1] == ("close", 1011, "internal error")


def test_the_pure_python_switch_is_read_at_import() -> None:
    assert os.environ.get("SNOW_RT_PY_NO_SPEEDUPS", "") in ("", "0")  # else this module is skipped
    from snow_rt_py.protocol.connection import ServerProtocol
    from snow_rt_py.runtime.scheduler import Actor

    # each C part is the base class of its layer's class (DESIGN: one C part per Python class, in its folder)
    heap_type = 1 << 9  # Py_TPFLAGS_HEAPTYPE: set on classes defined in Python, not on static C types
    bases = {
        cls.__name__: next(b.__module__ for b in cls.__mro__ if not b.__flags__ & heap_type)
        for cls in (Connection, ServerProtocol, Actor)
    }
    assert bases == {
        "Connection": "snow_rt_py.runtime._connection_core",
        "ServerProtocol": "snow_rt_py.protocol._protocol_core",
        "Actor": "snow_rt_py.runtime._scheduler_core",
    }


def test_a_compressed_echo_stays_on_the_c_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared mode: whole compressed frames are inflated, and the replies compressed, in C -- after the handshake
    neither the Python receive path nor the Python compression path runs -- and what goes out inflates back to
    the messages, RSV1 set (RFC 7692 §6), short replies plain."""
    python_calls: list[str] = []
    receive, send_deflated = Connection._receive, Connection._send_deflated

    def receive_spy(self: Connection, data: bytes) -> None:
        python_calls.append("_receive")
        receive(self, data)

    def send_deflated_spy(self: Connection, opcode: int, data: bytes) -> None:
        python_calls.append("_send_deflated")
        send_deflated(self, opcode, data)

    monkeypatch.setattr(Connection, "_receive", receive_spy)
    monkeypatch.setattr(Connection, "_send_deflated", send_deflated_spy)
    text, data, short = "héllo wörld " * 30, bytes(range(256)) * 3, "hi"
    stream = HANDSHAKE_DEFLATE + b"".join(
        frame(0xC1 if isinstance(m, str) else 0xC2, deflated(m.encode() if isinstance(m, str) else m))
        for m in (text, data, short)
    )
    result = run(stream, [len(HANDSHAKE_DEFLATE)], fast=True, buffered=0)
    assert python_calls == ["_receive"]  # the handshake's read only
    assert result["calls"][1:4] == [("message", "str", text), ("message", "bytes", data), ("message", "str", short)]
    out, pos, replies = result["writes"][1], 0, []
    while pos < len(out):
        parsed = parse_frame(out, pos)
        assert parsed is not None
        wire, pos = parsed
        inflate = zlib.decompressobj(-15)
        replies.append((wire.rsv, inflate.decompress(wire.payload + b"\x00\x00\xff\xff") if wire.rsv else wire.payload))
    assert replies == [(4, text.encode()), (4, data), (0, short.encode())]
