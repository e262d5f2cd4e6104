"""Category 1: framing -- every payload length encoding, text and binary, however the bytes arrive.

RFC 6455 §5.2: the payload length is 7 bits (0-125), 126 + 16 bits (126-65535) or 127 + 64 bits (65536 and up);
§5.3: client frames are masked; §5.6: an echo server answers a text message with text and binary with binary.
Parsing must not depend on how the stream is cut into TCP segments.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Server
from tests.conformance.rawws import BINARY, CLOSE, LIMIT, PING, TEXT, close_payload, frame, frame_header

pytestmark = pytest.mark.timeout(30)

# 0/1/125: 7-bit length; 126/127/65535: 16-bit; 65536 (= LIMIT, the largest allowed message): 64-bit.
LENGTHS = [0, 1, 125, 126, 127, 65535, LIMIT]
MODES = ["one", "chunks", "bytes"]


def payload_for(opcode: int, n: int) -> bytes:
    """ASCII text (valid UTF-8 cut anywhere) or every byte value for binary."""
    unit = b"Hello, conformance! 0123456789 " if opcode == TEXT else bytes(range(256))
    return (unit * (n // len(unit) + 1))[:n]


@pytest.mark.parametrize("mode", MODES, ids=[f"write-{m}" for m in MODES])
@pytest.mark.parametrize("length", LENGTHS, ids=[f"len{n}" for n in LENGTHS])
@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
def test_echo_every_length_encoding(server: Server, opcode: int, length: int, mode: str) -> None:
    """§5.2 payload length (7-bit, 16-bit, 64-bit) and §5.3 masking: a single-frame message of ``length`` bytes,
    written in one write, in irregular chunks (cuts inside the header and mask) or one byte per write, is echoed
    as one message of the same type and bytes; the server's own frame uses the minimal length encoding."""
    ws = server.connect()
    data = payload_for(opcode, length)
    ws.send_raw(frame(opcode, data), mode)
    ws.expect_message(opcode, data)
    ws.close_handshake()


def test_pipelined_messages_echoed_in_order(server: Server) -> None:
    """§5.2/§5.6: several frames in one TCP write are parsed one after another; each message is echoed in order
    with its own type (§6.1 a message's type is that of its first frame)."""
    ws = server.connect()
    messages = [(TEXT, b"first"), (BINARY, b"\x00\x01second"), (TEXT, b""), (BINARY, b""), (TEXT, b"x" * 300)]
    ws.send_raw(b"".join(frame(op, data) for op, data in messages))
    for op, data in messages:
        ws.expect_message(op, data)
    ws.close_handshake()


def test_zero_masking_key(server: Server) -> None:
    """§5.3: a masking key of four zero bytes is a valid key (the payload goes unchanged); it must be unmasked
    like any other."""
    ws = server.connect()
    ws.send_raw(frame(TEXT, b"zero key", key=b"\x00\x00\x00\x00"))
    ws.expect_message(TEXT, b"zero key")
    ws.close_handshake()


@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, CLOSE], ids=["text", "binary", "ping", "close"])
def test_unmasked_client_frame_fails_1002(server: Server, opcode: int) -> None:
    """§5.1: "The server MUST close the connection upon receiving a frame that is not masked" -- §7.4.1 code 1002
    (protocol error); nothing is echoed for the unmasked frame."""
    ws = server.connect()
    body = close_payload(1000) if opcode == CLOSE else b"unmasked"
    ws.send_raw(frame(opcode, body, mask=False) + frame(TEXT, b"after"))
    ws.expect_fail(1002)


def test_64bit_length_with_most_significant_bit_set_fails(server: Server) -> None:
    """§5.2: in a 64-bit length "the most significant bit MUST be 0". A length with it set is both malformed and
    far over any limit, so a strict server fails with 1002 (protocol error) or 1009 (too big, §7.4.1); either
    close code, then TCP closed."""
    ws = server.connect()
    head = bytes((0x82, 0x80 | 127)) + (1 << 63 | 5).to_bytes(8, "big") + b"\x01\x02\x03\x04"
    ws.send_raw(head + b"abcde")
    f = ws.recv_frame()
    assert f.opcode == CLOSE and f.code in (1002, 1009), f"expected Close 1002 or 1009, got {f}"
    ws.expect_eof()


def test_header_then_payload_in_separate_writes(server: Server) -> None:
    """§5.2: the header (with a 16-bit length) and the payload may arrive in separate segments; the frame is
    complete only when all declared payload bytes are in."""
    ws = server.connect()
    data = payload_for(BINARY, 1000)
    key = b"\x11\x22\x33\x44"
    full = frame(BINARY, data, key=key)
    head = frame_header(BINARY, len(data))
    ws.send_raw(full[: len(head) + 4])
    ws.send_raw(full[len(head) + 4 : len(head) + 504])
    ws.send_raw(full[len(head) + 504 :])
    ws.expect_message(BINARY, data)
    ws.close_handshake()
