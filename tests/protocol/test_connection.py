"""The sans-I/O server connection (protocol/connection.py): handshake, frames, messages, closing, failures."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from snow_rt_py.protocol.connection import ServerProtocol, State
from snow_rt_py.protocol.errors import UsageError
from snow_rt_py.protocol.events import (
    BinaryMessage,
    CloseReceived,
    ConnectionLost,
    Event,
    HandshakeFailure,
    Ping,
    Pong,
    ProtocolFailure,
    Request,
    TextMessage,
)
from snow_rt_py.protocol.frames import Opcode, encode_frame
from snow_rt_py.protocol.headers import Headers

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 §5.7
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
RESPONSE_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)


def cf(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bytes = MASK) -> bytes:
    """A client frame (masked)."""
    return encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask)


def close_bytes(code: int, reason: str = "") -> bytes:
    """The exact unmasked Close frame a server sends, written out by hand."""
    payload = code.to_bytes(2, "big") + reason.encode()
    return bytes([0x88, len(payload)]) + payload


def state(proto: ServerProtocol) -> State:
    """The state, read through a call so that mypy does not narrow it across calls that change it."""
    return proto.state


def opened(max_message_size: int = 16 * 1024 * 1024) -> ServerProtocol:
    return ServerProtocol(open=True, max_message_size=max_message_size)


# -- handshake ------------------------------------------------------------------------------------------------


def test_starts_in_handshake() -> None:
    proto = ServerProtocol()
    assert proto.state is State.HANDSHAKE
    assert not proto.close_sent
    assert not proto.close_received


def test_valid_request_then_accept() -> None:
    proto = ServerProtocol()
    events = proto.receive_data(REQUEST)
    assert len(events) == 1
    request = events[0]
    assert isinstance(request, Request)
    assert request.target == "/chat"
    assert request.headers["connection"] == "keep-alive, Upgrade"
    assert proto.data_to_send() == b""  # nothing before the decision
    assert state(proto) is State.HANDSHAKE
    assert proto.accept() == []
    assert proto.data_to_send() == RESPONSE_101
    assert proto.data_to_send() == b""
    assert proto.state is State.OPEN


def test_accept_with_extra_headers() -> None:
    proto = ServerProtocol()
    proto.receive_data(REQUEST)
    proto.accept([("Sec-WebSocket-Protocol", "chat")])
    assert proto.data_to_send() == RESPONSE_101[:-2] + b"Sec-WebSocket-Protocol: chat\r\n\r\n"


def test_pipelined_frames_in_the_same_chunk_are_returned_by_accept() -> None:
    proto = ServerProtocol()
    data = REQUEST + cf(Opcode.TEXT, b"first") + cf(Opcode.PING, b"p") + cf(Opcode.TEXT, b"sec", fin=False)
    events = proto.receive_data(data)
    assert [type(e) for e in events] == [Request]
    assert proto.accept() == [TextMessage("first"), Ping(b"p")]
    assert proto.data_to_send() == RESPONSE_101 + b"\x8a\x01p"
    assert proto.receive_data(cf(Opcode.CONTINUATION, b"ond")) == [TextMessage("second")]


def test_frames_arriving_before_the_decision_are_kept() -> None:
    proto = ServerProtocol()
    proto.receive_data(REQUEST)
    assert proto.receive_data(cf(Opcode.BINARY, b"\x00\x01")) == []
    assert proto.accept() == [BinaryMessage(b"\x00\x01")]


def test_handshake_and_frames_one_byte_at_a_time() -> None:
    proto = ServerProtocol()
    data = REQUEST + cf(Opcode.TEXT, "héllo".encode()) + cf(Opcode.BINARY, b"x" * 300)
    events: list[Event] = []
    for i in range(len(data)):
        for event in proto.receive_data(data[i : i + 1]):
            events.append(event)
            if isinstance(event, Request):
                events += proto.accept()
    assert events[1:] == [TextMessage("héllo"), BinaryMessage(b"x" * 300)]
    assert proto.data_to_send() == RESPONSE_101


def test_invalid_request_fails_with_response_queued() -> None:
    proto = ServerProtocol()
    events = proto.receive_data(REQUEST.replace(b"13", b"8"))
    assert events == [HandshakeFailure(426, "Unsupported WebSocket version.")]
    assert proto.data_to_send() == (
        b"HTTP/1.1 426 Upgrade Required\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 31\r\n"
        b"Connection: close\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"\r\n"
        b"Unsupported WebSocket version.\n"
    )
    assert proto.state is State.CLOSED
    assert proto.receive_data(REQUEST) == []
    assert proto.receive_data(b"") == [ConnectionLost(clean=False)]


def test_method_not_allowed() -> None:
    proto = ServerProtocol()
    assert proto.receive_data(REQUEST.replace(b"GET", b"PUT")) == [HandshakeFailure(405, "Method not allowed.")]
    assert b"\r\nAllow: GET\r\n" in proto.data_to_send()


def test_oversized_request_is_431_as_soon_as_the_limit_is_passed() -> None:
    proto = ServerProtocol(max_handshake_size=64)
    assert proto.receive_data(b"GET / HTTP/1.1\r\n" + b"X" * 48) == []  # 64 bytes
    assert proto.receive_data(b"X") == [HandshakeFailure(431, "Request headers too large.")]
    assert proto.data_to_send().startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


def test_reject() -> None:
    proto = ServerProtocol()
    proto.receive_data(REQUEST + cf(Opcode.TEXT, b"ignored"))
    proto.reject(403, "Forbidden.", [("X-Why", "origin")])
    assert proto.data_to_send() == (
        b"HTTP/1.1 403 Forbidden\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 11\r\n"
        b"Connection: close\r\n"
        b"X-Why: origin\r\n"
        b"\r\n"
        b"Forbidden.\n"
    )
    assert proto.state is State.CLOSED
    assert proto.receive_data(cf(Opcode.TEXT, b"x")) == []
    with pytest.raises(UsageError):
        proto.accept()


def test_accept_and_reject_need_a_request() -> None:
    proto = ServerProtocol()
    with pytest.raises(UsageError):
        proto.accept()
    with pytest.raises(UsageError):
        proto.reject(400, "no")
    proto.receive_data(REQUEST[:-1])
    with pytest.raises(UsageError):
        proto.accept()
    proto.receive_data(REQUEST[-1:])
    proto.accept()
    with pytest.raises(UsageError):
        proto.accept()
    with pytest.raises(UsageError):
        proto.reject(400, "no")


def test_reject_with_invalid_status_changes_nothing() -> None:
    proto = ServerProtocol()
    proto.receive_data(REQUEST)
    with pytest.raises(UsageError):
        proto.reject(200, "ok")
    assert proto.state is State.HANDSHAKE
    assert proto.accept() == []


def test_eof_during_handshake() -> None:
    proto = ServerProtocol()
    proto.receive_data(REQUEST[:10])
    assert proto.receive_data(b"") == [ConnectionLost(clean=False)]
    assert proto.state is State.CLOSED
    assert proto.receive_data(b"") == []


def test_cannot_send_during_handshake() -> None:
    proto = ServerProtocol()
    calls: list[Callable[[], object]] = [
        lambda: proto.send_text("x"),
        lambda: proto.send_binary(b"x"),
        lambda: proto.send_ping(),
        lambda: proto.send_pong(),
        lambda: proto.send_close(),
    ]
    for call in calls:
        with pytest.raises(UsageError):
            call()


# -- messages --------------------------------------------------------------------------------------------------


def test_rfc_masked_hello() -> None:
    proto = opened()
    data = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert proto.receive_data(data) == [TextMessage("Hello")]
    assert proto.data_to_send() == b""


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 63, 64, 125, 126, 127, 128, 129, 1000, 65535, 65536, 70000])
def test_binary_of_every_length_class(size: int) -> None:
    payload = os.urandom(size)
    proto = opened()
    assert proto.receive_data(cf(Opcode.BINARY, payload, mask=os.urandom(4))) == [BinaryMessage(payload)]


def test_unmasking_every_small_length_and_key() -> None:
    proto = opened()
    for size in range(0, 300):
        payload = os.urandom(size)
        events = proto.receive_data(cf(Opcode.BINARY, payload, mask=os.urandom(4)))
        assert events == [BinaryMessage(payload)], size
        text = "é" * (size // 2)
        events = proto.receive_data(cf(Opcode.TEXT, text.encode(), mask=os.urandom(4)))
        assert events == [TextMessage(text)]


def test_message_types_are_exact() -> None:
    proto = opened()
    (binary,) = proto.receive_data(cf(Opcode.BINARY, b"x" * 200))
    (small,) = proto.receive_data(cf(Opcode.BINARY, b"x"))
    assert isinstance(binary, BinaryMessage)
    assert isinstance(small, BinaryMessage)
    assert type(binary.data) is bytes
    assert type(small.data) is bytes


def test_accepts_bytearray_and_memoryview_input() -> None:
    proto = opened()
    data = cf(Opcode.TEXT, b"a") + cf(Opcode.BINARY, b"b" * 200)
    assert proto.receive_data(bytearray(data)) == [TextMessage("a"), BinaryMessage(b"b" * 200)]
    assert proto.receive_data(memoryview(data)[:7]) == [TextMessage("a")]
    assert proto.receive_data(memoryview(data)[7:]) == [BinaryMessage(b"b" * 200)]


def test_many_frames_in_one_chunk() -> None:
    proto = opened()
    data = b"".join(cf(Opcode.TEXT, str(i).encode()) for i in range(1000))
    assert proto.receive_data(data) == [TextMessage(str(i)) for i in range(1000)]


def test_frame_split_at_every_offset() -> None:
    frame = cf(Opcode.BINARY, b"0123456789" * 30)  # 16-bit length
    for cut in range(1, len(frame)):
        proto = opened()
        assert proto.receive_data(frame[:cut]) == []
        assert proto.receive_data(frame[cut:] + cf(Opcode.TEXT, b"next")) == [
            BinaryMessage(b"0123456789" * 30),
            TextMessage("next"),
        ]


def test_large_frame_in_small_chunks() -> None:
    payload = os.urandom(1 << 20)
    data = cf(Opcode.BINARY, payload, mask=os.urandom(4)) + cf(Opcode.TEXT, b"after")
    proto = opened()
    events: list[Event] = []
    for i in range(0, len(data), 4096):
        events += proto.receive_data(data[i : i + 4096])
    assert events == [BinaryMessage(payload), TextMessage("after")]
    assert len(proto._buf) == 0  # nothing left over


def test_rfc_fragmented_text() -> None:
    proto = opened()
    assert proto.receive_data(cf(Opcode.TEXT, b"Hel", fin=False)) == []
    assert proto.receive_data(cf(Opcode.CONTINUATION, b"lo")) == [TextMessage("Hello")]


def test_fragmented_binary_with_empty_fragments() -> None:
    proto = opened()
    data = (
        cf(Opcode.BINARY, b"", fin=False)
        + cf(Opcode.CONTINUATION, b"a" * 200, fin=False)
        + cf(Opcode.CONTINUATION, b"", fin=False)
        + cf(Opcode.CONTINUATION, b"b")
    )
    assert proto.receive_data(data) == [BinaryMessage(b"a" * 200 + b"b")]


def test_control_frames_between_fragments() -> None:
    proto = opened()
    data = (
        cf(Opcode.TEXT, b"Hel", fin=False)
        + cf(Opcode.PING, b"1")
        + cf(Opcode.CONTINUATION, b"l", fin=False)
        + cf(Opcode.PONG, b"2")
        + cf(Opcode.PING, b"")
        + cf(Opcode.CONTINUATION, b"o")
        + cf(Opcode.BINARY, b"next")
    )
    assert proto.receive_data(data) == [
        Ping(b"1"),
        Pong(b"2"),
        Ping(b""),
        TextMessage("Hello"),
        BinaryMessage(b"next"),
    ]
    assert proto.data_to_send() == b"\x8a\x011\x8a\x00"


def test_code_point_split_across_fragments_is_valid() -> None:
    proto = opened()
    euro = "€".encode()
    data = cf(Opcode.TEXT, b"a" + euro[:1], fin=False) + cf(Opcode.CONTINUATION, euro[1:2], fin=False)
    data += cf(Opcode.CONTINUATION, euro[2:])
    assert proto.receive_data(data) == [TextMessage("a€")]


# -- control frames and closing -----------------------------------------------------------------------------


def test_ping_is_answered() -> None:
    proto = opened()
    assert proto.receive_data(cf(Opcode.PING, b"Hello")) == [Ping(b"Hello")]
    assert proto.data_to_send() == bytes([0x8A, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])


def test_ping_with_125_bytes() -> None:
    proto = opened()
    assert proto.receive_data(cf(Opcode.PING, b"p" * 125)) == [Ping(b"p" * 125)]
    assert proto.data_to_send() == b"\x8a\x7d" + b"p" * 125


def test_unsolicited_pong() -> None:
    proto = opened()
    assert proto.receive_data(cf(Opcode.PONG, b"x")) == [Pong(b"x")]
    assert proto.data_to_send() == b""


@pytest.mark.parametrize(
    ("payload", "event", "reply"),
    [
        (b"\x03\xe8bye", CloseReceived(1000, "bye"), close_bytes(1000)),
        (b"", CloseReceived(1005, ""), close_bytes(1000)),  # never 1005 on the wire
        (b"\x03\xe9", CloseReceived(1001, ""), close_bytes(1001)),
        (b"\x0f\xa0app", CloseReceived(4000, "app"), close_bytes(4000)),
        (b"\x03\xe8" + "é".encode() * 61 + b"x", CloseReceived(1000, "é" * 61 + "x"), close_bytes(1000)),
    ],
)
def test_close_from_client_is_echoed(payload: bytes, event: CloseReceived, reply: bytes) -> None:
    proto = opened()
    data = cf(Opcode.CLOSE, payload) + cf(Opcode.TEXT, b"after close")
    assert proto.receive_data(data) == [event]
    assert proto.data_to_send() == reply
    assert proto.state is State.CLOSED
    assert proto.close_sent
    assert proto.close_received
    assert proto.receive_data(cf(Opcode.TEXT, b"x")) == []
    assert proto.receive_data(b"") == [ConnectionLost(clean=True)]
    assert proto.receive_data(b"") == []


def test_close_between_fragments_drops_the_message() -> None:
    proto = opened()
    data = cf(Opcode.TEXT, b"Hel", fin=False) + cf(Opcode.CLOSE, b"\x03\xe8") + cf(Opcode.CONTINUATION, b"lo")
    assert proto.receive_data(data) == [CloseReceived(1000, "")]


def test_send_close_then_client_close() -> None:
    proto = opened()
    proto.send_close(1001, "going away")
    assert proto.data_to_send() == close_bytes(1001, "going away")
    assert state(proto) is State.CLOSING
    assert proto.close_sent
    assert not proto.close_received
    # Data frames are ignored while closing; control frames are still processed.
    data = cf(Opcode.TEXT, b"ignored") + cf(Opcode.BINARY, b"x" * 200) + cf(Opcode.PING, b"p")
    assert proto.receive_data(data) == [Ping(b"p")]
    assert proto.data_to_send() == b"\x8a\x01p"
    assert proto.receive_data(cf(Opcode.CLOSE, b"\x03\xe9")) == [CloseReceived(1001, "")]
    assert proto.data_to_send() == b""  # no second Close
    assert proto.state is State.CLOSED
    assert proto.receive_data(b"") == [ConnectionLost(clean=True)]


def test_fragmented_message_spanning_send_close_is_dropped() -> None:
    proto = opened()
    assert proto.receive_data(cf(Opcode.TEXT, b"a", fin=False)) == []
    proto.send_close()
    data = cf(Opcode.CONTINUATION, b"\xff", fin=False) + cf(Opcode.CONTINUATION, b"b") + cf(Opcode.PONG)
    assert proto.receive_data(data) == [Pong(b"")]


def test_framing_errors_while_closing_queue_no_second_close() -> None:
    proto = opened()
    proto.send_close()
    assert proto.data_to_send() == b"\x88\x02\x03\xe8"
    assert proto.receive_data(encode_frame(Opcode.TEXT, b"unmasked")) == [
        ProtocolFailure(1002, "client frame not masked")
    ]
    assert proto.data_to_send() == b""
    assert proto.state is State.CLOSED
    assert proto.receive_data(b"") == [ConnectionLost(clean=False)]


def test_fragment_rules_still_apply_while_closing() -> None:
    proto = opened()
    proto.send_close()
    assert proto.receive_data(cf(Opcode.CONTINUATION, b"x")) == [
        ProtocolFailure(1002, "continuation without a message")
    ]


def test_eof_while_open_is_not_clean() -> None:
    proto = opened()
    proto.receive_data(cf(Opcode.TEXT, b"partial")[:5])
    assert proto.receive_data(b"") == [ConnectionLost(clean=False)]
    assert proto.state is State.CLOSED
    assert proto.receive_data(cf(Opcode.TEXT, b"x")) == []
    assert proto.receive_data(b"") == []


def test_eof_after_send_close_only_is_not_clean() -> None:
    proto = opened()
    proto.send_close()
    assert proto.receive_data(b"") == [ConnectionLost(clean=False)]


# -- every way a client can break the protocol -------------------------------------------------------------

FAILURES = [
    # (bytes from the client, close code, reason)
    (cf(Opcode.TEXT, b"x", rsv=4), 1002, "reserved bits set"),
    (cf(Opcode.TEXT, b"x", rsv=2), 1002, "reserved bits set"),
    (cf(Opcode.TEXT, b"x", rsv=1), 1002, "reserved bits set"),
    (cf(Opcode.PING, b"x", rsv=7), 1002, "reserved bits set"),
    (encode_frame(Opcode.TEXT, b"x"), 1002, "client frame not masked"),
    (encode_frame(Opcode.PING, b""), 1002, "client frame not masked"),
    *[(cf(op, b"x"), 1002, f"reserved opcode {op}") for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)],
    (cf(Opcode.PING, b"x", fin=False), 1002, "fragmented control frame"),
    (cf(Opcode.CLOSE, b"", fin=False), 1002, "fragmented control frame"),
    (cf(Opcode.PONG, b"x" * 126), 1002, "control frame payload over 125 bytes"),
    (cf(Opcode.CLOSE, b"\x03\xe8" + b"x" * 124), 1002, "control frame payload over 125 bytes"),
    (b"\x89\xfe\x00\x05" + MASK + b"hello", 1002, "control frame payload over 125 bytes"),  # 16-bit length
    (cf(Opcode.CONTINUATION, b"x"), 1002, "continuation without a message"),
    (cf(Opcode.TEXT, b"a", fin=False) + cf(Opcode.TEXT, b"b"), 1002, "message not finished"),
    (cf(Opcode.BINARY, b"a", fin=False) + cf(Opcode.BINARY, b"b", fin=False), 1002, "message not finished"),
    (b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00", 1002, "payload length too big"),
    (cf(Opcode.TEXT, b"\xff"), 1007, "invalid UTF-8 in text message"),
    (cf(Opcode.TEXT, b"ok\xed\xa0\x80"), 1007, "invalid UTF-8 in text message"),
    (cf(Opcode.TEXT, b"\xc3"), 1007, "invalid UTF-8 in text message"),  # truncated, unfragmented
    (cf(Opcode.TEXT, b"\xed\xa0", fin=False), 1007, "invalid UTF-8 in text message"),  # surrogate, 1st fragment
    (cf(Opcode.TEXT, b"\xf4\x90", fin=False), 1007, "invalid UTF-8 in text message"),  # > U+10FFFF
    (cf(Opcode.TEXT, b"a", fin=False) + cf(Opcode.CONTINUATION, b"\xc0", fin=False), 1007,
     "invalid UTF-8 in text message"),
    (cf(Opcode.TEXT, b"\xe2\x82", fin=False) + cf(Opcode.CONTINUATION, b""), 1007,
     "invalid UTF-8 in text message"),  # truncated at the end of the message
    (cf(Opcode.CLOSE, b"\x03"), 1002, "close payload of 1 byte"),
    (cf(Opcode.CLOSE, b"\x03\xed"), 1002, "invalid close code 1005"),
    (cf(Opcode.CLOSE, b"\x03\xee"), 1002, "invalid close code 1006"),
    (cf(Opcode.CLOSE, b"\x03\xe7"), 1002, "invalid close code 999"),
    (cf(Opcode.CLOSE, b"\x0b\xb7"), 1002, "invalid close code 2999"),
    (cf(Opcode.CLOSE, b"\x13\x88"), 1002, "invalid close code 5000"),
    (cf(Opcode.CLOSE, b"\x03\xe8\xff"), 1007, "close reason is not UTF-8"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "code", "reason"), FAILURES)
def test_protocol_failure(data: bytes, code: int, reason: str) -> None:
    proto = opened()
    # Whatever follows the bad frame in the same chunk is ignored.
    assert proto.receive_data(data + cf(Opcode.PING, b"late")) == [ProtocolFailure(code, reason)]
    assert proto.data_to_send() == close_bytes(code, reason)
    assert proto.state is State.CLOSED
    assert proto.close_sent
    assert not proto.close_received
    assert proto.receive_data(cf(Opcode.TEXT, b"ignored")) == []
    assert proto.data_to_send() == b""
    assert proto.receive_data(b"") == [ConnectionLost(clean=False)]


@pytest.mark.parametrize(("data", "code", "reason"), FAILURES)
def test_protocol_failure_one_byte_at_a_time(data: bytes, code: int, reason: str) -> None:
    proto = opened()
    events: list[Event] = []
    for i in range(len(data)):
        events += proto.receive_data(data[i : i + 1])
    assert events == [ProtocolFailure(code, reason)]
    assert proto.data_to_send() == close_bytes(code, reason)


def test_messages_before_a_failure_are_delivered() -> None:
    proto = opened()
    data = cf(Opcode.TEXT, b"good") + cf(Opcode.PING, b"p") + cf(Opcode.TEXT, b"\xff") + cf(Opcode.TEXT, b"x")
    assert proto.receive_data(data) == [
        TextMessage("good"),
        Ping(b"p"),
        ProtocolFailure(1007, "invalid UTF-8 in text message"),
    ]
    assert proto.data_to_send() == b"\x8a\x01p" + close_bytes(1007, "invalid UTF-8 in text message")


def test_utf8_fails_fast_on_first_fragment_without_the_rest() -> None:
    proto = opened()
    # The rest of the message never arrives: the failure must not wait for it.
    assert proto.receive_data(cf(Opcode.TEXT, b"hello \xed\xa0", fin=False)) == [
        ProtocolFailure(1007, "invalid UTF-8 in text message")
    ]


def test_message_too_big_single_frame() -> None:
    proto = opened(max_message_size=10)
    assert proto.receive_data(cf(Opcode.BINARY, b"x" * 10)) == [BinaryMessage(b"x" * 10)]
    assert proto.receive_data(cf(Opcode.BINARY, b"x" * 11)) == [ProtocolFailure(1009, "message too big")]
    assert proto.data_to_send() == close_bytes(1009, "message too big")


def test_message_too_big_decided_from_the_header_alone() -> None:
    proto = opened(max_message_size=1 << 20)
    # Only the 10 header bytes of a 1 TiB frame: no mask, no payload.
    header = b"\x82\xff" + (1 << 40).to_bytes(8, "big")
    assert proto.receive_data(header[:9]) == []
    assert proto.receive_data(header[9:]) == [ProtocolFailure(1009, "message too big")]
    assert proto.data_to_send() == close_bytes(1009, "message too big")
    assert len(proto._buf) == 0


def test_message_too_big_16_bit_header() -> None:
    proto = opened(max_message_size=1000)
    assert proto.receive_data(b"\x81\xfe\x03\xe9") == [ProtocolFailure(1009, "message too big")]


def test_message_too_big_accumulated_over_fragments() -> None:
    proto = opened(max_message_size=10)
    assert proto.receive_data(cf(Opcode.TEXT, b"123456", fin=False)) == []
    assert proto.receive_data(cf(Opcode.PING, b"p" * 100)) == [Ping(b"p" * 100)]  # control frames don't count
    assert proto.receive_data(cf(Opcode.CONTINUATION, b"1234", fin=False)) == []  # 10: still fine
    # The next header alone (declaring 1 more byte) is enough to fail.
    assert proto.receive_data(b"\x80\x81") == [ProtocolFailure(1009, "message too big")]


def test_message_size_resets_between_messages() -> None:
    proto = opened(max_message_size=10)
    data = cf(Opcode.BINARY, b"12345", fin=False) + cf(Opcode.CONTINUATION, b"12345") + cf(Opcode.BINARY, b"x" * 10)
    assert proto.receive_data(data) == [BinaryMessage(b"1234512345"), BinaryMessage(b"x" * 10)]


# -- sending ----------------------------------------------------------------------------------------------------


def test_send_methods_queue_unmasked_frames_in_the_one_fifo() -> None:
    proto = opened()
    proto.send_text("Hello")
    proto.send_binary(b"\x00" * 126)
    proto.send_ping(b"Hello")
    proto.send_pong()
    assert proto.outgoing == [
        b"\x81\x05Hello",
        b"\x82\x7e\x00\x7e" + b"\x00" * 126,
        b"\x89\x05Hello",
        b"\x8a\x00",
    ]
    assert proto.data_to_send() == b"".join(
        [b"\x81\x05Hello", b"\x82\x7e\x00\x7e" + b"\x00" * 126, b"\x89\x05Hello", b"\x8a\x00"]
    )
    assert proto.outgoing == []


def test_pongs_and_data_share_one_fifo_in_order() -> None:
    # A pong the protocol owes and the data the caller sends leave in the order they were produced.
    proto = opened()
    proto.send_text("before")
    assert proto.receive_data(cf(Opcode.PING, b"p")) == [Ping(b"p")]
    proto.send_text("after")
    assert proto.data_to_send() == b"\x81\x06before" + b"\x8a\x01p" + b"\x81\x05after"


def test_send_misuse() -> None:
    proto = opened()
    with pytest.raises(UsageError):
        proto.send_ping(b"x" * 126)
    with pytest.raises(UsageError):
        proto.send_pong(b"x" * 126)
    with pytest.raises(UsageError):
        proto.send_text(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        proto.send_binary("text")  # type: ignore[arg-type]
    for code in (999, 1005, 1006, 1015, 2000, 5000):
        with pytest.raises(UsageError):
            proto.send_close(code)
    assert proto.state is State.OPEN
    assert not proto.close_sent


def test_send_close_refuses_a_reason_over_123_bytes() -> None:
    proto = opened()
    with pytest.raises(UsageError, match="longer than 123"):
        proto.send_close(1000, "é" * 62)  # 124 bytes
    assert proto.state is State.OPEN
    assert proto.data_to_send() == b""
    proto.send_close(1000, "é" * 61)  # 122 bytes
    assert proto.data_to_send() == b"\x88\x7c\x03\xe8" + "é".encode() * 61


def test_sending_while_closing_and_closed() -> None:
    proto = opened()
    proto.send_close()
    with pytest.raises(UsageError):
        proto.send_text("x")
    with pytest.raises(UsageError):
        proto.send_binary(b"x")
    with pytest.raises(UsageError):
        proto.send_close()
    proto.data_to_send()
    proto.send_ping(b"p")
    proto.send_pong(b"p")
    assert proto.data_to_send() == b"\x89\x01p\x8a\x01p"
    proto.receive_data(cf(Opcode.CLOSE))
    assert proto.state is State.CLOSED
    after: list[Callable[[], object]] = [lambda: proto.send_text("x"), proto.send_ping, proto.send_close]
    for call in after:
        with pytest.raises(UsageError):
            call()


def test_data_to_send_drains() -> None:
    proto = opened()
    proto.receive_data(cf(Opcode.PING, b"1") + cf(Opcode.PING, b"2"))
    assert proto.data_to_send() == b"\x8a\x011\x8a\x012"
    assert proto.data_to_send() == b""


def test_request_headers_are_a_headers_object() -> None:
    proto = ServerProtocol()
    (request,) = proto.receive_data(REQUEST)
    assert isinstance(request, Request)
    assert isinstance(request.headers, Headers)
    assert request.headers.get_all("Sec-WebSocket-Version") == ["13"]


@pytest.mark.parametrize("size", [0, 7, 125, 126, 200, 65536])
def test_frames_from_an_independent_encoder(size: int) -> None:
    """Frames serialized (and masked with random keys) by the websockets library parse back."""
    from websockets.frames import Frame
    from websockets.frames import Opcode as WsOpcode

    payload = os.urandom(size)
    text = "é" * (size // 2)
    data = Frame(WsOpcode.BINARY, payload).serialize(mask=True)
    data += Frame(WsOpcode.TEXT, text.encode(), fin=False).serialize(mask=True)
    data += Frame(WsOpcode.PING, b"ping").serialize(mask=True)
    data += Frame(WsOpcode.CONT, b"!").serialize(mask=True)
    proto = opened()
    assert proto.receive_data(data) == [BinaryMessage(payload), Ping(b"ping"), TextMessage(text + "!")]


def test_plain_http_get_is_offered_to_the_caller() -> None:
    from snow_rt_py.protocol.events import HttpRequest

    proto = ServerProtocol()
    events = proto.receive_data(b"GET /page?x=1 HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\n\r\n")
    assert len(events) == 1 and isinstance(events[0], HttpRequest)
    assert events[0].method == "GET"
    assert events[0].target == "/page?x=1" and events[0].headers["accept"] == "text/html"
    assert proto.data_to_send() == b""  # nothing decided yet
    with pytest.raises(UsageError):
        proto.accept()
    proto.respond(200, b"<p>", "text/html")
    assert proto.data_to_send() == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 3\r\nConnection: close\r\n\r\n<p>"
    )
    assert proto.state is State.CLOSED
    with pytest.raises(UsageError):
        proto.respond(200, b"", "text/plain")


def test_plain_http_head_gets_the_get_response_without_the_body() -> None:
    from snow_rt_py.protocol.events import HttpRequest

    proto = ServerProtocol()
    events = proto.receive_data(b"HEAD /page HTTP/1.1\r\nHost: h\r\n\r\n")
    assert len(events) == 1 and isinstance(events[0], HttpRequest)
    assert (events[0].method, events[0].target) == ("HEAD", "/page")
    proto.respond(200, b"<p>", "text/html")
    assert proto.data_to_send() == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
    )
    assert proto.state is State.CLOSED


def test_plain_http_head_of_a_missing_page_is_404_without_the_body() -> None:
    proto = ServerProtocol()
    proto.receive_data(b"HEAD /nothing HTTP/1.1\r\nHost: h\r\n\r\n")
    proto.respond(404, b"Not found.\n", "text/plain; charset=utf-8")
    assert proto.data_to_send() == (
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 11\r\n"
        b"Connection: close\r\n\r\n"
    )


def test_plain_http_head_refused_with_reject_gets_the_headers_without_the_body() -> None:
    proto = ServerProtocol()
    proto.receive_data(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    proto.reject(400, "Upgrade header must include websocket.")
    out = proto.data_to_send()
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n") and out.endswith(b"\r\n\r\n")
    assert b"Content-Length: 39\r\n" in out  # the GET's length: what the body would have been
    assert b"websocket." not in out


def test_plain_http_post_is_405() -> None:
    proto = ServerProtocol()
    events = proto.receive_data(b"POST /page HTTP/1.1\r\nHost: h\r\n\r\n")
    assert events == [HandshakeFailure(405, "Method not allowed.")]
    assert proto.data_to_send() == (
        b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"
        b"Connection: close\r\nAllow: GET\r\n\r\nMethod not allowed.\n"
    )


def test_plain_http_get_can_be_rejected() -> None:
    proto = ServerProtocol()
    proto.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    proto.reject(400, "Upgrade header must include websocket.")
    assert proto.data_to_send().startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert proto.state is State.CLOSED


def test_respond_needs_a_plain_request() -> None:
    proto = ServerProtocol()
    proto.receive_data(REQUEST)
    with pytest.raises(UsageError):
        proto.respond(200, b"", "text/plain")


# -- UTF-8 fail-fast inside a frame that arrives in pieces (Autobahn 6.4.3 / 6.4.4) ------------------------------


@pytest.mark.parametrize("opcode_first", ["unfragmented", "continuation"])
@pytest.mark.parametrize("size", [40, 70_000])  # a small frame, and one big enough to be streamed anyway
def test_invalid_utf8_fails_before_the_frame_is_complete(opcode_first: str, size: int) -> None:
    proto = opened()
    head = "κόσμε".encode()
    payload = head + b"\xf4\x90\x80\x80" + b"x" * (size - len(head) - 4)
    if opcode_first == "continuation":
        assert proto.receive_data(cf(Opcode.TEXT, b"start \xe2\x82", fin=False)) == []
        data = cf(Opcode.CONTINUATION, b"\xac" + payload)
        head = b"\xac" + head
    else:
        data = cf(Opcode.TEXT, payload)
    header = len(data) - len(payload) - (1 if opcode_first == "continuation" else 0)
    assert proto.receive_data(data[: header + len(head)]) == []  # valid so far: the frame is awaited
    # The next piece holds the first two bytes of F4 90 80 80 (beyond U+10FFFF): nothing can make that valid.
    events = proto.receive_data(data[header + len(head) : header + len(head) + 2])
    assert events == [ProtocolFailure(1007, "invalid UTF-8 in text message")]
    assert proto.data_to_send() == close_bytes(1007, "invalid UTF-8 in text message")
    assert proto.receive_data(data[header + len(head) + 2 :]) == []  # the rest is ignored


def test_text_frame_in_pieces_that_stays_valid_is_delivered_whole() -> None:
    proto = opened()
    payload = ("a\u00e9\u20ac\U0001f600" * 20).encode()
    data = cf(Opcode.TEXT, payload)
    events = []
    for i in range(len(data)):  # one byte at a time: every code point is split at some point
        events += proto.receive_data(data[i : i + 1])
    assert events == [TextMessage(payload.decode())]
    assert events[0].raw == payload  # type: ignore[union-attr]


# -- our Close always leaves last ------------------------------------------------------------------------------


def test_replies_queued_after_the_peers_close_arrived_still_leave_before_our_close() -> None:
    # Messages and a Close in one read: the caller handles the messages after receive_data returned, and their
    # replies go out before the Close reply (Autobahn 3.2, 4.1.3, 5.15: the echo, then the Close).
    proto = opened()
    events = proto.receive_data(cf(Opcode.TEXT, b"one") + cf(Opcode.TEXT, b"two") + cf(Opcode.CLOSE, b"\x03\xe8"))
    assert events == [TextMessage("one"), TextMessage("two"), CloseReceived(1000, "")]
    proto.outgoing.append(encode_frame(Opcode.TEXT, b"one"))  # a caller's own encoded replies
    proto.outgoing.append(encode_frame(Opcode.TEXT, b"two"))
    assert proto.data_to_send() == b"\x81\x03one\x81\x03two" + close_bytes(1000)


def test_replies_queued_before_a_protocol_failure_leave_before_the_failing_close() -> None:
    proto = opened()
    events = proto.receive_data(cf(Opcode.TEXT, b"ok") + cf(Opcode.TEXT, b"bad", rsv=2))
    assert events == [TextMessage("ok"), ProtocolFailure(1002, "reserved bits set")]
    proto.outgoing.append(encode_frame(Opcode.TEXT, b"ok"))
    assert proto.data_to_send() == b"\x81\x02ok" + close_bytes(1002, "reserved bits set")


def test_no_data_frame_leaves_after_our_close_but_pongs_do() -> None:
    proto = opened()
    proto.send_close(1001)
    assert proto.data_to_send() == close_bytes(1001)
    proto.outgoing.append(encode_frame(Opcode.TEXT, b"late"))  # a caller that raced the close
    proto.outgoing += (b"\x82\x7e\x00\xc8", b"x" * 200)  # a header and its payload queued apart
    assert proto.receive_data(cf(Opcode.PING, b"p")) == [Ping(b"p")]
    assert proto.data_to_send() == b"\x8a\x01p"


def test_a_flood_of_tiny_fragments_holds_no_more_than_its_payload() -> None:
    # 50,000 one-byte fragments of a message never finished: what is held is the payload received (50 KB), in one
    # buffer -- not an object per fragment (~40 bytes each, 2 MB here: the flood would hold ~40x its payload).
    import tracemalloc

    proto = opened()
    assert proto.receive_data(cf(Opcode.BINARY, b"a", fin=False)) == []
    chunk = cf(Opcode.CONTINUATION, b"b", fin=False) * 10_000
    tracemalloc.start()
    try:
        for _ in range(5):
            assert proto.receive_data(chunk) == []
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 2 * 50_000 + 64 * 1024, held
