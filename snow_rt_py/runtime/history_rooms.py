"""The registry's configured rooms: history, positions, join-from with gap-free recovery, delivery policies.

A :class:`~snow_rt_py.runtime.rooms.RoomRegistry` hands every broadcast to a room configured with
:func:`snow_rt_py.configure_room` to :class:`HistoryRooms`; every other room takes the registry's own path,
unchanged. Rules:

* **One order per room.** A room with history is served under its own lock: a broadcast takes its offset from the
  store and is handed to the local members in one step, so every member sees the room's messages in offset
  order. In one process the store is :class:`~snow_rt_py.runtime.history.LocalHistory` and the members are
  served at once. On a cluster the offset is Redis' (one script call per broadcast, redis_history.py): the message
  comes back on the room's channel with its offset, and **every node, the broadcaster's included, serves its
  members from the channel** -- the channel's order is the offsets' order, the same on every node. So local
  members of a room *with history* wait one Redis round trip (rooms without history never do: decision 9 holds
  for them), and the position a broadcast returns is pending until then (:data:`history.PendingPosition`).
* **Join from a position** (:meth:`HistoryRooms.join_from`): the member joins, and while the history is read
  (in memory, or from Redis after the node's subscription to the room is confirmed) the live messages meant for it
  are kept aside; then the history after its offset and the kept messages are merged by offset (each offset once)
  and queued as one item. If the epoch differs or the history no longer holds every message after the offset, it
  is joined all the same and told it is unrecoverable (:class:`Recovery`), so the program reloads its state.
* A position in the future (the epoch matches, the offset is past the room's last) or malformed is refused with
  ``InvalidArgumentError`` and changes nothing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, NamedTuple, Protocol

from snow_rt_py.protocol.frames import Opcode, encode_frame
from snow_rt_py.runtime.backplane.base import Position
from snow_rt_py.runtime.errors import InvalidArgumentError
from snow_rt_py.runtime.history import (
    READ_LIMIT_MAX,
    HistoryRead,
    LocalHistory,
    PendingPosition,
    RoomConfig,
    check_position,
    envelope_frame,
    open_envelope,
)
from snow_rt_py.runtime.room_delivery import RoomPolicy

if TYPE_CHECKING:
    from snow_rt_py.runtime.backplane.redis_history import HistoryMessage
    from snow_rt_py.runtime.connection import Connection
    from snow_rt_py.runtime.rooms import RoomRegistry


class Recovery(NamedTuple):
    """What :meth:`HistoryRooms.join_from` did.

    Attributes:
        recovered: True if every message after the position was queued (then the live ones, no gap, no
            duplicate); False: unrecoverable (another epoch, or history trimmed), joined from now on.
        position: the room's position the member is at now (its last message queued).
        replayed: messages queued from the history.
    """

    recovered: bool
    position: Position
    replayed: int


class HistoryItem(NamedTuple):
    """One message of a room's history: its offset and the message (str for text, bytes for binary)."""

    offset: int
    message: str | bytes


class HistoryPage(NamedTuple):
    """A read of a room's history (:func:`snow_rt_py.history`).

    Attributes:
        position: the room's current position.
        items: the messages after the offset asked for, oldest first, at most the limit.
        complete: True if no message after that offset was trimmed (by count or age).
    """

    position: Position
    items: list[HistoryItem]
    complete: bool


class HistoryStore(Protocol):
    """Where a registry's rooms keep their history: in this process, or in Redis (the backplane's)."""

    local: bool

    def publish(
        self, room: str, config: RoomConfig, opcode: int, data: bytes, except_id: int, key: str | None
    ) -> PendingPosition[Position]:
        """Number the message and have it served (see the module rules); its position."""
        ...

    def read(self, room: str, config: RoomConfig, since: int, limit: int) -> HistoryRead:
        """The history after ``since`` (may wait for Redis: RuntimeError on the event loop thread)."""
        ...

    def ready(self, room: str) -> None:
        """Return once live messages of ``room`` reach this node (a cluster: its subscription is confirmed)."""
        ...

    def forget(self, room: str) -> None:
        """The room's options changed: its local state starts again."""
        ...


class _RoomState:
    __slots__ = ("lock", "policy", "recovering")

    def __init__(self, config: RoomConfig, counters: dict[str, int]) -> None:
        self.lock = threading.Lock()
        self.policy = None if config.policy == "default" else RoomPolicy(config.policy, counters, self.lock)
        self.recovering: dict[int, list[tuple[int, bytes]]] = {}


