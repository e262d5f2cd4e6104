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
from types import TracebackType
from typing import Any

from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.handler import Handler, make_handler
from snow_rt_py.runtime.loop import new_event_loop, shared_loop
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.rooms import registry
from snow_rt_py.runtime.scheduler import Scheduler, Tag
from snow_rt_py.runtime.server import Server

_actors: Scheduler | None = None
_actors_lock = threading.Lock()
ACTOR_WORKERS = 2  # threads running actors spawned with spawn() (connection actors use their server's)


def spawn(fn: Callable[[Any], None]) -> int:
    """Start an actor that calls ``fn(message)`` for each message sent to it, one at a time, on a worker thread.

    Messages come from :func:`send`; an :class:`ExitSignal` arrives when a linked actor (e.g. a connection
    actor) exits. If ``fn`` raises, the error is logged and the actor goes on with its next message.

    Returns:
        The actor's pid (never reused).
    """
    global _actors
    with _actors_lock:
        if _actors is None:
            _actors = Scheduler(shared_loop().loop, ACTOR_WORKERS, name="snow-actor")
        sched = _actors

    def behaviour(tag: Tag, payload: Any) -> None:
        fn(payload)

    return sched.spawn(behaviour).pid


def _handler(handler: Handler | None, callbacks: dict[str, Callable[..., Any] | None]) -> Handler:
    if handler is not None:
        if any(cb is not None for cb in callbacks.values()):
            raise ValueError("pass either a Handler or callback functions, not both")
        return handler
    return make_handler(**callbacks)


class RunningServer:
    """A server running on the runtime's loop thread. Returned by :func:`start`.

    Attributes:
        server: the underlying :class:`~snow_rt_py.runtime.server.Server` (its methods run on the loop thread).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self._loop_thread = shared_loop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self.server.port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/`` or ``wss://HOST:PORT/``."""
        return self.server.url

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful stop: 1001 to every connection, wait up to ``timeout`` s, then force. Idempotent."""
        self._loop_thread.run(self.server.close(timeout))

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def start(
    handler: Handler | None = None,
    *,
    on_connect: Callable[..., Any] | None = None,
    on_message: Callable[..., Any] | None = None,
    on_close: Callable[..., Any] | None = None,
    on_info: Callable[..., Any] | None = None,
    on_upgrade: Callable[..., Any] | None = None,
    options: ServerOptions | None = None,
    **option_fields: Any,
) -> RunningServer:
    """Start a server on the runtime's loop thread and return at once.

    Args:
        handler: a :class:`Handler`; or give the callbacks as functions instead.
        on_connect, on_message, on_close, on_info, on_upgrade: callbacks (see :class:`Handler`).
        options: a :class:`ServerOptions`; or give its fields as keyword arguments (``port=0``, ``host=...``).

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
    opts = options if options is not None else ServerOptions(**option_fields)
    if options is not None and option_fields:
        raise ValueError("pass either options= or option keywords, not both")
    opts.validate()
    server = shared_loop().run(Server.start(h, opts))
    return RunningServer(server)


def serve(
    handler: Handler,
    options: ServerOptions,
    *,
    ready: Callable[[Server], None] | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Run a server on a new event loop in the calling thread until SIGINT/SIGTERM (main thread only) or
    ``stop_event`` is set; then close every connection with 1001 and return.

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
    server = await Server.start(handler, options)
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
        await server.close()


# -- rooms (see snow_rt_py/runtime/rooms.py for the rules) ----------------------------------------------------


def join(conn: Connection, room: str) -> None:
    """Add ``conn`` to ``room``; idempotent. Raises ConnectionClosedError if the connection ended."""
    registry.join(conn, room)


def leave(conn: Connection, room: str) -> None:
    """Remove ``conn`` from ``room``; idempotent. Raises ConnectionClosedError if the connection ended."""
    registry.leave(conn, room)


def broadcast(room: str, message: str | bytes) -> int:
    """Send ``message`` (text for str, binary for bytes) to every member of ``room``, encoded once.

    Returns:
        The number of members it could not be queued for (closing, ended, or over their queue bound); 0 for an
        empty or unknown room. Never waits for a socket.
    """
    return registry.broadcast(room, message)


def broadcast_except(room: str, message: str | bytes, conn: Connection | None) -> int:
    """:func:`broadcast` to every member but ``conn`` (None excludes nobody)."""
    return registry.broadcast(room, message, conn)


def rooms_of(conn: Connection) -> list[str]:
    """The rooms ``conn`` is in, sorted."""
    return registry.rooms_of(conn)


def member_count(room: str) -> int:
    """The number of members of ``room`` (0 if it does not exist)."""
    return registry.member_count(room)


def room_names() -> list[str]:
    """Every room that has members, sorted."""
    return registry.room_names()
