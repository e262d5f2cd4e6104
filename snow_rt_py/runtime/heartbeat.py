"""Server-side keepalive: ping every ``interval`` seconds, expect the matching pong within ``timeout``.

Timers come from the connection's event loop (``loop.call_later``), so a heartbeat costs two timer handles and no
thread, and tests can drive it with short intervals. Rules:

* Each ping carries a fresh 4-byte random payload; only a pong echoing the **latest** ping's payload counts.
  Mismatched and unsolicited pongs are ignored (RFC 6455 §5.5.3 allows unsolicited pongs).
* The next ping is due ``interval`` seconds after the previous ping was answered (so a slow peer is never pinged
  twice in a row without answering).
* No matching pong within ``timeout`` -> ``on_timeout()`` (the connection closes with 1011 "keepalive ping
  timeout", the code websockets and browsers use for it: the peer is not going away by itself, something
  unexpected prevented the exchange).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable


class Heartbeat:
    """Ping/pong keepalive for one connection.

    Args:
        loop: the loop whose clock and timers are used.
        interval: seconds between a pong (or the start) and the next ping.
        timeout: seconds the peer has to answer a ping.
        send_ping: called with the payload to send as a Ping frame.
        on_timeout: called once if a ping is not answered in time.
    """

    __slots__ = ("_loop", "_on_timeout", "_pending", "_send_ping", "_timer", "interval", "timeout")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        timeout: float,
        send_ping: Callable[[bytes], None],
        on_timeout: Callable[[], None],
    ) -> None:
        self._loop = loop
        self.interval = interval
        self.timeout = timeout
        self._send_ping = send_ping
        self._on_timeout = on_timeout
        self._pending: bytes | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Schedule the first ping ``interval`` seconds from now."""
        self._timer = self._loop.call_later(self.interval, self._ping)

    def stop(self) -> None:
        """Cancel every timer. Idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = None

    @property
    def awaiting_pong(self) -> bool:
        """True while a ping is outstanding."""
        return self._pending is not None

    def pong_received(self, payload: bytes) -> bool:
        """Tell the heartbeat a pong arrived. Returns True if it answered the outstanding ping."""
        if self._pending is None or payload != self._pending:
            return False
        self._pending = None
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self.interval, self._ping)
        return True

    def _ping(self) -> None:
        self._pending = os.urandom(4)
        self._timer = self._loop.call_later(self.timeout, self._expired)
        self._send_ping(self._pending)

    def _expired(self) -> None:
        self._timer = None
        self._pending = None
        self._on_timeout()
