"""Server statistics, the OpenMetrics endpoint (same port and separate port), structured logs and the access log."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import snow_rt_py
from snow_rt_py.testing import RawClient

pytestmark = pytest.mark.timeout(30)


def scrape(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class Busy(snow_rt_py.Handler):
    """Echoes; ``join`` joins room r; ``bcast`` broadcasts to it; ``crash`` raises; ``flood`` sends 200 x 64 KiB."""

    def on_message(self, conn: snow_rt_py.Connection, message: str | bytes) -> None:
        if message == "join":
            snow_rt_py.join(conn, "metrics-room")
            conn.send("joined")
        elif message == "bcast":
            conn.runtime.rooms.broadcast("metrics-room", "to all")
        elif message == "crash":
            raise RuntimeError("boom")
        elif message == "flood":
            for _ in range(200):
                conn.send(b"x" * 65536)
        else:
            conn.send(message)


def test_statistics_count_what_happened(start_server) -> None:
    with snow_rt_py.Runtime() as rt:  # its own rooms: broadcasts and deliveries start at 0
        server = rt.start(Busy(), snow_rt_py.ServerOptions(port=0, ping_interval=None))
        a = RawClient.connect(server.port)
        b = RawClient.connect(server.port)
        a.send_text("hello")  # 5 bytes in, 7 out (2-byte header)
        assert a.recv_message() == "hello"
        a.send_binary(b"\x00" * 200)  # 200 bytes in, 204 out (4-byte header)
        assert a.recv_message() == b"\x00" * 200
        for ws in (a, b):
            ws.send_text("join")
            assert ws.recv_message() == "joined"
        a.send_text("bcast")
        assert a.recv_message() == "to all" and b.recv_message() == "to all"
        a.send_text("crash")
        assert a.expect_close() == (1011, "internal error")
        a.send_close(1011)
        slow = RawClient(server.port, rcvbuf=4096)  # never reads: the flood fills its queue
        assert slow.handshake()[0] == 101
        slow.send_text("flood")
        b.send_close(4001, "bye")
        assert b.expect_close()[0] == 4001
        stats = server.statistics()
        for _ in range(100):
            if stats["slow_consumer_closes"]:
                break
            slow.sock.settimeout(0.05)
            with contextlib.suppress(TimeoutError, OSError):
                slow.sock.recv(1)  # almost nothing: the queue stays full
            stats = server.statistics()
        server.stop(1.0)
        stats = server.statistics()
        for ws in (a, b, slow):
            ws.close()
    assert stats["connections_total"] == 3 and stats["connections_open"] == 0
    assert stats["messages_in"] == 7  # hello, binary, 2 joins, bcast, crash, flood
    assert stats["bytes_in"] == 5 + 200 + 4 + 4 + 5 + 5 + 5
    assert stats["broadcasts"] == 1 and stats["deliveries"] == 2
    assert stats["handler_crashes"] == 1
    assert stats["slow_consumer_closes"] == 1 and stats["queue_drops"] >= 1
    assert stats["heartbeat_timeouts"] == 0
    assert stats["close_codes"] == {1011: 1, 4001: 1, 1008: 1}
    assert stats["messages_out"] >= 6  # echoes, joined x 2, broadcast deliveries, plus the flood's queued frames
    assert stats["bytes_out"] >= 7 + 204 + 8 + 8 + 8 + 8


def test_heartbeat_timeouts_are_counted(start_server) -> None:
    server = start_server(ping_interval=0.1, pong_timeout=0.1)
    with RawClient.connect(server.port) as silent:  # answers no ping
        assert silent.expect_close() == (1011, "keepalive ping timeout")
    # The Close reaches the client before the server has seen its TCP connection go (its close code is counted then).
    deadline = time.monotonic() + 5.0
    stats = server.statistics()
    while not stats["close_codes"] and time.monotonic() < deadline:
        time.sleep(0.01)
        stats = server.statistics()
    assert stats["heartbeat_timeouts"] == 1 and stats["close_codes"] == {1011: 1}
    assert stats["inbound_pauses"] == 0


def test_inbound_pauses_are_counted(start_server) -> None:
    import time

    class Slow(snow_rt_py.Handler):
        def on_message(self, conn: snow_rt_py.Connection, message: str | bytes) -> None:
            time.sleep(0.02)  # a slow handler on a worker: the inbox fills up
            conn.send(message)

    server = start_server(Slow(), max_inbox_bytes=1024, workers=1)
    with RawClient.connect(server.port) as ws:
        for i in range(10):
            ws.send_binary(bytes([i]) * 1000)
        assert [ws.recv_message() for _ in range(10)] == [bytes([i]) * 1000 for i in range(10)]
    assert server.statistics()["inbound_pauses"] >= 1


def test_metrics_path_on_the_same_port_and_a_separate_metrics_port(start_server) -> None:
    server = start_server(metrics_path="/metrics", metrics_port=0)
    with RawClient.connect(server.port) as ws:
        ws.send_text("abc")
        assert ws.recv_message() == "abc"
        assert RawClient(server.port).handshake(headers={"Sec-WebSocket-Version": "1"})[0] == 426
        base = f"http://127.0.0.1:{server.port}"
        content_type, text = scrape(f"{base}/metrics")
        assert content_type.startswith("text/plain; version=")  # Prometheus text format
        got = samples(text)
        assert got[("snow_ws_connections_open", ())] == 1
        assert got[("snow_ws_messages_in_total", ())] == 1
        assert got[("snow_ws_bytes_in_total", ())] == 3
        assert got[("snow_ws_handshakes_refused_total", (("reason", "bad_request"),))] == 1
        content_type, text = scrape(f"{base}/metrics?x=1", accept="application/openmetrics-text; version=1.0.0")
        assert content_type.startswith("application/openmetrics-text")
        assert text.rstrip().endswith("# EOF")
        _, separate = scrape(f"http://127.0.0.1:{server.metrics_port}/metrics")
        assert samples(separate)[("snow_ws_messages_in_total", ())] == 1
    with pytest.raises(urllib.error.HTTPError) as err:  # other plain GETs: as before (400 without static_dir)
        scrape(f"{base}/other")
    assert err.value.code == 400


def test_a_metrics_port_in_use_fails_start_with_a_message(start_server) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(snow_rt_py.ServerStartError, match=f"cannot listen for metrics on 127.0.0.1:{port}"):
            start_server(metrics_port=port)


def test_access_log_and_connection_id_on_records(start_server, caplog) -> None:
    server = start_server(Busy(), access_log=True)
    with caplog.at_level(logging.INFO):
        with RawClient.connect(server.port, path="/room?x=1") as ws:
            ws.send_text("hello")
            assert ws.recv_message() == "hello"
            ws.send_text("crash")
            assert ws.expect_close() == (1011, "internal error")
            ws.send_close(1011)
            assert ws.wait_eof()
        server.stop(2.0)
    access = [r for r in caplog.records if r.name == "snow_rt_py.access"]
    assert len(access) == 1
    record = access[0]
    assert (record.path, record.bytes_in, record.bytes_out, record.close_code) == ("/room?x=1", 10, 7, 1011)  # type: ignore[attr-defined]
    assert record.peer.startswith("127.0.0.1:") and record.duration >= 0  # type: ignore[attr-defined]
    crash = [r for r in caplog.records if r.name == "snow_rt_py.connection" and r.levelno == logging.ERROR]
    assert crash and all(r.conn_id == record.conn_id for r in crash)  # type: ignore[attr-defined]
    assert record.getMessage().startswith("127.0.0.1:")
    assert " /room?x=1 " in record.getMessage() and record.getMessage().endswith("in=10 out=7 close=1011")
