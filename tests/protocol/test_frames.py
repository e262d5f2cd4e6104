"""Frame encoding and the reference frame parser (protocol/frames.py), RFC 6455 §5.2 and §5.7."""

from __future__ import annotations

import pytest

from snow_rt_py.protocol.errors import ProtocolError, UsageError
from snow_rt_py.protocol.frames import (
    Frame,
    Opcode,
    encode_binary,
    encode_frame,
    encode_text,
    frame_header,
    parse_frame,
)
from snow_rt_py.protocol.mask import HAVE_SPEEDUPS

RFC_MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # the masking key of the RFC 6455 §5.7 examples


def test_opcode_values() -> None:
    assert {op.name: int(op) for op in Opcode} == {
        "CONTINUATION": 0,
        "TEXT": 1,
        "BINARY": 2,
        "CLOSE": 8,
        "PING": 9,
        "PONG": 10,
    }


# -- RFC 6455 §5.7 examples, byte for byte ------------------------------------------------------------


def test_rfc_single_frame_unmasked_text() -> None:
    assert encode_frame(Opcode.TEXT, b"Hello") == bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    assert encode_text("Hello") == bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])


def test_rfc_single_frame_masked_text() -> None:
    expected = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert encode_frame(Opcode.TEXT, b"Hello", mask=RFC_MASK) == expected


def test_rfc_fragmented_unmasked_text() -> None:
    assert encode_frame(Opcode.TEXT, b"Hel", fin=False) == bytes([0x01, 0x03, 0x48, 0x65, 0x6C])
    assert encode_frame(Opcode.CONTINUATION, b"lo") == bytes([0x80, 0x02, 0x6C, 0x6F])


def test_rfc_unmasked_ping_and_masked_pong() -> None:
    assert encode_frame(Opcode.PING, b"Hello") == bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    expected = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert encode_frame(Opcode.PONG, b"Hello", mask=RFC_MASK) == expected


def test_rfc_256_bytes_binary_uses_16_bit_length() -> None:
    frame = encode_frame(Opcode.BINARY, bytes(256))
    assert frame[:4] == bytes([0x82, 0x7E, 0x01, 0x00])
    assert len(frame) == 4 + 256


def test_rfc_64_kib_binary_uses_64_bit_length() -> None:
    frame = encode_binary(bytes(65536))
    assert frame[:10] == bytes([0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00])
    assert len(frame) == 10 + 65536


# -- shortest length encoding at every boundary ---------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x82\x00"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (65535, b"\x82\x7e\xff\xff"),
        (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_shortest_length_encoding(size: int, header: bytes) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = encode_frame(Opcode.BINARY, payload)
    assert frame == header + payload
    assert type(frame) is bytes


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_masked_lengths_set_the_mask_bit(size: int) -> None:
    frame = encode_frame(Opcode.BINARY, b"x" * size, mask=RFC_MASK)
    assert frame[1] & 0x80
    parsed = parse_frame(frame)
    assert parsed is not None
    assert parsed == (Frame(Opcode.BINARY, b"x" * size, masked=True), len(frame))


def test_fin_and_rsv_bits() -> None:
    assert encode_frame(Opcode.TEXT, b"", fin=False)[0] == 0x01
    assert encode_frame(Opcode.TEXT, b"", rsv=4)[0] == 0xC1  # RSV1
    assert encode_frame(Opcode.TEXT, b"", rsv=2)[0] == 0xA1  # RSV2
    assert encode_frame(Opcode.TEXT, b"", rsv=1)[0] == 0x91  # RSV3
    assert encode_frame(0xB, b"")[0] == 0x8B  # reserved opcodes can be built for tests


def test_accepts_bytearray_and_memoryview_payloads() -> None:
    assert encode_frame(Opcode.BINARY, bytearray(b"ab")) == b"\x82\x02ab"
    assert encode_frame(Opcode.BINARY, memoryview(b"xaby")[1:3]) == b"\x82\x02ab"
    assert encode_binary(memoryview(b"ab")) == b"\x82\x02ab"


def test_encode_text_utf8() -> None:
    assert encode_text("é€") == b"\x81\x05\xc3\xa9\xe2\x82\xac"


@pytest.mark.parametrize(
    "call",
    [
        lambda: encode_frame(16, b""),
        lambda: encode_frame(-1, b""),
        lambda: encode_frame(Opcode.TEXT, b"", rsv=8),
        lambda: encode_frame(Opcode.TEXT, b"", mask=b"abc"),
        lambda: encode_text(b"bytes"),  # type: ignore[arg-type]
        lambda: encode_text("\udc80"),
        lambda: encode_binary("text"),  # type: ignore[arg-type]
    ],
)
def test_encoding_misuse_is_usage_error(call: object) -> None:
    with pytest.raises(UsageError):
        call()  # type: ignore[operator]


# -- parse_frame ------------------------------------------------------------------------------------------


def test_parse_needs_complete_frame() -> None:
    frame = encode_frame(Opcode.BINARY, b"x" * 300, mask=RFC_MASK)
    for cut in range(len(frame)):
        assert parse_frame(frame[:cut]) is None
    assert parse_frame(frame) == (Frame(Opcode.BINARY, b"x" * 300, masked=True), len(frame))


def test_parse_at_offset_and_bits() -> None:
    data = b"junk" + encode_frame(Opcode.CONTINUATION, b"ab", fin=False, rsv=5)
    assert parse_frame(data, 4) == (Frame(Opcode.CONTINUATION, b"ab", fin=False, rsv=5), len(data))


def test_parse_rejects_64_bit_length_with_top_bit() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame(b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00")
    assert info.value.close_code == 1002


@pytest.mark.parametrize("size", [0, 1, 124, 125, 126, 127, 65535, 65536])
def test_encode_text_and_binary_fast_paths_equal_the_general_encoder(size: int) -> None:
    from snow_rt_py.protocol.frames import encode_binary, encode_text

    text = "é" * (size // 2) + "a" * (size % 2)  # exactly `size` UTF-8 bytes
    assert encode_text(text) == encode_frame(Opcode.TEXT, text.encode())
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert encode_binary(data) == encode_frame(Opcode.BINARY, data)
    assert encode_binary(bytearray(data)) == encode_frame(Opcode.BINARY, data)
    assert encode_binary(memoryview(data)) == encode_frame(Opcode.BINARY, data)


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_frame_header_plus_payload_is_the_encoded_frame(length: int) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    assert frame_header(Opcode.BINARY, length) + payload == encode_frame(Opcode.BINARY, payload)


def test_frame_header_refuses_what_cannot_be_encoded() -> None:
    with pytest.raises(UsageError, match="does not fit in 4 bits"):
        frame_header(16, 1)
    with pytest.raises(UsageError, match="length -1 is negative"):
        frame_header(Opcode.TEXT, -1)


@pytest.mark.skipif(not HAVE_SPEEDUPS, reason="C accelerator snow_rt_py._speedups not in use")
@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, (1 << 32) + 5, (1 << 63) - 1])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_c_frame_header_is_frame_header(opcode: Opcode, length: int) -> None:
    """The header the C ABI's reply fast path writes (protocol/_codec.c) is byte for byte frame_header()'s."""
    from snow_rt_py import _speedups

    out = _speedups.ffi.new("char[10]")
    size = _speedups.lib.snow_frame_header(out, opcode, length)
    assert size == _speedups.lib.snow_frame_header_size(length)
    assert _speedups.ffi.unpack(out, size) == frame_header(opcode, length)
