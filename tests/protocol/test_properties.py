"""Hypothesis properties of the protocol core.

1. Any bytes, in any chunking, give the same events and the same ``data_to_send()`` as in one chunk, and
   ``receive_data`` never raises.
2. Messages serialized as masked frames (random fragmentation, interleaved pings) parse back to the same
   messages, in any chunking.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snow_rt_py.protocol.close import build_close_payload, parse_close_payload
from snow_rt_py.protocol.connection import ServerProtocol, State
from snow_rt_py.protocol.errors import ProtocolError, UsageError
from snow_rt_py.protocol.events import (
    BinaryMessage,
    CloseReceived,
    ConnectionLost,
    Event,
    Ping,
    Request,
    TextMessage,
)
from snow_rt_py.protocol.frames import Opcode, encode_frame, parse_frame

REQUEST = (
    b"GET / HTTP/1.1\r\n"
    b"Host: h\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Run:
    events: list[Event]
    output: bytes
    state: State


def run(chunks: list[bytes], *, eof: bool = True, **options: int) -> Run:
    """Feed the chunks (accepting any Request at once), then EOF; collect every event and output byte."""
    proto = ServerProtocol(**options)  # type: ignore[arg-type]
    events: list[Event] = []
    output = []
    for chunk in chunks:
        assert chunk, "an empty chunk would mean EOF"
        for event in proto.receive_data(chunk):
            events.append(event)
            if isinstance(event, Request):
                events += proto.accept()
        output.append(proto.data_to_send())
    if eof:
        events += proto.receive_data(b"")
        output.append(proto.data_to_send())
    return Run(events, b"".join(output), proto.state)


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` split at arbitrary points (no empty chunk)."""
    if not data:
        return []
    cuts = draw(st.lists(st.integers(1, len(data) - 1), max_size=20)) if len(data) > 1 else []
    if draw(st.booleans()) and len(data) < 400:
        cuts = list(range(1, len(data)))  # one byte at a time
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# A frame the way a fuzzing client could send it: mostly valid (so that streams get past their first frame),
# sometimes not, in every way the protocol checks.
opcodes = st.sampled_from(
    [Opcode.TEXT] * 4 + [Opcode.BINARY] * 4 + [Opcode.CONTINUATION] * 3 + [Opcode.PING] * 2
    + [Opcode.PONG, Opcode.CLOSE, 3, 0xB]
)  # fmt: skip
payloads = st.one_of(
    st.binary(max_size=20),
    st.text(max_size=20).map(str.encode),
    st.text(max_size=20).map(str.encode),
    st.sampled_from([b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x82\xac", b"\x03\xe8bye", b"\x03"]),
    st.integers(100, 300).map(lambda n: b"x" * n),
)


@st.composite
def fuzz_frames(draw: st.DrawFn) -> bytes:
    opcode = draw(opcodes)
    payload = draw(payloads)
    fin = draw(st.sampled_from([True, True, False])) if opcode < 8 else draw(st.sampled_from([True] * 9 + [False]))
    rsv = draw(st.sampled_from([0] * 30 + [1, 4]))
    mask = None if draw(st.integers(0, 30)) == 0 else draw(st.binary(min_size=4, max_size=4))
    return encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask)


@st.composite
def fuzz_pieces(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 15)) == 0:
        return draw(st.binary(max_size=12))  # raw garbage, rarely: it almost always breaks the framing
    return draw(fuzz_frames())


fuzz_streams = st.lists(fuzz_pieces(), max_size=12).map(b"".join)


@PROPERTY_SETTINGS
@given(st.data(), fuzz_streams)
def test_frames_any_chunking_same_events(data: st.DataObject, stream: bytes) -> None:
    whole = run([stream] if stream else [], open=True, max_message_size=250)
    chunked = run(data.draw(chunkings(stream)), open=True, max_message_size=250)
    assert chunked == whole


@PROPERTY_SETTINGS
@given(st.data(), st.binary(max_size=300))
def test_random_bytes_any_chunking_same_events(data: st.DataObject, stream: bytes) -> None:
    whole = run([stream] if stream else [], open=True)
    chunked = run(data.draw(chunkings(stream)), open=True)
    assert chunked == whole


@PROPERTY_SETTINGS
@given(st.data(), fuzz_streams, st.integers(0, len(REQUEST) - 1), st.binary(max_size=3))
def test_handshake_and_frames_any_chunking_same_events(
    data: st.DataObject, stream: bytes, position: int, corruption: bytes
) -> None:
    request = REQUEST
    if data.draw(st.booleans()):  # sometimes damage the request
        request = REQUEST[:position] + corruption + REQUEST[position + 1 :]
    wire = request + stream
    whole = run([wire], max_handshake_size=len(REQUEST) + 1)
    chunked = run(data.draw(chunkings(wire)), max_handshake_size=len(REQUEST) + 1)
    assert chunked == whole


# -- round trip ---------------------------------------------------------------------------------------------


# Text without lone surrogates (they cannot be encoded as UTF-8), or bytes.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
messages = st.one_of(texts, st.binary(max_size=300))


