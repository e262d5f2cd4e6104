"""Autobahn|Testsuite in client mode: ``wstest -m fuzzingserver`` drives our echo clients, case by case.

Used by run.py (``--clients``; ``make autobahn`` runs it after the server suite). The fuzzing server listens on a free
port; for each client under test (by agent name, :data:`CLIENTS`) and each case number 1..N of the selected cases it
starts the client on ``ws://127.0.0.1:PORT/runCase?case=N&agent=AGENT``, which must echo every message until the
server closes; then ``/updateReports?agent=AGENT`` writes the report (``artifacts/autobahn/clients/``). The clients
run at the same time, one thread each (the suite's server runs each agent's cases on their own connections), and each
case is bounded by :data:`CASE_TIMEOUT`.

Clients: ``snow-python`` is ``snow-ws client --echo`` (permessage-deflate offered, for sections 12 and 13);
``websockets`` is the ``websockets`` library's client (``websockets_echo.py``), recorded for reference in the same
run; ``snow-c`` is ``build/echo_client URL`` (examples/echo_client.c; it offers permessage-deflate in shared mode
unless $SNOW_WS_COMPRESSION says otherwise).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
MAX_MESSAGE = str(16 * 1024 * 1024)
CASE_TIMEOUT = 120.0
CLIENTS: dict[str, list[str]] = {
    "snow-python": [
        PYTHON,
        "-m",
        "snow_rt_py",
        "client",
        "--echo",
        "--compression",
        "shared",
        "--max-message-size",
        MAX_MESSAGE,
    ],
    "websockets": [PYTHON, str(HERE / "websockets_echo.py")],
    "snow-c": [str(ROOT / "build" / "echo_client")],
}
DEFAULT_CLIENTS = "snow-python,snow-c,websockets"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)  # polling a process that is starting: no event to wait for
    return False


def case_count(base: str) -> int:
    """The number of selected cases: the fuzzing server answers /getCaseCount with it, as a WebSocket message."""
    out = subprocess.run(
        [PYTHON, str(HERE / "websockets_echo.py"), "--read-one", f"{base}/getCaseCount"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return int(out.stdout.strip())


def _run_agent(agent: str, base: str, count: int, out: Path) -> int:
    """Every case against one client, then its report; the number of problems."""
    argv = CLIENTS[agent]
    if not Path(argv[0]).exists():
        print(f"autobahn: client {agent}: {argv[0]} does not exist (make build)", file=sys.stderr)
        return 1
    problems = 0
    t0 = time.monotonic()
    with open(out / f"{agent}.log", "wb") as client_log:
        for n in range(1, count + 1):
            url = f"{base}/runCase?case={n}&agent={agent}"
            try:
                subprocess.run([*argv, url], stdout=client_log, stderr=client_log, timeout=CASE_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"autobahn: client {agent}, case {n}: did not end in {CASE_TIMEOUT:.0f} s")
                problems += 1
    subprocess.run(
        [PYTHON, str(HERE / "websockets_echo.py"), "--read-one", f"{base}/updateReports?agent={agent}"],
        capture_output=True,
        timeout=120,
    )
    print(f"autobahn: client {agent}: {count} cases in {time.monotonic() - t0:.0f} s", flush=True)
    return problems


def run_clients(wstest: Path, out: Path, cases: list[str], clients: list[str]) -> tuple[dict[str, object], int]:
    """Run every case against every client; return the report's index (agent -> case -> result) and the number
    of problems (a client missing, a case that did not end in time, a report not written)."""
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    spec = {"url": f"ws://127.0.0.1:{port}", "outdir": str(out), "cases": cases, "exclude-cases": []}
    spec["exclude-agent-cases"] = {}
    (out / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    problems = 0
    with open(out / "wstest.log", "wb") as log:
        server = subprocess.Popen(
            [str(wstest), "-m", "fuzzingserver", "-u", "0", "-s", str(out / "spec.json")],
            cwd=out,
            stdout=log,
            stderr=log,
        )
    try:
        if not wait_listening(port, server):
            print("autobahn: the fuzzing server did not start (see clients/wstest.log)", file=sys.stderr)
            return {}, 1
        base = f"ws://127.0.0.1:{port}"
        count = case_count(base)
        print(f"autobahn: fuzzingserver on {base}, {count} cases per client: {', '.join(clients)}", flush=True)
        # one thread per client: the fuzzing server runs each agent's cases on their own connections
        problem_counts: list[int] = []
        threads = [
            threading.Thread(target=lambda a=agent: problem_counts.append(_run_agent(a, base, count, out)))
            for agent in clients
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        problems += sum(problem_counts)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    index_path = out / "index.json"
    if not index_path.exists():
        print("autobahn: the fuzzing server wrote no clients/index.json", file=sys.stderr)
        return {}, problems + 1
    index: dict[str, object] = json.loads(index_path.read_text())
    return index, problems
