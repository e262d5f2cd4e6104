"""The Redis backplane: rooms and presence across processes and machines (``cluster_url``).

A runtime's :class:`~snow_rt_py.runtime.rooms.RoomRegistry` tells this backplane about local joins, leaves and
broadcasts, and the backplane carries them to the other nodes over Redis pub/sub. It is three parts and this
module, which joins them: redis_session.py (the connections, the node number, reconnecting), redis_codec.py (the
names and encodings of what goes through Redis) and redis_presence.py (the presence directory). Rules:

* Rooms with history go through Redis Streams instead: one script call per broadcast (redis_history.py).
* **One PUBLISH per broadcast**, on the room's channel, carrying the origin node, the excluded connection id and
  the frame already encoded: the other nodes hand those very bytes to their local members (encoded once per
  cluster). Local members were served directly by the registry; the origin ignores its own message when it comes
  back. A receiving node takes every message redis-py has already read before it applies them, and hands
  consecutive broadcasts to one room with the same exclusion to its members as one run (their frames joined: one
  pass over the room, one write per member for the burst); each member's queue is written as soon as the run is
  on it, so the first member does not wait for the whole room (``RoomRegistry.deliver_remote``).
* **Order.** Publishes leave in the order they were made (one FIFO, one connection, one pipeline at a time), and
  Redis delivers a channel's messages in order: broadcasts from one sender to one room reach every member on
  every node in the order they were sent.
* **At most once across nodes.** Remote delivery is never retried. What is lost: broadcasts made while Redis is
  unreachable (counted in ``publish_dropped``) or while the publish queue is full (``publish_overflow``);
  messages Redis had not yet written to a node when that node or Redis went away; broadcasts published before a
  new member's node had confirmed its subscription (redis_presence.py); and, as locally, messages a member's queue
  refuses (``remote_delivery_failures`` on the node of that member).
* **Never blocks the event loop.** A broadcast made on the loop writes its PUBLISH straight onto the publishing
  connection (:class:`~snow_rt_py.runtime.backplane.redis_publisher.Publisher`: before the local members' frames
  are flushed, with no await); one made on another thread goes through a bounded queue to the loop. Both are
  bounded (``PUBLISH_QUEUE_MAX`` commands, ``PUBLISH_BUFFER_MAX`` bytes Redis has not taken) and their overflow
  is dropped and counted. Subscriptions and presence use redis-py (asyncio) on the same loop.
* **Stopping.** A node that stops (its last cluster server closes) first sends the leaves of its departing
  connections (for at most 2 s), then deletes its presence and its node key.

Every method the registry calls is safe from any thread and never waits; the Redis client runs on the event loop
of the server that brought the backplane up (:meth:`RedisBackplane.start`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from snow_rt_py.runtime.backplane import redis_codec as codec
from snow_rt_py.runtime.backplane.base import Position
from snow_rt_py.runtime.backplane.redis_history import RedisHistory
from snow_rt_py.runtime.backplane.redis_presence import PresenceDirectory
from snow_rt_py.runtime.backplane.redis_session import COMMAND_TIMEOUT, RedisSession
from snow_rt_py.runtime.presence import Member

if TYPE_CHECKING:
    from snow_rt_py.runtime.rooms import RoomRegistry

PUBLISH_QUEUE_MAX = 100_000
"""Broadcasts waiting for Redis, at most; more are dropped (``publish_overflow``)."""


class RedisBackplane:
    """One runtime's link to the cluster: a :class:`~snow_rt_py.runtime.backplane.base.Backplane`.

    Args:
        url: ``redis://[USER:PASSWORD@]HOST:PORT/DB`` or ``rediss://...`` (TLS).
        registry: the rooms it serves.
        ttl: presence TTL in seconds (see redis_presence.py).
    """

    def __init__(self, url: str, registry: RoomRegistry, ttl: float = 10.0) -> None:
        self.registry = registry
        # A node's liveness key lives 3/4 of the TTL, refreshed every TTL/4.
        self.session = RedisSession(url, int(ttl * 750), self)
        self.directory = PresenceDirectory(registry, self.session, ttl, self._poke)
        self._pub: deque[tuple[bytes, bytes]] = deque()  # broadcasts made off the loop: (channel, message)
        self._wake_pending = False
        self._wake = asyncio.Event()
        self._closing = False
        self.history = RedisHistory(self)  # rooms with history: Redis Streams (redis_history.py)
        self.stats = {
            "published": 0,
            "publish_dropped": 0,
            "publish_overflow": 0,
            "received": 0,
            "remote_deliveries": 0,
            "remote_delivery_failures": 0,
        }

    @property
    def url(self) -> str:
        """The cluster's Redis URL."""
        return self.session.url

    @property
    def node(self) -> int:
        """This node's number (taken at :meth:`start`)."""
        return self.session.node

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the backplane runs on (None before :meth:`start`)."""
        return self.session.loop

    # -- start and stop (on the loop that owns it) -------------------------------------------------------

    async def start(self) -> None:
        """Connect, take a node number and start the background tasks.

        Raises:
            ServerStartError: the redis package is missing, or Redis cannot be reached at the URL.
        """
        await self.session.start()

    def catch_up(self) -> None:
        """The registry now reports to this backplane: subscribe the rooms that had members before."""
        self._poke()

    async def close(self) -> None:
        """Stop the tasks, remove this node's presence and node key, disconnect. Idempotent."""
        if self._closing:
            return
        self._closing = True
        session = self.session
        # The leaves of the connections that just closed (server shutdown) go out first, so the other nodes see
        # them at once rather than when this node's key expires. Bounded: Redis may be slow or gone.
        deadline = time.monotonic() + 2.0
        while session.connected and (self._pub or self.directory.changes_waiting()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await session.stop_tasks()
        if session.connected and session.client is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    await self.directory.remove_local()
        await session.drop()

    # -- called by the registry, any thread, never waits -----------------------------------------------------

    def broadcast(self, room: str, frame: bytes, except_id: int) -> Position | None:
        """Queue one PUBLISH of ``frame`` to the other nodes' members of ``room`` (all but ``except_id``).

        Returns:
            None: no room keeps history yet.
        """
        session = self.session
        publisher = session.publisher
        if publisher is None or not session.connected:
            self.stats["publish_dropped"] += 1
            return None
        header = codec.broadcast_header(session.node, except_id)
        if not self._pub and session.on_loop_thread():
            # On the loop: onto the publishing connection, written at the end of this loop iteration, before the
            # local members' frames are flushed (see Publisher.send).
            if publisher.send(codec.channel(room), header, frame):
                self.stats["published"] += 1
            else:
                self.stats["publish_overflow"] += 1
            return None
        if len(self._pub) >= PUBLISH_QUEUE_MAX:
            self.stats["publish_overflow"] += 1
            return None
        self._pub.append((codec.channel(room), header + frame))
        self._poke()
        return None

    def member_changed(self, joined: bool, room: str, member: Member) -> None:
        """A local join (``joined``) or leave. Called under the registry's lock, so changes keep their order."""
        if self.directory.member_changed(joined, room, member):
            self._poke()

    def presence(self, room: str, local: list[Member]) -> list[Member]:
        """``local`` and the other nodes' members of ``room``, sorted by id.

        Other nodes' members are as this node last heard (their joins and leaves arrive as events on the room's
        channel, and are re-read from Redis every TTL). For a room with no member on this node (``local`` empty)
        they are read from Redis: a round trip, so not from the event loop thread.

        Raises:
            RuntimeError: a room with no local member, read from the event loop thread.
        """
        remote = self.directory.remote_members(room)
        if remote is None:
            # With local members we are subscribing right now: what we know so far.
            remote = [] if local else [m for m in self.directory.query(room) if m.node != self.node]
        return sorted(local + remote, key=_member_id)

    def _poke(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            loop = self.session.loop
            if loop is None:
                return
            if self.session.on_loop_thread():
                self._wake.set()
            else:
                with contextlib.suppress(RuntimeError):  # loop closed: the node is stopping
                    loop.call_soon_threadsafe(self._wake.set)

    # -- state --------------------------------------------------------------------------------------------

    def statistics(self) -> dict[str, int]:
        """Counters (see the module rules) and the current state. The counters are exact for broadcasts made on
        the loop thread; ones made concurrently from several threads may miss an increment."""
        out = dict(self.stats)
        out["outages"] = self.session.outages
        out["presence_resyncs"] = self.directory.resyncs
        out["node"] = self.node
        out["connected"] = int(self.session.connected)
        out["publish_queue"] = len(self._pub)
        out["subscriptions"] = len(self.session.subscribed)
        out["history_script_calls"] = self.history.script_calls
        return out

    def subscriptions(self) -> list[str]:
        """The rooms whose channel this node is subscribed to (confirmed by Redis), sorted."""
        return sorted(self.session.subscribed)

    # -- the session's life (redis_session.SessionUser) --------------------------------------------------

    def session_opened(self) -> None:
        """A fresh session (see redis_session.SessionUser)."""
        self.directory.session_opened()

    def session_lost(self) -> None:
        """The session failed (see redis_session.SessionUser)."""
        self.directory.session_lost()

    async def serve(self, group: asyncio.TaskGroup) -> None:
        """Resubscribe and rewrite this node's presence, then run the writer and the refresh in ``group``."""
        async with asyncio.timeout(COMMAND_TIMEOUT * 2):
            await self.directory.resync()
        group.create_task(self._write())
        group.create_task(self.directory.refresh())

    def received(self, messages: list[dict[str, Any]]) -> None:
        """Apply the messages of one read, in order (see the module rules)."""
        batch = codec.decode_batch(messages, self.session.node)
        self.stats["received"] += batch.received
        for change in batch.changes:
            if isinstance(change, codec.Ordered):
                self.history.received(change.room, change.data)
            elif isinstance(change, codec.Run):
                sent, failed = self.registry.deliver_remote(change.room, change.frames, change.except_id)
                self.stats["remote_deliveries"] += sent
                self.stats["remote_delivery_failures"] += failed
            else:
                self.directory.apply_remote(change.room, change.joined, change.member)
        if batch.confirmed:
            self.session.confirmed(batch.confirmed)

    # -- the writer: publishes, presence changes, subscriptions ----------------------------------------------

    async def _write(self) -> None:
        directory = self.directory
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._wake_pending = False
            while self._pub or directory.resync_needed or directory.changes_waiting():
                async with asyncio.timeout(COMMAND_TIMEOUT * 2):  # a Redis that stopped answering: reconnect
                    await directory.write()
                if self._pub:
                    self._publish_batch()

    def _publish_batch(self) -> None:
        """Write the broadcasts other threads queued (in their order) onto the publishing connection."""
        pub = self._pub
        publisher = self.session.publisher
        assert publisher is not None
        while pub:
            channel, data = pub.popleft()
            if publisher.send(channel, data, b""):
                self.stats["published"] += 1
            else:
                self.stats["publish_overflow"] += 1


def _member_id(member: Member) -> int:
    return member.id
