"""Rooms: named groups of connections, and encode-once fan-out.

Rules (one registry per :class:`~snow_rt_py.runtime.runtime.Runtime`, the one place rooms are reached through;
every function is safe from any thread, any actor, at once):

* ``join``/``leave`` are idempotent. A connection can be in any number of rooms. Any ``str`` is a room name
  (empty and non-ASCII included), compared exactly.
* A connection leaves every room when it ends, whatever the cause, before its on_close runs. A connection that is
  closing or has ended cannot join (``ConnectionClosedError``): there are never ghost members.
* ``broadcast`` encodes the frame **once** and queues the same ``bytes`` on every member's outbound queue; it
  never waits for a socket. With permessage-deflate: it is compressed **once** too, and that one compressed frame
  object is queued for every member whose messages start from an empty context (``shared`` mode, one per window
  size); members with a dedicated context get it compressed with theirs; the rest get the plain frame. Members
  are snapshotted under the lock, so a member that leaves or ends concurrently
  either gets the whole message or is counted as a failure, never a partial frame.
* The return value of a broadcast is the number of members the message **could not be queued for**: members
  that were closing or ended at that instant, and members whose outbound queue was full (the slow-consumer policy
  then drops the message for them, and with the default policy closes them with 1008). 0 for an empty or unknown
  room. A queued message is delivered unless the member's connection ends before the kernel accepts it.
* Messages from one broadcaster to one room reach every member in the order they were broadcast (each member's
  queue is FIFO).
* Presence: a member can be given a short ``meta`` string at join (a user name, say); :meth:`presence` lists the
  members (id, node, meta). Handlers that define ``on_presence`` are told, for every room their connection is in,
  who joins and leaves (the joiner included, as the room's newest member).
* The registry serves its local members itself and tells its backplane (runtime/backplane/base.py: one call per
  join, leave and broadcast) what the members of other nodes must hear, whichever backplane it is: in-process
  (the default) has nobody else to tell; Redis (``cluster_url``) carries them to the other nodes, so
  ``broadcast`` reaches their members too (its return value still counts local members only) and
  :meth:`presence` is cluster-wide.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from snow_rt_py.protocol.errors import ProtocolError, UsageError
from snow_rt_py.protocol.frames import Opcode, encode_binary, encode_frame, encode_text, parse_frame
from snow_rt_py.protocol.utf8 import utf8_error
from snow_rt_py.runtime.backplane.base import Backplane, Position
from snow_rt_py.runtime.backplane.local import InProcessBackplane
from snow_rt_py.runtime.compression import compressed_frame, worth_compressing
from snow_rt_py.runtime.connection_base import offer_all as _c_offer_all
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError, InvalidUtf8Error
from snow_rt_py.runtime.history import PendingPosition, RoomConfig
from snow_rt_py.runtime.history_rooms import HistoryRooms
from snow_rt_py.runtime.presence import META_MAX_BYTES, Member, PresenceEvent

if TYPE_CHECKING:
    from snow_rt_py.runtime.connection import Connection


class RoomRegistry:
    """Room membership, with the reverse index kept on each connection (``conn.rooms_joined``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[str, dict[int, Connection]] = {}
        # Counters (statistics): broadcasts to a room with members, and the messages they queued. Plain ints,
        # bumped once per broadcast (deliveries from concurrent broadcasts may rarely miss an update: a gauge of
        # activity, not an account).
        self.broadcasts = 0
        self.deliveries = 0
        self._meta: dict[str, dict[int, str]] = {}  # room -> connection id -> meta, only for members that have one
        self._in_process = InProcessBackplane()
        self.backplane: Backplane = self._in_process  # changed only by attach/detach, under the lock
        self.node = 0  # the backplane's node number, put in Members (0: in-process)
        self.rooms_version = 0  # grows whenever a room gets its first member or loses its last one
        self.presence_watchers = 0  # servers whose handler has on_presence: events are only made when > 0
        # Members with permessage-deflate, per room: a room with none broadcasts through broadcast_frame alone.
        self._deflated: dict[str, int] = {}
        # The members of such a room sorted by how they take a compressed broadcast (made by the first broadcast
        # after a join or leave, which drops it): a broadcast does not look at every member's compression.
        self._partitions: dict[str, _Partition] = {}
        # Rooms configured with history or a delivery policy (history_rooms.py); every other room is served here.
        self.history = HistoryRooms(self)
        self._configured = self.history.configs  # read without the lock: a dict lookup per broadcast

    def configure(self, room: str, config: RoomConfig) -> None:
        """Set ``room``'s options (history, delivery policy); see history_rooms.py.

        Raises:
            InvalidArgumentError: ``room`` is not a str.
        """
        _check_room(room)
        self.history.configure(room, config)

    def join(self, conn: Connection, room: str, meta: str | None = None) -> None:
        """Add ``conn`` to ``room`` (no-op if already a member), with an optional short ``meta`` string (at most
        256 UTF-8 bytes) shown in :meth:`presence`.

        Raises:
            ConnectionClosedError: the connection is closing or has ended.
            InvalidArgumentError: ``room`` is not a str, or ``meta`` is not a str or too long.
        """
        _check_room(room)
        if meta is not None:
            _check_meta(meta)
        with self._lock:
            if conn.rooms_closed or not conn.open:
                raise ConnectionClosedError(f"connection {conn.id} has ended; it cannot join {room!r}")
            members = self._rooms.get(room)
            if members is None:
                members = self._rooms[room] = {}
                self.rooms_version += 1
            elif conn.id in members:
                return
            members[conn.id] = conn
            if conn._deflate is not None:
                self._deflated[room] = self._deflated.get(room, 0) + 1
            self._partitions.pop(room, None)
            if meta:
                self._meta.setdefault(room, {})[conn.id] = meta
            if not conn.rooms_joined:
                conn.rooms_joined = set()  # replaces the shared empty placeholder
            conn.rooms_joined.add(room)
            member = Member(conn.id, self.node, meta or "")
            self.backplane.member_changed(True, room, member)
        if self.presence_watchers:
            self.notify(PresenceEvent(room, "join", member))

    def leave(self, conn: Connection, room: str) -> None:
        """Remove ``conn`` from ``room`` (no-op if not a member). Empty rooms disappear.

        Raises:
            ConnectionClosedError: the connection has ended (it already left every room).
            InvalidArgumentError: ``room`` is not a str.
        """
        _check_room(room)
        with self._lock:
            if conn.rooms_closed:
                raise ConnectionClosedError(f"connection {conn.id} has ended")
            left = self._remove(conn, room)
        if left is not None and self.presence_watchers:
            self.notify(PresenceEvent(room, "leave", left))

    def leave_all(self, conn: Connection) -> None:
        """Called by the runtime when ``conn`` ends: leave every room and refuse later joins. Idempotent."""
        with self._lock:
            conn.rooms_closed = True
            gone = [(room, self._remove(conn, room)) for room in list(conn.rooms_joined)]
        if self.presence_watchers:
            for room, left in gone:
                if left is not None:
                    self.notify(PresenceEvent(room, "leave", left))

    def _remove(self, conn: Connection, room: str) -> Member | None:
        """Remove ``conn`` from ``room`` (under the lock); the member it was, or None if it was not in it."""
        members = self._rooms.get(room)
        left = None
        if members is not None and members.pop(conn.id, None) is not None:
            self._partitions.pop(room, None)
            if conn._deflate is not None:
                count = self._deflated[room] - 1
                if count:
                    self._deflated[room] = count
                else:
                    del self._deflated[room]
            metas = self._meta.get(room)
            meta = metas.pop(conn.id, "") if metas is not None else ""
            if metas is not None and not metas:
                del self._meta[room]
            if not members:
                del self._rooms[room]
                self.rooms_version += 1
            left = Member(conn.id, self.node, meta)
            self.backplane.member_changed(False, room, left)
            if self._configured:
                self.history.member_left(room, conn.id)
        if room in conn.rooms_joined:
            conn.rooms_joined.discard(room)
        return left

    def broadcast(self, room: str, message: str | bytes, except_conn: Connection | int | None = None) -> int:
        """Send ``message`` (text for str, binary for bytes) to every member of ``room`` but ``except_conn``.

        Returns:
            The number of members it could not be queued for (see the module rules); 0 for an unknown room.

        Raises:
            InvalidArgumentError: ``room`` is not a str, or ``message`` is not str/bytes or not valid UTF-8.
        """
        _check_room(room)
        if self._configured and room in self._configured:
            return self.publish(room, message, except_conn)[0]
        try:
            if isinstance(message, str):
                frame = encode_text(message)
                opcode = Opcode.TEXT
            elif isinstance(message, bytes | bytearray | memoryview):
                frame = encode_binary(message)
                opcode = Opcode.BINARY
            else:
                raise InvalidArgumentError(f"message must be str or bytes, not {type(message).__name__}")
        except UsageError as exc:
            raise InvalidArgumentError(str(exc)) from None
        if not self._deflated.get(room):  # nobody to compress for (read without the lock: a hint, see _fan_out)
            return self.broadcast_frame(room, frame, except_conn)
        return self._fan_out(room, frame, except_conn, opcode, message)

    def publish(
        self,
        room: str,
        message: str | bytes,
        except_conn: Connection | int | None = None,
        key: str | None = None,
    ) -> tuple[int, PendingPosition[Position] | None]:
        """:meth:`broadcast`, with the broadcast's position: ``(local failures, position)``, the position None for
        a room without history (on a cluster it is pending until Redis has ordered the message).

        Raises:
            InvalidArgumentError: as broadcast; or ``key`` given for a room whose policy is not latest_per_key.
        """
        _check_room(room)
        if key is not None and not isinstance(key, str):
            raise InvalidArgumentError(f"key must be str, not {type(key).__name__}")
        if isinstance(message, str):
            try:
                data = message.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArgumentError("text is not encodable as UTF-8") from None
            opcode = Opcode.TEXT
        elif isinstance(message, bytes | bytearray | memoryview):
            data, opcode = bytes(message), Opcode.BINARY
        else:
            raise InvalidArgumentError(f"message must be str or bytes, not {type(message).__name__}")
        if room not in self._configured:
            if key is not None:
                raise InvalidArgumentError(f"a key needs a room with policy latest_per_key; {room!r} has default")
            return self.broadcast(room, message, except_conn), None
        return self.history.broadcast(room, opcode, data, except_conn, key)

    def broadcast_utf8(self, room: str, data: bytes, except_conn: Connection | int | None = None) -> int:
        """:meth:`broadcast` of a text message given as its UTF-8 bytes (the C ABI: no decode, no re-encode).

        Raises:
            InvalidUtf8Error: ``data`` is not valid UTF-8 (an InvalidArgumentError; nothing is sent).
        """
        _check_room(room)
        why = utf8_error(data)
        if why is not None:
            raise InvalidUtf8Error(f"not valid UTF-8: {why}")
        if self._configured and room in self._configured:
            return self.history.broadcast(room, Opcode.TEXT, data, except_conn, None)[0]
        if not self._deflated.get(room):
            return self.broadcast_frame(room, encode_frame(Opcode.TEXT, data), except_conn)
        return self._fan_out(room, encode_frame(Opcode.TEXT, data), except_conn, Opcode.TEXT, data)

    def broadcast_frame(self, room: str, frame: bytes, except_conn: Connection | int | None = None) -> int:
        """Queue an encoded ``frame`` for every member of ``room`` but ``except_conn`` (a connection, or a
        connection id: with a cluster, one on any node); return the local failures. With a cluster, one publish
        carries it to the other nodes' members."""
        self._publish(room, frame, except_conn)
        targets, excluded = self._snapshot(room, except_conn)
        failures = _offer_all(targets, frame, None, excluded)
        self.deliveries += len(targets) - (excluded is not None) - failures
        return failures

    def _snapshot(
        self, room: str, except_conn: Connection | int | None, count: bool = True
    ) -> tuple[list[Connection], Connection | None]:
        """A broadcast's members of ``room`` (a snapshot taken under the lock), and the one of them it excludes
        (``except_conn``, or the member with that id), or None; counts the broadcast unless ``count`` is False.
        ``([], None)`` for a room without members here."""
        with self._lock:
            members = self._rooms.get(room)
            if not members:
                return [], None
            excluded = _member(members, except_conn)
            if count:
                self.broadcasts += 1
            return list(members.values()), excluded

    def deliver_remote(self, room: str, frames: list[bytes], except_id: int) -> tuple[int, int]:
        """Broadcasts from another node, in their order: queue the ``frames`` (each a whole encoded message) for
        the local members but ``except_id``. Several frames are joined and queued as one item per member (one
        pass over the room, one write per member), counted as that many messages. Each member's queue is written
        as soon as the frames are on it (the C fan-out's ``write_now``): the first member does not wait until the
        whole room is queued, and with all of a read's broadcasts joined there is nothing to gain by waiting.

        In a room with members that negotiated permessage-deflate, those members get the messages compressed as a
        local broadcast would give them (:meth:`_offer_compressed`).

        Returns:
            ``(queued, failed)`` deliveries.
        """
        if self._configured and room in self._configured:  # a policy room without history (history: redis_history)
            state = self.history.state(room)
            if state is not None:
                with state.lock:
                    failures = sum(self.history.deliver(room, state, 0, one, except_id, None) for one in frames)
                return 0, failures
        if self._deflated.get(room):  # a hint read without the lock, as in broadcast()
            part, excluded = self._partition(room, except_id, count=False)
            failures = self._offer_compressed(part, excluded, frames, [_message_of(one) for one in frames], True)
            return (part.size - (excluded is not None)) * len(frames) - failures, failures
        targets, excluded = self._snapshot(room, except_id, count=False)
        frame = frames[0] if len(frames) == 1 else b"".join(frames)
        failures = _offer_all(targets, frame, None, excluded, len(frames), write_now=True)
        reached = len(targets) - (excluded is not None) - failures
        return reached * len(frames), failures * len(frames)

    def _partition(
        self, room: str, except_conn: Connection | int | None, count: bool = True
    ) -> tuple[_Partition, Connection | None]:
        """:meth:`_snapshot` for a room with members that negotiated permessage-deflate: its members sorted by
        how they take a compressed message (cached until the next join or leave), and the one excluded."""
        with self._lock:
            members = self._rooms.get(room)
            if not members:
                return _Partition([]), None
            part = self._partitions.get(room)
            if part is None:
                part = self._partitions[room] = _Partition(list(members.values()))
            excluded = _member(members, except_conn)
            if count:
                self.broadcasts += 1
            return part, excluded

    def _offer_compressed(
        self,
        part: _Partition,
        excluded: Connection | None,
        frames: list[bytes],
        messages: list[tuple[int, bytes] | None],
        write_now: bool,
    ) -> int:
        """Queue the messages ``frames`` (each a whole plain frame; ``messages``: each one's opcode and payload, or
        None to send it as it is) for the members of ``part`` but ``excluded``; the failed deliveries.

        Plain members get the frames as they are; the members that share frames get each message compressed once
        per group, from their ``compression_min_size`` on and when it compresses (RFC 7692 §6 lets any message
        go plain); a member with its own context gets them compressed one by one. Several messages (a run from
        another node) are joined into one item per member of the first two kinds: one write each.
        ``write_now``: see :func:`_offer_all`."""
        count = len(frames)
        compressible = [m if m is not None and worth_compressing(m[1]) else None for m in messages]
        joined = frames[0] if count == 1 else b"".join(frames)
        failures = count * _offer_all(part.plain, joined, None, excluded, count, write_now)
        for (_, min_size), group in part.groups.items():
            deflate = group[0]._deflate
            assert deflate is not None
            items = [
                (one, None)
                if m is None or len(m[1]) < min_size
                else compressed_frame(m[0], deflate.compress_shared(m[1]))  # once for the group
                for one, m in zip(frames, compressible, strict=True)
            ]
            if count == 1:  # a large payload stays apart from its header (not copied)
                frame, payload = items[0]
            else:
                frame, payload = b"".join(head if rest is None else head + rest for head, rest in items), None
            failures += count * _offer_all(group, frame, payload, excluded, count, write_now)
        unused: dict[tuple[int, bool], tuple[bytes, bytes | None]] = {}  # (frames shared: none, with a context)
        for conn in part.dedicated:
            deflate = conn._deflate
            assert deflate is not None
            if conn is excluded:
                continue
            for one, m in zip(frames, compressible, strict=True):
                if m is None or len(m[1]) < deflate.min_size:
                    failures += not conn.offer_frame(one)
                else:
                    failures += not conn.offer_deflated(m[0], m[1], unused)
        return failures

    def memberships(self, conn: Connection) -> tuple[tuple[str, str | None], ...]:
        """The rooms ``conn`` is a member of, each with the meta it joined with (None: joined without one)."""
        with self._lock:
            return tuple((room, self._meta.get(room, {}).get(conn.id)) for room in conn.rooms_joined)

    # -- presence ------------------------------------------------------------------------------------------

    def _local_members(self, room: str) -> list[Member]:
        """(under the lock)"""
        members = self._rooms.get(room)
        if not members:
            return []
        metas = self._meta.get(room, {})
        node = self.node
        return [Member(i, node, metas.get(i, "")) for i in members]

    def presence(self, room: str) -> list[Member]:
        """The members of ``room``, cluster-wide with a cluster, sorted by id.

        This node's members are exact; other nodes' are as the backplane knows them (with Redis: as this node last
        heard, and for a room with no member on this node read from Redis, a round trip, so not from the event
        loop thread).

        Raises:
            InvalidArgumentError: ``room`` is not a str.
            RuntimeError: a room with no local member, read from the event loop thread with a cluster.
        """
        _check_room(room)
        with self._lock:
            local = self._local_members(room)
        return self.backplane.presence(room, local)

    def presence_count(self, room: str) -> int:
        """``len(presence(room))``: the room's member count, cluster-wide with a cluster."""
        return len(self.presence(room))

    def notify(self, event: PresenceEvent) -> None:
        """Tell every local member of ``event.room`` whose handler has ``on_presence`` (through its actor)."""
        if not self.presence_watchers:
            return
        with self._lock:
            members = self._rooms.get(event.room)
            targets = list(members.values()) if members else []
        for conn in targets:
            if conn.server.wants_presence:
                conn.runtime.actors.send(conn.pid, event)

    def attach(self, backplane: Backplane) -> None:
        """Report to ``backplane`` from now on (it has started), and give members its node number."""
        with self._lock:
            self.node = backplane.node
            self.backplane = backplane

    def detach(self) -> None:
        """Back to the in-process backplane (the one attached is being taken down)."""
        with self._lock:
            self.backplane = self._in_process

    def local_room_set(self) -> set[str]:
        """The rooms with at least one member on this node."""
        with self._lock:
            return set(self._rooms)

    def local_presence(self) -> dict[str, list[Member]]:
        """Every room with local members -> its local members."""
        with self._lock:
            return {room: self._local_members(room) for room in self._rooms}

    def _fan_out(
        self,
        room: str,
        frame: bytes,
        except_conn: Connection | int | None,
        opcode: int,
        message: str | bytes | bytearray | memoryview,
    ) -> int:
        """broadcast_frame, except that members with permessage-deflate get the message compressed: compressed once
        for all whose messages start from an empty context (the same frame object queued for each), per member for
        a dedicated context; members without compression, or for which it is too short, get ``frame``. (A member
        with compression that joins while the count was read as 0 may get this one message plain: RFC 7692 allows
        any message uncompressed.) With a cluster, the other nodes get the plain ``frame`` (one publish), and
        compress it for their own members the same way (:meth:`deliver_remote`)."""
        data = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        self._publish(room, frame, except_conn)
        part, excluded = self._partition(room, except_conn)
        failures = self._offer_compressed(part, excluded, [frame], [(opcode, data)], False)
        self.deliveries += part.size - (excluded is not None) - failures
        return failures

    def _publish(self, room: str, frame: bytes, except_conn: Connection | int | None) -> Position | None:
        """The one call of a broadcast to the backplane: ``frame`` for the other nodes' members of ``room``
        (with a cluster, one publish); the broadcast's position in the room's history, or None (no history)."""
        if except_conn is None:
            except_id = 0
        elif isinstance(except_conn, int):
            except_id = except_conn
        else:
            except_id = except_conn.id
        return self.backplane.broadcast(room, frame, except_id)

    def rooms_of(self, conn: Connection) -> list[str]:
        """The rooms ``conn`` is in, sorted."""
        with self._lock:
            return sorted(conn.rooms_joined)

    def member_count(self, room: str) -> int:
        """How many connections of this node are in ``room`` (0 if unknown); see :meth:`presence_count`."""
        with self._lock:
            return len(self._rooms.get(room, ()))

    def members(self, room: str) -> list[Connection]:
        """A snapshot of the members of ``room``, in joining order."""
        with self._lock:
            return list(self._rooms.get(room, {}).values())

    def room_names(self) -> list[str]:
        """Every room with at least one member, sorted."""
        with self._lock:
            return sorted(self._rooms)


def _offer_all(
    members: list[Connection],
    frame: bytes,
    payload: bytes | None,
    excluded: Connection | None = None,
    count: int = 1,
    write_now: bool = False,
) -> int:
    """Queue the same ``frame`` (and ``payload``, a large frame's, queued apart) on every member but ``excluded``;
    the failures. ``count``: how many messages ``frame`` holds (joined frames). ``write_now``: the C loop writes
    each member's queue at once instead of leaving it to the flush at the end of the loop iteration."""
    if payload is None and _c_offer_all is not None and type(frame) is bytes:
        return _c_offer_all(members, frame, excluded, count, write_now)  # the same loop in C (_connection_out.c)
    failures = 0
    me = threading.get_ident()
    for conn in members:
        if conn is excluded:
            continue
        if not (conn.offer_frame(frame, count) if payload is None else conn.offer_frame(frame, count, payload)):
            failures += 1
        elif write_now and conn._loop_thread == me:
            conn._flush()  # written now, not at the end of the loop iteration
    return failures


def _member(members: dict[int, Connection], conn: Connection | int | None) -> Connection | None:
    """The member of a room's ``members`` that ``conn`` (a connection or a connection id) names, or None."""
    if conn is None:
        return None
    return members.get(conn if isinstance(conn, int) else conn.id)


class _Partition:
    """The members of a room sorted by how they take a compressed broadcast: ``plain`` (no permessage-deflate),
    ``groups`` of members whose messages start from an empty context, by window and ``compression_min_size`` (one
    compressed frame fits a whole group), and ``dedicated`` ones (a context each). Never changed once made."""

    __slots__ = ("dedicated", "groups", "plain", "size")

    def __init__(self, members: list[Connection]) -> None:
        self.size = len(members)
        self.plain: list[Connection] = []
        self.dedicated: list[Connection] = []
        self.groups: dict[tuple[tuple[int, bool], int], list[Connection]] = {}
        for conn in members:
            deflate = conn._deflate
            if deflate is None:
                self.plain.append(conn)
            elif deflate.shares_frames:
                self.groups.setdefault((deflate.key, deflate.min_size), []).append(conn)
            else:
                self.dedicated.append(conn)


def _message_of(frame: bytes) -> tuple[int, bytes] | None:
    """``(opcode, payload)`` of ``frame`` if it is one whole unmasked data frame (FIN, no RSV bits, text or binary,
    nothing after it), as our encoder makes them, else None."""
    try:
        found = parse_frame(frame)
    except ProtocolError:
        return None
    if found is None:
        return None
    one, end = found
    if end != len(frame) or not one.fin or one.rsv or one.masked or one.opcode not in (Opcode.TEXT, Opcode.BINARY):
        return None
    return one.opcode, one.payload


def _check_room(room: object) -> None:
    if not isinstance(room, str):
        raise InvalidArgumentError(f"room name must be str, not {type(room).__name__}")


def _check_meta(meta: object) -> None:
    if not isinstance(meta, str):
        raise InvalidArgumentError(f"meta must be str, not {type(meta).__name__}")
    if len(meta.encode("utf-8", "surrogatepass")) > META_MAX_BYTES:
        raise InvalidArgumentError(f"meta is over {META_MAX_BYTES} UTF-8 bytes")
