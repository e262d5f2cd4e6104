"""Abuse benchmark (issue 11, "Bounded under abuse"): server memory under hostile clients.

Our server, the ``websockets`` library (asyncio server, its defaults) and Node's ``ws`` (its defaults), each a
fresh process per scenario, pinned to core 0; the hostile client is ``bench/abuse_client.py`` on core 1. The server's
RSS is VmRSS of /proc/PID/status. Scenarios:

1. **resets** -- per round, ``--clients`` (1,000) connections complete the handshake, each sends the first 64 KiB of
   a 128 KiB masked binary frame, then resets its TCP connection (SO_LINGER 0, close); ``--rounds`` (20) rounds.
   RSS with every partial frame held ("loaded", ``--loaded-wait`` s after the last byte went out), and after each
   round: once the server's open descriptors (/proc/PID/fd) are back to their count before the round, plus
   ``--settle`` (2) s, longer than the 1 s after which our server gives the heap's free memory back to the kernel
   once 256 connections have ended (``--settle 0.5`` measures before that: rounds back to back).
   **resets 8 MiB**: the same with ``--big-clients`` (50) connections sending 4 MiB of an 8 MiB frame,
   ``--big-rounds`` (6) rounds; every server then takes messages up to 16 MiB (ours: ``--max-message-size
   16777216``, its default; websockets: ``max_size=16 MiB``; ws: ``maxPayload`` 16 MiB).
2. **ping flood** -- one connection with a small receive buffer (``--rcvbuf``, 4 KiB) that never reads sends
   ``--pings`` (500,000) masked empty pings as fast as TCP takes them, for at most ``--seconds`` (10). **2b**: the
   same with 125-byte payloads (``--big-ping-payload``), 63 MB of pongs owed: enough to fill every buffer.
3. **fragment flood** -- one connection sends a binary frame with FIN=0 and then continuation frames with FIN=0,
   ``--fragments`` (1,000,000) one-byte fragments in all, a message never finished, and holds the connection.
4. **never-reading echo client** -- one connection (small receive buffer) sends 64 KiB binary messages to the echo
   server, up to 100 MiB or ``--seconds``, and never reads the echoes; then it reads for 2 s to see what the server
   did (closed with a code? dropped the connection? kept sending the echoes?).
5. **slow handler** -- the handler takes 50 ms per message and replies nothing: ours with ``workers=1`` and
   ``time.sleep`` (``bench/servers/snow_abuse.py``), websockets with ``await asyncio.sleep`` (one message at a
   time, its ``async for``), ws with a per-connection promise chain of ``setTimeout`` (one message at a time, the
   message referenced until its turn ends), and ws with a 50 ms busy-wait on the event loop. One client sends
   400 messages of 256 KiB as fast as TCP takes them; RSS 1 s after the first byte and the largest over
   ``--window`` (10) s.

For 2-4 the server's RSS is sampled every 0.1 s while the client sends and for ``--hold`` (1) s after; reported:
RSS before, the peak, the RSS at the end of the hold, the growths, what the client got out, whether the server
still holds the connection then (one more descriptor than before), and what the client reads in the ``--drain``
(2) s after that (pongs, echoes, a close frame and its code, the end of the stream). The summary is printed and
written as markdown to ``--out`` (``build/bench_abuse.md``), the raw figures as JSON next to it.

    .venv/bin/python bench/bench_abuse.py            # every scenario, about 6 minutes
    .venv/bin/python bench/bench_abuse.py --quick    # fewer clients, rounds and seconds, about 1.5 minutes
    .venv/bin/python bench/bench_abuse.py --only resets,pings --servers snow

Every process started here is stopped here, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import queue
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench_echo import (
    LOADGEN_CORE,
    NODE,
    PYTHON,
    ROOT,
    SERVER_CORE,
    SERVERS_DIR,
    ServerSpec,
    chosen_servers,
    code_stamp,
    exit_status,
    pinned,
    print_versions,
    proc_status_kib,
    raise_nofile_limit,
    running_server,
    versions,
)
from bench_idle import Sampler

CLIENT = ROOT / "bench" / "abuse_client.py"
SCENARIOS = ["resets", "resets8m", "pings", "pings125", "fragments", "noread", "slow"]
TITLES = {
    "resets": "1. Resets mid-frame",
    "resets8m": "1b. Resets mid-frame, 8 MiB frames",
    "pings": "2. Ping flood from a client that never reads",
    "pings125": "2b. Ping flood, 125-byte payloads",
    "fragments": "3. Fragment flood",
    "noread": "4. Never-reading echo client",
    "slow": "5. Slow handler (50 ms per message)",
}
SERVERS = ["snow", "websockets", "node ws"]
BIG_MAX = 16 * 1024 * 1024  # max message size of every server in the 8 MiB variant
SAMPLE_PERIOD = 0.1
VERSION_KEYS = ("python", "kernel", "cpu", "cores", "websockets", "uvloop", "node", "node ws", "snow_rt_py")


# -- servers ------------------------------------------------------------------------------------------------------


def server_spec(name: str, scenario: str, opts: argparse.Namespace, busy: bool = False) -> ServerSpec:
    """How to start server ``name`` for ``scenario``: echo servers with each library's defaults, except the message
    size of the 8 MiB variant; slow consumers for "slow"."""
    snow_env = {"SNOW_RT_PY_NO_UVLOOP": "1"} if opts.asyncio_loop else {}
    ws_py = [PYTHON, str(SERVERS_DIR / "websockets_abuse.py")]
    ws_node = [NODE, str(SERVERS_DIR / "node_ws_abuse.mjs")]
    if scenario == "slow":
        sleep = ["--sleep-ms", f"{opts.sleep_ms:g}"]
        if name == "snow":
            return ServerSpec("snow workers=1", [PYTHON, str(SERVERS_DIR / "snow_abuse.py"), "--workers", "1", *sleep])
        if name == "websockets":
            return ServerSpec(name, [*ws_py, *sleep])
        return ServerSpec(name + (" busy-wait" if busy else ""), [*ws_node, *sleep, *(["--busy"] if busy else [])])
    big = scenario == "resets8m"
    if name == "snow":
        argv = [PYTHON, "-m", "snow_rt_py", "serve", "--app", "echo", "--host", "127.0.0.1", "--port", "0"]
        if big:
            argv += ["--max-message-size", str(BIG_MAX)]
        return ServerSpec(name, [*argv, *opts.snow_arg], snow_env)
    if name == "websockets":
        return ServerSpec(name, [*ws_py, *(["--max-size", str(BIG_MAX)] if big else [])])
    return ServerSpec(name, [*ws_node, *(["--max-payload", str(BIG_MAX)] if big else [])])


def rss_kib(pid: int) -> int:
    return proc_status_kib(pid, "VmRSS")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fds(pid: int, target: int, timeout: float) -> tuple[float, int]:
    """Poll until process ``pid`` has at most ``target`` open descriptors, or ``timeout`` s; (seconds, count)."""
    t0 = time.monotonic()
    count = fd_count(pid)
    while count > target and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
        count = fd_count(pid)
    return time.monotonic() - t0, count


# -- the client ---------------------------------------------------------------------------------------------------


class Client:
    """``bench/abuse_client.py`` on the client core: its JSON lines come through a queue, ``go()`` lets it go on."""

    def __init__(self, args: Sequence[str], timeout: float) -> None:
        cmd = pinned(LOADGEN_CORE, [PYTHON, str(CLIENT), *args, "--timeout", f"{timeout:.0f}"])
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=ROOT,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr or []), daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in self.proc.stdout:
                with contextlib.suppress(ValueError):
                    self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout: float) -> dict[str, Any]:
        try:
            item = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"client said nothing for {timeout:g} s") from None
        if item is None:
            self.proc.wait(5)
            raise RuntimeError(f"client ended (exit {self.proc.returncode}): {''.join(self.err)[-1500:]}")
        return item

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        item = self.next(timeout)
        if item.get("event") != event:
            raise RuntimeError(f"client: expected event {event!r}, got {item}")
        return item

    def go(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        item = self.next(timeout)
        if "result" not in item:
            raise RuntimeError(f"client: expected its result, got {item}")
        return dict(item["result"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@contextlib.contextmanager
def client(args: Sequence[str], timeout: float) -> Iterator[Client]:
    c = Client(args, timeout)
    try:
        yield c
    finally:
        c.close()


@contextlib.contextmanager
def server_for(spec: ServerSpec, tmp: Path) -> Iterator[Any]:
    """A started server, given a second to settle after its ``listening on`` line."""
    with running_server(spec, tmp) as server:
        time.sleep(1.0)
        yield server


def finish(rec: dict[str, Any], server: Any) -> dict[str, Any]:
    """Common tail of a record: the server's peak RSS, whether it survived, its stderr."""
    alive = server.proc.poll() is None
    rec["alive"] = alive
    rec["hwm"] = proc_status_kib(server.pid, "VmHWM") if alive else None
    rec["exit"] = server.proc.returncode
    rec["stderr"] = server.stderr_text()[-3000:]
    return rec


