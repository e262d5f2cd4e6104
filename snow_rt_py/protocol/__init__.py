"""Sans-I/O RFC 6455 protocol core: bytes in, events out; events in, bytes out.

The server runtime drives :class:`ServerProtocol`; the helpers below are public for tests, clients and tools.
"""

from snow_rt_py.protocol.close import CloseCode, build_close_payload, is_sendable_code, parse_close_payload
from snow_rt_py.protocol.connection import ServerProtocol, State
from snow_rt_py.protocol.errors import HandshakeError, ProtocolError, UsageError
from snow_rt_py.protocol.events import (
    BinaryMessage,
    CloseReceived,
    ConnectionLost,
    Event,
    HandshakeFailure,
    Ping,
    Pong,
    ProtocolFailure,
    Request,
    TextMessage,
)
from snow_rt_py.protocol.frames import Frame, Opcode, encode_binary, encode_frame, encode_text, parse_frame
from snow_rt_py.protocol.handshake import (
    RequestParser,
    accept_key,
    build_error_response,
    build_response_101,
)
from snow_rt_py.protocol.headers import Headers

__all__ = [
    "BinaryMessage",
    "CloseCode",
    "CloseReceived",
    "ConnectionLost",
    "Event",
    "Frame",
    "HandshakeError",
    "HandshakeFailure",
    "Headers",
    "Opcode",
    "Ping",
    "Pong",
    "ProtocolError",
    "ProtocolFailure",
    "Request",
    "RequestParser",
    "ServerProtocol",
    "State",
    "TextMessage",
    "UsageError",
    "accept_key",
    "build_close_payload",
    "build_error_response",
    "build_response_101",
    "encode_binary",
    "encode_frame",
    "encode_text",
    "is_sendable_code",
    "parse_close_payload",
    "parse_frame",
]
