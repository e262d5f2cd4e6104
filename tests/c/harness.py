"""Compile the C programs of tests/c against build/libsnow_ws.so and run them as a user would.

Each program is compiled exactly as the README tells a user to (``gcc -Wall -Wextra -Werror -Iinclude prog.c
-Lbuild -lsnow_ws -Wl,-rpath,<abs>/build``), optionally with AddressSanitizer, and run from a temporary working
directory with an empty environment: no PYTHONPATH, no VIRTUAL_ENV, no PATH (only the configuration under test,
``SNOW_RT_PY_NO_SPEEDUPS``, passes through). Its stdout is read line by line as it
comes (a reader thread), so a test can wait for a line with a bound instead of sleeping, and at the end the whole
transcript has been compared, line for line.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
LIBRARY = BUILD / "libsnow_ws.so"
SOURCES = REPO / "tests" / "c"
TIMEOUT = 10.0
ASAN_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}  # the embedded interpreter never frees its heap

_VOLATILE = [
    (re.compile(r"connection handle \d+"), "connection handle N"),
    (re.compile(r"connection \d+"), "connection N"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
]


def normalize(line: str) -> str:
    """``line`` with the numbers that change from run to run (connection ids, ports) replaced."""
    for pattern, replacement in _VOLATILE:
        line = pattern.sub(replacement, line)
    return line


def compile_program(name: str, out_dir: Path, *, asan: bool = False, source: Path | None = None) -> Path:
    """Compile tests/c/NAME.c (or examples/NAME.c, or ``source``) into ``out_dir``; fail the test with gcc's output
    if needed."""
    if source is None:
        source = SOURCES / f"{name}.c"
        if not source.exists():
            source = REPO / "examples" / f"{name}.c"
    exe = out_dir / (f"{name}-asan" if asan else name)
    extra = ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"] if asan else []
    cmd = [
        "gcc",
        *extra,
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Iinclude",
        str(source.relative_to(REPO)),
        "-Lbuild",
        "-lsnow_ws",
        f"-Wl,-rpath,{BUILD}",
        "-o",
        str(exe),
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return exe


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for snow_ws_serve, which cannot report port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = TIMEOUT, host: str = "127.0.0.1") -> None:
    """Wait until host:port accepts TCP connections (snow_ws_serve announces nothing when it is ready)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {host}:{port} after {timeout} s") from None
            time.sleep(0.01)  # polling a port: there is no event to wait for


class Program:
    """A running C program, its output read as it comes.

    Args:
        exe: the program.
        args: its arguments.
        cwd: its working directory (a temporary one, not the repository).
        env: its whole environment (default: empty).
        ignore_sigint: start it with SIGINT ignored, as a shell starts a background job.
    """

    def __init__(
        self, exe: Path, args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, ignore_sigint: bool = False
    ) -> None:
        self.proc = subprocess.Popen(
            [str(exe), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={} if env is None else env,
            text=True,
            encoding="utf-8",
            errors="replace",
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._out = threading.Thread(target=self._read_stdout, daemon=True)
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._out.start()
        self._err.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def line(self, timeout: float = TIMEOUT, *, normalized: bool = True) -> str:
        """The next line of stdout (normalized unless told otherwise), waiting up to ``timeout`` s."""
        try:
            raw = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(self._report(f"no line within {timeout} s")) from None
        if raw is None:
            self._queue.put(None)
            raise AssertionError(self._report("the program ended"))
        line = normalize(raw) if normalized else raw
        self.lines.append(line)
        return line

    def expect(self, *expected: str, timeout: float = TIMEOUT) -> None:
        """The next lines are exactly ``expected``, in order."""
        for want in expected:
            got = self.line(timeout)
            if got != want:
                raise AssertionError(self._report(f"expected {want!r}, got {got!r}"))

    def port(self) -> int:
        """Read a ``port N`` line."""
        line = self.line()
        if not line.startswith("port "):
            raise AssertionError(self._report(f"expected 'port N', got {line!r}"))
        return int(line.split()[1])

    def finish(self, sig: int | None = None, timeout: float = TIMEOUT) -> int:
        """Optionally send ``sig``, wait for the end, check nothing was left unread; return the exit status."""
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(self._report(f"still running {timeout} s later")) from None
        self._out.join(timeout)
        self._err.join(timeout)
        rest = []
        while (raw := self._queue.get_nowait()) is not None:
            rest.append(normalize(raw))
        if rest:
            raise AssertionError(self._report(f"unexpected output at the end: {rest!r}"))
        return code

    def kill(self) -> None:
        """Stop the program if it still runs (teardown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(TIMEOUT)

    def _report(self, what: str) -> str:
        output = "\n".join(f"    {line}" for line in self.lines)
        return f"{what}\n  output so far:\n{output}\n  stderr:\n    {'    '.join(self.stderr)}"


def signal_when_caught(proc: subprocess.Popen[str], sig: int, timeout: float = TIMEOUT) -> None:
    """Send ``sig`` to ``proc`` once it has a handler for it (``SigCgt`` in /proc/PID/status), waiting up to
    ``timeout`` s: a program is told to stop only once it is in snow_ws_wait_shutdown or snow_ws_serve, where the
    library catches the signal; sent earlier, the default action would end it silently."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            break
        caught = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")), 0)
        if caught & (1 << (sig - 1)):
            break
        time.sleep(0.01)
    proc.send_signal(sig)


CONFIG_ENV = "SNOW_RT_PY_NO_SPEEDUPS"
"""The configuration under test (the pure-Python runtime when set): a program's embedded interpreter runs the same
one as the test process, so ``SNOW_RT_PY_NO_SPEEDUPS=1 pytest tests/c`` tests the C ABI on the pure-Python runtime."""


def clean_env(**extra: str) -> dict[str, str]:
    """An environment with nothing but ``extra`` (no PYTHONPATH, VIRTUAL_ENV, PATH, HOME...), and the test
    process's :data:`CONFIG_ENV` if it has one."""
    assert "PYTHONPATH" not in extra and "VIRTUAL_ENV" not in extra
    config = os.environ.get(CONFIG_ENV)
    return dict(extra) if config is None else {CONFIG_ENV: config, **extra}


def library_missing() -> str | None:
    """Why the C tests cannot run, or None."""
    if not LIBRARY.exists():
        return f"{LIBRARY.relative_to(REPO)} is missing: run `make build`"
    if os.environ.get("SNOW_RT_PY_ABI_FAIL_IMPORT"):
        return "SNOW_RT_PY_ABI_FAIL_IMPORT is set in the test environment"
    return None
