"""Where one message's server time goes at 1 in flight (issue 12): CPU per message, split into user and system
time, and system calls per message, for our server (Python API and C program) and picows.

For each server: 100 connections x 1 message in flight, 32-byte text, server pinned to core 0 and the load generator
(``bench/loadgen.c``) to core 1. Over the measured window, the server's user and system CPU (``/proc/PID/stat``)
divided by the messages echoed; then a second window under ``strace -c -f`` (which slows the server, so only its
counts are used) gives the system calls per message by name: reads, writes, epoll waits and any wake-up
(eventfd, self-pipe) a reply costs.

    .venv/bin/python bench/bench_cost.py                 # 3 runs per server, medians
    .venv/bin/python bench/bench_cost.py --runs 1 --no-strace

The figures are written to BENCHMARKS.md by hand, with the command and the commit.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench_echo as be

SERVERS = ["snow workers=0", "snow C (echo_server)", "picows"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def loadgen_args(server: be.RunningServer, opts: argparse.Namespace, duration: float) -> list[str]:
    return [
        "echo",
        "-u",
        server.url,
        "-c",
        str(opts.connections),
        "-k",
        "1",
        "-s",
        "32",
        "-d",
        str(duration),
        "-w",
        str(opts.warmup),
        "-q",
    ]


def cpu_per_message(server: be.RunningServer, opts: argparse.Namespace) -> dict[str, float]:
    marks: dict[str, tuple[float, float]] = {}

    def on_event(name: str) -> None:
        if name in ("measure_start", "measure_end"):
            marks[name] = cpu_split(server.pid)

    result = be.run_loadgen(loadgen_args(server, opts, opts.duration), opts.warmup + opts.duration + 40, on_event)
    (u0, s0), (u1, s1) = marks["measure_start"], marks["measure_end"]
    n = result["messages"]
    return {
        "msg_s": result["msgs_per_sec"],
        "p50_us": result.get("p50_us", 0.0),
        "user_us": (u1 - u0) / n * 1e6,
        "sys_us": (s1 - s0) / n * 1e6,
    }


def syscalls_per_message(server: be.RunningServer, opts: argparse.Namespace) -> dict[str, float]:
    """strace -c attached over the load generator's measured window: calls per message echoed, by system call."""
    out = Path(tempfile.mkstemp(prefix="strace.", suffix=".txt")[1])
    tracer: list[subprocess.Popen[bytes]] = []

    def on_event(name: str) -> None:
        if name == "measure_start":
            tracer.append(
                subprocess.Popen(
                    ["strace", "-c", "-f", "-o", str(out), "-p", str(server.pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        elif name == "measure_end" and tracer:
            tracer[0].send_signal(2)

    try:
        result = be.run_loadgen(loadgen_args(server, opts, 2.0), opts.warmup + 2.0 + 40, on_event)
    finally:
        for proc in tracer:
            if proc.poll() is None:
                proc.send_signal(2)
            proc.wait(10)
    counts: dict[str, float] = {}
    for line in out.read_text().splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
        if m:
            counts[m.group(2)] = int(m.group(1))
    out.unlink()
    # strace slows the server: the messages of this window (not a clean window's) are what the calls served.
    total = max(1, result["messages"])
    return {name: calls / total for name, calls in sorted(counts.items(), key=lambda kv: -kv[1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--no-strace", action="store_true")
    opts = parser.parse_args()
    be.raise_nofile_limit()
    be.build_loadgen()
    specs = be.server_specs(False)
    names = be.chosen_servers(parser, opts.servers, specs)
    print(f"code {be.code_version()}; 100 connections x 1 in flight, 32-byte text; medians of {opts.runs} runs")
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    calls: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(opts.runs):
            for name in names:
                with be.running_server(specs[name], Path(tmp)) as server:
                    rows[name].append(cpu_per_message(server, opts))
        if not opts.no_strace and shutil.which("strace"):
            for name in names:
                with be.running_server(specs[name], Path(tmp)) as server:
                    calls[name] = syscalls_per_message(server, opts)
    print("| server | msg/s | RTT p50 µs | user CPU µs/msg | system CPU µs/msg | system calls per message |")
    print("|---|---:|---:|---:|---:|---|")
    for name in names:

        def med(key: str, name: str = name) -> float:
            return statistics.median(r[key] for r in rows[name])

        per: Any = calls.get(name, {})
        text = ", ".join(f"{v:.2f} {k}" for k, v in per.items() if v >= 0.005 and k != "total") or "-"
        print(
            f"| {name} | {med('msg_s'):,.0f} | {med('p50_us'):,.0f} | {med('user_us'):.2f} | "
            f"{med('sys_us'):.2f} | {text} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
