"""The Redis backplane's session: its connections to Redis, its node number, and reconnecting when Redis goes.

A session is three connections: a redis-py client (commands: presence, node keys), a redis-py pub/sub connection
(the rooms' channels this node is subscribed to) and the :class:`Publisher` (PUBLISH, written without an await).
Rules:

* **Node ids.** At the first connect the node takes a number from ``INCR snow:nodes:seq`` that no live node holds
  (it claims ``snow:node:N`` with SET NX). After a reconnect it keeps its number and raises the counter to at least
  that number, so a Redis restarted empty never hands a live node's number to a new one.
* **Failures.** Redis unreachable at start: :class:`ServerStartError` naming the URL. Lost while running (any task
  of the session fails, or a command or subscription takes longer than ``COMMAND_TIMEOUT``): one warning, the
  session is dropped, and it is opened again with backoff (0.1 s doubling to 5 s); one warning when it is back.
  The :class:`SessionUser` (the backplane) is told when a session opens, runs and is lost, and resubscribes and
  rewrites its presence itself (``serve``).
* Every wait is bounded with ``asyncio.timeout``, never ``wait_for`` (which in Python 3.11 can swallow a
  cancellation, and then stopping would wait forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from snow_rt_py.runtime.backplane import redis_codec as codec
from snow_rt_py.runtime.backplane.redis_publisher import Publisher
from snow_rt_py.runtime.errors import ServerStartError

log = logging.getLogger("snow_rt_py.cluster")

MAX_NODE = (1 << 23) - 1
CONNECT_TIMEOUT = 3.0
COMMAND_TIMEOUT = 5.0
"""Seconds Redis has to answer a command (or a subscription) before the node takes it for lost and reconnects."""
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
READ_BATCH_MAX = 256
"""Messages the reader takes from redis-py's buffer before it hands them over (see ``RedisSession._read``)."""

_RAISE_SEQ = (
    "if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end"
)


class SessionUser(Protocol):
    """What a session tells the one that uses it (the backplane)."""

    def session_opened(self) -> None:
        """A session is open and nothing is subscribed yet: forget what the previous one knew."""
        ...

    async def serve(self, group: asyncio.TaskGroup) -> None:
        """Bring a fresh session up to date and start the session's own tasks in ``group`` (they end with it)."""
        ...

    def received(self, messages: list[dict[str, Any]]) -> None:
        """Messages read from the subscription (redis-py's dicts), in order."""
        ...

    def session_lost(self) -> None:
        """The session failed; it is dropped next, and opened again later."""
        ...


