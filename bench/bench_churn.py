"""Connection churn (issue 26): how many connections per second a server makes, uses once and ends.

Each cycle (``bench/churn.c``, compiled here against OpenSSL): TCP connect, for wss:// a TLS 1.3 handshake, the
WebSocket opening handshake, one 32-byte text message and its echo, the close handshake, the end of the TCP
connection; 64 cycles in flight, a finished one replaced at once. Figures: cycles/s, the handshake time (connect()
to a valid 101, TLS included) p50 and p99, and the server's CPU per cycle (user + system, ``/proc/PID/stat`` over
the measured window).

Servers, each with its defaults (our heartbeat included: its registration is part of a connection's life): ours
through the Python API (``snow-ws serve --app echo``), ours through a C program (``build/echo_server``), and picows
(``bench/servers/picows_echo.py``). Cases: ``plain`` (ws://), ``tls`` (wss://, a full handshake every cycle, RSA
2048 certificate made here with ``openssl``) and ``resumed`` (wss://, every slot offering the TLS 1.3 ticket of its
previous connection: what session resumption buys a reconnecting client). Server on core 0, client on core 1
(``taskset``); every run is a fresh server; the servers take turns in each run; the table shows medians of
``--runs`` with min-max, and ratios to picows measured in the same runs.

    .venv/bin/python bench/bench_churn.py                 # 3 runs x (1 s warm-up + 3 s), about 2 minutes
    .venv/bin/python bench/bench_churn.py --quick         # 1 run, 2 s windows
    .venv/bin/python bench/bench_churn.py --cases plain --servers snow,picows --runs 5

The figures are written to BENCHMARKS.md by hand, with the command and the commit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench_echo as be

CHURN_SRC = be.ROOT / "bench" / "churn.c"
CHURN = be.ROOT / "build" / "churn"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVERS = ["snow", "snow C", "picows"]
CASES = ["plain", "tls", "resumed"]
LABELS = {
    "snow": "ours, Python API (`snow-ws serve --app echo`)",
    "snow C": "ours, C `echo_server`",
    "picows": "picows",
}


def build_churn() -> Path:
    """Compile bench/churn.c into build/churn unless it is newer than its sources."""
    newest = max(CHURN_SRC.stat().st_mtime, be.WSCLIENT_H.stat().st_mtime)
    if CHURN.exists() and CHURN.stat().st_mtime >= newest:
        return CHURN
    CHURN.parent.mkdir(exist_ok=True)
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(CHURN), str(CHURN_SRC), "-lssl", "-lcrypto", "-lz"]
    subprocess.run(cmd, check=True, cwd=be.ROOT, timeout=120)
    return CHURN


def make_certificate(tmp: Path) -> tuple[Path, Path]:
    """A self-signed RSA 2048 certificate for 127.0.0.1 and its key, in ``tmp``."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def server_spec(name: str, tls: tuple[Path, Path] | None) -> be.ServerSpec:
    """How to start ``name`` (ws://, or wss:// with the ``tls`` certificate and key)."""
    flags = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls is not None else []
    if name == "snow":
        argv = [be.PYTHON, "-m", "snow_rt_py", "serve", "--app", "echo", "--host", "127.0.0.1", "--port", "0"]
    elif name == "snow C":
        argv = [str(be.ROOT / "build" / "echo_server"), "--host", "127.0.0.1", "--port", "0"]
    else:
        argv = [be.PYTHON, str(be.SERVERS_DIR / "picows_echo.py")]
    return be.ServerSpec(name, [*argv, *flags])


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def measure(server: be.RunningServer, case: str, opts: argparse.Namespace) -> dict[str, Any]:
    """One churn window against ``server``: the client's result and the server's CPU per cycle."""
    marks: dict[str, tuple[float, float]] = {}

    def on_event(event: str) -> None:
        if event in ("measure_start", "measure_end"):
            marks[event] = cpu_split(server.pid)

    args = ["-u", server.url, "-k", str(opts.inflight), "-s", "32", "-d", str(opts.duration), "-w", str(opts.warmup)]
    if case == "resumed":
        args.append("-R")
    result = be.run_loadgen([*args, "-q"], opts.warmup + opts.duration + 30, on_event, program=CHURN)
    cycles = max(1, result["cycles"])
    (u0, s0), (u1, s1) = marks["measure_start"], marks["measure_end"]
    result["server_user_us"] = (u1 - u0) / cycles * 1e6
    result["server_sys_us"] = (s1 - s0) / cycles * 1e6
    result["server_cpu_us"] = result["server_user_us"] + result["server_sys_us"]
    return result