# -- scenarios ----------------------------------------------------------------------------------------------------


def run_resets(
    spec: ServerSpec, tmp: Path, opts: argparse.Namespace, clients: int, rounds: int, frame: int
) -> dict[str, Any]:
    send = frame // 2
    with server_for(spec, tmp) as server:
        pid = server.pid
        base_fds = fd_count(pid)
        rec: dict[str, Any] = {"rss_before": rss_kib(pid), "base_fds": base_fds, "rounds": []}
        args = ["resets", "--url", server.url, "--clients", str(clients), "--rounds", str(rounds)]
        args += ["--frame", str(frame), "--send", str(send)]
        with client(args, timeout=rounds * 90 + 60) as c:
            for rnd in range(1, rounds + 1):
                loaded = c.expect("loaded", 120)
                time.sleep(opts.loaded_wait)  # the server reads what is still in its socket buffers
                rss_loaded, fds_loaded = rss_kib(pid), fd_count(pid)
                c.go()
                c.expect("reset", 60)
                waited, fds = wait_fds(pid, base_fds, opts.fd_wait)
                time.sleep(opts.settle)
                rss_after = rss_kib(pid)
                rec["rounds"].append(
                    {
                        "connections": loaded["connections"],
                        "client_errors": loaded["errors"],
                        "open_s": loaded["open_s"],
                        "send_s": loaded["send_s"],
                        "rss_loaded": rss_loaded,
                        "conns_loaded": fds_loaded - base_fds,
                        "fd_wait_s": round(waited, 3),
                        "fds_left": fds - base_fds,
                        "rss_after": rss_after,
                    }
                )
                print(
                    f"    round {rnd:2}: {loaded['connections']} conns open in {loaded['open_s']:.2f} s, sent in "
                    f"{loaded['send_s']:.2f} s; RSS loaded {rss_loaded / 1024:6.1f} MiB ({fds_loaded - base_fds} "
                    f"conns held); fds back in {waited:.2f} s (left {fds - base_fds}); RSS after "
                    f"{rss_after / 1024:6.1f} MiB",
                    flush=True,
                )
                c.go()
            rec["client"] = c.result(30)
        return finish(rec, server)


