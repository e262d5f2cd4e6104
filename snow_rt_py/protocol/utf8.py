"""Incremental UTF-8 validation for fragmented text messages (RFC 6455 §5.6, §8.1).

A text message must be valid UTF-8 as a whole, but a code point may be split across fragments. An endpoint
should fail the connection (1007) as soon as the bytes received so far can no longer be the start of valid
UTF-8, rather than buffering the rest of the message.

CPython's incremental ``utf-8`` decoder already fails at the first byte that rules out every completion, with
one exception (checked exhaustively over all 1-3 byte prefixes on CPython 3.11): after ``ED A0``..``ED BF`` --
the start of a UTF-16 surrogate, which UTF-8 forbids -- it keeps the two bytes pending instead of failing.
:class:`Utf8Decoder` adds that check.
"""

from __future__ import annotations

import codecs
from typing import Any

from snow_rt_py.protocol.close import CloseCode
from snow_rt_py.protocol.errors import ProtocolError
from snow_rt_py.protocol.mask import HAVE_SPEEDUPS

_lib: Any = None
if HAVE_SPEEDUPS:  # pragma: no branch - the accelerator shares masking's switch (SNOW_RT_PY_NO_SPEEDUPS)
    import snow_rt_py._speedups as _speedups

    _lib = _speedups.lib

__all__ = ["Utf8Decoder", "is_valid_utf8", "utf8_error"]


def is_valid_utf8(data: bytes | bytearray | memoryview) -> bool:
    """True if ``data`` is valid UTF-8 as a whole (RFC 3629: no surrogates, no overlong forms, at most U+10FFFF):
    exactly what the strict ``utf-8`` codec accepts. In C when the accelerator is built."""
    if _lib is not None:
        return bool(_lib.snow_utf8_valid(data if type(data) is bytes else bytes(data), len(data)))
    try:
        codecs.decode(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def utf8_error(data: bytes | bytearray | memoryview) -> str | None:
    """None if ``data`` is valid UTF-8, else what is wrong and where (e.g. ``"invalid start byte at byte 0"``)."""
    if is_valid_utf8(data):
        return None
    try:
        codecs.decode(data, "utf-8")
    except UnicodeDecodeError as exc:
        return f"{exc.reason} at byte {exc.start}"
    return None  # pragma: no cover - the two checks agree (tests/protocol/test_utf8.py)


class Utf8Decoder:
    """Decode a text message fragment by fragment, failing as early as the bytes allow."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def copy(self) -> Utf8Decoder:
        """A decoder in the same state (to check bytes ahead without disturbing this one)."""
        other = Utf8Decoder()
        other._decoder.setstate(self._decoder.getstate())
        return other

    def decode(self, data: bytes | bytearray | memoryview, final: bool) -> str:
        """Decode the next fragment.

        Args:
            data: the fragment's bytes.
            final: True for the message's last fragment (an incomplete trailing sequence is then an error).

        Returns:
            The characters completed by this fragment.

        Raises:
            ProtocolError: 1007 if the bytes so far cannot be (the start of) valid UTF-8.
        """
        try:
            text: str = self._decoder.decode(data, final)
        except UnicodeDecodeError:
            raise ProtocolError(CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in text message") from None
        if not final:
            pending = self._decoder.getstate()[0]
            # ED A0..BF can only continue into a surrogate (U+D800-U+DFFF).
            if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise ProtocolError(CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in text message")
        return text
