"""What each fuzz harness checks on one input: shared by the atheris harnesses (fuzz/fuzz_*.py) and by the
regression test that replays the committed corpus and every crash input ever found (tests/protocol/test_fuzz.py).

An input's first byte chooses how the rest is cut into chunks (the parsers must give the same answer in any
chunking); the rest is what the peer sends. A check raises AssertionError for a broken rule; any other exception
escaping the parser is a bug too.
"""

from __future__ import annotations

import struct

from snow_rt_py.protocol.close import is_sendable_code
from snow_rt_py.protocol.connection import ServerProtocol
from snow_rt_py.protocol.deflate import Inflater
from snow_rt_py.protocol.errors import HandshakeError, ProtocolError
from snow_rt_py.protocol.events import (
    BinaryMessage,
    CloseReceived,
    ConnectionLost,
    Event,
    Ping,
    Pong,
    ProtocolFailure,
    TextMessage,
)
from snow_rt_py.protocol.handshake import ParsedRequest, PlainRequest, RequestParser, build_response_101
from snow_rt_py.protocol.negotiation import OriginPolicy, offered_subprotocols, select_subprotocol
from snow_rt_py.testing import parse_frame

MAX_HANDSHAKE = 1024
MAX_MESSAGE = 4096
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
_POLICY = OriginPolicy(["https://a.example.com", "https://*.example.org"])


def chunks(data: bytes) -> tuple[list[bytes], bytes]:
    """``(the peer's bytes cut by the first byte's rule, the peer's bytes whole)``."""
    if not data:
        return [], b""
    step = data[0] % 17 + 1  # 1..17 bytes a chunk
    body = data[1:]
    return [body[i : i + step] for i in range(0, len(body), step)], body


def _parse_request(pieces: list[bytes]) -> tuple[str, object]:
    parser = RequestParser(MAX_HANDSHAKE)
    try:
        for piece in pieces:
            result = parser.feed(piece)
            if result is not None:
                return "request", result
    except HandshakeError as exc:
        assert 400 <= exc.status <= 599, f"a handshake error with status {exc.status}"
        return "error", exc.status
    return "incomplete", None


def check_handshake(data: bytes) -> None:
    """The handshake parser: never an unexpected exception, the same outcome in one piece and in chunks, a 4xx
    for every refusal, and a parsed request whose answer can be built and whose headers the negotiation reads."""
    pieces, whole = chunks(data)
    one = _parse_request([whole] if whole else [])
    many = _parse_request(pieces)
    assert one[0] == many[0], f"outcome {one[0]} in one piece, {many[0]} in chunks"
    if one[0] == "error":
        assert one[1] == many[1], f"status {one[1]} in one piece, {many[1]} in chunks"
    result = one[1]
    if isinstance(result, ParsedRequest):
        assert isinstance(many[1], ParsedRequest) and many[1].headers == result.headers
        build_response_101(result.key)
        offered = offered_subprotocols(result.headers)
        chosen = select_subprotocol(offered, ["chat", "v2"])
        assert chosen is None or chosen in offered
        _POLICY.check(result.headers)
    elif isinstance(result, PlainRequest):
        assert isinstance(many[1], PlainRequest)


def _run_frames(pieces: list[bytes], inflater: Inflater | None = None) -> tuple[list[Event], bytes]:
    proto = ServerProtocol(max_message_size=MAX_MESSAGE, max_handshake_size=MAX_HANDSHAKE)
    proto.receive_data(REQUEST)
    if inflater is not None:
        proto.enable_deflate(inflater)
    events: list[Event] = list(proto.accept())
    for piece in pieces:
        events += proto.receive_data(piece)
    events += proto.receive_data(b"")  # EOF
    return events, b"".join(proto.take_outgoing())


def check_frames(data: bytes) -> None:
    """The frame parser after a valid handshake: never an unexpected exception, the same events and output in one
    piece and in chunks, at most one end (Close received or protocol failure), no data event after it, and every
    Close we send carries a code that may be sent."""
    pieces, whole = chunks(data)
    events, output = _run_frames([whole] if whole else [])
    events_chunked, output_chunked = _run_frames(pieces)
    assert events == events_chunked, "different events in one piece and in chunks"
    assert output == output_chunked, "different output in one piece and in chunks"
    ended = False
    for event in events:
        if isinstance(event, CloseReceived | ProtocolFailure):
            assert not ended, "two ends"
            ended = True
            if isinstance(event, ProtocolFailure):
                assert is_sendable_code(event.code), f"failed with close code {event.code}"
        elif isinstance(event, TextMessage | BinaryMessage | Ping | Pong):
            assert not ended, f"{type(event).__name__} after the end"
        elif isinstance(event, ConnectionLost):
            pass
    _check_output(output)


