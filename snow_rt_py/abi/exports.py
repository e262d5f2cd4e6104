"""The Python side of libsnow_ws.so: the ``extern "Python"`` functions its C wrappers call.

:func:`install` is called once by the library's init code (build_ffi.py) with the embedded module's ``ffi`` and
``lib``. Each function maps one C call onto the Python API and nothing more: unpack the C arguments, look the
handle up, call the API, and turn any exception into -1 (or NULL) plus the calling thread's last error. No
exception ever propagates into C.

The C wrappers (snow_rt_py/abi/snow_ws_api.c) have already checked raw pointers (NULL, negative lengths) and that
the runtime is up, so these functions receive valid pointers and lengths.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import snow_rt_py
from snow_rt_py import api
from snow_rt_py.abi import handles, history_exports
from snow_rt_py.abi.callbacks import CHandler, current_input
from snow_rt_py.abi.errors import BAD_HANDLE, INVALID_ARGUMENT, NOT_FOUND, AbiError, ErrorMap
from snow_rt_py.runtime.options import ServerOptions, c_fields
from snow_rt_py.runtime.runtime import default_runtime

VERSION = snow_rt_py.__version__

log = logging.getLogger("snow_rt_py.abi")

F = TypeVar("F", bound=Callable[..., Any])


def export(ffi: Any, name: str, error: int | None = None) -> Callable[[F], F]:
    """``@ffi.def_extern(name=name, error=error)``, typed: attach the Python body of ``extern "Python"`` ``name``.

    ``error`` is what cffi returns if an exception escapes anyway (none should: every body catches everything).
    """
    decorator: Callable[[F], F] = ffi.def_extern(name=name) if error is None else ffi.def_extern(name=name, error=error)
    return decorator


def install(ffi: Any, lib: Any) -> None:
    """Attach every ``extern "Python"`` function of the library (``@ffi.def_extern``)."""
    errors = ErrorMap(lib)
    null = ffi.NULL
    unpack = ffi.unpack
    set_error = lib.snow_abi_set_error
    connection = handles.connection
    option_fields = _option_fields(ffi)

    def fail(exc: BaseException) -> int:
        code, message, expected = errors.classify(exc)
        if not expected:
            log.error("unexpected error in the C ABI", exc_info=exc)
        set_error(code, message.encode("utf-8", "replace"))
        return -1

    def text(data: Any, length: int) -> str:
        return str(unpack(data, length).decode("utf-8"))

    table = handles.connection_table()
    rooms = default_runtime().rooms  # C's rooms: the default runtime's, shared with the Python API

    # The two sends are the hot path (one call per message): the registry is read directly; connection() only
    # runs to raise the error for an unknown handle.
    @export(ffi, "snow_abi_py_send_text", -1)
    def send_text(conn: int, data: Any, length: int) -> int:
        try:
            # Text stays bytes: checked as UTF-8, framed, never decoded and re-encoded.
            (table.get(conn) or connection(conn)).send_utf8(unpack(data, length))
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_send_binary", -1)
    def send_binary(conn: int, data: Any, length: int) -> int:
        try:
            (table.get(conn) or connection(conn)).send_binary(unpack(data, length))
            return 0
        except BaseException as exc:
            return fail(exc)

    # snow_ws_send_binary from inside on_binary with the very bytes that callback got (an echo): the message
    # object itself is queued, not a copy of it (snow_ws_replies.c, snow_abi_slow_send).
    @export(ffi, "snow_abi_py_send_input", -1)
    def send_input(conn: int) -> int:
        try:
            (table.get(conn) or connection(conn)).send_binary(current_input())
            return 0
        except BaseException as exc:
            return fail(exc)

    # A C callback's buffered replies, delivered early because it made another call into the runtime
    # (snow_ws_replies.c, snow_abi_settle). Its sends already returned 0: a connection that ended meanwhile drops
    # them, as it would have dropped them had they been written just before it ended.
    @export(ffi, "snow_abi_py_deliver", -1)
    def deliver(conn: int, frames: Any, length: int, count: int) -> int:
        try:
            target = table.get(conn)
            if target is not None:
                target.offer_frame(unpack(frames, length), count)
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_join", -1)
    def join(conn: int, room: Any, room_len: int) -> int:
        try:
            api.join(connection(conn), text(room, room_len))
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_join_meta", -1)
    def join_meta(conn: int, room: Any, room_len: int, meta: Any, meta_len: int) -> int:
        try:
            api.join(connection(conn), text(room, room_len), text(meta, meta_len) or None)
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_presence", -1)
    def presence(room: Any, room_len: int, out: Any, capacity: int) -> int:
        made: list[Any] = []
        try:
            members = api.presence(text(room, room_len))
            for member in members[:capacity]:
                raw = member.meta.encode("utf-8", "surrogatepass")
                string = lib.snow_string_new(raw, len(raw))
                if string == null:
                    raise MemoryError("no memory for the members' meta strings")
                made.append(string)
            for i, string in enumerate(made):
                out[i].conn = ffi.cast("void *", members[i].id)
                out[i].node = members[i].node
                out[i].meta = string
            return len(members)
        except BaseException as exc:
            for string in made:
                lib.snow_string_free(string)
            return fail(exc)

    @export(ffi, "snow_abi_py_leave", -1)
    def leave(conn: int, room: Any, room_len: int) -> int:
        try:
            api.leave(connection(conn), text(room, room_len))
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_broadcast", -1)
    def broadcast(room: Any, room_len: int, msg: Any, msg_len: int, has_except: int, except_conn: int) -> int:
        try:
            name = text(room, room_len)
            # An ended connection has left every room already: excluding it excludes nobody.
            excluded = handles.live_or_ended(except_conn) if has_except else None
            if has_except and excluded is None and handles.is_remote(except_conn):
                return rooms.broadcast_utf8(name, unpack(msg, msg_len), except_conn)
            return rooms.broadcast_utf8(name, unpack(msg, msg_len), excluded)
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_close", -1)
    def close(conn: int, code: int, reason: Any, reason_len: int) -> int:
        try:
            connection(conn).close(code, text(reason, reason_len))
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_member_count", -1)
    def member_count(room: Any, room_len: int) -> int:
        try:
            return api.member_count(text(room, room_len))
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_rooms_of", -1)
    def rooms_of(conn: int, out: Any, capacity: int) -> int:
        made: list[Any] = []
        try:
            names = api.rooms_of(connection(conn))
            for name in names[:capacity]:
                raw = name.encode("utf-8", "surrogatepass")
                string = lib.snow_string_new(raw, len(raw))
                if string == null:
                    raise MemoryError("no memory for the room names")
                made.append(string)
            for i, string in enumerate(made):
                out[i] = string
            return len(names)
        except BaseException as exc:
            for string in made:
                lib.snow_string_free(string)
            return fail(exc)

    @export(ffi, "snow_abi_py_header_get")
    def header_get(headers: int, name: Any) -> Any:
        try:
            scope = handles.headers(headers)
            key = ffi.string(name).decode("utf-8")
            value = scope.headers.get(key)
            if value is None:
                raise AbiError(NOT_FOUND, f"no header named {key!r}")
            raw = value.encode("latin-1")  # header values arrive as latin-1: these are the bytes sent
            string = lib.snow_string_new(raw, len(raw))
            if string == null:
                raise MemoryError("no memory for the header value")
            if not scope.keep(string):  # its on_connect returned meanwhile
                lib.snow_string_free(string)
                raise AbiError(BAD_HANDLE, "these headers are no longer valid: their on_connect has returned")
            return string
        except BaseException as exc:
            fail(exc)
            return null

    @export(ffi, "snow_abi_py_start", -1)
    def start(
        opts: Any,
        on_connect_fn: Any,
        on_connect_env: Any,
        on_message_fn: Any,
        on_message_env: Any,
        on_close_fn: Any,
        on_close_env: Any,
    ) -> int:
        try:
            options, binary, presence_cb = _options(ffi, opts, option_fields)
            handler = CHandler(
                ffi,
                lib,
                {
                    "connect": (on_connect_fn, on_connect_env),
                    "message": (on_message_fn, on_message_env),
                    "close": (on_close_fn, on_close_env),
                    "binary": binary,
                    "presence": presence_cb,
                },
            )
            return handles.register_server(snow_rt_py.start(handler, options=options))
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_server_port", -1)
    def server_port(server: int) -> int:
        try:
            return handles.server(server).port
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_drain", -1)
    def drain(server: int, timeout_ms: int) -> int:
        try:
            handles.server(server).drain(timeout_ms / 1000)
            handles.drop_server(server)
            return 0
        except BaseException as exc:
            return fail(exc)

    stats_fields = _stats_fields(ffi)
    history_exports.install(ffi, lib, fail, text)  # the "Rooms that remember" section (abi/snow_ws_history.c)

    @export(ffi, "snow_abi_py_server_stats", -1)
    def server_stats(server: int, out: Any) -> int:
        try:
            _fill_stats(out, handles.server(server).statistics(), stats_fields)
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_subprotocol")
    def subprotocol(conn: int) -> Any:
        try:
            name = connection(conn).subprotocol
            if name is None:
                raise AbiError(NOT_FOUND, f"connection {conn} has no subprotocol")
            raw = name.encode("ascii")  # a token: ASCII
            string = lib.snow_string_new(raw, len(raw))
            if string == null:
                raise MemoryError("no memory for the subprotocol")
            return string
        except BaseException as exc:
            fail(exc)
            return null

    from snow_rt_py.abi import client_exports  # the client's functions (it imports export() from here)

    client_exports.install(ffi, lib, fail)

    @export(ffi, "snow_abi_py_stop", -1)
    def stop(server: int, timeout_ms: int) -> int:
        try:
            running = handles.server(server)
            if timeout_ms < 0:  # internal: snow_ws_serve's stop, with the API's default grace period
                running.stop()
            else:
                running.stop(timeout_ms / 1000)
            handles.drop_server(server)
            return 0
        except BaseException as exc:
            return fail(exc)


def _option_fields(ffi: Any) -> list[tuple[str, int, bool]]:
    """``(name, end offset, is_pointer)`` of each SnowWsOptions field, for the struct_size rule."""
    fields = ffi.typeof("SnowWsOptions").fields
    return [(name, field.offset + ffi.sizeof(field.type), field.type.kind == "pointer") for name, field in fields]


def _stats_fields(ffi: Any) -> list[tuple[str, int]]:
    """``(name, end offset)`` of each SnowWsStats field after struct_size, for the struct_size rule."""
    fields = ffi.typeof("SnowWsStats").fields
    return [(name, field.offset + ffi.sizeof(field.type)) for name, field in fields if name != "struct_size"]


def _fill_stats(out: Any, stats: dict[str, Any], fields: list[tuple[str, int]]) -> None:
    """Write ``Server.statistics()`` into a ``SnowWsStats *``: only the fields that end within its struct_size."""
    size = int(out.struct_size)
    refused = stats["handshakes_refused"]
    codes: dict[int, int] = stats["close_codes"]
    for name, end in fields:
        if end > size:
            continue
        if name.startswith("refused_"):
            setattr(out, name, refused[name[len("refused_") :]])
        elif name == "closes":
            for i in range(16):
                out.closes[i] = codes.get(1000 + i, 0)
        elif name == "closes_other":
            out.closes_other = sum(n for code, n in codes.items() if not 1000 <= code < 1016)
        else:
            setattr(out, name, stats[name])


def _csv(ffi: Any, value: Any) -> list[str]:
    """A comma-separated C string as a list (empty items dropped)."""
    return [item.strip() for item in ffi.string(value).decode("utf-8").split(",") if item.strip()]


SLOW_CONSUMER_POLICIES = {"SNOW_WS_SLOW_CONSUMER_CLOSE": "close", "SNOW_WS_SLOW_CONSUMER_DROP": "drop"}
"""The header's SnowWsSlowConsumer constants -> ServerOptions.slow_consumer (their values come from the header)."""


