"""The Redis backplane's presence directory: who is in each room on the other nodes, and this node's entries.

``snow:presence:ROOM`` holds every node's members of a room (redis_codec.py). Rules:

* **Local changes.** A local join writes this node's entry and publishes a ``J`` event on the room's channel, a
  leave deletes it and publishes ``L``: one pipeline, write first. Changes are queued in the order the registry
  made them and applied by the backplane's writer (:meth:`PresenceDirectory.write`); beyond
  ``CONTROL_QUEUE_MAX`` queued, or while Redis is away, the node rewrites its whole presence once Redis answers
  again (:meth:`PresenceDirectory.resync`).
* **Subscriptions follow local members.** The node is subscribed to a room's channel exactly while it has members
  in the room (one reconciliation of the wanted set with the subscribed one, so quick join/leave flaps cost
  nothing), and a member's entry is written only after its node's subscription is confirmed: once a member shows
  in the cluster-wide presence, it receives every broadcast published after that from any node.
* **Remote members.** The node keeps the remote members of the rooms it is subscribed to from the ``J``/``L``
  events, and re-reads them from Redis when it subscribes and every ``ttl`` seconds (events that arrive during a
  read are replayed over its answer, which may predate them).
* **Liveness.** A node is alive while its key ``snow:node:N`` exists: it lives ``3/4 ttl`` and is refreshed every
  ``ttl / 4`` (so a node whose loop stalls up to ``ttl / 2`` is not taken for dead); every ``ttl / 8`` each node
  checks the keys of the nodes it knows members of: the members of a node that died (SIGKILL) leave every other
  node's view within 7/8 of the TTL, and the first node to notice deletes their entries. A node that stops
  deletes its entries and its key (:meth:`PresenceDirectory.remove_local`).

Local watchers (handlers with ``on_presence``) hear every remote join and leave through ``registry.notify``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from snow_rt_py.runtime.backplane import redis_codec as codec
from snow_rt_py.runtime.backplane.redis_session import COMMAND_TIMEOUT, RedisSession
from snow_rt_py.runtime.presence import Member, PresenceEvent

if TYPE_CHECKING:
    from snow_rt_py.runtime.rooms import RoomRegistry

log = logging.getLogger("snow_rt_py.cluster")

CONTROL_QUEUE_MAX = 100_000
"""Presence changes waiting for Redis, at most; beyond, the node rewrites its whole presence once Redis catches up."""
PIPELINE_MAX = 1000
"""Commands per pipeline round trip."""


class PresenceDirectory:
    """The presence of one node's rooms across the cluster.

    Args:
        registry: the node's rooms (their local members, and the watchers to notify).
        session: the node's Redis session.
        ttl: the presence TTL in seconds (see the module rules).
        poke: wakes the backplane's writer (which calls :meth:`write`).
    """

    def __init__(self, registry: RoomRegistry, session: RedisSession, ttl: float, poke: Callable[[], None]) -> None:
        self.registry = registry
        self.session = session
        self.ttl = ttl
        self._poke = poke
        self._lock = threading.Lock()  # guards _remote and _reload_logs (read from any thread)
        self._remote: dict[str, dict[int, Member]] = {}  # remote members of the rooms we are subscribed to
        # One list per re-read of presence in flight: the join/leave events that arrive while it waits for Redis,
        # replayed over what it read (its snapshot may predate them).
        self._reload_logs: list[list[tuple[str, bool, Member]]] = []
        self._ctl: deque[tuple[bool, str, Member]] = deque()
        self.resync_needed = False
        self._dirty_rooms: set[str] = set()  # presence changed while Redis was away
        self._seen_version = -1  # registry.rooms_version when the subscriptions were last reconciled
        self.resyncs = 0

    # -- the session's life ------------------------------------------------------------------------------

    def session_opened(self) -> None:
        """A fresh session: nothing subscribed, nothing known; a resync follows and writes everything."""
        with self._lock:
            self._remote = {}
        self._ctl.clear()
        self.resync_needed = False

    def session_lost(self) -> None:
        """Redis is gone: forget the remote members, and rewrite these rooms' presence when it is back."""
        with self._lock:
            lost = set(self._remote)
            self._remote = {}
        self._dirty_rooms |= lost

    # -- local changes (any thread, under the registry's lock) ----------------------------------------------

    def member_changed(self, joined: bool, room: str, member: Member) -> bool:
        """Queue a local join (``joined``) or leave; True if the writer must be woken for it."""
        if not self.session.connected:
            self._dirty_rooms.add(room)
            return False
        if len(self._ctl) >= CONTROL_QUEUE_MAX:
            self.resync_needed = True
            return False
        self._ctl.append((joined, room, member))
        return True

    def changes_waiting(self) -> bool:
        """Local changes not yet written, or subscriptions not yet reconciled with the local rooms."""
        return bool(self._ctl) or self.registry.rooms_version != self._seen_version

    # -- reads, any thread ---------------------------------------------------------------------------------

    def remote_members(self, room: str) -> list[Member] | None:
        """The known remote members of ``room``, or None if this node is not subscribed to it (no local member)."""
        with self._lock:
            found = self._remote.get(room)
            return None if found is None else list(found.values())

    def query(self, room: str, timeout: float = 2.0) -> list[Member]:
        """Read ``room``'s cluster-wide members from Redis (for a room this node has no member in); [] if Redis
        is away or does not answer within ``timeout`` seconds.

        Raises:
            RuntimeError: called on the event loop's own thread (it would wait for itself).
        """
        loop = self.session.loop
        if loop is None or not self.session.connected:
            return []
        if self.session.on_loop_thread():
            raise RuntimeError(
                "the presence of a room with no member on this node needs a Redis round trip and cannot be "
                "read from the event loop thread (a callback with workers=0); call it from another thread"
            )
        fut = asyncio.run_coroutine_threadsafe(self.read_presence([room]), loop)
        try:
            return list(fut.result(timeout).get(room, {}).values())
        except Exception:
            fut.cancel()
            return []

    # -- remote events (the loop) --------------------------------------------------------------------------

    def apply_remote(self, room: str, joined: bool, member: Member) -> None:
        """Another node's member joined or left ``room``: update the view, tell local watchers if it changed."""
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

    # -- writes (the backplane's writer, on the loop) -------------------------------------------------------

    async def write(self) -> None:
        """Apply what is waiting: a whole rewrite if one is needed, then the queued changes."""
        if self.resync_needed:
            await self.resync()
        if self.changes_waiting():
            await self._apply_changes()

    async def _track(self, rooms: Iterable[str]) -> None:
        """Subscribe to ``rooms`` (confirmed) and start keeping their remote members."""
        rooms = list(rooms)
        await self.session.subscribe(rooms)
        with self._lock:
            for room in rooms:
                self._remote.setdefault(room, {})

    async def _apply_changes(self) -> None:
        """Apply queued changes: subscribe first (so presence never shows a member whose node cannot receive
        yet), then write presence and publish the events, then unsubscribe rooms left empty."""
        ops: list[tuple[bool, str, Member]] = []
        ctl = self._ctl
        while ctl and len(ops) < PIPELINE_MAX:
            ops.append(ctl.popleft())
        self._seen_version = self.registry.rooms_version
        wanted = self.registry.local_room_set()
        new = wanted - self.session.subscribed
        if new:
            await self._track(new)
        node = self.session.node
        if ops:
            pipe = self.session.client.pipeline(transaction=False)
            for joined, room, member in ops:
                key = codec.presence_key(room)
                if joined:
                    pipe.hset(key, codec.presence_field(member), codec.presence_value(member))
                else:
                    pipe.hdel(key, codec.presence_field(member))
                pipe.publish(codec.channel(room), codec.member_event(joined, node, member))
            await pipe.execute()
        gone = self.session.subscribed - wanted
        if gone:
            await self.session.unsubscribe(gone)
            with self._lock:
                for room in gone:
                    self._remote.pop(room, None)
        if new:
            await self._reload(new)

    async def resync(self) -> None:
        """Subscribe to every room with local members and rewrite this node's whole presence (at (re)connect)."""
        self.resync_needed = False
        self._ctl.clear()
        self.resyncs += 1
        local = self.registry.local_presence()
        await self.session.mark_alive()
        if local:
            await self._track(local)
        rooms = set(local) | self._dirty_rooms
        self._dirty_rooms = set()
        node = self.session.node
        if rooms:
            stored = await self.read_presence(rooms, live_only=False)
            pipe = self.session.client.pipeline(transaction=False)
            for room in rooms:
                mine = {m.id: m for m in local.get(room, ())}
                stale = [str(i) for i, m in stored.get(room, {}).items() if m.node == node and i not in mine]
                if stale:
                    pipe.hdel(codec.presence_key(room), *stale)
                if mine:
                    pipe.hset(
                        codec.presence_key(room),
                        mapping={codec.presence_field(m): codec.presence_value(m) for m in mine.values()},
                    )
            await pipe.execute()
        await self._reload(set(local))

    async def remove_local(self) -> None:
        """Delete this node's entries and its liveness key (the node stops)."""
        pipe = self.session.client.pipeline(transaction=False)
        for room, members in self.registry.local_presence().items():
            pipe.hdel(codec.presence_key(room), *[codec.presence_field(m) for m in members])
        pipe.delete(codec.node_key(self.session.node))
        await pipe.execute()

    # -- refresh -----------------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Every ttl/8: drop the members of nodes whose key expired; every ttl/4: keep this node's key alive; every
        ttl: re-read the remote members of the subscribed rooms (a safety net for events missed). Runs until the
        session ends."""
        tick = 0
        while True:
            await asyncio.sleep(self.ttl / 8)
            tick += 1
            async with asyncio.timeout(COMMAND_TIMEOUT * 2):
                if tick % 2 == 0 and not await self.session.mark_alive(only_if_alive=True):
                    # Our key had expired (we were taken for dead): write everything again.
                    log.warning(
                        "cluster: node %d was taken for dead (its key expired); rewriting its presence",
                        self.session.node,
                    )
                    self.resync_needed = True
                    self._poke()
                await self._purge_dead()
                if tick % 8 == 0:
                    await self._reload(set(self.session.subscribed))

    async def _purge_dead(self) -> None:
        """Drop from the remote members those of nodes whose liveness key is gone (died without leaving), tell
        local watchers, and delete their entries from Redis."""
        with self._lock:
            nodes = {m.node for members in self._remote.values() for m in members.values()}
        if not nodes:
            return
        dead = await self.session.dead_nodes(nodes)
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
        pipe = self.session.client.pipeline(transaction=False)
        for room, ids in gone.items():
            pipe.hdel(codec.presence_key(room), *[str(i) for i in ids])
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
            fresh = await self.read_presence(rooms)
        finally:
            with self._lock:
                self._reload_logs = [one for one in self._reload_logs if one is not changes]  # not ==: by identity
        node = self.session.node
        events = []
        with self._lock:
            for room in rooms:
                if room not in self._remote:
                    continue  # unsubscribed meanwhile
                old = self._remote[room]
                new = {i: m for i, m in fresh.get(room, {}).items() if m.node != node}
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

    async def read_presence(self, rooms: Iterable[str], live_only: bool = True) -> dict[str, dict[int, Member]]:
        """``room -> id -> Member`` from Redis; with ``live_only``, members of dead nodes (but this one) are left
        out and their entries deleted."""
        rooms = list(rooms)
        client = self.session.client
        pipe = client.pipeline(transaction=False)
        for room in rooms:
            pipe.hgetall(codec.presence_key(room))
        raw = await pipe.execute()
        out: dict[str, dict[int, Member]] = {}
        nodes: set[int] = set()
        for room, entries in zip(rooms, raw, strict=True):
            members = out[room] = {}
            for field, value in entries.items():
                member = codec.parse_presence(field, value)
                members[member.id] = member
                nodes.add(member.node)
        if not live_only or not nodes:
            return out
        dead = await self.session.dead_nodes(nodes)
        dead.discard(self.session.node)
        if dead:
            pipe = client.pipeline(transaction=False)
            for room, members in out.items():
                gone = [i for i, m in members.items() if m.node in dead]
                for i in gone:
                    del members[i]
                if gone:
                    pipe.hdel(codec.presence_key(room), *[str(i) for i in gone])
            await pipe.execute()
        return out
