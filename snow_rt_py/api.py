"""The Python API: start a server from code (non-blocking) or serve until a signal (blocking).

Example::

    import snow_rt_py

    def on_message(conn, message):
        conn.send(message)

    server = snow_rt_py.start(on_message=on_message, port=0)
    print(server.url)        # ws://127.0.0.1:PORT/
    ...
    server.stop()
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import Any

from snow_rt_py.runtime.backplane.base import Position
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.handler import Handler, make_handler
from snow_rt_py.runtime.history import PendingPosition, room_config
from snow_rt_py.runtime.history_rooms import HistoryPage, Recovery
from snow_rt_py.runtime.loop import new_event_loop
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.presence import Member
from snow_rt_py.runtime.runtime import RunningServer, Runtime, default_runtime
from snow_rt_py.runtime.server import Server


def spawn(fn: Callable[[Any], None]) -> int:
    """Start an actor that calls ``fn(message)`` for each message sent to it, one at a time, on a worker thread.

    Messages come from :func:`send`; an :class:`ExitSignal` arrives when a linked actor (e.g. a connection
    actor) exits. If ``fn`` raises, the error is logged and the actor goes on with its next message.

    Returns:
        The actor's pid (never reused).
    """
    return default_runtime().spawn(fn)


def send(pid: int, message: object) -> bool:
    """Send ``message`` to actor ``pid`` (a connection's on_info, or a spawned actor's function). Any thread.

    Returns:
        True if delivered to a live actor's mailbox, False if no such actor is alive.
    """
    return default_runtime().send(pid, message)


def link(pid_a: int, pid_b: int) -> None:
    """Link two actors: when either exits, the other receives an :class:`ExitSignal`.

    Raises:
        LookupError: if either actor is not alive (linking to a dead actor would lose the signal).
    """
    default_runtime().link(pid_a, pid_b)


def exit_actor(pid: int, reason: object = "normal") -> bool:
    """End actor ``pid``: drop its pending messages and signal every linked actor. Idempotent.

    Returns:
        True if the actor was alive.
    """
    return default_runtime().exit(pid, reason)


def _handler(handler: Handler | None, callbacks: dict[str, Callable[..., Any] | None]) -> Handler:
    if handler is not None:
        if any(cb is not None for cb in callbacks.values()):
            raise ValueError("pass either a Handler or callback functions, not both")
        return handler
    return make_handler(**callbacks)


def start(
    handler: Handler | None = None,
    *,
    on_connect: Callable[..., Any] | None = None,
    on_message: Callable[..., Any] | None = None,
    on_close: Callable[..., Any] | None = None,
    on_info: Callable[..., Any] | None = None,
    on_upgrade: Callable[..., Any] | None = None,
    options: ServerOptions | None = None,
    runtime: Runtime | None = None,
    **option_fields: Any,
) -> RunningServer:
    """Start a server on the runtime's loop thread and return at once.

    Args:
        handler: a :class:`Handler`; or give the callbacks as functions instead.
        on_connect, on_message, on_close, on_info, on_upgrade: callbacks (see :class:`Handler`).
        options: a :class:`ServerOptions`; or give its fields as keyword arguments (``port=0``, ``host=...``).
        runtime: the :class:`Runtime` to run in; None = the default one (shared with the C ABI).

    Returns:
        A :class:`RunningServer` with ``port``, ``url`` and ``stop()``.

    Raises:
        ServerStartError: bind or TLS failure (message says which address or file).
        ValueError: an invalid option.
    """
    h = _handler(
        handler,
        {
            "on_connect": on_connect,
            "on_message": on_message,
            "on_close": on_close,
            "on_info": on_info,
            "on_upgrade": on_upgrade,
        },
    )
    if options is not None and option_fields:
        raise ValueError("pass either options= or option keywords, not both")
    opts = options if options is not None else ServerOptions(**option_fields)
    return (runtime or default_runtime()).start(h, opts)


def serve(
    handler: Handler,
    options: ServerOptions,
    *,
    ready: Callable[[Server], None] | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Run a server on a new event loop in the calling thread until SIGINT/SIGTERM (main thread only) or
    ``stop_event`` is set; then drain it (stop accepting, close every connection with 1001 "going away" spread
    over ``drain_window``, wait up to ``drain_timeout``, abort the rest: ``Server.drain``) and return. Its actors
    and rooms are the default runtime's.

    Args:
        handler: the callbacks.
        options: how to listen.
        ready: called once listening, with the server (e.g. to print its URL).
        stop_event: set it from another thread to make ``serve`` return.

    Raises:
        ServerStartError: bind or TLS failure.
    """
    loop = new_event_loop()
    try:
        loop.run_until_complete(_serve(handler, options, ready, stop_event))
    finally:
        loop.close()


