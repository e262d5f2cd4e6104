"""Server-side keepalive: ping every ``interval`` seconds, expect the matching pong within ``timeout``.

Rules:

* Each ping carries a fresh 4-byte random payload; only a pong echoing the **latest** ping's payload counts.
  Mismatched and unsolicited pongs are ignored (RFC 6455 §5.5.3 allows unsolicited pongs).
* The next ping is due ``interval`` seconds after the previous ping was answered (so a slow peer is never pinged
  twice in a row without answering).
* No matching pong within ``timeout`` -> the connection closes with 1011 "keepalive ping timeout", the code
  websockets and browsers use for it: the peer is not going away by itself, something unexpected prevented the
  exchange.

One :class:`HeartbeatWheel` per server drives every connection's heartbeat with a single loop timer: deadlines
are rounded up to ticks of ``min(interval, timeout) / 10`` and kept in per-tick buckets, so a heartbeat costs a
bucket entry and two attributes per connection, not a timer handle, and ten thousand idle connections cost one
timer. Deadlines fire at most one tick late. Timers come from the loop's clock, so tests drive the heartbeat fast
with short intervals.

Round-trip time: the wheel notes the loop time a ping leaves and, when its pong comes back, keeps the difference as
the connection's RTT (:meth:`HeartbeatWheel.rtt`, in ``conn.statistics()["rtt_us"]`` and the C ABI's
``snow_ws_conn_rtt_us``) and counts it in the server's histogram (:data:`RTT_BUCKETS`, OpenMetrics
``snow_ws_rtt_seconds``). A connection's entries go with its heartbeat (:meth:`HeartbeatWheel.stop`).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
from typing import Protocol

RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the RTT histogram's buckets; a last bucket takes the rest."""


class HeartbeatClient(Protocol):
    """What the wheel needs from a connection."""

    hb_due: int  # the tick the connection is scheduled at, or -1
    hb_payload: bytes | None  # the outstanding ping's payload

    def send_heartbeat_ping(self, payload: bytes) -> None:
        """Send a Ping frame with ``payload``."""

    def heartbeat_expired(self) -> None:
        """The outstanding ping was not answered in time."""


class HeartbeatWheel:
    """Ping/pong keepalive for every connection of a server.

    Args:
        loop: the loop whose clock and timer are used.
        interval: seconds between a pong (or the start) and the next ping.
        timeout: seconds the peer has to answer a ping.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, timeout: float) -> None:
        self._loop = loop
        self.interval = interval
        self.timeout = timeout
        self._tick = max(0.005, min(interval, timeout) / 10)
        self._buckets: dict[int, dict[HeartbeatClient, None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_tick = -1
        self._sent: dict[HeartbeatClient, float] = {}  # loop time the outstanding ping left
        self._rtt: dict[HeartbeatClient, float] = {}  # the last measured round trip, seconds
        self.rtt_counts = [0] * (len(RTT_BUCKETS) + 1)  # the histogram: one count per bucket (not cumulative)
        self.rtt_sum = 0.0

    def rtt(self, conn: HeartbeatClient) -> float | None:
        """The last round-trip time measured on ``conn`` (seconds), or None before its first pong."""
        return self._rtt.get(conn)

    def start(self, conn: HeartbeatClient) -> None:
        """Begin the heartbeat of ``conn``: its first ping is due ``interval`` seconds from now."""
        conn.hb_payload = None
        self._schedule(conn, self.interval)

    def stop(self, conn: HeartbeatClient) -> None:
        """End the heartbeat of ``conn``. Idempotent."""
        bucket = self._buckets.get(conn.hb_due)
        if bucket is not None:
            bucket.pop(conn, None)
            if not bucket:
                del self._buckets[conn.hb_due]
        conn.hb_due = -1
        conn.hb_payload = None
        self._sent.pop(conn, None)
        self._rtt.pop(conn, None)

    def pong_received(self, conn: HeartbeatClient, payload: bytes) -> bool:
        """A pong arrived on ``conn``. Returns True if it answered the outstanding ping."""
        if conn.hb_payload is None or payload != conn.hb_payload or conn.hb_due < 0:
            return False
        sent = self._sent.pop(conn, None)
        self.stop(conn)
        if sent is not None:
            rtt = max(0.0, self._loop.time() - sent)
            self._rtt[conn] = rtt
            self.rtt_sum += rtt
            self.rtt_counts[bisect.bisect_left(RTT_BUCKETS, rtt)] += 1
        self._schedule(conn, self.interval)
        return True

    def close(self) -> None:
        """Stop the timer and forget every connection."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for bucket in self._buckets.values():
            for conn in bucket:
                conn.hb_due = -1
        self._buckets.clear()
        self._sent.clear()
        self._rtt.clear()

    def _schedule(self, conn: HeartbeatClient, delay: float) -> None:
        due = math.ceil((self._loop.time() + delay) / self._tick)
        conn.hb_due = due
        self._buckets.setdefault(due, {})[conn] = None
        if self._timer is None or due < self._timer_tick:
            self._arm(due)

    def _arm(self, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_tick = tick
        self._timer = self._loop.call_at(tick * self._tick, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = math.floor(self._loop.time() / self._tick + 1e-9)
        for tick in sorted(t for t in self._buckets if t <= now):
            for conn in list(self._buckets.pop(tick)):
                conn.hb_due = -1
                if conn.hb_payload is None:  # a ping is due
                    conn.hb_payload = os.urandom(4)
                    self._schedule(conn, self.timeout)
                    self._sent[conn] = self._loop.time()
                    conn.send_heartbeat_ping(conn.hb_payload)
                else:  # the ping was not answered in time
                    conn.hb_payload = None
                    conn.heartbeat_expired()
        if self._buckets:  # the next due bucket may be earlier than what _schedule armed above
            first = min(self._buckets)
            if self._timer is None or first < self._timer_tick:
                self._arm(first)
