"""A client connection: the server's :class:`~snow_rt_py.runtime.connection.Connection`, handshake side mirrored.

Everything a connection is -- its one state machine, its actor, handler callbacks, outbound FIFO with its bound and
slow-consumer policy, flow control of its input, heartbeat, permessage-deflate, rooms, teardown -- is the
Connection class's, unchanged. A :class:`ClientConnection` differs in three places only:

* its protocol is a :class:`~snow_rt_py.protocol.client.ClientProtocol`: the request leaves when TCP (or TLS) is
  up, and the response's verdict takes the place of the server's front door (:meth:`_on_response`);
* every frame it sends is masked (RFC 6455 §5.3): the sends build masked frames, and a frame encoded elsewhere (a
  room's broadcast, a C callback's batch) is re-encoded masked on its way in (:meth:`offer_frame`). The C fast
  paths of the connection are the server's (unmasked frames out, masked frames in: ``take_simple`` would accept a
  masked frame a server must never send), so a client connection keeps them off (``_fast`` is False for life; no
  large message is compressed off the loop, which would lend it back);
* the end of the closing handshake (RFC 6455 §7.1.1): the server closes TCP first; we close it ourselves only
  ``close_timeout`` after the exchange is over if the server has not.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from snow_rt_py.protocol import events as ev
from snow_rt_py.protocol.client import ClientProtocol, ResponseAccepted, ResponseRejected, encode_masked, mask_frames
from snow_rt_py.protocol.deflate import DeflateParams, compressor_memory, decompressor_memory
from snow_rt_py.runtime.compression import CompressorPool, ConnectionDeflate
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.connection_base import SEPARATE_TEXT_MIN, Phase
from snow_rt_py.runtime.errors import InvalidArgumentError
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.outbound import Outbound
from snow_rt_py.runtime.scheduler import Tag
from snow_rt_py.runtime.tls import close_transport

if TYPE_CHECKING:
    from snow_rt_py.runtime.client_endpoint import ClientEndpoint
    from snow_rt_py.runtime.server import Server

__all__ = ["ClientConnection", "HandshakeOutcome"]

HandshakeOutcome = ResponseRejected | None
"""What the opening handshake came to: None (open), or why not."""


class ClientConnection(Connection):
    """A WebSocket connection we opened (see the module). The program sees it in every callback, as a server's.

    Attributes:
        path: the request target we sent.
        headers: the server's response headers (once accepted).
        subprotocol: the subprotocol the server chose, or None.
        handshake: resolved on the loop thread with the handshake's outcome (:data:`HandshakeOutcome`).
        (and Connection's: id, pid, open, user_data, remote_address, ...)
    """

    __slots__ = ("_eof_seen", "_rejoin", "ended", "endpoint", "handshake", "rooms_left")

    def __init__(self, endpoint: ClientEndpoint, proto: ClientProtocol, rejoin: tuple[tuple[str, str | None], ...]):
        super().__init__(cast("Server", endpoint))  # the endpoint offers what a connection reads of its server
        self.endpoint = endpoint
        self._proto = proto  # type: ignore[assignment]  # the client side of the same bases (ServerProtocol's)
        self._out = proto.outgoing
        self._fast = False  # the server's C fast paths: never for a client (see the module)
        self.path = proto.target
        self._eof_seen = False
        self._rejoin = rejoin  # rooms (and meta) the previous connection of the client had joined
        self.handshake: asyncio.Future[HandshakeOutcome] = endpoint.loop.create_future()
        self.ended: asyncio.Future[None] = endpoint.loop.create_future()  # resolved once on_close has run
        self.rooms_left: tuple[tuple[str, str | None], ...] = ()  # the rooms it was in when it ended

    def __repr__(self) -> str:
        return f"<ClientConnection id={self.id} {self.phase.value} path={self.path!r}>"

    # -- asyncio callbacks (loop thread) -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._attach(transport)
        self._started = self._loop.time()
        self._flush()  # our opening request, queued by the protocol

    def eof_received(self) -> bool:
        self._eof_seen = True
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.rooms_joined:  # what the client's next connection joins (rooms.leave_all forgets them now)
            self.rooms_left = self.runtime.rooms.memberships(self)
        super().connection_lost(exc)
        if not self.handshake.done():
            why = "connection closed during the opening handshake"
            if exc is not None:
                why = f"connection lost during the opening handshake: {exc}"
            self.handshake.set_result(ResponseRejected(why, None, None))

    def _handle(self, events: list[ev.Event]) -> None:
        if events:
            first: Any = events[0]
            if type(first) is ResponseAccepted or type(first) is ResponseRejected:
                events = self._on_response(first) + events[1:]
        super()._handle(events)

    def _on_response(self, response: ResponseAccepted | ResponseRejected) -> list[ev.Event]:
        """The server's answer: open the connection (the mirror of FrontDoor._on_request), or end it."""
        proto = cast(ClientProtocol, self._proto)
        if isinstance(response, ResponseRejected):
            self._enter(Phase.CLOSING)
            if self._transport is not None:
                close_transport(self._transport)
            if not self.handshake.done():
                self.handshake.set_result(response)
            return []
        self.headers = response.headers
        self.subprotocol = response.subprotocol
        inflater = None
        if response.deflate is not None:
            endpoint = self.endpoint
            self._deflate = client_deflate(response.deflate, endpoint.options, endpoint.compression)
            inflater = self._deflate.inflater
        pipelined = proto.finish_handshake(inflater)
        self._enter(Phase.OPEN)
        server = self.server
        self._actor = actor = server.scheduler.spawn(self._behave, self._crash)
        self.pid = actor.pid
        for room, meta in self._rejoin:  # before on_connect: the program finds its rooms as they were
            self.runtime.rooms.join(self, room, meta)
        self._rejoin = ()
        server.scheduler.deliver(actor, Tag.CONNECT, None)
        if server.heartbeat is not None:
            server.heartbeat.start(self)
        if not self.handshake.done():
            self.handshake.set_result(None)
        return pipelined

    def fail_unopened(self, reason: str) -> None:
        """The connection never opened: run on_close(1006, reason) once, on an actor of its own (loop thread)."""
        self._enter(Phase.CLOSING)
        self._enter(Phase.CLOSED)
        if self._actor is not None:
            return
        self._end = (1006, reason)
        self._actor = actor = self.server.scheduler.spawn(self._behave, self._crash)
        self.pid = actor.pid
        self.server.scheduler.deliver(actor, Tag.DISCONNECT, (1006, reason))

    def _behave(self, tag: Tag, payload: Any) -> None:
        try:
            super()._behave(tag, payload)
        finally:
            if tag is Tag.DISCONNECT:
                self.endpoint.on_disconnected(self)

    # -- the end of the closing handshake (RFC 6455 §7.1.1) -------------------------------------------------

    def _finish(self) -> None:
        """The exchange is over: the server closes TCP first; we do once it has, or ``close_timeout`` later."""
        self._flush()
        self._cancel_timer()
        transport = self._transport
        if transport is None:
            return
        if self._eof_seen or transport.is_closing():
            close_transport(transport)
        else:
            self._timer = self._loop.call_later(self.server.options.close_timeout, self._close_own_side)

    def _close_own_side(self) -> None:
        self._timer = None
        if self._transport is not None:
            close_transport(self._transport)

    # -- sending: every frame masked (RFC 6455 §5.3) --------------------------------------------------------

    def _offer_masked(self, frame: bytes, count: int = 1, payload: bytes | None = None) -> bool:
        """offer_frame: the frame(s) as a server encodes them, queued masked (each with a fresh key). Never raises."""
        if self.phase is not Phase.OPEN:
            return False
        return Outbound._offer_py(self, mask_frames(frame, payload), count)

    def _send_text_masked(self, text: str) -> None:
        """send_text: a short message is encoded masked at once; the rest goes the Connection's way (masked on the
        way in). Safe from any thread.

        Raises:
            ConnectionClosedError: the connection is closing or has ended.
            InvalidArgumentError: ``text`` is not a str or contains lone surrogates (not valid UTF-8).
        """
        if self._deflate is not None or type(text) is not str or len(text) >= SEPARATE_TEXT_MIN:
            Outbound._send_text_py(self, text)
            return
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError("text is not encodable as UTF-8") from None
        if not Outbound._offer_py(self, encode_masked(0x81, data)):
            self._refused()

    def _send_off_loop(self, deflate: ConnectionDeflate, opcode: int, data: bytes) -> bool:
        return False  # compressed on the sending thread: holding would lend the C fast path back (see the module)

    data_received = Connection._receive  # never the C one: it takes masked frames (a server's input)
    send = Outbound._send_any
    send_text = _send_text_masked
    send_binary = Outbound._send_binary_py
    send_utf8 = Outbound._send_utf8_py
    offer_frame = _offer_masked
    _flush = Outbound._flush_py


def client_deflate(params: DeflateParams, options: ServerOptions, pool: CompressorPool) -> ConnectionDeflate:
    """The compression state of a client connection for what the server agreed (``params``, seen from our side):
    the server's ConnectionDeflate, in the mode the agreement amounts to. A context the server keeps must be kept
    here too, so dedicated state is counted in the runtime's account but never refused."""
    if params.server_no_context_takeover and params.client_no_context_takeover:
        return ConnectionDeflate(params, "shared", options, pool, 0)
    cost = 0
    if not params.server_no_context_takeover:
        cost += compressor_memory(params.server_window_bits, options.compression_mem_level)
    if not params.client_no_context_takeover:
        cost += decompressor_memory(params.client_window_bits)
    pool.reserve(cost, 1 << 62)
    return ConnectionDeflate(params, "dedicated", options, pool, cost)
