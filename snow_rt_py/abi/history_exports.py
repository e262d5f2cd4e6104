"""The ``extern "Python"`` functions of the C ABI's "Rooms that remember" section (abi/snow_ws_history.c): each
maps one C call onto the Python API (snow_rt_py/api.py: configure_room, publish, room_position, join_from,
room_statistics; the heartbeat's RTT) and nothing more. Installed by :func:`snow_rt_py.abi.exports.install`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from snow_rt_py import api
from snow_rt_py.abi import handles
from snow_rt_py.runtime.backplane.base import Position
from snow_rt_py.runtime.errors import InvalidArgumentError
from snow_rt_py.runtime.history import POLICIES
from snow_rt_py.runtime.runtime import default_runtime

WAIT_TIMEOUT = 10.0
"""Seconds snow_room_publish waits for Redis' position off the event loop thread."""


def install(ffi: Any, lib: Any, fail: Callable[[BaseException], int], text: Callable[[Any, int], str]) -> None:
    """Attach the section's functions (``fail`` and ``text``: exports.install's helpers)."""
    from snow_rt_py.abi.exports import export

    def fill(out: Any, position: Position) -> None:
        out.offset = position.offset
        raw = position.epoch.encode("ascii")[:32]
        ffi.memmove(out.epoch, raw + b"\0", len(raw) + 1)

    @export(ffi, "snow_abi_py_room_configure", -1)
    def room_configure(room: Any, room_len: int, size: int, ttl_ms: int, policy: int) -> int:
        try:
            if not 0 <= policy < len(POLICIES):
                raise InvalidArgumentError(f"policy must be 0, 1 or 2 (SnowWsRoomPolicy), got {policy}")
            api.configure_room(
                text(room, room_len), history_size=size, history_ttl=ttl_ms / 1000, policy=POLICIES[policy]
            )
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_room_publish", -1)
    def room_publish(
        room: Any,
        room_len: int,
        msg: Any,
        msg_len: int,
        has_except: int,
        except_conn: int,
        key: Any,
        key_len: int,
        has_key: int,
        out: Any,
    ) -> int:
        try:
            name = text(room, room_len)
            excluded: Any = handles.live_or_ended(except_conn) if has_except else None
            if has_except and excluded is None and handles.is_remote(except_conn):
                excluded = except_conn
            rooms = default_runtime().rooms
            failures, pending = rooms.publish(
                name, text(msg, msg_len), excluded, text(key, key_len) if has_key else None
            )
            if pending is not None and out != ffi.NULL:
                backplane = rooms.backplane
                on_loop = getattr(getattr(backplane, "session", None), "on_loop_thread", lambda: False)()
                if pending.done() or not on_loop:
                    fill(out, pending.result(WAIT_TIMEOUT))
            return failures
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_room_position", -1)
    def room_position(room: Any, room_len: int, out: Any) -> int:
        try:
            fill(out, api.room_position(text(room, room_len)))
            return 0
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_room_join_from", -1)
    def room_join_from(conn: int, room: Any, room_len: int, epoch: Any, offset: int, replayed: Any) -> int:
        try:
            recovery = api.join_from(
                handles.connection(conn), text(room, room_len), ffi.string(epoch).decode("ascii", "replace"), offset
            )
            replayed[0] = recovery.replayed
            return int(recovery.recovered)
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_conn_rtt_us", -1)
    def conn_rtt_us(conn: int) -> int:
        try:
            rtt = handles.connection(conn).statistics()["rtt_us"]
            return -2 if rtt < 0 else rtt
        except BaseException as exc:
            return fail(exc)

    @export(ffi, "snow_abi_py_room_stats", -1)
    def room_stats(out: Any) -> int:
        try:
            size = int(out.struct_size)
            if size < 8:
                raise InvalidArgumentError("snow_room_stats: out->struct_size is under 8")
            stats = api.room_statistics()
            for name, field in ffi.typeof("SnowWsRoomStats").fields:
                if name != "struct_size" and field.offset + ffi.sizeof(field.type) <= size:
                    setattr(out, name, stats[name])
            return 0
        except BaseException as exc:
            return fail(exc)
