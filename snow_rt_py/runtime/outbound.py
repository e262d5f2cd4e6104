"""A connection's sending side: its messages into frames, and its one outbound FIFO with its bound and its flush.

Every data frame of a connection -- a message sent from any thread, a broadcast's shared frame, a C callback's
batch of replies -- is queued by :meth:`Outbound._offer_py` (the reference of the C part's ``snow_offer_fast``),
which applies the outbound queue's one bound (:meth:`Outbound._admits`) and the slow-consumer policy, and leaves
the FIFO by :meth:`Outbound._flush_py` (the reference of ``snow_core_flush``): once per read, once per loop
iteration, in one write. permessage-deflate sends are made here too, a large message compressed off the loop with
what follows it held in order (``_send_off_loop``).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import threading
from typing import Any

from snow_rt_py.protocol.close import CloseCode
from snow_rt_py.protocol.errors import UsageError
from snow_rt_py.protocol.frames import Opcode, encode_binary, encode_frame, encode_text, frame_header
from snow_rt_py.protocol.utf8 import utf8_error
from snow_rt_py.runtime.compression import OFFLOAD_FROM, ConnectionDeflate, compressed_frame, worth_compressing
from snow_rt_py.runtime.connection_base import (
    SEPARATE_PAYLOAD_MIN,
    SEPARATE_TEXT_MIN,
    SLOW_CONSUMER,
    Phase,
    move_lock,
)
from snow_rt_py.runtime.connection_fields import ConnectionFields
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError, InvalidUtf8Error, QueueFullError

log = logging.getLogger("snow_rt_py.connection")

_OPEN = Phase.OPEN
_CLOSED = Phase.CLOSED
_move_lock = move_lock
_SEPARATE_TEXT_MIN = SEPARATE_TEXT_MIN


class Held:
    """What a connection holds while a large message is compressed off the loop (see ``_send_off_loop``)."""

    __slots__ = ("fast", "items")

    def __init__(self, fast: bool) -> None:
        self.fast = fast  # the connection's _fast, given back when nothing is held any more
        self.items: collections.deque[tuple[Any, ...]] = collections.deque()


class Outbound(ConnectionFields):
    """The sending methods of :class:`~snow_rt_py.runtime.connection.Connection` (see the module)."""

    __slots__ = ()

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
                    self._held = Held(self._fast)
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

    def fits(self, size: int) -> bool:
        """True if a frame of ``size`` bytes would be queued now without the queue bound refusing it: the
        connection is open and :meth:`_admits` takes it. A room with a delivery policy asks this first, so its
        messages never meet the slow-consumer policy (runtime/room_delivery.py)."""
        return self.phase is _OPEN and self._admits(self._queued_now(), size)

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
                self.server.schedule_flush_threadsafe(self)  # type: ignore[arg-type]  # a Connection (no call here)
            elif not self._in_read:
                self.server.schedule_flush(self)  # type: ignore[arg-type]  # a Connection

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
