"""Interop fixtures: real clients (Node's ``ws``, headless Chromium through playwright-core) against our server.

``bash tests/interop/setup.sh`` installs what these tests need (Debian's chromium, the npm packages of
``package-lock.json`` into ``tests/interop/node_modules``). If anything is missing the tests FAIL, naming what is
missing: a skip would hide that the interop suite did not run.

Each node script prints JSON lines on stdout; :func:`run_node` and :class:`NodeProcess` parse them. Every node
run has a deadline inside the script and a harder one here, and a timed-out script is stopped by process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import CloseOnRequest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ARTIFACTS = REPO / "artifacts" / "interop"
CHROMIUM = Path("/usr/bin/chromium")
SETUP_HINT = "run `bash tests/interop/setup.sh` (make test does it before pytest)"
NODE_TIMEOUT = 50.0  # seconds; the scripts' own deadline (INTEROP_DEADLINE_MS) is shorter


def _fail_setup(what: str) -> None:
    pytest.fail(f"interop prerequisite missing: {what}; {SETUP_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` executable (Node >= 20) with the npm packages installed; fails the test otherwise."""
    path = shutil.which("node")
    if path is None:
        _fail_setup("`node` is not on PATH (Node >= 20 is needed)")
    assert path is not None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    match = re.match(r"v(\d+)\.", out.strip())
    if match is None or int(match.group(1)) < 20:
        _fail_setup(f"Node >= 20 is needed, `node --version` says {out.strip()!r}")
    for package in ("ws", "playwright-core"):
        if not (HERE / "node_modules" / package / "package.json").is_file():
            _fail_setup(f"npm package {package!r} is not installed in {HERE / 'node_modules'}")
    return path


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; fails the test if it is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        _fail_setup(f"{CHROMIUM} is missing (Debian package `chromium`)")
    return CHROMIUM


@pytest.fixture
def artifacts() -> Path:
    """``artifacts/interop/`` at the repo root (git-ignored), created if needed."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the script's process group (playwright-core closes its browser on it), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5.0)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5.0)


class NodeProcess:
    """A node script started in its own process group, read one JSON line at a time."""

    def __init__(self, node: str, script: str, *args: str, timeout: float = NODE_TIMEOUT) -> None:
        self.deadline = time.monotonic() + timeout
        self.name = script
        env = dict(os.environ, INTEROP_DEADLINE_MS=str(int((timeout - 5.0) * 1000)))
        self.proc = subprocess.Popen(
            [node, str(HERE / script), *args],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.stderr: list[str] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self._stdout_thread = threading.Thread(target=self._drain_stdout, daemon=True)
        self._stdout_thread.start()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _drain_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _failure(self, what: str) -> str:
        return f"{self.name}: {what}\n--- stderr ---\n{''.join(self.stderr)[-4000:]}"

    def read_json(self) -> dict[str, Any]:
        """The next line of stdout as JSON; fails the test on a timeout, an exit or an ``error`` result."""
        try:
            line = self.lines.get(timeout=max(0.0, self.deadline - time.monotonic()))
        except queue.Empty:
            _stop(self.proc)
            pytest.fail(self._failure("no result within the deadline"))
        if line is None:
            code = self.proc.wait(5.0)
            self._stderr_thread.join(5.0)
            pytest.fail(self._failure(f"exited with {code} before printing a result"))
        try:
            result: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            _stop(self.proc)
            pytest.fail(self._failure(f"printed something that is not JSON: {line!r}"))
        if "error" in result:
            _stop(self.proc)
            self._stderr_thread.join(5.0)
            pytest.fail(self._failure(f"reported an error: {result['error']}"))
        return result

    def send_line(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        """Wait for a clean exit (status 0)."""
        try:
            code = self.proc.wait(max(0.1, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _stop(self.proc)
            pytest.fail(self._failure("did not exit after its last result"))
        self._stderr_thread.join(5.0)
        if code != 0:
            pytest.fail(self._failure(f"exited with status {code}"))

    def stop(self) -> None:
        _stop(self.proc)
        self._stdout_thread.join(5.0)
        self._stderr_thread.join(5.0)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@pytest.fixture
def node_script(node: str) -> Iterator[Callable[..., NodeProcess]]:
    """Factory: ``node_script("ws_client.mjs", *args)`` starts a script; every one is stopped at teardown."""
    started: list[NodeProcess] = []

    def factory(script: str, *args: str, timeout: float = NODE_TIMEOUT) -> NodeProcess:
        process = NodeProcess(node, script, *args, timeout=timeout)
        started.append(process)
        return process

    yield factory
    for process in started:
        process.stop()


@pytest.fixture
def run_node(node_script: Callable[..., NodeProcess]) -> Callable[..., dict[str, Any]]:
    """``run_node(script, *args)``: run a script to its end and return its one JSON result."""

    def run(script: str, *args: str, timeout: float = NODE_TIMEOUT) -> dict[str, Any]:
        process = node_script(script, *args, timeout=timeout)
        result = process.read_json()
        process.finish()
        return result

    return run


class Recording(CloseOnRequest):
    """A Recorder (tests/support.py) that answers the text ``close me`` with ``conn.close(4001, "server bye")``
    and waits up to 10 s for closes (node scripts and browsers take longer than the runtime tests)."""

    def __init__(self) -> None:
        super().__init__(4001, "server bye")

    def wait_closes(self, count: int, timeout: float = 10.0) -> list[tuple[int, str]]:
        return super().wait_closes(count, timeout)


@pytest.fixture
def server_options() -> dict[str, Any]:
    """``start_server`` (tests/conftest.py) starts servers here without a heartbeat unless a test asks for one."""
    return {"ping_interval": 0}
