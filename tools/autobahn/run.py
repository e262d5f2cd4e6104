"""Run the Autobahn|Testsuite fuzzing client against both of our servers and judge the results.

    make autobahn                         # cases 1.* to 13.*, default compression mode (shared)
    make autobahn MODES=all               # the same in each of shared and dedicated mode
    make autobahn CASES='6.*,7.1.*'       # some cases only
    .venv/bin/python tools/autobahn/run.py [--cases PATTERNS] [--modes shared,dedicated|all] [--allow-list FILE]
                                          [--out DIR]

What it does, in order:

1. Sets up the suite in ``.autobahn/venv`` (ignored by git) unless it is there already: a Python 2.7 virtualenv
   (the suite runs on Python 2.7 only) with the pins of ``tools/autobahn/requirements-py27.txt``; it is rebuilt
   when that file changes. Python 2.7 is ``$PYTHON27``, else pyenv's 2.7.18, else ``python2.7`` on PATH; if there
   is none it says how to get one and exits 2 (never a silent pass). virtualenv (< 20.22, the last releases that
   run on and create Python 2.7) is installed into ``.autobahn/bootstrap``, not into that interpreter.
2. Starts the Python echo server (``python -m snow_rt_py serve --app echo``) and the C one (``build/echo_server``,
   examples/echo_server.c) on free ports, 16 MiB messages allowed (cases 9.1.6 and 9.2.6 send 16 MiB), heartbeat
   off (a server ping landing inside a case would be an unexpected frame for it); one pair per permessage-deflate
   mode asked for (``--compression MODE``; the agents are named ``snow-python-MODE`` and ``snow-c-MODE``).
3. Runs one ``wstest -m fuzzingclient`` per server, all at once (the suite's client is single-threaded and is the
   slow part); each server's HTML report goes to ``artifacts/autobahn/AGENT/``, a page linking them and the merged
   index.json to ``artifacts/autobahn/``.
4. Reads index.json and prints, per server and per section, how many cases were OK, NON-STRICT, INFORMATIONAL,
   FAILED, UNIMPLEMENTED (and any other verdict), with the cases that are not OK or INFORMATIONAL; the same table
   goes to ``artifacts/autobahn/summary.md`` with the date and the versions (what the README shows).
5. Stops both servers, whatever happened (SIGTERM, then SIGKILL after 10 s).

Exit status: 0 when every case of both servers is OK or INFORMATIONAL (behaviour and closing behaviour), or is
named in the allow-list file with a reason; 1 otherwise (and when a case is missing from the report or wstest
failed); 2 when the suite cannot be set up (no Python 2.7, failed install, server that does not start).

The allow-list (``tools/autobahn/allow-list.txt``) holds one case per line, ``CASE_ID reason...`` (``#`` starts a
comment); an entry without a reason is an error. An entry applies to both servers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_echo import stop_process as stop  # noqa: E402  (SIGTERM, then SIGKILL after 10 s: the benchmarks' own)
from client_mode import CLIENTS, DEFAULT_CLIENTS, run_clients  # noqa: E402  (the suite in client mode)

REQUIREMENTS = HERE / "requirements-py27.txt"
ALLOW_LIST = HERE / "allow-list.txt"
SUITE_DIR = ROOT / ".autobahn"
VENV = SUITE_DIR / "venv"
BOOTSTRAP = SUITE_DIR / "bootstrap"
STAMP = VENV / ".requirements.sha256"
OUT = ROOT / "artifacts" / "autobahn"
PYENV_27 = Path.home() / ".pyenv" / "versions" / "2.7.18" / "bin" / "python"
DEFAULT_CASES = ",".join(f"{n}.*" for n in range(1, 14))
DEFAULT_MODES = "shared"  # the default mode of the servers; MODES=all adds the others
ALL_MODES = ("shared", "dedicated")
MAX_MESSAGE = 16 * 1024 * 1024  # cases 9.1.6 / 9.2.6: 16 MiB messages
READY_TIMEOUT = 30.0
GOOD = ("OK", "INFORMATIONAL")
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED")


class SetupError(Exception):
    """The suite or a server could not be set up (exit status 2)."""


# -- Python 2.7 and the suite's virtualenv -----------------------------------------------------------------------


def find_python27() -> str | None:
    """The Python 2.7 to build the virtualenv with: $PYTHON27, pyenv's 2.7.18, or python2.7 on PATH."""
    candidates = [os.environ.get("PYTHON27", ""), str(PYENV_27), shutil.which("python2.7") or ""]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip() == "2.7":
            return candidate
    return None


def no_python27() -> None:
    print(
        "autobahn: Python 2.7 not found (Autobahn|Testsuite runs on Python 2.7 only).\n"
        "  Get it with pyenv:  pyenv install 2.7.18   (it then lives in ~/.pyenv/versions/2.7.18/bin/python)\n"
        "  or point PYTHON27 at a Python 2.7 interpreter:  make autobahn PYTHON27=/path/to/python2.7\n"
        "Nothing was tested.",
        file=sys.stderr,
    )