def run_single(
    spec: ServerSpec, tmp: Path, opts: argparse.Namespace, args: list[str], seconds: float, after_sent: float
) -> dict[str, Any]:
    """One hostile connection (pings, fragments, noread): RSS sampled while it sends and for ``after_sent`` s after;
    RSS and descriptors at the end of that hold, then the client's result."""
    with server_for(spec, tmp) as server:
        pid = server.pid
        base_fds = fd_count(pid)
        rec: dict[str, Any] = {"rss_before": rss_kib(pid), "base_fds": base_fds, "drain": opts.drain}
        sampler = Sampler(pid, SAMPLE_PERIOD)
        with client([args[0], "--url", server.url, *args[1:]], timeout=seconds + 120) as c:
            sampler.start()
            rec["sent"] = c.expect("sent", seconds + 60)
            time.sleep(after_sent)
            rec["rss_end"] = rss_kib(pid)
            rec["conn_held"] = fd_count(pid) > base_fds
            sampler.stop()
            c.go()
            rec["client"] = c.result(opts.drain + 30)
        rec["rss_peak"] = max([s[1] for s in sampler.samples] + [rec["rss_end"]])
        rec["samples"] = [(round(t, 2), kib) for t, kib, _ in sampler.samples]
        return finish(rec, server)


