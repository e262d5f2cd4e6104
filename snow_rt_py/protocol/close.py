"""Close codes and Close frame payloads (RFC 6455 §5.5.1, §7.4).

A Close payload is either empty or a 2-byte big-endian status code followed by a UTF-8 reason; the whole
payload is a control frame's, so at most 125 bytes and the reason at most 123 bytes.

Which codes may appear on the wire (``is_sendable_code``):

* 1000-1003 and 1007-1014: defined by RFC 6455 §7.4.1 or registered with IANA (1012-1014).
* 3000-4999: libraries, frameworks and applications (§7.4.2).
* Never 1004 (reserved), 1005, 1006, 1015 (reserved for reporting "no code", "abnormal" and "TLS failure"
  locally, §7.4.1), 1016-2999 (reserved for future RFCs) or anything outside 1000-4999.
"""

from __future__ import annotations

from enum import IntEnum

from snow_rt_py.protocol.errors import ProtocolError, UsageError

__all__ = [
    "MAX_REASON_BYTES",
    "CloseCode",
    "build_close_payload",
    "is_sendable_code",
    "parse_close_payload",
]

MAX_REASON_BYTES = 123
"""A control frame payload is at most 125 bytes (RFC 6455 §5.5), two of which are the code."""


class CloseCode(IntEnum):
    """Status codes of a Close frame."""

    NORMAL_CLOSURE = 1000  # RFC 6455 §7.4.1
    GOING_AWAY = 1001  # RFC 6455 §7.4.1
    PROTOCOL_ERROR = 1002  # RFC 6455 §7.4.1
    UNSUPPORTED_DATA = 1003  # RFC 6455 §7.4.1
    NO_STATUS_RCVD = 1005  # RFC 6455 §7.4.1 -- local only, never on the wire
    ABNORMAL_CLOSURE = 1006  # RFC 6455 §7.4.1 -- local only, never on the wire
    INVALID_PAYLOAD = 1007  # RFC 6455 §7.4.1
    POLICY_VIOLATION = 1008  # RFC 6455 §7.4.1
    MESSAGE_TOO_BIG = 1009  # RFC 6455 §7.4.1
    MANDATORY_EXTENSION = 1010  # RFC 6455 §7.4.1
    INTERNAL_ERROR = 1011  # RFC 6455 §7.4.1
    SERVICE_RESTART = 1012  # IANA WebSocket Close Code Number Registry (RFC 6455 §11.7)
    TRY_AGAIN_LATER = 1013  # IANA registry
    BAD_GATEWAY = 1014  # IANA registry
    TLS_HANDSHAKE = 1015  # RFC 6455 §7.4.1 -- local only, never on the wire


_SENDABLE_1XXX = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def is_sendable_code(code: int) -> bool:
    """Tell whether ``code`` may appear in a Close frame on the wire (RFC 6455 §7.4).

    Args:
        code: a status code.

    Returns:
        True for 1000-1003, 1007-1014 and 3000-4999; False for everything else (1004-1006, 1015, the
        reserved 1016-2999, and anything below 1000 or from 5000).
    """
    return code in _SENDABLE_1XXX or 3000 <= code <= 4999


def parse_close_payload(payload: bytes | bytearray | memoryview) -> tuple[int, str]:
    """Decode the payload of a Close frame received from the peer.

    Args:
        payload: the (unmasked) payload of the Close frame.

    Returns:
        ``(code, reason)``; ``(1005, "")`` (NO_STATUS_RCVD) for an empty payload.

    Raises:
        ProtocolError: 1002 if the payload is one byte long or the code may not be sent on the wire,
            1007 if the reason is not valid UTF-8.
    """
    n = len(payload)
    if n == 0:
        return CloseCode.NO_STATUS_RCVD, ""
    if n == 1:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "close payload of 1 byte")
    code = (payload[0] << 8) | payload[1]
    if not is_sendable_code(code):
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = bytes(payload[2:]).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, "close reason is not UTF-8") from None
    return code, reason


def build_close_payload(code: int, reason: str = "") -> bytes:
    """Encode the payload of a Close frame we send: the one rule for close arguments.

    The runtime calls it on the caller's thread before anything changes (``Connection.close``), and
    :meth:`ServerProtocol.send_close` calls it too, so every front door gets the same answer.

    Args:
        code: a code allowed on the wire (see :func:`is_sendable_code`).
        reason: a human-readable reason, at most 123 bytes once encoded as UTF-8.

    Returns:
        The 2-byte big-endian code followed by the UTF-8 reason.

    Raises:
        UsageError: if ``code`` may not be sent, or ``reason`` is not a ``str``, is not encodable as UTF-8 (e.g.
            it holds a lone surrogate) or is longer than 123 UTF-8 bytes.
    """
    if isinstance(code, bool) or not isinstance(code, int) or not is_sendable_code(code):
        raise UsageError(f"close code {code!r} may not be sent (use 1000-1003, 1007-1014, 3000-4999)")
    if not isinstance(reason, str):
        raise UsageError(f"close reason must be a str, not {type(reason).__name__}")
    try:
        encoded = reason.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("close reason is not encodable as UTF-8 (it holds a lone surrogate)") from None
    if len(encoded) > MAX_REASON_BYTES:
        raise UsageError(f"close reason is longer than {MAX_REASON_BYTES} UTF-8 bytes")
    return code.to_bytes(2, "big") + encoded
