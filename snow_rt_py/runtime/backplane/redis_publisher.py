"""The connection that carries a cluster node's PUBLISH commands (one of the three of a redis_session.py session).

redis-py's commands are coroutines: a broadcast made on the event loop would reach Redis only after some awaits,
that is after the local members' frames were flushed (a 10,000-member room then reached the other nodes tens of
milliseconds late). This connection is a plain asyncio protocol that speaks just enough RESP to send PUBLISH (and
AUTH): :meth:`Publisher.send` queues the command without waiting, and the commands of one loop iteration leave in
one write, scheduled before the local flush.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
from typing import Any, cast

from snow_rt_py.runtime.backplane.base import Position
from snow_rt_py.runtime.errors import ServerStartError

log = logging.getLogger("snow_rt_py.cluster")

PUBLISH_BUFFER_MAX = 16 * 1024 * 1024
"""Bytes of PUBLISH commands Redis has not taken yet, at most (a slow Redis); more are refused (the backplane
counts them as ``publish_overflow``)."""


class Publisher(asyncio.Protocol):
    """The connection that carries this node's PUBLISH commands.

    ``send`` writes a command straight onto the transport: no await, so a broadcast made on the event loop leaves
    for Redis before the local members' frames are flushed, and costs one ``write`` of a few bytes more. Redis'
    replies (``:N`` subscriber counts) are only counted; an error reply is logged once. Its loss ends the session
    (the session reconnects).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tail = b""
        self._error_logged = False
        self._out: list[bytes] = []  # commands of this loop iteration, written together by _flush
        self._out_bytes = 0
        self._flush_scheduled = False
        # One entry per command written, in order: the future of a history broadcast (redis_history.py), completed
        # by its one-line reply, or None for a reply that is only counted (every reply here is one line).
        self._replies: collections.deque[concurrent.futures.Future[Any] | None] = collections.deque()
        self._futures = 0  # futures in _replies

    @classmethod
    async def open(cls, url: str) -> Publisher:
        """Connect to the Redis of ``url`` (``redis://`` or ``rediss://``; AUTH if it has a password)."""
        from redis.asyncio.connection import parse_url

        params = parse_url(url)
        if not url.startswith(("redis://", "rediss://")) or "host" not in params:
            raise ServerStartError(f"cluster_url {url!r}: use redis://HOST:PORT/DB or rediss://HOST:PORT/DB")
        loop = asyncio.get_running_loop()
        ssl = True if url.startswith("rediss://") else None
        _, publisher = await loop.create_connection(cls, params["host"], params.get("port", 6379), ssl=ssl)
        if params.get("password") is not None:
            args = [b"AUTH"] + ([params["username"].encode()] if params.get("username") else [])
            args.append(str(params["password"]).encode())
            publisher.command(*args)
        return publisher

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        while self._replies:
            waiting = self._replies.popleft()
            if waiting is not None and not waiting.done():
                waiting.set_exception(ConnectionError("the connection to Redis was lost before it answered"))
        if not self.lost.done():
            self.lost.set_result(None)

    async def wait_lost(self) -> None:
        """Wait until the connection is gone, then raise ConnectionError (ends the session's task group)."""
        await asyncio.shield(self.lost)
        raise ConnectionError("the publishing connection to Redis was lost")

    def data_received(self, data: bytes) -> None:
        data = self._tail + data
        end = data.rfind(b"\r\n")
        self._tail = data[end + 2 :] if end >= 0 else data
        replies = self._replies
        if end >= 0 and self._futures:
            for line in data[:end].split(b"\r\n"):
                waiting = replies.popleft() if replies else None
                if waiting is not None:
                    self._futures -= 1
                if waiting is not None and not waiting.done():
                    if line.startswith(b"+"):
                        epoch, _, offset = line[1:].decode("ascii", "replace").partition(":")
                        waiting.set_result(Position(epoch, int(offset)))
                    else:
                        waiting.set_exception(ConnectionError(f"Redis refused the broadcast: {line[:200]!r}"))
        elif end >= 0:
            for _ in range(min(len(replies), data.count(b"\r\n", 0, end + 2))):
                replies.popleft()
        if not self._error_logged and (data.startswith(b"-") or b"\r\n-" in data):
            self._error_logged = True
            log.error("cluster: Redis refused a command: %s", data[: max(0, end)].decode("utf-8", "replace")[:200])

    def command(self, *args: bytes) -> None:
        """Write one command (RESP array of bulk strings) at once."""
        self._flush()
        if self.transport is not None:
            parts = [b"*%d\r\n" % len(args)]
            for arg in args:
                parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
            self.transport.write(b"".join(parts))
            self._replies.append(None)

    def send(self, channel: bytes, head: bytes, body: bytes) -> bool:
        """Queue ``PUBLISH channel head+body`` (loop thread); False (nothing queued) if Redis is too far behind or
        gone. The commands of one loop iteration leave in one write, at the first callback after this one: before
        the local members' frames are flushed, and, for a burst of broadcasts, as one burst that the other nodes
        then also fan out in one go (one flush per member for the whole burst)."""
        transport = self.transport
        if transport is None or transport.get_write_buffer_size() + self._out_bytes > PUBLISH_BUFFER_MAX:
            return False
        size = len(head) + len(body)
        self._out += (
            b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n" % (len(channel), channel, size),
            head,
            body,
            b"\r\n",
        )
        self._out_bytes += size
        self._replies.append(None)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def call(self, args: tuple[bytes, ...], future: concurrent.futures.Future[Any]) -> bool:
        """Queue one command whose one-line reply completes ``future`` (loop thread), as :meth:`send` queues;
        False (nothing queued) if Redis is too far behind or gone."""
        transport = self.transport
        if transport is None or transport.get_write_buffer_size() + self._out_bytes > PUBLISH_BUFFER_MAX:
            return False
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
        self._out += parts
        self._out_bytes += sum(map(len, args))
        self._replies.append(future)
        self._futures += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out, self._out_bytes = self._out, [], 0
        if self.transport is not None and out:
            self.transport.writelines(out)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