def run_slow(spec: ServerSpec, tmp: Path, opts: argparse.Namespace) -> dict[str, Any]:
    with server_for(spec, tmp) as server:
        pid = server.pid
        rec: dict[str, Any] = {"rss_before": rss_kib(pid)}
        sampler = Sampler(pid, SAMPLE_PERIOD)
        args = ["stream", "--url", server.url, "--count", str(opts.slow_messages), "--size", str(opts.slow_size)]
        args += ["--seconds", f"{opts.window:g}"]
        with client(args, timeout=opts.window + 120) as c:
            c.expect("start", 30)
            t0 = time.monotonic()
            sampler.start()
            rec["sent"] = c.expect("sent", opts.window + 60)
            time.sleep(max(0.0, opts.window - (time.monotonic() - t0)))
            sampler.stop()
            c.go()
            rec["client"] = c.result(30)
        rec["rss_1s"] = sampler.at(1.0)[1]
        rec["rss_peak"] = max(s[1] for s in sampler.samples)
        rec["rss_end"] = sampler.samples[-1][1]
        rec["samples"] = [(round(t, 2), kib) for t, kib, _ in sampler.samples]
        return finish(rec, server)


# -- report -------------------------------------------------------------------------------------------------------


def mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def growth(kib: float) -> str:
    return f"{kib / 1024:+.1f}"


def send_note(sent: dict[str, Any]) -> str:
    """How the client's sending ended, in words."""
    if sent["error"]:
        return f"dropped by the server ({sent['error']}) at {sent['error_at_s']:.1f} s"
    if sent["complete"]:
        return f"all out in {sent['seconds']:.1f} s"
    return f"stalled (TCP backpressure) from {sent['last_progress_s']:.1f} s, stopped at {sent['seconds']:.0f} s"


def outcome_note(rec: dict[str, Any]) -> str:
    """What the server did with the connection, from the client's send error, the server's descriptors at the end
    of the hold and what the client read afterwards, in words."""
    out = rec["client"]["outcome"]
    n = out["bytes_read"]
    read = f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"
    parts = []
    if rec["sent"]["error"]:
        parts.append(f"dropped the connection ({rec['sent']['error']}) at {rec['sent']['error_at_s']:.1f} s")
    elif not rec["conn_held"]:
        parts.append("had closed the connection at the end")
    else:
        parts.append("held the connection at the end")
    if out["pongs_seen"]:
        parts.append(f"{out['pongs_seen']:,} pongs read")
    if out["close_code"] is not None:
        reason = f" {out.get('close_reason')!r}" if out.get("close_reason") else ""
        parts.append(f"close {out['close_code']}{reason} after {read}")
    elif out["eof"] or out["error"]:
        parts.append(f"stream ended ({out['error'] or 'EOF'}) after {read}")
    else:
        parts.append(f"still open after {rec['drain']:g} s of reading ({read} read)")
    return "; ".join(parts)


