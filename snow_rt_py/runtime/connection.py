"""One WebSocket connection: the asyncio protocol that owns its socket, and the handle the program holds.

The loop thread moves bytes between the transport and the sans-I/O :class:`ServerProtocol` and turns its events
into messages for the connection's actor. The program's handler runs in that actor (see scheduler.py).

One state machine (:class:`Phase`, changed only by :meth:`Connection._enter`, allowed moves in ``_MOVES``)::

    CONNECTING --handshake accepted----------------------------------------------> OPEN
    CONNECTING --refused, plain HTTP answered, bad request (response, then TCP)---> CLOSING
    OPEN       --close(), peer Close, protocol failure, crash, reject, shutdown---> CLOSING
    OPEN       --heartbeat timeout, abort(): fail the connection (TCP now)-------> CLOSING
    any        --TCP gone (connection_lost)---------------------------------------> CLOSED

Sends are allowed only while OPEN. Two ways to end: :meth:`Connection.close` (the close handshake, bounded by
``close_timeout``) and :meth:`Connection.abort` (the TCP connection is dropped at once). What on_close reports is
decided by the first move out of OPEN and never changes afterwards.

One output FIFO: the protocol's ``outgoing`` list. The 101, pongs, Close frames and the data frames of every
thread go there in order; the loop thread drains it once per read and once per flush (frames produced while one
read is handled, or during one loop iteration, leave in one ``transport.write``: see docs/ARCHITECTURE.md).
``send_*``, ``close`` and ``abort`` are safe from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any, cast

from snow_rt_py.protocol import events as ev
from snow_rt_py.protocol.close import build_close_payload
from snow_rt_py.protocol.connection import ServerProtocol
from snow_rt_py.protocol.errors import UsageError
from snow_rt_py.protocol.headers import Headers
from snow_rt_py.runtime.compression import ConnectionDeflate
from snow_rt_py.runtime.connection_base import (
    ABORTED,
    C_CONNECTION,
    FLUSH_NOW,
    HANDLER_CRASH,
    MOVES,
    SEPARATE_TEXT_MIN,
    SERVER_SHUTDOWN,
    ConnectionCore,
    Phase,
    configure,
    move_lock,
)
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError
from snow_rt_py.runtime.frontdoor import FrontDoor
from snow_rt_py.runtime.handler import Reject
from snow_rt_py.runtime.outbound import Held, Outbound
from snow_rt_py.runtime.presence import PresenceEvent
from snow_rt_py.runtime.scheduler import Actor, Tag
from snow_rt_py.runtime.teardown import Teardown

if TYPE_CHECKING:
    from snow_rt_py.runtime.server import Server

log = logging.getLogger("snow_rt_py.connection")

_NO_ROOMS: set[str] = set()  # shared empty placeholder; rooms.py gives a connection its own set on first join

_CONNECTING = Phase.CONNECTING
_OPEN = Phase.OPEN
_CLOSING = Phase.CLOSING
_CLOSED = Phase.CLOSED
_MOVES = MOVES
_move_lock = move_lock
_FLUSH_NOW = FLUSH_NOW
_SEPARATE_TEXT_MIN = SEPARATE_TEXT_MIN


class Connection(Outbound, FrontDoor, Teardown, ConnectionCore, asyncio.Protocol):
    """A WebSocket connection. The program sees it in every callback.

    Attributes:
        id: a positive integer unique in its runtime, never reused.
        path: the raw request target, query included (set once the handshake arrived).
        headers: the request headers (case-insensitive lookup).
        remote_address: ``(host, port)`` of the peer.
        pid: the pid of the connection's actor (0 before the upgrade).
        subprotocol: the subprotocol selected in the handshake (one of the server's ``subprotocols`` that the
            client offered), or None.
        max_queue_bytes: the bound of the outbound queue (the server's option; read only).
        user_data: free for the program (None at first): the object has fixed attributes (``__slots__``, which
            keeps an idle connection small), so keep per-connection state here or in a dict keyed by ``conn.id``.
    """

    __slots__ = (  # and the fields of ConnectionCore (connection_base.py)
        "__weakref__",
        "_admitted",
        "_end",
        "_held",
        "_loop",
        "_paused_out",
        "_started",
        "_timer",
        "drops",
        "hb_due",
        "hb_payload",
        "headers",
        "path",
        "pid",
        "remote_address",
        "rooms_closed",
        "rooms_joined",
        "runtime",
        "subprotocol",
        "user_data",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.runtime = server.runtime
        self.id = server.runtime.next_connection_id()
        self.path = ""
        self.headers = Headers()
        self.remote_address: tuple[str, int] | None = None
        self.pid = 0
        self.subprotocol: str | None = None
        self._admitted = False  # counted in the server's per-IP table (until the TCP connection is gone)
        self._started = 0.0  # loop time of the TCP accept (for the access log)
        self.phase = _CONNECTING
        self._loop = server.loop
        self._loop_thread = server.loop_thread_id
        self._handler = server.handler
        self._on_text_bytes = server.on_text_bytes
        self._native: tuple[int, bytearray, bool] | None = None  # set by the C ABI's handler (CHandler)
        self._scheduler = server.scheduler
        self._direct = not server.scheduler.workers  # an idle actor's message runs at once, on the loop
        self._fast = True  # the C hot path takes what it can (tests turn it off to compare)
        self._held: Held | None = None  # while a large message is compressed off the loop (_send_off_loop)
        self._max_message_size = server.options.max_message_size
        self._proto = ServerProtocol(
            max_message_size=server.options.max_message_size,
            max_handshake_size=server.options.max_handshake_size,
        )
        # The one output FIFO (the protocol's): any thread appends; only the loop thread removes, and only the
        # items it read (``del out[:n]``), so a frame appended meanwhile by another thread is never lost.
        self._out = self._proto.outgoing
        self._out_bytes = 0  # data frames queued and not yet handed to the transport
        self._transport: asyncio.Transport | None = None
        self.max_queue_bytes = server.options.max_queue_bytes
        self._actor: Actor | None = None
        self._flush_pending = False
        self._in_read = False
        self._end: tuple[int, str] | None = None  # what on_close reports: set by the first move out of OPEN
        # The handler's own standing: "" while it takes messages; "rejected" (by its on_connect: on_close is not
        # called) or "crashed" (it raised) once no more messages reach it.
        self._handler_state = ""
        self._timer: asyncio.TimerHandle | None = None  # handshake deadline, then close deadline
        self._linger_left = 0  # > 0 while input is read and dropped after an HTTP error response
        self.hb_due = -1  # heartbeat state, driven by the server's HeartbeatWheel
        self.hb_payload: bytes | None = None
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_out = 0  # bytes of data frames queued, headers included
        # Flow control of the input (loop thread only, but for _inbox_done). Undelivered input is
        # _inbox_given - _inbox_done: bytes of the messages handed to the actor and not yet handled; each counter
        # has one writer (the loop, the actor), so any thread may read the difference. Reading pauses while it is
        # over max_inbox_bytes, or while the transport holds more than max_queue_bytes of output (pongs owed to a
        # peer that never reads are exempt from the data queue's bound, but not from this).
        self._inbox_given = 0
        self._inbox_done = 0
        self._inbox_high = server.options.max_inbox_bytes
        self._paused_in = False
        self._paused_out = False
        self.drops = 0  # data messages refused by the slow-consumer policy
        self.rooms_joined: set[str] = _NO_ROOMS  # reverse index of the runtime's rooms, guarded by their lock
        self.rooms_closed = False  # set once the connection ended: joins are refused
        self.user_data: Any = None  # the program's own, e.g. the user's name (the runtime never reads it)
        # permessage-deflate as negotiated (runtime/compression.py), None when not: the one attribute a fast path
        # tests. With it, every data message goes through _send_deflated; received RSV1 frames are the protocol's.
        self._deflate: ConnectionDeflate | None = None

    def as_connection(self) -> Connection:
        """This connection, as its parts hand it to the server (the parts are typed as themselves)."""
        return self

    # -- the state machine -------------------------------------------------------------------------------------

    def _enter(self, phase: Phase, end: tuple[int, str] | None = None) -> bool:
        """The one transition function: move to ``phase`` if ``_MOVES`` allows it from the current phase.

        ``end`` is what on_close will report, recorded by the first move out of OPEN (later ones keep it).

        Returns:
            True if the move happened.
        """
        with _move_lock:
            if (self.phase, phase) not in _MOVES:
                return False
            if self.phase is _OPEN and self._end is None:
                self._end = end
            self.phase = phase
            return True

    @property
    def open(self) -> bool:
        """True while messages can be sent (accepted, not closing, not ended)."""
        return self.phase is _OPEN

    # -- public API (any thread) ----------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake with ``code`` and ``reason``. Safe from any thread.

        The arguments are checked first, on the calling thread, by the protocol's one rule
        (:func:`~snow_rt_py.protocol.close.build_close_payload`); nothing changes if they are wrong. on_close will
        report this code. The TCP connection closes when the peer answers, or after ``close_timeout``.

        Raises:
            InvalidArgumentError: ``code`` may not be sent (RFC 6455 §7.4), or ``reason`` is not a str, holds a lone
                surrogate or is over 123 UTF-8 bytes.
            ConnectionClosedError: the connection is already closing or ended.
        """
        try:
            payload = build_close_payload(code, reason)
        except UsageError as exc:
            raise InvalidArgumentError(str(exc)) from None
        if not self._enter(_CLOSING, (code, reason)):
            raise ConnectionClosedError(f"connection {self.id} is closed")
        self._call_on_loop(self._send_close, payload)

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close handshake. Safe from any thread; idempotent.

        on_close reports 1006 (abnormal closure) unless the connection was already closing for another reason.
        """
        self._enter(_CLOSING, ABORTED)
        self._call_on_loop(self._drop_transport)

    def statistics(self) -> dict[str, int]:
        """Counters for this connection.

        Returns:
            ``messages_in`` and ``messages_out`` (data messages received / queued), ``queued_frames`` (writes not yet
            handed to the transport: one per frame, one per batch of a C callback's replies), ``queued_bytes``,
            ``write_buffer_bytes`` (in the transport, not yet accepted by the kernel), ``drops`` (messages refused
            by the slow-consumer policy), ``max_queue_bytes``; ``inbox_bytes`` (received messages not yet handled
            by the handler), ``max_inbox_bytes``, ``reading_paused`` (1 while the socket is not read: inbox over
            its bound, or output the peer does not read over ``max_queue_bytes``).
        """
        transport = self._transport
        return {
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "queued_frames": len(self._out),
            "queued_bytes": self._out_bytes,
            "write_buffer_bytes": transport.get_write_buffer_size() if transport is not None else 0,
            "drops": self.drops,
            "max_queue_bytes": self.max_queue_bytes,
            "inbox_bytes": self._inbox_given - self._inbox_done,
            "max_inbox_bytes": self._inbox_high,
            "reading_paused": int(self._paused_in or self._paused_out),
        }

    def __repr__(self) -> str:
        return f"<Connection id={self.id} {self.phase.value} path={self.path!r}>"

    # -- asyncio callbacks (loop thread) -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._attach(transport)
        self._started = self._loop.time()
        self.server.connection_started(self)
        self._timer = self._loop.call_later(self.server.options.handshake_timeout, self._handshake_expired)

    def _attach(self, transport: asyncio.BaseTransport) -> None:
        """Take the transport: its write bound, TCP_NODELAY, the peer's address (a server's and a client's)."""
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        # pause_writing() once more than max_queue_bytes wait in the transport (data or control frames).
        self._transport.set_write_buffer_limits(high=self.max_queue_bytes)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # not a TCP socket
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote_address = (peer[0], peer[1])

    def _receive(self, data: bytes) -> None:
        if self._linger_left > 0:  # after an HTTP error: what the client still sends is dropped, up to a bound
            self._linger_left -= len(data)
            if self._linger_left <= 0:
                self._finish()
            return
        self._in_read = True
        events: list[ev.Event] = []
        try:
            events = self._proto.receive_data(data)
            self._handle(events)
        finally:
            self._in_read = False
            out = self._out
            if len(events) <= 1 or len(out) >= _FLUSH_NOW:
                # A lone message (a chat or a game: 1 in flight) is answered at once, not after every other
                # connection of this loop iteration has been served. A read that produced many frames (a ping
                # flood, say) is written now too: the transport's buffer then says at once whether the peer reads
                # it (pause_writing -> pause_reading), before the loop reads the socket again.
                if out:
                    self._flush()
            elif out:
                # A batch: it leaves at the end of the loop iteration with what every other connection read in the
                # same iteration produced: one write per connection, and the peers wake up once.
                self._flush_pending = True
                self.server.schedule_flush(self)

    def eof_received(self) -> bool:
        self._handle(self._proto.receive_data(b""))
        self._flush()
        return False  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(_CLOSED)
        if self._deflate is not None:
            self._deflate.release()
        self._cancel_timer()
        if self.server.heartbeat is not None:
            self.server.heartbeat.stop(self)
        self._out.clear()
        self._out_bytes = 0
        self.server.connection_ended(self)
        self.runtime.rooms.leave_all(self)
        actor = self._actor
        if actor is not None:
            code, reason = self._end if self._end is not None else ABORTED
            self.server.scheduler.deliver(actor, Tag.DISCONNECT, (code, reason))

    def pause_writing(self) -> None:
        # The peer does not read what we write (pongs to a ping flood, say): stop reading what makes more of it.
        self._paused_out = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._paused_out = False
        self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume reading the socket to match the two flow-control conditions (loop thread)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        paused = self._paused_in or self._paused_out
        if paused == transport.is_reading():
            if paused:
                self.server.inbound_pauses += 1
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _inbox_drained(self) -> None:
        """The actor got under the inbox's low-water mark (called on the loop thread)."""
        if self._paused_in and self._inbox_given - self._inbox_done <= self._inbox_high >> 2:
            self._paused_in = False
            self._update_reading()

    # -- internals (loop thread) ---------------------------------------------------------------------------

    def _call_on_loop(self, fn: Any, *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _handle(self, events: list[ev.Event]) -> None:
        actor = self._actor
        for event in events:
            kind = type(event)
            if kind is ev.TextMessage or kind is ev.BinaryMessage:
                if actor is not None:
                    self.messages_in += 1
                    if kind is ev.TextMessage:
                        self._inbox_given += len(event.raw)  # type: ignore[union-attr]
                        self.server.scheduler.deliver(actor, Tag.TEXT, event)
                    else:
                        self._inbox_given += len(event.data)  # type: ignore[union-attr]
                        self.server.scheduler.deliver(actor, Tag.BINARY, event.data)  # type: ignore[union-attr]
                    if self._inbox_given - self._inbox_done > self._inbox_high and not self._paused_in:
                        self._paused_in = True  # the handler is behind: let TCP hold the rest
                        self._update_reading()
            elif kind is ev.Ping:
                pass  # the protocol queued the pong in the FIFO, ahead of replies to later messages
            elif kind is ev.Pong:
                if self.server.heartbeat is not None:
                    self.server.heartbeat.pong_received(self, event.payload)  # type: ignore[union-attr]
            elif kind is ev.Request:
                assert isinstance(event, ev.Request)
                self._on_request(event)
                actor = self._actor
            elif kind is ev.CloseReceived:
                assert isinstance(event, ev.CloseReceived)
                self._enter(_CLOSING, (event.code, event.reason))  # the peer started the close: its code
                self._finish()
            elif kind is ev.ProtocolFailure:
                assert isinstance(event, ev.ProtocolFailure)
                self._enter(_CLOSING, (event.code, event.reason))
                self._half_close()
            elif kind is ev.HandshakeFailure:
                self.server.admission.count("bad_request", self._peer_ip(), "malformed handshake", self.id)
                self._enter(_CLOSING)
                self._linger()
            elif kind is ev.HttpRequest:
                assert isinstance(event, ev.HttpRequest)
                self._on_http_request(event)
            elif kind is ev.ConnectionLost:
                self._enter(_CLOSING)
                self._finish()

    # -- the connection's actor (loop thread or a worker) ------------------------------------------------------

    def _behave(self, tag: Tag, payload: Any) -> None:
        handler = self.server.handler
        if tag is Tag.TEXT:
            try:
                if not self._handler_state:
                    text_bytes = self.server.on_text_bytes
                    if text_bytes is not None:
                        text_bytes(self, payload.raw)
                    else:
                        handler.on_message(self, payload.data)
            finally:
                self._inbox_done += len(payload.raw)
                if self._paused_in:
                    self._handled()
        elif tag is Tag.BINARY:
            try:
                if not self._handler_state:
                    handler.on_message(self, payload)
            finally:
                self._inbox_done += len(payload)
                if self._paused_in:
                    self._handled()
        elif tag is Tag.CONNECT:
            verdict = handler.on_connect(self, self.path, self.headers)
            if verdict is False or isinstance(verdict, Reject):
                self._handler_state = "rejected"
                reject = verdict if isinstance(verdict, Reject) else Reject()
                self._close_from_runtime(reject.code, reject.reason)
        elif tag is Tag.DISCONNECT:
            code, reason = payload
            try:
                if self._handler_state != "rejected":
                    handler.on_close(self, code, reason)
            finally:
                self.runtime.actors.exit(self.pid, (code, reason))
        elif type(payload) is PresenceEvent:  # presence hook (rooms.py: RoomRegistry.notify), an INFO message
            handler.on_presence(self, payload)
        else:  # INFO and EXIT
            handler.on_info(self, payload)

    def _handled(self) -> None:
        """A message left the inbox while reading is paused (the actor's thread): resume below the low-water mark."""
        if self._inbox_given - self._inbox_done <= self._inbox_high >> 2:
            self._call_on_loop(self._inbox_drained)

    def _crash(self, exc: BaseException) -> None:
        if isinstance(exc, ConnectionClosedError) and self.phase is not _OPEN:
            # A message that arrived before the close is handled after it (worker mode) and its reply cannot go
            # out: the connection is ending anyway, this is not a handler bug.
            log.debug("connection %d: reply after close dropped: %s", self.id, exc, extra={"conn_id": self.id})
            return
        log.error("handler of connection %d crashed", self.id, exc_info=exc, extra={"conn_id": self.id})
        self.server.handler_crashes += 1
        if not self._handler_state:
            self._handler_state = "crashed"
            self._close_from_runtime(*HANDLER_CRASH)

    if not C_CONNECTION:  # no C base class (connection_base.py): the Python methods serve under the public names
        data_received = _receive
        send = Outbound._send_any
        send_text = Outbound._send_text_py
        send_binary = Outbound._send_binary_py
        send_utf8 = Outbound._send_utf8_py
        offer_frame = Outbound._offer_py
        _flush = Outbound._flush_py


configure(Tag.TEXT, Tag.BINARY, ev.TextMessage)  # what the C part compares with and builds (connection_base.py)

__all__ = ["SERVER_SHUTDOWN", "Connection", "Phase"]
