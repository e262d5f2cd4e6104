"""The receiving side of a WebSocket connection (RFC 6455 §5-§7, RFC 7692): frames in, events out, on either end.

:class:`FrameProtocol` is the sans-I/O receive state machine of a connection once its handshake is done: bytes from
the peer go into :meth:`~FrameProtocol.receive_data`, which returns events (``events.py``); what it answers (pongs,
our Close) goes to the one output FIFO of its base, :class:`~snow_rt_py.protocol.output.FrameOutput`
(``protocol/output.py``). Nothing here touches a socket or a clock.

It is the base of one side's protocol class, which adds the opening handshake (``_receive_handshake`` and what
completes it: :class:`~snow_rt_py.protocol.connection.ServerProtocol` is a server's) and says how the peer masks:
``_PEER_MASK`` is the MASK bit every frame from the peer must carry (RFC 6455 §5.1: 0x80 from a client, 0 from a
server) and ``_PEER_MASK_ERROR`` the reason a frame without it fails with. Everything else here is the same for a
client and a server.

Rules enforced on the peer's frames (each violation fails the connection: the Close frame with the code is queued,
a ProtocolFailure event is returned, and all later input is ignored):

* every frame carries the MASK bit its side expects (§5.1: masked from a client, unmasked from a server), no RSV
  bit is set (§5.2) -- except RSV1 on the first frame of a data message once permessage-deflate is enabled (RFC
  7692 §6; never on a continuation or control frame) --, the opcode is not reserved (0x3-0x7, 0xB-0xF), a 64-bit
  length has its top bit clear: else 1002;
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

After ``send_close()`` (state CLOSING) the peer's data frames are still checked for framing and
fragmentation errors but are otherwise ignored; control frames are handled as usual. A protocol error found
while CLOSING yields a ProtocolFailure but queues no second Close frame.
"""

from __future__ import annotations

from typing import ClassVar

from snow_rt_py.protocol.close import CloseCode, build_close_payload, parse_close_payload
from snow_rt_py.protocol.deflate import Inflater
from snow_rt_py.protocol.errors import ProtocolError
from snow_rt_py.protocol.events import (
    BinaryMessage,
    CloseReceived,
    ConnectionLost,
    Event,
    Ping,
    Pong,
    ProtocolFailure,
    TextMessage,
)
from snow_rt_py.protocol.frames import Opcode
from snow_rt_py.protocol.mask import C_THRESHOLD, MaskedPayload, apply_mask
from snow_rt_py.protocol.output import MAX_CONTROL_PAYLOAD, FrameOutput
from snow_rt_py.protocol.state import State, Trigger
from snow_rt_py.protocol.utf8 import Utf8Decoder

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "FrameProtocol"]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

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
_NO_KEY = b"\x00\x00\x00\x00"  # what an unmasked payload arriving in pieces is "unmasked" with (a no-op)


