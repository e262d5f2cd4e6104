"""Server heartbeat over real sockets, with short intervals (no test waits 30 s)."""

from __future__ import annotations

import time

import pytest
from websockets.sync.client import connect

from snow_rt_py.testing import RawClient

pytestmark = pytest.mark.timeout(30)


def test_unanswered_ping_closes_with_1011_and_on_close_reports_it(start_server, recorder) -> None:
    server = start_server(recorder, ping_interval=0.2, pong_timeout=0.3)
    with RawClient.connect(server.port) as c:
        t0 = time.monotonic()
        ping = c.recv_frame()
        assert ping.opcode == 9 and len(ping.payload) == 4
        assert c.expect_close() == (1011, "keepalive ping timeout")
        assert 0.4 < time.monotonic() - t0 < 5
    assert recorder.wait_close() == (1011, "keepalive ping timeout")


def test_mismatched_and_unsolicited_pongs_are_ignored(start_server, recorder) -> None:
    server = start_server(recorder, ping_interval=0.2, pong_timeout=0.4)
    with RawClient.connect(server.port) as c:
        c.send_frame(10, b"unsolicited")
        ping = c.recv_frame()
        assert ping.opcode == 9
        c.send_frame(10, ping.payload[::-1] + b"x")  # wrong payload
        assert c.expect_close()[0] == 1011
    assert recorder.wait_close()[0] == 1011


def test_answered_pings_keep_the_connection_with_fresh_payloads(start_server, recorder) -> None:
    server = start_server(recorder, ping_interval=0.1, pong_timeout=0.3)
    with RawClient.connect(server.port) as c:
        payloads = []
        for _ in range(5):
            ping = c.recv_frame()
            assert ping.opcode == 9
            payloads.append(ping.payload)
            c.send_frame(10, ping.payload)
        assert len(set(payloads)) == 5
        c.send_text("alive")
        assert c.recv_message() == "alive"
    assert recorder.wait_close()[0] == 1006  # we dropped TCP without a close


def test_websockets_client_answers_pings_automatically(start_server) -> None:
    server = start_server(ping_interval=0.1, pong_timeout=0.5)
    with connect(server.url, open_timeout=5, close_timeout=5, ping_interval=None) as ws:
        time.sleep(0.6)  # several heartbeat rounds; the client's library answers each ping
        ws.send("ok")
        assert ws.recv(timeout=5) == "ok"


def test_heartbeat_disabled_sends_no_ping(start_server) -> None:
    server = start_server(ping_interval=0)
    with RawClient.connect(server.port, timeout=0.5) as c, pytest.raises(TimeoutError):
        c.recv_frame()
