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
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from snow_rt_py.protocol.errors import UsageError
from snow_rt_py.protocol.frames import Opcode, encode_binary, encode_frame, encode_text
from snow_rt_py.protocol.utf8 import utf8_error
from snow_rt_py.runtime.compression import compressed_frame, worth_compressing
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError, InvalidUtf8Error

if TYPE_CHECKING:
    from snow_rt_py.runtime.connection import Connection


class RoomRegistry:
    """Room membership, with the reverse index kept on each connection (``conn.rooms_joined``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[str, dict[int, Connection]] = {}
        # Members with permessage-deflate, per room: a room with none broadcasts through broadcast_frame alone.
        self._deflated: dict[str, int] = {}

    def join(self, conn: Connection, room: str) -> None:
        """Add ``conn`` to ``room`` (no-op if already a member).

        Raises:
            ConnectionClosedError: the connection is closing or has ended.
            InvalidArgumentError: ``room`` is not a str.
        """
        _check_room(room)
        with self._lock:
            if conn.rooms_closed or not conn.open:
                raise ConnectionClosedError(f"connection {conn.id} has ended; it cannot join {room!r}")
            members = self._rooms.setdefault(room, {})
            if conn.id not in members and conn._deflate is not None:
                self._deflated[room] = self._deflated.get(room, 0) + 1
            members[conn.id] = conn
            if not conn.rooms_joined:
                conn.rooms_joined = set()  # replaces the shared empty placeholder
            conn.rooms_joined.add(room)

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
            self._remove(conn, room)

    def leave_all(self, conn: Connection) -> None:
        """Called by the runtime when ``conn`` ends: leave every room and refuse later joins. Idempotent."""
        with self._lock:
            conn.rooms_closed = True
            for room in list(conn.rooms_joined):
                self._remove(conn, room)

    def _remove(self, conn: Connection, room: str) -> None:
        members = self._rooms.get(room)
        if members is not None and members.pop(conn.id, None) is not None:
            if conn._deflate is not None:
                left = self._deflated[room] - 1
                if left:
                    self._deflated[room] = left
                else:
                    del self._deflated[room]
            if not members:
                del self._rooms[room]
        if room in conn.rooms_joined:
            conn.rooms_joined.discard(room)

    def broadcast(self, room: str, message: str | bytes, except_conn: Connection | None = None) -> int:
        """Send ``message`` (text for str, binary for bytes) to every member of ``room`` but ``except_conn``.

        Returns:
            The number of members it could not be queued for (see the module rules); 0 for an unknown room.

        Raises:
            InvalidArgumentError: ``room`` is not a str, or ``message`` is not str/bytes or not valid UTF-8.
        """
        _check_room(room)
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

    def broadcast_utf8(self, room: str, data: bytes, except_conn: Connection | None = None) -> int:
        """:meth:`broadcast` of a text message given as its UTF-8 bytes (the C ABI: no decode, no re-encode).

        Raises:
            InvalidUtf8Error: ``data`` is not valid UTF-8 (an InvalidArgumentError; nothing is sent).
        """
        _check_room(room)
        why = utf8_error(data)
        if why is not None:
            raise InvalidUtf8Error(f"not valid UTF-8: {why}")
        if not self._deflated.get(room):
            return self.broadcast_frame(room, encode_frame(Opcode.TEXT, data), except_conn)
        return self._fan_out(room, encode_frame(Opcode.TEXT, data), except_conn, Opcode.TEXT, data)

    def broadcast_frame(self, room: str, frame: bytes, except_conn: Connection | None = None) -> int:
        """Queue an encoded ``frame`` for every member of ``room`` but ``except_conn``; return the failures."""
        with self._lock:
            members = self._rooms.get(room)
            if not members:
                return 0
            targets = list(members.values())
        failures = 0
        for conn in targets:
            if conn is not except_conn and not conn.offer_frame(frame):
                failures += 1
        return failures

    def _fan_out(
        self,
        room: str,
        frame: bytes,
        except_conn: Connection | None,
        opcode: int,
        message: str | bytes | bytearray | memoryview,
    ) -> int:
        """broadcast_frame, except that members with permessage-deflate get the message compressed: compressed once
        for all whose messages start from an empty context (the same frame object queued for each), per member for
        a dedicated context; members without compression, or for which it is too short, get ``frame``. (A member
        with compression that joins while the count was read as 0 may get this one message plain: RFC 7692 allows
        any message uncompressed.)"""
        with self._lock:
            members = self._rooms.get(room)
            if not members:
                return 0
            targets = list(members.values())
        data = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        if not worth_compressing(data):
            return self.broadcast_frame(room, frame, except_conn)
        n = len(data)
        plain: list[Connection] = []
        dedicated: list[Connection] = []
        groups: dict[tuple[int, bool], list[Connection]] = {}  # members sharing one compressed frame, by window
        for conn in targets:
            deflate = conn._deflate
            if conn is except_conn:
                continue
            if deflate is None or n < deflate.min_size:
                plain.append(conn)
            elif deflate.shares_frames:
                groups.setdefault(deflate.key, []).append(conn)
            else:
                dedicated.append(conn)
        failures = _offer_all(plain, frame, None)
        for group in groups.values():
            first = group[0]._deflate
            assert first is not None
            compressed, payload = compressed_frame(opcode, first.compress_shared(data))  # once for the group
            failures += _offer_all(group, compressed, payload)
        shared: dict[tuple[int, bool], tuple[bytes, bytes | None]] = {}
        for conn in dedicated:  # each has its own context: compressed per member
            if not conn.offer_deflated(opcode, data, shared):
                failures += 1
        return failures

    def rooms_of(self, conn: Connection) -> list[str]:
        """The rooms ``conn`` is in, sorted."""
        with self._lock:
            return sorted(conn.rooms_joined)

    def member_count(self, room: str) -> int:
        """How many connections are in ``room`` (0 if unknown)."""
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


def _offer_all(members: list[Connection], frame: bytes, payload: bytes | None) -> int:
    """Queue the same ``frame`` (and ``payload``, a large frame's, queued apart) on every member; the failures."""
    failures = 0
    if payload is None:
        for conn in members:
            if not conn.offer_frame(frame):
                failures += 1
    else:
        for conn in members:
            if not conn.offer_frame(frame, 1, payload):
                failures += 1
    return failures


def _check_room(room: object) -> None:
    if not isinstance(room, str):
        raise InvalidArgumentError(f"room name must be str, not {type(room).__name__}")
