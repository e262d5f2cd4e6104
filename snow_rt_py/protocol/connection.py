"""The sans-I/O server side of a WebSocket connection (RFC 6455): the opening handshake, then the frames.

Bytes from the client go into :meth:`ServerProtocol.receive_data`, which returns events (``events.py``); bytes for
the client come out of one FIFO, :attr:`ServerProtocol.outgoing`, drained with :meth:`take_outgoing` (or
:meth:`data_to_send`) after each call. Nothing here touches a socket or a clock.

:class:`ServerProtocol` is put together from the parts every side of a connection shares and the part only a
server has:

* ``protocol/state.py``: the states and the one table of transitions (``State`` is re-exported here);
* ``protocol/output.py`` (``FrameOutput``): the output FIFO, the sends, and our Close always leaving last;
* ``protocol/framing.py`` (``FrameProtocol``): the receive state machine of frames, fragments, control frames,
  closing, UTF-8 and inflate checks, with the rules it enforces on the peer's frames;
* this module: the server's handshake side -- the request handed to the caller (a Request or HttpRequest event,
  or a HandshakeFailure with its HTTP status), and the caller's decision: :meth:`~ServerProtocol.accept` (the 101),
  :meth:`~ServerProtocol.reject`, :meth:`~ServerProtocol.respond` (plain HTTP),
  :meth:`~ServerProtocol.fail_handshake` -- and what a server expects of its peer: a client masks every frame
  (RFC 6455 §5.1; an unmasked one is 1002), while a server sends unmasked ones.

A client would be the mirror: the same two bases, its own handshake side, and masking the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

from snow_rt_py.protocol.core import configure
from snow_rt_py.protocol.deflate import Inflater
from snow_rt_py.protocol.errors import HandshakeError, UsageError
from snow_rt_py.protocol.events import Event, HandshakeFailure, HttpRequest, Request
from snow_rt_py.protocol.framing import DEFAULT_MAX_MESSAGE_SIZE, FrameProtocol
from snow_rt_py.protocol.handshake import (
    DEFAULT_MAX_HANDSHAKE_SIZE,
    ParsedRequest,
    PlainRequest,
    RequestParser,
    build_error_response,
    build_response,
    build_response_101,
)
from snow_rt_py.protocol.state import State, Trigger

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "ServerProtocol", "State"]


class ServerProtocol(FrameProtocol):
    """One server-side WebSocket connection, from the opening handshake to the end of the TCP stream.

    Args:
        max_message_size: the largest message (after reassembly) the client may send, in bytes; a bigger
            one fails the connection with 1009.
        max_handshake_size: the most bytes the request line and headers may take (431 beyond).
        open: start in OPEN, skipping the handshake (benchmarks and frame-level tests).
        inflater: permessage-deflate enabled from the start (with ``open``; else see :meth:`enable_deflate`).

    Attributes:
        state: the current :class:`State`.
        close_sent: a Close frame was sent (by ``send_close()``, a reply, or a failure).
        close_received: the client's valid Close frame was received.
        outgoing: the one output FIFO: every byte string to write to the client, in order. Drain it after each
            call (:meth:`data_to_send`); a caller that encodes data frames itself (a broadcast encoded once for
            many connections) appends them here too, so control frames and data always leave in order.
    """

    __slots__ = ("_http_method", "_parser", "_pending", "_pending_http")  # and FrameProtocol's (framing.py)

    _PEER_MASK = 0x80  # RFC 6455 §5.1: a client masks every frame it sends
    _PEER_MASK_ERROR = "client frame not masked"

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE,
        open: bool = False,
        inflater: Inflater | None = None,
    ) -> None:
        super().__init__(max_message_size=max_message_size, open=open, inflater=inflater)
        self._parser: RequestParser | None = None if open else RequestParser(max_handshake_size)
        self._pending: ParsedRequest | None = None  # a Request returned, awaiting accept() or reject()
        self._pending_http = False  # an HttpRequest returned, awaiting respond() or reject()
        self._http_method = ""  # that HttpRequest's method

    def enable_deflate(self, inflater: Inflater) -> None:
        """permessage-deflate was negotiated (call before ``accept()``): from now on a data message whose first frame
        has RSV1 set is inflated with ``inflater``, its decompressed size bounded by ``max_message_size``.

        Raises:
            UsageError: if the handshake is over.
        """
        if self.state is not State.HANDSHAKE:
            raise UsageError("enable_deflate() must be called before accept()")
        self._inflater = inflater

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> list[Event]:
        if self._pending is not None or self._parser is None:
            # Frames pipelined behind the request: kept for accept().
            self._buf += data
            return []
        try:
            request = self._parser.feed(data)
        except HandshakeError as exc:
            self._parser = None
            self.outgoing.append(build_error_response(exc.status, exc.reason, exc.headers))
            self._transition(Trigger.REJECT)
            return [HandshakeFailure(exc.status, exc.reason)]
        if request is None:
            return []
        self._parser = None
        if isinstance(request, PlainRequest):  # a plain HTTP GET or HEAD: the caller answers it (respond() or reject())
            self._pending_http = True
            self._http_method = request.method
            return [HttpRequest(request.method, request.target, request.headers)]
        self._pending = request
        self._buf += request.rest
        return [Request(request.target, request.headers)]

    def _drop_input(self) -> None:
        super()._drop_input()
        self._pending = None
        self._parser = None

    # -- handshake decisions ---------------------------------------------------------------------------

    def accept(self, extra_headers: Sequence[tuple[str, str]] = ()) -> list[Event]:
        """Accept the handshake announced by a Request event.

        Queues the 101 response and moves to OPEN. Next: write ``data_to_send()``, then handle the events
        returned here.

        Args:
            extra_headers: more response headers (e.g. ``Sec-WebSocket-Protocol``).

        Returns:
            The events of the frames the client sent right behind its request (usually none).

        Raises:
            UsageError: if no Request is awaiting a decision, or a header is invalid.
        """
        if self._pending is None or self.state is not State.HANDSHAKE:
            raise UsageError("accept() needs a Request event awaiting a decision")
        response = build_response_101(self._pending.key, extra_headers)
        self._pending = None
        self.outgoing.append(response)
        self._transition(Trigger.ACCEPT)
        if not self._buf:
            return []
        return self._receive_frames(b"")

    def reject(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Refuse the handshake announced by a Request event with an HTTP error.

        Queues the response and moves to CLOSED. Next: write ``data_to_send()`` and close the connection.

        Args:
            status: the HTTP status, 300-599 (e.g. 403, 404).
            reason: a short plain-text reason, sent as the body (not for a HEAD request: headers only).
            headers: extra response headers.

        Raises:
            UsageError: if no Request is awaiting a decision, or the status or a header is invalid.
        """
        if (self._pending is None and not self._pending_http) or self.state is not State.HANDSHAKE:
            raise UsageError("reject() needs a Request or HttpRequest event awaiting a decision")
        response = build_error_response(status, reason, headers)
        if self._pending_http and self._http_method == "HEAD":  # a HEAD gets the headers of the answer, no body
            response = response[: response.index(b"\r\n\r\n") + 4]
        self._pending_http = False
        self.outgoing.append(response)
        self._transition(Trigger.REJECT)
        self._drop_input()

    def fail_handshake(self, status: int, reason: str) -> None:
        """Give up on an opening handshake that has not completed (the caller's deadline expired: 408, say).

        Queues the HTTP error response and moves to CLOSED, whatever part of the request has arrived. Next: write
        ``data_to_send()`` and close the connection.

        Raises:
            UsageError: if the state is not HANDSHAKE, or the status is invalid.
        """
        if self.state is not State.HANDSHAKE:
            raise UsageError(f"fail_handshake() needs state HANDSHAKE, not {self.state.name}")
        self.outgoing.append(build_error_response(status, reason))
        self._pending_http = False
        self._transition(Trigger.REJECT)
        self._drop_input()

    def respond(self, status: int, body: bytes, content_type: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Answer the plain HTTP request announced by an HttpRequest event.

        Queues the response (without the body if the request was a HEAD: the same status and headers, its
        ``Content-Length`` included) and moves to CLOSED. Next: write ``data_to_send()`` and close the connection.

        Raises:
            UsageError: if no HttpRequest is awaiting an answer, or the status or a header is invalid.
        """
        if not self._pending_http or self.state is not State.HANDSHAKE:
            raise UsageError("respond() needs an HttpRequest event awaiting an answer")
        self.outgoing.append(build_response(status, body, content_type, headers, method=self._http_method))
        self._pending_http = False
        self._transition(Trigger.REJECT)
        self._drop_input()


configure(State.OPEN)  # what the C part (core.py) compares a protocol's state with
