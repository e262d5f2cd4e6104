"""The Runtime: the one owner of every piece of process state of snow_rt_py.

A :class:`Runtime` owns the event-loop thread that runs its servers, the table of actors (pids, links), the rooms,
the counter that gives connections their ids, and the state of the front doors built on it (the C ABI's handle
tables live in :meth:`Runtime.component`). What else is kept at module level is process-wide by nature and holds
no program state: the default runtime itself (:func:`default_runtime`), the lock that makes moves out of OPEN
atomic (``connection_base.move_lock``), the C ABI's per-thread reply buffers and its one registration of its
on_message caller (``abi/callbacks.py``), reusable scratch buffers (masking's pool in ``protocol/mask.py``, the
protocol C part's zlib state and scratch), malloc tuning done once (``allocator.py``), and caches of values
derived from constants (negotiated compression parameters, ``lru_cache``).

The Python API (``snow_rt_py.start``, ``join``, ``spawn``...) and the C ABI share one default instance,
:func:`default_runtime`, so C keeps its process-wide semantics: a room joined from C is the room a Python caller
broadcasts to. Tests and embedders make their own (``Runtime()``) and close it when done; two runtimes share
nothing. Rooms are reached only through ``runtime.rooms``, so a cluster backplane plugs in at that one place.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from snow_rt_py.runtime.errors import ServerStartError
from snow_rt_py.runtime.loop import LoopThread
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.rooms import RoomRegistry
from snow_rt_py.runtime.scheduler import ActorTable, Scheduler, Tag

if TYPE_CHECKING:
    from snow_rt_py.runtime.backplane.base import Backplane
    from snow_rt_py.runtime.backplane.redis_backplane import RedisBackplane
    from snow_rt_py.runtime.handler import Handler
    from snow_rt_py.runtime.server import Server

T = TypeVar("T")

ACTOR_WORKERS = 2
"""Threads running the actors started with :meth:`Runtime.spawn` (connection actors use their server's)."""


class RunningServer:
    """A server running on its runtime's loop thread. Returned by :meth:`Runtime.start`.

    Attributes:
        server: the underlying :class:`~snow_rt_py.runtime.server.Server` (its methods run on the loop thread).
        runtime: the runtime it belongs to.
    """

    def __init__(self, server: Server, runtime: Runtime, loop_thread: LoopThread) -> None:
        self.server = server
        self.runtime = runtime
        self._loop_thread = loop_thread  # the one its sockets belong to (not whatever the runtime has later)

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self.server.port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/`` or ``wss://HOST:PORT/``."""
        return self.server.url

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful stop: 1001 to every connection, wait up to ``timeout`` s, then force. Idempotent (also after
        :meth:`Runtime.close`, which stops it)."""
        self._on_loop(self.server.close(timeout))

    def drain(self, timeout: float | None = None, window: float | None = None) -> None:
        """Graceful drain, returning when done: stop accepting, close every connection with 1001 "going away" in
        batches spread over ``window`` s (default: the ``drain_window`` option; at most half of ``timeout``), wait
        until ``timeout`` s from the start (default: ``drain_timeout``) for the close handshakes, then abort what
        remains. on_close runs for every connection. The server is stopped afterwards (as by :meth:`stop`)."""
        self._on_loop(self.server.drain(timeout, window))

    def _on_loop(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on the server's own loop: every socket of the server belongs to that loop's thread."""
        loop_thread = self._loop_thread
        if loop_thread.loop.is_closed():  # its runtime was closed, and the server with it
            coro.close()
            return
        try:
            loop_thread.run(coro)
        except RuntimeError:
            if loop_thread.thread.is_alive() and not loop_thread.loop.is_closed():
                raise
            coro.close()  # the runtime closed meanwhile (from another thread), and the server with it

    def statistics(self) -> dict[str, Any]:
        """The server's counters (see :meth:`Server.statistics <snow_rt_py.runtime.server.Server.statistics>`)."""
        return self.server.statistics()

    @property
    def metrics_port(self) -> int | None:
        """The port of the separate metrics endpoint (``metrics_port`` option), or None."""
        metrics = self.server.metrics
        return None if metrics is None else metrics.port

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class Runtime:
    """Owns the loop thread, actors, rooms, connection ids and front-door state of one snow_rt_py instance.

    Every method is safe from any thread. The loop thread and the worker threads of :meth:`spawn` start on first
    use; :meth:`close` stops them (the default runtime is never closed: its threads are daemons).
    """

    def __init__(self) -> None:
        self.actors = ActorTable()
        self.rooms = RoomRegistry()
        self._connection_ids = itertools.count(1)
        self._id_base = 0  # node << ID_NODE_SHIFT once in a cluster
        self._lock = threading.Lock()
        self._cluster: RedisBackplane | None = None
        self._cluster_loop: asyncio.AbstractEventLoop | None = None
        self._cluster_users = 0
        self._cluster_lock: asyncio.Lock | None = None
        self._loop_thread: LoopThread | None = None
        self._spawner: Scheduler | None = None
        self._components: dict[str, Any] = {}
        self._servers: list[RunningServer] = []

    # -- identity ------------------------------------------------------------------------------------------

    def next_connection_id(self) -> int:
        """A connection id never given before by this runtime (ids start at 1 and only grow). In a cluster the
        node number is in the high bits (``node << 40 | n``), so ids are unique across the cluster."""
        return self._id_base | next(self._connection_ids)

    # -- cluster -------------------------------------------------------------------------------------------

    @property
    def cluster(self) -> Backplane | None:
        """The cluster's backplane, while a server started with ``cluster_url`` runs (else None: the rooms' own
        in-process backplane)."""
        return self._cluster

    async def attach_cluster(self, url: str, ttl: float) -> None:
        """Join the cluster at ``url`` (called by a server starting with ``cluster_url``, on its loop): the first
        server brings the backplane up, later ones share it. Paired with :meth:`detach_cluster`.

        Raises:
            ServerStartError: Redis unreachable (naming the URL), the redis package missing, or another cluster
                URL or event loop than the servers already in the cluster.
        """
        # The one place that chooses a backplane other than the rooms' in-process default.
        from snow_rt_py.runtime.backplane.base import ID_NODE_SHIFT
        from snow_rt_py.runtime.backplane.redis_backplane import RedisBackplane

        loop = asyncio.get_running_loop()
        with self._lock:
            if self._cluster_loop is None:
                self._cluster_loop = loop
                self._cluster_lock = asyncio.Lock()
            elif self._cluster_loop is not loop:
                raise ServerStartError(
                    "this runtime's cluster runs on another event loop: start every cluster server of a runtime "
                    "the same way (Runtime.start / snow_rt_py.start, or one serve())"
                )
            lock = self._cluster_lock
        assert lock is not None
        async with lock:
            if self._cluster is not None:
                if self._cluster.url != url:
                    raise ServerStartError(f"this runtime is already in the cluster {self._cluster.url}, not {url}")
                self._cluster_users += 1
                return
            backplane = RedisBackplane(url, self.rooms, ttl)
            await backplane.start()
            self._id_base = backplane.node << ID_NODE_SHIFT
            self.rooms.attach(backplane)
            self._cluster = backplane
            self._cluster_users = 1
            backplane.catch_up()  # rooms that had members before: subscribe them

    async def detach_cluster(self) -> None:
        """A cluster server stopped; the last one takes the backplane down (its presence leaves Redis)."""
        lock = self._cluster_lock
        if lock is None:
            return
        async with lock:
            self._cluster_users -= 1
            if self._cluster_users > 0 or self._cluster is None:
                return
            backplane, self._cluster = self._cluster, None
            self.rooms.detach()
            await backplane.close()
            with self._lock:
                self._cluster_loop = None
                self._cluster_lock = None

    # -- threads -------------------------------------------------------------------------------------------

    @property
    def loop_thread(self) -> LoopThread:
        """The event-loop thread that owns the sockets of the servers started with :meth:`start`."""
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = LoopThread()
            return self._loop_thread

    def component(self, key: str, factory: Callable[[], T]) -> T:
        """The runtime's instance of a front door's state (made by ``factory`` on first use), e.g. the C ABI's
        handle tables: owned here, so a runtime's state is all in one place and ends with it."""
        with self._lock:
            found = self._components.get(key)
            if found is None:
                found = self._components[key] = factory()
            return found

    # -- servers -------------------------------------------------------------------------------------------

    def start(self, handler: Handler, options: ServerOptions) -> RunningServer:
        """Start a server on this runtime's loop thread and return once it listens.

        Raises:
            ServerStartError: bind or TLS failure (the message names the address or file).
            ValueError: an invalid option.
        """
        from snow_rt_py.runtime.server import Server  # server.py imports connection.py, which needs this module

        options.validate()
        loop_thread = self.loop_thread
        server = loop_thread.run(Server.start(handler, options, self))
        running = RunningServer(server, self, loop_thread)
        with self._lock:
            self._servers.append(running)
        return running

    def close(self, timeout: float = 2.0) -> None:
        """Stop every server started here, the spawned actors' workers and the loop thread. Idempotent; not for
        the default runtime (the Python API and the C ABI live as long as the process)."""
        with self._lock:
            servers, self._servers = self._servers, []
        for running in servers:  # on their loop thread, which stops only after them
            running.stop(timeout)
        with self._lock:
            spawner, self._spawner = self._spawner, None
            loop_thread, self._loop_thread = self._loop_thread, None
        if spawner is not None:
            spawner.close()
            spawner.join(timeout)
        if loop_thread is not None:
            loop_thread.stop(timeout)
        compression = self._components.get("compression")
        if compression is not None:
            compression.close()  # its compressing threads (runtime/compression.py)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- actors --------------------------------------------------------------------------------------------

    def spawn(self, fn: Callable[[Any], None]) -> int:
        """Start an actor that calls ``fn(message)`` for each message sent to it, one at a time, on a worker
        thread. If ``fn`` raises, the error is logged and the actor goes on with its next message.

        Returns:
            The actor's pid (never reused).
        """
        loop = self.loop_thread.loop
        with self._lock:
            if self._spawner is None:
                self._spawner = Scheduler(loop, self.actors, ACTOR_WORKERS, name="snow-actor")
            spawner = self._spawner

        def behaviour(tag: Tag, payload: Any) -> None:
            fn(payload)

        return spawner.spawn(behaviour).pid

    def send(self, pid: int, message: object) -> bool:
        """Send ``message`` to actor ``pid`` (its handler's on_info, or its function). False if it is not alive."""
        return self.actors.send(pid, message)

    def link(self, pid_a: int, pid_b: int) -> None:
        """Link two actors (see :meth:`ActorTable.link`)."""
        self.actors.link(pid_a, pid_b)

    def exit(self, pid: int, reason: object = "normal") -> bool:
        """End actor ``pid`` and signal its links (see :meth:`ActorTable.exit`)."""
        return self.actors.exit(pid, reason)


_default: Runtime | None = None
_default_lock = threading.Lock()


def default_runtime() -> Runtime:
    """The process-wide runtime shared by the Python API and the C ABI (made on first call)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Runtime()
        return _default
