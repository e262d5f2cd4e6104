"""Echo benchmark (issue 3): messages/s and round-trip latency of 32-byte text echoes.

For each server: 100 connections with 16 messages in flight each (throughput, messages/s), then 100 connections
with 1 in flight each (round trip p50/p99 under load), then 1 connection with 1 in flight (the bare round trip).
Servers: ours inline (``--workers 0``), ours on worker threads (``--workers 1``, ``--workers 2``), the
``websockets`` library (asyncio) and, as a ceiling, a raw TCP echo on uvloop with no WebSocket framing. The load
generator is ``bench/loadgen.c`` (compiled here with gcc). Server on core 0, load generator on core 1
(``taskset``). Each server runs ``--runs`` times (3), interleaved, fresh process each time; the table shows
medians and ratios to ``websockets``, then the same as markdown rows. Besides messages/s it shows messages per
second of server CPU: the server is CPU-bound, so that figure is the one other jobs on a shared machine
disturb least.

    .venv/bin/python bench/bench_echo.py            # full run, about 5 minutes
    .venv/bin/python bench/bench_echo.py --quick    # 1 run, short windows, under a minute

Every process started here is stopped here (SIGTERM, then SIGKILL after 10 s), also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOADGEN_SRC = ROOT / "bench" / "loadgen.c"
LOADGEN = ROOT / "build" / "loadgen"
WSCLIENT_H = ROOT / "bench" / "wsclient.h"  # the WebSocket client code loadgen.c and fanout.c share
SERVERS_DIR = ROOT / "bench" / "servers"
PYTHON = sys.executable
NODE = shutil.which("node") or "node"
SERVER_CORE = "0"
LOADGEN_CORE = "1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


# -- shared with bench_idle.py ---------------------------------------------------------------------------------


def raise_nofile_limit() -> int:
    """Raise this process's open-files limit to the hard limit; children (servers, loadgen) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def build_client(source: Path, exe: Path) -> Path:
    """Compile one of the C clients (bench/loadgen.c, bench/fanout.c: both include bench/wsclient.h) into ``exe``
    unless it is newer than the source and the header."""
    newest = max(source.stat().st_mtime, WSCLIENT_H.stat().st_mtime)
    if exe.exists() and exe.stat().st_mtime >= newest:
        return exe
    exe.parent.mkdir(exist_ok=True)
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(source), "-lz"]  # zlib: the -z option
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=120)
    return exe


def build_loadgen() -> Path:
    """Compile bench/loadgen.c into build/loadgen unless it is up to date."""
    return build_client(LOADGEN_SRC, LOADGEN)


def pinned(core: str, argv: Sequence[str]) -> list[str]:
    """``argv`` pinned to ``core`` with taskset (taskset execs, so the pid stays the program's)."""
    if shutil.which("taskset") is None:
        return list(argv)
    return ["taskset", "-c", core, *argv]


def chosen_servers(parser: argparse.ArgumentParser, servers: str, known: Mapping[str, object]) -> list[str]:
    """The names of a comma-separated ``--servers`` value; an unknown one is a usage error listing ``known``."""
    names = [n.strip() for n in servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown servers {unknown}; known: {list(known)}")
    return names


def print_versions(info: Mapping[str, str]) -> None:
    """The "versions:" line every benchmark starts with."""
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info.items()))


