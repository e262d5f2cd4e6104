"""Rooms with history on a cluster: Redis Streams, one script call per broadcast.

Keys (besides redis_codec.py's): ``snow:stream:ROOM``, the room's stream (entry id ``OFFSET-1``, fields ``t``:
Redis' time in ms, ``d``: the opcode byte then the message), and ``snow:meta:ROOM``, a hash: ``e`` the epoch,
``s`` the last offset given. Rules:

* **One round trip per broadcast**: :data:`PUBLISH_SCRIPT`, one ``EVAL`` written on the publishing connection
  without an await, takes the next offset (a missing meta hash -- Redis restarted empty, or the meta expired --
  starts a new epoch and an empty stream), appends with ``XADD ... MAXLEN history_size``, sets the expiry
  (``history_ttl`` on the stream, :data:`META_TTL` on the meta) and PUBLISHes the message with its position on the
  room's channel (kind ``H``: origin node, excluded id, epoch, offset, key). Never one command per member.
* Every node, the broadcaster's included, serves its members from the channel, in the channel's order, which is
  the offsets' (the script runs atomically): the same order on every node (history_rooms.py). The script's reply,
  ``+EPOCH:OFFSET``, completes the broadcast's pending position.
* Reads (a history page, a recovery) are one :data:`READ_SCRIPT` call through redis-py: the epoch, the last
  offset, the oldest offset still held and the entries after the one asked for. They wait for Redis, so they are
  refused on the event loop thread (RuntimeError), as a presence read is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import struct
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from snow_rt_py.protocol.frames import Opcode
from snow_rt_py.runtime.backplane.base import Position
from snow_rt_py.runtime.backplane.redis_session import COMMAND_TIMEOUT
from snow_rt_py.runtime.history import Entry, HistoryRead, PendingPosition, RoomConfig, envelope_frame, new_epoch

if TYPE_CHECKING:
    from snow_rt_py.runtime.backplane.redis_backplane import RedisBackplane

META_TTL = 31 * 24 * 3600
"""Seconds a room's epoch and last offset outlive its last broadcast."""
READY_TIMEOUT = 5.0
"""Seconds a recovery waits for this node's subscription to the room."""

_EPOCH = b"""
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[%d]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
end
"""
# The room's epoch, or a new one (the candidate ARGV[n]) with an empty stream: both scripts start with it.

PUBLISH_SCRIPT = (
    (_EPOCH % 4)
    + b"""
local offset = redis.call('HINCRBY', KEYS[2], 's', 1)
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], offset .. '-1', 't', ms, 'd', ARGV[6])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('PUBLISH', ARGV[1], ARGV[5] .. epoch .. ' ' .. offset .. ' ' .. ARGV[8] .. '\\n' .. ARGV[6])
return {ok = epoch .. ':' .. offset}
"""
)

READ_SCRIPT = (
    (_EPOCH % 3)
    + b"""
redis.call('EXPIRE', KEYS[2], ARGV[4])
local top = tonumber(redis.call('HGET', KEYS[2], 's'))
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first = 0
if oldest[1] then first = tonumber(string.match(oldest[1][1], '^(%d+)')) end
local entries = {}
if tonumber(ARGV[2]) > 0 and tonumber(ARGV[1]) < top then
  entries = redis.call('XRANGE', KEYS[1], (tonumber(ARGV[1]) + 1) .. '-1', '+', 'COUNT', ARGV[2])
end
return {epoch, top, first, entries}
"""
)

_SEQ = struct.Struct(">cQQ")


def stream_key(room: str) -> bytes:
    """The stream of ``room``'s history."""
    return b"snow:stream:" + room.encode("utf-8", "surrogatepass")


def meta_key(room: str) -> bytes:
    """The hash of ``room``'s epoch and last offset."""
    return b"snow:meta:" + room.encode("utf-8", "surrogatepass")


def history_header(node: int, except_id: int) -> bytes:
    """The head of a published message of a room with history (kind ``H``), before ``EPOCH OFFSET KEY\\n``."""
    return _SEQ.pack(b"H", node, except_id)


class HistoryMessage(NamedTuple):
    """A broadcast to a room with history, as it came back from the channel (any node's, ours included)."""

    room: str
    except_id: int
    position: Position
    key: str | None
    opcode: int
    data: bytes


def parse_history(room: str, data: bytes) -> HistoryMessage | None:
    """The message of an ``H`` publication on ``room``'s channel, or None if malformed."""
    size = _SEQ.size
    end = data.find(b"\n", size)
    if end < 0 or len(data) <= end + 1:
        return None
    _, _, except_id = _SEQ.unpack_from(data)
    try:
        epoch, offset, key = data[size:end].decode("ascii").split(" ")
        key_text = bytes.fromhex(key).decode("utf-8", "surrogatepass") if key else None
        return HistoryMessage(room, except_id, Position(epoch, int(offset)), key_text, data[end + 1], data[end + 2 :])
    except ValueError:
        return None