async def _serve(
    handler: Handler,
    options: ServerOptions,
    ready: Callable[[Server], None] | None,
    stop_event: threading.Event | None,
) -> None:
    loop = asyncio.get_running_loop()
    server = await Server.start(handler, options, default_runtime())
    stop = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if stop_event is not None:
        threading.Thread(
            target=lambda: (stop_event.wait(), loop.call_soon_threadsafe(stop.set)),
            name="snow-stop-watch",
            daemon=True,
        ).start()
    if ready is not None:
        ready(server)
    try:
        await stop.wait()
    finally:
        await server.drain()


# -- rooms (see snow_rt_py/runtime/rooms.py for the rules): a connection's rooms are its runtime's ---------------


def join(conn: Connection, room: str, meta: str | None = None) -> None:
    """Add ``conn`` to ``room``; idempotent. ``meta``: a short string (at most 256 UTF-8 bytes, e.g. a user name)
    shown in :func:`presence`. Raises ConnectionClosedError if the connection ended."""
    conn.runtime.rooms.join(conn, room, meta)


def leave(conn: Connection, room: str) -> None:
    """Remove ``conn`` from ``room``; idempotent. Raises ConnectionClosedError if the connection ended."""
    conn.runtime.rooms.leave(conn, room)


def broadcast(room: str, message: str | bytes, runtime: Runtime | None = None) -> int:
    """Send ``message`` (text for str, binary for bytes) to every member of ``room``, encoded once.

    Args:
        room: the room's name.
        message: the message.
        runtime: whose room; None = the default runtime's.

    Returns:
        The number of members it could not be queued for (closing, ended, or over their queue bound); 0 for an
        empty or unknown room. Never waits for a socket.
    """
    return (runtime or default_runtime()).rooms.broadcast(room, message)


def broadcast_except(
    room: str, message: str | bytes, conn: Connection | int | None, runtime: Runtime | None = None
) -> int:
    """:func:`broadcast` to every member but ``conn`` (None excludes nobody). ``conn`` may also be a connection
    id, e.g. a :class:`Member`'s id from :func:`presence`: in a cluster it excludes that connection wherever it is.
    The room is ``conn``'s runtime's unless ``runtime`` is given."""
    if runtime is None:
        runtime = conn.runtime if isinstance(conn, Connection) else default_runtime()
    return runtime.rooms.broadcast(room, message, conn)


def rooms_of(conn: Connection) -> list[str]:
    """The rooms ``conn`` is in, sorted."""
    return conn.runtime.rooms.rooms_of(conn)


def member_count(room: str, runtime: Runtime | None = None) -> int:
    """The number of members of ``room`` on this node (0 if it does not exist); :func:`presence_count` counts
    the whole cluster."""
    return (runtime or default_runtime()).rooms.member_count(room)


def presence(room: str, runtime: Runtime | None = None) -> list[Member]:
    """The members of ``room`` (id, node, meta), sorted by id: cluster-wide with ``cluster_url``, else this
    process's. See RoomRegistry.presence for how fresh remote members are."""
    return (runtime or default_runtime()).rooms.presence(room)


def presence_count(room: str, runtime: Runtime | None = None) -> int:
    """The number of members of ``room``, cluster-wide with ``cluster_url``."""
    return (runtime or default_runtime()).rooms.presence_count(room)


def cluster_statistics(runtime: Runtime | None = None) -> dict[str, int]:
    """The backplane's counters (published, publish_dropped, publish_overflow, received, remote_deliveries,
    remote_delivery_failures, outages, presence_resyncs) and state (node, connected, publish_queue,
    subscriptions); ``{}`` when not in a cluster."""
    backplane = (runtime or default_runtime()).cluster
    return backplane.statistics() if backplane is not None else {}


def room_names(runtime: Runtime | None = None) -> list[str]:
    """Every room that has members, sorted."""
    return (runtime or default_runtime()).rooms.room_names()


