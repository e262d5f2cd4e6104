"""Delivery policies for a room's slow members: ``drop_oldest`` and ``latest_per_key``.

A room with the ``default`` policy hands each broadcast to every member's outbound queue, whose own bound and
``slow_consumer`` option (close with 1008, or drop) decide what a full queue does (runtime/outbound.py: the C
fast path takes the common case). A room with another policy never lets a member's queue refuse one of its
messages: a member whose queue cannot take the message now (:meth:`Outbound.fits`) gets it in a per-member
**pending** list kept here, and the pending list is moved to the queue, oldest first, as soon as it fits again
(before the room's next broadcast to the member, and on a 10 ms timer while anything is pending). The pending
list is bounded by the member's ``max_queue_bytes``:

* ``drop_oldest``: when the list is over its bound, its oldest messages are dropped (the newest is always kept).
* ``latest_per_key``: a message broadcast with a key replaces the pending message with the same key in place
  (conflation: prices, cursors, presence); then as ``drop_oldest``.

Every drop and replacement is counted (``RoomRegistry.statistics()``: ``policy_drops``,
``policy_replacements``; server statistics, C stats and OpenMetrics). In a room with history the offsets of what a
member receives then have a gap it can see, and recover with join-from. A member's pending list is dropped when
it leaves the room or its connection ends. Every method runs under the room's lock (history_rooms.py).
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snow_rt_py.runtime.connection import Connection

DRAIN_INTERVAL = 0.01
"""Seconds between two attempts to move pending messages to a member's queue."""


class _Pending:
    __slots__ = ("bytes", "conn", "items")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.items: collections.deque[tuple[bytes, str | None]] = collections.deque()
        self.bytes = 0


class RoomPolicy:
    """The pending lists of one room's members (see the module rules).

    Args:
        policy: ``drop_oldest`` or ``latest_per_key``.
        counters: the registry's counters dict (``policy_drops``, ``policy_replacements``), shared by every room.
    """

    def __init__(self, policy: str, counters: dict[str, int], lock: threading.Lock) -> None:
        self.policy = policy
        self.counters = counters
        self._lock = lock  # the room's: held by every caller, taken by the drain timer
        self._pending: dict[int, _Pending] = {}
        self._timer_armed = False

    def offer(self, targets: list[Connection], excluded: Connection | None, frame: bytes, key: str | None) -> int:
        """Hand ``frame`` to every member of ``targets`` but ``excluded``; the members it could not be queued or kept
        for (ended connections)."""
        pending = self._pending
        failures = 0
        size = len(frame)
        for conn in targets:
            if conn is excluded:
                continue
            waiting = pending.get(conn.id)
            if waiting is not None:
                self._move(waiting)
            if waiting is None or not waiting.items:
                if conn.fits(size):
                    if not conn.offer_frame(frame):
                        failures += 1
                    continue
                if not conn.open:
                    failures += 1
                    continue
                if waiting is None:
                    waiting = pending[conn.id] = _Pending(conn)
            self._keep(waiting, frame, key)
        if pending and not self._timer_armed:
            self._arm()
        return failures

    def _keep(self, waiting: _Pending, frame: bytes, key: str | None) -> None:
        items = waiting.items
        if key is not None and self.policy == "latest_per_key":
            for i, (old, old_key) in enumerate(items):
                if old_key == key:
                    items[i] = (frame, key)
                    waiting.bytes += len(frame) - len(old)
                    self.counters["policy_replacements"] += 1
                    return
        items.append((frame, key))
        waiting.bytes += len(frame)
        bound = waiting.conn.max_queue_bytes
        while waiting.bytes > bound and len(items) > 1:
            old, _ = items.popleft()
            waiting.bytes -= len(old)
            self.counters["policy_drops"] += 1

    def _move(self, waiting: _Pending) -> None:
        """Queue what ``waiting`` holds, oldest first, while it fits."""
        conn = waiting.conn
        items = waiting.items
        while items:
            frame = items[0][0]
            if not conn.open:
                items.clear()
                waiting.bytes = 0
                return
            if not conn.fits(len(frame)):
                return
            items.popleft()
            waiting.bytes -= len(frame)
            conn.offer_frame(frame)

    def forget(self, conn_id: int) -> None:
        """A member left: its pending messages go."""
        self._pending.pop(conn_id, None)

    def pending_bytes(self) -> int:
        """Bytes held in pending lists now."""
        return sum(p.bytes for p in self._pending.values())

    def _arm(self) -> None:
        for waiting in self._pending.values():
            loop = waiting.conn._loop
            self._timer_armed = True
            try:
                loop.call_soon_threadsafe(loop.call_later, DRAIN_INTERVAL, self._drain)
            except RuntimeError:  # the loop is closed: nothing can be written any more
                self._timer_armed = False
            return

    def _drain(self) -> None:
        with self._lock:
            self._timer_armed = False
            for conn_id, waiting in list(self._pending.items()):
                self._move(waiting)
                if not waiting.items:
                    del self._pending[conn_id]
            if self._pending:
                self._arm()
