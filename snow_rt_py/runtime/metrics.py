"""OpenMetrics / Prometheus exposition of a server's counters, with the ``prometheus_client`` library.

Nothing here runs per message: the server and its connections keep plain integers (``Server.statistics``), and a
custom collector reads them when a scraper asks. The page is served either on the server's own port, to a plain
HTTP GET of ``metrics_path`` (on the event loop: a scrape costs one ``statistics()`` call and one encoding), or on a
separate ``metrics_port`` by prometheus_client's own HTTP server (a thread of its own).

Metric families (prefix ``snow_ws_``; counters get the ``_total`` suffix in the text):
``connections_open`` (gauge), ``connections`` (accepted), ``handshakes_refused{reason}``, ``messages_in``,
``messages_out``, ``bytes_in``, ``bytes_out``, ``broadcasts``, ``deliveries``, ``queue_drops``,
``slow_consumer_closes``, ``heartbeat_timeouts``, ``closes{code}``, ``handler_crashes``, ``inbound_pauses``;
the rooms' delivery policies ``room_policy_drops``, ``room_policy_replacements`` and recoveries
``room_recoveries{outcome}`` (process-wide, as ``broadcasts``); ``rtt_seconds`` (histogram: the heartbeat's
ping-to-pong round trips on this server).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from snow_rt_py.runtime.errors import ServerStartError
from snow_rt_py.runtime.heartbeat import RTT_BUCKETS

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.exposition import choose_encoder, start_http_server
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError:  # depends on the installation (tests/test_cli.py blocks the import to see this)
    # A start error, as a missing redis package for cluster_url is: the options are fine, the installation is not.
    raise ServerStartError(
        "metrics_path / metrics_port need the prometheus_client library: pip install 'snow_rt_py[metrics]'"
    ) from None

if TYPE_CHECKING:
    from snow_rt_py.runtime.server import Server

_COUNTERS = (
    ("connections_total", "connections", "WebSocket connections accepted"),
    ("messages_in", "messages_in", "data messages received"),
    ("messages_out", "messages_out", "data messages queued for sending"),
    ("bytes_in", "bytes_in", "payload bytes of data messages received"),
    ("bytes_out", "bytes_out", "bytes of data frames queued for sending, headers included"),
    ("broadcasts", "broadcasts", "room broadcasts (the runtime's rooms)"),
    ("deliveries", "deliveries", "messages queued by room broadcasts (the runtime's rooms)"),
    ("queue_drops", "queue_drops", "messages refused by the slow-consumer policy"),
    ("slow_consumer_closes", "slow_consumer_closes", "connections closed 1008 as slow consumers"),
    ("heartbeat_timeouts", "heartbeat_timeouts", "connections failed 1011 for an unanswered ping"),
    ("handler_crashes", "handler_crashes", "handler callbacks that raised"),
    ("inbound_pauses", "inbound_pauses", "times flow control paused reading a socket"),
)


class ServerCollector(Collector):
    """Reads ``Server.statistics()`` at scrape time."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        stats = self.server.statistics()
        yield GaugeMetricFamily("snow_ws_connections_open", "open WebSocket connections", stats["connections_open"])
        for key, name, doc in _COUNTERS:
            yield CounterMetricFamily(f"snow_ws_{name}", doc, stats[key])
        refused = CounterMetricFamily("snow_ws_handshakes_refused", "handshakes refused, by reason", labels=["reason"])
        for reason, count in stats["handshakes_refused"].items():
            refused.add_metric([reason], count)
        yield refused
        closes = CounterMetricFamily("snow_ws_closes", "connections ended, by close code", labels=["code"])
        for code, count in sorted(stats["close_codes"].items()):
            closes.add_metric([str(code)], count)
        yield closes
        rooms = self.server.runtime.rooms.history.statistics()
        yield CounterMetricFamily(
            "snow_ws_room_policy_drops", "room messages dropped by drop_oldest / latest_per_key", rooms["policy_drops"]
        )
        yield CounterMetricFamily(
            "snow_ws_room_policy_replacements",
            "pending room messages replaced by a newer one with the same key (latest_per_key)",
            rooms["policy_replacements"],
        )
        recoveries = CounterMetricFamily("snow_ws_room_recoveries", "join_from calls, by outcome", labels=["outcome"])
        recoveries.add_metric(["recovered"], rooms["recoveries"])
        recoveries.add_metric(["unrecoverable"], rooms["unrecoverable"])
        yield recoveries
        wheel = self.server.heartbeat
        if wheel is not None:
            buckets, total = [], 0
            for bound, count in zip((*RTT_BUCKETS, math.inf), wheel.rtt_counts, strict=True):
                total += count
                buckets.append(("+Inf" if bound == math.inf else repr(bound), total))
            yield HistogramMetricFamily(
                "snow_ws_rtt_seconds",
                "heartbeat ping-to-pong round-trip time",
                buckets=buckets,
                sum_value=wheel.rtt_sum,
            )


class ServerMetrics:
    """A server's metrics registry and, with ``metrics_port``, the HTTP server that exposes it."""

    def __init__(self, server: Server) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServerCollector(server))
        self._httpd: Any = None
        self._thread: Any = None

    def page(self, accept: str | None) -> tuple[int, bytes, str]:
        """``(200, body, content type)``: OpenMetrics if the scraper accepts it, else the Prometheus text format."""
        encoder, content_type = choose_encoder(accept or "")
        return 200, encoder(self.registry), content_type

    def listen(self, host: str, port: int) -> None:
        """Serve the registry at any path of ``host:port`` (prometheus_client's server, on its own thread).

        Raises:
            OSError: the address cannot be bound.
        """
        self._httpd, self._thread = start_http_server(port, addr=host, registry=self.registry)

    @property
    def port(self) -> int | None:
        """The bound metrics port (``metrics_port=0`` picks one), or None."""
        return None if self._httpd is None else int(self._httpd.server_port)

    def close(self) -> None:
        """Stop the metrics HTTP server, if any. Idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
