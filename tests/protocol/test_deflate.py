"""permessage-deflate (RFC 7692) in the protocol layer: every negotiation rule (section named in each test), the
per-message transform, the RSV1 rules, the bounded inflate (the bomb), corrupt data, and round trips."""

from __future__ import annotations

import os
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snow_rt_py.protocol import BinaryMessage, ProtocolFailure, ServerProtocol, TextMessage
from snow_rt_py.protocol.deflate import (
    TAIL,
    Inflater,
    compress_message,
    negotiate,
    new_compressor,
    parse_extensions,
)
from snow_rt_py.protocol.frames import encode_frame, parse_frame

# -- negotiation -------------------------------------------------------------------------------------------------


def answer(offer: str | list[str], *, context_takeover: bool = False, window_bits: int = 15) -> str | None:
    """Our Sec-WebSocket-Extensions answer to ``offer`` (None: declined, no compression)."""
    params = negotiate([offer] if isinstance(offer, str) else offer, context_takeover=context_takeover,
                       window_bits=window_bits)  # fmt: skip
    return None if params is None else params.response


def test_rfc7692_s5_1_first_acceptable_offer_in_order_others_ignored() -> None:
    offers = "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=10, permessage-deflate"
    assert answer(offers) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10"
    )
    # Several header lines are one list, in order.
    assert answer(["foo", "permessage-deflate; server_max_window_bits=12"]) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12"
    )


def test_rfc6455_s9_1_unknown_extensions_only_means_no_compression() -> None:
    assert answer("x-webkit-deflate-frame; no_context_takeover") is None
    assert answer("") is None
    assert negotiate([], context_takeover=False) is None


@pytest.mark.parametrize(
    "bad",
    [
        "permessage-deflate; foo",  # §7.1: a parameter not defined for an offer
        "permessage-deflate; foo=1",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",  # §7.1: the same parameter twice
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover=1",  # §7.1.1.1: takes no value
        "permessage-deflate; client_no_context_takeover=true",  # §7.1.1.2: takes no value
        "permessage-deflate; server_max_window_bits",  # §7.1.2.1: a value is required
        "permessage-deflate; server_max_window_bits=7",  # §7.1.2.1: 8 to 15
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",  # §7.1.2: no leading zero
        "permessage-deflate; server_max_window_bits=1a",
        "permessage-deflate; client_max_window_bits=7",  # §7.1.2.2: 8 to 15 when given
        "permessage-deflate; client_max_window_bits=",  # RFC 6455 §9.1 grammar: a value after "="
        'permessage-deflate; client_max_window_bits="10',  # unterminated quoted string
        'permessage-deflate; client_max_window_bits="1 0"',  # RFC 6455 §9.1: unquoted, a token
    ],
)
def test_rfc7692_s7_1_bad_offer_is_declined_and_the_next_one_tried(bad: str) -> None:
    assert answer(bad) is None
    assert answer([bad, "permessage-deflate"]) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    )


def test_rfc7692_s7_1_1_1_server_no_context_takeover_offered_is_always_answered() -> None:
    params = negotiate(["permessage-deflate; server_no_context_takeover"], context_takeover=True)
    assert params is not None and params.server_no_context_takeover
    assert params.response == "permessage-deflate; server_no_context_takeover"


def test_rfc7692_s7_1_1_2_shared_mode_asks_the_client_for_no_context_takeover() -> None:
    params = negotiate(["permessage-deflate"], context_takeover=False)
    assert params is not None and params.client_no_context_takeover and params.server_no_context_takeover
    # Dedicated: context takeover both ways, nothing to ask.
    params = negotiate(["permessage-deflate"], context_takeover=True)
    assert params is not None and params.response == "permessage-deflate"
    assert not params.client_no_context_takeover and not params.server_no_context_takeover


def test_rfc7692_s7_1_2_1_server_max_window_bits_same_or_smaller_and_only_if_offered() -> None:
    assert answer("permessage-deflate; server_max_window_bits=10", context_takeover=True, window_bits=12) == (
        "permessage-deflate; server_max_window_bits=10"
    )
    assert answer("permessage-deflate; server_max_window_bits=15", context_takeover=True, window_bits=12) == (
        "permessage-deflate; server_max_window_bits=12"
    )
    # Not offered: never in the answer, whatever window we use.
    assert "server_max_window_bits" not in (answer("permessage-deflate", context_takeover=True, window_bits=9) or "")
    # A quoted value is unquoted first (RFC 6455 §9.1).
    assert answer('permessage-deflate; server_max_window_bits="11"', context_takeover=True) == (
        "permessage-deflate; server_max_window_bits=11"
    )


def test_rfc7692_s7_1_2_2_client_max_window_bits_only_if_offered() -> None:
    # Offered without a value: dedicated mode picks our window for the client (less memory for our inflater).
    params = negotiate(["permessage-deflate; client_max_window_bits"], context_takeover=True, window_bits=11)
    assert params is not None
    assert params.response == "permessage-deflate; client_max_window_bits=11" and params.client_window_bits == 11
    # Offered with a value: same or smaller.
    assert answer("permessage-deflate; client_max_window_bits=9", context_takeover=True, window_bits=12) == (
        "permessage-deflate; client_max_window_bits=9"
    )
    # Not offered: never in the answer; the client may use 15, and so must our decompressor.
    params = negotiate(["permessage-deflate"], context_takeover=True, window_bits=10)
    assert params is not None and "client_max_window_bits" not in params.response and params.client_window_bits == 15


