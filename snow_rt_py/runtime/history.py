"""Rooms that remember: a room's options, its history in this process, and the envelope that carries positions.

Rules (Centrifugo's design: a stream with an epoch, publications with offsets):

* A room keeps history only when configured to (:class:`RoomConfig`, ``history_size > 0``); by default no room
  does and costs nothing more. A room with history numbers its broadcasts: offsets 1, 2, 3, ... within an
  **epoch**, a short random name of one life of its history. A history that was lost (this process restarted;
  on a cluster, the Redis stream expired or Redis restarted empty) starts again under a new epoch, so an old
  offset is never matched against a new stream.
* History is bounded by count (``history_size`` messages, the newest kept) and by age (``history_ttl`` seconds,
  0: no age bound). Memory: see README.md ("Rooms that remember"), the formula is :func:`history_bytes`.
* Every message of a room with history reaches its members inside an **envelope** that carries room, epoch and
  offset, built once per broadcast (:func:`envelope`): a text message as the JSON object
  ``{"room":R,"epoch":E,"offset":N,"data":TEXT}``, a binary one as ``0x01, len(E), E, offset (8 bytes,
  big-endian), len(R) (2 bytes, big-endian), R (UTF-8), the message``.
* :class:`LocalHistory` is the in-process store (the default backplane's); the Redis backplane keeps the same
  entries in a Redis stream (redis_history.py). Both give the registry the same :class:`HistoryRead`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import struct
import threading
import time
from typing import NamedTuple

from snow_rt_py.protocol.frames import Opcode, encode_frame
from snow_rt_py.runtime.backplane.base import Position
from snow_rt_py.runtime.errors import InvalidArgumentError

POLICIES = ("default", "drop_oldest", "latest_per_key")
"""Delivery policies for a room's slow members: ``default`` (each connection's own ``slow_consumer``: close or
drop), ``drop_oldest`` and ``latest_per_key`` (see room_delivery.py)."""

HISTORY_SIZE_MAX = 1_000_000
HISTORY_TTL_MAX = 30 * 24 * 3600.0
READ_LIMIT_MAX = 100_000
"""The most messages one history read or one recovery hands back."""
EPOCH_MAX = 32
ENTRY_OVERHEAD = 200
"""Bytes a history entry costs beside its message and its envelope (the Python objects), for the formula."""

PendingPosition = concurrent.futures.Future
"""What a broadcast to a room with history returns: its :class:`Position`, known at once in one process, after
Redis has ordered it on a cluster (``result(timeout)`` waits; not from the event loop thread)."""


class RoomConfig(NamedTuple):
    """A room's options (:func:`snow_rt_py.configure_room`)."""

    history_size: int = 0
    history_ttl: float = 0.0
    policy: str = "default"

    @property
    def history(self) -> bool:
        """True if the room keeps history."""
        return self.history_size > 0


def room_config(history_size: object, history_ttl: object, policy: object) -> RoomConfig:
    """Check a room's options and make its :class:`RoomConfig`.

    Raises:
        InvalidArgumentError: a bound negative, too large or not a number; an unknown policy.
    """
    if isinstance(history_size, bool) or not isinstance(history_size, int):
        raise InvalidArgumentError(f"history_size must be an int, not {type(history_size).__name__}")
    if not 0 <= history_size <= HISTORY_SIZE_MAX:
        raise InvalidArgumentError(f"history_size must be between 0 and {HISTORY_SIZE_MAX}, got {history_size}")
    if isinstance(history_ttl, bool) or not isinstance(history_ttl, int | float):
        raise InvalidArgumentError(f"history_ttl must be a number of seconds, not {type(history_ttl).__name__}")
    if not 0 <= history_ttl <= HISTORY_TTL_MAX:  # NaN fails too
        raise InvalidArgumentError(f"history_ttl must be between 0 and {HISTORY_TTL_MAX:.0f} s, got {history_ttl}")
    if policy not in POLICIES:
        raise InvalidArgumentError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    assert isinstance(policy, str)
    return RoomConfig(history_size, float(history_ttl), policy)


def history_bytes(config: RoomConfig, message_bytes: int, room_bytes: int) -> int:
    """What a full history of ``config`` costs in memory with messages of ``message_bytes`` (the formula the
    README states): each entry holds the message, its enveloped frame and ~:data:`ENTRY_OVERHEAD` bytes."""
    envelope_bytes = message_bytes + room_bytes + 2 * EPOCH_MAX + 64
    return config.history_size * (message_bytes + envelope_bytes + ENTRY_OVERHEAD)


def new_epoch() -> str:
    """A fresh epoch name: 16 hex digits."""
    return os.urandom(8).hex()


