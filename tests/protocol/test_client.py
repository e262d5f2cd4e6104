"""protocol/client.py and client_handshake.py: the request on the wire, the response checks, masking, limits."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snow_rt_py.protocol.client import ClientProtocol, ResponseAccepted, ResponseRejected
from snow_rt_py.protocol.connection import ServerProtocol
from snow_rt_py.protocol.deflate import Inflater
from snow_rt_py.protocol.events import BinaryMessage, CloseReceived, Ping, ProtocolFailure, TextMessage
from snow_rt_py.protocol.frames import encode_frame, parse_frame
from snow_rt_py.protocol.handshake import accept_key


def request_of(client: ClientProtocol) -> tuple[list[str], str]:
    head = client.data_to_send().decode("latin-1")
    lines = head.split("\r\n")
    key = next(line.split(": ", 1)[1] for line in lines if line.startswith("Sec-WebSocket-Key: "))
    return lines, key


def response(key: str, *extra: str, status: str = "101 Switching Protocols") -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


def opened(**kwargs: object) -> ClientProtocol:
    client = ClientProtocol("example.com:8080", "/chat?x=1", **kwargs)  # type: ignore[arg-type]
    _, key = request_of(client)
    events = client.receive_data(response(key))
    assert isinstance(events[0], ResponseAccepted)
    assert client.finish_handshake() == []
    return client


def test_request_on_the_wire() -> None:
    client = ClientProtocol(
        "example.com:8080",
        "/chat?x=1",
        origin="https://app.example.com",
        subprotocols=["v2", "v1"],
        compression="shared",
        headers=[("Authorization", "Bearer t")],
    )
    lines, key = request_of(client)
    assert lines[:4] == [
        "GET /chat?x=1 HTTP/1.1",
        "Host: example.com:8080",
        "Upgrade: websocket",
        "Connection: Upgrade",
    ]
    assert len(base64.b64decode(key)) == 16
    assert lines[5:] == [
        "Sec-WebSocket-Version: 13",
        "Origin: https://app.example.com",
        "Sec-WebSocket-Protocol: v2, v1",
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "client_max_window_bits",
        "Authorization: Bearer t",
        "",
        "",
    ]
    assert request_of(ClientProtocol("h", "/"))[1] != key  # a fresh key each time


@pytest.mark.parametrize(
    ("extra", "status", "reason"),
    [
        ((), "403 Forbidden", "HTTP 403 Forbidden instead of 101"),
        (("Sec-WebSocket-Protocol: v3",), None, "server chose subprotocol 'v3', not offered"),
        (
            ("Sec-WebSocket-Extensions: permessage-deflate",),
            None,
            "server chose extension 'permessage-deflate', not offered",
        ),
        (("Sec-WebSocket-Extensions: x-custom",), None, "server chose extension 'x-custom', not offered"),
    ],
)
def test_invalid_responses_name_what_was_wrong(extra: tuple[str, ...], status: str | None, reason: str) -> None:
    client = ClientProtocol("h", "/", subprotocols=["v1"])
    _, key = request_of(client)
    events = client.receive_data(response(key, *extra, status=status or "101 Switching Protocols"))
    assert events == [ResponseRejected(reason, int(status[:3]) if status else 101, None)]
    assert client.state.name == "CLOSED"


def test_wrong_accept_missing_upgrade_garbage_and_eof() -> None:
    client = ClientProtocol("h", "/")
    request_of(client)
    bad = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n"
    assert client.receive_data(bad) == [ResponseRejected("wrong Sec-WebSocket-Accept ('AAAA')", 101, None)]
    client = ClientProtocol("h", "/")
    _, key = request_of(client)
    no_upgrade = response(key).replace(b"Upgrade: websocket\r\n", b"")
    assert client.receive_data(no_upgrade) == [ResponseRejected("missing or invalid Upgrade header: None", 101, None)]
    client = ClientProtocol("h", "/")
    assert client.receive_data(b"SSH-2.0") == [ResponseRejected("invalid HTTP response: b'SSH-2.0'", None, None)]
    client = ClientProtocol("h", "/")
    assert client.receive_data(b"HTTP/1.1 10") == []
    assert client.receive_data(b"") == [ResponseRejected("connection closed during the opening handshake", None, None)]


def test_redirect_carries_location() -> None:
    client = ClientProtocol("h", "/")
    request_of(client)
    events = client.receive_data(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
    assert events == [ResponseRejected("HTTP 302 Found instead of 101", 302, "/elsewhere")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("permessage-deflate; client_max_window_bits=15", "server_no_context_takeover missing"),
        ("permessage-deflate; server_no_context_takeover; client_max_window_bits", "client_max_window_bits=None"),
        ("permessage-deflate; server_no_context_takeover; client_max_window_bits=16", "client_max_window_bits=16"),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", "repeated"),
        ("permessage-deflate; server_no_context_takeover; foo", "unknown parameter foo"),
        ("permessage-deflate; server_no_context_takeover=1", "server_no_context_takeover takes no value"),
    ],
)
def test_deflate_response_parameters_rfc7692_s7(value: str, reason: str) -> None:
    client = ClientProtocol("h", "/", compression="shared")
    _, key = request_of(client)
    events = client.receive_data(response(key, f"Sec-WebSocket-Extensions: {value}"))
    assert isinstance(events[0], ResponseRejected) and events[0].reason.endswith(reason), events


def test_deflate_agreed_seen_from_our_side() -> None:
    client = ClientProtocol("h", "/", compression="dedicated")
    _, key = request_of(client)
    value = "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"
    [accepted] = client.receive_data(response(key, f"Sec-WebSocket-Extensions: {value}"))
    assert isinstance(accepted, ResponseAccepted) and accepted.deflate is not None
    ours = accepted.deflate
    assert (ours.server_window_bits, ours.client_window_bits) == (12, 10)  # ours: what we send with
    assert not ours.server_no_context_takeover and not ours.client_no_context_takeover


def test_frames_behind_the_response_wait_for_finish_handshake() -> None:
    client = ClientProtocol("h", "/")
    _, key = request_of(client)
    events = client.receive_data(response(key) + encode_frame(1, b"early"))
    assert len(events) == 1 and isinstance(events[0], ResponseAccepted)
    assert client.finish_handshake(None) == [TextMessage("early", b"early")]


def test_every_sent_frame_is_masked_with_a_fresh_key() -> None:
    client = opened()
    client.send_text("hi")
    client.send_binary(b"hi")
    client.send_ping(b"p")
    frames = b"".join(client.take_outgoing())
    keys = []
    pos = 0
    server = ServerProtocol(open=True)  # requires masked frames: fails an unmasked one with 1002
    while pos < len(frames):
        parsed = parse_frame(frames, pos)
        assert parsed is not None
        frame, pos = parsed
        assert frames[pos - len(frame.payload) - 5] & 0x80  # the MASK bit
        keys.append(frames[pos - len(frame.payload) - 4 : pos - len(frame.payload)])
    assert len(set(keys)) == 3
    assert server.receive_data(frames) == [TextMessage("hi", b"hi"), BinaryMessage(b"hi"), Ping(b"p")]


def test_masked_frame_from_server_is_1002_and_limits_are_the_servers() -> None:
    client = opened()
    events = client.receive_data(encode_frame(1, b"x", mask=b"abcd"))
    assert events == [ProtocolFailure(1002, "server frame masked")]
    client = opened(max_message_size=10)
    assert client.receive_data(encode_frame(2, b"x" * 11)) == [ProtocolFailure(1009, "message too big")]
    client = opened()
    assert client.receive_data(encode_frame(1, b"\xff")) == [ProtocolFailure(1007, "invalid UTF-8 in text message")]


def test_closing_handshake_client_side() -> None:
    client = opened()
    client.send_close(1000, "bye")
    assert client.state.name == "CLOSING"
    close = client.data_to_send()
    assert close[1] & 0x80  # masked
    assert client.receive_data(encode_frame(8, b"\x03\xe8")) == [CloseReceived(1000, "")]
    assert client.state.name == "CLOSED"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=64), max_size=40))
def test_any_chunking_of_the_servers_bytes_gives_the_same_events(sizes: list[int]) -> None:
    def run(chunks: list[int]) -> list[object]:
        client = ClientProtocol("h", "/", compression="shared")
        _, key = request_of(client)
        data = (
            response(key, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover")
            + encode_frame(1, b"caf\xc3\xa9", fin=False)
            + encode_frame(9, b"ping")
            + encode_frame(0, b"!")
            + encode_frame(2, bytes(range(200)))
            + encode_frame(8, b"\x03\xe8bye")
        )
        events: list[object] = []
        pos = 0
        for size in [*chunks, len(data)]:
            got = client.receive_data(data[pos : pos + size])
            for event in got:
                if isinstance(event, ResponseAccepted):
                    events.append("accepted")
                    events += client.finish_handshake(Inflater(context_takeover=False))
                else:
                    events.append(event)
            pos += size
            if pos >= len(data):
                break
        return events

    expected = run([10**6])
    assert expected == [
        "accepted",
        Ping(b"ping"),
        TextMessage("café!", b"caf\xc3\xa9!"),
        BinaryMessage(bytes(range(200))),
        CloseReceived(1000, "bye"),
    ]
    assert run(sizes) == expected
