"""Category 2: Ping and Pong (RFC 6455 §5.5.2, §5.5.3).

A Ping is answered with a Pong carrying "exactly the same Application data"; control frames carry at most
125 bytes (§5.5); an unsolicited Pong needs no answer.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Server
from tests.conformance.rawws import BINARY, PING, PONG, TEXT, frame

pytestmark = pytest.mark.timeout(30)

PING_LENGTHS = [0, 1, 2, 10, 64, 124, 125]


@pytest.mark.parametrize("length", PING_LENGTHS, ids=[f"len{n}" for n in PING_LENGTHS])
def test_ping_answered_with_identical_pong(server: Server, length: int) -> None:
    """§5.5.2/§5.5.3: a Ping with ``length`` bytes (0..125 allowed, §5.5) is answered with a Pong whose payload
    is identical."""
    ws = server.connect()
    data = bytes(ord("a") + i % 26 for i in range(length))
    ws.send(PING, data)
    ws.expect_pong(data)
    ws.close_handshake()


def test_every_ping_length_from_0_to_125(server: Server) -> None:
    """§5.5/§5.5.3: every allowed control payload length 0..125 in turn, on one connection, each Pong echoing
    its Ping's payload, in order (all answered: see ``test_ten_pings_answered_in_order``)."""
    ws = server.connect()
    pings = [bytes((i * 7 + j) & 0xFF for j in range(i)) for i in range(126)]
    ws.send_raw(b"".join(frame(PING, p) for p in pings))
    for p in pings:
        ws.expect_pong(p)
    ws.close_handshake()


def test_ping_with_binary_payload(server: Server) -> None:
    """§5.5.2: a Ping's "Application data" is arbitrary bytes (not UTF-8: no 1007); the Pong repeats them."""
    ws = server.connect()
    data = bytes([0x00, 0xFF, 0xFE, 0x80, 0xC0, 0xED, 0xA0, 0x80]) + bytes(range(100))
    ws.send(PING, data)
    ws.expect_pong(data)
    ws.close_handshake()


@pytest.mark.parametrize("length", [126, 65535, 65536], ids=["len126", "len65535", "len65536"])
def test_ping_over_125_bytes_fails_1002(server: Server, length: int) -> None:
    """§5.5: "All control frames MUST have a payload length of 125 bytes or less" -- a longer Ping (also with the
    16-/64-bit length forms) is a protocol error: Close 1002, no Pong, TCP closed."""
    ws = server.connect()
    ws.send_tolerant(frame(PING, b"*" * length))
    ws.expect_fail(1002)


def test_pong_over_125_bytes_fails_1002(server: Server) -> None:
    """§5.5: the 125-byte limit holds for every control frame, an unsolicited Pong included: Close 1002."""
    ws = server.connect()
    ws.send(PONG, b"p" * 126)
    ws.expect_fail(1002)


@pytest.mark.parametrize("payload", [b"", b"unsolicited", bytes(range(125))], ids=["empty", "text", "len125"])
def test_unsolicited_pong_is_ignored(server: Server, payload: bytes) -> None:
    """§5.5.3: "A Pong frame MAY be sent unsolicited... A response to an unsolicited Pong frame is not expected":
    nothing is sent for it; the next message is echoed as usual (and is the first thing on the wire)."""
    ws = server.connect()
    ws.send(PONG, payload)
    ws.send(TEXT, b"after pong")
    ws.expect_message(TEXT, b"after pong")
    ws.close_handshake()


def test_unsolicited_pong_then_ping(server: Server) -> None:
    """§5.5.3: an unsolicited Pong is ignored and a following Ping is still answered with its own payload."""
    ws = server.connect()
    ws.send_raw(frame(PONG, b"unsolicited") + frame(PING, b"real ping"))
    ws.expect_pong(b"real ping")
    ws.close_handshake()


@pytest.mark.parametrize("mode", ["chunks", "bytes"], ids=["write-chunks", "write-bytes"])
def test_ping_arriving_in_pieces(server: Server, mode: str) -> None:
    """§5.5.2 with §5.2: a 125-byte Ping written in pieces (or one byte per write) is one frame; one Pong answers
    it with the whole payload."""
    ws = server.connect()
    data = bytes(range(125))
    ws.send_raw(frame(PING, data), mode)
    ws.expect_pong(data)
    ws.close_handshake()


def test_ten_pings_answered_in_order(server: Server) -> None:
    """§5.5.2: ten Pings sent back to back get ten Pongs with the same payloads in the same order. (§5.5.3 lets a
    server answer only the latest of several unanswered Pings; like Autobahn case 2.10 this suite requires all
    ten, which every mainstream server does.)"""
    ws = server.connect()
    payloads = [f"ping {i}".encode() for i in range(10)]
    ws.send_raw(b"".join(frame(PING, p) for p in payloads))
    for p in payloads:
        ws.expect_pong(p)
    ws.close_handshake()


def test_ping_between_messages(server: Server) -> None:
    """§5.5.2/§5.6: a Ping between two messages is answered, and both messages are echoed in order (the Pong
    may come before or after either echo: the RFC does not order protocol replies against application data)."""
    ws = server.connect()
    ws.send_raw(frame(TEXT, b"one") + frame(PING, b"mid") + frame(BINARY, b"two"))
    ws.expect_interleaved([(TEXT, b"one"), (BINARY, b"two")], [b"mid"])
    ws.close_handshake()
