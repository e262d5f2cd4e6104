"""The Redis backplane: rooms and presence across processes and machines (``cluster_url``).

Without ``cluster_url`` nothing here runs and rooms are in-process. With it, a runtime's
:class:`~snow_rt_py.runtime.rooms.RoomRegistry` tells this backplane about local joins, leaves and broadcasts,
and the backplane carries them to the other nodes over Redis pub/sub. Rules:

* **Node ids.** At start a node takes a number from ``INCR snow:nodes:seq`` that no live node holds (it claims
  ``snow:node:N`` with SET NX) and puts it in the high bits of its connection ids (``node << 40 | n``), so
  connection ids are unique across the cluster and fit a C handle (``uint64_t``, below 2**63). After a reconnect a
  node raises the counter to at least its own number, so a Redis restarted empty never hands a live node's number
  to a new one.
* **One PUBLISH per broadcast**, on the room's channel ``snow:room:ROOM``, carrying the origin node, the excluded
  connection id and the frame already encoded: the other nodes hand those very bytes to their local members
  (encoded once per cluster). Local members were served directly by the registry; the origin ignores its own
  message when it comes back. A receiving node takes every message redis-py has already read before it applies
  them, and hands consecutive broadcasts to one room with the same exclusion to its members as one run (their
  frames joined: one pass over the room, one write per member for the burst); each member's queue is written as
  soon as the run is on it, so the first member does not wait for the whole room (``RoomRegistry.deliver_remote``).
* **Subscriptions follow local members.** A node is subscribed to a room's channel exactly while it has members in
  the room: the first local join subscribes, the last local leave unsubscribes (one task reconciles the wanted set
  with the subscribed one, so quick join/leave flaps cost nothing). A member's presence is written to Redis only
  after its node's subscription is confirmed, so once a member shows in the cluster-wide presence, it receives
  every broadcast published after that from any node.
* **Order.** Publishes leave in the order they were made (one FIFO, one connection, one pipeline at a time), and
  Redis delivers a channel's messages in order: broadcasts from one sender to one room reach every member on
  every node in the order they were sent.
* **At most once across nodes.** Remote delivery is never retried. What is lost: broadcasts made while Redis is
  unreachable (counted in ``publish_dropped``) or while the publish queue is full (``publish_overflow``);
  messages Redis had not yet written to a node when that node or Redis went away; broadcasts published before a
  new member's node had confirmed its subscription (see above); and, as locally, messages a member's queue refuses
  (``remote_delivery_failures`` on the node of that member).
* **Presence.** ``snow:presence:ROOM`` is a hash ``connection id -> "node\\0meta"``; a join writes it and publishes
  a ``J`` event on the room's channel, a leave deletes it and publishes ``L``. Each node keeps the remote members
  of the rooms it is subscribed to from those events, and re-reads them every ``ttl`` seconds. A node is alive
  while its key ``snow:node:N`` exists: it is set with a lifetime of ``3/4 ttl`` and refreshed every ``ttl / 4``
  (so a node whose loop stalls up to ``ttl / 2`` is not taken for dead), and every node checks the keys of the
  nodes it knows members of every ``ttl / 8``: the members of a node that died (SIGKILL) leave every other node's
  view within 7/8 of the TTL; the first node to notice deletes their entries. A node that stops (its last cluster
  server closes) first sends the leaves of its departing connections, then deletes its key.
* **Failures.** Redis unreachable at start: :class:`ServerStartError` naming the URL. Lost while running: local
  delivery goes on; remote deliveries are dropped and counted; reconnect with backoff (0.1 s doubling to 5 s);
  on reconnect the node re-subscribes exactly the rooms it has members in and rewrites their presence. One warning
  when the outage starts, one when it ends. Nothing here ever blocks the event loop: a broadcast made on the loop
  writes its PUBLISH straight onto a dedicated connection (:class:`Publisher`: before the local members' frames
  are flushed, with no await), one made on another thread goes through a bounded queue to the loop; both are
  bounded (``PUBLISH_QUEUE_MAX`` commands, ``PUBLISH_BUFFER_MAX`` bytes Redis has not taken) and their overflow
  is dropped and counted. Subscriptions and presence use redis-py (asyncio) on the same loop.

Every method the registry calls is safe from any thread and never waits; the Redis client runs on the event loop
of the server that brought the backplane up (:meth:`RedisBackplane.start`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from snow_rt_py.runtime.cluster_publisher import Publisher
from snow_rt_py.runtime.errors import ServerStartError
from snow_rt_py.runtime.presence import Member, PresenceEvent

if TYPE_CHECKING:
    from snow_rt_py.runtime.rooms import RoomRegistry

log = logging.getLogger("snow_rt_py.cluster")

ID_NODE_SHIFT = 40
"""Connection ids are ``node << ID_NODE_SHIFT | n``: 2**40 connections per node, node numbers below 2**23."""
MAX_NODE = (1 << 23) - 1
PREFIX = "snow:"
PUBLISH_QUEUE_MAX = 100_000
"""Broadcasts waiting for Redis, at most; more are dropped (``publish_overflow``)."""
CONTROL_QUEUE_MAX = 100_000
"""Presence changes waiting for Redis, at most; beyond, the node rewrites its whole presence once Redis catches up."""
PIPELINE_MAX = 1000
"""Commands per pipeline round trip."""
CONNECT_TIMEOUT = 3.0
COMMAND_TIMEOUT = 5.0
"""Seconds Redis has to answer a command (or a subscription) before the node takes it for lost and reconnects."""
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
READ_BATCH_MAX = 256
"""Messages the reader takes from redis-py's buffer before it applies them (see ``_read``)."""