def fmt_row(name: str, runs: list[dict[str, Any]], base: list[dict[str, Any]] | None) -> str:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    rates = [r["cycles_per_sec"] for r in runs]
    spread = f" ({min(rates):,.0f}-{max(rates):,.0f})" if len(rates) > 1 else ""
    ratio = "-"
    base_rate = statistics.median(r["cycles_per_sec"] for r in base) if base else 0.0
    if base_rate > 0 and name != "picows":
        ratio = f"{med('cycles_per_sec') / base_rate:.2f}x"
    errors = sum(r["errors"] for r in runs)
    resumed = sum(r["resumed"] for r in runs) / max(1, sum(r["tls_handshakes"] for r in runs))
    extra = f" | {resumed:.0%}" if runs[0]["tls"] else " | -"
    return (
        f"| {LABELS.get(name, name)} | {med('cycles_per_sec'):,.0f}{spread} | {ratio} | {med('hs_p50_us'):,.0f} | "
        f"{med('hs_p99_us'):,.0f} | {med('server_cpu_us'):,.0f} ({med('server_user_us'):,.0f} + "
        f"{med('server_sys_us'):,.0f}){extra} | {errors} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--inflight", type=int, default=64, help="cycles in flight")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, of {SERVERS}")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {CASES}")
    parser.add_argument("--quick", action="store_true", help="1 run of 2 s")
    opts = parser.parse_args()
    if opts.quick:
        opts.runs, opts.duration = 1, 2.0
    names = be.chosen_servers(parser, opts.servers, dict.fromkeys(SERVERS))
    cases = be.chosen_servers(parser, opts.cases, dict.fromkeys(CASES))
    be.raise_nofile_limit()
    build_churn()
    be.print_versions(be.versions())
    print(
        f"churn: {opts.inflight} cycles in flight (connect, handshake, one 32-byte echo, close); "
        f"medians of {opts.runs} runs of {opts.warmup:g} s warm-up + {opts.duration:g} s"
    )
    results: dict[tuple[str, str], list[dict[str, Any]]] = {(c, n): [] for c in cases for n in names}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        tls = make_certificate(tmp) if set(cases) - {"plain"} else None
        for run in range(opts.runs):
            for case in cases:
                order = names[run % len(names) :] + names[: run % len(names)]
                for name in order:
                    spec = server_spec(name, None if case == "plain" else tls)
                    with be.running_server(spec, tmp) as server:
                        r = measure(server, case, opts)
                    results[case, name].append(r)
                    print(
                        f"  run {run + 1} {case:8s} {name:7s} {r['cycles_per_sec']:9,.0f} cycles/s  "
                        f"hs p50 {r['hs_p50_us']:,.0f} p99 {r['hs_p99_us']:,.0f} µs  "
                        f"server {r['server_cpu_us']:,.0f} µs/cycle (user {r['server_user_us']:,.0f})  "
                        f"client {r['cpu_pct']:.0f} %  "
                        f"errors {r['errors']}",
                        flush=True,
                    )
    for case in cases:
        print(f"\n{case}:\n")
        print(
            "| server | cycles/s | / picows | handshake p50 µs | p99 µs | server CPU µs/cycle (user + system) "
            "| resumed | errors |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        base = results.get((case, "picows"))
        for name in names:
            print(fmt_row(name, results[case, name], base))

    def med(case: str, name: str) -> float | None:
        runs = results.get((case, name))
        return statistics.median(r["cycles_per_sec"] for r in runs) if runs else None

    print("\ngoals (issue 26):")
    for case, name, base_name, goal in (
        ("plain", "snow", "picows", 1.5),
        ("plain", "snow C", "picows", 1.5),
        ("tls", "snow", "picows", 1.0),
        ("tls", "snow C", "picows", 1.0),
        ("plain", "snow C", "snow", 0.9),
        ("tls", "snow C", "snow", 0.9),
    ):
        ours, base = med(case, name), med(case, base_name)
        if ours is not None and base:
            verdict = "met" if ours / base >= goal else "NOT met"
            print(f"  {case}: {name} / {base_name} = {ours / base:.2f}x (goal >= {goal}x): {verdict}")
    return 0 if all(r["errors"] == 0 for runs in results.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
