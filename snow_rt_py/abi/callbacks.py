"""A :class:`~snow_rt_py.Handler` whose callbacks are C functions (Snow's ``(fn, env)`` closures).

Each callback marshals its arguments and calls a C helper of the library (``snow_abi_call_on_*``), which builds the
SnowStrings for the duration of the call, applies the closure convention (env NULL -> ``fn(args)``, else
``fn(env, args)``) and frees them afterwards. cffi releases the GIL around those calls, so a callback may call back
into the library from its own thread, and other threads keep running meanwhile.

on_message / on_binary arm the library's reply fast path (snow_ws_replies.c): sends to
the connection itself are encoded in C and come back here as one batch of frames when the callback returns, which
:meth:`CHandler.on_message` queues with a single ``offer_frame``.

Everything else (which thread, ordering, reject -> 1008, on_close exactly once) is the runtime's behaviour.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from snow_rt_py.abi import handles
from snow_rt_py.protocol.headers import Headers
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.connection_base import C_CONNECTION
from snow_rt_py.runtime.handler import Handler
from snow_rt_py.runtime.presence import PresenceEvent

FAST_REPLIES = os.environ.get("SNOW_RT_PY_ABI_NO_FAST_REPLY", "") in ("", "0")
"""False when SNOW_RT_PY_ABI_NO_FAST_REPLY=1 (read at import): every send goes through Python, to measure the fast
path or to compare against it (tests/c/test_programs.py)."""

REPLY_BUFFER_BYTES = 1 << 20
"""Per thread that runs C callbacks: replies of one callback beyond this go the (slower) Python way."""

# Each thread's reply buffer (one per thread, shared by every server: C has one per thread too). Kept here, it
# lives exactly as long as its thread.
_thread = threading.local()


def current_input() -> bytes:
    """The binary message the C on_binary running on this thread was given.

    Raises:
        RuntimeError: no on_binary is running on this thread (the library only asks from inside one).
    """
    message: bytes | None = getattr(_thread, "message", None)
    if message is None:
        raise RuntimeError("no on_binary callback is running on this thread")
    return message


_registered = False


def _register(lib: Any) -> None:
    """Register the library's on_message caller with the connection's C part, once per process."""
    global _registered
    _registered = lib.snow_abi_register_native() == 0


class CHandler(Handler):
    """Calls the C callbacks given to snow_ws_start / snow_ws_serve, or to snow_ws_connect.

    Args:
        ffi, lib: the embedded module.
        callbacks: ``(fn, env)`` pairs (cdata ``void *``) for ``connect``, ``message``, ``close`` and ``binary``;
            a NULL fn means absent.
        fast_replies: whether replies may take the C fast path, which encodes unmasked (server) frames: False for
            the connections of a client (snow_ws_connect), whose frames the runtime masks.
    """

    def __init__(self, ffi: Any, lib: Any, callbacks: dict[str, tuple[Any, Any]], *, fast_replies: bool = True) -> None:
        self._lib = lib
        self._fast_replies = fast_replies and FAST_REPLIES
        null = ffi.NULL
        self._connect = callbacks["connect"] if callbacks["connect"][0] != null else None
        self._message = callbacks["message"] if callbacks["message"][0] != null else None
        self._close = callbacks["close"] if callbacks["close"][0] != null else None
        self._binary = callbacks["binary"] if callbacks["binary"][0] != null else None
        presence = callbacks.get("presence", (null, null))
        if presence[0] != null:
            self._presence = presence
            self.on_presence = self._on_presence  # type: ignore[method-assign]  # defined: the runtime sends events
        # on_message is the hot path: its pieces are looked up once, and each C callback is a SnowAbiTarget (kept
        # alive by this object).
        self._message_target = ffi.new("SnowAbiTarget *", self._message) if self._message else null
        self._binary_target = ffi.new("SnowAbiTarget *", self._binary) if self._binary else null
        self._call_message = lib.snow_abi_call_on_message
        self._call_binary = lib.snow_abi_call_on_binary
        self._ffi = ffi
        self._natives: dict[int, tuple[int, bytearray, bool]] = {}  # see _native()
        if C_CONNECTION and not _registered:
            _register(lib)

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool:
        handles.register_connection(conn)
        if self._message is not None and conn._direct and threading.get_ident() == conn._loop_thread:
            # Messages run inline on this (the loop) thread: the runtime's C hot path may call on_message itself,
            # with this thread's reply buffer (runtime/_connection_core.c, call_native) -- what on_text_bytes does.
            buffer = getattr(_thread, "replies", None)
            conn._native = self._native(buffer if buffer is not None else self._reply_buffer())
        if self._connect is None:
            return True
        fn, env = self._connect
        raw_path = path.encode("latin-1")  # the request target arrived as ASCII
        scope = handles.HeaderScope(headers, self._lib.snow_string_free)
        header_handle = handles.open_headers(scope)
        try:
            accepted = self._lib.snow_abi_call_on_connect(fn, env, conn.id, raw_path, len(raw_path), header_handle)
        finally:
            handles.close_headers(header_handle)
        if accepted < 0:
            raise MemoryError("no memory for the path of on_connect")  # the runtime closes with 1011
        if accepted == 1:
            return True
        handles.drop_connection(conn)  # rejected: on_close will not run, the handle is stale from now on
        return False

    def on_text_bytes(self, conn: Connection, data: bytes) -> None:
        """A text message, as the validated UTF-8 bytes it arrived as: handed to C as they are (the runtime calls
        this instead of on_message for text, so text makes no str round trip)."""
        if self._message is not None:
            self._call(conn, self._call_message, self._message_target, data)

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        if type(message) is str:
            self.on_text_bytes(conn, message.encode())
        elif self._binary is not None:
            _thread.message = message  # for snow_abi_py_send_input: C sending these very bytes back
            try:
                self._call(conn, self._call_binary, self._binary_target, message)
            finally:
                _thread.message = None
        elif self._message is not None:
            self._call(conn, self._call_message, self._message_target, message)

    def _call(self, conn: Connection, call: Any, target: Any, data: bytes | Any) -> None:
        """Run one on_message / on_binary with the reply fast path armed, then queue what it replied."""
        try:
            buffer = _thread.replies
        except AttributeError:
            buffer = self._reply_buffer()
        # budget -1: C does not arm the fast path. plain_max: with permessage-deflate, replies from
        # compression_min_size bytes on go through Python, which compresses them (C's frames are plain).
        budget = conn.reply_budget() if self._fast_replies else -1
        deflate = conn._deflate
        replies = call(target, conn.id, data, len(data), budget, -1 if deflate is None else deflate.min_size)
        if replies > 0:
            # (frames << 32) | bytes at the start of this thread's buffer: copied now, before anything else can
            # run on this thread. offer_frame refuses them only if another thread closed the connection or filled
            # its queue meanwhile (a race the sends could not see).
            conn.offer_frame(bytes(memoryview(buffer)[: replies & 0xFFFFFFFF]), replies >> 32)
        elif replies < 0:
            raise MemoryError("no memory for the message given to on_message")  # the runtime closes with 1011

    def _native(self, buffer: bytearray) -> tuple[int, bytearray, bool]:
        """What the connection's C part needs to call on_message like :meth:`on_text_bytes` (one per buffer): the
        library's opaque target of this server's on_message (handed back to the function the library registered,
        runtime/_connection_core.h), the reply buffer, and whether the reply fast path may be armed."""
        native = self._natives.get(id(buffer))
        if native is None or native[1] is not buffer:
            native = (int(self._ffi.cast("uintptr_t", self._message_target)), buffer, self._fast_replies)
            self._natives[id(buffer)] = native
        return native

    def _reply_buffer(self) -> bytearray:
        """This thread's reply buffer, made and handed to C before its first C callback."""
        buffer = bytearray(REPLY_BUFFER_BYTES)
        pointer = self._ffi.from_buffer(buffer)
        self._lib.snow_abi_set_reply_buffer(pointer, len(buffer))
        _thread.pointer = pointer
        _thread.replies = buffer
        return buffer

    def _on_presence(self, conn: Connection, event: PresenceEvent) -> None:
        room = event.room.encode("utf-8", "surrogatepass")
        meta = event.member.meta.encode("utf-8", "surrogatepass")
        member = event.member
        fn, env = self._presence
        joined = 1 if event.kind == "join" else 0
        if self._lib.snow_abi_call_on_presence(
            fn, env, conn.id, room, len(room), joined, member.id, member.node, meta, len(meta)
        ):
            raise MemoryError("no memory for the strings of on_presence")

    def on_close(self, conn: Connection, code: int, reason: str) -> None:
        # The connection has ended: its handle is stale from now on, also for other threads while on_close runs.
        handles.drop_connection(conn)
        if self._close is not None:
            raw = reason.encode("utf-8", "surrogatepass")
            self._lib.snow_abi_call_on_close(self._close[0], self._close[1], conn.id, code, raw, len(raw))