@st.composite
def serialized(draw: st.DrawFn) -> tuple[bytes, list[Event], bytes]:
    """Masked frames for random messages, fragmented at random, with pings in between.

    Returns:
        The client's bytes, the events expected, and the pongs expected in ``data_to_send()``.
    """
    wire = []
    expected: list[Event] = []
    pongs = []
    for message in draw(st.lists(messages, max_size=8)):
        if isinstance(message, str):
            data, opcode = message.encode(), Opcode.TEXT
            event: Event = TextMessage(message)
        else:
            data, opcode = message, Opcode.BINARY
            event = BinaryMessage(message)
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
        bounds = [0, *cuts, len(data)]
        fragments = [data[a:b] for a, b in itertools.pairwise(bounds)]
        for i, fragment in enumerate(fragments):
            mask = draw(st.binary(min_size=4, max_size=4))
            last = i == len(fragments) - 1
            wire.append(encode_frame(opcode if i == 0 else Opcode.CONTINUATION, fragment, fin=last, mask=mask))
            if last:
                expected.append(event)
            if draw(st.integers(0, 3)) == 0:
                ping = draw(st.binary(max_size=125))
                wire.append(encode_frame(Opcode.PING, ping, mask=draw(st.binary(min_size=4, max_size=4))))
                expected.append(Ping(ping))
                pongs.append(encode_frame(Opcode.PONG, ping))
    return b"".join(wire), expected, b"".join(pongs)


@PROPERTY_SETTINGS
@given(st.data(), serialized())
def test_round_trip_messages(data: st.DataObject, case: tuple[bytes, list[Event], bytes]) -> None:
    wire, expected, pongs = case
    result = run(data.draw(chunkings(wire)), open=True)
    assert result.events == [*expected, ConnectionLost(clean=False)]
    assert result.output == pongs


@PROPERTY_SETTINGS
@given(
    st.one_of(st.integers(1000, 1003), st.integers(1007, 1014), st.integers(3000, 4999)),
    st.text(max_size=200),
    st.data(),
)
def test_close_round_trip(code: int, reason: str, data: st.DataObject) -> None:
    reason = reason.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    if len(reason.encode()) > 123:  # a reason that does not fit is refused, never cut (one rule for every caller)
        with pytest.raises(UsageError):
            build_close_payload(code, reason)
        reason = reason.encode()[:123].decode("utf-8", "ignore")
    payload = build_close_payload(code, reason)
    assert len(payload) <= 125
    sent_code, sent_reason = parse_close_payload(payload)
    assert sent_code == code
    assert sent_reason == reason
    frame = encode_frame(Opcode.CLOSE, payload, mask=b"abcd")
    result = run(data.draw(chunkings(frame)), open=True)
    assert result.events == [CloseReceived(code, sent_reason), ConnectionLost(clean=True)]
    assert result.output == encode_frame(Opcode.CLOSE, code.to_bytes(2, "big"))


@PROPERTY_SETTINGS
@given(st.binary(max_size=200), st.binary(min_size=4, max_size=4), st.booleans(), st.integers(0, 15))
def test_parse_frame_inverts_encode_frame(payload: bytes, mask: bytes, fin: bool, opcode: int) -> None:
    frame = encode_frame(opcode, payload, fin=fin, mask=mask)
    parsed = parse_frame(frame + b"more")
    assert parsed is not None
    decoded, end = parsed
    assert end == len(frame)
    assert (decoded.opcode, decoded.payload, decoded.fin, decoded.masked) == (opcode, payload, fin, True)


@PROPERTY_SETTINGS
@given(st.binary(max_size=130))
def test_close_payload_parser_only_raises_protocol_errors(payload: bytes) -> None:
    try:
        code, _ = parse_close_payload(payload)
    except ProtocolError as exc:
        assert exc.close_code in (1002, 1007)
    else:
        assert code == 1005 or 1000 <= code <= 4999


@PROPERTY_SETTINGS
@given(st.data(), serialized(), st.integers(0, 1 << 16), st.integers(0, 255))
def test_corrupted_valid_stream_any_chunking_same_events(
    data: st.DataObject, case: tuple[bytes, list[Event], bytes], position: int, value: int
) -> None:
    wire = case[0]
    if wire:
        position %= len(wire)
        wire = wire[:position] + bytes([value]) + wire[position + 1 :]
    whole = run([wire] if wire else [], open=True, max_message_size=200)
    chunked = run(data.draw(chunkings(wire)), open=True, max_message_size=200)
    assert chunked == whole


# -- large frames: payloads unmasked as they arrive ---------------------------------------------------------


@st.composite
def large_serialized(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    """A few messages of 64-200 KiB (the size from which an incomplete frame's payload is unmasked as it
    arrives), sometimes fragmented, text with multi-byte characters or binary, pings between fragments.

    Returns:
        The client's bytes and the message events expected.
    """
    rng = random.Random(draw(st.integers(0, 2**32)))
    wire = []
    messages: list[Event] = []
    for _ in range(draw(st.integers(1, 3))):
        size = draw(st.integers(64 << 10, 200 << 10))
        if draw(st.booleans()):
            text = "".join(rng.choice("aé✓🐍") for _ in range(size // 3))
            data, opcode, event = text.encode(), Opcode.TEXT, TextMessage(text)
        else:
            blob = rng.randbytes(size)
            data, opcode, event = blob, Opcode.BINARY, BinaryMessage(blob)
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=2)))
        bounds = [0, *cuts, len(data)]
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            first, last = i == 0, i == len(bounds) - 2
            frame_opcode = opcode if first else Opcode.CONTINUATION
            wire.append(encode_frame(frame_opcode, data[a:b], fin=last, mask=rng.randbytes(4)))
            if draw(st.integers(0, 2)) == 0:
                wire.append(encode_frame(Opcode.PING, b"p", mask=rng.randbytes(4)))
        messages.append(event)
    return b"".join(wire), messages


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), large_serialized())
def test_large_frames_any_chunking(data: st.DataObject, case: tuple[bytes, list[Event]]) -> None:
    """In one chunk every frame is complete; cut anywhere, large payloads are unmasked as they arrive. Both give
    the same events and output, and the messages are the ones sent."""
    wire, messages = case
    whole = run([wire], open=True)
    chunked = run(data.draw(chunkings(wire)), open=True)
    assert chunked == whole
    assert [e for e in whole.events if isinstance(e, TextMessage | BinaryMessage)] == messages
