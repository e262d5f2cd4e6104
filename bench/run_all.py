"""Every peer, one command (issue 6): the echo, latency, 1 MiB, idle-memory and broadcast benchmarks in one run.

Same load generator (``bench/loadgen.c``; ``bench/fanout.c`` for the broadcast step), server pinned to core 0 and
the client to core 1, 127.0.0.1 only, every run bounded, every process stopped. Steps:

1. **echo** (``bench_echo.py``): 32-byte text, 100 connections x 16 in flight (messages/s), then x 1 in flight
   (p50/p99 round trip), for our server through the Python API (``python -m snow_rt_py serve --app echo``) and
   through a C program (``build/echo_server``), ``websockets`` (asyncio and uvloop), picows, aiohttp, Node's
   ``ws`` and the raw TCP echo ceiling.
2. **1 MiB** (here): binary 1 MiB messages, 4 connections x 1 in flight, MB/s of payload echoed (10^6 bytes).
3. **idle** (``bench_idle.py``): 10,000 idle connections, KiB of server RSS per connection.
4. **broadcast** (``bench_broadcast.py``): 64 B to 10,000 members, deliveries/s and time to reach all.

Medians of ``--runs`` (3) runs, interleaved; versions of every peer; ratios to ``websockets``; then the goals of
issue 6 as ratios measured in this run, each met or not. The summary is printed and written as markdown to
``--out`` (``build/bench_all.md``) with every step's raw JSON next to it.

    .venv/bin/python bench/run_all.py            # full run, about 25 minutes
    .venv/bin/python bench/run_all.py --quick    # 1 run, short windows, fewer connections, about 5 minutes
    .venv/bin/python bench/run_all.py --only echo,bulk

A step that fails is reported and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench_echo as be

BENCH = be.ROOT / "bench"
PY = be.PYTHON

OURS_PY = "snow workers=0"
OURS_C = "snow C (echo_server)"
OURS_BENCH_APP = "snow app=bench"
OURS_NO_C = "snow pure-Python"
ECHO_SERVERS = [
    OURS_PY,
    OURS_C,
    OURS_NO_C,
    OURS_BENCH_APP,
    "websockets",
    "websockets+uvloop",
    "picows",
    "aiohttp",
    "node ws",
    "raw TCP echo (ceiling)",
]
IDLE_SERVERS_ALL = ["snow workers=0", "snow C (echo_server)", "websockets", "picows", "aiohttp", "node ws"]
IDLE_SERVERS_MIN = ["snow workers=0", OURS_NO_C, "websockets", "picows", "node ws"]
BROADCAST_OURS = "snow (Python CLI)"
BROADCAST_SERVERS = ["snow (Python CLI)", "snow (C chat_server)", OURS_NO_C, "websockets", "picows", "node ws"]
STEPS = ["echo", "bulk", "idle", "broadcast"]
BULK_SIZE = 1 << 20


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def run_step(name: str, argv: list[str], timeout: float, log: Path) -> int:
    """Run one benchmark script, its output shown live and kept in ``log``; bounded by ``timeout``."""
    print(f"\n=== step {name}: {' '.join(argv[1:])}", flush=True)
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=be.ROOT)
        assert proc.stdout is not None
        try:
            deadline = t0 + timeout
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                out.write(line)
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(argv, timeout)
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            # SIGTERM: the step scripts stop their own servers and clients on the way out.
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            print(f"  ! step {name} stopped after {time.monotonic() - t0:.0f} s", flush=True)
            return 124
    print(f"=== step {name}: exit {proc.returncode} after {time.monotonic() - t0:.0f} s", flush=True)
    return proc.returncode


# -- step 2: 1 MiB binary echo (run here, with bench_echo's helpers) --------------------------------------------


def bulk_step(opts: argparse.Namespace, out_json: Path) -> tuple[int, dict[str, dict[str, float]]]:
    specs = be.server_specs(False)
    names = [n for n in ECHO_SERVERS if n in specs and n != OURS_BENCH_APP]
    mopts = argparse.Namespace(warmup=opts.bulk_warmup, duration=opts.bulk_duration)
    raw: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    status = 0
    print(
        f"\n=== step bulk: {BULK_SIZE}-byte binary echo, 4 connections x 1 in flight, {opts.bulk_warmup:g} s warm-up "
        f"+ {opts.bulk_duration:g} s, {opts.bulk_runs} run(s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_bulk.") as tmp:
        for run in range(1, opts.bulk_runs + 1):
            for name in names:
                spec = specs[name]
                args = [
                    "echo",
                    "-c",
                    "4",
                    "-k",
                    "1",
                    "-s",
                    str(BULK_SIZE),
                    "-b",
                    "-d",
                    str(opts.bulk_duration),
                    "-w",
                    str(opts.bulk_warmup),
                    "-q",
                    *spec.loadgen_flags,
                ]
                try:
                    with be.running_server(spec, Path(tmp)) as server:
                        res = be.measure_once(server, ["echo", "-u", server.url, *args[1:]], mopts)
                        for _ in range(opts.bulk_retries):  # redo a run other jobs disturbed; keep the least disturbed
                            if res["others_cpu_pct"] <= 25:
                                break
                            again = be.measure_once(server, ["echo", "-u", server.url, *args[1:]], mopts)
                            res = again if again["others_cpu_pct"] < res["others_cpu_pct"] else res
                except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as exc:
                    print(f"  ! bulk {name} run {run}: {exc}", flush=True)
                    status = 1
                    continue
                res["mb_per_s"] = res["msgs_per_sec"] * BULK_SIZE / 1e6
                cpu = res["server_cpu_pct"] / 100
                res["mb_per_cpu_s"] = res["mb_per_s"] / cpu if cpu > 0 else 0.0
                res.pop("stderr", None)
                raw[name].append(res)
                if res["errors"]:
                    print(f"  ! bulk {name} run {run}: {res['errors']} errors", flush=True)
                    status = 1
                print(
                    f"  run {run} {name:24} {res['mb_per_s']:8.0f} MB/s  p50 {res['p50_us'] / 1000:6.1f} ms "
                    f"p99 {res['p99_us'] / 1000:6.1f} ms  server cpu {res['server_cpu_pct']:3.0f}%  "
                    f"errors {res['errors']}",
                    flush=True,
                )
    out_json.write_text(json.dumps({"runs": raw}))
    return status, bulk_medians(out_json)


def bulk_medians(path: Path) -> dict[str, dict[str, float]]:
    raw: dict[str, list[dict[str, Any]]] = json.loads(path.read_text())["runs"]
    return {
        n: {
            "mb_per_s": median([r["mb_per_s"] for r in recs]),
            "p50_ms": median([r["p50_us"] / 1000 for r in recs]),
            "p99_ms": median([r["p99_us"] / 1000 for r in recs]),
            "srv_cpu": median([r["server_cpu_pct"] for r in recs]),
            "lg_cpu": median([r["cpu_pct"] for r in recs]),
            "eff": median([r["mb_per_cpu_s"] for r in recs]),
            "others": median([r["others_cpu_pct"] for r in recs]),
            "runs": len(recs),
        }
        for n, recs in raw.items()
        if recs
    }


# -- reading the other steps' JSON ------------------------------------------------------------------------------


def per_run(path: Path, name: str, key: str, phase: str = "") -> list[float]:
    """One figure of one server in every run of a step's JSON, in run order (runs are interleaved across servers,
    so run i of two servers were measured minutes apart at most)."""
    recs = json.loads(path.read_text())["runs"].get(name, [])
    return [float((r[phase] if phase else r)[key]) for r in recs]


def run_ratios(path: Path, num: str, den: str, key: str, phase: str = "") -> list[float]:
    a, b = per_run(path, num, key, phase), per_run(path, den, key, phase)
    return [x / y for x, y in zip(a, b, strict=False) if y]


def echo_medians(path: Path) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    data = json.loads(path.read_text())
    med: dict[str, dict[str, float]] = {}
    for name, recs in data["runs"].items():
        if not recs:
            continue
        med[name] = {
            "tput": median([r["throughput"]["msgs_per_sec"] for r in recs]),
            "eff": median([r["throughput"]["msgs_per_cpu_s"] for r in recs]),
            "srv_cpu": median([r["throughput"]["server_cpu_pct"] for r in recs]),
            "lg_cpu": median([r["throughput"]["cpu_pct"] for r in recs]),
            "p50": median([r["latency"]["p50_us"] for r in recs]),
            "p99": median([r["latency"]["p99_us"] for r in recs]),
            "k1_tput": median([r["latency"]["msgs_per_sec"] for r in recs]),
            "k1_eff": median([r["latency"].get("msgs_per_cpu_s", 0.0) for r in recs]),
            "others": median([r["throughput"]["others_cpu_pct"] for r in recs]),
            "runs": len(recs),
        }
    return data["versions"], med


def idle_medians(path: Path) -> dict[str, dict[str, float]]:
    return json.loads(path.read_text())["medians"]


def broadcast_medians(path: Path) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    data = json.loads(path.read_text())
    med: dict[str, dict[str, float]] = {}
    for key, recs in data["runs"].items():
        good = [r for r in recs if r.get("ok")]
        if not good:
            continue
        med[key] = {
            "tput": median([r["deliveries_per_s"] for r in good]),
            "p50": median([r["latency_ms_p50"] for r in good]),
            "p90": median([r["latency_ms_p90"] for r in good]),
            "srv_cpu": median([r["server_cpu_pct"] for r in good]),
            "eff": median([r["deliveries_per_cpu_s"] for r in good]),
            "runs": len(good),
        }
    return data.get("versions", {}), med


# -- the summary ------------------------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or a != a or b != b:
        return "-"
    return f"{a / b:.2f}x"


def summary(
    opts: argparse.Namespace,
    versions: dict[str, str],
    echo: dict[str, dict[str, float]],
    bulk: dict[str, dict[str, float]],
    idle: dict[str, dict[str, float]],
    bcast: dict[str, dict[str, float]],
    bcast_sizes: list[int],
    steps_status: dict[str, str],
    stem: Path,
) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"Run: `.venv/bin/python bench/run_all.py{' --quick' if opts.quick else ''}` ({opts.command_line}), ")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    add(f"{when}; medians of {opts.echo_runs} run(s) (1 MiB: {opts.bulk_runs}; idle, broadcast: {opts.runs}); steps: ")
    add(", ".join(f"{k} {v}" for k, v in steps_status.items()) + ".")
    add("")
    add("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    add("")
    if echo:
        ws = echo.get("websockets", {})
        add(
            f"### Echo, 32-byte text, {opts.connections} connections (server core 0, loadgen core 1, "
            f"{opts.echo_warmup:g} s warm-up + {opts.echo_duration:g} s)"
        )
        add("")
        add(
            "| server | msg/s (x16 in flight) | vs websockets | msg per server CPU-s | server CPU "
            "| loadgen CPU | other jobs | p50 µs (x1) | p99 µs (x1) | msg/s (x1) | runs |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in ECHO_SERVERS:
            if name in echo:
                x = echo[name]
                add(
                    f"| {name} | {x['tput']:,.0f} | {ratio(x['tput'], ws.get('tput'))} | {x['eff']:,.0f} "
                    f"| {x['srv_cpu']:.0f}% | {x['lg_cpu']:.0f}% | {x['others']:.0f}% | {x['p50']:,.0f} "
                    f"| {x['p99']:,.0f} | {x['k1_tput']:,.0f} | {x['runs']:.0f} |"
                )
        add("")
    if bulk:
        ws = bulk.get("websockets", {})
        add(
            f"### 1 MiB binary echo, 4 connections x 1 in flight ({opts.bulk_warmup:g} s warm-up + "
            f"{opts.bulk_duration:g} s)"
        )
        add("")
        add(
            "| server | MB/s (10^6 B of payload echoed) | vs websockets | MB per server CPU-s | p50 ms | p99 ms "
            "| server CPU | loadgen CPU | other jobs | runs |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in ECHO_SERVERS:
            if name in bulk:
                x = bulk[name]
                add(
                    f"| {name} | {x['mb_per_s']:,.0f} | {ratio(x['mb_per_s'], ws.get('mb_per_s'))} | {x['eff']:,.0f} "
                    f"| {x['p50_ms']:.1f} | {x['p99_ms']:.1f} | {x['srv_cpu']:.0f}% | {x['lg_cpu']:.0f}% "
                    f"| {x['others']:.0f}% | {x['runs']:.0f} |"
                )
        add("")
    if idle:
        ws = idle.get("websockets", {})
        add(
            f"### {opts.idle_connections:,} idle connections, held {opts.idle_hold:g} s (ours with --ping-interval 5; "
            "peers with their defaults)"
        )
        add("")
        add("| server | RSS before | RSS end of hold | KiB/connection | vs websockets | idle CPU | runs |")
        add("|---|---:|---:|---:|---:|---:|---:|")
        for name, x in idle.items():
            add(
                f"| {name} | {x['rss_before'] / 1024:.1f} MiB | {x['rss_end'] / 1024:.1f} MiB "
                f"| {x['kib_per_conn']:.1f} | {ratio(x['kib_per_conn'], ws.get('kib_per_conn'))} "
                f"| {x['idle_cpu_pct']:.1f}% | {x['runs']:.0f} |"
            )
        add("")
    for bcast_members in bcast_sizes if bcast else []:
        add(f"### Broadcast, 64-byte text to {bcast_members:,} members (from bench_broadcast.py)")
        add("")
        add(
            "| server | deliveries/s | vs websockets | deliveries per server CPU-s | one to all p50 ms | p90 ms "
            "| server CPU | runs |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        base = bcast.get(f"websockets @ {bcast_members}", {})
        for name in BROADCAST_SERVERS:
            key = f"{name} @ {bcast_members}"
            if key in bcast:
                x = bcast[key]
                add(
                    f"| {name} | {x['tput']:,.0f} | {ratio(x['tput'], base.get('tput'))} | {x['eff']:,.0f} "
                    f"| {x['p50']:.1f} "
                    f"| {x['p90']:.1f} | {x['srv_cpu']:.0f}% | {x['runs']:.0f} |"
                )
        add("")

    # the goals of issue 21 (after the re-cut along the layers), then the pure-Python configuration beside them
    add("### Goals of issue 21, as ratios measured in this run")
    add("")
    add(
        'Each ratio from the medians above, or, where a goal says "every run", from each run against the same run of '
        'the peer (runs are interleaved), min-max. "per server CPU-s" is the same ratio of throughput per second of '
        "server CPU (the figure other jobs on a shared machine disturb least)."
    )
    add("")
    add("| goal | measured | met | per server CPU-s |")
    add("|---|---:|---|---:|")

    def median_goal(
        text: str,
        d: dict[str, dict[str, float]],
        num: str,
        den: str,
        key: str,
        target: float,
        higher: bool = True,
        eff_key: str = "eff",
    ) -> None:
        a, c = d.get(num, {}).get(key), d.get(den, {}).get(key)
        if a is None or c is None or not c:
            add(f"| {text} | not measured | - | - |")
            return
        r = a / c
        met = r >= target if higher else r <= target
        ea, ec = d[num].get(eff_key), d[den].get(eff_key)
        eff = f"{ea / ec:.2f}x" if ea and ec else "-"
        add(f"| {text} | {r:.2f}x | {'yes' if met else '**no**'} | {eff} |")

    def every_run_goal(text: str, ratios: list[float], target: float, eff: list[float]) -> None:
        if not ratios:
            add(f"| {text} | not measured | - | - |")
            return
        met = min(ratios) >= target
        e = f"{min(eff):.2f}x-{max(eff):.2f}x" if eff else "-"
        add(
            f"| {text} | {min(ratios):.2f}x-{max(ratios):.2f}x ({len(ratios)} runs) | {'yes' if met else '**no**'} "
            f"| {e} |"
        )

    echo_json, bulk_json = Path(f"{stem}.echo.json"), Path(f"{stem}.bulk.json")
    if echo_json.exists():
        every_run_goal(
            "echo 32 B, 100 x 16 in flight: msg/s ours / picows in every run, goal ≥ 10",
            run_ratios(echo_json, OURS_PY, "picows", "msgs_per_sec", "throughput"),
            10,
            run_ratios(echo_json, OURS_PY, "picows", "msgs_per_cpu_s", "throughput"),
        )
    median_goal(
        "echo 32 B, 100 x 1 in flight: msg/s ours / picows, goal ≥ 1",
        echo,
        OURS_PY,
        "picows",
        "k1_tput",
        1,
        eff_key="k1_eff",
    )
    median_goal(
        "echo 32 B, 100 x 1 in flight: RTT p50 ours / picows, goal ≤ 1",
        echo,
        OURS_PY,
        "picows",
        "p50",
        1,
        higher=False,
        eff_key="-",
    )
    for b in bcast_sizes:
        median_goal(
            f"broadcast to {b:,}, one in flight: time to reach the last member (p50) ours / picows, goal ≤ 1",
            bcast,
            f"{BROADCAST_OURS} @ {b}",
            f"picows @ {b}",
            "p50",
            1,
            higher=False,
            eff_key="-",
        )
    for b in bcast_sizes:
        if b >= 10000:
            median_goal(
                f"broadcast to {b:,}, 16 in flight: deliveries/s ours / picows, goal ≥ 7",
                bcast,
                f"{BROADCAST_OURS} @ {b}",
                f"picows @ {b}",
                "tput",
                7,
            )
    if bulk_json.exists():
        every_run_goal(
            "1 MiB echo: MB/s ours / picows in every run, goal ≥ 1.05",
            run_ratios(bulk_json, OURS_PY, "picows", "mb_per_s"),
            1.05,
            run_ratios(bulk_json, OURS_PY, "picows", "mb_per_cpu_s"),
        )
    ours_idle = idle.get("snow workers=0", {}).get("kib_per_conn")
    if ours_idle is None:
        add("| KiB per idle connection, goal ≤ 4.5 | not measured | - | - |")
    else:
        add(
            f"| KiB per idle connection, goal ≤ 4.5 | {ours_idle:.1f} | {'yes' if ours_idle <= 4.5 else '**no**'} | - |"
        )
    median_goal("C program / Python API, echo 32 B x 16 msg/s, goal ≥ 0.9", echo, OURS_C, OURS_PY, "tput", 0.9)
    median_goal(
        "C program / Python API, echo 32 B x 1 msg/s, goal ≥ 0.9",
        echo,
        OURS_C,
        OURS_PY,
        "k1_tput",
        0.9,
        eff_key="k1_eff",
    )
    add("")
    add("### The pure-Python configuration (SNOW_RT_PY_NO_SPEEDUPS=1) against the C parts, same run")
    add("")
    add("| figure | pure-Python / C parts |")
    add("|---|---:|")

    def config_ratio(text: str, d: dict[str, dict[str, float]], num: str, den: str, key: str) -> None:
        a, c = d.get(num, {}).get(key), d.get(den, {}).get(key)
        add(f"| {text} | {a / c:.2f}x |" if a is not None and c else f"| {text} | not measured |")

    config_ratio("echo 32 B, 100 x 16: msg/s", echo, OURS_NO_C, OURS_PY, "tput")
    config_ratio("echo 32 B, 100 x 1: RTT p50", echo, OURS_NO_C, OURS_PY, "p50")
    config_ratio("1 MiB echo: MB/s", bulk, OURS_NO_C, OURS_PY, "mb_per_s")
    for b in bcast_sizes:
        config_ratio(
            f"broadcast to {b:,}: deliveries/s", bcast, f"{OURS_NO_C} @ {b}", f"{BROADCAST_OURS} @ {b}", "tput"
        )
        config_ratio(
            f"broadcast to {b:,}: time to reach all, p50", bcast, f"{OURS_NO_C} @ {b}", f"{BROADCAST_OURS} @ {b}", "p50"
        )
    config_ratio("KiB per idle connection", idle, OURS_NO_C, "snow workers=0", "kib_per_conn")
    add("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run, short windows, 2,000 idle, 1,000 broadcast")
    parser.add_argument("--runs", type=int, default=3, help="runs of the idle and broadcast steps")
    parser.add_argument("--echo-runs", type=int, default=5, help="runs of the echo step (issue 12: 5)")
    parser.add_argument("--only", default=",".join(STEPS), help="comma-separated subset of: " + ", ".join(STEPS))
    parser.add_argument("--connections", type=int, default=100, help="echo connections")
    parser.add_argument("--echo-duration", type=float, default=4.0)
    parser.add_argument("--echo-warmup", type=float, default=1.0)
    parser.add_argument("--bulk-duration", type=float, default=4.0)
    parser.add_argument("--bulk-warmup", type=float, default=1.0)
    parser.add_argument("--bulk-retries", type=int, default=1, help="redo a 1 MiB run disturbed by other jobs")
    parser.add_argument(
        "--bulk-runs", type=int, default=5, help="runs of the 1 MiB step (its figures vary the most on a shared VM)"
    )
    parser.add_argument("--idle-connections", type=int, default=10000)
    parser.add_argument("--idle-hold", type=float, default=15.0)
    parser.add_argument("--idle-all", action="store_true", help="every peer in the idle step (default: four)")
    parser.add_argument("--broadcast-members", default="1000,10000", help="comma-separated room sizes")
    parser.add_argument("--broadcast-runs", type=int, default=0, help="runs of the broadcast step (default --runs)")
    parser.add_argument(
        "--summarize-only", action="store_true", help="run nothing: rebuild the summary from the JSON of --out's run"
    )
    parser.add_argument(
        "--peers",
        default="",
        help="comma-separated peers to keep besides ours (e.g. picows; default: every peer of each step)",
    )
    parser.add_argument("--out", type=Path, default=be.ROOT / "build" / "bench_all.md", help="markdown summary")
    opts = parser.parse_args(argv)
    opts.command_line = " ".join(sys.argv[1:]) or "defaults"
    if opts.quick:
        opts.runs = opts.bulk_runs = opts.echo_runs = 1
        opts.echo_duration, opts.echo_warmup, opts.bulk_duration, opts.bulk_warmup = 2.0, 0.5, 2.0, 0.5
        opts.idle_connections, opts.idle_hold = 2000, 8.0
        opts.broadcast_members, opts.bulk_retries = "1000", 0
    steps = [s.strip() for s in opts.only.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown steps {unknown}; known: {STEPS}")
    be.raise_nofile_limit()
    be.build_loadgen()
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    stem = opts.out.with_suffix("")
    status: dict[str, str] = {}
    versions = be.versions()
    echo: dict[str, dict[str, float]] = {}
    bulk: dict[str, dict[str, float]] = {}
    idle: dict[str, dict[str, float]] = {}
    bcast: dict[str, dict[str, float]] = {}
    t0 = time.monotonic()

    if opts.summarize_only:
        loaders: dict[str, Any] = {
            "echo": echo_medians,
            "bulk": bulk_medians,
            "idle": idle_medians,
            "broadcast": broadcast_medians,
        }
        found: dict[str, Any] = {}
        for step in steps:
            path = Path(f"{stem}.{step}.json")
            if path.exists():
                found[step] = loaders[step](path)
                status[step] = "ok"
            else:
                status[step] = "no JSON"
        if "echo" in found:
            versions, echo = found["echo"]
        bulk = found.get("bulk", {})
        idle = found.get("idle", {})
        if "broadcast" in found:
            bcast = found["broadcast"][1]
        steps = []
        opts.command_line += " (summary rebuilt from the JSON of an earlier run)"

    if opts.peers:  # ours always; of the peers only those named
        keep = {p.strip() for p in opts.peers.split(",") if p.strip()}

        def only(names: list[str]) -> list[str]:
            return [n for n in names if n.startswith("snow") or n in keep]

        ECHO_SERVERS[:] = only(ECHO_SERVERS)
        IDLE_SERVERS_MIN[:] = only(IDLE_SERVERS_MIN)
        IDLE_SERVERS_ALL[:] = only(IDLE_SERVERS_ALL)
        BROADCAST_SERVERS[:] = only(BROADCAST_SERVERS)

    if "echo" in steps:
        path = Path(f"{stem}.echo.json")
        path.unlink(missing_ok=True)
        argv_ = [PY, str(BENCH / "bench_echo.py"), "--servers", ",".join(ECHO_SERVERS), "--runs", str(opts.echo_runs)]
        argv_ += ["--duration", str(opts.echo_duration), "--warmup", str(opts.echo_warmup), "--skip-solo"]
        argv_ += ["--connections", str(opts.connections), "--json", str(path)]
        if opts.quick:
            argv_ += ["--quiet-wait", "5", "--retries", "0"]
        else:
            argv_ += ["--quiet-wait", "10", "--retries", "1"]
        rc = run_step("echo", argv_, 60 * 30, Path(f"{stem}.echo.log"))
        status["echo"] = "ok" if rc == 0 else f"exit {rc}"
        if path.exists():
            versions, echo = echo_medians(path)

    if "bulk" in steps:
        rc, bulk = bulk_step(opts, Path(f"{stem}.bulk.json"))
        status["bulk"] = "ok" if rc == 0 else "errors"

    if "idle" in steps:
        path = Path(f"{stem}.idle.json")
        path.unlink(missing_ok=True)
        servers = IDLE_SERVERS_ALL if opts.idle_all else IDLE_SERVERS_MIN
        argv_ = [PY, str(BENCH / "bench_idle.py"), "--servers", ",".join(servers), "--runs", str(opts.runs)]
        argv_ += ["--connections", str(opts.idle_connections), "--hold", str(opts.idle_hold), "--json", str(path)]
        argv_ += ["--settle", "3" if opts.quick else "5"]
        rc = run_step("idle", argv_, 60 * 30, Path(f"{stem}.idle.log"))
        status["idle"] = "ok" if rc == 0 else f"exit {rc}"
        if path.exists():
            idle = idle_medians(path)

    if "broadcast" in steps:
        script = BENCH / "bench_broadcast.py"
        path = Path(f"{stem}.broadcast.json")
        path.unlink(missing_ok=True)
        runs = opts.broadcast_runs or opts.runs
        argv_ = [PY, str(script), "--members", str(opts.broadcast_members), "--runs", str(runs)]
        argv_ += ["--servers", ",".join(BROADCAST_SERVERS), "--json", str(path)]
        if opts.quick:
            argv_ += ["--duration", "2", "--warmup", "0.5", "--retries", "0", "--quiet-wait", "5"]
        else:
            argv_ += ["--duration", "3", "--warmup", "1", "--retries", "1", "--quiet-wait", "10"]
        rc = run_step("broadcast", argv_, 60 * 40, Path(f"{stem}.broadcast.log"))
        status["broadcast"] = "ok" if rc == 0 else f"exit {rc}"
        if path.exists():
            bversions, bcast = broadcast_medians(path)
            for k, v in bversions.items():
                versions.setdefault(k, v)

    sizes = [int(x) for x in str(opts.broadcast_members).split(",") if x.strip()]
    text = summary(opts, versions, echo, bulk, idle, bcast, sizes, status, stem)
    opts.out.write_text(text)
    print(f"\n=== summary ({time.monotonic() - t0:.0f} s; also in {opts.out}):\n")
    print(text)
    return 0 if all(v == "ok" for v in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
