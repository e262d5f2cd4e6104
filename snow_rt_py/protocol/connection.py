"""The sans-I/O server side of a WebSocket connection (RFC 6455).

Bytes from the client go into :meth:`ServerProtocol.receive_data`, which returns events (``events.py``).
Bytes for the client come out one way: every frame and response the connection produces -- the 101 or HTTP
response, pongs, what ``send_*()`` encode, and the data frames a caller encoded itself -- goes, in order, to one
FIFO, :attr:`ServerProtocol.outgoing`, which the caller drains with :meth:`take_outgoing` (or
:meth:`data_to_send`) after each call. Our Close frame (a reply, the one failing the connection, or
``send_close()``'s) always leaves last: it is held until the next drain and put behind whatever the caller queued
meanwhile -- the replies to the messages that arrived before the peer's Close, say -- and no data frame ever leaves
after it (RFC 6455 §5.5.1). Nothing here touches a socket or a clock.

States and transitions (the only place the state changes is :meth:`ServerProtocol._transition`, driven by
``_TRANSITIONS``)::

    HANDSHAKE --accept()----------------------------------> OPEN
    HANDSHAKE --reject() / invalid request (HandshakeFailure)--> CLOSED
    HANDSHAKE --plain HTTP GET (HttpRequest), respond() or reject()--> CLOSED
    OPEN      --send_close()------------------------------> CLOSING
    OPEN      --peer Close (reply queued, CloseReceived)--> CLOSED
    OPEN      --peer breaks the protocol (ProtocolFailure)-> CLOSED
    CLOSING   --peer Close (CloseReceived, no reply)------> CLOSED
    CLOSING   --peer breaks the protocol (ProtocolFailure)-> CLOSED
    any       --EOF, receive_data(b"") (ConnectionLost)---> CLOSED

Rules enforced on client frames (each violation fails the connection: the Close frame with the code is queued,
a ProtocolFailure event is returned, and all later input is ignored):

* every frame is masked (§5.1), no RSV bit is set (§5.2) -- except RSV1 on the first frame of a data message
  once permessage-deflate is enabled (RFC 7692 §6; never on a continuation or control frame) --, the opcode is
  not reserved (0x3-0x7, 0xB-0xF), a 64-bit length has its top bit clear: else 1002;
* control frames have FIN set and at most 125 bytes of payload (§5.5): else 1002; they may arrive between
  the fragments of a message without disturbing it (§5.4);
* a continuation frame continues an open message and a new text/binary frame does not interrupt one (§5.4):
  else 1002;
* a message may not exceed ``max_message_size`` bytes: 1009, decided from a frame's header (its declared
  length plus the bytes already received for the message) before its payload is buffered; a compressed message
  is bounded by its decompressed size, checked while inflating (``protocol/deflate.py``: never more than the limit
  + 1 byte is inflated), and data that is not valid deflate is 1007;
* text is UTF-8 (§8.1): 1007 as soon as the bytes received so far can no longer be valid UTF-8 -- checked
  frame by frame, and within a text frame that arrives in pieces, piece by piece (Autobahn 6.4.x);
* a Close payload is empty or a sendable code plus a UTF-8 reason (§5.5.1, §7.4): else 1002 / 1007.

Every check needs only the bytes of the frame it is about, and checks are made in order of how many bytes
they need, so the events and the output never depend on how the input was split into chunks -- except that
invalid UTF-8 in a frame that arrives in pieces is found (and failed with the same 1007) as early as the
pieces allow, which only ever means fewer bytes are read before the failure.

After ``send_close()`` (state CLOSING) the client's data frames are still checked for framing and
fragmentation errors but are otherwise ignored; control frames are handled as usual. A protocol error found
while CLOSING yields a ProtocolFailure but queues no second Close frame.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from snow_rt_py.protocol.close import CloseCode, build_close_payload, parse_close_payload
from snow_rt_py.protocol.core import ProtocolCore, configure
from snow_rt_py.protocol.deflate import Inflater
from snow_rt_py.protocol.errors import HandshakeError, ProtocolError, UsageError
from snow_rt_py.protocol.events import (
    BinaryMessage,
    CloseReceived,
    ConnectionLost,
    Event,
    HandshakeFailure,
    HttpRequest,
    Ping,
    Pong,
    ProtocolFailure,
    Request,
    TextMessage,
)
from snow_rt_py.protocol.frames import Opcode, encode_binary, encode_frame, encode_text
from snow_rt_py.protocol.handshake import (
    DEFAULT_MAX_HANDSHAKE_SIZE,
    ParsedRequest,
    PlainRequest,
    RequestParser,
    build_error_response,
    build_response,
    build_response_101,
)
from snow_rt_py.protocol.mask import C_THRESHOLD, MaskedPayload, apply_mask
from snow_rt_py.protocol.utf8 import Utf8Decoder

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "ServerProtocol", "State"]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
MAX_CONTROL_PAYLOAD = 125  # RFC 6455 §5.5


class State(enum.Enum):
    """Where a connection is in its life (see the module docstring for the transitions)."""

    HANDSHAKE = "HANDSHAKE"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


class _Trigger(enum.Enum):
    ACCEPT = enum.auto()
    REJECT = enum.auto()
    SEND_CLOSE = enum.auto()
    RECEIVE_CLOSE = enum.auto()
    PROTOCOL_FAILURE = enum.auto()
    EOF = enum.auto()


_TRANSITIONS: dict[tuple[State, _Trigger], State] = {
    (State.HANDSHAKE, _Trigger.ACCEPT): State.OPEN,
    (State.HANDSHAKE, _Trigger.REJECT): State.CLOSED,
    (State.OPEN, _Trigger.SEND_CLOSE): State.CLOSING,
    (State.OPEN, _Trigger.RECEIVE_CLOSE): State.CLOSED,
    (State.OPEN, _Trigger.PROTOCOL_FAILURE): State.CLOSED,
    (State.CLOSING, _Trigger.RECEIVE_CLOSE): State.CLOSED,
    (State.CLOSING, _Trigger.PROTOCOL_FAILURE): State.CLOSED,
    **{(state, _Trigger.EOF): State.CLOSED for state in State},
}

_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED

# Unmasking small payloads inline. Read the masking key and the payload as ONE little-endian integer x (the
# key in its low 32 bits); multiplying the key by _REPEAT[n] (a 1 every 32 bits, over the key and the n payload
# bytes) lays it end to end; XOR cancels the key itself and unmasks the payload; _KEEP[n] drops what the last
# copy of the key sticks out past the payload. About twice as fast as slicing and calling apply_mask.
_SMALL = C_THRESHOLD  # from this size on, apply_mask's C accelerator (when built) is faster
# A data frame at least this long that is not complete in the bytes at hand is not buffered whole: its payload is
# unmasked piece by piece into one buffer as it arrives (MaskedPayload), one pass instead of buffer growth,
# copies and a final unmask.
_STREAM_MIN = 64 << 10
_REPEAT = [sum(1 << (32 * i) for i in range((n + 3) // 4 + 1)) for n in range(_SMALL)]
_KEEP = [(1 << (8 * n)) - 1 for n in range(_SMALL)]
_KEY_BITS = 0xFFFFFFFF


class ServerProtocol(ProtocolCore):
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

    __slots__ = (  # and the fields of ProtocolCore (core.py): state, close_sent, _buf, _stream, _msg_opcode, ...
        "_close_out",
        "_decoder",
        "_eof",
        "_held_close",
        "_http_method",
        "_msg_deflated",
        "_msg_size",
        "_parser",
        "_parts",
        "_pending",
        "_pending_http",
        "_stream_b0",
        "_stream_utf8",
        "close_received",
        "outgoing",
    )

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE,
        open: bool = False,
        inflater: Inflater | None = None,
    ) -> None:
        self.state = State.OPEN if open else State.HANDSHAKE
        self.close_sent = False
        self.close_received = False
        self._max_message_size = max_message_size
        self._parser: RequestParser | None = None if open else RequestParser(max_handshake_size)
        self._pending: ParsedRequest | None = None  # a Request returned, awaiting accept() or reject()
        self._pending_http = False  # an HttpRequest returned, awaiting respond() or reject()
        self._http_method = ""  # that HttpRequest's method
        self.outgoing: list[bytes] = []
        self._held_close: bytes | None = None  # our Close, leaving at the next drain, behind everything queued
        self._close_out = False  # our Close has been drained: only control frames may follow it
        self._buf = bytearray()  # unparsed input: at most one incomplete frame once OPEN
        self._eof = False
        # The message being reassembled from fragments: opcode (0 = none), bytes so far, and its payload so far,
        # in one buffer: what it holds is the bytes received, however many fragments brought them (a list of
        # parts would cost an object per fragment: a flood of 1-byte fragments would hold ~50x its bytes).
        self._msg_opcode = 0
        self._msg_size = 0
        self._parts: bytes | bytearray = b""  # a bytearray from a message's first fragment on
        self._decoder: Utf8Decoder | None = None
        # A large frame whose payload is still arriving: unmasked into place as it comes (see _STREAM_MIN).
        self._stream: MaskedPayload | None = None
        self._stream_b0 = 0  # that frame's first octet (FIN, opcode)
        self._stream_utf8: Utf8Decoder | None = None  # checks a streamed text frame's pieces as they arrive
        # permessage-deflate (RFC 7692), once the caller enabled it (enable_deflate): None = RSV1 is an error.
        self._inflater = inflater
        self._msg_deflated = False  # the message being reassembled is compressed (its first frame had RSV1)

    def enable_deflate(self, inflater: Inflater) -> None:
        """permessage-deflate was negotiated (call before ``accept()``): from now on a data message whose first frame
        has RSV1 set is inflated with ``inflater``, its decompressed size bounded by ``max_message_size``.

        Raises:
            UsageError: if the handshake is over.
        """
        if self.state is not State.HANDSHAKE:
            raise UsageError("enable_deflate() must be called before accept()")
        self._inflater = inflater

    # -- input -----------------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Process bytes received from the client.

        Never raises because of the bytes: a peer error becomes a ProtocolFailure / HandshakeFailure event.

        Args:
            data: the bytes read, in any chunking; ``b""`` means the client closed the TCP stream (EOF).

        Returns:
            The events the bytes completed, in order. Next: handle them, then write ``data_to_send()``
            (or drain ``outgoing``).
        """
        state = self.state
        if not data:
            return self._receive_eof()
        if state is _OPEN or state is _CLOSING:
            return self._receive_frames(data)
        if state is State.HANDSHAKE:
            return self._receive_handshake(data)
        return []

    def _receive_eof(self) -> list[Event]:
        if self._eof:
            return []
        self._eof = True
        self._transition(_Trigger.EOF)
        self._drop_input()
        return [ConnectionLost(clean=self.close_sent and self.close_received)]

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
            self._transition(_Trigger.REJECT)
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

    def _receive_frames(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """The hot path: parse every complete frame in the buffered bytes plus ``data``."""
        events: list[Event] = []
        buf = self._buf
        if buf:
            buf += data
            data = buf
        n = len(data)
        pos = 0
        msg_opcode = self._msg_opcode
        msg_size = self._msg_size
        max_size = self._max_message_size
        ignore_data = self.state is _CLOSING
        from_bytes = int.from_bytes
        stream = self._stream
        while True:
            if stream is not None:
                # The payload of a frame spread over reads, arriving: take what is here; the frame is handled once
                # complete. A text frame's new bytes are checked at once, so invalid UTF-8 fails it early.
                before = stream.filled
                pos += stream.feed(data, pos, n)
                if self._stream_utf8 is not None and stream.filled > before:
                    try:
                        self._stream_utf8.decode(stream.peek(before, stream.filled), False)
                    except ProtocolError as exc:
                        events.append(self._fail(exc.close_code, exc.reason))
                        return events
                if not stream.complete:
                    break
                b0 = self._stream_b0
                opcode = b0 & 0x0F
                length = stream.length
                payload = stream.take()
                self._stream = stream = None
                self._stream_utf8 = None
            else:
                if n - pos < 2:
                    break
                # Checks needing only the first two bytes come first (see the module docstring).
                b0 = data[pos]
                b1 = data[pos + 1]
                opcode = b0 & 0x0F
                if b0 & 0x70 and not self._rsv_allowed(b0, opcode):
                    events.append(self._fail(CloseCode.PROTOCOL_ERROR, "reserved bits set"))
                    return events
                if b1 < 0x80:
                    events.append(self._fail(CloseCode.PROTOCOL_ERROR, "client frame not masked"))
                    return events
                length = b1 & 0x7F
                if opcode >= 8:
                    if opcode > 10 or length > MAX_CONTROL_PAYLOAD or b0 < 0x80:
                        events.append(self._fail(CloseCode.PROTOCOL_ERROR, _bad_control(opcode, b0)))
                        return events
                    header = 6
                else:
                    if opcode > 2:
                        events.append(self._fail(CloseCode.PROTOCOL_ERROR, f"reserved opcode {opcode}"))
                        return events
                    if (opcode == 0) != (msg_opcode != 0):
                        reason = "message not finished" if opcode else "continuation without a message"
                        events.append(self._fail(CloseCode.PROTOCOL_ERROR, reason))
                        return events
                    if length < 126:
                        header = 6
                    elif length == 126:
                        if n - pos < 4:
                            break
                        length = (data[pos + 2] << 8) | data[pos + 3]
                        header = 8
                    else:
                        if n - pos < 10:
                            break
                        length = from_bytes(data[pos + 2 : pos + 10], "big")
                        if length >> 63:
                            events.append(self._fail(CloseCode.PROTOCOL_ERROR, "payload length too big"))
                            return events
                        header = 14
                    if msg_size + length > max_size and not self._compressed_fits(b0, opcode, msg_size + length):
                        events.append(self._fail(CloseCode.MESSAGE_TOO_BIG, "message too big"))
                        return events
                end = pos + header + length
                if end > n:
                    if n - pos < header:
                        break
                    # Text that is not being ignored: (the rest of) a message whose bytes must be valid UTF-8.
                    text = not ignore_data and (opcode == 1 or (opcode == 0 and self._decoder is not None))
                    if text and (b0 & 0x40 or (opcode == 0 and self._msg_deflated)):
                        text = False  # compressed: its UTF-8 is checked once inflated
                    if length >= _STREAM_MIN or (text and n - pos > header):
                        # A data frame spread over reads: unmask its payload as it arrives (module header); a text
                        # frame's pieces are UTF-8 checked as they come, from where its message has got to.
                        key_start = pos + header - 4
                        stream = self._stream = MaskedPayload(length, data[key_start : key_start + 4])
                        self._stream_b0 = b0
                        if text:
                            self._stream_utf8 = (
                                Utf8Decoder() if opcode == 1 or self._decoder is None else self._decoder.copy()
                            )
                        pos += header
                        continue
                    break
                key_start = end - length - 4
                pos = end
                if length == 0:
                    payload = b""
                elif length < _SMALL:
                    x = from_bytes(data[key_start:end], "little")
                    x = ((x ^ (x & _KEY_BITS) * _REPEAT[length]) >> 32) & _KEEP[length]
                    payload = x.to_bytes(length, "little")
                else:
                    payload = _unmask(data, key_start, end)

            if opcode >= 8:
                if opcode == 8:
                    events.append(self._receive_close(payload))
                    return events
                if opcode == 9:
                    self.outgoing.append(encode_frame(Opcode.PONG, payload))
                    events.append(Ping(payload))
                else:
                    events.append(Pong(payload))
            elif b0 & 0x80 and not msg_opcode:
                # An unfragmented message: the common case.
                if ignore_data:
                    continue
                if b0 & 0x40:  # compressed (RFC 7692): RSV1 was checked against the negotiation above
                    events.append(self._inflate_message(opcode, payload))
                    if self.state is _CLOSED:
                        return events
                    continue
                if opcode == 2:
                    events.append(BinaryMessage(payload))
                else:
                    try:
                        events.append(TextMessage(payload.decode("utf-8"), payload))
                    except UnicodeDecodeError:
                        events.append(self._fail(CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in text message"))
                        return events
            else:
                if opcode:
                    msg_opcode = opcode
                    msg_size = 0
                msg_size += length
                try:
                    event = self._fragment(opcode, payload, b0 & 0x80 != 0, ignore_data, b0 & 0x40 != 0)
                except ProtocolError as exc:
                    events.append(self._fail(exc.close_code, exc.reason))
                    return events
                if event is not None:
                    events.append(event)
                if b0 & 0x80:
                    msg_opcode = 0
                    msg_size = 0

        self._msg_opcode = msg_opcode
        self._msg_size = msg_size
        if data is buf:
            if pos:
                del buf[:pos]
        elif pos < n:
            self._buf = bytearray(memoryview(data)[pos:])
        return events

    def _rsv_allowed(self, b0: int, opcode: int) -> bool:
        """RFC 7692 §6: RSV1 (alone) may be set only with permessage-deflate negotiated, and only on the first frame
        of a data message (not on a continuation frame, RFC 7692 §6.1, nor on a control frame, §6)."""
        return self._inflater is not None and b0 & 0x70 == 0x40 and (opcode == 1 or opcode == 2)

    def _compressed_fits(self, b0: int, opcode: int, wire_size: int) -> bool:
        """A compressed message is bounded by its decompressed size (checked while inflating); on the wire it may
        exceed ``max_message_size`` by deflate's growth on incompressible data: 5 bytes per stored block, whose size
        depends on the sender's memLevel (0.25% with websockets' memLevel 5), up to zlib's deflateBound for unusual
        settings: 1/8 more and 1 KiB are allowed on the wire."""
        compressed = b0 & 0x40 if opcode else self._msg_deflated
        limit = self._max_message_size
        return bool(compressed) and wire_size <= limit + (limit >> 3) + 1024

    def _inflate_message(self, opcode: int, payload: bytes) -> TextMessage | BinaryMessage | ProtocolFailure:
        """An unfragmented compressed message: inflate it (bounded), check its UTF-8 if text."""
        assert self._inflater is not None
        try:
            data = self._inflater.feed(payload, self._max_message_size, True)
        except ProtocolError as exc:
            return self._fail(exc.close_code, exc.reason)
        if opcode == 2:
            return BinaryMessage(data)
        try:
            return TextMessage(data.decode("utf-8"), data)
        except UnicodeDecodeError:
            return self._fail(CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in text message")

    def _fragment(
        self, frame_opcode: int, payload: bytes, fin: bool, ignore: bool, deflated: bool = False
    ) -> TextMessage | BinaryMessage | None:
        """Add one fragment to the message being reassembled; return the message on its last fragment.

        Raises:
            ProtocolError: 1007 if the text so far is not valid UTF-8 (or a compressed message's data is not valid
                deflate); 1009 if a compressed message inflates past ``max_message_size``.
        """
        if frame_opcode:  # the first fragment
            self._decoder = Utf8Decoder() if frame_opcode == Opcode.TEXT else None
            self._parts = bytearray()
            self._msg_deflated = deflated
        if ignore:
            return None
        if self._msg_deflated:
            assert self._inflater is not None
            payload = self._inflater.feed(payload, self._max_message_size - len(self._parts), fin)
        decoder = self._decoder
        if decoder is not None:
            decoder.decode(payload, fin)  # fails fast (1007); the text itself is decoded once, at the end
        self._parts += payload
        if not fin:
            return None
        data = bytes(self._parts)
        self._parts = b""
        if decoder is not None:
            return TextMessage(data.decode("utf-8"), data)
        return BinaryMessage(data)

    def _receive_close(self, payload: bytes) -> CloseReceived | ProtocolFailure:
        try:
            code, reason = parse_close_payload(payload)
        except ProtocolError as exc:
            return self._fail(exc.close_code, exc.reason)
        if not self.close_sent:
            # RFC 6455 §5.5.1: echo the code; 1005 means "none" and must not go on the wire.
            reply = CloseCode.NORMAL_CLOSURE if code == CloseCode.NO_STATUS_RCVD else code
            self._held_close = encode_frame(Opcode.CLOSE, build_close_payload(reply))
            self.close_sent = True
        self.close_received = True
        self._transition(_Trigger.RECEIVE_CLOSE)
        self._drop_input()
        return CloseReceived(code, reason)

    def _fail(self, code: int, reason: str) -> ProtocolFailure:
        """The client broke the protocol: queue our Close (unless one was sent) and ignore further input."""
        if not self.close_sent:
            self._held_close = encode_frame(Opcode.CLOSE, build_close_payload(code, reason))
            self.close_sent = True
        self._transition(_Trigger.PROTOCOL_FAILURE)
        self._drop_input()
        return ProtocolFailure(code, reason)

    def _drop_input(self) -> None:
        self._buf = bytearray()
        if self._stream is not None:
            self._stream.discard()
            self._stream = None
        self._stream_utf8 = None
        self._parts = b""
        self._decoder = None
        self._msg_deflated = False
        if self._inflater is not None:
            self._inflater.discard()
        self._msg_opcode = 0
        self._msg_size = 0
        self._pending = None
        self._parser = None

    def _transition(self, trigger: _Trigger) -> None:
        self.state = _TRANSITIONS[self.state, trigger]

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
        self._transition(_Trigger.ACCEPT)
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
        self._transition(_Trigger.REJECT)
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
        self._transition(_Trigger.REJECT)
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
        self._transition(_Trigger.REJECT)
        self._drop_input()

    # -- output ----------------------------------------------------------------------------------------

    def take_outgoing(self) -> list[bytes]:
        """Drain :attr:`outgoing`: everything to write now, in order, our Close (if one is due) last.

        Only the items present when it is called are taken: an item another thread appends meanwhile stays queued.
        Once our Close has been taken, data frames queued after it are dropped (RFC 6455 §5.5.1: none may follow
        it); control frames (pongs) still leave.

        Returns:
            The byte strings to write, in order (a header and its payload may be separate items).
        """
        out = self.outgoing
        n = len(out)
        items = out[:n]
        del out[:n]
        if self.close_sent:
            if self._close_out:
                items = _control_frames_only(items)
            elif self._held_close is not None:
                items.append(self._held_close)
                self._held_close = None
                self._close_out = True
        return items

    def data_to_send(self) -> bytes:
        """:meth:`take_outgoing`, as one byte string (``b""`` if nothing is queued). Write it to the client."""
        items = self.take_outgoing()
        return items[0] if len(items) == 1 else b"".join(items)

    def send_text(self, text: str) -> None:
        """Queue a text message as one frame.

        Args:
            text: the message.

        Raises:
            UsageError: if the state is not OPEN, or ``text`` is not a UTF-8 encodable ``str``.
        """
        if self.state is not _OPEN:
            raise UsageError(f"cannot send a message in state {self.state.name}")
        self.outgoing.append(encode_text(text))

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        """Queue a binary message as one frame.

        Args:
            data: the message.

        Raises:
            UsageError: if the state is not OPEN, or ``data`` is not bytes-like.
        """
        if self.state is not _OPEN:
            raise UsageError(f"cannot send a message in state {self.state.name}")
        self.outgoing.append(encode_binary(data))

    def send_ping(self, payload: bytes = b"") -> None:
        """Queue a Ping (allowed while OPEN or CLOSING).

        Args:
            payload: at most 125 bytes, echoed in the client's Pong.

        Raises:
            UsageError: if the state is neither OPEN nor CLOSING, or the payload is over 125 bytes.
        """
        self.outgoing.append(self._control_frame(Opcode.PING, payload))

    def send_pong(self, payload: bytes = b"") -> None:
        """Queue an unsolicited Pong (allowed while OPEN or CLOSING; pings are answered automatically).

        Args:
            payload: at most 125 bytes.

        Raises:
            UsageError: if the state is neither OPEN nor CLOSING, or the payload is over 125 bytes.
        """
        self.outgoing.append(self._control_frame(Opcode.PONG, payload))

    def _control_frame(self, opcode: Opcode, payload: bytes) -> bytes:
        if self.state is not _OPEN and self.state is not _CLOSING:
            raise UsageError(f"cannot send a {opcode.name} in state {self.state.name}")
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise UsageError(f"payload must be bytes-like, not {type(payload).__name__}")
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise UsageError("a control frame payload is at most 125 bytes")
        return encode_frame(opcode, payload)

    def send_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake: queue our Close frame and move to CLOSING.

        Afterwards the client's data frames are ignored; its Close completes the handshake (CloseReceived,
        state CLOSED, nothing more to send). Next: write ``data_to_send()``, wait (bounded) for CloseReceived,
        then close the TCP connection.

        Args:
            code: a code allowed on the wire (1000-1003, 1007-1014, 3000-4999).
            reason: at most 123 UTF-8 bytes.

        Raises:
            UsageError: if the state is not OPEN, or the code or reason is invalid (:func:`build_close_payload`).
        """
        self.send_close_payload(build_close_payload(code, reason))

    def send_close_payload(self, payload: bytes) -> None:
        """:meth:`send_close` with a payload already made by :func:`build_close_payload` (a caller that validated
        the arguments on another thread, before changing its own state).

        Raises:
            UsageError: if the state is not OPEN.
        """
        if self.state is not _OPEN:
            raise UsageError(f"cannot send a Close in state {self.state.name}")
        self._held_close = encode_frame(Opcode.CLOSE, payload)
        self.close_sent = True
        self._transition(_Trigger.SEND_CLOSE)


def _control_frames_only(items: list[bytes]) -> list[bytes]:
    """The control frames of ``items``, which the protocol queued itself (whole frames, one per item): what may still
    be written after our Close. Data frames -- and the payloads queued apart from their headers -- are dropped."""
    kept = []
    skip_payload = False
    for item in items:
        if skip_payload:  # the payload of a data frame whose header was dropped
            skip_payload = False
            continue
        if item and item[0] & 0x08:
            kept.append(item)
        elif item and len(item) <= 14 and _header_only(item):
            skip_payload = True
    return kept


def _header_only(item: bytes) -> bool:
    """True if ``item`` is exactly a frame header (its payload queued as the next item)."""
    length = item[1] & 0x7F
    size = 2 if length < 126 else (4 if length == 126 else 10)
    return len(item) == size and (length >= 126 or length > 0)


def _unmask(data: bytes | bytearray | memoryview, key_start: int, end: int) -> bytes:
    """Unmask a large payload with a single copy, without holding a view on ``data`` afterwards."""
    with memoryview(data) as view, view[key_start + 4 : end] as payload:
        return apply_mask(payload, bytes(view[key_start : key_start + 4]))


def _bad_control(opcode: int, b0: int) -> str:
    if opcode > 10:
        return f"reserved opcode {opcode}"
    if b0 < 0x80:
        return "fragmented control frame"
    return "control frame payload over 125 bytes"


configure(State.OPEN)  # what the C part (core.py) compares a protocol's state with