def test_rfc7692_s7_1_2_1_window_bits_8_is_kept_with_rle() -> None:
    """zlib cannot compress raw deflate with an 8-bit window; Z_RLE (distance-1 matches only) keeps the promise."""
    params = negotiate(["permessage-deflate; server_max_window_bits=8"], context_takeover=False)
    assert params is not None and params.rle and "server_max_window_bits=8" in params.response
    compressor = new_compressor(params.server_window_bits, rle=params.rle)
    message = os.urandom(300) * 20 + b"a" * 5000  # repeats at distance 300 > 256: a plain compressor would use them
    payload = compress_message(compressor, message, reset=True)
    assert len(payload) < len(message)
    # A decompressor with a 256-byte window (what the client may use) inflates it.
    assert zlib.decompressobj(-8).decompress(payload + TAIL) == message


def test_parse_extensions_grammar() -> None:
    assert parse_extensions(['a; b=1; c="x y"', " , d;e", "f;;"]) == [
        None,  # a quoted value must unquote to a token
        ("d", [("e", None)]),
        None,  # an empty parameter
    ]
    assert parse_extensions(['permessage-deflate; client_max_window_bits="12"']) == [
        ("permessage-deflate", [("client_max_window_bits", "12")])
    ]


# -- frames and messages -----------------------------------------------------------------------------------------


def client_frames(
    message: bytes, *, opcode: int = 1, compressor: object = None, reset: bool = True, fragment: int = 0
) -> bytes:
    """What a client sends: ``message`` compressed (RFC 7692 §7.2.1), in frames of ``fragment`` bytes (0: one)."""
    c = compressor if compressor is not None else new_compressor(15)
    payload = compress_message(c, message, reset=reset)
    pieces = [payload] if not fragment else [payload[i : i + fragment] for i in range(0, len(payload), fragment)]
    pieces = pieces or [b""]
    out = b""
    for i, piece in enumerate(pieces):
        out += encode_frame(
            opcode if i == 0 else 0,
            piece,
            fin=i == len(pieces) - 1,
            rsv=4 if i == 0 else 0,  # RFC 7692 §6: RSV1 on the first frame only
            mask=os.urandom(4),
        )
    return out


def deflate_protocol(*, max_message_size: int = 1 << 20, context_takeover: bool = False) -> ServerProtocol:
    return ServerProtocol(
        open=True, max_message_size=max_message_size, inflater=Inflater(context_takeover=context_takeover)
    )


def close_code(proto: ServerProtocol) -> int:
    frame = parse_frame(proto.data_to_send())
    assert frame is not None and frame[0].opcode == 8
    return int.from_bytes(frame[0].payload[:2], "big")


def test_rfc7692_s6_compressed_unfragmented_and_fragmented_messages() -> None:
    proto = deflate_protocol()
    assert proto.receive_data(client_frames(b"hello " * 100)) == [TextMessage("hello " * 100)]
    assert proto.receive_data(client_frames(b"\x00\xff" * 5000, opcode=2, fragment=7)) == [
        BinaryMessage(b"\x00\xff" * 5000)
    ]
    # Uncompressed messages still work (RSV1 clear): compression is per message.
    assert proto.receive_data(encode_frame(1, b"plain", mask=b"abcd")) == [TextMessage("plain")]


def test_rfc7692_s6_rsv1_without_the_extension_is_1002() -> None:
    proto = ServerProtocol(open=True)
    events = proto.receive_data(client_frames(b"hello"))
    assert events == [ProtocolFailure(1002, "reserved bits set")] and close_code(proto) == 1002


def test_rfc7692_s6_1_rsv1_on_a_continuation_frame_is_1002() -> None:
    proto = deflate_protocol()
    c = new_compressor(15)
    payload = compress_message(c, b"abcdef" * 10, reset=True)
    data = encode_frame(1, payload[:3], fin=False, rsv=4, mask=b"abcd")
    data += encode_frame(0, payload[3:], fin=True, rsv=4, mask=b"abcd")
    assert proto.receive_data(data) == [ProtocolFailure(1002, "reserved bits set")]
    assert close_code(proto) == 1002


@pytest.mark.parametrize("opcode", [8, 9, 10])
def test_rfc7692_s6_rsv1_on_a_control_frame_is_1002(opcode: int) -> None:
    proto = deflate_protocol()
    assert proto.receive_data(encode_frame(opcode, b"", rsv=4, mask=b"abcd")) == [
        ProtocolFailure(1002, "reserved bits set")
    ]


@pytest.mark.parametrize("rsv", [2, 1, 6])
def test_rfc7692_s6_rsv2_rsv3_stay_1002_with_the_extension(rsv: int) -> None:
    proto = deflate_protocol()
    assert proto.receive_data(encode_frame(1, b"x", rsv=rsv, mask=b"abcd")) == [
        ProtocolFailure(1002, "reserved bits set")
    ]


