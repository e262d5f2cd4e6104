"""The client's part of libsnow_ws.so: the ``extern "Python"`` functions behind snow_ws_connect and the
snow_ws_client_* functions (their C wrappers are snow_rt_py/abi/snow_ws_client.c).

Each one maps a C call onto the Python API (:func:`snow_rt_py.connect` and its ``Client``) and nothing more: the
callbacks are a :class:`~snow_rt_py.abi.callbacks.CHandler`, exactly as for a server, so a client connection's
handle is an ordinary connection handle; ``SnowWsClientOptions`` becomes a ``ClientOptions`` under the same
conventions as ``SnowWsOptions`` (0 or NULL = the default, fields past struct_size count as 0); a failure to connect
(``ConnectError``) becomes SNOW_WS_E_CONNECT with its reason, a wait that ran out SNOW_WS_E_TIMEOUT.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import snow_rt_py
from snow_rt_py import ClientOptions, ConnectError
from snow_rt_py.abi import handles
from snow_rt_py.abi.callbacks import CHandler
from snow_rt_py.abi.errors import CONNECT, INTERNAL, INVALID_ARGUMENT, TIMEOUT, AbiError
from snow_rt_py.abi.exports import export  # exports.install imports this module: exports is loaded by then
from snow_rt_py.runtime.runtime import default_runtime

Fail = Callable[[BaseException], int]

COMPRESSION_MODES = {
    "SNOW_WS_COMPRESSION_SHARED": "shared",
    "SNOW_WS_COMPRESSION_DEDICATED": "dedicated",
    "SNOW_WS_COMPRESSION_OFF": "off",
}
"""The header's SnowWsCompression constants -> ClientOptions.compression (0: ClientOptions' default)."""

SLOW_CONSUMER_POLICIES = {"SNOW_WS_SLOW_CONSUMER_CLOSE": "close", "SNOW_WS_SLOW_CONSUMER_DROP": "drop"}
"""The header's SnowWsSlowConsumer constants -> ClientOptions.slow_consumer (0: ClientOptions' default)."""

# SnowWsClientOptions fields in milliseconds -> ClientOptions fields in seconds (0 = the default).
_SECONDS = {
    "open_timeout_ms": "open_timeout",
    "close_timeout_ms": "close_timeout",
    "ping_interval_ms": "ping_interval",
    "pong_timeout_ms": "pong_timeout",
    "reconnect_delay_ms": "reconnect_delay",
    "reconnect_max_delay_ms": "reconnect_max_delay",
}
_STRINGS = ("origin", "server_hostname", "proxy")
_INTEGERS = ("max_message_size", "max_queue_bytes", "workers")


def install(ffi: Any, lib: Any, fail: Fail) -> None:
    """Attach the client's ``extern "Python"`` functions (``fail`` turns an exception into -1 and the last error)."""
    fields = _option_fields(ffi)

    @export(ffi, "snow_abi_py_connect", -1)
    def connect(
        opts: Any,
        url: Any,
        on_connect_fn: Any,
        on_connect_env: Any,
        on_message_fn: Any,
        on_message_env: Any,
        on_close_fn: Any,
        on_close_env: Any,
    ) -> int:
        try:
            options, binary, presence = _options(ffi, opts, fields)
            callbacks = {
                "connect": (on_connect_fn, on_connect_env),
                "message": (on_message_fn, on_message_env),
                "close": (on_close_fn, on_close_env),
                "binary": binary,
                "presence": presence,
            }
            target = ffi.string(url).decode("utf-8")
            return handles.register_client(
                snow_rt_py.connect(target, CHandler(ffi, lib, callbacks, fast_replies=False), options=options)
            )
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_client_wait_open", -1)
    def client_wait_open(client: int, timeout_ms: int) -> int:
        try:
            found = handles.client(client)
            on_loop = _on_loop_thread()
            try:
                found.wait_open(0.0 if on_loop else timeout_ms / 1000)
            except ConnectError as exc:
                raise AbiError(CONNECT, exc.reason) from None
            except TimeoutError:
                if on_loop and timeout_ms > 0:
                    raise _loop_thread_error("snow_ws_client_wait_open") from None
                raise AbiError(TIMEOUT, f"client {client} is not open after {timeout_ms} ms") from None
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_client_close", -1)
    def client_close(client: int, code: int, reason: Any, reason_len: int) -> int:
        try:
            handles.client(client).close(code, ffi.unpack(reason, reason_len).decode("utf-8"))
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_client_wait_closed", -1)
    def client_wait_closed(client: int, timeout_ms: int) -> int:
        try:
            found = handles.client(client)
            on_loop = _on_loop_thread()
            try:
                found.wait_closed(0.0 if on_loop else timeout_ms / 1000)
            except TimeoutError:
                if on_loop and timeout_ms > 0:
                    raise _loop_thread_error("snow_ws_client_wait_closed") from None
                raise AbiError(TIMEOUT, f"client {client} has not ended after {timeout_ms} ms") from None
            handles.drop_client(client)
            return 0
        except BaseException as exc:
            return fail(exc)


