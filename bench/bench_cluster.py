"""Issue 14: rooms across processes on Redis (runtime/cluster.py), measured.

1. Broadcast fan-out, 64-byte messages, 10,000 members: on ONE node (the embedded default, no Redis) against TWO
   nodes of a cluster with 5,000 members each (``snow-ws serve --app bench``, the sender on node 1, so half the
   deliveries cross Redis). Client: bench/fanout.c (``-U`` puts every odd member on the second node). Reported:
   deliveries/s, deliveries per server CPU-second (the CPU of every server process during the measured window),
   the ratio cluster / single (target >= 0.8), and the latency of a broadcast to its LAST member, p50, whose
   difference is dominated by the client reading 10,000 frames; so fanout.c also reports when the FIRST member
   of each node got each broadcast (even members on node 1, the sender's; odd ones on node 2), by the kernel's
   receive timestamp (and, shown beside it, when the client's one thread read it): the median of
   first-on-node-2 minus first-on-node-1 is the fan-out latency the cluster adds (target < 2 ms), shown next to
   the same difference on one node (where both halves are local).
2. Redis commands per broadcast, from Redis' own ``INFO commandstats`` (reset at the window's start, read at its
   end): PUBLISH calls / broadcasts completed in the window (target: 1), and every other command in the window.
3. The hop alone: a room of 2 members, one per node, 200 broadcasts one at a time: the remote member's latency
   minus the local member's (the time Redis and the second node add, with no fan-out work to wait behind).
4. Echo throughput of ``snow-ws serve --app echo`` with ``--processes 2`` against 1 (bench/loadgen.c, 100
   connections x 16 in flight, 32 B), with the CPU each side took.

With ``--deflate``, the fan-out of part 1 sends 1 KiB JSON texts to members that all negotiated permessage-deflate
(``fanout -z -j``): each node compresses each broadcast once for its own members.

Usage: ``.venv/bin/python bench/bench_cluster.py [--duration 3] [--runs 2] [--deflate]``. Needs redis-server
(tests/cluster/setup.sh). Each run is short: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_echo as be  # the clients' build step

from snow_rt_py.supervisor import free_port

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def build(name: str) -> Path:
    return be.build_client(ROOT / "bench" / f"{name}.c", BUILD / name)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes and their children threads (and their child processes' own stat)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def children_of(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


class Proc:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            raise SystemExit(f"{argv} did not start")
        self.url = line.split()[-1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True).stdout


def commandstats(port: int) -> dict[str, int]:
    out = {}
    for line in redis_cli(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line.partition(":")
            out[name[len("cmdstat_") :]] = int(rest.split(",")[0].split("=")[1])
    return out


def serve(app: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snow_rt_py", "serve", "--app", app, "--port", "0", "--ping-interval", "0", *extra]


def fanout(
    urls: list[str], pids: list[int], redis_port: int | None, duration: float, deflate: bool = False
) -> dict[str, Any]:
    cmd = [str(build("fanout")), "-u", urls[0], "-n", "10000", "-K", "20", "-W", "4", "-d", str(duration), "-w", "1"]
    cmd += ["-s", "1024", "-j", "-z"] if deflate else ["-s", "64"]
    cmd += ["-C", "200", "-T", "120"]
    if len(urls) > 1:
        cmd += ["-U", urls[1]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    marks: dict[str, tuple[float, float]] = {}
    stats: dict[str, dict[str, int]] = {}
    result: dict[str, Any] = {}
    for line in proc.stdout:
        record = json.loads(line)
        event = record.get("event")
        if event in ("measure_start", "measure_end"):
            marks[event] = (cpu_seconds(pids), time.monotonic())
            if redis_port is not None:
                if event == "measure_start":
                    redis_cli(redis_port, "CONFIG", "RESETSTAT")
                else:
                    stats["window"] = commandstats(redis_port)
        elif event is None:
            result = record
    proc.wait(60)

    (c0, t0), (c1, t1) = marks["measure_start"], marks["measure_end"]
    result["server_cpu_s"] = c1 - c0
    result["server_cpu_pct"] = 100 * (c1 - c0) / (t1 - t0)
    result["per_cpu_s"] = result["deliveries"] / (c1 - c0)
    if "window" in stats:
        result["commandstats"] = stats["window"]
    return result


def echo(processes: int, duration: float) -> dict[str, Any]:
    extra = ["--processes", str(processes)] if processes > 1 else []
    server = Proc(serve("echo", *extra))
    try:
        pids = [server.proc.pid, *children_of(server.proc.pid)]
        c0 = cpu_seconds(pids)
        t0 = time.monotonic()
        cmd = [str(build("loadgen")), "echo", "-u", server.url, "-c", "100", "-k", "16", "-s", "32"]
        out = subprocess.run([*cmd, "-d", str(duration), "-w", "1"], capture_output=True, text=True, check=True)
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        result["server_cpu_pct"] = 100 * (cpu_seconds(pids) - c0) / (time.monotonic() - t0)
        return result
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--skip-echo", action="store_true")
    parser.add_argument(
        "--deflate", action="store_true", help="fan-out of 1 KiB JSON to members that negotiated permessage-deflate"
    )
    args = parser.parse_args()
    redis_port = free_port("127.0.0.1")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    url = f"redis://127.0.0.1:{redis_port}/0"
    rows: dict[str, list[dict[str, Any]]] = {"single": [], "cluster": []}
    try:
        for run in range(args.runs):
            for kind in ("single", "cluster"):  # interleaved: both see the same background load
                if kind == "single":
                    servers = [Proc(serve("bench"))]
                else:
                    servers = [Proc(serve("bench", "--cluster", url)) for _ in range(2)]
                try:
                    r = fanout(
                        [s.url for s in servers],
                        [s.proc.pid for s in servers],
                        redis_port if kind == "cluster" else None,
                        args.duration,
                        args.deflate,
                    )
                finally:
                    for s in servers:
                        s.stop()
                rows[kind].append(r)
                print(
                    f"{kind:8} run {run}: {r['deliveries_per_s']:>10,.0f} deliveries/s, {r['per_cpu_s']:>10,.0f} "
                    f"per server CPU-s (server cpu {r['server_cpu_pct']:.0f}%), last-member latency p50 "
                    f"{r['latency_ms_p50']:.2f} ms, first member p50: even (node 1) {r['first_even_ms_p50']:.2f} ms, "
                    f"odd (node 2 in the cluster) {r['first_odd_ms_p50']:.2f} ms (read by the client at "
                    f"{r['seen_even_ms_p50']:.2f} / {r['seen_odd_ms_p50']:.2f} ms), gaps {r.get('gaps', 0)}, "
                    f"ok {r['ok']}",
                    flush=True,
                )
                if kind == "cluster":
                    cs = r["commandstats"]
                    others = {k: v for k, v in cs.items() if k not in ("publish", "config")}
                    print(
                        f"         redis: {cs.get('publish', 0)} PUBLISH for {r['broadcasts']} broadcasts "
                        f"completed in the window; other commands {others}",
                        flush=True,
                    )
        med = {k: {f: statistics.median(x[f] for x in v) for f in ("deliveries_per_s", "per_cpu_s")}
               for k, v in rows.items()}  # fmt: skip
        p50 = {k: statistics.median(x["latency_ms_p50"] for x in v) for k, v in rows.items()}
        ratio = med["cluster"]["per_cpu_s"] / med["single"]["per_cpu_s"]
        added = {
            k: statistics.median(x["first_odd_ms_p50"] - x["first_even_ms_p50"] for x in v) for k, v in rows.items()
        }
        seen = {k: statistics.median(x["seen_odd_ms_p50"] - x["seen_even_ms_p50"] for x in v) for k, v in rows.items()}
        per_bc = statistics.median(x["commandstats"].get("publish", 0) / x["broadcasts"] for x in rows["cluster"])
        print(
            f"\nmedians: single {med['single']['per_cpu_s']:,.0f} / cluster {med['cluster']['per_cpu_s']:,.0f} "
            f"deliveries per server CPU-s: ratio {ratio:.2f} (target >= 0.8); last-member p50 single "
            f"{p50['single']:.2f} ms, cluster {p50['cluster']:.2f} ms: added {p50['cluster'] - p50['single']:.2f} ms "
            f"; first member on the remote node after the first on the sender's node, p50: {added['cluster']:.2f} ms "
            f"(single node, same members: {added['single']:.2f} ms; target < 2; as read by the client: "
            f"{seen['cluster']:.2f} ms); PUBLISH per broadcast {per_bc:.2f} "
            "(target 1)"
        )
        # The hop alone: 2 members, one per node, 200 broadcasts one at a time: when the remote member gets each
        # one after the local member (no fan-out work on either side to wait behind).
        hops = []
        for _ in range(args.runs):
            servers = [Proc(serve("bench", "--cluster", url)) for _ in range(2)]
            try:
                cmd = [str(build("fanout")), "-u", servers[0].url, "-U", servers[1].url, "-n", "2", "-K", "200"]
                cmd += ["-W", "1", "-d", "1", "-w", "0", "-s", "64"]
                out = subprocess.run(cmd, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
            finally:
                for s in servers:
                    s.stop()
            hops.append(r["first_odd_ms_p50"] - r["first_even_ms_p50"])
            print(
                f"2 members, one per node: local p50 {r['first_even_ms_p50']:.3f} ms, remote p50 "
                f"{r['first_odd_ms_p50']:.3f} ms: the hop through Redis adds {hops[-1]:.3f} ms",
                flush=True,
            )
        print(f"median added by the hop: {statistics.median(hops):.3f} ms", flush=True)
        if not args.skip_echo:
            for processes in (1, 2, 1, 2):
                e = echo(processes, args.duration)
                print(
                    f"echo --processes {processes}: {e['msgs_per_sec']:>10,.0f} msg/s, server cpu "
                    f"{e['server_cpu_pct']:.0f}%, loadgen cpu {e.get('cpu_pct', 0):.0f}%",
                    flush=True,
                )
    finally:
        redis.terminate()
        redis.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