class FrameProtocol(FrameOutput):
    """The receive state machine of one WebSocket connection, shared by both ends: frames in, events out.

    Not used alone: a side's class (:class:`~snow_rt_py.protocol.connection.ServerProtocol`) adds the opening
    handshake and sets ``_PEER_MASK`` / ``_PEER_MASK_ERROR``.

    Args:
        max_message_size: the largest message (after reassembly) the peer may send, in bytes; a bigger one fails
            the connection with 1009.
        open: start in OPEN, skipping the handshake (benchmarks and frame-level tests).
        inflater: permessage-deflate enabled from the start (with ``open``; else the side enables it when its
            handshake negotiates it).

    Attributes:
        close_received: the peer's valid Close frame was received (and see :class:`FrameOutput`'s).
    """

    __slots__ = (  # and FrameOutput's, and ProtocolCore's (core.py): _buf, _stream, _msg_opcode, _inflater, ...
        "_decoder",
        "_eof",
        "_msg_deflated",
        "_msg_size",
        "_parts",
        "_stream_b0",
        "_stream_utf8",
        "close_received",
    )

    _PEER_MASK: ClassVar[int]
    """The MASK bit (0x80 or 0) every frame from the peer must carry (RFC 6455 §5.1); set by the side's class."""
    _PEER_MASK_ERROR: ClassVar[str]
    """The reason a frame without that MASK bit fails the connection with (1002)."""

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        open: bool = False,
        inflater: Inflater | None = None,
    ) -> None:
        super().__init__(open=open)
        self.close_received = False
        self._max_message_size = max_message_size
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
        # permessage-deflate (RFC 7692), once the side enabled it: None = RSV1 is an error.
        self._inflater = inflater
        self._msg_deflated = False  # the message being reassembled is compressed (its first frame had RSV1)

    # -- input -----------------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Process bytes received from the peer.

        Never raises because of the bytes: a peer error becomes a ProtocolFailure / HandshakeFailure event.

        Args:
            data: the bytes read, in any chunking; ``b""`` means the peer closed the TCP stream (EOF).

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
        self._transition(Trigger.EOF)
        self._drop_input()
        return [ConnectionLost(clean=self.close_sent and self.close_received)]

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Bytes that arrived during the opening handshake: the side's class parses them."""
        raise NotImplementedError

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
        peer_mask = self._PEER_MASK
        key_len = 4 if peer_mask else 0  # the masking key in each header of the peer's frames
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
                if (b1 & 0x80) != peer_mask:
                    events.append(self._fail(CloseCode.PROTOCOL_ERROR, self._PEER_MASK_ERROR))
                    return events
                length = b1 & 0x7F
                if opcode >= 8:
                    if opcode > 10 or length > MAX_CONTROL_PAYLOAD or b0 < 0x80:
                        events.append(self._fail(CloseCode.PROTOCOL_ERROR, _bad_control(opcode, b0)))
                        return events
                    header = 2 + key_len
                else:
                    if opcode > 2:
                        events.append(self._fail(CloseCode.PROTOCOL_ERROR, f"reserved opcode {opcode}"))
                        return events
                    if (opcode == 0) != (msg_opcode != 0):
                        reason = "message not finished" if opcode else "continuation without a message"
                        events.append(self._fail(CloseCode.PROTOCOL_ERROR, reason))
                        return events
                    if length < 126:
                        header = 2 + key_len
                    elif length == 126:
                        if n - pos < 4:
                            break
                        length = (data[pos + 2] << 8) | data[pos + 3]
                        header = 4 + key_len
                    else:
                        if n - pos < 10:
                            break
                        length = from_bytes(data[pos + 2 : pos + 10], "big")
                        if length >> 63:
                            events.append(self._fail(CloseCode.PROTOCOL_ERROR, "payload length too big"))
                            return events
                        header = 10 + key_len
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
                        key = data[pos + header - 4 : pos + header] if key_len else _NO_KEY
                        stream = self._stream = MaskedPayload(length, key)
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
                elif not key_len:  # from a server: not masked
                    payload = bytes(data[end - length : end])
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
                    self.outgoing.append(self._frame(Opcode.PONG, payload))
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
            self._held_close = self._frame(Opcode.CLOSE, build_close_payload(reply))
            self.close_sent = True
        self.close_received = True
        self._transition(Trigger.RECEIVE_CLOSE)
        self._drop_input()
        return CloseReceived(code, reason)

    def _fail(self, code: int, reason: str) -> ProtocolFailure:
        """The peer broke the protocol: queue our Close (unless one was sent) and ignore further input."""
        if not self.close_sent:
            self._held_close = self._frame(Opcode.CLOSE, build_close_payload(code, reason))
            self.close_sent = True
        self._transition(Trigger.PROTOCOL_FAILURE)
        self._drop_input()
        return ProtocolFailure(code, reason)

    def _drop_input(self) -> None:
        """Forget every byte of input held (the side's class also forgets its handshake's): the connection is over."""
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
