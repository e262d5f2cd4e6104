"""``snow-ws serve --processes N``: N server processes on one port (SO_REUSEPORT), supervised by this one.

The parent binds nothing itself (with ``--port 0`` it picks a free port first) and starts N children, each the
same command with ``--processes 1 --reuse-port --port P``. When all of them listen it prints the one line
``listening on ws://HOST:PORT/``. SIGTERM or SIGINT to the parent is passed to every child (each closes its
connections with 1001 and exits) and the parent exits 0 once they are gone. A child that exits on its own is
restarted (logged on stderr, at most once a second per child), with the same port; one that cannot start at all
(it exits before listening, e.g. the port is taken or Redis is unreachable) stops the whole group with its error.
If the parent itself dies (even SIGKILL), the children get SIGTERM (Linux) and drain as above.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

READY_TIMEOUT = 60.0
RESTART_MIN_INTERVAL = 1.0


def free_port(host: str) -> int:
    """A TCP port free on ``host`` right now (bound with SO_REUSEPORT, as the children will bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _strip(argv: Sequence[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


class _Child:
    def __init__(self, index: int, argv: list[str]) -> None:
        self.index = index
        self.argv = argv
        self.proc: subprocess.Popen[str] | None = None
        self.ready = threading.Event()
        self.started_at = 0.0

    def start(self) -> None:
        self.ready.clear()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True, name=f"snow-child-{self.index}").start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("listening on "):
                self.ready.set()
            else:
                sys.stdout.write(line)
                sys.stdout.flush()


def supervise(argv: Sequence[str], processes: int, host: str, port: int, scheme: str) -> int:
    """Run ``processes`` children of ``snow-ws serve`` with ``argv`` (the parent's own arguments); see the module."""
    if port == 0:
        port = free_port(host)
    base = _strip(_strip(argv, "--processes"), "--port")
    child_argv = [sys.executable, "-m", "snow_rt_py", *base, "--processes", "1", "--reuse-port", "--port", str(port)]
    children = [_Child(i, child_argv) for i in range(processes)]
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for child in children:
            child.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(c.ready.is_set() for c in children):
            if stop.is_set():
                return _stop_all(children, 0)
            for child in children:
                assert child.proc is not None
                code = child.proc.poll()
                if code is not None and not child.ready.is_set():
                    _stop_all(children, 0)
                    return code or 1
            if time.monotonic() > deadline:
                print("snow-ws: error: the server processes did not start in time", file=sys.stderr)
                return _stop_all(children, 1)
            time.sleep(0.02)
        shown = f"[{host}]" if ":" in host else host
        print(f"listening on {scheme}://{shown}:{port}/", flush=True)
        while not stop.wait(0.1):
            for child in children:
                assert child.proc is not None
                code = child.proc.poll()
                if code is None:
                    continue
                print(
                    f"snow-ws: process {child.index} (pid {child.proc.pid}) exited with "
                    f"{_describe(code)}; restarting it",
                    file=sys.stderr,
                    flush=True,
                )
                wait = RESTART_MIN_INTERVAL - (time.monotonic() - child.started_at)
                if wait > 0 and stop.wait(wait):
                    break
                child.start()
        return _stop_all(children, 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def die_with_parent() -> None:
    """In a child, before exec (``preexec_fn``): get SIGTERM when the parent dies, even by SIGKILL, so no server
    process is left holding the port (Linux's PR_SET_PDEATHSIG, tied to the forking thread; elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def _stop_all(children: list[_Child], status: int) -> int:
    """SIGTERM every child (they close their connections with 1001), wait for them, then return ``status``."""
    for child in children:
        if child.proc is not None and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15.0
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
    return status
