"""The front door's cost (issue 15): the 32-byte echo with admission checks and metrics switched on, and with a
Prometheus scraper polling every 100 ms, against the plain server in the same run.

Configurations (our CLI, ``--workers 0``, no heartbeat, each a fresh process):

* ``plain``: no option of issue 15.
* ``front door``: Origin allow-list (the load generator sends no Origin: passes the check), subprotocols offered by
  nobody, ``--max-connections 10000 --max-connections-per-ip 5000 --handshake-rate 1000 --handshake-burst 1000``,
  ``--metrics-path /metrics``, ``--access-log`` off.
* ``front door + scrape``: the same, with a scraper GETting ``/metrics`` on the server's port every 100 ms.
* ``metrics port + scrape``: plain, plus ``--metrics-port`` (prometheus_client's own HTTP server thread), scraped
  every 100 ms there.

For each: 100 connections x 16 in flight (messages/s) and 100 x 1 in flight (messages/s, round trip p50), ``--runs``
times interleaved; medians and the ratio to ``plain``. Uses bench_echo.py's load generator (bench/loadgen.c),
server on core 0, load generator on core 1.

    .venv/bin/python bench/bench_frontdoor.py             # about 3 minutes
    .venv/bin/python bench/bench_frontdoor.py --quick     # 1 run, short windows
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_echo import (
    LOADGEN_CORE,
    PYTHON,
    SERVER_CORE,
    ServerSpec,
    build_loadgen,
    measure,
    print_versions,
    raise_nofile_limit,
    running_server,
    versions,
    wait_for_quiet,
)

from snow_rt_py.supervisor import free_port

SNOW = [PYTHON, "-m", "snow_rt_py", "serve", "--app", "echo", "--host", "127.0.0.1", "--port", "0"]
BASE = [*SNOW, "--workers", "0", "--ping-interval", "0"]
FRONT_DOOR = [
    "--allowed-origin",
    "https://app.example.com",
    "--allowed-origin",
    "https://*.example.org",
    "--subprotocol",
    "chat.v2",
    "--max-connections",
    "10000",
    "--max-connections-per-ip",
    "5000",
    "--handshake-rate",
    "1000",
    "--handshake-burst",
    "1000",
    "--metrics-path",
    "/metrics",
]


class Scraper(threading.Thread):
    """GETs ``url`` every ``interval`` s until stopped; counts the scrapes and their durations."""

    def __init__(self, url: str, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.stop = threading.Event()
        self.durations: list[float] = []
        self.errors = 0
        self.last = b""

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    self.last = response.read()
                self.durations.append(time.perf_counter() - started)
            except OSError:
                self.errors += 1


CONFIGS: dict[str, tuple[list[str], str | None]] = {
    # name: (extra CLI arguments, what to scrape: "same" port, "separate" port or None)
    "plain": ([], None),
    "front door": (FRONT_DOOR, None),
    "front door + scrape": (FRONT_DOOR, "same"),
    "metrics port + scrape": (["--metrics-port", "PORT"], "separate"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--max-others", type=float, default=20.0)
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--quiet-wait", type=float, default=30.0)
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.runs, opts.duration, opts.warmup, opts.retries, opts.quiet_wait = 1, 2.0, 0.5, 0, 5.0
    raise_nofile_limit()
    build_loadgen()
    print_versions(versions())
    print(
        f"echo {opts.size} B, {opts.connections} connections, k=16 and k=1, {opts.warmup:g} s + {opts.duration:g} s, "
        f"{opts.runs} run(s), server core {SERVER_CORE}, loadgen core {LOADGEN_CORE}; scrapes every 100 ms"
    )
    results: dict[str, dict[str, list[float]]] = {
        name: {"k16": [], "k1": [], "p50": [], "scrapes": [], "scrape_ms": [], "eff16": [], "eff1": []}
        for name in CONFIGS
    }
    with tempfile.TemporaryDirectory(prefix="bench_frontdoor.") as tmp:
        for run in range(1, opts.runs + 1):
            for name, (extra, scrape) in CONFIGS.items():
                wait_for_quiet(0.25, opts.quiet_wait)
                port = free_port("127.0.0.1")
                args = [port if a == "PORT" else a for a in extra]
                spec = ServerSpec(name, [*BASE, *map(str, args)])
                with running_server(spec, Path(tmp)) as server:
                    scraper = None
                    if scrape is not None:
                        http = server.url.replace("ws://", "http://").rstrip("/")
                        target = f"{http}/metrics" if scrape == "same" else f"http://127.0.0.1:{port}/metrics"
                        scraper = Scraper(target)
                        scraper.start()
                    k16 = measure(server, 16, opts)
                    k1 = measure(server, 1, opts)
                    row = results[name]
                    row["k16"].append(k16["msgs_per_sec"])
                    row["k1"].append(k1["msgs_per_sec"])
                    row["p50"].append(k1["p50_us"])
                    row["eff16"].append(k16["msgs_per_cpu_s"])
                    row["eff1"].append(k1["msgs_per_cpu_s"])
                    if scraper is not None:
                        scraper.stop.set()
                        scraper.join(10)
                        assert b"snow_ws_messages_in_total" in scraper.last, "the scrapes returned no metrics"
                        row["scrapes"].append(len(scraper.durations))
                        row["scrape_ms"].append(statistics.median(scraper.durations) * 1e3)
                print(
                    f"run {run} {name:24} k=16 {k16['msgs_per_sec']:>10,.0f} msg/s   k=1 {k1['msgs_per_sec']:>9,.0f} "
                    f"msg/s, p50 {k1['p50_us']:.0f} µs; msg per server CPU-s {k16['msgs_per_cpu_s']:,.0f} / "
                    f"{k1['msgs_per_cpu_s']:,.0f}; others {k16['others_cpu_pct']:.0f} / {k1['others_cpu_pct']:.0f} %"
                    + (f"   scrapes {len(scraper.durations)}, errors {scraper.errors}" if scraper else ""),
                    flush=True,
                )
    plain = {key: statistics.median(values) for key, values in results["plain"].items() if values}
    print(
        "\n| configuration | 100 x 16: msg/s | vs plain | msg per server CPU-s | vs plain "
        "| 100 x 1: msg/s | vs plain | msg per server CPU-s | vs plain | RTT p50 (µs) | scrape p50 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in results.items():
        med = {key: statistics.median(values) for key, values in row.items() if values}
        scrape = f"{med['scrape_ms']:.1f} ms" if "scrape_ms" in med else "-"
        cells = [f"{med[k]:,.0f} | {med[k] / plain[k]:.3f}" for k in ("k16", "eff16", "k1", "eff1")]
        print(f"| {name} | {' | '.join(cells)} | {med['p50']:.0f} | {scrape} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
