"""Close codes and Close payloads (protocol/close.py), RFC 6455 §5.5.1 and §7.4."""

from __future__ import annotations

import pytest

from snow_rt_py.protocol.close import (
    CloseCode,
    build_close_payload,
    is_sendable_code,
    parse_close_payload,
)
from snow_rt_py.protocol.errors import ProtocolError, UsageError


def test_close_code_values() -> None:
    assert {code.name: int(code) for code in CloseCode} == {
        "NORMAL_CLOSURE": 1000,
        "GOING_AWAY": 1001,
        "PROTOCOL_ERROR": 1002,
        "UNSUPPORTED_DATA": 1003,
        "NO_STATUS_RCVD": 1005,
        "ABNORMAL_CLOSURE": 1006,
        "INVALID_PAYLOAD": 1007,
        "POLICY_VIOLATION": 1008,
        "MESSAGE_TOO_BIG": 1009,
        "MANDATORY_EXTENSION": 1010,
        "INTERNAL_ERROR": 1011,
        "SERVICE_RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
        "BAD_GATEWAY": 1014,
        "TLS_HANDSHAKE": 1015,
    }


SENDABLE = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
NOT_SENDABLE = [-1, 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535, 65536]


@pytest.mark.parametrize("code", SENDABLE)
def test_sendable_codes(code: int) -> None:
    assert is_sendable_code(code)


@pytest.mark.parametrize("code", NOT_SENDABLE)
def test_codes_never_on_the_wire(code: int) -> None:
    assert not is_sendable_code(code)


def test_sendable_code_ranges_exhaustively() -> None:
    sendable = {code for code in range(0, 70000) if is_sendable_code(code)}
    assert sendable == set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))


def test_parse_empty_payload_is_no_status() -> None:
    assert parse_close_payload(b"") == (1005, "")


def test_parse_code_only() -> None:
    assert parse_close_payload(b"\x03\xe8") == (1000, "")


def test_parse_code_and_reason() -> None:
    assert parse_close_payload(b"\x0f\xa0bye \xc3\xa9") == (4000, "bye é")


def test_parse_accepts_bytearray_and_memoryview() -> None:
    assert parse_close_payload(bytearray(b"\x03\xe9x")) == (1001, "x")
    assert parse_close_payload(memoryview(b"\x03\xe9x")) == (1001, "x")


def test_parse_one_byte_is_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close_payload(b"\x03")
    assert info.value.close_code == 1002


@pytest.mark.parametrize("code", NOT_SENDABLE[1:-1])  # the ones that fit in 2 bytes
def test_parse_code_not_sendable_is_protocol_error(code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close_payload(code.to_bytes(2, "big"))
    assert info.value.close_code == 1002


@pytest.mark.parametrize("reason", [b"\xff", b"\xc3", b"ok\xed\xa0\x80", b"\xf4\x90\x80\x80"])
def test_parse_reason_not_utf8_is_invalid_payload(reason: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close_payload(b"\x03\xe8" + reason)
    assert info.value.close_code == 1007


def test_build_code_only() -> None:
    assert build_close_payload(1000) == b"\x03\xe8"
    assert build_close_payload(CloseCode.GOING_AWAY) == b"\x03\xe9"
    assert build_close_payload(4999) == b"\x13\x87"


def test_build_code_and_reason() -> None:
    assert build_close_payload(1011, "oops é") == b"\x03\xf3oops \xc3\xa9"


@pytest.mark.parametrize("code", NOT_SENDABLE)
def test_build_refuses_codes_not_on_the_wire(code: int) -> None:
    with pytest.raises(UsageError):
        build_close_payload(code)


def test_build_refuses_non_int_code_and_non_str_reason() -> None:
    with pytest.raises(UsageError):
        build_close_payload("1000")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        build_close_payload(True)
    with pytest.raises(UsageError):
        build_close_payload(1000, b"bytes")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        build_close_payload(1000, "\ud800")


def test_build_reason_of_exactly_123_bytes_is_kept() -> None:
    reason = "a" * 123
    assert build_close_payload(1000, reason) == b"\x03\xe8" + b"a" * 123


@pytest.mark.parametrize(
    "reason",
    [
        "a" * 124,
        "a" * 200,
        # 122 ASCII + a 2-byte character: 124 bytes.
        "a" * 122 + "é",
        # 4-byte characters: 31 of them take 124 bytes.
        "😀" * 31,
    ],
)
def test_build_refuses_a_reason_over_123_bytes(reason: str) -> None:
    # One rule for every front door: a reason that does not fit is the caller's error, never silently cut.
    with pytest.raises(UsageError, match="longer than 123"):
        build_close_payload(1000, reason)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        # 121 ASCII + a 2-byte character: exactly 123 bytes.
        ("a" * 121 + "é", b"a" * 121 + "é".encode()),
        # 3-byte characters: 41 of them take exactly 123 bytes.
        ("€" * 41, "€".encode() * 41),
    ],
)
def test_build_keeps_a_reason_of_exactly_123_bytes(reason: str, expected: bytes) -> None:
    payload = build_close_payload(1000, reason)
    assert payload == b"\x03\xe8" + expected
    assert parse_close_payload(payload) == (1000, reason)


def test_round_trip() -> None:
    for code in SENDABLE:
        assert parse_close_payload(build_close_payload(code, "why")) == (code, "why")
