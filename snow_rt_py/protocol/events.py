"""Events produced by :class:`snow_rt_py.protocol.connection.ServerProtocol`.

``ServerProtocol.receive_data(data)`` returns a list of these, in the order the bytes produced them. What the
caller must do after each one is written in its docstring. Events are plain slotted objects (cheap to create:
the runtime makes one per message on its hot path).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snow_rt_py.protocol.headers import Headers


@dataclass(slots=True)
class Request:
    """A valid opening handshake arrived (RFC 6455 §4.2.1).

    Next: call ``accept()`` (queues the 101 response) or ``reject(status, reason)`` (queues an HTTP error), then
    write ``data_to_send()``. Frames that arrived in the same read are parsed only after ``accept()`` -- they are
    kept, never lost.

    Attributes:
        target: the raw request-target, query string included (e.g. ``"/chat?room=1"``).
        headers: the request headers, case-insensitive lookup, repeated headers preserved.
    """

    target: str
    headers: Headers


@dataclass(slots=True)
class HttpRequest:
    """A well-formed plain HTTP GET or HEAD (no ``Upgrade`` header): not a WebSocket handshake.

    Next: answer it with ``respond(status, body, content_type)`` (e.g. serve a page; for a HEAD it sends the
    headers a GET would get and no body) or ``reject(400, reason)``, then write ``data_to_send()`` and close the
    TCP connection.

    Attributes:
        method: ``"GET"`` or ``"HEAD"``.
        target: the raw request-target.
        headers: the request headers.
    """

    method: str
    target: str
    headers: Headers


@dataclass(slots=True)
class HandshakeFailure:
    """The opening handshake was invalid. The HTTP error response is already queued in ``data_to_send()``.

    Next: write ``data_to_send()``, then close the TCP connection.
    """

    status: int
    reason: str


@dataclass(slots=True)
class TextMessage:
    """A complete (reassembled, UTF-8 validated) text message.

    Attributes:
        data: the text.
        raw: the same message as the validated UTF-8 bytes it arrived as (what a C callback is given, so text
            makes no str -> bytes round trip on its way through). Not part of equality.
    """

    data: str
    raw: bytes = field(default=b"", compare=False)


@dataclass(slots=True)
class BinaryMessage:
    """A complete (reassembled) binary message."""

    data: bytes


@dataclass(slots=True)
class Ping:
    """The peer sent a Ping. The Pong with the same payload is already queued in ``data_to_send()``."""

    payload: bytes


@dataclass(slots=True)
class Pong:
    """The peer sent a Pong (solicited or not). The protocol layer does nothing else with it."""

    payload: bytes


@dataclass(slots=True)
class CloseReceived:
    """The peer sent a valid Close frame.

    If we had not sent a Close yet, our reply (same code, RFC 6455 §5.5.1; 1000 when the peer sent no code) is
    already queued in ``data_to_send()``. The protocol is now CLOSED. Next: write ``data_to_send()`` and close the
    TCP connection (the server closes first, RFC 6455 §7.1.1).

    Attributes:
        code: the peer's code, or 1005 (NO_STATUS_RCVD) if its Close had no payload.
        reason: the peer's reason ("" if none).
    """

    code: int
    reason: str


@dataclass(slots=True)
class ProtocolFailure:
    """The peer broke the protocol. Our Close frame with ``code`` is already queued in ``data_to_send()``
    (unless we had already sent a Close, in which case nothing more is queued).

    The protocol is now CLOSED for input (later bytes are ignored). Next: write ``data_to_send()`` and close the
    TCP connection after a bounded wait.

    Attributes:
        code: the close code we sent (1002, 1007, 1009...).
        reason: the reason we sent.
    """

    code: int
    reason: str


@dataclass(slots=True)
class ConnectionLost:
    """The peer closed the TCP stream (``receive_data(b"")``).

    Attributes:
        clean: True if the Close handshake had completed (we got the peer's Close) before the EOF.
    """

    clean: bool


Event = (
    Request
    | HttpRequest
    | HandshakeFailure
    | TextMessage
    | BinaryMessage
    | Ping
    | Pong
    | CloseReceived
    | ProtocolFailure
    | ConnectionLost
)