def versions() -> dict[str, str]:
    """Versions of everything that shapes the figures."""
    out: dict[str, str] = {"python": platform.python_version(), "kernel": platform.release()}
    for mod in ("websockets", "uvloop", "picows", "aiohttp"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = "not installed"
    try:
        gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, timeout=10).stdout
        out["gcc"] = gcc.splitlines()[0] if gcc else "?"
    except (OSError, subprocess.SubprocessError):
        out["gcc"] = "not found"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        out["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line)
    except (OSError, StopIteration):
        out["cpu"] = platform.processor() or "?"
    out["cores"] = str(os.cpu_count())
    try:
        out["node"] = subprocess.run([NODE, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out["node"] = "not found"
    try:
        ws_pkg = ROOT / "tests" / "interop" / "node_modules" / "ws" / "package.json"
        out["node ws"] = json.loads(ws_pkg.read_text())["version"]
    except (OSError, ValueError, KeyError):
        out["node ws"] = "not installed"
    out["snow_rt_py"] = code_version()
    return out


def code_version() -> str:
    """The commit our server runs from, marked "+local changes" when snow_rt_py/ differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "snow_rt_py"], capture_output=True, text=True, cwd=ROOT, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head or '?'}{' +local changes' if dirty else ''}"


def code_stamp() -> float:
    """Newest modification time among the server's sources (the package minus abi/, which the command-line
    server never imports): if it moves during a run, the run measured a mix of versions."""
    pkg = ROOT / "snow_rt_py"
    return max(p.stat().st_mtime for p in pkg.rglob("*.py") if "abi" not in p.relative_to(pkg).parts)


def cpu_ticks() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / hz, sum(fields) / hz


def machine_busy(interval: float = 1.0) -> float:
    """Share (0-1) of all cores busy over ``interval`` seconds."""
    busy0, total0 = cpu_ticks()
    time.sleep(interval)
    busy1, total1 = cpu_ticks()
    return (busy1 - busy0) / max(total1 - total0, 1e-9)


def wait_for_quiet(limit: float, max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until other jobs use under ``limit`` of the machine; return the last share
    seen. On a shared machine this keeps most runs out of other jobs' bursts; the share goes in the results."""
    deadline = time.monotonic() + max_wait
    busy = machine_busy()
    while busy > limit and time.monotonic() < deadline:
        busy = machine_busy()
    return busy


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, key: str) -> int:
    """A ``kB`` field (VmRSS, VmHWM, ...) of /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def proc_threads(pid: int) -> int:
    """Threads of process ``pid``."""
    return proc_status_kib(pid, "Threads")


@dataclass
class ServerSpec:
    """How to start one server under test."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    loadgen_flags: list[str] = field(default_factory=list)


@dataclass
class RunningServer:
    """A started server: its process, URL and captured stderr."""

    spec: ServerSpec
    proc: subprocess.Popen[bytes]
    url: str
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""


def _drain(stream: Any) -> None:
    with contextlib.suppress(OSError, ValueError):
        while stream.read(65536):
            pass


@contextlib.contextmanager
def running_server(spec: ServerSpec, tmpdir: Path) -> Iterator[RunningServer]:
    """Start ``spec`` on the server core, wait for its ``listening on`` line, stop it on exit whatever happens."""
    stderr_path = tmpdir / f"{spec.name.replace(' ', '_').replace('/', '_')}.{time.monotonic_ns()}.stderr"
    env = {**os.environ, **spec.env}
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            pinned(SERVER_CORE, spec.argv), stdout=subprocess.PIPE, stderr=err, env=env, cwd=ROOT, bufsize=0
        )
    try:
        assert proc.stdout is not None
        line = b""
        deadline = time.monotonic() + READY_TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n") and time.monotonic() < deadline and proc.poll() is None:
                if sel.select(timeout=0.2):
                    chunk = proc.stdout.read(1)
                    if not chunk:
                        break
                    line += chunk
        text = line.decode(errors="replace").strip()
        if not text.startswith("listening on "):
            tail = stderr_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{spec.name}: no 'listening on' line (got {text!r}); stderr:\n{tail}")
        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
        yield RunningServer(spec, proc, text.removeprefix("listening on "), stderr_path)
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL. Returns the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"  ! pid {proc.pid} ignored SIGTERM for {STOP_TIMEOUT:.0f} s; killing it", file=sys.stderr)
            proc.kill()
            proc.wait(STOP_TIMEOUT)
    if proc.stdout is not None:
        with contextlib.suppress(OSError):
            proc.stdout.close()
    return proc.returncode


