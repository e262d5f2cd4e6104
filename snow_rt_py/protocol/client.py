"""The sans-I/O client side of a WebSocket connection (RFC 6455): our opening request, the server's answer, frames.

:class:`ClientProtocol` is the mirror of :class:`~snow_rt_py.protocol.connection.ServerProtocol`, put together
from the same two bases (``protocol/output.py``'s FIFO and sends, ``protocol/framing.py``'s receive state
machine, with every rule on frames, limits and close codes) and its own handshake side
(``protocol/client_handshake.py``). What differs is only the handshake and masking:

* the request is queued in :attr:`~ClientProtocol.outgoing` at construction: write it once connected;
* the response is validated strictly; a valid one gives a :class:`ResponseAccepted` event, after which the caller
  calls :meth:`~ClientProtocol.finish_handshake` (with an Inflater if permessage-deflate was agreed): state OPEN,
  and the frames that arrived behind the response are parsed then (the mirror of the server's ``accept()``);
  anything else gives :class:`ResponseRejected` (state CLOSED) with the reason, the HTTP status and, for a 3xx,
  its ``Location``;
* a server never masks (RFC 6455 §5.1): ``_PEER_MASK = 0``, and a masked frame fails the connection with 1002;
* we mask every frame we send (§5.3), each with a fresh key from the operating system's CSPRNG (:func:`mask_key`).

The closing handshake is the framing's; what differs for a client is the TCP side, which the caller does (RFC 6455
§7.1.1: once the exchange is over the server closes TCP first; a client closes it itself only after a timeout).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from snow_rt_py.protocol.client_handshake import (
    DEFAULT_MAX_RESPONSE_SIZE,
    ResponseError,
    ResponseParser,
    build_request,
    check_response,
    deflate_offer,
    new_key,
)
from snow_rt_py.protocol.deflate import DeflateParams, Inflater
from snow_rt_py.protocol.errors import UsageError
from snow_rt_py.protocol.events import Event
from snow_rt_py.protocol.frames import encode_binary, encode_text
from snow_rt_py.protocol.framing import DEFAULT_MAX_MESSAGE_SIZE, FrameProtocol
from snow_rt_py.protocol.headers import Headers
from snow_rt_py.protocol.mask import apply_mask
from snow_rt_py.protocol.state import State, Trigger

__all__ = ["ClientProtocol", "ResponseAccepted", "ResponseRejected", "encode_masked", "mask_frames", "mask_key"]

_PACK16 = struct.Struct("!BBH").pack
_PACK64 = struct.Struct("!BBQ").pack
_KEY_BATCH = 1024  # masking keys drawn from the CSPRNG at a time (one system call per 1024 frames)
_keys: Iterator[bytes] = iter(())


@dataclass(slots=True)
class ResponseAccepted:
    """The server accepted our opening handshake (a valid 101).

    Next: call ``finish_handshake()`` (with an :class:`Inflater` for ``deflate`` if it is not None) and handle the
    events it returns.

    Attributes:
        headers: the response headers.
        subprotocol: the subprotocol the server chose (one we offered), or None.
        deflate: the permessage-deflate parameters agreed, seen from our side, or None.
    """

    headers: Headers
    subprotocol: str | None
    deflate: DeflateParams | None


@dataclass(slots=True)
class ResponseRejected:
    """The server's answer was not a valid acceptance: the connection is over (state CLOSED).

    Next: close the TCP connection (a 3xx with a ``location`` may be followed with a new connection).

    Attributes:
        reason: what was wrong (e.g. ``"HTTP 403 Forbidden instead of 101"``, ``"wrong Sec-WebSocket-Accept"``).
        status: the HTTP status the server answered with, or None if it was not valid HTTP.
        location: the ``Location`` of a 3xx answer, else None.
    """

    reason: str
    status: int | None
    location: str | None


def mask_key() -> bytes:
    """A fresh 4-byte masking key (RFC 6455 §5.3), from the operating system's CSPRNG (drawn in batches)."""
    global _keys
    try:
        return next(_keys)  # one C-level step: two threads never get the same key
    except StopIteration:
        block = os.urandom(4 * _KEY_BATCH)
        keys = iter([block[i : i + 4] for i in range(0, len(block), 4)])
        _keys = keys
        return next(keys)


def encode_masked(b0: int, payload: bytes | bytearray | memoryview) -> bytes:
    """One masked frame: first octet ``b0`` (FIN, RSV, opcode), a fresh key, the payload masked with it."""
    n = len(payload)
    key = mask_key()
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 0x10000:
        head = _PACK16(b0, 0xFE, n)
    else:
        head = _PACK64(b0, 0xFF, n)
    return head + key + apply_mask(payload, key) if n else head + key


