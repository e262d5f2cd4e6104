"""The shared frame side (protocol/framing.py) with the peer's masking the other way round: frames from a server.

ServerProtocol expects masked frames (tests/protocol/test_connection.py); a side whose peer must NOT mask (a
client's) only sets ``_PEER_MASK = 0``. These tests drive the frame side that way, with the server's frames as they
are on the wire, so the unmasked paths of the one receive loop are exercised: small, medium and large frames,
fragments, a large frame and a text frame arriving in pieces, and a masked frame refused with 1002.
"""

from __future__ import annotations

import pytest

from snow_rt_py.protocol.events import (
    BinaryMessage,
    CloseReceived,
    Event,
    Ping,
    ProtocolFailure,
    TextMessage,
)
from snow_rt_py.protocol.frames import Opcode, encode_frame
from snow_rt_py.protocol.framing import FrameProtocol
from snow_rt_py.protocol.state import State


class _UnmaskedPeer(FrameProtocol):
    """The frame side as a client would configure it (the handshake is skipped: ``open=True``)."""

    __slots__ = ()
    _PEER_MASK = 0
    _PEER_MASK_ERROR = "server frame masked"


def sf(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """A server frame (unmasked)."""
    return encode_frame(opcode, payload, fin=fin)


def feed(proto: FrameProtocol, data: bytes, chunk: int) -> list[Event]:
    events: list[Event] = []
    for i in range(0, len(data), chunk):
        events += proto.receive_data(data[i : i + chunk])
    return events


BIG = bytes(range(256)) * 400  # 102,400 bytes: over the size from which a frame arriving in pieces is streamed
TEXT = "é" * 100 + "snow ❄"  # over 125 bytes of UTF-8, multi-byte characters cut by small chunks
STREAM = (
    sf(Opcode.TEXT, b"hi")
    + sf(Opcode.BINARY, bytes(200))
    + sf(Opcode.PING, b"p")
    + sf(Opcode.BINARY, BIG)
    + sf(Opcode.TEXT, TEXT.encode()[:50], fin=False)
    + sf(Opcode.CONTINUATION, TEXT.encode()[50:])
    + sf(Opcode.TEXT, TEXT.encode())
)
EXPECTED: list[Event] = [
    TextMessage("hi", b"hi"),
    BinaryMessage(bytes(200)),
    Ping(b"p"),
    BinaryMessage(BIG),
    TextMessage(TEXT, TEXT.encode()),
    TextMessage(TEXT, TEXT.encode()),
]


@pytest.mark.parametrize("chunk", [len(STREAM), 4096, 7, 1])
def test_unmasked_frames_give_the_same_events_in_any_chunking(chunk: int) -> None:
    proto = _UnmaskedPeer(open=True)
    assert feed(proto, STREAM, chunk) == EXPECTED
    assert proto.data_to_send() == b"\x8a\x01p"  # the Ping's answer
    assert proto.state is State.OPEN


def test_a_masked_frame_from_a_peer_that_must_not_mask_fails_with_1002() -> None:
    proto = _UnmaskedPeer(open=True)
    masked = encode_frame(Opcode.TEXT, b"hi", mask=b"\x01\x02\x03\x04")
    assert proto.receive_data(masked) == [ProtocolFailure(1002, "server frame masked")]
    assert proto.data_to_send() == b"\x88\x15\x03\xeaserver frame masked"
    assert proto.state is State.CLOSED


def test_invalid_utf8_in_a_text_frame_arriving_in_pieces_fails_with_1007() -> None:
    proto = _UnmaskedPeer(open=True)
    frame = sf(Opcode.TEXT, b"ok" * 100 + b"\xff" + b"x" * 100)  # 4-byte header: the 0xFF is byte 204
    assert feed(proto, frame[:200], 50) == []
    # Failed as soon as the piece holding the bad byte arrives, not once the whole frame has.
    assert proto.receive_data(frame[200:250]) == [ProtocolFailure(1007, "invalid UTF-8 in text message")]


def test_close_from_an_unmasked_peer_is_answered() -> None:
    proto = _UnmaskedPeer(open=True)
    assert proto.receive_data(sf(Opcode.CLOSE, b"\x03\xe8bye")) == [CloseReceived(1000, "bye")]
    assert proto.data_to_send() == b"\x88\x02\x03\xe8"
    assert proto.state is State.CLOSED
