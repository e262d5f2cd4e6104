"""A real browser: Debian's headless Chromium, driven by playwright-core from ``browser_chat.mjs``, chatting
through ``examples/chat.html`` served by our own server (``static_dir``) with ChatApp.

The screenshots land in ``artifacts/interop/`` at the repo root.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from snow_rt_py import Connection
from snow_rt_py.apps import ChatApp
from tests.interop.conftest import REPO, Recording

pytestmark = pytest.mark.timeout(60)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def assert_real_screenshot(path: Path) -> None:
    assert path.is_file(), f"no screenshot at {path}"
    width, height = png_size(path)
    assert width >= 600 and height >= 400, (width, height)
    assert path.stat().st_size > 10_000, f"{path} is suspiciously small ({path.stat().st_size} bytes)"


class RecordingChat(ChatApp):
    """ChatApp that also records every on_close."""

    def __init__(self) -> None:
        self.recorder = Recording()

    def on_close(self, conn: Connection, code: int, reason: str) -> None:
        self.recorder.on_close(conn, code, reason)


def test_two_browser_pages_chat_through_chat_html(start_server, node_script, chromium, artifacts) -> None:
    handler = RecordingChat()
    # With a heartbeat: the browser must answer the server's pings on its own, or the pages would be closed 1011.
    srv = start_server(
        handler, static_dir=REPO / "examples", static_index="chat.html", ping_interval=0.5, pong_timeout=10
    )
    for name in ("chat-page1.png", "chat-page2.png", "chat-page2-closed.png"):
        (artifacts / name).unlink(missing_ok=True)
    browser = node_script("browser_chat.mjs", f"http://127.0.0.1:{srv.port}/", str(artifacts))

    result = browser.read_json()
    assert result["console_errors"] == []
    for page in ("page1", "page2"):
        assert result["http"][page]["status"] == 200
        assert result["http"][page]["contentType"].startswith("text/html")
        assert result["state"][page] == "open"
    assert result["title"] == "snow_rt_py chat"

    received = {page: [m["text"] for m in log if m["kind"] == "in"] for page, log in result["log"].items()}
    assert received["page2"] == ["joined lobby", "hello from page 1", "hi everyone from page 2"]
    assert received["page1"] == ["joined lobby", '["lobby"]', "hi everyone from page 2"]
    assert result["page1_saw_own_say"] == 0
    assert "hello from page 1" not in received["page1"]
    sent = [m["text"] for m in result["log"]["page1"] if m["kind"] == "out"]
    assert sent == ["/join lobby", "/say lobby hello from page 1", "/rooms"]

    raw = result["raw"]
    # Chromium offers permessage-deflate on every connection; the default mode accepts it (the page reads
    # ws.extensions), and the 1 MiB messages below go both ways compressed.
    assert raw["extensions"] == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    assert srv.server.compression_statistics()["shared"] >= 3  # both chat pages' sockets and the raw one
    assert raw["text_ok"] and raw["text_length"] >= 1024 * 1024 // 3, raw
    assert raw["binary_ok"] and raw["binary_length"] == 1024 * 1024, raw
    assert raw["close"]["code"] == 4000 and raw["close"]["wasClean"] is True, raw
    assert handler.recorder.wait_closes(1) == [(4000, "bye from browser")]

    assert Path(result["screenshots"]["page2"]) == artifacts / "chat-page2.png"
    assert_real_screenshot(artifacts / "chat-page2.png")
    assert_real_screenshot(artifacts / "chat-page1.png")

    # Server shutdown: both pages get close 1001 and show the connection closed.
    srv.stop(timeout=2.0)
    browser.send_line("stopped")
    after = browser.read_json()
    browser.finish()
    assert after["console_errors"] == []
    for page in ("page1", "page2"):
        assert after["after_stop"][page]["state"] == "closed (1001)"
        assert after["after_stop"][page]["last_event"].startswith("connection closed: 1001")
        assert after["after_stop"][page]["input_disabled"] is True
    assert_real_screenshot(artifacts / "chat-page2-closed.png")
    assert sorted(handler.recorder.wait_closes(3)) == [(1001, "server shutting down")] * 2 + [
        (4000, "bye from browser")
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_origin_allow_list_refuses_a_disallowed_page_and_accepts_an_allowed_one(
    start_server, node_script, chromium
) -> None:
    """The browser sends the page's origin, http://127.0.0.1:PORT: refused (403) by a server that allows only
    https://app.example.com, accepted by one that allows that origin."""
    refusing = start_server(
        static_dir=REPO / "examples", static_index="chat.html", allowed_origins=["https://app.example.com"]
    )
    result = node_script("browser_origin.mjs", f"http://127.0.0.1:{refusing.port}/").read_json()
    assert result["state"] == "closed" and result["label"] == "closed (1006)"
    assert any("403" in error for error in result["console_errors"]), result["console_errors"]
    refused = refusing.statistics()["handshakes_refused"]
    assert refused["origin"] == 1

    port = _free_port()
    accepting = start_server(
        port=port,
        static_dir=REPO / "examples",
        static_index="chat.html",
        allowed_origins=[f"http://127.0.0.1:{port}"],
        require_origin=True,
    )
    result = node_script("browser_origin.mjs", f"http://127.0.0.1:{port}/").read_json()
    assert result["state"] == "open", result
    assert result["console_errors"] == []
    assert accepting.statistics()["connections_total"] == 1