_RAISE_SEQ = (
    "if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end"
)
_HEADER = struct.Struct(">cQQ")  # kind, origin node, connection id (excluded one for B, member for J/L)
_BROADCAST, _JOIN, _LEAVE = b"B", b"J", b"L"


def node_of(connection_id: int) -> int:
    """The node number in a connection id (0: a runtime that is not in a cluster)."""
    return connection_id >> ID_NODE_SHIFT


def _enc(room: str) -> bytes:
    return room.encode("utf-8", "surrogatepass")


def _dec(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


class RedisBackplane:
    """One runtime's link to the cluster.

    Args:
        url: ``redis://[USER:PASSWORD@]HOST:PORT/DB`` or ``rediss://...`` (TLS).
        registry: the rooms it serves.
        ttl: presence TTL in seconds (see the module rules).
    """

    def __init__(self, url: str, registry: RoomRegistry, ttl: float = 10.0) -> None:
        self.url = url
        self.registry = registry
        self.ttl = ttl
        self._key_ms = int(ttl * 750)  # a node's liveness key lives 3/4 of the TTL, refreshed every TTL/4
        self.node = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._lock = threading.Lock()
        self._pub: deque[tuple[bytes, bytes]] = deque()
        self._ctl: deque[tuple[bytes, str, Member]] = deque()
        self._wake_pending = False
        self._wake = asyncio.Event()
        self._connected = False
        self._closing = False
        self._resync_needed = False
        self._dirty_rooms: set[str] = set()  # presence changed while Redis was away
        self._subscribed: set[str] = set()
        self._seen_version = -1  # registry.rooms_version when the subscriptions were last reconciled
        self._remote: dict[str, dict[int, Member]] = {}  # remote members of the rooms we are subscribed to
        # One list per re-read of presence in flight: the join/leave events that arrive while it waits for Redis,
        # replayed over what it read (its snapshot may predate them).
        self._reload_logs: list[list[tuple[str, bool, Member]]] = []
        self._sub_waiters: dict[bytes, asyncio.Future[None]] = {}
        self._client: Any = None
        self._pubsub: Any = None
        self._publisher: Publisher | None = None
        self._main: asyncio.Task[None] | None = None
        self.outage_started = 0.0
        self.stats = {
            "published": 0,
            "publish_dropped": 0,
            "publish_overflow": 0,
            "received": 0,
            "remote_deliveries": 0,
            "remote_delivery_failures": 0,
            "outages": 0,
            "presence_resyncs": 0,
        }

    # -- names -----------------------------------------------------------------------------------------------

    def channel(self, room: str) -> bytes:
        """The pub/sub channel of ``room``."""
        return PREFIX.encode() + b"room:" + _enc(room)

    def _presence_key(self, room: str) -> bytes:
        return PREFIX.encode() + b"presence:" + _enc(room)

    def _node_key(self, node: int) -> str:
        return f"{PREFIX}node:{node}"

    # -- start and stop (on the loop that owns it) -------------------------------------------------------

    async def start(self) -> None:
        """Connect, take a node number and start the background tasks.

        Raises:
            ServerStartError: the redis package is missing, or Redis cannot be reached at the URL.
        """
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            import redis.asyncio  # noqa: F401  (the optional dependency: snow_rt_py[cluster])
        except ImportError:
            raise ServerStartError(
                f"cluster_url {self.url!r} needs the redis package: pip install 'snow_rt_py[cluster]'"
            ) from None
        try:
            await self._open_session(first=True)
        except ServerStartError:
            await self._drop_session()
            raise
        except Exception as exc:
            await self._drop_session()
            raise ServerStartError(f"cannot reach the cluster's Redis at {self.url}: {_why(exc)}") from None
        self._main = self.loop.create_task(self._supervise())

    async def close(self) -> None:
        """Stop the tasks, remove this node's presence and node key, disconnect. Idempotent."""
        if self._closing:
            return
        self._closing = True
        # The leaves of the connections that just closed (server shutdown) go out first, so the other nodes see
        # them at once rather than when this node's key expires. Bounded: Redis may be slow or gone.
        deadline = time.monotonic() + 2.0
        while self._connected and (self._ctl or self._pub or self._want_changes()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(BaseException):
                await self._main
        if self._connected and self._client is not None:
            with contextlib.suppress(Exception):
                pipe = self._client.pipeline(transaction=False)
                for room, members in self.registry.local_presence().items():
                    pipe.hdel(self._presence_key(room), *[str(m.id) for m in members])
                pipe.delete(self._node_key(self.node))
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    await pipe.execute()
        await self._drop_session()

    # -- called by the registry, any thread, never waits -----------------------------------------------------

    def publish(self, room: str, frame: bytes, except_id: int) -> None:
        """Queue one PUBLISH of ``frame`` to the other nodes' members of ``room`` (all but ``except_id``)."""
        publisher = self._publisher
        if publisher is None or not self._connected:
            self.stats["publish_dropped"] += 1
            return
        header = _HEADER.pack(_BROADCAST, self.node, except_id)
        if threading.get_ident() == self._loop_thread and not self._pub:
            # On the loop: onto the publishing connection, written at the end of this loop iteration, before the
            # local members' frames are flushed (see Publisher.send).
            if publisher.send(self.channel(room), header, frame):
                self.stats["published"] += 1
            else:
                self.stats["publish_overflow"] += 1
            return
        if len(self._pub) >= PUBLISH_QUEUE_MAX:
            self.stats["publish_overflow"] += 1
            return
        self._pub.append((self.channel(room), header + frame))
        self._poke()

    def member_changed(self, joined: bool, room: str, member: Member) -> None:
        """A local join (``joined``) or leave. Called under the registry's lock, so changes keep their order."""
        if not self._connected:
            self._dirty_rooms.add(room)
            return
        if len(self._ctl) >= CONTROL_QUEUE_MAX:
            self._resync_needed = True
            return
        self._ctl.append((_JOIN if joined else _LEAVE, room, member))
        self._poke()

    def _poke(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            loop = self.loop
            if loop is None:
                return
            if threading.get_ident() == self._loop_thread:
                self._wake.set()
            else:
                with contextlib.suppress(RuntimeError):  # loop closed: the node is stopping
                    loop.call_soon_threadsafe(self._wake.set)

    # -- presence reads, any thread --------------------------------------------------------------------------

    def remote_members(self, room: str) -> list[Member] | None:
        """The known remote members of ``room``, or None if this node is not subscribed to it (no local member)."""
        with self._lock:
            found = self._remote.get(room)
            return None if found is None else list(found.values())

    def query_presence(self, room: str, timeout: float = 2.0) -> list[Member]:
        """Read ``room``'s cluster-wide members from Redis (for a room this node has no member in).

        Raises:
            RuntimeError: called on the event loop's own thread (it would wait for itself).
        """
        if self.loop is None or not self._connected:
            return []
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError(
                "the presence of a room with no member on this node needs a Redis round trip and cannot be "
                "read from the event loop thread (a callback with workers=0); call it from another thread"
            )
        fut = asyncio.run_coroutine_threadsafe(self._read_presence([room]), self.loop)
        try:
            return list(fut.result(timeout).get(room, {}).values())
        except Exception:
            fut.cancel()
            return []

    def statistics(self) -> dict[str, int]:
        """Counters (see the module rules) and the current state. The counters are exact for broadcasts made on
        the loop thread; ones made concurrently from several threads may miss an increment."""
        out = dict(self.stats)
        out["node"] = self.node
        out["connected"] = int(self._connected)
        out["publish_queue"] = len(self._pub)
        out["subscriptions"] = len(self._subscribed)
        return out

    def subscriptions(self) -> list[str]:
        """The rooms whose channel this node is subscribed to, sorted."""
        return sorted(self._subscribed)

    # -- sessions ---------------------------------------------------------------------------------------------

    async def _open_session(self, first: bool) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = Redis.from_url(
            self.url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            # No socket_timeout: redis-py then bounds sends with asyncio.wait_for, which in Python 3.11 can swallow
            # a cancellation (and close() would wait forever). Every await below has an asyncio.timeout instead.
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._client = client
        # asyncio.timeout, never wait_for: 3.11's wait_for can swallow a cancellation (then close() would hang).
        async with asyncio.timeout(CONNECT_TIMEOUT + COMMAND_TIMEOUT):
            await client.ping()
            if first:
                while True:  # a number no live node has (the counter may have wrapped, or Redis lost its data)
                    number = int(await client.incr(f"{PREFIX}nodes:seq"))
                    self.node = (number - 1) % MAX_NODE + 1
                    if await client.set(self._node_key(self.node), b"1", px=self._key_ms, nx=True):
                        break
            else:
                # Redis may have restarted empty: keep the counter above our number, so no new node takes it.
                await client.eval(_RAISE_SEQ, 1, f"{PREFIX}nodes:seq", self.node)
                await client.set(self._node_key(self.node), b"1", px=self._key_ms)
            self._publisher = await Publisher.open(self.url)
            self._pubsub = client.pubsub()
            await self._pubsub.connect()
        self._subscribed = set()
        with self._lock:
            self._remote = {}
        self._ctl.clear()  # a resync below writes the whole local presence
        self._resync_needed = False
        self._connected = True

    async def _drop_session(self) -> None:
        self._connected = False
        for fut in self._sub_waiters.values():
            fut.cancel()
        self._sub_waiters.clear()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()
        pubsub, client, self._pubsub, self._client = self._pubsub, self._client, None, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _supervise(self) -> None:
        """Run a session's tasks; on failure, log once, reconnect with backoff, resync; until cancelled."""
        while True:
            try:
                await self._run_session()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # an ExceptionGroup from the TaskGroup, or a single error
                self.stats["outages"] += 1
                self.outage_started = time.monotonic()
                log.warning(
                    "cluster: lost Redis at %s (%s); local delivery goes on, remote deliveries are dropped until "
                    "it is back",
                    self.url,
                    _why(exc),
                )
                with self._lock:
                    lost = set(self._remote)
                    self._remote = {}
                self._dirty_rooms |= lost
                await self._drop_session()
            delay = BACKOFF_FIRST
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._open_session(first=False)
                    break
                except Exception:
                    await self._drop_session()
                    delay = min(delay * 2, BACKOFF_MAX)
            log.warning("cluster: Redis at %s is back after %.1f s", self.url, time.monotonic() - self.outage_started)

    async def _run_session(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read())  # first: the resync waits for subscription confirmations it reads
            assert self._publisher is not None
            group.create_task(self._publisher.wait_lost())
            async with asyncio.timeout(COMMAND_TIMEOUT * 2):
                await self._resync()
            group.create_task(self._write())
            group.create_task(self._refresh())

    # -- the reader: messages and subscription confirmations ----------------------------------------------

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
            self._dispatch(batch)

    def _dispatch(self, batch: list[dict[str, Any]]) -> None:
        """Apply the messages of one read, in order. Consecutive broadcasts to the same room excluding the same
        connection are delivered as one run (their frames queued together, in order)."""
        size = _HEADER.size
        run_room: str | None = None
        run_except = 0
        run: list[bytes] = []
        for msg in batch:
            kind = msg["type"]
            if kind == "message":
                data: bytes = msg["data"]
                if len(data) < size:  # not ours (someone else published on the channel): ignored
                    continue
                tag, origin, conn_id = _HEADER.unpack_from(data)
                if origin == self.node:
                    continue
                self.stats["received"] += 1
                room = _dec(msg["channel"][len(PREFIX) + 5 :])
                if tag == _BROADCAST:
                    if run and (room != run_room or conn_id != run_except):
                        self._deliver_run(run_room, run, run_except)
                        run = []
                    run_room, run_except = room, conn_id
                    run.append(data[size:])
                    continue
                if run:  # a presence event: the broadcasts before it go first
                    self._deliver_run(run_room, run, run_except)
                    run = []
                if tag in (_JOIN, _LEAVE):
                    self._apply_remote(room, tag == _JOIN, Member(conn_id, origin, _dec(data[size:])))
            elif kind == "subscribe":
                fut = self._sub_waiters.pop(msg["channel"], None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
        if run:
            self._deliver_run(run_room, run, run_except)

    def _deliver_run(self, room: str | None, frames: list[bytes], except_id: int) -> None:
        assert room is not None
        sent, failed = self.registry.deliver_remote(room, frames, except_id)
        self.stats["remote_deliveries"] += sent
        self.stats["remote_delivery_failures"] += failed

    def _apply_remote(self, room: str, joined: bool, member: Member) -> None:
        with self._lock:
            members = self._remote.get(room)
            if members is None:
                return
            for changes in self._reload_logs:
                changes.append((room, joined, member))
            if joined:
                if member.id in members:
                    return
                members[member.id] = member
            else:
                known = members.pop(member.id, None)
                if known is None:
                    return
                member = known  # with its meta (a leave event carries none)
        self.registry.notify(PresenceEvent(room, "join" if joined else "leave", member))

    # -- the writer: publishes, presence changes, subscriptions ----------------------------------------------

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._wake_pending = False
            while self._pub or self._ctl or self._resync_needed or self._want_changes():
                async with asyncio.timeout(COMMAND_TIMEOUT * 2):  # a Redis that stopped answering: reconnect
                    if self._resync_needed:
                        await self._resync()
                    if self._ctl or self._want_changes():
                        await self._control()
                if self._pub:
                    await self._publish_batch()

    def _want_changes(self) -> bool:
        return self.registry.rooms_version != self._seen_version

    async def _publish_batch(self) -> None:
        """Write the broadcasts other threads queued (in their order) onto the publishing connection."""
        pub = self._pub
        publisher = self._publisher
        assert publisher is not None
        while pub:
            channel, data = pub.popleft()
            if publisher.send(channel, data, b""):
                self.stats["published"] += 1
            else:
                self.stats["publish_overflow"] += 1

    async def _subscribe(self, rooms: Iterable[str]) -> None:
        """Subscribe to the channels of ``rooms`` and wait until Redis has confirmed them all."""
        channels = [self.channel(room) for room in rooms]
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

    async def _control(self) -> None:
        """Apply queued presence changes: subscribe first (so presence never shows a member whose node cannot
        receive yet), then write presence and publish the events, then unsubscribe rooms left empty."""
        ops: list[tuple[bytes, str, Member]] = []
        ctl = self._ctl
        while ctl and len(ops) < PIPELINE_MAX:
            ops.append(ctl.popleft())
        self._seen_version = self.registry.rooms_version
        wanted = self.registry.local_room_set()
        new = wanted - self._subscribed
        if new:
            await self._subscribe(new)
            self._subscribed |= new
            with self._lock:
                for room in new:
                    self._remote.setdefault(room, {})
        if ops:
            pipe = self._client.pipeline(transaction=False)
            for tag, room, member in ops:
                key = self._presence_key(room)
                if tag == _JOIN:
                    pipe.hset(key, str(member.id), f"{member.node}\0{member.meta}".encode("utf-8", "surrogatepass"))
                else:
                    pipe.hdel(key, str(member.id))
                payload = member.meta.encode("utf-8", "surrogatepass") if tag == _JOIN else b""
                pipe.publish(self.channel(room), _HEADER.pack(tag, self.node, member.id) + payload)
            await pipe.execute()
        gone = self._subscribed - wanted
        if gone:
            await self._pubsub.unsubscribe(*[self.channel(room) for room in gone])
            self._subscribed -= gone
            with self._lock:
                for room in gone:
                    self._remote.pop(room, None)
        if new:
            await self._reload(new)

    # -- presence: full rewrite, periodic refresh ------------------------------------------------------------

    async def _resync(self) -> None:
        """Subscribe to every room with local members and rewrite this node's whole presence (at (re)connect)."""
        self._resync_needed = False
        self._ctl.clear()
        self.stats["presence_resyncs"] += 1
        local = self.registry.local_presence()
        await self._client.set(self._node_key(self.node), b"1", px=self._key_ms)
        if local:
            await self._subscribe(local)
            self._subscribed |= set(local)
            with self._lock:
                for room in local:
                    self._remote.setdefault(room, {})
        rooms = set(local) | self._dirty_rooms
        self._dirty_rooms = set()
        if rooms:
            stored = await self._read_presence(rooms, live_only=False)
            pipe = self._client.pipeline(transaction=False)
            for room in rooms:
                mine = {m.id: m for m in local.get(room, ())}
                stale = [str(i) for i, m in stored.get(room, {}).items() if m.node == self.node and i not in mine]
                if stale:
                    pipe.hdel(self._presence_key(room), *stale)
                if mine:
                    pipe.hset(
                        self._presence_key(room),
                        mapping={
                            str(m.id): f"{m.node}\0{m.meta}".encode("utf-8", "surrogatepass") for m in mine.values()
                        },
                    )
            await pipe.execute()
        await self._reload(set(local))

    async def _refresh(self) -> None:
        """Every ttl/8: drop the members of nodes whose key expired; every ttl/4: keep this node's key alive; every
        ttl: re-read the remote members of the subscribed rooms (a safety net for events missed)."""
        tick = 0
        while True:
            await asyncio.sleep(self.ttl / 8)
            tick += 1
            async with asyncio.timeout(COMMAND_TIMEOUT * 2):
                if tick % 2 == 0:
                    alive = await self._client.set(self._node_key(self.node), b"1", px=self._key_ms, xx=True)
                    if not alive:  # our key had expired (we were taken for dead): write everything again
                        log.warning(
                            "cluster: node %d was taken for dead (its key expired); rewriting its presence", self.node
                        )
                        self._resync_needed = True
                        self._poke()
                await self._purge_dead()
                if tick % 8 == 0:
                    await self._reload(set(self._subscribed))

    async def _purge_dead(self) -> None:
        """Drop from the remote members those of nodes whose liveness key is gone (died without leaving), tell
        local watchers, and delete their entries from Redis."""
        with self._lock:
            nodes = sorted({m.node for members in self._remote.values() for m in members.values()})
        if not nodes:
            return
        values = await self._client.mget([self._node_key(n) for n in nodes])
        dead = {n for n, v in zip(nodes, values, strict=True) if v is None}
        if not dead:
            return
        events: list[PresenceEvent] = []
        gone: dict[str, list[int]] = {}
        with self._lock:
            for room, members in self._remote.items():
                ids = [i for i, m in members.items() if m.node in dead]
                for i in ids:
                    events.append(PresenceEvent(room, "leave", members.pop(i)))
                if ids:
                    gone[room] = ids
        pipe = self._client.pipeline(transaction=False)
        for room, ids in gone.items():
            pipe.hdel(self._presence_key(room), *[str(i) for i in ids])
        await pipe.execute()
        for event in events:
            self.registry.notify(event)

    async def _reload(self, rooms: set[str]) -> None:
        """Re-read the remote members of ``rooms`` from Redis, tell local watchers what changed.

        The events that arrive during the read are applied again over what was read: Redis may have answered
        before a member joined or left whose event was applied meanwhile (a node's write and its event are one
        pipeline, write first, so replaying an event the answer already holds changes nothing)."""
        if not rooms:
            return
        changes: list[tuple[str, bool, Member]] = []
        with self._lock:
            self._reload_logs.append(changes)
        try:
            fresh = await self._read_presence(rooms)
        finally:
            with self._lock:
                self._reload_logs = [log for log in self._reload_logs if log is not changes]  # not ==: by identity
        events = []
        with self._lock:
            for room in rooms:
                if room not in self._remote:
                    continue  # unsubscribed meanwhile
                old = self._remote[room]
                new = {i: m for i, m in fresh.get(room, {}).items() if m.node != self.node}
                for changed_room, joined, member in changes:
                    if changed_room != room:
                        continue
                    if joined:
                        new[member.id] = member
                    else:
                        new.pop(member.id, None)
                events += [PresenceEvent(room, "leave", m) for i, m in old.items() if i not in new]
                events += [PresenceEvent(room, "join", m) for i, m in new.items() if i not in old]
                self._remote[room] = new
        for event in events:
            self.registry.notify(event)

    async def _read_presence(self, rooms: Iterable[str], live_only: bool = True) -> dict[str, dict[int, Member]]:
        """``room -> id -> Member`` from Redis; with ``live_only``, members of dead nodes are left out and their
        entries deleted."""
        rooms = list(rooms)
        pipe = self._client.pipeline(transaction=False)
        for room in rooms:
            pipe.hgetall(self._presence_key(room))
        raw = await pipe.execute()
        out: dict[str, dict[int, Member]] = {}
        nodes: set[int] = set()
        for room, entries in zip(rooms, raw, strict=True):
            members = out[room] = {}
            for field, value in entries.items():
                node_text, _, meta = value.partition(b"\0")
                member = Member(int(field), int(node_text), _dec(meta))
                members[member.id] = member
                nodes.add(member.node)
        if not live_only or not nodes:
            return out
        node_list = sorted(nodes)
        values = await self._client.mget([self._node_key(n) for n in node_list])
        dead = {n for n, v in zip(node_list, values, strict=True) if v is None}
        dead.discard(self.node)
        if dead:
            pipe = self._client.pipeline(transaction=False)
            for room, members in out.items():
                gone = [i for i, m in members.items() if m.node in dead]
                for i in gone:
                    del members[i]
                if gone:
                    pipe.hdel(self._presence_key(room), *[str(i) for i in gone])
            await pipe.execute()
        return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
