"""Idle-connection benchmark (issue 3): server memory for 10,000 open WebSocket connections, heartbeat on.

For each server: start it, read its RSS (VmRSS of /proc/PID/status), open ``--connections`` connections with
``bench/loadgen.c idle`` (which answers every server ping with a pong), sample the server's RSS and CPU every
half second while they are held ``--hold`` seconds, then close them. Reported: RSS before, RSS ``--settle`` s after
the last connection opened, RSS at the end of the hold (after the heartbeats ran), KiB per connection from the
latter, the server's CPU while idle, and the pings the clients answered.

Servers: ours with ``--ping-interval 5`` (so pings really happen during the hold; the default is 30) and the
``websockets`` library with its own default keepalive (ping every 20 s, which the default 30 s hold covers).
Server on core 0, load generator on core 1.

    .venv/bin/python bench/bench_idle.py            # 3 runs each, about 4 minutes
    .venv/bin/python bench/bench_idle.py --quick    # 1 run, 2,000 connections, 8 s hold

Every process started here is stopped here, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_echo import (
    NODE,
    PYTHON,
    ROOT,
    SERVERS_DIR,
    ServerSpec,
    build_loadgen,
    chosen_servers,
    code_stamp,
    exit_status,
    print_versions,
    proc_cpu_seconds,
    proc_status_kib,
    proc_threads,
    raise_nofile_limit,
    run_loadgen,
    running_server,
    versions,
)


def server_specs(ping_interval: float, asyncio_loop: bool) -> dict[str, ServerSpec]:
    """Every server this benchmark knows, by short name."""
    snow = [PYTHON, "-m", "snow_rt_py", "serve", "--app", "echo", "--host", "127.0.0.1", "--port", "0"]
    snow_env = {"SNOW_RT_PY_NO_UVLOOP": "1"} if asyncio_loop else {}
    ping = ["--ping-interval", f"{ping_interval:g}"]
    specs = [
        ServerSpec("snow workers=0", [*snow, "--workers", "0", *ping], snow_env),
        ServerSpec("snow pure-Python", [*snow, "--workers", "0", *ping], {**snow_env, "SNOW_RT_PY_NO_SPEEDUPS": "1"}),
        ServerSpec("snow workers=2", [*snow, "--workers", "2", *ping], snow_env),
        ServerSpec("websockets", [PYTHON, str(SERVERS_DIR / "websockets_echo.py")]),
        ServerSpec("websockets ping=" + f"{ping_interval:g}", [PYTHON, str(SERVERS_DIR / "websockets_echo.py"), *ping]),
        # issue 6: the C program on libsnow_ws and the other peers (their own defaults: no keepalive pings)
        ServerSpec(
            "snow C (echo_server)",
            [str(ROOT / "build" / "echo_server"), "--host", "127.0.0.1", "--port", "0", *ping],
            snow_env,
        ),
        ServerSpec("picows", [PYTHON, str(SERVERS_DIR / "picows_echo.py")]),
        ServerSpec("aiohttp", [PYTHON, str(SERVERS_DIR / "aiohttp_echo.py")]),
        ServerSpec("node ws", [NODE, str(SERVERS_DIR / "node_ws_echo.mjs")]),
    ]
    return {s.name: s for s in specs}


DEFAULT_SERVERS = ["snow workers=0", "websockets"]


class Sampler:
    """Samples a process's RSS and CPU time every ``period`` seconds from :meth:`start` until :meth:`stop`."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        self.pid = pid
        self.period = period
        self.samples: list[tuple[float, int, float]] = []  # (seconds since start, VmRSS KiB, CPU seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                rss, cpu = proc_status_kib(self.pid, "VmRSS"), proc_cpu_seconds(self.pid)
            except (OSError, KeyError, ValueError):
                return
            self.samples.append((time.monotonic() - self.t0, rss, cpu))
            if self._stop.wait(self.period):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def at(self, t: float) -> tuple[float, int, float]:
        """The last sample taken at or before ``t`` seconds (the first one if none)."""
        chosen = self.samples[0]
        for s in self.samples:
            if s[0] <= t:
                chosen = s
        return chosen