def report(
    results: dict[str, dict[str, dict[str, Any]]], opts: argparse.Namespace, info: dict[str, str], command: str
) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"Command: `{command}`  ")
    add(f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  ")
    add("Versions: " + ", ".join(f"{k} {v}" for k, v in info.items()) + "  ")
    add(
        f"Servers pinned to core {SERVER_CORE}, the client (bench/abuse_client.py) to core {LOADGEN_CORE}; a fresh "
        "server process per scenario; RSS = VmRSS, MiB (2^20 bytes)."
    )
    for scenario in SCENARIOS:
        recs = results.get(scenario)
        if not recs:
            continue
        add("")
        add(f"#### {TITLES[scenario]}")
        add("")
        if scenario in ("resets", "resets8m"):
            clients, rounds, frame = scenario_shape(scenario, opts)
            add(
                f"{clients:,} clients per round, each sends {frame // 2 // 1024:,} KiB of a {frame // 1024:,} KiB "
                f"frame then resets; {rounds} rounds. Loaded = {opts.loaded_wait:g} s after the last byte went out; "
                f"after a round = once the server's descriptors are back, plus {opts.settle:g} s."
                + (" Every server takes messages up to 16 MiB here." if scenario == "resets8m" else "")
            )
            add("")
            add(
                "| server | RSS before | loaded (max) | after round 1 | median after a round | after last round "
                "| growth | growth after round 1 | peak (VmHWM) |"
            )
            add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for name, rec in recs.items():
                rs = rec["rounds"]
                after = [r["rss_after"] for r in rs]
                add(
                    f"| {name} | {mib(rec['rss_before'])} | {mib(max(r['rss_loaded'] for r in rs))} "
                    f"| {mib(after[0])} | {mib(statistics.median(after))} | {mib(after[-1])} "
                    f"| {growth(after[-1] - rec['rss_before'])} | {growth(after[-1] - after[0])} | {mib(rec['hwm'])} |"
                )
            add("")
            for name, rec in recs.items():
                seq = ", ".join(f"{r['rss_after'] / 1024:.0f}" for r in rec["rounds"])
                add(f"* {name}, RSS after each round (MiB): {seq}")
        elif scenario in ("pings", "pings125", "fragments"):
            unit = "fragments" if scenario == "fragments" else "pings"
            if unit == "pings":
                payload = opts.ping_payload if scenario == "pings" else opts.big_ping_payload
                add(
                    f"{opts.pings:,} masked pings ({payload}-byte payload) from one connection with "
                    f"SO_RCVBUF {opts.rcvbuf} that never reads, at most {opts.seconds:g} s; RSS sampled every "
                    f"{SAMPLE_PERIOD:g} s, end = {opts.hold:g} s after the client stopped sending."
                )
            else:
                add(
                    f"{opts.fragments:,} one-byte fragments of a binary message never finished (FIN=0 throughout), "
                    f"at most {opts.seconds:g} s, then the connection is held {opts.hold:g} s (end)."
                )
            add("")
            add(
                f"| server | RSS before | peak | end | growth (end) | growth (peak) | {unit} sent | MB sent | client "
                "| server did |"
            )
            add("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
            for name, rec in recs.items():
                s = rec["sent"]
                add(
                    f"| {name} | {mib(rec['rss_before'])} | {mib(rec['rss_peak'])} | {mib(rec['rss_end'])} "
                    f"| {growth(rec['rss_end'] - rec['rss_before'])} | {growth(rec['rss_peak'] - rec['rss_before'])} "
                    f"| {s['units']:,} | {s['bytes'] / 1e6:.1f} | {send_note(s)} | {outcome_note(rec)} |"
                )
        elif scenario == "noread":
            add(
                f"{opts.noread_size // 1024} KiB binary messages to the echo server, up to "
                f"{opts.noread_total / 2**20:.0f} MiB or {opts.seconds:g} s, from a connection with SO_RCVBUF "
                f"{opts.rcvbuf} that never reads; end = {opts.hold:g} s after it stopped; then it reads for "
                f"{opts.drain:g} s to see what the server did."
            )
            add("")
            add("| server | RSS before | peak | end | growth (end) | growth (peak) | MiB sent | server did |")
            add("|---|---:|---:|---:|---:|---:|---:|---|")
            for name, rec in recs.items():
                add(
                    f"| {name} | {mib(rec['rss_before'])} | {mib(rec['rss_peak'])} | {mib(rec['rss_end'])} "
                    f"| {growth(rec['rss_end'] - rec['rss_before'])} | {growth(rec['rss_peak'] - rec['rss_before'])} "
                    f"| {rec['sent']['bytes'] / 2**20:.1f} | {outcome_note(rec)} |"
                )
        elif scenario == "slow":
            add(
                f"One client sends {opts.slow_messages} binary messages of {opts.slow_size // 1024} KiB as fast as "
                f"TCP takes them; the handler takes {opts.sleep_ms:g} ms per message and replies nothing; RSS "
                f"sampled every {SAMPLE_PERIOD:g} s for {opts.window:g} s from the first byte."
            )
            add("")
            add(
                "| server | handler | RSS before | at 1 s | max | growth at 1 s | max growth | messages sent "
                f"in {opts.window:g} s |"
            )
            add("|---|---|---:|---:|---:|---:|---:|---:|")
            for name, rec in recs.items():
                add(
                    f"| {name} | {SLOW_HANDLERS.get(name, '')} | {mib(rec['rss_before'])} | {mib(rec['rss_1s'])} "
                    f"| {mib(rec['rss_peak'])} | {growth(rec['rss_1s'] - rec['rss_before'])} "
                    f"| {growth(rec['rss_peak'] - rec['rss_before'])} | {rec['sent']['units']} |"
                )
    return "\n".join(lines) + "\n"


SLOW_HANDLERS = {
    "snow workers=1": "`time.sleep(0.05)` on 1 worker thread",
    "websockets": "`await asyncio.sleep(0.05)` in `async for`",
    "node ws": "promise chain of `setTimeout(50)`, one message at a time",
    "node ws busy-wait": "50 ms busy-wait on the event loop",
}


def scenario_shape(scenario: str, opts: argparse.Namespace) -> tuple[int, int, int]:
    if scenario == "resets":
        return opts.clients, opts.rounds, opts.frame
    return opts.big_clients, opts.big_rounds, opts.big_frame


Job = Callable[[ServerSpec, Path], dict[str, Any]]


def make_job(scenario: str, opts: argparse.Namespace) -> Job:
    """The function that runs ``scenario`` against one server (its spec, the temporary directory)."""
    if scenario in ("resets", "resets8m"):
        clients, rounds, frame = scenario_shape(scenario, opts)
        return functools.partial(run_resets, opts=opts, clients=clients, rounds=rounds, frame=frame)
    if scenario == "slow":
        return functools.partial(run_slow, opts=opts)
    single = ["--rcvbuf", str(opts.rcvbuf), "--seconds", f"{opts.seconds:g}", "--drain", f"{opts.drain:g}"]
    if scenario in ("pings", "pings125"):
        payload = opts.ping_payload if scenario == "pings" else opts.big_ping_payload
        args = ["pings", "--count", str(opts.pings), "--payload", str(payload), *single]
    elif scenario == "fragments":
        args = ["fragments", "--count", str(opts.fragments), *single]
    else:
        args = ["noread", "--size", str(opts.noread_size), "--total", str(opts.noread_total), *single]
    return functools.partial(run_single, opts=opts, args=args, seconds=opts.seconds, after_sent=opts.hold)


# -- main ---------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="300 clients x 3 rounds, shorter floods and waits (about 1.5 minutes)"
    )
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help="comma-separated subset of: " + ", ".join(SCENARIOS)
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset of: " + ", ".join(SERVERS))
    parser.add_argument("--clients", type=int, default=1000, help="resets: connections per round")
    parser.add_argument("--rounds", type=int, default=20, help="resets: rounds")
    parser.add_argument("--frame", type=int, default=128 * 1024, help="resets: declared frame size (half is sent)")
    parser.add_argument("--big-clients", type=int, default=50, help="resets 8 MiB: connections per round")
    parser.add_argument("--big-rounds", type=int, default=6, help="resets 8 MiB: rounds")
    parser.add_argument("--big-frame", type=int, default=8 * 1024 * 1024, help="resets 8 MiB: declared frame size")
    parser.add_argument("--pings", type=int, default=500_000, help="ping flood: pings")
    parser.add_argument("--ping-payload", type=int, default=0, help="ping flood: payload bytes per ping")
    parser.add_argument("--big-ping-payload", type=int, default=125, help="ping flood 2b: payload bytes per ping")
    parser.add_argument("--fragments", type=int, default=1_000_000, help="fragment flood: fragments")
    parser.add_argument("--noread-size", type=int, default=64 * 1024, help="never-reading client: message bytes")
    parser.add_argument("--noread-total", type=int, default=100 * 1024 * 1024, help="never-reading client: bytes")
    parser.add_argument("--seconds", type=float, default=10.0, help="pings/fragments/noread: sending time limit")
    parser.add_argument("--hold", type=float, default=1.0, help="pings/fragments/noread: seconds before 'end'")
    parser.add_argument("--drain", type=float, default=2.0, help="pings/fragments/noread: seconds read at the end")
    parser.add_argument("--rcvbuf", type=int, default=4096, help="SO_RCVBUF of the never-reading clients")
    parser.add_argument("--slow-messages", type=int, default=400)
    parser.add_argument("--slow-size", type=int, default=256 * 1024)
    parser.add_argument("--sleep-ms", type=float, default=50.0, help="slow handler: ms per message")
    parser.add_argument("--window", type=float, default=10.0, help="slow handler: seconds sampled")
    parser.add_argument("--no-busy", action="store_true", help="slow handler: skip ws's busy-wait variant")
    parser.add_argument("--loaded-wait", type=float, default=0.5, help="resets: seconds before the 'loaded' RSS")
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="resets: seconds after the descriptors went, before the RSS (> our server's 1 s deferred malloc_trim)",
    )
    parser.add_argument("--fd-wait", type=float, default=15.0, help="resets: longest wait for the descriptors")
    parser.add_argument(
        "--asyncio-loop", action="store_true", help="run our server on asyncio's loop (SNOW_RT_PY_NO_UVLOOP=1)"
    )
    parser.add_argument(
        "--snow-arg",
        action="append",
        default=[],
        help="extra option for our echo server's command line, e.g. --snow-arg=--no-tune-malloc; repeatable",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench_abuse.md", help="markdown summary")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.clients, opts.rounds, opts.big_clients, opts.big_rounds = 300, 3, 10, 2
        opts.pings, opts.fragments, opts.seconds, opts.window = 200_000, 300_000, 2.0, 3.0
        opts.hold, opts.drain, opts.settle, opts.loaded_wait = 0.5, 1.0, 1.5, 0.3
    scenarios = chosen_servers(parser, opts.only, dict.fromkeys(SCENARIOS))
    names = chosen_servers(parser, opts.servers, dict.fromkeys(SERVERS))
    limit = raise_nofile_limit()
    if limit < opts.clients + 256:
        parser.error(f"open files limit {limit} is too low for {opts.clients} clients")
    command = shlex.join([".venv/bin/python", "bench/bench_abuse.py", *(sys.argv[1:] if argv is None else argv)])
    info = {k: v for k, v in versions().items() if k in VERSION_KEYS}
    print_versions(info)

    plans: list[tuple[str, ServerSpec, Job]] = []
    for scenario in scenarios:
        specs = [server_spec(n, scenario, opts) for n in names]
        if scenario == "slow" and "node ws" in names and not opts.no_busy:
            specs.append(server_spec("node ws", scenario, opts, busy=True))
        plans += [(scenario, spec, make_job(scenario, opts)) for spec in specs]

    results: dict[str, dict[str, dict[str, Any]]] = {}
    problems: list[str] = []
    stamp = code_stamp()
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench_abuse.") as tmp:
        for scenario, spec, job in plans:
            print(f"  {TITLES[scenario]}: {spec.name}", flush=True)
            t0 = time.monotonic()
            try:
                rec = job(spec, Path(tmp))
            except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as exc:
                problems.append(f"{scenario} / {spec.name}: {exc}")
                print(f"  ! {scenario} / {spec.name}: {exc}", file=sys.stderr, flush=True)
                continue
            results.setdefault(scenario, {})[spec.name] = rec
            if not rec["alive"]:
                problems.append(f"{scenario} / {spec.name}: the server died (exit {rec['exit']}): {rec['stderr']}")
            elif "Traceback" in rec["stderr"]:
                problems.append(f"{scenario} / {spec.name}: server traceback:\n{rec['stderr']}")
            line = f"    RSS before {mib(rec['rss_before'])} MiB"
            if "rss_peak" in rec:
                line += f", peak {mib(rec['rss_peak'])} MiB, end {mib(rec.get('rss_end'))} MiB"
            if "rss_1s" in rec:
                line += f", at 1 s {mib(rec['rss_1s'])} MiB"
            if "sent" in rec:
                line += f"; client sent {rec['sent']['bytes'] / 1e6:.1f} MB: {send_note(rec['sent'])}"
            if "conn_held" in rec:
                line += f"; server: {outcome_note(rec)}"
            print(line + f" ({time.monotonic() - t0:.0f} s)", flush=True)

    if code_stamp() != stamp:
        problems.append("snow_rt_py/ sources changed during the run: the figures mix versions; run again")
    text = report(results, opts, info, command)
    print(f"\n(total {time.monotonic() - t_start:.0f} s)\n")
    print(text)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(text)
    raw = {"versions": info, "command": command, "options": {k: str(v) for k, v in vars(opts).items()}}
    raw["results"] = results
    opts.out.with_suffix(".json").write_text(json.dumps(raw))
    print(f"written: {opts.out} and {opts.out.with_suffix('.json')}")
    return exit_status(problems)


if __name__ == "__main__":
    sys.exit(main())
