"""Round-trip time per connection, measured by the heartbeat: in conn.statistics() and the OpenMetrics histogram;
the rooms' policy counters on the same page."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from tests.support import Recorder

pytestmark = pytest.mark.timeout(30)


def test_rtt_in_statistics_and_metrics(start_server) -> None:
    handler = Recorder()
    server = start_server(handler, ping_interval=0.05, pong_timeout=2.0, metrics_path="/metrics")
    with connect(f"ws://127.0.0.1:{server.port}/") as ws:  # websockets answers pings by itself
        ws.send("hi")
        assert ws.recv(5) == "hi"
        conn = handler.newest()
        assert conn.statistics()["rtt_us"] >= -1
        deadline = time.monotonic() + 10
        while conn.statistics()["rtt_us"] < 0:  # until the first pong came back, bounded
            assert time.monotonic() < deadline, "no pong measured in 10 s"
            threading.Event().wait(0.01)
        rtt = conn.statistics()["rtt_us"]
        assert 0 <= rtt < 2_000_000
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    hist = families["snow_ws_rtt_seconds"]
    assert hist.type == "histogram"
    values = {(s.name, s.labels.get("le")): s.value for s in hist.samples}
    assert values[("snow_ws_rtt_seconds_count", None)] >= 1
    assert values[("snow_ws_rtt_seconds_bucket", "+Inf")] == values[("snow_ws_rtt_seconds_count", None)]
    assert values[("snow_ws_rtt_seconds_sum", None)] >= rtt / 1e6 * 0.5
    assert "snow_ws_room_policy_drops" in families and "snow_ws_room_policy_replacements" in families
    recoveries = {s.labels["outcome"] for s in families["snow_ws_room_recoveries"].samples}
    assert recoveries == {"recovered", "unrecoverable"}
