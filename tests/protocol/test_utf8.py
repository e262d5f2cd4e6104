"""Incremental UTF-8 validation (protocol/utf8.py): fail as soon as the bytes rule out valid UTF-8."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snow_rt_py.protocol.errors import ProtocolError
from snow_rt_py.protocol.mask import HAVE_SPEEDUPS
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


# -- the C check (protocol/_codec.c), used by the C ABI's reply fast path ----------------------------------------

needs_speedups = pytest.mark.skipif(not HAVE_SPEEDUPS, reason="C accelerator snow_rt_py._speedups not in use")

# Octets around every boundary the check makes: ASCII, continuation ranges, overlong and surrogate leads, F4/F5.
_EDGE_OCTETS = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED]
_EDGE_OCTETS += [0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]


def python_accepts(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def c_accepts(data: bytes) -> bool:
    from snow_rt_py import _speedups

    return bool(_speedups.lib.snow_utf8_valid(data, len(data)))


@needs_speedups
def test_c_check_agrees_with_python_on_every_short_sequence_of_edge_octets() -> None:
    """Every sequence of up to 3 edge octets, and every 4-octet one starting with a 3- or 4-octet lead."""
    edges = _EDGE_OCTETS
    sequences = [bytes([a]) for a in edges]
    sequences += [bytes([a, b]) for a in edges for b in edges]
    sequences += [bytes([a, b, c]) for a in edges for b in edges for c in edges]
    leads = [0xE0, 0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5]
    sequences += [bytes([a, b, c, d]) for a in leads for b in edges for c in edges for d in edges]
    assert [s for s in sequences if c_accepts(s) != python_accepts(s)] == []


@needs_speedups
@given(st.lists(st.sampled_from(_EDGE_OCTETS), max_size=24).map(bytes), st.binary(max_size=20))
def test_c_check_agrees_with_python(octets: bytes, prefix: bytes) -> None:
    for data in (octets, prefix + octets, b"ascii run " + octets + b" and more ascii"):
        assert c_accepts(data) == python_accepts(data)


@needs_speedups
@given(st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_c_check_agrees_with_python_on_encoded_text(data: bytes) -> None:
    assert c_accepts(data) == python_accepts(data)
