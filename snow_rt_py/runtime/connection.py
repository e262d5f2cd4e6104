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
import collections
import concurrent.futures
import contextlib
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any, cast

from snow_rt_py.protocol import events as ev
from snow_rt_py.protocol.close import CloseCode, build_close_payload
from snow_rt_py.protocol.connection import ServerProtocol, State
from snow_rt_py.protocol.errors import UsageError
from snow_rt_py.protocol.frames import Opcode, encode_binary, encode_frame, encode_text, frame_header
from snow_rt_py.protocol.headers import Headers
from snow_rt_py.protocol.utf8 import utf8_error
from snow_rt_py.runtime import static
from snow_rt_py.runtime.compression import OFFLOAD_FROM, ConnectionDeflate, compressed_frame, worth_compressing
from snow_rt_py.runtime.connection_base import (
    ABORTED,
    C_CONNECTION,
    FLUSH_NOW,
    HANDLER_CRASH,
    KEEPALIVE_TIMEOUT,
    LINGER_BYTES,
    MOVES,
    SEPARATE_PAYLOAD_MIN,
    SEPARATE_TEXT_MIN,
    SERVER_SHUTDOWN,
    SLOW_CONSUMER,
    ConnectionCore,
    Phase,
    configure,
    move_lock,
)
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError, InvalidUtf8Error, QueueFullError
from snow_rt_py.runtime.handler import Reject
from snow_rt_py.runtime.presence import PresenceEvent
from snow_rt_py.runtime.scheduler import Actor, Tag
from snow_rt_py.runtime.tls import close_transport

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


class _Held:
    """What a connection holds while a large message is compressed off the loop (see ``_send_off_loop``)."""

    __slots__ = ("fast", "items")

    def __init__(self, fast: bool) -> None:
        self.fast = fast  # the connection's _fast, given back when nothing is held any more
        self.items: collections.deque[tuple[Any, ...]] = collections.deque()


