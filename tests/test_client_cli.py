"""``snow-ws client``: --echo, the interactive mode, and the one-line errors (run as the installed program)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tests import support

SNOW_WS = [sys.executable, "-m", "snow_rt_py"]


class SaysThenCloses(support.Recorder):
    """Sends two messages on connect, then closes once both came back."""

    def on_connect(self, conn: Any, path: str, headers: Any) -> Any:
        super().on_connect(conn, path, headers)
        conn.send("text back")
        conn.send(b"\x00binary")
        return True

    def on_message(self, conn: Any, message: str | bytes) -> None:
        self.record("message", conn.id, message)
        if len(self.of("message")) == 2:
            conn.close(1000, "enough")


def test_echo_sends_every_message_back_as_it_came_and_exits_0(start_server: Any) -> None:
    server_log = SaysThenCloses()
    server = start_server(server_log)
    result = subprocess.run([*SNOW_WS, "client", "--echo", server.url], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr) == (0, "")
    assert [m[2] for m in server_log.of("message")] == ["text back", b"\x00binary"]


def test_interactive_prints_what_arrives_and_ctrl_d_closes_with_1000(start_server: Any) -> None:
    server_log = SaysThenCloses()
    server = start_server(server_log)
    proc = subprocess.Popen(
        [*SNOW_WS, "client", server.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == "text back\n"
    assert proc.stdout.readline() == "<binary 7 bytes: 0062696e617279>\n"
    proc.stdin.write("from stdin\n")
    proc.stdin.close()  # Ctrl-D
    assert proc.wait(30) == 0
    assert proc.stderr is not None and proc.stderr.read() == "connection closed: 1000\n"
    assert proc.stdout.read() == ""
    # The server closed after two messages (1000 "enough") or got our Close (1000) first: 1000 either way.
    assert server_log.wait_close(10)[0] == 1000


def test_errors_are_one_line() -> None:
    for argv, status, line in [
        (
            ["ws://127.0.0.1:1/"],
            1,
            "snow-ws: error: cannot connect to ws://127.0.0.1:1/: connection refused (127.0.0.1:1)",
        ),
        (["http://x/"], 2, "snow-ws: error: invalid URL 'http://x/': the scheme must be ws:// or wss://"),
        (["ws://x/", "--header", "nocolon"], 2, "snow-ws: error: --header: 'nocolon' is not 'NAME: VALUE'"),
        (
            ["ws://x/", "--ping-interval", "-1"],
            2,
            "snow-ws: error: --ping-interval: -1 is not a number of seconds >= 0",
        ),
    ]:
        result = subprocess.run([*SNOW_WS, "client", *argv], capture_output=True, text=True, timeout=30)
        assert (result.returncode, result.stdout, result.stderr) == (status, "", line + "\n")
