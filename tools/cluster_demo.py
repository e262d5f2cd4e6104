"""`make cluster`: two chat servers in one cluster, for a person with a browser.

Starts redis-server on a free port (no persistence), the C chat server (examples/chat_server.c) on the first port
and the Python one (`snow-ws serve --app chat`) on the second, both with ``--cluster`` and the chat page. A browser
on each port sees the other's messages and, under the log, who is in the room on both servers. Ctrl-C stops all
three.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from snow_rt_py.supervisor import free_port

ROOT = Path(__file__).resolve().parents[1]


def wait_listening(proc: subprocess.Popen[str], what: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        raise SystemExit(f"cluster_demo: {what} did not start (see its error above)")
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", type=int, nargs=2, default=[8765, 8766])
    args = parser.parse_args()
    redis_port = free_port("127.0.0.1")
    url = f"redis://127.0.0.1:{redis_port}/0"
    procs: list[subprocess.Popen[str]] = []
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            text=True,
        )
        procs.append(redis)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", redis_port), 0.2):
                break
            if time.monotonic() > deadline:
                raise SystemExit("cluster_demo: redis-server did not start")
            time.sleep(0.05)
        page = ["--static-dir", str(ROOT / "examples"), "--static-index", "chat.html"]
        c_server = subprocess.Popen(
            [str(ROOT / "build" / "chat_server"), "--host", args.host, "--port", str(args.ports[0]), "--cluster", url,
             *page],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        procs.append(c_server)
        c_line = wait_listening(c_server, "the C chat server")
        py_server = subprocess.Popen(
            [sys.executable, "-m", "snow_rt_py", "serve", "--app", "chat", "--host", args.host, "--port",
             str(args.ports[1]), "--cluster", url, *page],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        procs.append(py_server)
        py_line = wait_listening(py_server, "the Python chat server")
        print(f"redis-server on {url}")
        print(f"C chat server:      {c_line}  page: http://{args.host}:{args.ports[0]}/")
        print(f"Python chat server: {py_line}  page: http://{args.host}:{args.ports[1]}/")
        print("Open both pages, type `/joinas lobby alice` in one and `/joinas lobby bob` in the other, then")
        print("`/all lobby hi`: each page shows the other's messages and who is in lobby on both servers.")
        print("Ctrl-C stops all three.")
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("cluster_demo: a process exited; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
