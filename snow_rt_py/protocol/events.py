"""Events produced by :class:`snow_rt_py.protocol.connection.ServerProtocol`.

``ServerProtocol.receive_data(data)`` returns a list of these, in the order the bytes produced them. What the
caller must do after each one is written in its docstring.

Events are immutable: each field is a read-only property (assigning to it raises ``AttributeError``), and two
events are equal when they are of the same class with equal fields. They are built as cheaply as a plain slotted
object, because the runtime makes one per message on its hot path (the connection's C calls
``TextMessage(text, raw)``): ``__init__`` stores into private slots with plain attribute stores, which a frozen
dataclass cannot do (its ``__init__`` goes through ``object.__setattr__``, 2.7 times the cost), and each
property reads its slot through a C getter (``operator.attrgetter``).
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from snow_rt_py.protocol.headers import Headers

_T = TypeVar("_T")

if TYPE_CHECKING:

    class _Field(Generic[_T]):
        """What mypy sees of a field: an attribute of type ``_T`` that cannot be assigned."""

        @overload
        def __get__(self, obj: None, owner: type) -> _Field[_T]: ...
        @overload
        def __get__(self, obj: object, owner: type | None = None) -> _T: ...
        def __get__(self, obj: object, owner: type | None = None) -> Any: ...


def _field(slot: str, kind: type[_T]) -> _Field[_T]:
    """The read-only attribute that reads the private slot ``slot`` (``kind`` is its type, for mypy)."""
    del kind
    return property(attrgetter(slot))  # type: ignore[return-value]


class _Event:
    """What every event shares: equality, hash and repr over its fields (``__match_args__``)."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()
    _compared: ClassVar[tuple[str, ...]] = ()
    """The fields equality and hash look at (by default all of them)."""

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in (self._compared or self.__match_args__))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Event)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self), self._key()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__name__}({fields})"


class Request(_Event):
    """A valid opening handshake arrived (RFC 6455 §4.2.1).

    Next: call ``accept()`` (queues the 101 response) or ``reject(status, reason)`` (queues an HTTP error), then
    write ``data_to_send()``. Frames that arrived in the same read are parsed only after ``accept()`` -- they are
    kept, never lost.

    Attributes:
        target: the raw request-target, query string included (e.g. ``"/chat?room=1"``).
        headers: the request headers, case-insensitive lookup, repeated headers preserved.
    """

    __slots__ = ("_headers", "_target")
    __match_args__ = ("target", "headers")
    target = _field("_target", str)
    headers = _field("_headers", Headers)

    def __init__(self, target: str, headers: Headers) -> None:
        self._target = target
        self._headers = headers


class HttpRequest(_Event):
    """A well-formed plain HTTP GET or HEAD (no ``Upgrade`` header): not a WebSocket handshake.

    Next: answer it with ``respond(status, body, content_type)`` (e.g. serve a page; for a HEAD it sends the
    headers a GET would get and no body) or ``reject(400, reason)``, then write ``data_to_send()`` and close the
    TCP connection.

    Attributes:
        method: ``"GET"`` or ``"HEAD"``.
        target: the raw request-target.
        headers: the request headers.
    """

    __slots__ = ("_headers", "_method", "_target")
    __match_args__ = ("method", "target", "headers")
    method = _field("_method", str)
    target = _field("_target", str)
    headers = _field("_headers", Headers)

    def __init__(self, method: str, target: str, headers: Headers) -> None:
        self._method = method
        self._target = target
        self._headers = headers


class HandshakeFailure(_Event):
    """The opening handshake was invalid. The HTTP error response is already queued in ``data_to_send()``.

    Next: write ``data_to_send()``, then close the TCP connection.

    Attributes:
        status: the HTTP status of that response.
        reason: why (also in the response body).
    """

    __slots__ = ("_reason", "_status")
    __match_args__ = ("status", "reason")
    status = _field("_status", int)
    reason = _field("_reason", str)

    def __init__(self, status: int, reason: str) -> None:
        self._status = status
        self._reason = reason


class TextMessage(_Event):
    """A complete (reassembled, UTF-8 validated) text message.

    Attributes:
        data: the text.
        raw: the same message as the validated UTF-8 bytes it arrived as (what a C callback is given, so text
            makes no str -> bytes round trip on its way through). Not part of equality.
    """

    __slots__ = ("_data", "_raw")
    __match_args__ = ("data", "raw")
    _compared = ("data",)
    data = _field("_data", str)
    raw = _field("_raw", bytes)

    def __init__(self, data: str, raw: bytes = b"") -> None:
        self._data = data
        self._raw = raw


class BinaryMessage(_Event):
    """A complete (reassembled) binary message.

    Attributes:
        data: the message.
    """

    __slots__ = ("_data",)
    __match_args__ = ("data",)
    data = _field("_data", bytes)

    def __init__(self, data: bytes) -> None:
        self._data = data


class _Control(_Event):
    """A Ping or a Pong: the frame's application data (at most 125 bytes)."""

    __slots__ = ("_payload",)
    __match_args__ = ("payload",)
    payload = _field("_payload", bytes)

    def __init__(self, payload: bytes) -> None:
        self._payload = payload


class Ping(_Control):
    """The peer sent a Ping. The Pong with the same payload is already queued in ``data_to_send()``.

    Attributes:
        payload: the Ping's application data.
    """

    __slots__ = ()


class Pong(_Control):
    """The peer sent a Pong (solicited or not). The protocol layer does nothing else with it.

    Attributes:
        payload: the Pong's application data.
    """

    __slots__ = ()


class _Close(_Event):
    """A close code and its reason."""

    __slots__ = ("_code", "_reason")
    __match_args__ = ("code", "reason")
    code = _field("_code", int)
    reason = _field("_reason", str)

    def __init__(self, code: int, reason: str) -> None:
        self._code = code
        self._reason = reason


class CloseReceived(_Close):
    """The peer sent a valid Close frame.

    If we had not sent a Close yet, our reply (same code, RFC 6455 §5.5.1; 1000 when the peer sent no code) is
    already queued in ``data_to_send()``. The protocol is now CLOSED. Next: write ``data_to_send()`` and close the
    TCP connection (the server closes first, RFC 6455 §7.1.1).

    Attributes:
        code: the peer's code, or 1005 (NO_STATUS_RCVD) if its Close had no payload.
        reason: the peer's reason ("" if none).
    """

    __slots__ = ()


class ProtocolFailure(_Close):
    """The peer broke the protocol. Our Close frame with ``code`` is already queued in ``data_to_send()``
    (unless we had already sent a Close, in which case nothing more is queued).

    The protocol is now CLOSED for input (later bytes are ignored). Next: write ``data_to_send()`` and close the
    TCP connection after a bounded wait.

    Attributes:
        code: the close code we sent (1002, 1007, 1009...).
        reason: the reason we sent.
    """

    __slots__ = ()


class ConnectionLost(_Event):
    """The peer closed the TCP stream (``receive_data(b"")``).

    Attributes:
        clean: True if the Close handshake had completed (we got the peer's Close) before the EOF.
    """

    __slots__ = ("_clean",)
    __match_args__ = ("clean",)
    clean = _field("_clean", bool)

    def __init__(self, clean: bool) -> None:
        self._clean = clean


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
