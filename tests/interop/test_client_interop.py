"""Our client against independent servers: the ``websockets`` library, Node's ``ws``; and through a real proxy
(Debian's tinyproxy, installed by ``tests/proxy/setup.sh``, started here on a free port and stopped)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets.asyncio.server

from snow_rt_py import ConnectError, connect
from tests.interop.conftest import NodeProcess
from tests.runtime.test_client import ClientLog

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"


@pytest.fixture
def websockets_server() -> Iterator[str]:
    """A ``websockets`` echo server (permessage-deflate on) on its own loop thread; its URL."""
    loop = asyncio.new_event_loop()
    ready: list[Any] = []

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        server = await websockets.asyncio.server.serve(echo, "127.0.0.1", 0, compression="deflate")
        ready.append(server)
        await server.serve_forever()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not ready and time.monotonic() < deadline:
        time.sleep(0.01)  # the server is being bound on its own thread: nothing to wait on but the list
    assert ready, "websockets server did not start"
    server = ready[0]
    yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    loop.call_soon_threadsafe(server.close)
    thread.join(10)


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """tinyproxy on a free port, CONNECT allowed to any port of 127.0.0.1; ``(proxy URL, its log file)``."""
    if not Path(TINYPROXY).exists():
        pytest.fail("tinyproxy is missing: run `bash tests/proxy/setup.sh` (make test does)", pytrace=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "tinyproxy.log"
    conf = tmp_path / "tinyproxy.conf"
    conf.write_text(
        f'Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nLogFile "{log}"\nLogLevel Connect\n'
        "MaxClients 20\n"  # no ConnectPort line: CONNECT to any port
    )
    proc = subprocess.Popen([TINYPROXY, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)  # tinyproxy is starting: poll its port
        else:
            pytest.fail("tinyproxy did not start listening")
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("compression", ["off", "shared", "dedicated"])
def test_against_websockets_server(websockets_server: str, compression: str) -> None:
    log = ClientLog()
    client = connect(websockets_server, log, compression=compression)
    conn = client.wait_open(10)
    assert (conn._deflate is not None) == (compression != "off")
    conn.send("hello websockets " * 50)
    conn.send(b"\x00\xff" * 3000)
    log.wait_count("message", 2, timeout=10)
    assert [m[2] for m in log.of("message")] == ["hello websockets " * 50, b"\x00\xff" * 3000]
    client.close(1000, "done")
    client.wait_closed(10)
    assert log.wait_close() == (1000, "done")


def test_against_node_ws_server(node_script: Callable[..., NodeProcess]) -> None:
    node = node_script("ws_server.mjs")
    port = node.read_json()["port"]
    log = ClientLog()
    client = connect(f"ws://127.0.0.1:{port}/", log, compression="shared")
    conn = client.wait_open(10)
    conn.send("hi")
    conn.send(b"\x01\x02")
    conn.send("close me")
    assert log.wait_close(10) == (4000, "node says bye")
    assert [m[2] for m in log.of("message")] == ["node:hi|deflate", b"\x01\x02"]
    client.wait_closed(10)


def test_through_tinyproxy(start_server: Any, tinyproxy: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, proxy_log = tinyproxy
    server = start_server()
    log = ClientLog()
    client = connect(server.url, log, proxy=proxy)
    client.wait_open(10).send("via proxy")
    assert log.wait_count("message", timeout=10)[0][2] == "via proxy"
    client.close()
    client.wait_closed(10)
    assert "CONNECT" in proxy_log.read_text(errors="replace")
    # From the environment (http_proxy for ws://), and no_proxy turning it off again.
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    log = ClientLog()
    client = connect(server.url.replace("127.0.0.1", "localhost"), log)
    client.wait_open(10)
    client.close()
    client.wait_closed(10)
    assert proxy_log.read_text(errors="replace").count("CONNECT") >= 2
    # A proxy that refuses: its status, named.
    log = ClientLog()
    client = connect("ws://127.0.0.1:1/", log, proxy=proxy)
    with pytest.raises(ConnectError, match=rf"^proxy 127.0.0.1:{proxy.rsplit(':', 1)[1]}"):
        client.wait_open(15)
    client.wait_closed(10)