def _slow_consumer(ffi: Any, value: int) -> str | None:
    """The ServerOptions.slow_consumer named by SnowWsOptions.slow_consumer (0: None, for the default).

    Raises:
        AbiError: not one of the header's SNOW_WS_SLOW_CONSUMER_* policies.
    """
    if value == 0:
        return None
    constants: dict[str, int] = ffi.typeof("SnowWsSlowConsumer").relements
    for name, policy in SLOW_CONSUMER_POLICIES.items():
        if constants[name] == value:
            return policy
    choices = " or ".join(f"{name} ({constants[name]})" for name in SLOW_CONSUMER_POLICIES)
    raise AbiError(INVALID_ARGUMENT, f"SnowWsOptions.slow_consumer is {value}: use 0 (default), {choices}")


COMPRESSION_MODES = {
    "SNOW_WS_COMPRESSION_SHARED": "shared",
    "SNOW_WS_COMPRESSION_DEDICATED": "dedicated",
    "SNOW_WS_COMPRESSION_OFF": "off",
}
"""The header's SnowWsCompression constants -> ServerOptions.compression."""
COMPRESSION_ENV = "SNOW_WS_COMPRESSION"


def _compression(ffi: Any, value: int) -> str | None:
    """The ServerOptions.compression named by SnowWsOptions.compression (0: $SNOW_WS_COMPRESSION, else None for the
    default).

    Raises:
        AbiError: not one of the header's constants, or the variable names no mode.
    """
    if value == 0:
        env = os.environ.get(COMPRESSION_ENV, "")
        if not env:
            return None
        if env not in COMPRESSION_MODES.values():
            choices = ", ".join(COMPRESSION_MODES.values())
            raise AbiError(INVALID_ARGUMENT, f"{COMPRESSION_ENV} is {env!r}: use one of {choices}")
        return env
    constants: dict[str, int] = ffi.typeof("SnowWsCompression").relements
    for name, mode in COMPRESSION_MODES.items():
        if constants[name] == value:
            return mode
    choices = ", ".join(f"{name} ({constants[name]})" for name in COMPRESSION_MODES)
    raise AbiError(INVALID_ARGUMENT, f"SnowWsOptions.compression is {value}: use 0 (default), {choices}")