class RedisHistory:
    """The history store of a :class:`~snow_rt_py.runtime.backplane.redis_backplane.RedisBackplane`."""

    local = False

    def __init__(self, backplane: RedisBackplane) -> None:
        self.backplane = backplane
        self.script_calls = 0

    def publish(
        self, room: str, config: RoomConfig, opcode: int, data: bytes, except_id: int, key: str | None
    ) -> PendingPosition[Position]:
        """One EVAL of :data:`PUBLISH_SCRIPT` (see the module rules); the position once Redis answers."""
        future: PendingPosition[Position] = concurrent.futures.Future()
        session = self.backplane.session
        args = (
            b"EVAL",
            PUBLISH_SCRIPT,
            b"2",
            stream_key(room),
            meta_key(room),
            b"snow:room:" + room.encode("utf-8", "surrogatepass"),
            str(config.history_size).encode(),
            str(int(config.history_ttl + 0.999)).encode(),
            new_epoch().encode(),
            history_header(session.node, except_id),
            bytes((opcode,)) + data,
            str(META_TTL).encode(),
            key.encode("utf-8", "surrogatepass").hex().encode() if key else b"",
        )
        if session.on_loop_thread():
            self._send(args, future)
        elif session.loop is not None:
            session.loop.call_soon_threadsafe(self._send, args, future)
        else:
            future.set_exception(ConnectionError("the cluster is not connected"))
        return future

    def _send(self, args: tuple[bytes, ...], future: PendingPosition[Position]) -> None:
        publisher = self.backplane.session.publisher
        if publisher is None or not self.backplane.session.connected or not publisher.call(args, future):
            self.backplane.stats["publish_dropped"] += 1
            future.set_exception(ConnectionError("Redis is unreachable: the broadcast was dropped"))
            return
        self.script_calls += 1

    def read(self, room: str, config: RoomConfig, since: int, limit: int) -> HistoryRead:
        """One call of :data:`READ_SCRIPT` (waits for Redis; RuntimeError on the event loop thread)."""
        raw = self._wait(self._read(room, since, limit))
        epoch, top, first = raw[0].decode(), int(raw[1]), int(raw[2])
        entries = []
        cutoff = (time.time() - config.history_ttl) * 1000 if config.history_ttl else None
        complete = since >= top or (first > 0 and since + 1 >= first)
        for entry_id, fields in raw[3]:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            offset = int(entry_id.split(b"-")[0])
            if cutoff is not None and int(values[b"t"]) < cutoff:
                complete = False
                continue
            body = values[b"d"]
            entries.append(Entry(offset, int(values[b"t"]) / 1000, body[0], body[1:], b""))
        if cutoff is not None and not entries and since < top:
            complete = False
        frames = [e._replace(frame=envelope_frame(room, epoch, e.offset, e.opcode, e.data)) for e in entries]
        return HistoryRead(epoch, top, frames, complete)

    async def _read(self, room: str, since: int, limit: int) -> Any:
        client = self.backplane.session.client
        if client is None:
            raise ConnectionError("Redis is unreachable")
        async with asyncio.timeout(COMMAND_TIMEOUT):
            return await client.eval(
                READ_SCRIPT, 2, stream_key(room), meta_key(room), since, limit, new_epoch(), META_TTL
            )

    def _wait(self, coro: Any) -> Any:
        session = self.backplane.session
        loop = session.loop
        if loop is None:
            coro.close()
            raise ConnectionError("the cluster is not connected")
        if session.on_loop_thread():
            coro.close()
            raise RuntimeError("reading a room's history on a cluster waits for Redis: not on the event loop thread")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(COMMAND_TIMEOUT * 2)

    def ready(self, room: str) -> None:
        """Wait (bounded) until this node's subscription to ``room`` is confirmed: from then on its live messages
        reach this node, and a read made after it misses nothing before them."""
        session = self.backplane.session
        deadline = time.monotonic() + READY_TIMEOUT
        wake = threading.Event()
        while room not in session.subscribed:
            if time.monotonic() > deadline:
                raise ConnectionError(f"this node could not subscribe to room {room!r} in {READY_TIMEOUT:.0f} s")
            wake.wait(0.002)

    def forget(self, room: str) -> None:
        """Nothing is kept on the node: the stream is the history."""

    def received(self, room: str, data: bytes) -> None:
        """An ``H`` message came on ``room``'s channel: serve this node's members."""
        message = parse_history(room, data)
        if message is not None:
            self.backplane.registry.history.deliver_ordered(message)


def is_history(data: bytes) -> bool:
    """True for an ``H`` publication (the first byte of its header)."""
    return data[:1] == b"H"


__all__ = ["Opcode", "RedisHistory", "is_history"]
