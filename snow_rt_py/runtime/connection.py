"""One WebSocket connection: the asyncio protocol that owns its socket, and the handle the program holds.

The loop thread moves bytes between the transport and the sans-I/O :class:`ServerProtocol` and turns its events
into messages for the connection's actor. The program's handler runs in that actor (see scheduler.py).

Life of a connection (loop thread unless said otherwise)::

    connection_made -> [handshake deadline] -> Request -> on_upgrade -> 101 -> actor gets CONNECT (on_connect)
      -> TEXT/BINARY messages (on_message) ... -> close handshake or drop -> connection_lost
      -> actor gets DISCONNECT (on_close) -> actor exits, linked actors get ExitSignal(pid, (code, reason))

Writes are batched: frames produced while one read is handled, or during one loop iteration, leave in one
``transport.write`` (DESIGN.md §8). ``send_*`` and ``close`` are safe from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any, cast

from snow_rt_py.protocol import events as ev
from snow_rt_py.protocol.close import CloseCode, is_sendable_code
from snow_rt_py.protocol.connection import ServerProtocol, State
from snow_rt_py.protocol.errors import UsageError
from snow_rt_py.protocol.frames import Opcode, encode_binary, encode_text, frame_header
from snow_rt_py.protocol.headers import Headers
from snow_rt_py.runtime import rooms, static
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError, QueueFullError
from snow_rt_py.runtime.handler import Reject
from snow_rt_py.runtime.scheduler import Actor, Tag, exit

if TYPE_CHECKING:
    from snow_rt_py.runtime.server import Server

log = logging.getLogger("snow_rt_py.connection")

_ids = itertools.count(1)
_NO_ROOMS: set[str] = set()  # shared empty placeholder; rooms.py gives a connection its own set on first join

KEEPALIVE_TIMEOUT = (int(CloseCode.INTERNAL_ERROR), "keepalive ping timeout")
SERVER_SHUTDOWN = (int(CloseCode.GOING_AWAY), "server shutting down")
HANDLER_CRASH = (int(CloseCode.INTERNAL_ERROR), "internal error")
SLOW_CONSUMER = (int(CloseCode.POLICY_VIOLATION), "slow consumer")
SEPARATE_PAYLOAD_MIN = 64 << 10
"""From this size on, a message is queued as its frame header plus its payload, and written with writelines: the
payload is never copied into a frame (nor into a joined write)."""
_SEPARATE_TEXT_MIN = SEPARATE_PAYLOAD_MIN // 4  # characters: a str this long may encode to SEPARATE_PAYLOAD_MIN


class Connection(asyncio.Protocol):
    """A WebSocket connection. The program sees it in every callback.

    Attributes:
        id: a positive integer unique for the life of the process, never reused.
        path: the raw request target, query included (set once the handshake arrived).
        headers: the request headers (case-insensitive lookup).
        remote_address: ``(host, port)`` of the peer.
        pid: the pid of the connection's actor (0 before the upgrade).
        max_queue_bytes: the bound of the outbound queue (the server's option; read only).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.id = next(_ids)
        self.path = ""
        self.headers = Headers()
        self.remote_address: tuple[str, int] | None = None
        self.pid = 0
        self._loop = server.loop
        self._loop_thread = server.loop_thread_id
        self._proto = ServerProtocol(
            max_message_size=server.options.max_message_size,
            max_handshake_size=server.options.max_handshake_size,
        )
        self._transport: asyncio.Transport | None = None
        self.max_queue_bytes = server.options.max_queue_bytes
        self._actor: Actor | None = None
        # Frames not yet handed to the transport, FIFO. Any thread appends; only the loop thread removes, and only
        # the items it read (``del out[:n]``), so a frame appended meanwhile by another thread is never lost.
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_pending = False
        self._in_read = False
        self._open = False  # accepted and not yet closing: sends allowed
        self._ended = False  # TCP gone
        self._end: tuple[int, str] | None = None  # the code/reason on_close will report
        self._rejected = False
        self._crashed = False
        self._timer: asyncio.TimerHandle | None = None  # handshake deadline, then close deadline
        self.hb_due = -1  # heartbeat state, driven by the server's HeartbeatWheel
        self.hb_payload: bytes | None = None
        self.messages_in = 0
        self.messages_out = 0
        self.drops = 0  # data messages refused by the slow-consumer policy
        self.rooms_joined: set[str] = _NO_ROOMS  # reverse index of rooms.registry, guarded by its lock
        self.rooms_closed = False  # set once the connection ended: joins are refused

    # -- public API (any thread) ----------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """True while messages can be sent (accepted, not closing, not ended)."""
        return self._open

    def send_text(self, text: str) -> None:
        """Queue a text message. Safe from any thread; returns at once (the write happens on the loop).

        Raises:
            ConnectionClosedError: the connection is closing or has ended.
            InvalidArgumentError: ``text`` is not a str or contains lone surrogates (not valid UTF-8).
        """
        if not isinstance(text, str):
            raise InvalidArgumentError(f"send_text needs str, got {type(text).__name__}")
        if len(text) < _SEPARATE_TEXT_MIN:  # short: under SEPARATE_PAYLOAD_MIN once encoded
            try:
                frame = encode_text(text)
            except UsageError as exc:
                raise InvalidArgumentError(str(exc)) from None
            self.send_frame(frame)
            return
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError("text is not encodable as UTF-8") from None
        header = frame_header(Opcode.TEXT, len(data))
        if len(data) >= SEPARATE_PAYLOAD_MIN:
            self._send_parts(header, data)
        else:
            self.send_frame(header + data)

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        """Queue a binary message. Safe from any thread.

        Raises:
            ConnectionClosedError: the connection is closing or has ended.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidArgumentError(f"send_binary needs bytes, got {type(data).__name__}")
        if len(data) >= SEPARATE_PAYLOAD_MIN:
            payload = data if type(data) is bytes else bytes(data)  # a snapshot: the caller may reuse its buffer
            self._send_parts(frame_header(Opcode.BINARY, len(payload)), payload)
            return
        self.send_frame(encode_binary(data))

    def _send_parts(self, header: bytes, payload: bytes) -> None:
        """send_frame for a frame queued as its header and its payload (not copied into one object)."""
        if not self.offer_frame(header, 1, payload):
            self._refused()

    def send(self, message: str | bytes) -> None:
        """``send_text`` for ``str``, ``send_binary`` for bytes-like."""
        if isinstance(message, str):
            self.send_text(message)
        else:
            self.send_binary(message)

    def send_frame(self, frame: bytes) -> None:
        """Queue an already encoded data frame (the same bytes may go to many connections: broadcast).

        Raises:
            ConnectionClosedError: the connection is closing or has ended (or was just closed as a slow consumer).
            QueueFullError: the outbound queue is full and the policy is "drop": this message was dropped.
        """
        if not self.offer_frame(frame):
            self._refused()

    def _refused(self) -> None:
        """Raise why offer_frame refused a message."""
        if not self._open:
            raise ConnectionClosedError(f"connection {self.id} is closed")
        raise QueueFullError(f"connection {self.id}: outbound queue full, message dropped")

    def reply_budget(self) -> int:
        """Bytes that can be queued right now without the queue-bound rule refusing anything, or -1 if the
        connection cannot send (closing or ended).

        ``max_queue_bytes`` minus what is queued (frames not yet written plus the transport's buffer), never
        negative: 0 means any frame must go through :meth:`offer_frame`, which applies the rule itself. What the C
        ABI's reply fast path compares its buffered replies with; exact only on the loop thread, and only until the
        next send or write.
        """
        if not self._open:
            return -1
        queued = self._out_bytes
        transport = self._transport
        if transport is not None:
            queued += transport.get_write_buffer_size()
        return max(0, self.max_queue_bytes - queued)

    def offer_frame(self, frame: bytes, count: int = 1, payload: bytes | None = None) -> bool:
        """Queue a data frame unless the connection is closing or its outbound queue is full. Never raises.

        A frame always fits an empty queue (so one message of any allowed size can go out). When the queue holds
        more than ``max_queue_bytes``, the slow-consumer policy applies: the frame is dropped, and with the default
        policy "close" the connection is closed with 1008 "slow consumer" (what is already queued still goes out
        first; ``close_timeout`` later the TCP connection is dropped if the peer never reads it).

        ``frame`` may also be ``count`` encoded frames back to back, queued (or refused) as one; or, with
        ``payload``, the header of a frame whose payload follows separately (both queued, or neither).

        Returns:
            True if queued, False if not.
        """
        if not self._open:
            return False
        queued = self._out_bytes
        transport = self._transport
        if transport is not None:
            queued += transport.get_write_buffer_size()
        size = len(frame) if payload is None else len(frame) + len(payload)
        if queued and queued + size > self.max_queue_bytes:
            self.drops += 1
            if self.server.options.slow_consumer == "close":
                self._shutdown(*SLOW_CONSUMER)
            return False
        if payload is None:
            self._out.append(frame)
        else:
            self._out += (frame, payload)  # one list operation: no other thread's frame can come in between
        self._out_bytes += size
        self.messages_out += count
        if not self._flush_pending:
            self._flush_pending = True
            if threading.get_ident() != self._loop_thread:
                self.server.schedule_flush_threadsafe(self)
            elif not self._in_read:
                self.server.schedule_flush(self)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake with ``code`` and ``reason``. Safe from any thread.

        on_close will report this code. The TCP connection closes when the peer answers, or after
        ``close_timeout``.

        Raises:
            InvalidArgumentError: ``code`` may not be sent (RFC 6455 §7.4) or ``reason`` is over 123 bytes.
            ConnectionClosedError: the connection is already closing or ended.
        """
        if not isinstance(code, int) or not is_sendable_code(code):
            raise InvalidArgumentError(f"close code {code!r} may not be sent (use 1000-1003, 1007-1014, 3000-4999)")
        if len(reason.encode("utf-8", "surrogatepass")) > 123:
            raise InvalidArgumentError("close reason is longer than 123 UTF-8 bytes")
        if not self._open:
            raise ConnectionClosedError(f"connection {self.id} is closed")
        self._open = False
        self._call_on_loop(self._start_close, code, reason)

    def statistics(self) -> dict[str, int]:
        """Counters for this connection.

        Returns:
            ``messages_in`` and ``messages_out`` (data messages received / queued), ``queued_frames`` (writes not yet
            handed to the transport: one per frame, one per batch of a C callback's replies), ``queued_bytes``,
            ``write_buffer_bytes`` (in the transport, not yet accepted by the kernel), ``drops`` (messages refused
            by the slow-consumer policy), ``max_queue_bytes``.
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
        }

    def __repr__(self) -> str:
        state = "open" if self._open else ("ended" if self._ended else "closing")
        return f"<Connection id={self.id} {state} path={self.path!r}>"

    # -- asyncio callbacks (loop thread) -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # not a TCP socket
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote_address = (peer[0], peer[1])
        self.server.connection_started(self)
        self._timer = self._loop.call_later(self.server.options.handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        self._in_read = True
        try:
            self._handle(self._proto.receive_data(data))
        finally:
            self._in_read = False
            # What this read produced leaves at the end of the loop iteration, with what every other connection
            # read in the same iteration produced: one write per connection, and the peers wake up once.
            pending = self._proto.data_to_send()
            if pending:
                self._out.append(pending)
            if self._out:
                self._flush_pending = True
                self.server.schedule_flush(self)

    def eof_received(self) -> bool:
        self._handle(self._proto.receive_data(b""))
        self._flush()
        return False  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._open = False
        self._cancel_timer()
        if self.server.heartbeat is not None:
            self.server.heartbeat.stop(self)
        self._out.clear()
        self._out_bytes = 0
        self.server.connection_ended(self)
        rooms.registry.leave_all(self)
        if self._actor is not None:
            code, reason = self._end if self._end is not None else (int(CloseCode.ABNORMAL_CLOSURE), "")
            self.server.scheduler.deliver(self._actor, Tag.DISCONNECT, (code, reason))

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    # -- internals (loop thread) ---------------------------------------------------------------------------

    def _call_on_loop(self, fn: Any, *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _flush(self) -> None:
        """Hand every queued frame to the transport in one write (the loop thread only)."""
        self._flush_pending = False  # first: a frame appended from now on schedules another flush
        out = self._out
        pending = self._proto.data_to_send()
        if pending:
            out.append(pending)
        n = len(out)
        if not n or self._transport is None or self._ended:
            return
        if n == 1:
            data = out[0]
            del out[:1]
            self._out_bytes = max(0, self._out_bytes - len(data))
            self._transport.write(data)
            return
        items = out[:n]
        del out[:n]
        if self._out_bytes < SEPARATE_PAYLOAD_MIN:  # small frames (pongs are not counted: all small)
            data = b"".join(items)  # one copy, one write
            self._out_bytes = max(0, self._out_bytes - len(data))
            self._transport.write(data)
        else:  # large payloads: not copied (uvloop hands the objects to writev as they are)
            self._out_bytes = max(0, self._out_bytes - sum(map(len, items)))
            self._transport.writelines(items)

    def _handle(self, events: list[ev.Event]) -> None:
        actor = self._actor
        for event in events:
            kind = type(event)
            if kind is ev.TextMessage or kind is ev.BinaryMessage:
                if actor is not None:
                    self.messages_in += 1
                    self.server.scheduler.deliver(
                        actor,
                        Tag.TEXT if kind is ev.TextMessage else Tag.BINARY,
                        event.data,  # type: ignore[union-attr]
                    )
            elif kind is ev.Ping:
                # The protocol queued the pong; take it now so it leaves before replies to later messages.
                self._out.append(self._proto.data_to_send())
            elif kind is ev.Pong:
                if self.server.heartbeat is not None:
                    self.server.heartbeat.pong_received(self, event.payload)  # type: ignore[union-attr]
            elif kind is ev.Request:
                assert isinstance(event, ev.Request)
                self._on_request(event)
                actor = self._actor
            elif kind is ev.CloseReceived:
                assert isinstance(event, ev.CloseReceived)
                self._open = False
                if self._end is None:  # the peer started the close: report its code
                    self._end = (event.code, event.reason)
                self._finish()
            elif kind is ev.ProtocolFailure:
                assert isinstance(event, ev.ProtocolFailure)
                self._open = False
                if self._end is None:
                    self._end = (event.code, event.reason)
                self._half_close()
            elif kind is ev.HandshakeFailure:
                self._finish()
            elif kind is ev.HttpRequest:
                assert isinstance(event, ev.HttpRequest)
                self._on_http_request(event)
            elif kind is ev.ConnectionLost:
                self._open = False
                self._finish()

    def _on_request(self, request: ev.Request) -> None:
        self._cancel_timer()
        self.path = request.target
        self.headers = request.headers
        server = self.server
        if server.closing:
            self._proto.reject(503, "server shutting down")
            self._finish()
            return
        try:
            verdict = server.handler.on_upgrade(request.target, request.headers)
        except Exception:
            log.exception("on_upgrade raised; answering 500")
            verdict = Reject("internal error", status=500)
        if verdict is not None:
            self._proto.reject(verdict.status, verdict.reason)
            self._finish()
            return
        pipelined = self._proto.accept()
        self._out.append(self._proto.data_to_send())  # the 101 goes before anything on_connect sends
        self._open = True
        self._actor = actor = server.scheduler.spawn(self._behave, self._crash)
        self.pid = actor.pid
        server.connection_accepted(self)
        server.scheduler.deliver(actor, Tag.CONNECT, None)
        if server.heartbeat is not None:
            server.heartbeat.start(self)
        if pipelined:
            self._handle(pipelined)

    def _on_http_request(self, request: ev.HttpRequest) -> None:
        self._cancel_timer()
        opts = self.server.options
        if opts.static_dir is None:
            self._proto.reject(400, "Upgrade header must include websocket.")
        else:
            self._proto.respond(*static.lookup(opts.static_dir, opts.static_index, request.target))
        self._finish()

    def send_heartbeat_ping(self, payload: bytes) -> None:
        """Called by the heartbeat wheel (loop thread)."""
        if self._proto.state is State.OPEN:
            self._out.append(self._proto.send_ping(payload))
            self._flush()

    def heartbeat_expired(self) -> None:
        """Called by the heartbeat wheel (loop thread) when a ping went unanswered."""
        if self._open:
            self._open = False
            self._start_close(*KEEPALIVE_TIMEOUT)

    def _start_close(self, code: int, reason: str) -> None:
        """Send our Close (if the protocol still can) and arm the close deadline."""
        if self._ended:
            return
        self._open = False
        if self._end is None:
            self._end = (code, reason)
        if self._proto.state is State.OPEN:
            self._out.append(self._proto.send_close(code, reason))
            self._flush()
            self._arm_close_deadline()
        elif self._proto.state is State.HANDSHAKE:
            self._finish()

    def _half_close(self) -> None:
        """After failing the connection: our Close is queued; send it, then EOF, and wait (bounded) for theirs."""
        self._flush()
        transport = self._transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
            self._arm_close_deadline()
        else:
            self._finish()

    def _finish(self) -> None:
        """The exchange is over: flush what is queued and close TCP (the server closes first, RFC 6455 §7.1.1)."""
        self._flush()
        self._cancel_timer()
        if self._transport is not None:
            self._transport.close()

    def _arm_close_deadline(self) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(self.server.options.close_timeout, self._abort)

    def _handshake_expired(self) -> None:
        self._timer = None
        if self._proto.state is State.HANDSHAKE and self._transport is not None:
            self._transport.abort()

    def _abort(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the connection's actor (loop thread or a worker) ------------------------------------------------------

    def _behave(self, tag: Tag, payload: Any) -> None:
        handler = self.server.handler
        if tag is Tag.TEXT or tag is Tag.BINARY:
            if not self._rejected and not self._crashed:
                handler.on_message(self, payload)
        elif tag is Tag.CONNECT:
            verdict = handler.on_connect(self, self.path, self.headers)
            if verdict is False or isinstance(verdict, Reject):
                self._rejected = True
                reject = verdict if isinstance(verdict, Reject) else Reject()
                self._shutdown(reject.code, reject.reason)
        elif tag is Tag.DISCONNECT:
            code, reason = payload
            try:
                if not self._rejected:
                    handler.on_close(self, code, reason)
            finally:
                exit(self.pid, (code, reason))
        else:  # INFO and EXIT
            handler.on_info(self, payload)

    def _crash(self, exc: BaseException) -> None:
        if isinstance(exc, ConnectionClosedError) and not self._open:
            # A message that arrived before the close is handled after it (worker mode) and its reply cannot go
            # out: the connection is ending anyway, this is not a handler bug.
            log.debug("connection %d: reply after close dropped: %s", self.id, exc)
            return
        log.error("handler of connection %d crashed", self.id, exc_info=exc)
        if not self._crashed:
            self._crashed = True
            self._shutdown(*HANDLER_CRASH)

    def _shutdown(self, code: int, reason: str) -> None:
        """Close from inside the runtime (reject, crash, server shutdown): never raises."""
        if self._open:
            self._open = False
            self._call_on_loop(self._start_close, code, reason)
