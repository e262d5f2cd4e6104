"""What a client connection has in place of a server: its handler, options, scheduler, heartbeat and counters.

A connection (runtime/connection.py) reads a few things of the server it belongs to: the handler, the options in
the server's form, the scheduler its actor runs on, the heartbeat wheel, the end-of-iteration flush, and counters it
bumps. A :class:`ClientEndpoint` offers exactly those for the connections of one :class:`~snow_rt_py.runtime.client
.Client` (one after the other, with reconnect), so a client connection is the server's Connection class itself, with
only its handshake side and masking changed (runtime/client_connection.py). The schedulers, heartbeat wheels and the
flush of every client of a runtime are shared (:meth:`Runtime.component`): 10,000 clients cost one of each.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from snow_rt_py.runtime.compression import CompressorPool
from snow_rt_py.runtime.connection_base import flush_all as _flush_all
from snow_rt_py.runtime.handler import Handler, handler_wants_presence
from snow_rt_py.runtime.heartbeat import HeartbeatWheel
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.scheduler import Scheduler

if TYPE_CHECKING:
    from snow_rt_py.runtime.client_connection import ClientConnection
    from snow_rt_py.runtime.connection import Connection
    from snow_rt_py.runtime.runtime import Runtime

__all__ = ["ClientEndpoint"]


class _FlushBatch:
    """The end-of-iteration flush of every client connection of a runtime (the server's ``schedule_flush``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._dirty: deque[Connection] = deque()
        self._scheduled = False

    def schedule(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._run)

    def schedule_threadsafe(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        if _flush_all is not None:
            _flush_all(dirty)
            return
        while dirty:
            dirty.popleft()._flush()


class ClientEndpoint:
    """The server-shaped side of one client's connections (see the module).

    Args:
        runtime: the runtime the client belongs to.
        handler: the client's callbacks.
        options: the connection's options in the server's form (``ClientOptions.connection_options()``).
        on_disconnected: called on the actor's thread once a connection's on_close has run (or would have).
    """

    closing = False  # a server refusing new handshakes: never, for a client

    def __init__(
        self,
        runtime: Runtime,
        handler: Handler,
        options: ServerOptions,
        on_disconnected: Callable[[ClientConnection], None],
    ) -> None:
        loop_thread = runtime.loop_thread
        self.runtime = runtime
        self.loop = loop_thread.loop
        self.loop_thread_id = loop_thread.thread.ident or 0
        self.handler = handler
        self.options = options
        self.on_text_bytes: Callable[[Connection, bytes], None] | None = getattr(handler, "on_text_bytes", None)
        self.wants_presence = handler_wants_presence(handler)
        self.scheduler = runtime.component(
            f"client-scheduler-{options.workers}",
            lambda: Scheduler(
                self.loop, runtime.actors, options.workers, name="snow-client", loop_thread_id=self.loop_thread_id
            ),
        )
        self.heartbeat: HeartbeatWheel | None = None
        if options.ping_interval:
            interval, timeout = options.ping_interval, options.pong_timeout
            self.heartbeat = runtime.component(
                f"client-heartbeat-{interval}-{timeout}", lambda: HeartbeatWheel(self.loop, interval, timeout)
            )
        self._flusher = runtime.component("client-flush", lambda: _FlushBatch(self.loop))
        self.compression = runtime.component("compression", CompressorPool)
        self.on_disconnected = on_disconnected
        self.heartbeat_timeouts = 0
        self.handler_crashes = 0
        self.inbound_pauses = 0
        self.slow_consumer_closes = 0
        self.lock = threading.Lock()

    # -- what a Connection calls on its server -------------------------------------------------------------

    def schedule_flush(self, conn: Connection) -> None:
        self._flusher.schedule(conn)

    def schedule_flush_threadsafe(self, conn: Connection) -> None:
        self._flusher.schedule_threadsafe(conn)

    def connection_started(self, conn: Connection) -> None:
        """The TCP (or TLS) connection is up (nothing to count: the client holds its one connection)."""

    def connection_accepted(self, conn: Connection) -> None:
        """The server accepted the handshake (the client's own bookkeeping is in client.py)."""

    def connection_ended(self, conn: Connection) -> None:
        """The TCP connection is gone (on_close follows, on the connection's actor)."""

    def statistics(self) -> dict[str, Any]:
        """The endpoint's counters (summed over the client's connections)."""
        return {
            "heartbeat_timeouts": self.heartbeat_timeouts,
            "handler_crashes": self.handler_crashes,
            "inbound_pauses": self.inbound_pauses,
            "slow_consumer_closes": self.slow_consumer_closes,
        }