class Connection(ConnectionCore, asyncio.Protocol):
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
        self._held: _Held | None = None  # while a large message is compressed off the loop (_send_off_loop)
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

    def _send_text_py(self, text: str) -> None:
        """Queue a text message. Safe from any thread; returns at once (the write happens on the loop).

        Raises:
            ConnectionClosedError: the connection is closing or has ended.
            InvalidArgumentError: ``text`` is not a str or contains lone surrogates (not valid UTF-8).
        """
        if not isinstance(text, str):
            raise InvalidArgumentError(f"send_text needs str, got {type(text).__name__}")
        if self._deflate is not None:  # permessage-deflate negotiated: the compression path (not the hot path)
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArgumentError("text is not encodable as UTF-8") from None
            self._send_deflated(Opcode.TEXT, data)
            return
        if len(text) < _SEPARATE_TEXT_MIN:  # short: under SEPARATE_PAYLOAD_MIN once encoded
            try:
                frame = encode_text(text)
            except UsageError as exc:
                raise InvalidArgumentError(str(exc)) from None
            if not self.offer_frame(frame):  # send_frame, inlined: this is a handler's reply, the hot path
                self._refused()
            return
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError("text is not encodable as UTF-8") from None
        self._send_encoded_text(data)

    def _send_utf8_py(self, data: bytes) -> None:
        """Queue a text message given as its UTF-8 bytes (checked, never decoded: what the C ABI sends). Safe from
        any thread. (``send_utf8``: the C hot path's, or this one without it.)

        Raises:
            ConnectionClosedError: the connection is closing or has ended.
            InvalidUtf8Error: ``data`` is not valid UTF-8 (an InvalidArgumentError; nothing is sent).
        """
        why = utf8_error(data)
        if why is not None:
            raise InvalidUtf8Error(f"not valid UTF-8: {why}")
        self._send_encoded_text(data)

    def _send_encoded_text(self, data: bytes) -> None:
        if self._deflate is not None:
            self._send_deflated(Opcode.TEXT, data)
        elif len(data) >= SEPARATE_PAYLOAD_MIN:
            self._send_parts(frame_header(Opcode.TEXT, len(data)), data)
        else:
            self.send_frame(encode_frame(Opcode.TEXT, data))

    def _send_binary_py(self, data: bytes | bytearray | memoryview) -> None:
        """Queue a binary message. Safe from any thread.

        Raises:
            ConnectionClosedError: the connection is closing or has ended.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidArgumentError(f"send_binary needs bytes, got {type(data).__name__}")
        if self._deflate is not None:
            self._send_deflated(Opcode.BINARY, data if type(data) is bytes else bytes(data))
            return
        if len(data) >= SEPARATE_PAYLOAD_MIN:
            payload = data if type(data) is bytes else bytes(data)  # a snapshot: the caller may reuse its buffer
            self._send_parts(frame_header(Opcode.BINARY, len(payload)), payload)
            return
        self.send_frame(encode_binary(data))

    def _send_deflated(self, opcode: int, data: bytes) -> None:
        """Send a message on a connection with permessage-deflate: compressed if at least ``compression_min_size``
        bytes (RSV1 set), else as a plain frame (RFC 7692 §6 allows either, per message). A large message sent from
        the loop thread is compressed off the loop (:meth:`_send_off_loop`)."""
        deflate = self._deflate
        assert deflate is not None
        if self.phase is not _OPEN:
            self._refused()
        if self._held is not None and self._hold(("data", opcode, data)):
            return  # behind a message being compressed off the loop: compressed when its turn comes
        if (
            len(data) >= OFFLOAD_FROM
            and threading.get_ident() == self._loop_thread
            and worth_compressing(data)
            and self._send_off_loop(deflate, opcode, data)
        ):
            return
        with deflate.lock_ or contextlib.nullcontext():  # dedicated: compressed and queued in one step
            frame, payload = self._deflated_frame(deflate, opcode, data)
            if self.offer_frame(frame) if payload is None else self.offer_frame(frame, 1, payload):
                return
            deflate.forget_context()  # the client never gets this one: later ones must not refer to it
        self._refused()

    # -- large messages compressed off the loop -----------------------------------------------------------------
    #
    # A handler on the loop thread (workers=0) that sends a large compressible message would hold the loop for as
    # long as zlib takes (~1 ms per 128 KiB at the default level; 60 ms for 16 MiB of JSON). Instead the message is
    # compressed on a thread of the runtime's compression pool, and until its frame is queued the connection is
    # "held": everything sent on it meanwhile, from any thread -- frames, messages still to compress, our Close --
    # waits in ``_held.items`` and goes out after it, in order. The C fast path is off meanwhile (``_fast``), so
    # every send passes through the Python methods that check ``_held``.

    def _send_off_loop(self, deflate: ConnectionDeflate, opcode: int, data: bytes) -> bool:
        """Start compressing ``data`` off the loop (loop thread); False if it cannot be (the caller compresses)."""
        lock = deflate.lock_
        if lock is not None and not lock.acquire(blocking=False):
            return False  # another thread is compressing with our context right now: as usual, then
        try:
            with _move_lock:
                if self._held is None:
                    self._held = _Held(self._fast)
                    self._fast = False
            if lock is not None:
                # Compressed with no context: the client will have it in its window and our context will not,
                # so the context starts afresh after it (a new context's output is valid in any stream).
                deflate.forget_context()
        finally:
            if lock is not None:
                lock.release()
        self._offload(deflate, opcode, data)
        return True

    def _offload(self, deflate: ConnectionDeflate, opcode: int, data: bytes) -> None:
        future = self.server.compression.offload(deflate.compress_shared, data)
        loop = self._loop
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._compressed_off_loop, opcode, f))

    def _compressed_off_loop(self, opcode: int, future: concurrent.futures.Future[bytes]) -> None:
        """The large message is compressed (loop thread): queue it, then what was held behind it, in order."""
        try:
            frame, payload = compressed_frame(opcode, future.result())
        except Exception:  # the pool was closed, or zlib failed (out of memory): the connection cannot go on
            log.exception("conn %d: compressing a message failed", self.id, extra={"conn_id": self.id})
            self._release_held()
            self._close_from_runtime(CloseCode.INTERNAL_ERROR, "internal error")
            return
        self._queue_held(frame, 1, payload)
        self._drain_held()

    def _hold(self, item: tuple[Any, ...]) -> bool:
        """Put ``item`` behind the message being compressed (any thread); False if nothing is held any more."""
        with _move_lock:
            held = self._held
            if held is None:
                return False
            held.items.append(item)
            return True

    def _drain_held(self) -> None:
        """Send what was held, in order, until it is all out or another large message goes off the loop."""
        while True:
            with _move_lock:
                held = self._held
                if held is None:
                    return
                if not held.items:
                    self._release_held()
                    return
                item = held.items.popleft()
            kind = item[0]
            if kind == "frame":
                self._queue_held(item[1], item[2], item[3])
            elif kind == "close":
                self._send_close_now(item[1])
            else:  # "data": a message to compress, in its turn
                deflate = self._deflate
                if deflate is None or self.phase is _CLOSED:
                    continue
                opcode, data = item[1], item[2]
                if len(data) >= OFFLOAD_FROM and worth_compressing(data):
                    self._offload(deflate, opcode, data)
                    return  # the rest stays held behind this one
                with deflate.lock_ or contextlib.nullcontext():
                    frame, payload = self._deflated_frame(deflate, opcode, data)
                self._queue_held(frame, 1, payload)

    @staticmethod
    def _deflated_frame(deflate: ConnectionDeflate, opcode: int, data: bytes) -> tuple[bytes, bytes | None]:
        """The frame of a message as this connection sends it now: plain under ``compression_min_size`` or when
        it does not compress (RFC 7692 §6 allows either, per message), else compressed -- from an empty context,
        or with the connection's own (dedicated: the caller holds ``deflate.lock_``). A large payload comes apart
        from its header: ``(header, payload)``; else ``(frame, None)``."""
        if len(data) < deflate.min_size or not worth_compressing(data):
            if len(data) >= SEPARATE_PAYLOAD_MIN:
                return frame_header(opcode, len(data)), data
            return encode_frame(opcode, data), None
        if deflate.lock_ is None:  # no context of ours: any order of compression is fine
            return compressed_frame(opcode, deflate.compress_shared(data))
        return compressed_frame(opcode, deflate.compress_own(data))

    def _release_held(self) -> None:
        """(under _move_lock, or on the loop thread when nothing can be held any more)"""
        held, self._held = self._held, None
        if held is not None:
            self._fast = held.fast

    def _queue_held(self, frame: bytes, count: int, payload: bytes | None) -> None:
        """Queue a frame that was accepted while the connection was held (loop thread): it goes out even if a
        close was asked for since (the close was held behind it), unless the connection is gone."""
        if self.phase is _CLOSED or self._transport is None or self._proto.close_sent:
            return  # gone, or the protocol closed meanwhile (the peer's Close, a protocol error): nothing after it
        if payload is None:
            self._out.append(frame)
        else:
            self._out += (frame, payload)
        self._queued(len(frame) if payload is None else len(frame) + len(payload), count, True)

    def offer_deflated(
        self, opcode: int, data: bytes, shared: dict[tuple[int, bool], tuple[bytes, bytes | None]]
    ) -> bool:
        """offer_frame for one member of a broadcast, on a connection with permessage-deflate: the frame compressed
        once for every member whose messages start from an empty context (cached in ``shared`` by window), or this
        connection's own compression (dedicated). Never raises; False if not queued."""
        deflate = self._deflate
        assert deflate is not None
        if deflate.shares_frames:
            key = deflate.key
            made = shared.get(key)
            if made is None:
                made = shared[key] = compressed_frame(opcode, deflate.compress_shared(data))
            return self.offer_frame(made[0], 1, made[1])
        lock = deflate.lock_
        assert lock is not None
        with lock:
            frame, payload = compressed_frame(opcode, deflate.compress_own(data))
            if self.offer_frame(frame, 1, payload):
                return True
            deflate.forget_context()
            return False

    def _send_parts(self, header: bytes, payload: bytes) -> None:
        """send_frame for a frame queued as its header and its payload (not copied into one object)."""
        if not self.offer_frame(header, 1, payload):
            self._refused()

    def _send_any(self, message: str | bytes) -> None:
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
        if self.phase is not _OPEN:
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
        if self.phase is not _OPEN:
            return -1
        return max(0, self.max_queue_bytes - self._queued_now())

    def _queued_now(self) -> int:
        """Bytes queued and not yet accepted by the kernel: ours plus the transport's buffer."""
        transport = self._transport
        return self._out_bytes if transport is None else self._out_bytes + transport.get_write_buffer_size()

    def _admits(self, queued: int, size: int) -> bool:
        """The outbound queue bound (the C part's snow_queue_admits): a frame always fits an empty queue, so one
        message of any allowed size can go out; otherwise only within ``max_queue_bytes``."""
        return queued == 0 or queued + size <= self.max_queue_bytes

    def _offer_py(self, frame: bytes, count: int = 1, payload: bytes | None = None) -> bool:
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
        if self.phase is not _OPEN:
            return False
        if self._held is not None and self._hold(("frame", frame, count, payload)):
            return True  # behind a message being compressed off the loop
        size = len(frame) if payload is None else len(frame) + len(payload)
        if not self._admits(self._queued_now(), size):
            self.drops += 1
            if self.server.options.slow_consumer == "close" and self._close_from_runtime(*SLOW_CONSUMER):
                self.server.slow_consumer_closes += 1
            return False
        on_loop = threading.get_ident() == self._loop_thread
        if on_loop:
            # The loop thread is the one that drains our Close: nothing it appends can end up behind it.
            if payload is None:
                self._out.append(frame)
            else:
                self._out += (frame, payload)  # one list operation: no other thread's frame can come in between
        else:
            with _move_lock:  # the phase cannot leave OPEN between the check and the append
                if self.phase is not _OPEN:
                    return False
                if payload is None:
                    self._out.append(frame)
                else:
                    self._out += (frame, payload)
        self._queued(size, count, on_loop)
        return True

    def _queued(self, size: int, count: int, on_loop: bool) -> None:
        """Count ``count`` messages of ``size`` bytes just appended to the FIFO, and have it flushed: at the end of
        this loop iteration, or after the read being handled (which flushes), or from another thread."""
        self._out_bytes += size
        self.bytes_out += size
        self.messages_out += count
        if not self._flush_pending:
            self._flush_pending = True
            if not on_loop:
                self.server.schedule_flush_threadsafe(self)
            elif not self._in_read:
                self.server.schedule_flush(self)

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
        self._started = self._loop.time()
        self.server.connection_started(self)
        self._timer = self._loop.call_later(self.server.options.handshake_timeout, self._handshake_expired)

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

    def _flush_py(self) -> None:
        """Hand every queued frame to the transport in one write (the loop thread only)."""
        self._flush_pending = False  # first: a frame appended from now on schedules another flush
        out = self._out
        n = len(out)
        if self._transport is None or self.phase is _CLOSED:
            return
        if self._proto.close_sent:  # our Close is due or gone: the protocol puts it last (take_outgoing)
            items = self._proto.take_outgoing()
            n = len(items)
            if not n:
                return
        elif n == 1:
            data = out[0]
            del out[:1]
            self._out_bytes = max(0, self._out_bytes - len(data))
            self._transport.write(data)
            return
        elif not n:
            return
        else:
            items = out[:n]
            del out[:n]
        if n == 1:
            self._out_bytes = max(0, self._out_bytes - len(items[0]))
            self._transport.write(items[0])
            return
        if self._out_bytes < SEPARATE_PAYLOAD_MIN:  # small frames (control frames are not counted: all small)
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

    def _on_request(self, request: ev.Request) -> None:
        self._cancel_timer()
        self.path = request.target
        self.headers = request.headers
        server = self.server
        admission = server.admission
        ip = self._peer_ip()
        if server.closing:
            refusal = admission.shutting_down(ip, self.id)
            self._refuse(refusal.status, refusal.text, refusal.headers)
            return
        decision = admission.check(ip, request.headers, len(server._accepted), self.id)
        if decision is not None and not isinstance(decision, str):
            self._refuse(decision.status, decision.text, decision.headers)
            return
        try:
            verdict = server.handler.on_upgrade(request.target, request.headers)
        except Exception:
            log.exception("on_upgrade raised; answering 500", extra={"conn_id": self.id})
            verdict = Reject("internal error", status=500)
        if verdict is not None:
            admission.count("on_upgrade", ip, f"{verdict.status} {verdict.reason}", self.id)
            self._refuse(verdict.status, verdict.reason)
            return
        self.subprotocol = decision
        extensions: tuple[tuple[str, str], ...] = () if decision is None else (("Sec-WebSocket-Protocol", decision),)
        offers = request.headers.get_all("Sec-WebSocket-Extensions")
        if offers and server.options.compression != "off":
            self._deflate = server.negotiate_deflate(offers)
            if self._deflate is not None:
                self._proto.enable_deflate(self._deflate.inflater)
                extensions += (("Sec-WebSocket-Extensions", self._deflate.params.response),)
        pipelined = self._proto.accept(extensions)  # the 101 is queued first: before anything on_connect sends
        admission.opened(ip)
        self._admitted = True
        self._enter(_OPEN)
        self._actor = actor = server.scheduler.spawn(self._behave, self._crash)
        self.pid = actor.pid
        server.connection_accepted(self)
        server.scheduler.deliver(actor, Tag.CONNECT, None)
        if server.heartbeat is not None:
            server.heartbeat.start(self)
        if pipelined:
            self._handle(pipelined)

    def _peer_ip(self) -> str:
        address = self.remote_address
        return address[0] if address is not None else ""

    def _refuse(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._proto.reject(status, reason, headers)
        self._enter(_CLOSING)
        self._linger()

    def _on_http_request(self, request: ev.HttpRequest) -> None:
        self._cancel_timer()
        opts = self.server.options
        if opts.metrics_path is not None and request.target.partition("?")[0] == opts.metrics_path:
            self._proto.respond(*self.server.metrics_page(request.headers.get("Accept")))
        elif opts.static_dir is None:
            self._proto.reject(400, "Upgrade header must include websocket.")
        else:
            self._proto.respond(*static.lookup(opts.static_dir, opts.static_index, request.target))
        self._enter(_CLOSING)
        self._linger()

    def send_heartbeat_ping(self, payload: bytes) -> None:
        """Called by the heartbeat wheel (loop thread)."""
        if self._proto.state is State.OPEN:
            self._proto.send_ping(payload)
            self._flush()

    def heartbeat_expired(self) -> None:
        """Called by the heartbeat wheel (loop thread) when a ping went unanswered: fail the connection (RFC 6455
        §7.1.7). A peer that answers no ping will not answer a Close either: send ours if the protocol still can,
        then drop TCP at once, so on_close (1011) runs now, not ``close_timeout`` later."""
        if self._enter(_CLOSING, KEEPALIVE_TIMEOUT):
            self.server.heartbeat_timeouts += 1
        if self._proto.state is State.OPEN:
            self._proto.send_close(*KEEPALIVE_TIMEOUT)
        self._drop_transport()

    def _send_close(self, payload: bytes) -> None:
        """Send our Close (validated by the caller) and arm the close deadline; after the messages held behind a
        message being compressed off the loop, if any."""
        if self._held is not None and self._hold(("close", payload)):
            return
        self._send_close_now(payload)

    def _send_close_now(self, payload: bytes) -> None:
        if self.phase is _CLOSED:
            return
        if self._proto.state is State.OPEN:  # else the peer's Close or a failure got there first: nothing to send
            self._proto.send_close_payload(payload)
            self._flush()
            self._arm_close_deadline()

    def _close_from_runtime(self, code: int, reason: str) -> bool:
        """Close from inside the runtime (reject, crash, slow consumer, server shutdown): never raises.

        Returns:
            True if this call started the close (False: the connection was already closing or ended).
        """
        if self._enter(_CLOSING, (code, reason)):
            self._call_on_loop(self._send_close, build_close_payload(code, reason))
            return True
        return False

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
            close_transport(self._transport)  # TLS: our close_notify, not waiting for theirs

    def _linger(self) -> None:
        """After an HTTP response that ends the connection (an error, a refusal, a page): send it and our FIN, then
        read and drop what the client may still be sending -- up to LINGER_BYTES, for at most ``close_timeout`` --
        and close once it closes. Closing with its input unread would reset the connection, and the client would
        see "connection reset" instead of our answer (a 431 to a request head still being sent, say)."""
        self._flush()
        self._cancel_timer()
        transport = self._transport
        if transport is None:
            return
        if not transport.can_write_eof():  # TLS: no half-close
            close_transport(transport)
            return
        transport.write_eof()
        self._linger_left = LINGER_BYTES
        self._timer = self._loop.call_later(self.server.options.close_timeout, self._finish)

    def _drop_transport(self) -> None:
        """Write what is queued if the socket takes it now, and close TCP at once either way (loop thread)."""
        self._flush()
        self._cancel_timer()
        transport = self._transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            transport.abort()  # the peer is not reading: what is left would never go out
        else:
            close_transport(transport)

    def _arm_close_deadline(self) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(self.server.options.close_timeout, self._abort_transport)

    def _handshake_expired(self) -> None:
        """The client did not complete its handshake in ``handshake_timeout``: answer 408 and close (a slowloris
        client gets an answer, not a silent drop)."""
        self._timer = None
        if self._proto.state is State.HANDSHAKE and self._transport is not None:
            self.server.admission.count("handshake_timeout", self._peer_ip(), "handshake not complete in time", self.id)
            self._proto.fail_handshake(408, "Request timeout: the opening handshake took too long.")
            self._enter(_CLOSING)
            self._linger()

    def _abort_transport(self) -> None:
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
        send = _send_any
        send_text = _send_text_py
        send_binary = _send_binary_py
        send_utf8 = _send_utf8_py
        offer_frame = _offer_py
        _flush = _flush_py


configure(Tag.TEXT, Tag.BINARY, ev.TextMessage)  # what the C part compares with and builds (connection_base.py)

__all__ = ["SERVER_SHUTDOWN", "Connection", "Phase"]