class HistoryRooms:
    """The configured rooms of one registry (see the module rules)."""

    def __init__(self, registry: RoomRegistry) -> None:
        self.registry = registry
        self.configs: dict[str, RoomConfig] = {}
        self._states: dict[str, _RoomState] = {}
        self.counters = {"policy_drops": 0, "policy_replacements": 0, "recoveries": 0, "unrecoverable": 0}
        self.local_store = LocalStore(self)
        self._lock = threading.Lock()

    @property
    def store(self) -> HistoryStore:
        """The backplane's history store, or this process' (in-process backplane)."""
        store: HistoryStore | None = getattr(self.registry.backplane, "history", None)
        return self.local_store if store is None else store

    def configure(self, room: str, config: RoomConfig) -> None:
        """Set ``room``'s options (a room with default options forgets them)."""
        with self._lock:
            old = self.configs.get(room)
            if old == config:
                return
            if config == RoomConfig():
                self.configs.pop(room, None)
                self._states.pop(room, None)
            else:
                self.configs[room] = config
                self._states[room] = _RoomState(config, self.counters)
            if old is not None and old[:2] != config[:2]:  # other bounds: the history starts again
                self.local_store.forget(room)
                self.store.forget(room)

    def state(self, room: str) -> _RoomState | None:
        return self._states.get(room)

    # -- broadcast --------------------------------------------------------------------------------------------

    def broadcast(
        self, room: str, opcode: int, data: bytes, except_conn: Connection | int | None, key: str | None
    ) -> tuple[int, PendingPosition[Position] | None]:
        """A broadcast to a configured room: ``(local failures, position)`` (position None without history)."""
        config = self.configs.get(room)
        state = self._states.get(room)
        if config is None or state is None:  # configured back to the defaults meanwhile
            return self.registry.broadcast_frame(room, encode_frame(opcode, data), except_conn), None
        if key is not None and config.policy != "latest_per_key":
            raise InvalidArgumentError(f"a key needs a room with policy latest_per_key; {room!r} has {config.policy}")
        except_id = _id_of(except_conn)
        if config.history:
            pending = self.store.publish(room, config, opcode, data, except_id, key)
            return getattr(pending, "failures", 0), pending
        frame = encode_frame(opcode, data)
        self.registry._publish(room, frame, except_conn)  # a policy room without history: as any room remotely
        with state.lock:
            return self.deliver(room, state, 0, frame, except_id, key), None

    def deliver(self, room: str, state: _RoomState, offset: int, frame: bytes, except_id: int, key: str | None) -> int:
        """Hand ``frame`` (offset ``offset`` of the room; 0 without history) to the local members (under
        ``state.lock``); the failures."""
        registry = self.registry
        targets, excluded = registry._snapshot(room, except_id)
        if not targets:
            return 0
        recovering = state.recovering
        if recovering:
            for conn_id, kept in recovering.items():
                if excluded is None or excluded.id != conn_id:
                    kept.append((offset, frame))
            targets = [c for c in targets if c.id not in recovering]
        if state.policy is not None:
            failures = state.policy.offer(targets, excluded, frame, key)
        elif registry._deflated.get(room):
            from snow_rt_py.runtime.rooms import _Partition

            message = _message(frame)
            failures = registry._offer_compressed(_Partition(targets), excluded, [frame], [message], False)
        else:
            from snow_rt_py.runtime.rooms import _offer_all

            failures = _offer_all(targets, frame, None, excluded)
        registry.deliveries += len(targets) - (excluded is not None and excluded in targets) - failures
        return failures

    def deliver_ordered(self, message: HistoryMessage) -> None:
        """A broadcast to a room with history as Redis ordered it (any node's, this one's too): its envelope is
        built once here and handed to the local members in the channel's order (redis_history.py)."""
        room, position = message.room, message.position
        frame = envelope_frame(room, position.epoch, position.offset, message.opcode, message.data)
        state = self._states.get(room)
        if state is None:  # not configured on this node: its members get the envelope all the same
            from snow_rt_py.runtime.rooms import _offer_all

            targets, excluded = self.registry._snapshot(room, message.except_id, count=False)
            _offer_all(targets, frame, None, excluded)
            return
        with state.lock:
            self.deliver(room, state, position.offset, frame, message.except_id, message.key)

    def member_left(self, room: str, conn_id: int) -> None:
        """(under the registry's lock) ``conn_id`` left ``room``: its pending messages go."""
        state = self._states.get(room)
        if state is not None and state.policy is not None:
            state.policy.forget(conn_id)

    # -- reading and recovering --------------------------------------------------------------------------------

    def _history_config(self, room: str) -> tuple[RoomConfig, _RoomState]:
        config = self.configs.get(room)
        state = self._states.get(room)
        if config is None or state is None or not config.history:
            raise InvalidArgumentError(f"room {room!r} keeps no history (configure_room with history_size > 0)")
        return config, state

    def history(self, room: str, since: int, limit: int) -> HistoryPage:
        """The messages after offset ``since``, at most ``limit`` (see :class:`HistoryPage`)."""
        config, _ = self._history_config(room)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidArgumentError(f"since must be an offset >= 0, got {since!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= READ_LIMIT_MAX:
            raise InvalidArgumentError(f"limit must be between 0 and {READ_LIMIT_MAX}, got {limit!r}")
        read = self.store.read(room, config, since, limit)
        if since > read.top:
            raise InvalidArgumentError(f"offset {since} is in the future: room {room!r} is at {read.top}")
        items = [HistoryItem(e.offset, e.data.decode() if e.opcode == Opcode.TEXT else e.data) for e in read.entries]
        return HistoryPage(Position(read.epoch, read.top), items, read.complete)

    def position(self, room: str) -> Position:
        """The room's current position."""
        config, _ = self._history_config(room)
        read = self.store.read(room, config, 1 << 62, 0)
        return Position(read.epoch, read.top)

    def join_from(self, conn: Connection, room: str, epoch: str, offset: int, meta: str | None) -> Recovery:
        """Join ``room`` from position ``(epoch, offset)`` (see the module rules)."""
        check_position(epoch, offset)
        config, state = self._history_config(room)
        store = self.store
        registry = self.registry
        if store.local:
            now = self.local_store.read(room, config, 1 << 62, 0)
            if epoch == now.epoch and offset > now.top:
                raise InvalidArgumentError(f"offset {offset} is in the future: room {room!r} is at {now.top}")
        was_member = room in conn.rooms_joined
        with state.lock:
            state.recovering[conn.id] = []
            if state.policy is not None:
                state.policy.forget(conn.id)
        try:
            registry.join(conn, room, meta)
            store.ready(room)
            read = store.read(room, config, offset, config.history_size)
        except BaseException:
            with state.lock:
                state.recovering.pop(conn.id, None)
            raise
        with state.lock:
            kept = state.recovering.pop(conn.id, [])
            if epoch == read.epoch and offset > read.top:
                if not was_member:
                    registry.leave(conn, room)
                raise InvalidArgumentError(f"offset {offset} is in the future: room {room!r} is at {read.top}")
            recovered = epoch == read.epoch and read.complete
            frames: list[bytes] = []
            last = offset
            if recovered:  # the history after the offset, then the live messages kept meanwhile that follow it
                for entry in read.entries:
                    if entry.offset > last:
                        frames.append(entry.frame)
                        last = entry.offset
                count = len(frames)
                for kept_offset, frame in kept:
                    if kept_offset > last:
                        frames.append(frame)
                        last = kept_offset
            else:  # joined from now on: the live messages kept since the join
                count = 0
                last = read.top
                for kept_offset, frame in kept:
                    frames.append(frame)
                    last = max(last, kept_offset)
            if frames:
                conn.offer_frame(frames[0] if len(frames) == 1 else b"".join(frames), len(frames))
            self.counters["recoveries" if recovered else "unrecoverable"] += 1
        return Recovery(recovered, Position(read.epoch, max(last, read.top)), count)

    def statistics(self) -> dict[str, int]:
        """The counters, and the bytes held in pending lists now (``policy_pending_bytes``)."""
        out = dict(self.counters)
        out["policy_pending_bytes"] = sum(
            s.policy.pending_bytes() for s in list(self._states.values()) if s.policy is not None
        )
        return out


class LocalStore:
    """The in-process history store: one :class:`LocalHistory` per room, served at once."""

    local = True

    def __init__(self, rooms: HistoryRooms) -> None:
        self.rooms = rooms
        self._histories: dict[str, LocalHistory] = {}
        self._lock = threading.Lock()

    def _history(self, room: str, config: RoomConfig) -> LocalHistory:
        history = self._histories.get(room)
        if history is None:
            with self._lock:
                history = self._histories.get(room)
                if history is None:
                    history = self._histories[room] = LocalHistory(room, config)
        return history

    def publish(
        self, room: str, config: RoomConfig, opcode: int, data: bytes, except_id: int, key: str | None
    ) -> PendingPosition[Position]:
        state = self.rooms.state(room)
        assert state is not None
        history = self._history(room, config)
        with state.lock:
            entry = history.append(opcode, data)
            failures = self.rooms.deliver(room, state, entry.offset, entry.frame, except_id, key)
        done: PendingPosition[Position] = _Done()
        done.failures = failures  # type: ignore[attr-defined]
        done.set_result(Position(history.epoch, entry.offset))
        return done

    def read(self, room: str, config: RoomConfig, since: int, limit: int) -> HistoryRead:
        return self._history(room, config).read(since, limit)

    def ready(self, room: str) -> None:
        """Every member of this process is served at once."""

    def forget(self, room: str) -> None:
        with self._lock:
            self._histories.pop(room, None)


class _Done(PendingPosition):  # type: ignore[type-arg]
    """A position known at once (and the broadcast's local failures)."""

    failures = 0


def _id_of(conn: Connection | int | None) -> int:
    if conn is None:
        return 0
    return conn if isinstance(conn, int) else conn.id


def _message(frame: bytes) -> tuple[int, bytes] | None:
    from snow_rt_py.runtime.rooms import _message_of

    return _message_of(frame)


__all__ = ["HistoryItem", "HistoryPage", "HistoryRooms", "Recovery", "open_envelope"]