ENUMS = {"slow_consumer": _slow_consumer, "compression": _compression}
"""The converters of the SnowWsOptions fields of kind "enum" (0 included: each says what 0 means)."""


def _option_value(ffi: Any, name: str, kind: str, negative: Any, value: Any) -> Any:
    """The ServerOptions value of a set (nonzero, non-NULL) SnowWsOptions field of ``kind`` (see ``CField``)."""
    if kind == "ms":
        return negative if value < 0 and negative != () else value / 1000
    if kind == "text":
        return ffi.string(value).decode("utf-8")
    if kind == "path":
        return os.fsdecode(ffi.string(value))
    if kind == "list":
        return _csv(ffi, value)
    if kind == "bool":
        return True
    if kind == "float":
        return float(value)
    if kind == "enum":
        return ENUMS[name](ffi, int(value))
    return int(value)


def _options(
    ffi: Any, opts: Any, fields: list[tuple[str, int, bool]]
) -> tuple[ServerOptions, tuple[Any, Any], tuple[Any, Any]]:
    """ServerOptions from a ``SnowWsOptions *`` (NULL = defaults), and the on_binary and on_presence ``(fn, env)``
    pairs.

    The ABI's conventions only, each field converted as ServerOptions' table says (``CField``): 0/NULL fields are
    left out so ServerOptions' own defaults apply (an "enum" field's converter says what its 0 means); fields past
    struct_size count as 0; a negative ``*_ms`` may mean something of its own (ping interval: no heartbeat; C has no
    None). Range checks are ServerOptions.validate's.
    """
    null = ffi.NULL
    size = 0 if opts == null else int(opts.struct_size)
    if opts != null and size < 8:
        raise AbiError(INVALID_ARGUMENT, f"SnowWsOptions.struct_size is {size}: set it to sizeof(SnowWsOptions)")
    v = {name: (getattr(opts, name) if end <= size else (null if ptr else 0)) for name, end, ptr in fields}
    kwargs: dict[str, Any] = {}
    for spec, c in c_fields():
        value = v[c.name]
        if c.kind == "enum" or (value != null if isinstance(value, ffi.CData) else value != 0):
            converted = _option_value(ffi, c.name, c.kind, c.negative, value)
            if converted is not None or c.kind != "enum":
                kwargs[spec.name] = converted
    binary = (v["on_binary_fn"], v["on_binary_env"])
    return ServerOptions(**kwargs), binary, (v["on_presence_fn"], v["on_presence_env"])
