"""A :class:`~snow_rt_py.Handler` whose callbacks are C functions (Snow's ``(fn, env)`` closures).

Each callback marshals its arguments and calls a C helper of the library (``snow_abi_call_on_*``), which builds the
SnowStrings for the duration of the call, applies the closure convention (env NULL -> ``fn(args)``, else
``fn(env, args)``) and frees them afterwards. cffi releases the GIL around those calls, so a callback may call back
into the library from its own thread, and other threads keep running meanwhile.

Everything else (which thread, ordering, reject -> 1008, on_close exactly once) is the runtime's behaviour.
"""

from __future__ import annotations

from typing import Any

from snow_rt_py.abi import handles
from snow_rt_py.protocol.headers import Headers
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.handler import Handler


class CHandler(Handler):
    """Calls the C callbacks given to snow_ws_start / snow_ws_serve.

    Args:
        ffi, lib: the embedded module.
        callbacks: ``(fn, env)`` pairs (cdata ``void *``) for ``connect``, ``message``, ``close`` and ``binary``;
            a NULL fn means absent.
    """

    def __init__(self, ffi: Any, lib: Any, callbacks: dict[str, tuple[Any, Any]]) -> None:
        self._lib = lib
        null = ffi.NULL
        self._connect = callbacks["connect"] if callbacks["connect"][0] != null else None
        self._message = callbacks["message"] if callbacks["message"][0] != null else None
        self._close = callbacks["close"] if callbacks["close"][0] != null else None
        self._binary = callbacks["binary"] if callbacks["binary"][0] != null else None
        # on_message is the hot path: its pieces are looked up once.
        self._call_message = lib.snow_abi_call_on_message
        self._message_fn, self._message_env = self._message if self._message is not None else (null, null)

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool:
        handles.register_connection(conn)
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

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        if type(message) is str:
            if self._message is None:
                return
            data = message.encode("utf-8")
            status = self._call_message(self._message_fn, self._message_env, conn.id, data, len(data))
        elif self._binary is not None:
            status = self._lib.snow_abi_call_on_binary(self._binary[0], self._binary[1], conn.id, message, len(message))
        elif self._message is not None:
            status = self._lib.snow_abi_call_on_message(
                self._message[0], self._message[1], conn.id, message, len(message)
            )
        else:
            return
        if status < 0:
            raise MemoryError("no memory for the message given to on_message")  # the runtime closes with 1011

    def on_close(self, conn: Connection, code: int, reason: str) -> None:
        # The connection has ended: its handle is stale from now on, also for other threads while on_close runs.
        handles.drop_connection(conn)
        if self._close is not None:
            raw = reason.encode("utf-8", "surrogatepass")
            self._lib.snow_abi_call_on_close(self._close[0], self._close[1], conn.id, code, raw, len(raw))
