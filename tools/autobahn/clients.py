"""Run the Autobahn|Testsuite fuzzing server against our WebSocket clients and judge the results (client mode).

    .venv/bin/python tools/autobahn/clients.py                       # build/echo_client, cases 1.* to 13.*
    .venv/bin/python tools/autobahn/clients.py --cases '1.*,5.*' --clients 'snow-c-client=build/echo_client'

What it does, in order:

1. Sets up the suite as run.py does (``.autobahn/venv``, Python 2.7; exit 2 without it).
2. Starts ``wstest -m fuzzingserver`` on a free port of 127.0.0.1 with the cases asked for (report in
   ``artifacts/autobahn-client/``).
3. For each client of ``--clients`` (``AGENT=COMMAND`` items separated by ``;``: COMMAND is split on spaces and
   gets the case's URL as its last argument; ``ENV=VALUE`` words before the program set its environment), in
   parallel with the others: asks the server for the number of cases, runs the client once per case against
   ``/runCase?case=N&agent=AGENT`` (each run bounded by ``--case-timeout``), then ``/updateReports?agent=AGENT``.
4. Judges index.json with run.py's rules and allow-list: prints the table, writes ``summary.md``.
5. Stops the fuzzing server, whatever happened.

Exit status: 0 when every case of every client is OK or INFORMATIONAL (or allowed with a reason); 1 otherwise (a
case missing, a client that hung); 2 when the suite cannot be set up. run.py runs the servers; this file is its
client-mode counterpart (tools/autobahn/run.py may call :func:`run_clients`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from websockets.sync.client import connect

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402  (the suite's setup, the judge and the allow-list: one set of rules for both modes)

OUT = run.ROOT / "artifacts" / "autobahn-client"
DEFAULT_CLIENTS = "snow-c-client=SNOW_WS_COMPRESSION=dedicated build/echo_client"
CASE_TIMEOUT = 120.0  # 9.1.6 / 9.2.6 echo 16 MiB messages; a case that takes longer has hung


def parse_clients(text: str) -> dict[str, tuple[dict[str, str], list[str]]]:
    """``"AGENT=[ENV=VALUE ...] PROGRAM ARGS...; ..."`` -> ``{agent: (environment, argv)}``.

    Raises:
        ValueError: an item without ``AGENT=`` or without a program.
    """
    clients: dict[str, tuple[dict[str, str], list[str]]] = {}
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        agent, sep, command = item.partition("=")
        words = shlex.split(command)
        env = {}
        while words and "=" in words[0] and not words[0].startswith(("/", ".")):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if not sep or not agent.strip() or not words:
            raise ValueError(f"--clients: {item!r} is not AGENT=COMMAND")
        clients[agent.strip()] = (env, words)
    return clients


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fuzzing_server(wstest: Path, out: Path, cases: list[str], port: int) -> subprocess.Popen[bytes]:
    """``wstest -m fuzzingserver`` on 127.0.0.1:port with ``cases``, once it listens (without its report web
    server: ``-u 0``, the suite's default port 8080 may be taken)."""
    spec = {
        "url": f"ws://127.0.0.1:{port}",
        "outdir": str(out),
        "cases": cases,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    log = open(out / "wstest.log", "wb")  # noqa: SIM115  (the server's output for its whole life)
    proc = subprocess.Popen(
        [str(wstest), "-m", "fuzzingserver", "-u", "0", "-s", str(spec_path)],
        cwd=out,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + run.READY_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                run.stop(proc)
                raise run.SetupError(f"wstest -m fuzzingserver did not start (see {out / 'wstest.log'})") from None
            time.sleep(0.1)  # polling a port: there is no event to wait for


def case_count(port: int) -> int:
    with connect(f"ws://127.0.0.1:{port}/getCaseCount", open_timeout=10) as ws:
        return int(ws.recv(timeout=10))


def run_agent(
    agent: str, env: dict[str, str], argv: list[str], port: int, count: int, timeout: float, problems: list[str]
) -> None:
    """Run one client through every case, then have the server write its report."""
    for case in range(1, count + 1):
        url = f"ws://127.0.0.1:{port}/runCase?case={case}&agent={agent}"
        try:
            subprocess.run(
                [*argv, url],
                cwd=run.ROOT,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            problems.append(f"{agent}: case {case} did not end within {timeout:.0f} s")
    with connect(f"ws://127.0.0.1:{port}/updateReports?agent={agent}", open_timeout=10) as ws:
        for _ in ws:  # the server closes once the report is written
            pass


def run_clients(
    wstest: Path, clients: dict[str, tuple[dict[str, str], list[str]]], cases: list[str], out: Path, timeout: float
) -> tuple[dict[str, dict[str, dict[str, object]]], list[str]]:
    """Every client through the cases, in parallel; the merged index.json and the problems seen."""
    port = free_port()
    proc = fuzzing_server(wstest, out, cases, port)
    problems: list[str] = []
    try:
        count = case_count(port)
        threads = [
            threading.Thread(target=run_agent, args=(agent, env, argv, port, count, timeout, problems))
            for agent, (env, argv) in clients.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        run.stop(proc)
    index_path = out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    return index, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=os.environ.get("CASES") or run.DEFAULT_CASES, help="wstest case patterns")
    parser.add_argument("--clients", default=DEFAULT_CLIENTS, help=f"AGENT=COMMAND;... (default {DEFAULT_CLIENTS})")
    parser.add_argument("--allow-list", type=Path, default=run.ALLOW_LIST, help="cases allowed to be not OK")
    parser.add_argument(
        "--out", type=Path, default=OUT, help="where the report goes (default artifacts/autobahn-client)"
    )
    parser.add_argument("--case-timeout", type=float, default=CASE_TIMEOUT, help="seconds one case may take")
    opts = parser.parse_args(argv)
    cases = [c.strip() for c in opts.cases.split(",") if c.strip()]
    try:
        clients = parse_clients(opts.clients)
    except ValueError as exc:
        parser.error(str(exc))
    python27 = run.find_python27()
    if python27 is None:
        run.no_python27()
        return 2
    started = time.monotonic()
    try:
        allowed = run.read_allow_list(opts.allow_list)
        wstest = run.ensure_suite(python27)
        out = opts.out.resolve()
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        print(f"autobahn: wstest -m fuzzingserver, cases {','.join(cases)}, clients {', '.join(clients)}", flush=True)
        index, problems = run_clients(wstest, clients, cases, out, opts.case_timeout)
    except run.SetupError as exc:
        print(f"autobahn: {exc}", file=sys.stderr)
        return 2
    summary: list[str] = []
    failing = run.judge(index, list(clients), allowed, summary) + len(problems)
    for line in problems:
        print(f"  {line}")
    run.write_summary(out / "summary.md", summary, cases, wstest)
    print(f"\nreport: {out / 'index.html'}; total time {time.monotonic() - started:.0f} s")
    if failing:
        print(f"autobahn: FAILED: {failing} case result(s) not OK, INFORMATIONAL or allowed")
        return 1
    print("autobahn: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