def run_loadgen(args: Sequence[str], timeout: float, on_event: Any = None, program: Path = LOADGEN) -> dict[str, Any]:
    """Run the load generator (or another client that speaks its JSON lines: ``program``, e.g. fanout) on its
    core; return its final JSON line. ``on_event(name)`` is called, while it keeps running, for each event line it
    prints: "open" (every connection is open), "measure_start", "measure_end" (the measured window)."""
    cmd = pinned(LOADGEN_CORE, [str(program), *args])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    err_lines: list[str] = []
    assert proc.stderr is not None and proc.stdout is not None
    err_thread = threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    err_thread.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    result: dict[str, Any] | None = None
    try:
        for line in proc.stdout:
            data = json.loads(line)
            if "event" in data:
                if on_event is not None:
                    on_event(data["event"])
            else:
                result = data
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err_thread.join(5)
    if result is None:
        raise RuntimeError(
            f"{program.name} gave no result (exit {proc.returncode}); stderr: {''.join(err_lines)[-2000:]}"
        )
    result["stderr"] = "".join(err_lines)[-2000:]
    return result


# -- the echo benchmark ----------------------------------------------------------------------------------------


def server_specs(asyncio_loop: bool) -> dict[str, ServerSpec]:
    """Every server this benchmark knows, by short name."""
    snow = [PYTHON, "-m", "snow_rt_py", "serve", "--app", "echo", "--host", "127.0.0.1", "--port", "0"]
    snow_env = {"SNOW_RT_PY_NO_UVLOOP": "1"} if asyncio_loop else {}
    specs = [
        ServerSpec("snow workers=0", [*snow, "--workers", "0", "--ping-interval", "0"], snow_env),
        # issue 21: the same server in the pure-Python configuration (no compiled part)
        ServerSpec(
            "snow pure-Python",
            [*snow, "--workers", "0", "--ping-interval", "0"],
            {**snow_env, "SNOW_RT_PY_NO_SPEEDUPS": "1"},
        ),
        # issue 12: the bench app (a room join per connection, a prefix check per message) against the echo app
        ServerSpec(
            "snow app=bench",
            [*snow[:5], "bench", *snow[6:], "--workers", "0", "--ping-interval", "0"],
            snow_env,
        ),
        ServerSpec("snow workers=1", [*snow, "--workers", "1", "--ping-interval", "0"], snow_env),
        ServerSpec("snow workers=2", [*snow, "--workers", "2", "--ping-interval", "0"], snow_env),
        ServerSpec("websockets", [PYTHON, str(SERVERS_DIR / "websockets_echo.py"), "--ping-interval", "0"]),
        ServerSpec(
            "websockets+uvloop",
            [PYTHON, str(SERVERS_DIR / "websockets_echo.py"), "--ping-interval", "0", "--uvloop"],
        ),
        ServerSpec("raw TCP echo (ceiling)", [PYTHON, str(SERVERS_DIR / "tcp_echo_uvloop.py")], {}, ["-M"]),
        # issue 6: our server through a C program on libsnow_ws, and the other peers
        ServerSpec(
            "snow C (echo_server)",
            [str(ROOT / "build" / "echo_server"), "--host", "127.0.0.1", "--port", "0", "--ping-interval", "0"],
            snow_env,
        ),
        ServerSpec("picows", [PYTHON, str(SERVERS_DIR / "picows_echo.py")]),
        ServerSpec("aiohttp", [PYTHON, str(SERVERS_DIR / "aiohttp_echo.py")]),
        ServerSpec("node ws", [NODE, str(SERVERS_DIR / "node_ws_echo.mjs")]),
    ]
    return {s.name: s for s in specs}


DEFAULT_SERVERS = ["snow workers=0", "snow workers=1", "snow workers=2", "websockets", "raw TCP echo (ceiling)"]