def test_corrupt_deflate_data_is_1007() -> None:
    proto = deflate_protocol()
    events = proto.receive_data(encode_frame(2, b"\xff\xfe\xfd garbage", rsv=4, mask=b"abcd"))
    assert events == [ProtocolFailure(1007, "invalid compressed data")] and close_code(proto) == 1007


def test_compressed_text_that_is_not_utf8_is_1007() -> None:
    proto = deflate_protocol()
    assert proto.receive_data(client_frames(b"ok \xff\xfe", fragment=3)) == [
        ProtocolFailure(1007, "invalid UTF-8 in text message")
    ]
    proto = deflate_protocol()
    assert proto.receive_data(client_frames(b"ok \xff\xfe")) == [ProtocolFailure(1007, "invalid UTF-8 in text message")]


def test_the_limit_is_on_the_decompressed_size() -> None:
    limit = 10_000
    ok = deflate_protocol(max_message_size=limit)
    assert ok.receive_data(client_frames(b"a" * limit)) == [TextMessage("a" * limit)]
    over = deflate_protocol(max_message_size=limit)
    events = over.receive_data(client_frames(b"a" * (limit + 1), fragment=5))
    assert events == [ProtocolFailure(1009, "message too big")] and close_code(over) == 1009


def test_the_bomb_1_mib_of_compressed_zeros_never_inflates_past_the_limit() -> None:
    """A 1 MiB frame of compressed zeros (it inflates to about 1 GiB) fails with 1009, and the process allocates
    about the limit while finding out, not the gigabyte."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    payload = bytearray()
    while len(payload) < 1 << 20:
        payload += c.compress(chunk)
    payload = payload[: 1 << 20]  # cut anywhere: the data is valid up to there
    frame = encode_frame(2, bytes(payload), rsv=4, mask=b"\x01\x02\x03\x04")
    limit = 4 << 20
    proto = deflate_protocol(max_message_size=limit)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        events = proto.receive_data(frame)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert events == [ProtocolFailure(1009, "message too big")]
    # The limit + 1 byte of output, one inflate step (256 KiB, which zlib's output buffer may hold twice), and
    # copies of the 1 MiB frame: its unmasked payload and the input zlib has not consumed yet (Python's zlib hands it
    # back as a new object at each step, so two may be alive at once). Not the gigabyte.
    assert peak < limit + 3 * (1 << 20) + (1 << 20), peak


def test_context_takeover_inflater_keeps_the_window_between_messages() -> None:
    proto = deflate_protocol(context_takeover=True)
    c = new_compressor(15)
    message = b'{"user":"alice","text":"hello there"}'
    first = client_frames(message, compressor=c, reset=False)
    second = client_frames(message, compressor=c, reset=False)
    assert len(second) < len(first)  # the second refers to the first
    assert proto.receive_data(first + second) == [TextMessage(message.decode())] * 2


def test_bfinal_ends_the_stream_and_the_next_message_starts_a_new_one() -> None:
    """RFC 7692 §7.2.3.3 lets a sender end a message's data with a final block; the next starts afresh."""
    proto = deflate_protocol(context_takeover=True)
    for text in (b"first message", b"second message"):
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = c.compress(text) + c.flush(zlib.Z_FINISH)
        assert proto.receive_data(encode_frame(1, data, rsv=4, mask=b"abcd")) == [TextMessage(text.decode())]


# -- round trips ---------------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(
        st.one_of(
            st.text(max_size=3000).map(lambda t: (1, t.encode())),
            st.binary(max_size=3000).map(lambda b: (2, b)),
        ),
        min_size=1,
        max_size=5,
    ),
    context_takeover=st.booleans(),
    window_bits=st.integers(9, 15),
    fragment=st.integers(0, 300),
    chunk=st.integers(1, 500),
)
def test_any_message_any_chunking_any_mode_round_trips(
    messages: list[tuple[int, bytes]], context_takeover: bool, window_bits: int, fragment: int, chunk: int
) -> None:
    """Compressed (with or without context takeover, any window), fragmented anyhow, fed in any chunks: the server
    gets the messages back; and what the server compresses a standard inflater gets back."""
    proto = deflate_protocol(context_takeover=context_takeover)
    client = new_compressor(window_bits)
    wire = b"".join(
        client_frames(data, opcode=op, compressor=client, reset=not context_takeover, fragment=fragment)
        for op, data in messages
    )
    events = []
    for i in range(0, len(wire), chunk):
        events += proto.receive_data(wire[i : i + chunk])
    expected = [TextMessage(d.decode()) if op == 1 else BinaryMessage(d) for op, d in messages]
    assert events == expected
    # Server -> client: our compress_message, inflated by zlib with the client's (possibly persistent) inflater.
    server = new_compressor(window_bits)
    inflater = zlib.decompressobj(-window_bits)
    for _, data in messages:
        payload = compress_message(server, data, reset=not context_takeover)
        if not context_takeover:
            inflater = zlib.decompressobj(-window_bits)
        assert inflater.decompress(payload + TAIL) == data
