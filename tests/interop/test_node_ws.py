"""Node's ``ws`` package as a real client: text, binary, large messages, ping/pong, the heartbeat, close codes in
both directions, protocol violations seen from node, ChatApp's line protocol and 200 concurrent connections.

Each test starts our server through the Python API and runs one scenario of ``ws_client.mjs``, which prints the
facts as JSON; the assertions are here.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
import trustme

from snow_rt_py import Connection, Headers, Reject
from snow_rt_py.apps import ChatApp, EchoApp
from tests.interop.conftest import Recording

pytestmark = pytest.mark.timeout(60)

MIB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_text_messages_echo_as_text(start_server, run_node) -> None:
    handler = Recording()
    srv = start_server(handler)
    result = run_node("ws_client.mjs", "text", srv.url)
    assert result["errors"] == []
    # ws offers permessage-deflate; the default mode (shared) accepts it (ws reports the extension names).
    assert result["extensions"] == "permessage-deflate"
    received = result["received"]
    assert [r["text"] for r in received] == result["sent"]
    assert all(not r["binary"] for r in received)
    assert [r["sha256"] for r in received] == [sha256(t.encode()) for t in result["sent"]]
    assert result["close"]["code"] == 1000  # the server echoes the code (RFC 6455 5.5.1), not the reason
    assert handler.wait_closes(1) == [(1000, "done")]


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
def test_permessage_deflate_text_binary_1_mib_compressible_and_not(start_server, run_node, mode: str) -> None:
    srv = start_server(EchoApp(), compression=mode)
    result = run_node("ws_client.mjs", "deflate", srv.url)
    assert result["errors"] == []
    expected = {
        "shared": {"server_no_context_takeover": True, "client_no_context_takeover": True},
        "dedicated": {"client_max_window_bits": 12},
    }
    assert result["extensions"] == "permessage-deflate"
    assert result["params"] == expected[mode]  # the parameters ws accepted from our answer
    assert len(result["results"]) == 6
    for r in result["results"]:
        assert r["received"] == r["sent"], r["name"]
    assert [r["sent"]["length"] >= MIB for r in result["results"]] == [False, False, True, True, True, True]
    assert result["close"]["code"] == 1000
    stats = srv.server.compression_statistics()
    assert stats[mode] == 1 and stats["fallbacks"] == 0


def test_binary_messages_echo_as_binary(start_server, run_node) -> None:
    srv = start_server(EchoApp())
    result = run_node("ws_client.mjs", "binary", srv.url)
    assert result["errors"] == []
    assert [{"length": r["length"], "sha256": r["sha256"]} for r in result["received"]] == result["sent"]
    assert all(r["binary"] for r in result["received"])
    assert [s["length"] for s in result["sent"]] == [0, 1, 256, 3, 70000]
    assert result["close"]["code"] == 1000


def test_large_messages_up_to_the_16_mib_limit(start_server, run_node) -> None:
    handler = Recording()
    srv = start_server(handler)  # default max_message_size: 16 MiB
    result = run_node("ws_client.mjs", "large", srv.url)
    assert result["errors"] == []
    sizes = {r["name"]: r["sent_length"] for r in result["results"]}
    assert sizes["binary 1 MiB"] == MIB
    assert sizes["binary 16 MiB - 1"] == 16 * MIB - 1
    assert sizes["binary 16 MiB"] == 16 * MIB
    assert sizes["text 1 MiB"] >= MIB
    for r in result["results"]:
        assert r["received"] == {
            "binary": r["name"].startswith("binary"),
            "length": r["sent_length"],
            "sha256": r["sent_sha256"],
        }, r["name"]
    assert result["over_limit"] == {"code": 1009, "reason": "message too big"}
    assert handler.wait_closes(1) == [(1009, "message too big")]


def test_ping_from_node_gets_pong_with_same_payload(start_server, run_node) -> None:
    srv = start_server(EchoApp())
    result = run_node("ws_client.mjs", "ping", srv.url)
    assert result["errors"] == []
    assert result["pongs"] == result["sent"]
    assert len(result["sent"]) == 3 and result["sent"][1] == ""
    assert len(bytes.fromhex(result["sent"][2])) == 125
    assert result["echoed"]["text"] == "after pings"
    assert result["close"]["code"] == 1000


def test_server_heartbeat_is_answered_by_node(start_server, run_node) -> None:
    handler = Recording()
    srv = start_server(handler, ping_interval=0.2, pong_timeout=5.0)
    result = run_node("ws_client.mjs", "heartbeat", srv.url, "1500")
    assert result["errors"] == []
    assert result["pings"] >= 2, result
    assert result["echoed"]["text"] == "still here"
    assert result["close"]["code"] == 1000
    assert handler.wait_closes(1) == [(1000, "")]


def test_client_close_4000_bye_reaches_on_close(start_server, run_node) -> None:
    handler = Recording()
    srv = start_server(handler)
    result = run_node("ws_client.mjs", "client_close", srv.url)
    assert result["errors"] == []
    assert result["echoed"]["text"] == "before close"
    assert result["close"]["code"] == 4000  # the server echoes the code
    assert result["bare_close"]["code"] in (1000, 1005)  # answered with 1000 or an empty Close
    assert result["dropped_close"]["code"] == 1006
    assert sorted(handler.wait_closes(3)) == [(1005, ""), (1006, ""), (4000, "bye")]


def test_server_close_4001_reaches_node(start_server, run_node) -> None:
    handler = Recording()
    srv = start_server(handler)
    result = run_node("ws_client.mjs", "server_close", srv.url)
    assert result["errors"] == []
    assert result["close"] == {"code": 4001, "reason": "server bye"}
    assert result["ready_state"] == 3  # CLOSED
    assert handler.wait_closes(1) == [(4001, "server bye")]


def test_protocol_violations_seen_from_node(start_server, run_node) -> None:
    handler = Recording()
    limit = 64 * 1024
    srv = start_server(handler, max_message_size=limit)
    result = run_node("ws_client.mjs", "violations", srv.url, str(limit))
    expected = {
        "invalid_utf8": 1007,
        "reserved_opcode": 1002,
        "rsv1": 1002,
        "rsv1_continuation": 1002,
        "unmasked": 1002,
        "too_big": 1009,
    }
    assert {name: r["code"] for name, r in result.items()} == expected, result
    for name, r in result.items():
        assert r["errors"] == [], name
        assert r["reason"], f"{name}: the server's close frame should say why"
    closes = handler.wait_closes(len(expected))
    assert Counter(code for code, _ in closes) == Counter(expected.values())


def test_chat_line_protocol_between_two_node_clients(start_server, run_node) -> None:
    srv = start_server(ChatApp())
    result = run_node("ws_client.mjs", "chat", srv.url)
    assert result["errors"] == []
    assert result["log"] == [
        ["a", "joined lobby"],
        ["b", "joined lobby"],
        ["b", "hi from a"],
        ["a", "hi all from b"],
        ["b", "hi all from b"],
        ["a", "joined zeta"],
        ["a", '["lobby", "zeta"]'],
        ["a", "left lobby"],
        ["b", "plain text is echoed"],
        ["a", '["zeta"]'],
    ]


@pytest.mark.parametrize("workers", [0, 2])
def test_200_concurrent_connections(start_server, run_node, workers: int) -> None:
    handler = Recording()
    srv = start_server(handler, workers=workers)
    result = run_node("ws_client.mjs", "concurrent", srv.url, "200")
    assert result["open_errors"] == []
    assert result["opened"] == 200
    assert result["mismatches"] == []
    assert result["matched"] == result["expected"] == 1000
    assert result["close_codes"] == {"1000": 200}
    assert result["errors"] == []
    closes = handler.wait_closes(200)
    assert Counter(closes) == Counter({(1000, ""): 200})


def test_fragmented_messages_from_node(start_server, run_node) -> None:
    srv = start_server(EchoApp())
    result = run_node("ws_client.mjs", "fragments", srv.url)
    assert result["errors"] == []
    assert result["text"]["text"] == "a\u2713b"
    assert result["text"]["binary"] is False
    assert result["binary"] == {"binary": True, "hex": "0102030405"}
    assert result["pong"] == "mid"
    assert result["close"]["code"] == 1000


class Gatekeeper(Recording):
    """Refuses ``/forbidden`` before the upgrade (HTTP 403) and ``/refused`` after it (close 4003); records the
    accepted connections only."""

    def on_upgrade(self, path: str, headers: Headers) -> Reject | None:
        return Reject("no entry", status=403) if path == "/forbidden" else None

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool | Reject:
        if path == "/refused":
            return Reject("not you", code=4003)
        return super().on_connect(conn, path, headers)


def test_handshake_path_headers_and_rejections(start_server, run_node) -> None:
    handler = Gatekeeper()
    srv = start_server(handler)
    result = run_node("ws_client.mjs", "handshake", srv.url)
    assert result["accepted"]["text"] == "hello"
    assert result["accepted_close"]["code"] == 1000
    connects = [
        (path, {name: headers.get(name) or "" for name in ("Authorization", "X-Interop")})
        for _, _, path, headers in handler.of("connect")
    ]
    assert connects == [("/chat/room?user=n%C3%B6de&x=1", {"Authorization": "Bearer token-1", "X-Interop": "node ws"})]
    assert result["upgrade_rejected"]["status"] == 403
    assert "no entry" in result["upgrade_rejected"]["body"]
    assert result["connect_rejected"]["code"] == 4003
    assert result["connect_rejected"]["reason"] == "not you"
    assert result["connect_rejected"]["errors"] == []
    # on_close runs for the accepted connection only (a connection refused by on_connect never opened).
    assert handler.wait_closes(1) == [(1000, "")]


def test_wss_with_node_tls(start_server, run_node, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path, ca_path = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    handler = Recording()
    srv = start_server(handler, tls_cert=cert_path, tls_key=key_path)
    assert srv.url.startswith("wss://127.0.0.1:")
    result = run_node("ws_client.mjs", "tls", srv.url, str(ca_path))
    assert result["errors"] == []
    assert result["text"]["text"] == "secure \u2744"
    assert result["binary"] == [{"length": MIB, "same": True}, {"length": 4 * MIB, "same": True}]
    assert result["pong"] == "tls ping"
    assert result["close"]["code"] == 1000
    assert handler.wait_closes(1) == [(1000, "tls done")]
