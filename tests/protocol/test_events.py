"""The protocol's events (protocol/events.py) and the runtime's (presence, exit signals) are immutable values."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from snow_rt_py.protocol import Headers, ServerProtocol, encode_frame
from snow_rt_py.protocol import events as ev
from snow_rt_py.runtime.presence import Member, PresenceEvent
from snow_rt_py.runtime.scheduler import ExitSignal

HEADERS = Headers([("Host", "x")])
EXAMPLES: list[Any] = [
    ev.Request("/chat", HEADERS),
    ev.HttpRequest("GET", "/", HEADERS),
    ev.HandshakeFailure(400, "bad"),
    ev.TextMessage("hé", "hé".encode()),
    ev.BinaryMessage(b"\x00\x01"),
    ev.Ping(b"p"),
    ev.Pong(b"p"),
    ev.CloseReceived(1000, "bye"),
    ev.ProtocolFailure(1002, "reserved bits set"),
    ev.ConnectionLost(clean=True),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_assigning_any_field_of_a_protocol_event_raises_and_changes_nothing(event: Any) -> None:
    assert event.__match_args__  # every event names its fields
    for name in event.__match_args__:
        before = getattr(event, name)
        with pytest.raises(AttributeError):
            setattr(event, name, "changed")
        with pytest.raises(AttributeError):
            delattr(event, name)
        assert getattr(event, name) is before
    with pytest.raises(AttributeError):
        event.extra = 1  # no attribute can be added either


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_a_protocol_event_equals_a_copy_and_hashes_like_it(event: Any) -> None:
    copy = type(event)(*(getattr(event, name) for name in event.__match_args__))
    assert copy is not event and copy == event
    if not isinstance(event, ev.Request | ev.HttpRequest):  # Headers, a mutable mapping, has no hash
        assert hash(copy) == hash(event) and {event: 1}[copy] == 1


def test_a_protocol_event_shows_its_class_and_fields() -> None:
    assert repr(ev.TextMessage("hé", b"h\xc3\xa9")) == "TextMessage(data='hé', raw=b'h\\xc3\\xa9')"
    assert repr(ev.CloseReceived(1000, "bye")) == "CloseReceived(code=1000, reason='bye')"
    assert repr(ev.ConnectionLost(clean=False)) == "ConnectionLost(clean=False)"


def test_protocol_events_compare_by_class_and_fields() -> None:
    assert ev.Ping(b"x") != ev.Pong(b"x")  # same field, another class
    assert ev.CloseReceived(1000, "") != ev.ProtocolFailure(1000, "")
    assert ev.CloseReceived(1000, "a") != ev.CloseReceived(1000, "b")
    assert ev.TextMessage("a", b"a") == ev.TextMessage("a")  # raw is not part of equality
    assert ev.TextMessage("a") != ev.TextMessage("b")
    assert ev.BinaryMessage(b"a") != (b"a",) and ev.TextMessage("a") != "a"
    match ev.TextMessage("hi", b"hi"):
        case ev.TextMessage(text, raw):
            assert (text, raw) == ("hi", b"hi")
        case _:  # pragma: no cover
            pytest.fail("TextMessage did not match its positional pattern")


def test_events_the_parser_returns_are_immutable() -> None:
    """What a caller receives from receive_data (the C or the Python parser, whichever is built) cannot be changed."""
    proto = ServerProtocol(open=True)
    frames = [encode_frame(op, data, mask=b"abcd") for op, data in [(1, "héllo".encode()), (2, b"\x01"), (9, b"p")]]
    got = proto.receive_data(b"".join(frames))
    assert got == [ev.TextMessage("héllo"), ev.BinaryMessage(b"\x01"), ev.Ping(b"p")]
    assert got[0].raw == "héllo".encode()
    with pytest.raises(AttributeError):
        got[0].data = "other"
    with pytest.raises(AttributeError):
        got[1].data = b"other"
    assert got[0].data == "héllo" and got[1].data == b"\x01"


@pytest.mark.parametrize(
    "event",
    [Member(7, 1, "ann"), PresenceEvent("room", "join", Member(7, 1, "ann")), ExitSignal(3, "normal")],
    ids=lambda e: type(e).__name__,
)
def test_runtime_events_are_immutable(event: Any) -> None:
    for field in dataclasses.fields(event):
        before = getattr(event, field.name)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, field.name, "changed")
        assert getattr(event, field.name) is before