def measure_once(server: RunningServer, args: list[str], opts: argparse.Namespace) -> dict[str, Any]:
    """One loadgen run, with the server's CPU and the other jobs' CPU over its measured window."""
    marks: dict[str, tuple[float, float, float]] = {}

    def on_event(name: str) -> None:
        if name in ("measure_start", "measure_end"):
            marks[name] = (proc_cpu_seconds(server.pid), time.monotonic(), cpu_ticks()[0])

    result = run_loadgen(args, timeout=opts.warmup + opts.duration + 40, on_event=on_event)
    (cpu0, t0, busy0), (cpu1, t1, busy1) = marks["measure_start"], marks["measure_end"]
    server_cpu = cpu1 - cpu0
    # The server's CPU share in the measured window. The server is CPU-bound, so messages per server
    # CPU-second (the cost of a message) is the figure that other jobs on the machine disturb least.
    result["server_cpu_pct"] = 100.0 * server_cpu / (t1 - t0)
    result["msgs_per_cpu_s"] = result["messages"] / server_cpu if server_cpu > 0 else 0.0
    # CPU used by everything else (other jobs on the shared machine), in % of one core.
    others = (busy1 - busy0) - server_cpu - (result["cpu_user_s"] + result["cpu_sys_s"])
    result["others_cpu_pct"] = max(0.0, 100.0 * others / (t1 - t0))
    return result


