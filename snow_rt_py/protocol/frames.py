"""The RFC 6455 §5.2 base framing: opcodes, encoding frames, and a simple one-frame parser.

Wire format of a frame::

    byte 0: FIN(1) RSV1(1) RSV2(1) RSV3(1) opcode(4)
    byte 1: MASK(1) length(7)        length 0-125: the payload length
                                     126: a 16-bit big-endian length follows
                                     127: a 64-bit big-endian length follows (top bit must be 0)
    [masking key, 4 bytes, if MASK]
    payload (XORed with the masking key, if MASK)

This module knows the wire format only. The rules of a conversation (clients mask, control frames are short
and unfragmented, reserved opcodes are errors, messages are reassembled...) are enforced by
:class:`snow_rt_py.protocol.connection.ServerProtocol`, whose hot path parses headers inline for speed. The
encoders here deliberately accept frames those rules forbid, so tests and clients can produce them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from snow_rt_py.protocol.close import CloseCode
from snow_rt_py.protocol.errors import ProtocolError, UsageError
from snow_rt_py.protocol.mask import apply_mask

__all__ = [
    "Frame",
    "Opcode",
    "encode_binary",
    "encode_frame",
    "encode_text",
    "frame_header",
    "parse_frame",
]

BytesLike = bytes | bytearray | memoryview

_FIN = 0x80
_MASK_BIT = 0x80
_LEN16 = 126  # RFC 6455 §5.2: a 16-bit extended length follows
_LEN64 = 127  # RFC 6455 §5.2: a 64-bit extended length follows
_PACK16 = struct.Struct("!BBH").pack
_PACK64 = struct.Struct("!BBQ").pack
# Headers of unmasked, final text and binary frames with a 7-bit length (0-125 bytes), built once.
_TEXT_HEADERS = [bytes((_FIN | 0x1, n)) for n in range(_LEN16)]
_BINARY_HEADERS = [bytes((_FIN | 0x2, n)) for n in range(_LEN16)]


class Opcode(IntEnum):
    """Frame opcodes; 0x3-0x7 and 0xB-0xF are reserved (RFC 6455 §5.2, §11.8)."""

    CONTINUATION = 0x0  # RFC 6455 §5.4
    TEXT = 0x1  # RFC 6455 §5.6
    BINARY = 0x2  # RFC 6455 §5.6
    CLOSE = 0x8  # RFC 6455 §5.5.1
    PING = 0x9  # RFC 6455 §5.5.2
    PONG = 0xA  # RFC 6455 §5.5.3


def encode_frame(
    opcode: int,
    payload: BytesLike,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
) -> bytes:
    """Encode one frame: header and payload in a single ``bytes`` object, length in its shortest form.

    The result can be written as-is to any number of connections (encode a broadcast once).

    Args:
        opcode: the 4-bit opcode (an :class:`Opcode`, or any 0-15 value to build invalid frames in tests).
        payload: the application data.
        fin: the FIN bit (False for all but the last fragment of a message).
        rsv: the three RSV bits as an integer 0-7 (RSV1 = 4); 0 unless an extension was negotiated.
        mask: None for an unmasked frame (what a server sends), or the 4-byte masking key of a client frame.

    Returns:
        The encoded frame.

    Raises:
        UsageError: if ``opcode``, ``rsv`` or ``mask`` cannot be encoded.
    """
    if not 0 <= opcode <= 0xF:
        raise UsageError(f"opcode {opcode!r} does not fit in 4 bits")
    if not 0 <= rsv <= 7:
        raise UsageError(f"rsv {rsv!r} does not fit in 3 bits")
    b0 = (_FIN if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0 if mask is None else _MASK_BIT
    n = len(payload)
    if n < _LEN16:
        header = bytes((b0, mask_bit | n))
    elif n < 0x10000:
        header = _PACK16(b0, mask_bit | _LEN16, n)
    else:
        header = _PACK64(b0, mask_bit | _LEN64, n)
    if mask is None:
        return header + payload
    if len(mask) != 4:
        raise UsageError("a masking key is exactly 4 bytes")
    return header + mask + apply_mask(payload, mask)


def frame_header(opcode: int, length: int) -> bytes:
    """The header of an unmasked final frame carrying ``length`` octets: what goes before a payload that is
    written separately (a large message is sent as header + payload, without copying the payload into a frame).

    Raises:
        UsageError: if ``opcode`` does not fit in 4 bits or ``length`` is negative.
    """
    if not 0 <= opcode <= 0xF:
        raise UsageError(f"opcode {opcode!r} does not fit in 4 bits")
    if length < 0:
        raise UsageError(f"length {length} is negative")
    if length < _LEN16:
        return bytes((_FIN | opcode, length))
    if length < 0x10000:
        return _PACK16(_FIN | opcode, _LEN16, length)
    return _PACK64(_FIN | opcode, _LEN64, length)


def encode_text(text: str) -> bytes:
    """Encode a complete text message as one unmasked frame.

    Args:
        text: the message.

    Returns:
        The encoded frame.

    Raises:
        UsageError: if ``text`` is not a ``str`` or cannot be encoded as UTF-8 (a lone surrogate).
    """
    if not isinstance(text, str):
        raise UsageError(f"text must be str, not {type(text).__name__}")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("text is not encodable as UTF-8") from None
    if len(data) < _LEN16:  # the common case on the hot path: a precomputed 2-byte header
        return _TEXT_HEADERS[len(data)] + data
    return encode_frame(Opcode.TEXT, data)


def encode_binary(data: BytesLike) -> bytes:
    """Encode a complete binary message as one unmasked frame.

    Args:
        data: the message.

    Returns:
        The encoded frame.

    Raises:
        UsageError: if ``data`` is not bytes-like.
    """
    if type(data) is bytes and len(data) < _LEN16:  # the hot path: a precomputed 2-byte header
        return _BINARY_HEADERS[len(data)] + data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UsageError(f"data must be bytes-like, not {type(data).__name__}")
    return encode_frame(Opcode.BINARY, data)


@dataclass(slots=True, frozen=True)
class Frame:
    """One decoded frame, as :func:`parse_frame` returns it.

    Attributes:
        opcode: the opcode (an int, since reserved values are representable).
        payload: the unmasked payload.
        fin: the FIN bit.
        rsv: the three RSV bits as an integer 0-7.
        masked: whether the frame carried a masking key.
    """

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    masked: bool = False


def parse_frame(data: BytesLike, offset: int = 0) -> tuple[Frame, int] | None:
    """Decode the frame that starts at ``data[offset]``, if it is complete.

    A reference parser for tests, clients and tools: it checks the wire format only (see the module
    docstring). Servers use :class:`~snow_rt_py.protocol.connection.ServerProtocol`.

    Args:
        data: buffered bytes.
        offset: where the frame starts.

    Returns:
        ``(frame, end)`` with ``end`` the offset just past the frame, or None if more bytes are needed.

    Raises:
        ProtocolError: 1002 if a 64-bit length has its most significant bit set.
    """
    avail = len(data) - offset
    if avail < 2:
        return None
    b0 = data[offset]
    b1 = data[offset + 1]
    length = b1 & 0x7F
    pos = offset + 2
    if length == _LEN16:
        if avail < 4:
            return None
        length = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
    elif length == _LEN64:
        if avail < 10:
            return None
        length = int.from_bytes(data[pos : pos + 8], "big")
        if length >> 63:
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, "64-bit payload length has its top bit set")
        pos += 8
    masked = bool(b1 & _MASK_BIT)
    key = b""
    if masked:
        if len(data) < pos + 4:
            return None
        key = bytes(data[pos : pos + 4])
        pos += 4
    end = pos + length
    if len(data) < end:
        return None
    payload = bytes(data[pos:end])
    if masked:
        payload = apply_mask(payload, key)
    frame = Frame(opcode=b0 & 0x0F, payload=payload, fin=bool(b0 & _FIN), rsv=(b0 >> 4) & 7, masked=masked)
    return frame, end
