"""Who may open a WebSocket: the rules a handshake passes before any callback of the program runs.

Checked in this order when a complete upgrade request has arrived (loop thread), each refusal answered with an
HTTP status, counted by reason and logged at most once per second per reason:

==========================  ======  =========================================================================
reason                      status  rule (ServerOptions)
==========================  ======  =========================================================================
``shutting_down``           503     the server is draining or stopping
``rate_limit``              429     per-IP token bucket (``handshake_rate``, ``handshake_burst``), with
                                    ``Retry-After`` = seconds until the next token
``origin``                  403     ``allowed_origins`` / ``require_origin``
``subprotocol``             400     ``require_subprotocol`` and no offered subprotocol is supported
``max_connections``         503     open WebSocket connections of the server, with ``Retry-After``
``max_connections_per_ip``  503     open WebSocket connections from the request's IP, with ``Retry-After``
==========================  ======  =========================================================================

The runtime counts three more reasons it answers itself: ``bad_request`` (a malformed handshake: 400, 426,
431...), ``handshake_timeout`` (408) and ``on_upgrade`` (the handler's ``on_upgrade`` refused).

Caps count accepted WebSocket connections until their TCP connection is gone, so a refusal never touches an open
connection. Handshakes still in progress are bounded by ``handshake_timeout`` instead.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import NamedTuple

from snow_rt_py.protocol.headers import Headers
from snow_rt_py.protocol.negotiation import offered_subprotocols, select_subprotocol
from snow_rt_py.runtime.options import ServerOptions

log = logging.getLogger("snow_rt_py.admission")

REASONS = (
    "shutting_down",
    "rate_limit",
    "origin",
    "subprotocol",
    "max_connections",
    "max_connections_per_ip",
    "bad_request",
    "handshake_timeout",
    "on_upgrade",
)
"""Every refusal reason, in a fixed order (statistics, the C struct and the metrics list them all)."""

LOG_INTERVAL = 1.0
"""Seconds between two log records of the same refusal reason (the others are counted, and reported with the next)."""

BUCKETS_MAX = 10_000
"""Per-IP rate buckets kept before the full ones (idle IPs) are forgotten."""


class Refusal(NamedTuple):
    """An HTTP answer that refuses a handshake."""

    reason: str  # one of REASONS
    status: int
    text: str  # the body
    headers: tuple[tuple[str, str], ...] = ()


class Admission:
    """The admission rules of one server, and its refusal counters (loop thread only, but the counters, which any
    thread may read).

    Attributes:
        refused: refusals by reason (every reason of REASONS present, 0 at first).
    """

    def __init__(self, options: ServerOptions, clock: Callable[[], float] | None = None) -> None:
        self.options = options
        self.origins = options.origin_policy()
        self.subprotocols = tuple(options.subprotocols)
        self.refused: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.per_ip: dict[str, int] = {}  # open WebSocket connections by client IP
        self._buckets: dict[str, list[float]] = {}  # ip -> [tokens, time of the last refill]
        self._clock: Callable[[], float] = time.monotonic if clock is None else clock
        self._last_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = dict.fromkeys(REASONS, 0)

    def check(self, ip: str, headers: Headers, open_count: int, conn_id: int = 0) -> Refusal | str | None:
        """Decide on a complete upgrade request from ``ip`` (connection ``conn_id``, for the log) while the server
        has ``open_count`` open connections.

        Returns:
            A :class:`Refusal` (already counted and logged), or the selected subprotocol (a str), or None (accepted
            without a subprotocol).
        """
        opts = self.options
        if opts.handshake_rate > 0:
            wait = self._take_token(ip)
            if wait > 0:
                return self.refuse(
                    Refusal(
                        "rate_limit",
                        429,
                        "Too many handshakes from this address; retry later.",
                        (("Retry-After", str(max(1, math.ceil(wait)))),),
                    ),
                    ip,
                    conn_id,
                )
        if self.origins is not None:
            why = self.origins.check(headers)
            if why is not None:
                return self.refuse(Refusal("origin", 403, f"Forbidden: {why}."), ip, conn_id)
        selected = None
        if self.subprotocols:
            offered = offered_subprotocols(headers)
            selected = select_subprotocol(offered, self.subprotocols)
            if selected is None and opts.require_subprotocol:
                wanted = ", ".join(self.subprotocols)
                text = (
                    f"No supported subprotocol: the server speaks {wanted}; offered: {', '.join(offered)}."
                    if offered
                    else f"A subprotocol is required (Sec-WebSocket-Protocol): the server speaks {wanted}."
                )
                return self.refuse(Refusal("subprotocol", 400, text), ip, conn_id)
        retry = (("Retry-After", str(opts.retry_after)),)
        if opts.max_connections and open_count >= opts.max_connections:
            refusal = Refusal("max_connections", 503, "Server at its connection limit.", retry)
            return self.refuse(refusal, ip, conn_id)
        if opts.max_connections_per_ip and self.per_ip.get(ip, 0) >= opts.max_connections_per_ip:
            text = "Too many connections from this address."
            return self.refuse(Refusal("max_connections_per_ip", 503, text, retry), ip, conn_id)
        return selected

    def shutting_down(self, ip: str, conn_id: int = 0) -> Refusal:
        """The refusal of a handshake that completes while the server drains or stops."""
        retry = (("Retry-After", str(self.options.retry_after)),)
        return self.refuse(Refusal("shutting_down", 503, "Server shutting down.", retry), ip, conn_id)

    def opened(self, ip: str) -> None:
        """A connection from ``ip`` was accepted."""
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1

    def closed(self, ip: str) -> None:
        """An accepted connection from ``ip`` is gone."""
        left = self.per_ip.get(ip, 0) - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)

    def refuse(self, refusal: Refusal, ip: str, conn_id: int = 0) -> Refusal:
        """Count a refusal and log it unless one of its reason was logged less than a second ago."""
        self.count(refusal.reason, ip, refusal.text, conn_id)
        return refusal

    def count(self, reason: str, ip: str, detail: str, conn_id: int = 0) -> None:
        """Count one refusal for ``reason``; log it at most once per LOG_INTERVAL per reason, with how many were
        not logged since the last record."""
        self.refused[reason] += 1
        now = self._clock()
        last = self._last_log.get(reason)
        if last is not None and now - last < LOG_INTERVAL:
            self._unlogged[reason] += 1
            return
        self._last_log[reason] = now
        more, self._unlogged[reason] = self._unlogged[reason], 0
        log.warning(
            "handshake refused (%s) from %s: %s%s",
            reason,
            ip,
            detail,
            f" (+{more} more refused for this reason since the last record)" if more else "",
            extra={"refusal_reason": reason, "peer": ip, "conn_id": conn_id},
        )

    def _take_token(self, ip: str) -> float:
        """Take a token from ``ip``'s bucket: 0.0 if there was one, else the seconds until the next one."""
        rate = self.options.handshake_rate
        burst = float(self.options.handshake_burst)
        now = self._clock()
        bucket = self._buckets.get(ip)
        if bucket is None:
            if len(self._buckets) >= BUCKETS_MAX:
                self._forget_full(now, rate, burst)
            bucket = self._buckets[ip] = [burst, now]
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / rate

    def _forget_full(self, now: float, rate: float, burst: float) -> None:
        """Drop the buckets that have refilled (an IP seen long ago is as good as new): memory stays bounded."""
        full = [ip for ip, (tokens, stamp) in self._buckets.items() if tokens + (now - stamp) * rate >= burst]
        for ip in full:
            del self._buckets[ip]
        if len(self._buckets) >= BUCKETS_MAX:  # all busy: forget the oldest half
            for ip in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: BUCKETS_MAX // 2]:
                del self._buckets[ip]