def run_step(what: str, cmd: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> None:
    print(f"autobahn: {what}", flush=True)
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise SetupError(f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n{tail}")


def ensure_suite(python27: str) -> Path:
    """``.autobahn/venv/bin/wstest``, installing the suite first if needed (or if the pins changed)."""
    wstest = VENV / "bin" / "wstest"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if wstest.exists() and STAMP.exists() and STAMP.read_text().strip() == digest:
        return wstest
    started = time.monotonic()
    shutil.rmtree(VENV, ignore_errors=True)
    SUITE_DIR.mkdir(exist_ok=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONWARNINGS": "ignore"}
    if not (BOOTSTRAP / "virtualenv").exists():
        run_step(
            "installing virtualenv<20.22 for Python 2.7 into .autobahn/bootstrap",
            [python27, "-m", "pip", "install", "-q", "--target", str(BOOTSTRAP), "virtualenv<20.22"],
            env,
        )
    run_step(
        "creating the Python 2.7 virtualenv .autobahn/venv",
        [python27, "-m", "virtualenv", "-q", str(VENV)],
        {**env, "PYTHONPATH": str(BOOTSTRAP)},
    )
    run_step(
        f"installing Autobahn|Testsuite and its pins ({REQUIREMENTS.relative_to(ROOT)})",
        [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "-r", str(REQUIREMENTS)],
        env,
    )
    run_step("checking that wstest starts", [str(wstest), "--help"], env, timeout=120)
    STAMP.write_text(digest + "\n")
    print(f"autobahn: suite ready in {time.monotonic() - started:.0f} s", flush=True)
    return wstest


# -- servers ---------------------------------------------------------------------------------------------------


def server_commands(modes: list[str]) -> dict[str, list[str]]:
    """The servers under test, by the agent name the report uses: the Python and the C echo server per mode."""
    python = str(ROOT / ".venv" / "bin" / "python")
    common = ["--host", "127.0.0.1", "--port", "0", "--max-message-size", str(MAX_MESSAGE), "--ping-interval", "0"]
    servers: dict[str, list[str]] = {}
    for mode in modes:
        flags = [*common, "--compression", mode]
        servers[f"snow-python-{mode}"] = [python, "-m", "snow_rt_py", "serve", "--app", "echo", *flags]
        servers[f"snow-c-{mode}"] = [str(ROOT / "build" / "echo_server"), *flags]
    return servers


def start_server(name: str, argv: list[str], logs: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start one server; return it with its URL once it printed ``listening on URL``."""
    if not Path(argv[0]).exists():
        raise SetupError(f"{name}: {argv[0]} does not exist: run `make build` first")
    with open(logs / f"{name}.stderr", "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + READY_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n") and time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=0.2):
                chunk = os.read(proc.stdout.fileno(), 1)
                if not chunk:
                    break
                line += chunk
    match = re.fullmatch(r"listening on (ws://\S+)", line.decode(errors="replace").strip())
    if match is None:
        stop(proc)
        tail = (logs / f"{name}.stderr").read_text(errors="replace")[-2000:]
        raise SetupError(f"{name}: no 'listening on' line (got {line!r}); stderr:\n{tail}")
    return proc, match.group(1).rstrip("/")


@contextlib.contextmanager
def running_servers(logs: Path, modes: list[str]) -> Iterator[dict[str, str]]:
    """Every server started, by agent name -> URL; all stopped on exit, whatever happens."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    try:
        for name, argv in server_commands(modes).items():
            procs[name], urls[name] = start_server(name, argv, logs)
            print(f"autobahn: {name} listening on {urls[name]} (pid {procs[name].pid})", flush=True)
        yield urls
    finally:
        for name, proc in procs.items():
            alive = proc.poll() is None
            status = stop(proc)
            if not alive:
                print(f"autobahn: {name} had exited during the run (status {status})", file=sys.stderr)


# -- the run and its verdict -------------------------------------------------------------------------------------


def read_allow_list(path: Path) -> dict[str, str]:
    """Case id -> reason."""
    allowed: dict[str, str] = {}
    if not path.exists():
        return allowed
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        case, _, reason = line.partition(" ")
        if not reason.strip():
            raise SetupError(f"{path}:{number}: allow-list entry {case!r} has no reason")
        allowed[case] = reason.strip()
    return allowed


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in case.split("."))


def judge(
    index: dict[str, dict[str, dict[str, object]]], agents: list[str], allowed: dict[str, str], summary: list[str]
) -> int:
    """Print the summary table and the cases that are not good; return the number of cases that fail the run.
    The table also goes to ``summary`` as Markdown rows."""
    failing = 0
    used: set[str] = set()
    columns = [*VERDICTS, "other"]
    header = f"{'server':20} {'section':>7} " + " ".join(f"{c:>13}" for c in columns) + f" {'total':>6}"
    print("\n" + header + "\n" + "-" * len(header))
    summary.append("| server | section | " + " | ".join(columns) + " | total |")
    summary.append("|---|---:|" + "---:|" * (len(columns) + 1))
    problems: list[str] = []
    for agent in agents:
        cases = index.get(agent, {})
        if not cases:
            problems.append(f"{agent}: no results at all in index.json")
            failing += 1
            continue
        sections: dict[int, Counter[str]] = {}
        for case_id in sorted(cases, key=case_key):
            result = cases[case_id]
            behavior, close = str(result.get("behavior")), str(result.get("behaviorClose"))
            counter = sections.setdefault(case_key(case_id)[0], Counter())
            counter[behavior if behavior in VERDICTS else "other"] += 1
            if behavior in GOOD and close in GOOD:
                continue
            what = f"{agent} {case_id}: {behavior} (closing: {close}, close code {result.get('remoteCloseCode')})"
            if case_id in allowed:
                used.add(case_id)
                problems.append(f"{what} -- allowed: {allowed[case_id]}")
            else:
                problems.append(what)
                failing += 1
        for section, counter in sorted(sections.items()):
            row = " ".join(f"{counter.get(c, 0):>13}" for c in columns)
            print(f"{agent:20} {section:>7} {row} {sum(counter.values()):>6}")
            cells = " | ".join(str(counter.get(c, 0)) for c in columns)
            summary.append(f"| {agent} | {section} | {cells} | {sum(counter.values())} |")
        total = sum((c for c in sections.values()), Counter())
        row = " ".join(f"{total.get(c, 0):>13}" for c in columns)
        print(f"{agent:20} {'all':>7} {row} {sum(total.values()):>6}")
        cells = " | ".join(f"**{total.get(c, 0)}**" for c in columns)
        summary.append(f"| {agent} | **all** | {cells} | **{sum(total.values())}** |")
    if problems:
        print("\nnot OK or INFORMATIONAL:")
        for line in problems:
            print("  " + line)
    for case in sorted(set(allowed) - used, key=case_key):
        print(f"  note: allow-list entry {case} was not needed (it passes now: remove it)")
    return failing


def write_summary(path: Path, rows: list[str], cases: list[str], wstest: Path) -> None:
    """The summary table with the date and the versions of the suite, Python and snow_rt_py (for the README)."""
    python = ROOT / ".venv" / "bin" / "python"

    def output(cmd: list[str]) -> str:
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return "?"
        return (result.stdout or result.stderr).strip() or "?"

    suite = output([str(wstest.parent / "python"), "-c", "import autobahntestsuite as a; print(a.__version__)"])
    ours = output([str(python), "-c", "import snow_rt_py, sys; print(snow_rt_py.__version__, sys.version.split()[0])"])
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = [
        f"Autobahn|Testsuite {suite}, cases {','.join(cases)}; snow_rt_py and Python {ours}; {date}.",
        "",
    ]
    path.write_text("\n".join(head + rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cases",
        default=os.environ.get("CASES") or DEFAULT_CASES,
        help=f"comma-separated wstest case patterns (default $CASES, else {DEFAULT_CASES})",
    )
    parser.add_argument(
        "--modes",
        default=os.environ.get("MODES") or DEFAULT_MODES,
        help=f"permessage-deflate modes of the servers, comma-separated, or 'all' ({', '.join(ALL_MODES)}); "
        f"default $MODES, else {DEFAULT_MODES}",
    )
    parser.add_argument("--allow-list", type=Path, default=ALLOW_LIST, help="cases allowed to be not OK, with reasons")
    parser.add_argument("--out", type=Path, default=OUT, help="where the report goes (default artifacts/autobahn)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds wstest may take (default 1800)")
    parser.add_argument(
        "--clients",
        default=os.environ.get("CLIENTS") or DEFAULT_CLIENTS,
        help=f"echo clients to run wstest -m fuzzingserver against ({', '.join(CLIENTS)}), comma-separated, or "
        f"'none'; 'websockets' is recorded for reference and never fails the run (default $CLIENTS, else "
        f"{DEFAULT_CLIENTS})",
    )
    parser.add_argument("--no-servers", action="store_true", help="skip the server suite (client mode only)")
    opts = parser.parse_args(argv)
    clients = [] if opts.clients == "none" else [c.strip() for c in opts.clients.split(",") if c.strip()]
    for client in clients:
        if client not in CLIENTS:
            parser.error(f"unknown client {client!r}: use {', '.join(CLIENTS)} or none")
    cases = [c.strip() for c in opts.cases.split(",") if c.strip()]
    modes = list(ALL_MODES) if opts.modes == "all" else [m.strip() for m in opts.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in (*ALL_MODES, "off"):
            parser.error(f"unknown mode {mode!r}: use {', '.join(ALL_MODES)}, off or all")
    started = time.monotonic()

    # SIGTERM (e.g. CI giving up) unwinds like Ctrl-C, so the servers are stopped.
    def terminated(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminated)

    python27 = find_python27()
    if python27 is None:
        no_python27()
        return 2
    try:
        allowed = read_allow_list(opts.allow_list)
        wstest = ensure_suite(python27)
        out = opts.out.resolve()
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        with running_servers(out, [] if opts.no_servers else modes) as urls:
            # One wstest per server, all at once: the suite's client is single-threaded and the slow part (it
            # compresses and checks every message of sections 12 and 13), so this divides the time by the cores.
            print(f"autobahn: wstest -m fuzzingclient, cases {','.join(cases)}, {len(urls)} servers in parallel")
            t0 = time.monotonic()
            runs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
            for agent, url in urls.items():
                agent_out = out / agent
                agent_out.mkdir()
                spec = {
                    "outdir": str(agent_out),
                    "servers": [{"agent": agent, "url": url}],
                    "cases": cases,
                    "exclude-cases": [],
                    "exclude-agent-cases": {},
                }
                spec_path = agent_out / "spec.json"
                spec_path.write_text(json.dumps(spec, indent=2) + "\n")
                with open(agent_out / "wstest.log", "wb") as log:
                    proc = subprocess.Popen(
                        [str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)],
                        cwd=agent_out,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                runs[agent] = (proc, agent_out)
            # The client mode at the same time, with its own fuzzing server: both suites are single-threaded
            # Python 2 processes, mostly waiting, so running them side by side takes about the time of the longer.
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
            client_run = pool.submit(run_clients, wstest, out / "clients", cases, clients) if clients else None
            statuses: dict[str, int] = {}
            try:
                for agent, (proc, _) in runs.items():
                    left = max(1.0, opts.timeout - (time.monotonic() - t0))
                    try:
                        statuses[agent] = proc.wait(left)
                    except subprocess.TimeoutExpired:
                        print(f"autobahn: wstest ({agent}) did not finish within {opts.timeout:.0f} s", file=sys.stderr)
                        statuses[agent] = -1
            finally:
                for proc, _ in runs.values():
                    if proc.poll() is None:
                        stop(proc)
            print(f"autobahn: wstest finished in {time.monotonic() - t0:.0f} s (exit {statuses})", flush=True)
        client_index, client_problems = client_run.result() if client_run is not None else ({}, 0)
        pool.shutdown()
    except SetupError as exc:
        print(f"autobahn: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"autobahn: interrupted ({exc or 'Ctrl-C'}); servers stopped", file=sys.stderr)
        return 130

    index: dict[str, dict[str, dict[str, object]]] = {}
    broken = 0
    for agent, (_, agent_out) in runs.items():
        index_path = agent_out / "index.json"
        if statuses[agent] != 0 or not index_path.exists():
            tail = (agent_out / "wstest.log").read_text(errors="replace")[-3000:]
            present = "present" if index_path.exists() else "missing"
            print(f"autobahn: wstest failed for {agent} (exit {statuses[agent]}, index.json {present})")
            print(tail, file=sys.stderr)
            broken += 1
            continue
        index.update(json.loads(index_path.read_text()))
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    links = "".join(f'<li><a href="{agent}/index.html">{agent}</a></li>' for agent in runs)
    (out / "index.html").write_text(f"<!doctype html><title>Autobahn|Testsuite</title><ul>{links}</ul>\n")
    summary: list[str] = []
    failing = judge(index, list(index), allowed, summary) + broken
    if clients:
        print("\nclient mode (wstest -m fuzzingserver):")
        summary += ["", "Client mode (`wstest -m fuzzingserver`):", ""]
        ours = {agent: cases for agent, cases in client_index.items() if agent != "websockets"}
        failing += judge(ours, clients and [c for c in clients if c != "websockets"], allowed, summary)  # type: ignore[arg-type]
        failing += client_problems
        if "websockets" in client_index:
            print("\nfor reference, the websockets library's client:")
            summary += ["", "For reference, the `websockets` library's client, same run:", ""]
            judge({"websockets": client_index["websockets"]}, ["websockets"], allowed, summary)  # type: ignore[dict-item]
    write_summary(out / "summary.md", summary, cases, wstest)
    print(f"\nreport: {(out / 'index.html').relative_to(ROOT)}; total time {time.monotonic() - started:.0f} s")
    if failing:
        print(f"autobahn: FAILED: {failing} case result(s) not OK, INFORMATIONAL or allowed")
        return 1
    print("autobahn: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