def one_run(spec: ServerSpec, opts: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start the server, hold the connections, return the measurements."""
    with running_server(spec, tmp) as server:
        time.sleep(1.0)  # let the interpreter finish settling after "listening on"
        rss_before = proc_status_kib(server.pid, "VmRSS")
        sampler = Sampler(server.pid)

        def on_event(name: str) -> None:
            if name == "open":
                sampler.start()

        args = ["idle", "-u", server.url, "-c", str(opts.connections), "-H", str(opts.hold), "-C", "100", "-T", "120"]
        result = run_loadgen([*args, "-q"], timeout=opts.hold + 180, on_event=on_event)
        sampler.stop()
        hwm = proc_status_kib(server.pid, "VmHWM")
        threads = proc_threads(server.pid)
        stderr = server.stderr_text()
    if not sampler.samples:
        raise RuntimeError(f"{spec.name}: never saw every connection open: {result}")
    settled = sampler.at(opts.settle)
    end = sampler.at(opts.hold - 0.5)  # just before the load generator starts closing
    idle_start = sampler.at(opts.settle)
    cpu_pct = 100.0 * (end[2] - idle_start[2]) / (end[0] - idle_start[0]) if end[0] > idle_start[0] else 0.0
    opened = max(result["opened"], 1)
    return {
        "result": result,
        "rss_before": rss_before,
        "rss_settled": settled[1],
        "rss_end": end[1],
        "hwm": hwm,
        "kib_per_conn": (end[1] - rss_before) / opened,
        "kib_per_conn_settled": (settled[1] - rss_before) / opened,
        "idle_cpu_pct": cpu_pct,
        "threads": threads,
        "exit": server.proc.returncode,
        "stderr": stderr,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run, 2,000 connections, 8 s hold")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--hold", type=float, default=30.0, help="seconds the connections stay open")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the last open for the first RSS")
    parser.add_argument("--ping-interval", type=float, default=5.0, help="our server's heartbeat (s)")
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS), help="comma-separated subset")
    parser.add_argument(
        "--asyncio-loop", action="store_true", help="run our server on asyncio's loop (SNOW_RT_PY_NO_UVLOOP=1)"
    )
    parser.add_argument("--json", type=Path, help="also write every run's raw results (and medians) here")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.runs, opts.connections, opts.hold, opts.settle = 1, 2000, 8.0, 3.0
    if opts.hold < opts.settle + 1:
        parser.error("--hold must be at least --settle + 1")

    specs = server_specs(opts.ping_interval, opts.asyncio_loop)
    names = chosen_servers(parser, opts.servers, specs)
    limit = raise_nofile_limit()
    if limit < opts.connections + 64:
        parser.error(f"open files limit {limit} is too low for {opts.connections} connections")
    build_loadgen()
    info = versions()
    print_versions(info)
    print(
        f"idle: {opts.connections} connections held {opts.hold:g} s, RSS sampled every 0.5 s, "
        f"{opts.runs} run(s); our --ping-interval {opts.ping_interval:g}; server on core 0, loadgen on core 1"
    )

    raw: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    problems: list[str] = []
    stamp = code_stamp()
    with tempfile.TemporaryDirectory(prefix="bench_idle.") as tmp:
        for run in range(1, opts.runs + 1):
            for name in names:
                try:
                    rec = one_run(specs[name], opts, Path(tmp))
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    problems.append(f"{name} run {run}: {exc}")
                    print(f"  ! {name} run {run}: {exc}", file=sys.stderr)
                    continue
                raw[name].append(rec)
                res = rec["result"]
                if res["errors"] or res["opened"] != opts.connections:
                    problems.append(f"{name} run {run}: opened {res['opened']}, errors {res['errors']}: {res}")
                if "Traceback" in rec["stderr"] or rec["exit"] not in (0, None):
                    problems.append(f"{name} run {run}: server exit {rec['exit']}, stderr:\n{rec['stderr'][-3000:]}")
                print(
                    f"  run {run} {name:18} opened {res['opened']} in {res['open_s']:.1f} s; RSS before "
                    f"{rec['rss_before'] / 1024:.1f} MiB, settled {rec['rss_settled'] / 1024:.1f} MiB, end of hold "
                    f"{rec['rss_end'] / 1024:.1f} MiB, peak {rec['hwm'] / 1024:.1f} MiB; "
                    f"{rec['kib_per_conn']:.1f} KiB/conn; idle CPU {rec['idle_cpu_pct']:.1f}%; "
                    f"pings answered {res['pongs']}; errors {res['errors']}",
                    flush=True,
                )

    if code_stamp() != stamp:
        problems.append("snow_rt_py/ sources changed during the run: the figures mix versions; run again")
    med: dict[str, dict[str, float]] = {}
    for name, recs in raw.items():
        if recs:
            med[name] = {
                key: statistics.median(r[key] for r in recs)
                for key in (
                    "rss_before",
                    "rss_settled",
                    "rss_end",
                    "hwm",
                    "kib_per_conn",
                    "kib_per_conn_settled",
                    "idle_cpu_pct",
                )
            }
            med[name]["pongs"] = statistics.median(r["result"]["pongs"] for r in recs)
            med[name]["runs"] = len(recs)
    if opts.json:
        slim = {n: [{k: v for k, v in r.items() if k != "stderr"} for r in recs] for n, recs in raw.items()}
        opts.json.write_text(
            json.dumps(
                {
                    "versions": info,
                    "options": {k: str(v) for k, v in vars(opts).items()},
                    "runs": slim,
                    "medians": med,
                }
            )
        )
    base = med.get("websockets")

    def ratio(name: str) -> str:
        return f"{med[name]['kib_per_conn'] / base['kib_per_conn']:.2f}x" if base and base["kib_per_conn"] else "-"

    print()
    hdr = (
        f"{'server':18} {'RSS before':>10} {'settled':>9} {'end hold':>9} {'peak':>9} {'KiB/conn':>8} "
        f"{'vs ws':>6} {'idle CPU':>8} {'pongs':>7} {'runs':>4}"
    )
    print(hdr)
    print("-" * len(hdr))
    for name, m in med.items():
        print(
            f"{name:18} {m['rss_before'] / 1024:8.1f}Mi {m['rss_settled'] / 1024:7.1f}Mi {m['rss_end'] / 1024:7.1f}Mi "
            f"{m['hwm'] / 1024:7.1f}Mi {m['kib_per_conn']:8.1f} {ratio(name):>6} {m['idle_cpu_pct']:7.1f}% "
            f"{m['pongs']:7.0f} {m['runs']:4.0f}"
        )
    print(f"\nmarkdown rows (medians, {opts.connections:,} connections, hold {opts.hold:g} s):\n")
    print(
        "| server | RSS before | RSS settled | RSS end of hold | peak (VmHWM) | KiB/connection | vs websockets "
        "| idle CPU | pings answered |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in med.items():
        print(
            f"| {name} | {m['rss_before'] / 1024:.1f} MiB | {m['rss_settled'] / 1024:.1f} MiB "
            f"| {m['rss_end'] / 1024:.1f} MiB | {m['hwm'] / 1024:.1f} MiB | {m['kib_per_conn']:.1f} | {ratio(name)} "
            f"| {m['idle_cpu_pct']:.1f}% | {m['pongs']:,.0f} |"
        )
    return exit_status(problems)


if __name__ == "__main__":
    sys.exit(main())
