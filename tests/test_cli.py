"""The command line: `python -m snow_rt_py serve ...` as a user runs it."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(30)


def start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "snow_rt_py", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line


def test_serve_prints_one_line_echoes_and_stops_on_sigterm_with_1001() -> None:
    proc, line = start_cli("--app", "echo", "--port", "0")
    try:
        assert line.startswith("listening on ws://127.0.0.1:") and line.endswith("/\n"), line
        url = line.split()[-1]
        with connect(url, open_timeout=5, close_timeout=5) as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
            ws.send(b"\x00\xff")
            assert ws.recv(timeout=5) == b"\x00\xff"
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
            assert ws.close_code == 1001
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_sigint_exits_zero() -> None:
    proc, line = start_cli("--port", "0")
    try:
        assert line.startswith("listening on ws://")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_port_in_use_is_one_line_on_stderr_and_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "snow_rt_py", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "address already in use" in lines[0], proc.stderr


def test_max_message_size_option_is_applied() -> None:
    proc, line = start_cli("--port", "0", "--max-message-size", "100")
    try:
        with connect(line.split()[-1], open_timeout=5, close_timeout=5) as ws:
            ws.send("x" * 100)
            assert ws.recv(timeout=5) == "x" * 100
            ws.send("x" * 101)
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
            assert ws.close_code == 1009
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_console_script_is_installed() -> None:
    script = os.path.join(os.path.dirname(sys.executable), "snow-ws")
    out = subprocess.run([script, "serve", "--help"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and "--max-message-size" in out.stdout


def test_tls_and_heartbeat_flags(tmp_path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    proc, line = start_cli(
        "--port", "0", "--tls-cert", str(cert_path), "--tls-key", str(key_path),
        "--ping-interval", "0.2", "--pong-timeout", "0.3", "--workers", "2",
    )  # fmt: skip
    try:
        assert line.startswith("listening on wss://127.0.0.1:"), line
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        from snow_rt_py.testing import RawClient

        port = int(line.rsplit(":", 1)[1].rstrip("/\n"))
        with RawClient.connect(port, tls=ctx) as c:
            c.send_text("over tls")
            assert c.recv_message() == "over tls"
            assert c.recv_frame().opcode == 9  # the heartbeat pings within 0.2 s
            assert c.expect_close() == (1011, "keepalive ping timeout")  # we never answer
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_missing_tls_file_is_a_one_line_error(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snow_rt_py", "serve", "--port", "0", "--tls-cert", str(tmp_path / "none.pem"),
         "--tls-key", str(tmp_path / "none.key")],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "none.pem" in proc.stderr and "does not exist" in proc.stderr


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snow_rt_py", *args], capture_output=True, text=True, timeout=20, env=env
    )


BAD_OPTIONS = [
    (["--port", "99999"], "--port: 99999 is not a port number (0-65535)"),
    (["--port", "abc"], "--port: abc is not a port number (0-65535)"),
    (["--port"], "--port: needs a value"),
    (["--max-message-size", "-1"], "--max-message-size: -1 is not a number of bytes >= 1"),
    (["--max-message-size=1.5"], "--max-message-size: 1.5 is not a number of bytes >= 1"),
    (["--app", "nosuch"], "--app: nosuch is not echo, chat or bench"),
    (["--bogus", "1"], "--bogus: unknown option (see snow-ws serve --help)"),
    (["stray"], "stray: unexpected argument (see snow-ws serve --help)"),
    (["--pong-timeout", "0"], "--pong-timeout: 0 is not a number of seconds > 0"),
    (["--pong-timeout=-1"], "--pong-timeout: -1 is not a number of seconds > 0"),
    (["--pong-timeout", "nan"], "--pong-timeout: nan is not a number of seconds > 0"),
    (["--drain-timeout", "inf"], "--drain-timeout: inf is not a number of seconds > 0"),
    (["--ping-interval", "-1"], "--ping-interval: -1 is not a number of seconds >= 0"),
    (["--workers", "-1"], "--workers: -1 is not an integer >= 0"),
    (["--max-queue-bytes", "100"], "--max-queue-bytes: 100 is not a number of bytes >= 1024"),
    (["--compression", "zip"], "--compression: zip is not shared, dedicated or off"),
    (["--compression-window-bits", "16"], "--compression-window-bits: 16 is not a window size in bits (8-15)"),
    (["--slow-consumer", "wait"], "--slow-consumer: wait is not close or drop"),
    (["--metrics-path", "metrics"], "--metrics-path: metrics is not a path starting with /"),
    (["--metrics-port", "-5"], "--metrics-port: -5 is not a port number (0-65535)"),
    (["--log-level", "loud"], "--log-level: loud is not debug, info, warning, error or critical"),
    (["--cluster-presence-ttl", "0.1"], "--cluster-presence-ttl: 0.1 is not a number of seconds from 0.2 to 86400"),
    (["--processes", "0"], "--processes: 0 is not a number of processes >= 1"),
    # Checked by ServerOptions.validate(), with its field names put as the options they come from:
    (["--tls-cert", "c.pem"], "--tls-cert and --tls-key must be given together"),
    (["--require-subprotocol"], "--require-subprotocol needs --subprotocol"),
    (["--cluster", "localhost"], "--cluster must look like redis://HOST:PORT/DB, got 'localhost'"),
]


@pytest.mark.parametrize(("args", "error"), BAD_OPTIONS, ids=[" ".join(args) for args, _ in BAD_OPTIONS])
def test_a_bad_option_is_one_line_naming_it_and_exit_2(args: list[str], error: str) -> None:
    proc = run_cli("serve", "--port", "0", *args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"snow-ws: error: {error}\n")


def test_version_prints_the_package_version() -> None:
    import snow_rt_py

    script = os.path.join(os.path.dirname(sys.executable), "snow-ws")
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=20)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"snow-ws {snow_rt_py.__version__}\n", "")
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", snow_rt_py.__version__)


@pytest.mark.parametrize("option", [["--metrics-path", "/metrics"], ["--metrics-port", "0"]])
def test_metrics_without_prometheus_client_is_one_line_and_exit_1(tmp_path: Path, option: list[str]) -> None:
    """As after a plain ``pip install`` without the [metrics] extra: ``import prometheus_client`` fails."""
    blocker = tmp_path / "prometheus_client"
    blocker.mkdir()
    (blocker / "__init__.py").write_text('raise ImportError("prometheus_client is blocked by the test")\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    proc = run_cli("serve", "--port", "0", *option, env=env)
    error = (
        "snow-ws: error: --metrics-path / --metrics-port need the prometheus_client library: "
        "pip install 'snow_rt_py[metrics]'\n"
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", error)


def test_sigterm_drains_with_going_away_spread_over_the_window() -> None:
    """SIGTERM: every client gets 1001 "going away", the closes spread over --drain-window, exit 0."""
    import time

    from snow_rt_py.testing import RawClient

    proc, line = start_cli("--port", "0", "--drain-window", "0.6", "--drain-timeout", "5", "--ping-interval", "0")
    try:
        port = int(line.strip().rstrip("/").rsplit(":", 1)[1])
        clients = [RawClient.connect(port) for _ in range(30)]
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        arrivals: dict[int, float] = {}  # when each client's socket first became readable (its Close arrived)
        waiting = {ws.sock.fileno(): ws for ws in clients}
        while waiting and time.monotonic() - sent < 10:
            readable, _, _ = select.select(list(waiting), [], [], 1.0)
            for fd in readable:
                arrivals[fd] = time.monotonic() - sent
                del waiting[fd]
        for ws in clients:
            assert ws.expect_close() == (1001, "going away")
            ws.send_close(1001)
        spread = max(arrivals.values()) - min(arrivals.values())
        assert len(arrivals) == 30 and spread >= 0.3, arrivals  # spread over the window, not all at once
        assert proc.wait(timeout=10) == 0
        for ws in clients:
            ws.close()
    finally:
        proc.kill()
        proc.wait()


def test_admission_and_metrics_options() -> None:
    import urllib.request

    from snow_rt_py.testing import RawClient

    proc, line = start_cli(
        "--port",
        "0",
        "--allowed-origin",
        "https://*.example.com",
        "--subprotocol",
        "chat",
        "--max-connections",
        "1",
        "--metrics-path",
        "/metrics",
        "--access-log",
    )
    try:
        port = int(line.strip().rstrip("/").rsplit(":", 1)[1])
        with RawClient(port) as raw:
            assert raw.handshake(headers={"Origin": "https://evil.test"})[0] == 403
        ok = RawClient(port)
        status, headers, _ = ok.handshake(headers={"Origin": "https://a.example.com", "Sec-WebSocket-Protocol": "chat"})
        assert (status, headers["sec-websocket-protocol"]) == (101, "chat")
        with RawClient(port) as raw:
            assert raw.handshake()[0] == 503
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert "snow_ws_connections_open 1.0" in text
        assert 'snow_ws_handshakes_refused_total{reason="origin"} 1.0' in text
        ok.send_close(1000)
        assert ok.expect_close()[0] == 1000
        ok.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
        # The refusal log and the access log, each with the connection id in the CLI's format.
        assert "WARNING snow_rt_py.admission [conn " in err and "handshake refused (origin)" in err
        assert "INFO snow_rt_py.access [conn " in err and " / " in err and "close=1000" in err
    finally:
        proc.kill()
        proc.wait()
