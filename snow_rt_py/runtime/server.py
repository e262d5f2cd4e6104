"""The asyncio WebSocket server: listens, owns the set of connections, shuts down in order.

Shutdown (``close``, and ``drain`` which spreads it) is idempotent and ordered: stop accepting; handshakes still in
progress are dropped (one that completes meanwhile gets 503); open connections get close 1001 (on_close reports
1001) -- all at once for ``close``, in batches spread over ``drain_window`` for ``drain``; wait until ``timeout``
(from the start) for them to finish the close handshake; abort whatever remains; stop the scheduler's workers.

The server also keeps its counters (``statistics``): plain integers bumped on paths already taken (a connection's
own counters are summed when asked and added to the server's totals when it ends: nothing extra per message).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import ssl
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from snow_rt_py.runtime.admission import Admission
from snow_rt_py.runtime.allocator import release_free_memory, tune_for_large_messages
from snow_rt_py.runtime.compression import CompressorPool, ConnectionDeflate, negotiate_for
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.connection_base import ABORTED, SERVER_SHUTDOWN, Phase
from snow_rt_py.runtime.connection_base import flush_all as _flush_all
from snow_rt_py.runtime.errors import ConnectionClosedError, ServerStartError
from snow_rt_py.runtime.handler import Handler, handler_wants_presence
from snow_rt_py.runtime.heartbeat import HeartbeatWheel
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.scheduler import Scheduler
from snow_rt_py.runtime.tls import reload_certificate, server_context

if TYPE_CHECKING:
    from snow_rt_py.runtime.runtime import Runtime

log = logging.getLogger("snow_rt_py.server")
access_log = logging.getLogger("snow_rt_py.access")

GOING_AWAY = (1001, "going away")
"""What :meth:`Server.drain` closes connections with (RFC 6455 §7.4.1: the server is going down)."""
DRAIN_BATCH_INTERVAL = 0.01
"""Seconds between two batches of a drain's closes (at most; fewer connections make fewer batches)."""

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
        self.wants_presence = handler_wants_presence(handler)
        self._in_cluster = False
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
        self.admission = Admission(options)
        # Counters (plain ints, see statistics()). The per-message ones live on each Connection and are added here
        # when it ends.
        self.accepted_total = 0
        self.inbound_pauses = 0
        self.slow_consumer_closes = 0
        self.heartbeat_timeouts = 0
        self.handler_crashes = 0
        self.close_codes: dict[int, int] = {}
        self._ended_messages_in = 0
        self._ended_messages_out = 0
        self._ended_bytes_in = 0
        self._ended_bytes_out = 0
        self._ended_drops = 0
        self.metrics: Any = None  # runtime/metrics.py's ServerMetrics when metrics_path or metrics_port is set
        self.compression = runtime.component("compression", CompressorPool)  # shared by the runtime's servers
        self._ssl_ctx: ssl.SSLContext | None = None
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
        if options.metrics_path is not None or options.metrics_port is not None:
            from snow_rt_py.runtime.metrics import ServerMetrics  # prometheus_client: only when asked for

            self.metrics = ServerMetrics(self)
        if options.tune_malloc:
            tune_for_large_messages()
        if options.cluster_url is not None:
            try:
                await runtime.attach_cluster(options.cluster_url, options.cluster_presence_ttl)
            except BaseException:
                self.scheduler.close()
                raise
            self._in_cluster = True
        ssl_ctx = None
        if options.tls_cert is not None and options.tls_key is not None:
            ssl_ctx = self._ssl_ctx = server_context(options.tls_cert, options.tls_key)
        try:
            self._server = await self.loop.create_server(
                lambda: Connection(self),
                options.host,
                options.port,
                ssl=ssl_ctx,
                ssl_handshake_timeout=options.handshake_timeout if ssl_ctx is not None else None,
                # A TLS close does not wait for the peer's close_notify (tls.close_transport); this only bounds a
                # shutdown that cannot read the end of stream meanwhile (asyncio's default: 30 s).
                ssl_shutdown_timeout=options.close_timeout if ssl_ctx is not None else None,
                backlog=options.backlog,
                reuse_address=True,
                reuse_port=options.reuse_port or None,
            )
        except OSError as exc:
            self.scheduler.close()
            if self._in_cluster:
                await runtime.detach_cluster()
            what = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ServerStartError(f"cannot listen on {options.host}:{options.port}: {what}") from None
        if self.metrics is not None and options.metrics_port is not None:
            try:
                self.metrics.listen(options.host, options.metrics_port)
            except OSError as exc:
                self._server.close()
                self.scheduler.close()
                if self._in_cluster:
                    await runtime.detach_cluster()
                what = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
                raise ServerStartError(
                    f"cannot listen for metrics on {options.host}:{options.metrics_port}: {what}"
                ) from None
        if self.wants_presence:
            with runtime.rooms._lock:
                runtime.rooms.presence_watchers += 1
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

    def reload_tls(self, cert: str | None = None, key: str | None = None) -> None:
        """Take up a renewed certificate without a restart (loop thread; e.g. from a SIGHUP handler added with
        ``loop.add_signal_handler``): the PEM files ``cert`` and ``key`` (default: the ``tls_cert`` and
        ``tls_key`` options, read again) serve every handshake from now on; open connections and session tickets
        are kept (runtime/tls.py).

        Raises:
            ServerStartError: the files are unusable (the message names the file); the old certificate stays.
            RuntimeError: the server does not serve wss://.
        """
        if self._ssl_ctx is None or self.options.tls_cert is None or self.options.tls_key is None:
            raise RuntimeError("reload_tls: this server does not serve wss:// (no tls_cert / tls_key)")
        reload_certificate(self._ssl_ctx, cert or self.options.tls_cert, key or self.options.tls_key)

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
        if _flush_all is not None:
            _flush_all(dirty)  # the loop below, in C (runtime/_connection_out.c)
            return
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
            across every server of the runtime; ``pool_idle``: compressors idle in the runtime's pool;
            ``offloaded``: large messages sent from the loop thread that the runtime compressed on its own threads
            (every server of the runtime).
        """
        return {
            **self._deflate_counts,
            "reserved_bytes": self.compression.reserved,
            "dedicated_now": self.compression.dedicated,
            "pool_idle": self.compression.idle_compressors(),
            "offloaded": self.compression.offloaded,
        }

    # -- called by Connection (loop thread) -----------------------------------------------------------------

    def connection_started(self, conn: Connection) -> None:
        """A TCP (or TLS) connection was accepted."""
        self._sockets.add(conn)
        self._all_gone.clear()

    def connection_accepted(self, conn: Connection) -> None:
        """The WebSocket handshake succeeded."""
        self._accepted[conn.id] = conn
        self.accepted_total += 1

    def connection_ended(self, conn: Connection) -> None:
        """The TCP connection is gone."""
        self._sockets.discard(conn)
        if self._accepted.pop(conn.id, None) is not None:
            self._count_ended(conn)
        if not self._sockets:
            self._all_gone.set()
        self._ended_since_trim += 1
        if self._ended_since_trim >= TRIM_AFTER_ENDED and self._trim_timer is None:
            self._trim_timer = self.loop.call_later(TRIM_DELAY, self._release_memory)

    def _count_ended(self, conn: Connection) -> None:
        """Add an accepted connection's counters to the totals, and write its access log line."""
        self._ended_messages_in += conn.messages_in
        self._ended_messages_out += conn.messages_out
        self._ended_bytes_in += conn._inbox_given
        self._ended_bytes_out += conn.bytes_out
        self._ended_drops += conn.drops
        code, reason = conn._end if conn._end is not None else ABORTED
        self.close_codes[code] = self.close_codes.get(code, 0) + 1
        ip = conn.remote_address[0] if conn.remote_address is not None else ""
        if conn._admitted:
            self.admission.closed(ip)
        if self.options.access_log:
            peer = f"{ip}:{conn.remote_address[1]}" if conn.remote_address is not None else "-"
            duration = self.loop.time() - conn._started
            access_log.info(
                "%s %s %.3fs in=%d out=%d close=%d",
                peer,
                conn.path,
                duration,
                conn._inbox_given,
                conn.bytes_out,
                code,
                extra={
                    "conn_id": conn.id,
                    "peer": peer,
                    "path": conn.path,
                    "duration": duration,
                    "bytes_in": conn._inbox_given,
                    "bytes_out": conn.bytes_out,
                    "close_code": code,
                    "close_reason": reason,
                },
            )

    def statistics(self) -> dict[str, Any]:
        """The server's counters, safe from any thread (a snapshot; counters of connections open at that instant
        are summed now, so two calls may straddle a message).

        Returns:
            ``connections_open``, ``connections_total`` (accepted since the start), ``handshakes_refused`` (a dict:
            reason -> count, every reason of ``admission.REASONS``), ``messages_in``, ``messages_out`` (data
            messages received / queued), ``bytes_in`` (payload bytes of received data messages), ``bytes_out``
            (bytes of queued data frames, headers included), ``broadcasts`` and ``deliveries`` (of the runtime's
            rooms: every server of the runtime sees the same two), ``queue_drops`` (messages refused by the
            slow-consumer policy), ``slow_consumer_closes``, ``heartbeat_timeouts``, ``close_codes`` (a dict: code
            -> connections that ended with it, as on_close reported it), ``handler_crashes``, ``inbound_pauses``
            (times a socket's reading was paused by flow control).
        """
        live = list(self._accepted.values())  # one C-level copy: safe while the loop thread changes the dict
        rooms = self.runtime.rooms
        return {
            "connections_open": len(live),
            "connections_total": self.accepted_total,
            "handshakes_refused": dict(self.admission.refused),
            "messages_in": self._ended_messages_in + sum(c.messages_in for c in live),
            "messages_out": self._ended_messages_out + sum(c.messages_out for c in live),
            "bytes_in": self._ended_bytes_in + sum(c._inbox_given for c in live),
            "bytes_out": self._ended_bytes_out + sum(c.bytes_out for c in live),
            "broadcasts": rooms.broadcasts,
            "deliveries": rooms.deliveries,
            "queue_drops": self._ended_drops + sum(c.drops for c in live),
            "slow_consumer_closes": self.slow_consumer_closes,
            "heartbeat_timeouts": self.heartbeat_timeouts,
            "close_codes": dict(self.close_codes),
            "handler_crashes": self.handler_crashes,
            "inbound_pauses": self.inbound_pauses,
        }

    def metrics_page(self, accept: str | None) -> tuple[int, bytes, str]:
        """The metrics exposition for a GET of ``metrics_path``: ``(status, body, content_type)``."""
        assert self.metrics is not None
        page: tuple[int, bytes, str] = self.metrics.page(accept)
        return page

    def _release_memory(self) -> None:
        self._trim_timer = None
        self._ended_since_trim = 0
        release_free_memory()

    # -- shutdown ----------------------------------------------------------------------------------------

    async def drain(self, timeout: float | None = None, window: float | None = None) -> None:
        """Graceful drain: stop accepting, close every connection with 1001 "going away" in batches spread over
        ``window`` s (``drain_window``; at most half of ``timeout``), wait until ``timeout`` s from the start
        (``drain_timeout``) for the close handshakes, then abort what remains. on_close runs for every connection.
        Idempotent (a second call waits for the first)."""
        timeout = self.options.drain_timeout if timeout is None else timeout
        window = self.options.drain_window if window is None else window
        await self.close(timeout, window=min(window, timeout / 2), close_with=GOING_AWAY)

    async def close(
        self, timeout: float = 5.0, *, window: float = 0.0, close_with: tuple[int, str] = SERVER_SHUTDOWN
    ) -> None:
        """Stop accepting, close every connection with 1001 (spread over ``window`` s), wait until ``timeout`` s
        from the start, then force. Idempotent."""
        if self.closing:
            await self._closed.wait()
            return
        self.closing = True
        started = self.loop.time()
        if self._server is not None:
            self._server.close()
        open_conns = []
        for conn in list(self._sockets):
            if conn.phase is Phase.OPEN:
                open_conns.append(conn)
            elif conn.phase is Phase.CONNECTING:
                conn.abort()
        await self._close_in_batches(open_conns, window, close_with)
        left = max(0.0, timeout - (self.loop.time() - started))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_gone.wait(), left)
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
        if self.metrics is not None:  # its HTTP server's shutdown waits for its poll loop: not on this thread
            await asyncio.get_running_loop().run_in_executor(None, self.metrics.close)
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None
        if self.wants_presence:
            with self.runtime.rooms._lock:
                self.runtime.rooms.presence_watchers -= 1
        if self._in_cluster:
            self._in_cluster = False
            await self.runtime.detach_cluster()
        self._closed.set()

    async def _close_in_batches(self, conns: list[Connection], window: float, close_with: tuple[int, str]) -> None:
        """Close ``conns`` with ``close_with``: batch i of n at ``i * window / n`` s (n batches at most every
        DRAIN_BATCH_INTERVAL), so the clients' reconnections are spread over the window."""
        batches = max(1, min(len(conns), int(window / DRAIN_BATCH_INTERVAL))) if window > 0 else 1
        size = math.ceil(len(conns) / batches) if conns else 0
        started = self.loop.time()
        for i in range(batches):
            due = started + i * window / batches
            delay = due - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for conn in conns[i * size : (i + 1) * size]:
                if conn.phase is Phase.OPEN:
                    with contextlib.suppress(ConnectionClosedError):  # it started closing meanwhile
                        conn.close(*close_with)

    def _drain_scheduler(self, timeout: float) -> None:
        self.scheduler.close()
        self.scheduler.join(timeout)
