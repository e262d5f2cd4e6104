"""The asyncio WebSocket server: listens, owns the set of connections, shuts down in order.

Shutdown (``close``) is idempotent and ordered: stop accepting; new handshakes get 503; open connections get
close 1001 "server shutting down" (on_close reports 1001); wait up to ``timeout`` for them to finish the close
handshake; abort whatever remains; stop the scheduler's workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from snow_rt_py.runtime.allocator import release_free_memory, tune_for_large_messages
from snow_rt_py.runtime.compression import CompressorPool, ConnectionDeflate, negotiate_for
from snow_rt_py.runtime.connection import SERVER_SHUTDOWN, Connection, Phase
from snow_rt_py.runtime.errors import ConnectionClosedError, ServerStartError
from snow_rt_py.runtime.handler import Handler
from snow_rt_py.runtime.heartbeat import HeartbeatWheel
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.scheduler import Scheduler
from snow_rt_py.runtime.tls import server_context

if TYPE_CHECKING:
    from snow_rt_py.runtime.runtime import Runtime

log = logging.getLogger("snow_rt_py.server")

TRIM_AFTER_ENDED = 256
"""Once this many connections have ended since the last time, the heap's free memory goes back to the kernel (a
second later, once): what a flood of connections held does not stay with the process (runtime/allocator.py)."""
TRIM_DELAY = 1.0


class Server:
    """A WebSocket server bound to one address, running on the current event loop.

    Create it with :meth:`start` from a coroutine running on the loop that will own the sockets.

    Attributes:
        runtime: the :class:`~snow_rt_py.runtime.runtime.Runtime` that owns its actors, rooms and connection ids.
        on_text_bytes: the handler's ``on_text_bytes(conn, data)`` if it has one (the C ABI's handler): it then gets
            text messages as their UTF-8 bytes instead of ``on_message(conn, str)``.
    """

    def __init__(
        self, handler: Handler, options: ServerOptions, loop: asyncio.AbstractEventLoop, runtime: Runtime
    ) -> None:
        options.validate()
        self.handler = handler
        self.options = options
        self.loop = loop
        self.runtime = runtime
        self.on_text_bytes: Callable[[Connection, bytes], None] | None = getattr(handler, "on_text_bytes", None)
        self.loop_thread_id = threading.get_ident()
        self.scheduler = Scheduler(
            loop, runtime.actors, options.workers, name="snow-ws", loop_thread_id=self.loop_thread_id
        )
        self.closing = False
        self.heartbeat = (
            HeartbeatWheel(loop, options.ping_interval, options.pong_timeout) if options.ping_interval else None
        )
        self._server: asyncio.base_events.Server | None = None
        self._sockets: set[Connection] = set()  # every TCP connection, handshake included
        self._accepted: dict[int, Connection] = {}
        self._dirty: deque[Connection] = deque()  # connections with frames to flush this loop iteration
        self._flush_scheduled = False
        self._ended_since_trim = 0
        self._trim_timer: asyncio.TimerHandle | None = None
        self._all_gone = asyncio.Event()
        self._all_gone.set()
        self._closed = asyncio.Event()
        self.compression = runtime.component("compression", CompressorPool)  # shared by the runtime's servers
        self._deflate_counts = {"shared": 0, "dedicated": 0, "fallbacks": 0}

    @classmethod
    async def start(cls, handler: Handler, options: ServerOptions, runtime: Runtime | None = None) -> Server:
        """Bind and start accepting.

        Args:
            handler: the callbacks.
            options: how to listen.
            runtime: the owner of its actors and rooms; None = the default runtime (the Python API's and C's).

        Raises:
            ServerStartError: the address is in use or cannot be bound, or the TLS files are unusable.
            ValueError: an option is out of range.
        """
        if runtime is None:
            from snow_rt_py.runtime.runtime import default_runtime

            runtime = default_runtime()
        self = cls(handler, options, asyncio.get_running_loop(), runtime)
        if options.tune_malloc:
            tune_for_large_messages()
        ssl_ctx = None
        if options.tls_cert is not None and options.tls_key is not None:
            ssl_ctx = server_context(options.tls_cert, options.tls_key)
        try:
            self._server = await self.loop.create_server(
                lambda: Connection(self),
                options.host,
                options.port,
                ssl=ssl_ctx,
                ssl_handshake_timeout=options.handshake_timeout if ssl_ctx is not None else None,
                backlog=options.backlog,
                reuse_address=True,
                reuse_port=options.reuse_port or None,
            )
        except OSError as exc:
            self.scheduler.close()
            what = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ServerStartError(f"cannot listen on {options.host}:{options.port}: {what}") from None
        return self

    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``port=0``)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def scheme(self) -> str:
        """``"wss"`` with TLS, else ``"ws"``."""
        return "wss" if self.options.tls_cert is not None else "ws"

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/`` (or wss://)."""
        host = self.options.host
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}/"

    def connections(self) -> list[Connection]:
        """The accepted connections still open or closing."""
        return list(self._accepted.values())

    # -- write batching -------------------------------------------------------------------------------------

    def schedule_flush(self, conn: Connection) -> None:
        """Flush ``conn`` at the end of this loop iteration (loop thread). One callback serves every connection
        written to in the iteration, so a broadcast to 10,000 members costs one scheduled callback."""
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_dirty)

    def schedule_flush_threadsafe(self, conn: Connection) -> None:
        """Like :meth:`schedule_flush`, from any other thread."""
        self._dirty.append(conn)  # first: a flush that is already running will pick it up
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon_threadsafe(self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush_scheduled = False  # first: a connection marked from now on schedules another run
        dirty = self._dirty
        while dirty:
            dirty.popleft()._flush()

    # -- compression ---------------------------------------------------------------------------------------

    def negotiate_deflate(self, offers: list[str]) -> ConnectionDeflate | None:
        """permessage-deflate for a connection whose handshake offered ``offers`` (loop thread)."""
        deflate, fell_back = negotiate_for(self.options, self.compression, offers)
        if deflate is not None:
            self._deflate_counts[deflate.mode] += 1
        if fell_back:
            self._deflate_counts["fallbacks"] += 1
        return deflate

    def compression_statistics(self) -> dict[str, int]:
        """permessage-deflate counters.

        Returns:
            ``shared`` and ``dedicated``: connections accepted with compression in that mode, since the start;
            ``fallbacks``: of the shared ones, those that asked for dedicated mode when the budget was spent;
            ``reserved_bytes`` and ``dedicated_now``: the dedicated state reserved now, and by how many connections,
            across every server of the runtime; ``pool_idle``: compressors idle in the runtime's pool.
        """
        return {
            **self._deflate_counts,
            "reserved_bytes": self.compression.reserved,
            "dedicated_now": self.compression.dedicated,
            "pool_idle": self.compression.idle_compressors(),
        }

    # -- called by Connection (loop thread) -----------------------------------------------------------------

    def connection_started(self, conn: Connection) -> None:
        """A TCP (or TLS) connection was accepted."""
        self._sockets.add(conn)
        self._all_gone.clear()

    def connection_accepted(self, conn: Connection) -> None:
        """The WebSocket handshake succeeded."""
        self._accepted[conn.id] = conn

    def connection_ended(self, conn: Connection) -> None:
        """The TCP connection is gone."""
        self._sockets.discard(conn)
        self._accepted.pop(conn.id, None)
        if not self._sockets:
            self._all_gone.set()
        self._ended_since_trim += 1
        if self._ended_since_trim >= TRIM_AFTER_ENDED and self._trim_timer is None:
            self._trim_timer = self.loop.call_later(TRIM_DELAY, self._release_memory)

    def _release_memory(self) -> None:
        self._trim_timer = None
        self._ended_since_trim = 0
        release_free_memory()

    # -- shutdown ----------------------------------------------------------------------------------------

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection with 1001, wait up to ``timeout`` s, then force. Idempotent."""
        if self.closing:
            await self._closed.wait()
            return
        self.closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._sockets):
            if conn.phase is Phase.OPEN:
                with contextlib.suppress(ConnectionClosedError):  # it started closing meanwhile
                    conn.close(*SERVER_SHUTDOWN)
            elif conn.phase is Phase.CONNECTING:
                conn.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_gone.wait(), timeout)
        if self._sockets:
            log.warning("%d connections did not close within %.1fs; aborting them", len(self._sockets), timeout)
            for conn in list(self._sockets):
                conn.abort()
            await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()
        # Let the actors see their DISCONNECT (on_close) before the workers stop.
        await asyncio.get_running_loop().run_in_executor(None, self._drain_scheduler, timeout)
        if self.heartbeat is not None:
            self.heartbeat.close()
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None
        self._closed.set()

    def _drain_scheduler(self, timeout: float) -> None:
        self.scheduler.close()
        self.scheduler.join(timeout)