def _on_loop_thread() -> bool:
    """True on the event-loop thread, where waiting for the loop would wait forever."""
    return threading.current_thread() is default_runtime().loop_thread.thread


def _loop_thread_error(func: str) -> AbiError:
    return AbiError(
        INTERNAL,
        f"{func}: this call waits for the event loop and cannot be made from the loop thread (a callback with "
        "workers=0); call it from another thread or connect with workers >= 1",
    )


def _option_fields(ffi: Any) -> list[tuple[str, int, bool]]:
    """``(name, end offset, is_pointer)`` of each SnowWsClientOptions field, for the struct_size rule."""
    fields = ffi.typeof("SnowWsClientOptions").fields
    return [(name, field.offset + ffi.sizeof(field.type), field.type.kind == "pointer") for name, field in fields]


def _named(ffi: Any, enum: str, names: dict[str, str], field: str, value: int) -> str:
    """The ClientOptions value named by a nonzero SnowWsClientOptions enum field.

    Raises:
        AbiError: not one of the header's constants for that field.
    """
    constants: dict[str, int] = ffi.typeof(enum).relements
    for name, mode in names.items():
        if constants[name] == value:
            return mode
    choices = ", ".join(f"{name} ({constants[name]})" for name in names)
    raise AbiError(INVALID_ARGUMENT, f"SnowWsClientOptions.{field} is {value}: use 0 (default), {choices}")


def _string(ffi: Any, value: Any) -> str:
    return str(ffi.string(value).decode("utf-8"))


def _headers(text: str) -> tuple[tuple[str, str], ...]:
    """``"Name: value"`` lines (``\\n`` or ``\\r\\n`` between them) as ``(name, value)`` pairs.

    Raises:
        AbiError: a line without ':'.
    """
    pairs = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise AbiError(INVALID_ARGUMENT, f"SnowWsClientOptions.headers: {line!r} is not a 'Name: value' line")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def _options(ffi: Any, opts: Any, fields: list[tuple[str, int, bool]]) -> tuple[Any, tuple[Any, Any], tuple[Any, Any]]:
    """ClientOptions from a ``SnowWsClientOptions *`` (NULL = defaults), and the on_binary and on_presence
    ``(fn, env)`` pairs.

    The ABI's conventions only: 0/NULL fields are left out so ClientOptions' own defaults apply; fields past
    struct_size count as 0. Range checks are ClientOptions.validate's (snow_rt_py.connect runs it).
    """
    null = ffi.NULL
    if opts == null:
        return ClientOptions(), (null, null), (null, null)
    size = int(opts.struct_size)
    if size < 8:
        raise AbiError(
            INVALID_ARGUMENT, f"SnowWsClientOptions.struct_size is {size}: set it to sizeof(SnowWsClientOptions)"
        )
    v = {name: (getattr(opts, name) if end <= size else (null if ptr else 0)) for name, end, ptr in fields}
    kwargs: dict[str, Any] = {}
    for field, option in _SECONDS.items():
        if v[field]:
            kwargs[option] = v[field] / 1000
    for name in _INTEGERS:
        if v[name]:
            kwargs[name] = int(v[name])
    for name in _STRINGS:
        if v[name] != null:
            kwargs[name] = _string(ffi, v[name])
    if v["slow_consumer"]:
        kwargs["slow_consumer"] = _named(
            ffi, "SnowWsSlowConsumer", SLOW_CONSUMER_POLICIES, "slow_consumer", int(v["slow_consumer"])
        )
    if v["compression"]:
        kwargs["compression"] = _named(
            ffi, "SnowWsCompression", COMPRESSION_MODES, "compression", int(v["compression"])
        )
    if v["subprotocols"] != null:
        kwargs["subprotocols"] = tuple(p.strip() for p in _string(ffi, v["subprotocols"]).split(",") if p.strip())
    if v["headers"] != null:
        kwargs["headers"] = _headers(_string(ffi, v["headers"]))
    if v["tls_no_verify"]:
        kwargs["verify"] = False
    if v["ca_file"] != null:
        kwargs["ca_file"] = os.fsdecode(ffi.string(v["ca_file"]))
    if v["max_redirects"] < 0:
        kwargs["max_redirects"] = 0
    elif v["max_redirects"] > 0:
        kwargs["max_redirects"] = int(v["max_redirects"])
    if v["reconnect"]:
        kwargs["reconnect"] = True
    if v["reconnect_factor"]:
        kwargs["reconnect_factor"] = float(v["reconnect_factor"])
    return ClientOptions(**kwargs), (v["on_binary_fn"], v["on_binary_env"]), (v["on_presence_fn"], v["on_presence_env"])
