"""Incremental UTF-8 validation (protocol/utf8.py): fail as soon as the bytes rule out valid UTF-8."""

from __future__ import annotations

import codecs

import pytest

from snow_rt_py.protocol.errors import ProtocolError
from snow_rt_py.protocol.utf8 import Utf8Decoder


def test_cpython_decoder_misses_surrogate_prefix() -> None:
    # Why Utf8Decoder exists: CPython's incremental decoder keeps ED A0 pending instead of failing.
    # If this starts failing, CPython fixed it and the extra check is merely redundant.
    assert codecs.getincrementaldecoder("utf-8")().decode(b"\xed\xa0", final=False) == ""


def test_cpython_decoder_fails_fast_beyond_u10ffff() -> None:
    with pytest.raises(UnicodeDecodeError):
        codecs.getincrementaldecoder("utf-8")().decode(b"\xf4\x90", final=False)


@pytest.mark.parametrize(
    "prefix",
    [
        b"\xed\xa0",  # surrogate U+D800..
        b"\xed\xbf",  # surrogate ..U+DFFF
        b"\xf4\x90",  # beyond U+10FFFF
        b"\xf5",  # never a lead byte
        b"\xc0",  # overlong
        b"\xe0\x80",  # overlong
        b"\xf0\x80",  # overlong
        b"\x80",  # lone continuation
        b"ok\xed\xa0",  # after valid text
    ],
)
def test_fails_fast_on_prefix_that_cannot_be_completed(prefix: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        Utf8Decoder().decode(prefix, final=False)
    assert info.value.close_code == 1007


def test_surrogate_prefix_split_across_fragments_fails_on_second() -> None:
    decoder = Utf8Decoder()
    assert decoder.decode(b"a\xed", final=False) == "a"
    with pytest.raises(ProtocolError):
        decoder.decode(b"\xa0", final=False)


@pytest.mark.parametrize("prefix", [b"\xed\x9f", b"\xf4\x8f", b"\xe0\xa0", b"\xf0\x90\x80", b"\xc3"])
def test_valid_prefixes_are_kept_pending(prefix: bytes) -> None:
    assert Utf8Decoder().decode(prefix, final=False) == ""


def test_code_point_split_across_every_boundary() -> None:
    text = "a€😀é"
    data = text.encode()
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            decoder = Utf8Decoder()
            parts = [decoder.decode(data[:i], False), decoder.decode(data[i:j], False)]
            parts.append(decoder.decode(data[j:], True))
            assert "".join(parts) == text


def test_truncated_sequence_fails_when_final() -> None:
    decoder = Utf8Decoder()
    assert decoder.decode(b"\xe2\x82", final=False) == ""
    with pytest.raises(ProtocolError):
        decoder.decode(b"", final=True)