class RedisSession:
    """The connections of one node to its cluster's Redis, kept open.

    Args:
        url: ``redis://[USER:PASSWORD@]HOST:PORT/DB`` or ``rediss://...`` (TLS).
        key_ms: the lifetime of the node's liveness key, in milliseconds.
        user: told of the session's life (see :class:`SessionUser`).
    """

    def __init__(self, url: str, key_ms: int, user: SessionUser) -> None:
        self.url = url
        self.key_ms = key_ms
        self.user = user
        self.node = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = 0
        self.connected = False
        self.client: Any = None
        self.publisher: Publisher | None = None
        self.subscribed: set[str] = set()
        self.outages = 0
        self.outage_started = 0.0
        self._pubsub: Any = None
        self._sub_waiters: dict[bytes, asyncio.Future[None]] = {}
        self._main: asyncio.Task[None] | None = None

    def on_loop_thread(self) -> bool:
        """True when called on the thread of the loop that owns the session."""
        return threading.get_ident() == self.loop_thread

    async def start(self) -> None:
        """Open the first session (taking a node number) and keep it open from then on.

        Raises:
            ServerStartError: the redis package is missing, or Redis cannot be reached at the URL.
        """
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        try:
            import redis.asyncio  # noqa: F401  (the optional dependency: snow_rt_py[cluster])
        except ImportError:
            raise ServerStartError(
                f"cluster_url {self.url!r} needs the redis package: pip install 'snow_rt_py[cluster]'"
            ) from None
        try:
            await self._open(first=True)
        except ServerStartError:
            await self.drop()
            raise
        except Exception as exc:
            await self.drop()
            raise ServerStartError(f"cannot reach the cluster's Redis at {self.url}: {why(exc)}") from None
        self._main = self.loop.create_task(self._supervise())

    async def stop_tasks(self) -> None:
        """Stop keeping the session open (its tasks end); the connections stay until :meth:`drop`."""
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(BaseException):
                await self._main

    async def _open(self, first: bool) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = Redis.from_url(
            self.url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            # No socket_timeout: redis-py then bounds sends with asyncio.wait_for (see the module rules). Every
            # await of the backplane has an asyncio.timeout instead.
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self.client = client
        async with asyncio.timeout(CONNECT_TIMEOUT + COMMAND_TIMEOUT):
            await client.ping()
            if first:
                while True:  # a number no live node has (the counter may have wrapped, or Redis lost its data)
                    number = int(await client.incr(codec.NODE_SEQ_KEY))
                    self.node = (number - 1) % MAX_NODE + 1
                    if await client.set(codec.node_key(self.node), b"1", px=self.key_ms, nx=True):
                        break
            else:
                # Redis may have restarted empty: keep the counter above our number, so no new node takes it.
                await client.eval(_RAISE_SEQ, 1, codec.NODE_SEQ_KEY, self.node)
                await client.set(codec.node_key(self.node), b"1", px=self.key_ms)
            self.publisher = await Publisher.open(self.url)
            self._pubsub = client.pubsub()
            await self._pubsub.connect()
        self.subscribed = set()
        self.user.session_opened()
        self.connected = True

    async def drop(self) -> None:
        """Close the session's connections (idempotent)."""
        self.connected = False
        for fut in self._sub_waiters.values():
            fut.cancel()
        self._sub_waiters.clear()
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            publisher.close()
        pubsub, client, self._pubsub, self.client = self._pubsub, self.client, None, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _supervise(self) -> None:
        """Run a session; on failure, log once, reconnect with backoff; until cancelled."""
        while True:
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # an ExceptionGroup from the TaskGroup, or a single error
                self.outages += 1
                self.outage_started = time.monotonic()
                log.warning(
                    "cluster: lost Redis at %s (%s); local delivery goes on, remote deliveries are dropped until "
                    "it is back",
                    self.url,
                    why(exc),
                )
                self.user.session_lost()
                await self.drop()
            delay = BACKOFF_FIRST
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._open(first=False)
                    break
                except Exception:
                    await self.drop()
                    delay = min(delay * 2, BACKOFF_MAX)
            log.warning("cluster: Redis at %s is back after %.1f s", self.url, time.monotonic() - self.outage_started)

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read())  # first: the user's resync waits for subscription confirmations
            assert self.publisher is not None
            group.create_task(self.publisher.wait_lost())
            await self.user.serve(group)

    async def _read(self) -> None:
        pubsub = self._pubsub
        while True:
            msg = await pubsub.get_message(timeout=None)
            if msg is None:
                continue
            batch = [msg]
            # Take what redis-py has already read, without waiting: a burst of broadcasts to one room (another
            # node's read of several) is then fanned out in one pass, one write per member for the burst, and
            # the first local member has the first broadcast after one pass over the room, not one per broadcast.
            while len(batch) < READ_BATCH_MAX:
                more = await pubsub.get_message(timeout=0.0)
                if more is None:
                    break
                batch.append(more)
            self.user.received(batch)

    def confirmed(self, channels: list[bytes]) -> None:
        """Redis confirmed the subscriptions of ``channels`` (read by the user from the subscription)."""
        for channel in channels:
            fut = self._sub_waiters.pop(channel, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def subscribe(self, rooms: Iterable[str]) -> None:
        """Subscribe to the channels of ``rooms`` and wait until Redis has confirmed them all."""
        rooms = list(rooms)
        channels = [codec.channel(room) for room in rooms]
        if not channels:
            return
        loop = asyncio.get_running_loop()
        waiters = []
        for channel in channels:
            fut = self._sub_waiters.get(channel)
            if fut is None:
                fut = self._sub_waiters[channel] = loop.create_future()
            waiters.append(fut)
        await self._pubsub.subscribe(*channels)
        async with asyncio.timeout(COMMAND_TIMEOUT):
            await asyncio.gather(*waiters)
        self.subscribed.update(rooms)

    async def unsubscribe(self, rooms: Iterable[str]) -> None:
        """Unsubscribe from the channels of ``rooms``."""
        rooms = list(rooms)
        await self._pubsub.unsubscribe(*[codec.channel(room) for room in rooms])
        self.subscribed.difference_update(rooms)

    async def mark_alive(self, only_if_alive: bool = False) -> bool:
        """Set this node's liveness key for its lifetime again; with ``only_if_alive``, only if it still exists.

        Returns:
            False if ``only_if_alive`` and the key had expired (the others took this node for dead).
        """
        return bool(await self.client.set(codec.node_key(self.node), b"1", px=self.key_ms, xx=only_if_alive))

    async def dead_nodes(self, nodes: Iterable[int]) -> set[int]:
        """The ``nodes`` whose liveness key is gone."""
        node_list = sorted(nodes)
        values = await self.client.mget([codec.node_key(n) for n in node_list])
        return {n for n, v in zip(node_list, values, strict=True) if v is None}


def why(exc: BaseException) -> str:
    """A short text for ``exc`` in a log line or an error message."""
    if isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
