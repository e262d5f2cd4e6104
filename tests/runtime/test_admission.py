"""Admission rules over raw sockets on 127.0.0.1: Origin allow-list (403), subprotocols (selection, 400), caps
(503 + Retry-After, open connections untouched), per-IP handshake rate limit (429 + Retry-After), refusals counted
and logged at most once per second per reason. Every refusal happens before any callback."""

from __future__ import annotations

import logging
import math
import time

import pytest
from websockets.sync.client import connect

import snow_rt_py
from snow_rt_py import Reject
from snow_rt_py.testing import RawClient

pytestmark = pytest.mark.timeout(30)

ORIGINS = ["https://app.example.com", "https://*.example.org"]


def handshake(port: int, headers: dict[str, str], source: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One handshake on a fresh socket; the answer, after which the server must close the socket."""
    with RawClient(port, source=source) as raw:
        answer = raw.handshake(headers=headers)
        if answer[0] != 101:
            assert raw.wait_eof(), "the server kept the socket open after refusing"
        return answer


def test_a_disallowed_origin_gets_403_before_any_callback(start_server, recorder) -> None:
    server = start_server(recorder, allowed_origins=ORIGINS)
    status, _, body = handshake(server.port, {"Origin": "https://evil.test"})
    assert status == 403
    assert body == b"Forbidden: origin 'https://evil.test' is not allowed.\n"
    status, _, _ = handshake(server.port, {"Origin": "https://example.org"})  # the wildcard is for subdomains
    assert status == 403
    assert recorder.calls == []  # no on_connect, no on_close
    for allowed in ("https://app.example.com", "https://deep.sub.example.org"):
        with RawClient.connect(server.port, headers={"Origin": allowed}) as ws:
            ws.send_text("hi")
            assert ws.recv_message() == "hi"
    # Without Origin (not a browser): allowed by default, refused with require_origin.
    with RawClient.connect(server.port) as ws:
        ws.send_text("no origin")
        assert ws.recv_message() == "no origin"
    strict = start_server(allowed_origins=ORIGINS, require_origin=True)
    status, _, body = handshake(strict.port, {})
    assert (status, body) == (403, b"Forbidden: an Origin header is required.\n")
    assert server.statistics()["handshakes_refused"]["origin"] == 2


def test_default_is_no_origin_check(start_server) -> None:
    server = start_server()
    with RawClient.connect(server.port, headers={"Origin": "https://anyone.test"}) as ws:
        ws.send_text("x")
        assert ws.recv_message() == "x"


def test_subprotocol_is_selected_in_server_preference_and_never_one_not_offered(start_server, recorder) -> None:
    seen: list[str | None] = []

    class Record(type(recorder)):  # type: ignore[misc]
        def on_connect(self, conn, path, headers):  # type: ignore[no-untyped-def]
            seen.append(conn.subprotocol)
            return super().on_connect(conn, path, headers)

    server = start_server(Record(), subprotocols=["v2.chat", "v1.chat"])
    status, headers, _ = RawClient(server.port).handshake(headers={"Sec-WebSocket-Protocol": "v1.chat, v2.chat"})
    assert (status, headers["sec-websocket-protocol"]) == (101, "v2.chat")
    status, headers, _ = RawClient(server.port).handshake(headers={"Sec-WebSocket-Protocol": "v1.chat, other"})
    assert (status, headers["sec-websocket-protocol"]) == (101, "v1.chat")
    status, headers, _ = RawClient(server.port).handshake(headers={"Sec-WebSocket-Protocol": "other"})
    assert status == 101 and "sec-websocket-protocol" not in headers  # not required: accepted without one
    with connect(server.url, subprotocols=["v1.chat"], open_timeout=5) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "v1.chat"  # an independent client agrees
    with connect(server.url, open_timeout=5) as ws:
        assert ws.subprotocol is None
    assert seen[-5:] == ["v2.chat", "v1.chat", None, "v1.chat", None]


def test_require_subprotocol_refuses_with_400_and_a_reason(start_server, recorder) -> None:
    server = start_server(recorder, subprotocols=["mqtt"], require_subprotocol=True)
    status, _, body = handshake(server.port, {"Sec-WebSocket-Protocol": "chat, v2"})
    assert (status, body) == (400, b"No supported subprotocol: the server speaks mqtt; offered: chat, v2.\n")
    status, _, body = handshake(server.port, {})
    assert (status, body) == (400, b"A subprotocol is required (Sec-WebSocket-Protocol): the server speaks mqtt.\n")
    assert recorder.calls == []
    with pytest.raises(ValueError, match="require_subprotocol needs subprotocols"):
        start_server(require_subprotocol=True)


def test_max_connections_answers_503_and_never_touches_open_connections(start_server, recorder) -> None:
    server = start_server(recorder, max_connections=2, retry_after=7)
    a = RawClient.connect(server.port)
    b = RawClient.connect(server.port)
    for _ in range(3):
        status, headers, body = handshake(server.port, {})
        assert (status, headers["retry-after"], body) == (503, "7", b"Server at its connection limit.\n")
    for ws in (a, b):  # the accepted ones carry on
        ws.send_text("still here")
        assert ws.recv_message() == "still here"
    a.send_close(1000)
    assert a.expect_close()[0] == 1000
    recorder.wait_closes(1)
    with RawClient.connect(server.port) as c:  # room again
        c.send_text("in")
        assert c.recv_message() == "in"
    b.close()
    assert server.statistics()["handshakes_refused"]["max_connections"] == 3
    assert len(recorder.of("connect")) == 3  # the refused ones reached no callback


def test_max_connections_per_ip_counts_each_client_address(start_server) -> None:
    server = start_server(max_connections_per_ip=1)
    first = RawClient.connect(server.port)
    status, headers, _ = handshake(server.port, {})
    assert (status, headers["retry-after"]) == (503, "1")
    with RawClient(server.port, source="127.0.0.2") as other:  # another client IP is not affected
        assert other.handshake()[0] == 101
    first.send_text("ok")
    assert first.recv_message() == "ok"
    first.close()
    assert server.statistics()["handshakes_refused"]["max_connections_per_ip"] == 1


def test_handshake_rate_limit_per_ip_answers_429_with_retry_after(start_server) -> None:
    server = start_server(handshake_rate=0.5, handshake_burst=3)
    for _ in range(3):  # the burst
        with RawClient.connect(server.port):
            pass
    status, headers, body = handshake(server.port, {})
    assert status == 429
    assert 1 <= int(headers["retry-after"]) <= 2  # a token every 2 s
    assert body == b"Too many handshakes from this address; retry later.\n"
    with RawClient(server.port, source="127.0.0.3") as other:  # per IP: another address has its own bucket
        assert other.handshake()[0] == 101
    stats = server.statistics()
    assert stats["handshakes_refused"]["rate_limit"] == 1
    assert stats["connections_total"] == 4


def test_each_refusal_reason_is_logged_at_most_once_per_second(start_server, caplog) -> None:
    server = start_server(allowed_origins=["https://ok.test"], max_connections=1)
    keep = RawClient.connect(server.port, headers={"Origin": "https://ok.test"})
    took = {}
    with caplog.at_level(logging.WARNING, logger="snow_rt_py.admission"):
        for origin, status in (("https://bad.test", 403), ("https://ok.test", 503)):
            started = time.monotonic()
            for _ in range(20):
                assert handshake(server.port, {"Origin": origin})[0] == status
            took[status] = time.monotonic() - started
    records = [r for r in caplog.records if r.name == "snow_rt_py.admission"]
    reasons = [getattr(r, "refusal_reason", None) for r in records]
    # 20 refusals per reason: one record per started second of the burst, whatever the machine's speed.
    assert 1 <= reasons.count("origin") <= math.ceil(took[403]) + 1, (reasons, took)
    assert 1 <= reasons.count("max_connections") <= math.ceil(took[503]) + 1, (reasons, took)
    assert server.statistics()["handshakes_refused"]["origin"] == 20
    assert server.statistics()["handshakes_refused"]["max_connections"] == 20
    keep.close()


def test_malformed_handshakes_and_on_upgrade_refusals_are_counted(start_server, recorder) -> None:
    class Refuse(type(recorder)):  # type: ignore[misc]
        def on_upgrade(self, path, headers):  # type: ignore[no-untyped-def]
            return Reject("no", status=404) if path == "/no" else None

    server = start_server(Refuse())
    with RawClient(server.port) as raw:
        assert raw.handshake(headers={"Sec-WebSocket-Version": "8"})[0] == 426
    with RawClient(server.port) as raw:
        assert raw.handshake("/no")[0] == 404
    refused = server.statistics()["handshakes_refused"]
    assert (refused["bad_request"], refused["on_upgrade"]) == (1, 1)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("allowed_origins", "https://a.test", "a list of origins"),
        ("allowed_origins", ["a.test"], "is not an origin"),
        ("subprotocols", ["a b"], "is not a token"),
        ("max_connections", -1, "max_connections must be >= 0"),
        ("handshake_rate", float("nan"), "handshake_rate must be >= 0"),
        ("handshake_burst", 0, "handshake_burst must be at least 1"),
        ("metrics_path", "metrics", "metrics_path must start with '/'"),
        ("drain_window", -1.0, "drain_window must be >= 0"),
    ],
)
def test_invalid_options_are_refused_with_a_message(start_server, option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        start_server(**{option: value})


def test_the_once_a_second_log_reports_how_many_it_left_out(caplog) -> None:
    from snow_rt_py.protocol.headers import Headers
    from snow_rt_py.runtime.admission import Admission

    now = [100.0]
    admission = Admission(snow_rt_py.ServerOptions(allowed_origins=["https://ok.test"]), clock=lambda: now[0])
    bad = Headers([("Origin", "https://bad.test")])
    with caplog.at_level(logging.WARNING, logger="snow_rt_py.admission"):
        for t in (100.0, 100.5, 100.9, 101.2, 101.3):
            now[0] = t
            refusal = admission.check("10.0.0.1", bad, 0, conn_id=7)
            assert refusal is not None and not isinstance(refusal, str) and refusal.status == 403
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "handshake refused (origin) from 10.0.0.1: Forbidden: origin 'https://bad.test' is not allowed.",
        "handshake refused (origin) from 10.0.0.1: Forbidden: origin 'https://bad.test' is not allowed. "
        "(+2 more refused for this reason since the last record)",
    ]
    assert [r.conn_id for r in caplog.records] == [7, 7]  # type: ignore[attr-defined]
    assert admission.refused["origin"] == 5