def _check_output(output: bytes) -> None:
    """Our frames (after the 101): unmasked, and nothing after our Close."""
    pos = output.index(b"\r\n\r\n") + 4
    closed = False
    while pos < len(output):
        assert not closed, "a frame after our Close"
        parsed = parse_frame(output, pos)
        assert parsed is not None, "a truncated frame"
        frame, pos = parsed
        assert not frame.masked, "a masked server frame"
        if frame.opcode == 8:
            closed = True
            code = frame.close_code()
            if code is not None:
                assert is_sendable_code(code) and code not in (1005, 1006), f"we sent close code {code}"


def _inflate_parts(parts: list[bytes], takeover: bool, window_bits: int) -> tuple[str, object]:
    """One compressed message whose frames carry ``parts``: ``("ok", bytes)`` or ``("error", close code)``."""
    inflater = Inflater(context_takeover=takeover, window_bits=window_bits)
    out: list[bytes] = []
    left = MAX_MESSAGE
    try:
        for i, part in enumerate(parts):
            got = inflater.feed(part, left, i == len(parts) - 1)
            left -= len(got)
            out.append(got)
    except ProtocolError as exc:
        assert exc.close_code in (1007, 1009), f"inflate failed with close code {exc.close_code}"
        return "error", int(exc.close_code)
    result = b"".join(out)
    assert len(result) <= MAX_MESSAGE, f"{len(result)} bytes inflated over a limit of {MAX_MESSAGE}"
    return "ok", result


def check_inflate(data: bytes) -> None:
    """The inflater (permessage-deflate, RFC 7692 §7.2.2), on any bytes as a compressed message: only 1007 (not
    deflate) or 1009 (over the limit, found without inflating more than the limit + 1 byte) escapes, the same result
    whether the message comes in one frame or in several; then the same bytes as the payload of RSV1 frames through
    the frame parser with the extension negotiated, which keeps the frame harness's rules."""
    if not data:
        return
    takeover = bool(data[0] & 0x80)
    window_bits = 8 + (data[0] >> 4 & 7)
    pieces, whole = chunks(data)
    one = _inflate_parts([whole], takeover, window_bits)
    many = _inflate_parts(pieces or [b""], takeover, window_bits)
    if one != many and not (one[0] == "error" and many[0] == "error"):
        # (Both refusing with different codes is fine: whether the limit (1009) or corrupt data (1007) is met first
        # can depend on where zlib's calls stop, fuzz/regressions/inflate/crash-3459e765....)
        # zlib checks a back-reference against the window only across calls: a stream that reaches further back
        # than the negotiated window (the client breaking its own parameters) inflates in one frame and fails with
        # 1007 in several (fuzz/regressions/inflate/crash-e41ebb18...). Never the other way round.
        assert one[0] == "ok" and many == ("error", 1007), f"{one[0]} in one frame, {many} in several"
    # The same payload in a masked text frame with RSV1 (then a ping), through the parser, whole and in pieces.
    payload = whole[:MAX_MESSAGE]
    key = b"\x01\x02\x03\x04"
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes([0xC1, 0x80 | n]) if n < 126 else bytes([0xC1, 0x80 | 126]) + struct.pack("!H", n)
    stream = head + key + masked + bytes([0x89, 0x80]) + key
    step = data[0] % 17 + 1
    events, output = _run_frames([stream], Inflater(context_takeover=takeover, window_bits=window_bits))
    events_chunked, output_chunked = _run_frames(
        [stream[i : i + step] for i in range(0, len(stream), step)],
        Inflater(context_takeover=takeover, window_bits=window_bits),
    )
    assert events == events_chunked, "different events in one piece and in chunks"
    assert output == output_chunked, "different output in one piece and in chunks"
    for event in events:
        if isinstance(event, ProtocolFailure):
            assert event.code in (1007, 1009), f"a compressed message failed with close code {event.code}"
        elif isinstance(event, TextMessage):
            assert len(event.raw) <= MAX_MESSAGE
    _check_output(output)