def check_position(epoch: object, offset: object) -> None:
    """Check a position a caller gives (join_from, history).

    Raises:
        InvalidArgumentError: the epoch is not a str of 1 to 32 of ``[0-9a-zA-Z_-]``; the offset not an int >= 0.
    """
    if not isinstance(epoch, str) or not 0 < len(epoch) <= EPOCH_MAX or not _EPOCH_CHARS.issuperset(epoch):
        raise InvalidArgumentError(f"unknown epoch {epoch!r}: an epoch is 1 to {EPOCH_MAX} of [0-9a-zA-Z_-]")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidArgumentError(f"offset must be an int >= 0, got {offset!r}")


_EPOCH_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")
_BINARY_HEAD = struct.Struct(">BB")
_OFFSET = struct.Struct(">Q")
_ROOM_LEN = struct.Struct(">H")


def envelope(room: str, epoch: str, offset: int, opcode: int, data: bytes) -> bytes:
    """The envelope's payload for one message (see the module rules); ``data`` is the message's bytes (UTF-8 for
    text)."""
    if opcode == Opcode.TEXT:
        text = data.decode("utf-8", "surrogatepass")
        head = f'{{"room":{json.dumps(room)},"epoch":"{epoch}","offset":{offset},"data":'
        return (head + json.dumps(text, ensure_ascii=False) + "}").encode("utf-8", "surrogatepass")
    name = room.encode("utf-8", "surrogatepass")
    return b"".join(
        (_BINARY_HEAD.pack(1, len(epoch)), epoch.encode(), _OFFSET.pack(offset), _ROOM_LEN.pack(len(name)), name, data)
    )


def envelope_frame(room: str, epoch: str, offset: int, opcode: int, data: bytes) -> bytes:
    """The whole frame of :func:`envelope` (encoded once per broadcast, shared by every member)."""
    return encode_frame(opcode, envelope(room, epoch, offset, opcode, data))


def open_envelope(payload: str | bytes) -> tuple[str, Position, str | bytes]:
    """``(room, position, message)`` of an envelope (a client's view; the tests and the bench use it).

    Raises:
        ValueError: not an envelope.
    """
    if isinstance(payload, str):
        obj = json.loads(payload)
        return obj["room"], Position(obj["epoch"], obj["offset"]), obj["data"]
    version, size = _BINARY_HEAD.unpack_from(payload)
    if version != 1:
        raise ValueError(f"not a binary envelope (version {version})")
    at = 2 + size
    epoch = payload[2:at].decode()
    (offset,) = _OFFSET.unpack_from(payload, at)
    (room_len,) = _ROOM_LEN.unpack_from(payload, at + 8)
    at += 10
    return (
        payload[at : at + room_len].decode("utf-8", "surrogatepass"),
        Position(epoch, offset),
        payload[at + room_len :],
    )


class Entry(NamedTuple):
    """One message of a room's history."""

    offset: int
    time: float  # time.time() when it was broadcast
    opcode: int
    data: bytes
    frame: bytes  # its enveloped frame


class HistoryRead(NamedTuple):
    """A read of a room's history after an offset.

    Attributes:
        epoch, top: the room's current position (top: the last offset given, 0 for none yet).
        entries: the messages after the offset asked for, in order, at most the limit asked for.
        complete: True if the history still held every message after that offset (none trimmed by count or age).
    """

    epoch: str
    top: int
    entries: list[Entry]
    complete: bool


class LocalHistory:
    """One room's history in this process (the in-process store): an epoch, the last offset, the entries."""

    __slots__ = ("_lock", "config", "entries", "epoch", "room", "top")

    def __init__(self, room: str, config: RoomConfig) -> None:
        self.room = room
        self.config = config
        self.epoch = new_epoch()
        self.top = 0
        self.entries: collections.deque[Entry] = collections.deque()
        self._lock = threading.Lock()

    def append(self, opcode: int, data: bytes) -> Entry:
        """Give the next offset to a message, keep it (within the bounds) and return its entry."""
        with self._lock:
            self.top += 1
            entry = Entry(
                self.top, time.time(), opcode, data, envelope_frame(self.room, self.epoch, self.top, opcode, data)
            )
            entries = self.entries
            entries.append(entry)
            while len(entries) > self.config.history_size:
                entries.popleft()
            self._expire(entry.time)
            return entry

    def _expire(self, now: float) -> None:
        ttl = self.config.history_ttl
        if ttl:
            entries = self.entries
            while entries and entries[0].time < now - ttl:
                entries.popleft()

    def read(self, since: int, limit: int) -> HistoryRead:
        """The entries after offset ``since`` (at most ``limit``; see :class:`HistoryRead`)."""
        with self._lock:
            self._expire(time.time())
            entries = self.entries
            first = entries[0].offset if entries else self.top + 1
            complete = since + 1 >= first or since >= self.top
            skip = max(0, since + 1 - first)
            taken = [entries[i] for i in range(skip, min(len(entries), skip + limit))]
            return HistoryRead(self.epoch, self.top, taken, complete)

    def position(self) -> Position:
        """The room's current position (offset 0: nothing broadcast yet in this epoch)."""
        with self._lock:
            return Position(self.epoch, self.top)
