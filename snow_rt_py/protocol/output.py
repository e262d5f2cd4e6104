"""The output side of a WebSocket connection: the one FIFO every frame leaves by, and the rule that our Close is last.

Every frame and response a protocol object produces -- the 101 or HTTP response, pongs, what ``send_*()`` encode,
and the data frames a caller encoded itself -- goes, in order, to one FIFO, :attr:`FrameOutput.outgoing`, which the
caller drains with :meth:`~FrameOutput.take_outgoing` (or :meth:`~FrameOutput.data_to_send`) after each call. Our
Close frame (a reply, the one failing the connection, or ``send_close()``'s) always leaves last: it is held until
the next drain and put behind whatever the caller queued meanwhile -- the replies to the messages that arrived
before the peer's Close, say -- and no data frame ever leaves after it (RFC 6455 §5.5.1). Nothing here touches a
socket or a clock.

:class:`FrameOutput` is the lowest Python base of a side's protocol class (``FrameProtocol`` in
``protocol/framing.py`` adds the receiving); its own base is ``ProtocolCore`` (``protocol/core.py``, C or Python),
which holds the fields the C receive of whole simple frames reads. The frames it encodes itself go through
:meth:`~FrameOutput._frame` and :meth:`~FrameOutput.send_text` / :meth:`~FrameOutput.send_binary`: unmasked, as a
server sends; a side that must mask what it sends (a client, RFC 6455 §5.3) overrides those three.
"""

from __future__ import annotations

from snow_rt_py.protocol.close import CloseCode, build_close_payload
from snow_rt_py.protocol.core import ProtocolCore
from snow_rt_py.protocol.errors import UsageError
from snow_rt_py.protocol.frames import Opcode, encode_binary, encode_frame, encode_text
from snow_rt_py.protocol.state import TRANSITIONS, State, Trigger

__all__ = ["MAX_CONTROL_PAYLOAD", "FrameOutput"]

MAX_CONTROL_PAYLOAD = 125  # RFC 6455 §5.5

_OPEN = State.OPEN
_CLOSING = State.CLOSING


class FrameOutput(ProtocolCore):
    """The output FIFO of one connection, the sends that fill it, and the state changes (:meth:`_transition`).

    Args:
        open: start in OPEN, skipping the handshake (benchmarks and frame-level tests).

    Attributes:
        state: the current :class:`~snow_rt_py.protocol.state.State`.
        close_sent: a Close frame was sent (by ``send_close()``, a reply, or a failure).
        outgoing: the one output FIFO: every byte string to write to the peer, in order. Drain it after each
            call (:meth:`data_to_send`); a caller that encodes data frames itself (a broadcast encoded once for
            many connections) appends them here too, so control frames and data always leave in order.
    """

    __slots__ = ("_close_out", "_held_close", "outgoing")  # and ProtocolCore's (core.py): state, close_sent, ...

    def __init__(self, *, open: bool = False) -> None:
        self.state = State.OPEN if open else State.HANDSHAKE
        self.close_sent = False
        self.outgoing: list[bytes] = []
        self._held_close: bytes | None = None  # our Close, leaving at the next drain, behind everything queued
        self._close_out = False  # our Close has been drained: only control frames may follow it

    def _transition(self, trigger: Trigger) -> None:
        """The only place the state changes (``protocol/state.py``'s table)."""
        self.state = TRANSITIONS[self.state, trigger]

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        """One whole frame the protocol sends of its own (pong, Close...): unmasked, as a server sends it."""
        return encode_frame(opcode, payload)

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
        """:meth:`take_outgoing`, as one byte string (``b""`` if nothing is queued). Write it to the peer."""
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
            payload: at most 125 bytes, echoed in the peer's Pong.

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
        return self._frame(opcode, payload)

    def send_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake: queue our Close frame and move to CLOSING.

        Afterwards the peer's data frames are ignored; its Close completes the handshake (CloseReceived,
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
        self._held_close = self._frame(Opcode.CLOSE, payload)
        self.close_sent = True
        self._transition(Trigger.SEND_CLOSE)


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