# -- rooms that remember (see snow_rt_py/runtime/history_rooms.py for the rules) ----------------------------------


def configure_room(
    room: str,
    *,
    history_size: int = 0,
    history_ttl: float = 0.0,
    policy: str = "default",
    runtime: Runtime | None = None,
) -> None:
    """Set a room's options; a room never configured has the defaults (no history, the ``default`` policy).

    Configure a room before its first broadcast, and the same way on every node of a cluster. Changing the history
    bounds of a room in one process starts its history again (a new epoch).

    Args:
        room: the room's name.
        history_size: keep the last this many messages (0: no history; at most 1,000,000). Each broadcast then
            gets a position and reaches the members inside the envelope (README: "Rooms that remember").
        history_ttl: keep them at most this many seconds (0: no age bound; at most 30 days).
        policy: for members whose queue is full: ``default`` (each connection's ``slow_consumer``),
            ``drop_oldest`` or ``latest_per_key`` (runtime/room_delivery.py).
        runtime: whose room; None = the default runtime's.

    Raises:
        InvalidArgumentError: a bound negative, too large or not a number; an unknown policy; room not a str.
    """
    config = room_config(history_size, history_ttl, policy)
    (runtime or default_runtime()).rooms.configure(room, config)


def publish(
    room: str,
    message: str | bytes,
    *,
    key: str | None = None,
    except_conn: Connection | int | None = None,
    runtime: Runtime | None = None,
) -> PendingPosition[Position] | None:
    """:func:`broadcast`, returning the broadcast's position in the room's history.

    Args:
        room: the room's name.
        message: text (str) or binary (bytes).
        key: for a ``latest_per_key`` room: a pending message with the same key is replaced by this one.
        except_conn: a member (or connection id) not to send it to.
        runtime: whose room; None = the default runtime's (or ``except_conn``'s).

    Returns:
        None for a room without history; else a future of its :class:`Position`: done at once in one process, done
        once Redis has ordered it on a cluster (``.result(timeout)`` waits: not from the event loop thread).

    Raises:
        InvalidArgumentError: a bad message or room; a key for a room whose policy is not latest_per_key.
    """
    if runtime is None:
        runtime = except_conn.runtime if isinstance(except_conn, Connection) else default_runtime()
    return runtime.rooms.publish(room, message, except_conn, key)[1]


def join_from(conn: Connection, room: str, epoch: str, offset: int, meta: str | None = None) -> Recovery:
    """Join ``room`` from the position ``(epoch, offset)`` a client last saw, and queue what it missed.

    If the epoch is the room's and its history still holds every message after ``offset``, they are queued in order,
    then the live ones, with no gap and no duplicate (``Recovery.recovered`` True); otherwise ``conn`` is joined
    from now on and ``recovered`` is False: unrecoverable, the program reloads its state from its own store.
    On a cluster this waits for Redis: not from the event loop thread (RuntimeError).

    Raises:
        InvalidArgumentError: the room keeps no history; a malformed epoch; a negative offset, or one in the
            future (past the room's last); nothing changed.
        ConnectionClosedError: the connection ended.
    """
    return conn.runtime.rooms.history.join_from(conn, room, epoch, offset, meta)


def history(room: str, since: int = 0, limit: int = 100, runtime: Runtime | None = None) -> HistoryPage:
    """The messages of ``room``'s history after offset ``since``, at most ``limit`` (up to 100,000), oldest first,
    with the room's current position. On a cluster this waits for Redis (not from the event loop thread).

    Raises:
        InvalidArgumentError: the room keeps no history; ``since`` negative or in the future; a bad limit.
    """
    return (runtime or default_runtime()).rooms.history.history(room, since, limit)


def room_position(room: str, runtime: Runtime | None = None) -> Position:
    """``room``'s current position (offset 0 before its first broadcast). On a cluster this waits for Redis.

    Raises:
        InvalidArgumentError: the room keeps no history.
    """
    return (runtime or default_runtime()).rooms.history.position(room)


def room_statistics(runtime: Runtime | None = None) -> dict[str, int]:
    """The configured rooms' counters: ``policy_drops``, ``policy_replacements`` (runtime/room_delivery.py),
    ``recoveries``, ``unrecoverable`` (join_from outcomes) and ``policy_pending_bytes`` (held now)."""
    return (runtime or default_runtime()).rooms.history.statistics()