def measure(server: RunningServer, inflight: int, opts: argparse.Namespace, connections: int = 0) -> dict[str, Any]:
    """A loadgen run against a running server. If other jobs took more than ``opts.max_others`` % of a core
    during the window, it is run again (up to ``opts.retries`` times) and the least disturbed attempt kept."""
    args = [
        "echo",
        "-u",
        server.url,
        "-c",
        str(connections or opts.connections),
        "-k",
        str(inflight),
        "-s",
        str(opts.size),
        "-d",
        str(opts.duration),
        "-w",
        str(opts.warmup),
        "-q",
        *server.spec.loadgen_flags,
        *getattr(opts, "loadgen_flag", []),  # (bench_abi.py reuses measure() with its own options)
    ]
    best: dict[str, Any] | None = None
    attempts = 0
    while attempts <= opts.retries:
        attempts += 1
        result = measure_once(server, args, opts)
        if best is None or result["others_cpu_pct"] < best["others_cpu_pct"]:
            best = result
        if result["others_cpu_pct"] <= opts.max_others:
            break
    assert best is not None
    best["attempts"] = attempts
    return best


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def exit_status(problems: list[str]) -> int:
    """Print the run's problems (if any) on stderr; the exit status: 1 if there were any, else 0."""
    if problems:
        print("\nPROBLEMS:", file=sys.stderr)
        for p in problems:
            print(" - " + p, file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run, 2 s windows, 0.5 s warm-up")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per load run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--inflight", type=int, default=16, help="messages in flight per connection (throughput)")
    parser.add_argument("--size", type=int, default=32, help="payload bytes (text)")
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help="comma-separated subset of: " + ", ".join(server_specs(False)),
    )
    parser.add_argument(
        "--asyncio-loop", action="store_true", help="run our server on asyncio's loop (SNOW_RT_PY_NO_UVLOOP=1)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each server, wait up to this many seconds for other jobs to use < 25%% of the machine",
    )
    parser.add_argument(
        "--max-others",
        type=float,
        default=20.0,
        help="redo a measurement if other jobs used more than this %% of a core during it (default 20)",
    )
    parser.add_argument("--retries", type=int, default=3, help="redo a disturbed measurement at most this often")
    parser.add_argument(
        "--loadgen-flag",
        action="append",
        default=[],
        help="extra flag for every loadgen run, e.g. --loadgen-flag=-P (busy-poll experiment); repeatable",
    )
    parser.add_argument("--json", type=Path, help="also write every run's raw results here")
    parser.add_argument(
        "--skip-solo", action="store_true", help="skip the 1-connection run (its columns then repeat k=1's)"
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.runs, opts.duration, opts.warmup, opts.quiet_wait, opts.retries = 1, 2.0, 0.5, 5.0, 0

    specs = server_specs(opts.asyncio_loop)
    names = chosen_servers(parser, opts.servers, specs)
    raise_nofile_limit()
    build_loadgen()
    info = versions()
    print_versions(info)
    print(
        f"echo: {opts.connections} connections, {opts.size}-byte text, k={opts.inflight} and k=1 in flight, "
        f"{opts.warmup:g} s warm-up + {opts.duration:g} s, {opts.runs} run(s); server on core {SERVER_CORE}, "
        f"loadgen on core {LOADGEN_CORE}"
    )

    raw: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    problems: list[str] = []
    stamp = code_stamp()
    with tempfile.TemporaryDirectory(prefix="bench_echo.") as tmp:
        for run in range(1, opts.runs + 1):
            for name in names:  # interleaved, so slow drifts of a noisy machine hit every server alike
                busy = wait_for_quiet(0.25, opts.quiet_wait)
                try:
                    with running_server(specs[name], Path(tmp)) as server:
                        tput = measure(server, opts.inflight, opts)
                        lat = measure(server, 1, opts)
                        solo = lat if opts.skip_solo else measure(server, 1, opts, connections=1)
                        threads = proc_threads(server.pid)
                        stderr = server.stderr_text()
                    status = server.proc.returncode
                except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as exc:
                    problems.append(f"{name} run {run}: {exc}")
                    print(f"  ! {name} run {run}: {exc}", file=sys.stderr)
                    continue
                rec = {
                    "run": run,
                    "throughput": tput,
                    "latency": lat,
                    "solo": solo,
                    "threads": threads,
                    "exit": status,
                    "busy_before": busy,
                }
                raw[name].append(rec)
                errs = tput["errors"] + lat["errors"] + solo["errors"]
                if errs:
                    problems.append(f"{name} run {run}: loadgen errors {errs}: {tput['stderr'] or lat['stderr']}")
                if "Traceback" in stderr or status not in (0, None):
                    problems.append(f"{name} run {run}: server exit {status}, stderr:\n{stderr[-3000:]}")
                print(
                    f"  run {run} {name:24} {fmt_int(tput['msgs_per_sec']):>9} msg/s, "
                    f"{fmt_int(tput['msgs_per_cpu_s']):>9} msg/CPU-s (server cpu {tput['server_cpu_pct']:3.0f}%, "
                    f"loadgen {tput['cpu_pct']:3.0f}%, {tput['msgs_per_read']:.1f} msg/read) | k=1: "
                    f"p50 {lat['p50_us']:5.0f} us p99 {lat['p99_us']:6.0f} us {fmt_int(lat['msgs_per_sec']):>7} msg/s "
                    f"{fmt_int(lat['msgs_per_cpu_s']):>7} msg/CPU-s (server cpu {lat['server_cpu_pct']:3.0f}%) | "
                    f"1 conn: p50 {solo['p50_us']:4.0f} us | "
                    f"other jobs {tput['others_cpu_pct']:.0f}/{lat['others_cpu_pct']:.0f}/{solo['others_cpu_pct']:.0f}%"
                    f" of a core, attempts {tput['attempts']}/{lat['attempts']}/{solo['attempts']} | "
                    f"errors {errs}",
                    flush=True,
                )

    if code_stamp() != stamp:
        problems.append("snow_rt_py/ sources changed during the run: the figures mix versions; run again")
    if opts.json:
        opts.json.write_text(
            json.dumps({"versions": info, "options": {k: str(v) for k, v in vars(opts).items()}, "runs": raw})
        )

    # medians and ratios
    med: dict[str, dict[str, float]] = {}
    for name, recs in raw.items():
        if not recs:
            continue

        def m(part: str, key: str, recs: list[dict[str, Any]] = recs) -> float:
            return float(statistics.median(r[part][key] for r in recs))

        med[name] = {
            "tput": m("throughput", "msgs_per_sec"),
            "eff": m("throughput", "msgs_per_cpu_s"),
            "srv_cpu": m("throughput", "server_cpu_pct"),
            "lg_cpu": m("throughput", "cpu_pct"),
            "per_read": m("throughput", "msgs_per_read"),
            "p50": m("latency", "p50_us"),
            "p99": m("latency", "p99_us"),
            "k1_tput": m("latency", "msgs_per_sec"),
            "k1_srv_cpu": m("latency", "server_cpu_pct"),
            "k1_eff": m("latency", "msgs_per_cpu_s"),
            "solo_p50": m("solo", "p50_us"),
            "solo_p99": m("solo", "p99_us"),
            "runs": len(recs),
            "errors": sum(r["throughput"]["errors"] + r["latency"]["errors"] + r["solo"]["errors"] for r in recs),
        }
    base = med.get("websockets")

    def ratio(name: str, key: str) -> str:
        if base is None or not base[key]:
            return "-"
        return f"{med[name][key] / base[key]:.2f}x"

    print()
    hdr = (
        f"{'server':24} {'msg/s':>9} {'vs ws':>6} {'msg/CPU-s':>9} {'vs ws':>6} {'srv cpu':>7} {'lg cpu':>6} "
        f"{'p50 us':>7} {'p99 us':>7} {'p50 vs ws':>9} {'msg/s':>7} {'msg/CPU-s':>9} {'p50 us':>7} {'p99 us':>7} "
        f"{'runs':>4} "
        f"{'errors':>6}"
    )
    print(
        f"{'':24} {'--- k=' + str(opts.inflight) + ' in flight ':-<56} {'--- k=1 in flight ':-<43} "
        f"{'--- 1 conn, k=1 ':-<15}"
    )
    print(hdr)
    print("-" * len(hdr))
    for name, x in med.items():
        print(
            f"{name:24} {fmt_int(x['tput']):>9} {ratio(name, 'tput'):>6} {fmt_int(x['eff']):>9} "
            f"{ratio(name, 'eff'):>6} {x['srv_cpu']:6.0f}% {x['lg_cpu']:5.0f}% {x['p50']:7.0f} {x['p99']:7.0f} "
            f"{ratio(name, 'p50'):>9} {fmt_int(x['k1_tput']):>7} {fmt_int(x['k1_eff']):>9} {x['solo_p50']:7.0f} "
            f"{x['solo_p99']:7.0f} "
            f"{x['runs']:>4} {x['errors']:>6}"
        )

    print("\nmarkdown rows (medians):\n")
    print(
        f"| server | msg/s (k={opts.inflight}) | vs websockets | msg per server CPU-s | vs websockets "
        "| server CPU | loadgen CPU | p50 µs (k=1) | p99 µs (k=1) | p50 vs websockets | msg/s (k=1) "
        "| msg per server CPU-s (k=1) | p50 µs (1 conn) | p99 µs (1 conn) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, x in med.items():
        print(
            f"| {name} | {fmt_int(x['tput'])} | {ratio(name, 'tput')} | {fmt_int(x['eff'])} | {ratio(name, 'eff')} "
            f"| {x['srv_cpu']:.0f}% | {x['lg_cpu']:.0f}% | {x['p50']:.0f} | {x['p99']:.0f} | {ratio(name, 'p50')} "
            f"| {fmt_int(x['k1_tput'])} | {fmt_int(x['k1_eff'])} | {x['solo_p50']:.0f} | {x['solo_p99']:.0f} |"
        )
    return exit_status(problems)


if __name__ == "__main__":
    sys.exit(main())