def mask_frames(data: bytes, payload: bytes | None = None) -> bytes:
    """The unmasked frames ``data`` (as a server sends them: one or several whole frames back to back, or -- with
    ``payload`` -- one frame's header whose payload is ``payload``) as masked frames, each with a fresh key.

    This is how a frame encoded once for many connections (a room's broadcast) goes out on a client connection.
    """
    if payload is not None:
        return encode_masked(data[0], payload)
    out = []
    pos = 0
    n = len(data)
    while pos < n:
        b0 = data[pos]
        length = data[pos + 1] & 0x7F
        head = 2
        if length == 126:
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            head = 4
        elif length == 127:
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            head = 10
        start = pos + head
        with memoryview(data) as view:
            out.append(encode_masked(b0, view[start : start + length]))
        pos = start + length
    return out[0] if len(out) == 1 else b"".join(out)


class ClientProtocol(FrameProtocol):
    """One client-side WebSocket connection, from our opening request to the end of the TCP stream.

    Args:
        host: the ``Host`` header value.
        target: the request target (path and query).
        origin: the ``Origin`` header, or None.
        subprotocols: the subprotocols to offer.
        compression: ``"off"``, ``"shared"`` or ``"dedicated"``: the permessage-deflate offer (client_handshake.py).
        headers: extra request headers.
        max_message_size: the largest message (after reassembly) the server may send; bigger fails with 1009.
        max_response_size: the most bytes the response head may take.

    Raises:
        ValueError: an invalid header, subprotocol, target or compression mode (nothing was sent).

    Attributes:
        target: the request target we sent.
        subprotocol: the subprotocol the server chose, once accepted.
        (and FrameProtocol's: state, close_sent, close_received, outgoing)
    """

    __slots__ = ("_accepted", "_compression", "_key", "_parser", "_subprotocols", "subprotocol", "target")

    _PEER_MASK = 0  # RFC 6455 §5.1: a server never masks the frames it sends
    _PEER_MASK_ERROR = "server frame masked"

    def __init__(
        self,
        host: str,
        target: str,
        *,
        origin: str | None = None,
        subprotocols: Sequence[str] = (),
        compression: str = "off",
        headers: Sequence[tuple[str, str]] = (),
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        super().__init__(max_message_size=max_message_size)
        self._key = new_key()
        self._subprotocols = tuple(subprotocols)
        self._compression = compression
        self.target = target
        self.subprotocol: str | None = None
        request = build_request(
            host,
            target,
            self._key,
            origin=origin,
            subprotocols=self._subprotocols,
            extensions=deflate_offer(compression),
            headers=headers,
        )
        self.outgoing.append(request)
        self._parser: ResponseParser | None = ResponseParser(max_response_size)
        self._accepted = False  # a ResponseAccepted was returned, awaiting finish_handshake()

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> list[Event]:
        parser = self._parser
        if parser is None:  # accepted: frames behind the response wait for finish_handshake()
            self._buf += data
            return []
        try:
            response = parser.feed(data)
            if response is None:
                return []
            subprotocol, deflate = check_response(response, self._key, self._subprotocols, self._compression)
        except ResponseError as exc:
            self._parser = None
            self._transition(Trigger.REJECT)
            self._drop_input()
            return [cast(Event, ResponseRejected(exc.reason, exc.status, exc.location))]
        self._parser = None
        self._accepted = True
        self.subprotocol = subprotocol
        self._buf += response.rest
        return [cast(Event, ResponseAccepted(response.headers, subprotocol, deflate))]

    def finish_handshake(self, inflater: Inflater | None = None) -> list[Event]:
        """After a ResponseAccepted event: move to OPEN and parse the frames that arrived behind the response.

        Args:
            inflater: permessage-deflate's decompressor for the agreed parameters (None: not agreed).

        Returns:
            The events of those frames (usually none). Next: handle them, then write ``data_to_send()``.

        Raises:
            UsageError: if no ResponseAccepted is awaiting this call.
        """
        if not self._accepted or self.state is not State.HANDSHAKE:
            raise UsageError("finish_handshake() needs a ResponseAccepted event awaiting it")
        self._accepted = False
        self._inflater = inflater
        self._transition(Trigger.ACCEPT)
        if not self._buf:
            return []
        return self._receive_frames(b"")

    def _receive_eof(self) -> list[Event]:
        if self.state is State.HANDSHAKE and not self._eof:  # the server closed before answering in full
            self._eof = True
            self._parser = None
            self._transition(Trigger.EOF)
            self._drop_input()
            return [cast(Event, ResponseRejected("connection closed during the opening handshake", None, None))]
        return super()._receive_eof()

    # -- masking: every frame we send (RFC 6455 §5.3) --------------------------------------------------------

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        return encode_masked(0x80 | opcode, payload)

    def send_text(self, text: str) -> None:
        """Queue a text message as one masked frame.

        Raises:
            UsageError: if the state is not OPEN, or ``text`` is not a UTF-8 encodable ``str``.
        """
        if self.state is not State.OPEN:
            raise UsageError(f"cannot send a message in state {self.state.name}")
        self.outgoing.append(mask_frames(encode_text(text)))

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        """Queue a binary message as one masked frame.

        Raises:
            UsageError: if the state is not OPEN, or ``data`` is not bytes-like.
        """
        if self.state is not State.OPEN:
            raise UsageError(f"cannot send a message in state {self.state.name}")
        self.outgoing.append(mask_frames(encode_binary(data)))
