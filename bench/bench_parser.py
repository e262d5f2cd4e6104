"""Parser throughput: snow_rt_py's ServerProtocol against the websockets library's frame parser.

Both parsers get the same input bytes: masked client frames (RFC 6455 §5.2, §5.3) as a server receives them.

Workloads:

* 32-byte binary frames and 32-byte text frames, 1,000 frames per ``receive_data`` chunk: frames/s;
* 1 MiB binary frames, each frame as one chunk, and each frame cut into 64 KiB chunks: MB/s of payload
  (MB = 10**6 bytes).

websockets is driven the way its own ``Protocol.parse()`` drives it on the server side: a
``websockets.streams.StreamReader`` fed with each chunk, and ``Frame.parse(reader.read_exact, mask=True,
max_size=..., extensions=[])`` run as a generator-based coroutine until it needs more data. Text frames are then
decoded with ``bytes.decode()`` (what its asyncio layer does before handing a ``str`` to the application), since
our ``TextMessage`` carries a validated ``str``. Our side is ``ServerProtocol(max_message_size=..., open=True)``
and its ``receive_data(chunk)``. Every parser's output is checked against the payloads before it is timed.

Every timed run happens in a fresh subprocess (after a check and a short warm-up), the parsers taking turns in
a rotating order. Large frames make the figures depend on the state of the C heap -- glibc gives freed
megabytes back to the kernel and page-faults them in again, at a cost that depends on the history of the
process -- so a parser never runs in a heap shaped by the other one, and noise from the machine hits all
parsers alike. The inputs are built once and handed to the subprocesses in a file: identical bytes for all.
"ours, no C" is our parser with ``SNOW_RT_PY_NO_SPEEDUPS=1``: the cost of the pure-Python fallback.

Usage::

    .venv/bin/python bench/bench_parser.py            # full run, 5 runs per figure (~2 minutes on 2 cores)
    .venv/bin/python bench/bench_parser.py --quick    # short run, for a smoke test
    .venv/bin/python bench/bench_parser.py --mask     # also time apply_mask by payload size (C vs Python)

The figures go to the terminal (and, by hand, to BENCHMARKS.md); nothing asserts on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Benchmark the working tree, not whatever copy of the package happens to be installed.
sys.path.insert(0, str(ROOT))

MAX_MESSAGE_SIZE = 4 << 20  # above every payload here: no size limit is hit
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2

WEBSOCKETS = "websockets"
OURS = "ours"
OURS_NO_C = "ours, no C"
NO_SPEEDUPS_ENV = {"SNOW_RT_PY_NO_SPEEDUPS": "1"}


# --- workloads ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One benchmark input: ``chunks`` fed in order, ``rounds`` times per timed run."""

    key: str
    title: str
    unit: str  # "frames/s" or "MB/s"
    goal: float  # minimum ratio ours/websockets (issue 2)
    opcode: int
    payloads: tuple[bytes, ...]  # one round's frame payloads, in order
    chunks: tuple[bytes, ...]  # one round's input, as receive_data() calls
    rounds: int

    def rate(self, seconds: float, rounds: int) -> float:
        """Throughput, in ``unit``, of ``rounds`` rounds parsed in ``seconds``."""
        if self.unit == "frames/s":
            return len(self.payloads) * rounds / seconds
        return sum(map(len, self.payloads)) * rounds / seconds / 1e6


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame, serialized by websockets (an encoder independent of the parser under test)."""
    from websockets.frames import Frame, Opcode

    return Frame(Opcode(opcode), payload, fin=True).serialize(mask=True)


def build_workloads(quick: bool, seed: int = 6455) -> list[Workload]:
    """The four inputs of issue 2."""
    rng = random.Random(seed)  # payloads; websockets draws the masking keys
    small_rounds = 20 if quick else 300  # x 1,000 frames
    big_rounds = 16 if quick else 256  # x 1 MiB

    binary32 = tuple(rng.randbytes(32) for _ in range(1000))
    alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 {}:,"'
    text32 = tuple("".join(rng.choice(alphabet) for _ in range(32)).encode() for _ in range(1000))
    big = rng.randbytes(1 << 20)
    big_frame = _masked_frame(OPCODE_BINARY, big)
    piece = 64 << 10

    return [
        Workload(
            key="bin32",
            title="32 B binary frames, 1000/chunk",
            unit="frames/s",
            goal=2.0,
            opcode=OPCODE_BINARY,
            payloads=binary32,
            chunks=(b"".join(_masked_frame(OPCODE_BINARY, p) for p in binary32),),
            rounds=small_rounds,
        ),
        Workload(
            key="text32",
            title="32 B text frames, 1000/chunk",
            unit="frames/s",
            goal=2.0,
            opcode=OPCODE_TEXT,
            payloads=text32,
            chunks=(b"".join(_masked_frame(OPCODE_TEXT, p) for p in text32),),
            rounds=small_rounds,
        ),
        Workload(
            key="bin1m",
            title="1 MiB binary frames, 1 chunk each",
            unit="MB/s",
            goal=0.8,
            opcode=OPCODE_BINARY,
            payloads=(big,),
            chunks=(big_frame,),
            rounds=big_rounds,
        ),
        Workload(
            key="bin1m64k",
            title="1 MiB binary frames, 64 KiB chunks",
            unit="MB/s",
            goal=0.8,
            opcode=OPCODE_BINARY,
            payloads=(big,),
            chunks=tuple(big_frame[i : i + piece] for i in range(0, len(big_frame), piece)),
            rounds=big_rounds,
        ),
    ]


# --- the parsers --------------------------------------------------------------------------------------------


class WebsocketsParser:
    """websockets' server-side frame parsing, as ``websockets.protocol.Protocol`` runs it, minus I/O.

    ``receive_data`` feeds the ``StreamReader`` and resumes the parsing coroutine, which loops over
    ``Frame.parse(read_exact, mask=True, max_size=..., extensions=...)`` until it needs more bytes; the complete
    frames are returned, text ones decoded to ``str`` as websockets' asyncio layer does.
    """

    def __init__(self, max_size: int) -> None:
        from websockets.frames import Frame, Opcode
        from websockets.streams import StreamReader

        self._frame_parse = Frame.parse
        self._text = Opcode.TEXT
        self.max_size = max_size
        self.extensions: list[Any] = []
        self.reader = StreamReader()
        self.frames: list[Any] = []
        self.parser = self._parse()
        next(self.parser)

    def _parse(self) -> Generator[None, None, None]:
        reader = self.reader
        while not (yield from reader.at_eof()):
            frame = yield from self._frame_parse(
                reader.read_exact, mask=True, max_size=self.max_size, extensions=self.extensions
            )
            self.frames.append(frame)

    def receive_data(self, data: bytes) -> list[Any]:
        self.reader.feed_data(data)
        next(self.parser)
        frames, self.frames = self.frames, []
        text = self._text
        return [f.data.decode() if f.opcode is text else f.data for f in frames]


def make_ours() -> Any:
    from snow_rt_py.protocol.connection import ServerProtocol

    return ServerProtocol(max_message_size=MAX_MESSAGE_SIZE, open=True)


def make_websockets() -> Any:
    return WebsocketsParser(MAX_MESSAGE_SIZE)


def ours_available() -> str | None:
    """None if our ServerProtocol can be benchmarked, else why not."""
    try:
        make_ours()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def check_parser(name: str, make: Callable[[], Any], workload: Workload) -> None:
    """Feed one round and check the events: a parser that drops or corrupts frames must not be timed."""
    parser = make()
    events: list[Any] = []
    for chunk in workload.chunks:
        events.extend(parser.receive_data(chunk))
    values = [getattr(ev, "data", ev) for ev in events]
    expected: list[Any] = list(workload.payloads)
    if workload.opcode == OPCODE_TEXT:
        expected = [p.decode() for p in expected]
    if values != expected:
        kinds = sorted({type(ev).__name__ for ev in events})
        raise SystemExit(
            f"{name} parsed {workload.title!r} wrongly: {len(events)} events ({', '.join(kinds)}), "
            f"expected {len(expected)} messages"
        )


def time_rounds(make: Callable[[], Any], workload: Workload, rounds: int) -> float:
    """Seconds to parse ``rounds`` rounds of ``workload`` with a fresh parser (its creation not timed)."""
    parser = make()
    receive = parser.receive_data
    chunks = workload.chunks
    count = 0
    start = time.perf_counter()
    for _ in range(rounds):
        for chunk in chunks:
            count += len(receive(chunk))
    elapsed = time.perf_counter() - start
    if count != len(workload.payloads) * rounds:
        raise SystemExit(f"{workload.title}: {count} events, expected {len(workload.payloads) * rounds}")
    return elapsed


def worker(inputs: Path, key: str, parser: str) -> dict[str, Any]:
    """One timed run, in this (fresh) process: check, warm up, time. Returns the rate and the setup."""
    from snow_rt_py.protocol import mask

    workload = next(w for w in pickle.loads(inputs.read_bytes()) if w.key == key)
    make = make_websockets if parser == WEBSOCKETS else make_ours
    check_parser(parser, make, workload)
    time_rounds(make, workload, max(1, workload.rounds // 10))  # warm-up: caches, allocator, branch predictors
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seconds = time_rounds(make, workload, workload.rounds)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {
        "rate": workload.rate(seconds, workload.rounds),
        "faults": faults / workload.rounds,
        "have_speedups": mask.HAVE_SPEEDUPS,
    }


# --- the conductor ------------------------------------------------------------------------------------------


@dataclass
class Result:
    rates: list[float] = dataclasses.field(default_factory=list)
    faults: list[float] = dataclasses.field(default_factory=list)  # minor page faults per round, per run

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the runs were."""
        return (max(self.rates) - min(self.rates)) / self.median


def run_worker(inputs: Path, key: str, parser: str) -> dict[str, Any]:
    env = {**os.environ, **(NO_SPEEDUPS_ENV if parser == OURS_NO_C else {})}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(inputs), key, parser]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{parser} on {key} failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout)
    if parser == OURS_NO_C and result["have_speedups"]:
        raise SystemExit("SNOW_RT_PY_NO_SPEEDUPS=1 did not turn the C accelerator off")
    return result


def measure(workloads: Sequence[Workload], parsers: Sequence[str], runs: int) -> dict[str, dict[str, Result]]:
    """``runs`` rates of each parser on each workload, one subprocess per run, parsers in rotating order."""
    results = {w.key: {p: Result() for p in parsers} for w in workloads}
    with tempfile.TemporaryDirectory(prefix="bench_parser.") as tmp:
        inputs = Path(tmp) / "inputs.pickle"
        inputs.write_bytes(pickle.dumps(list(workloads)))
        for w in workloads:
            print(f"  {w.title} ", end="", file=sys.stderr, flush=True)
            for run in range(runs):
                turn = run % len(parsers)
                for parser in [*parsers[turn:], *parsers[:turn]]:
                    outcome = run_worker(inputs, w.key, parser)
                    results[w.key][parser].rates.append(outcome["rate"])
                    results[w.key][parser].faults.append(outcome["faults"])
                print(".", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
    return results


# --- apply_mask micro-benchmark -----------------------------------------------------------------------------


def mask_table() -> str:
    """Time per apply_mask call by payload size: pure Python, our C path, websockets' C speedups."""
    from snow_rt_py.protocol import mask as m

    try:
        from websockets.speedups import apply_mask as ws_mask
    except ImportError:  # websockets built without its C extension
        from websockets.utils import apply_mask as ws_mask

    key = b"\x37\xfa\x21\x3d"
    threshold = m.C_THRESHOLD
    rows = [("size (B)", "python ns", "C ns", "C GB/s", "websockets ns", "websockets GB/s")]
    try:
        m.C_THRESHOLD = 0  # every size through apply_mask's C path (when built)
        for size in (8, 32, 64, 128, 160, 192, 256, 1024, 16 << 10, 1 << 20):
            data = os.urandom(size)
            number = max(20, 2_000_000 // (size + 500))

            def best(fn: Callable[[], object], number: int = number) -> float:
                return min(timeit.repeat(fn, number=number, repeat=5)) / number

            py = best(partial(m.apply_mask_py, data, key))
            c = best(partial(m.apply_mask, data, key)) if m.HAVE_SPEEDUPS else float("nan")
            ws = best(partial(ws_mask, data, key))
            rows.append(
                (str(size), f"{py * 1e9:.0f}", f"{c * 1e9:.0f}", f"{size / c / 1e9:.2f}", f"{ws * 1e9:.0f}",
                 f"{size / ws / 1e9:.2f}")
            )  # fmt: skip
    finally:
        m.C_THRESHOLD = threshold
    return f"apply_mask (C_THRESHOLD = {threshold} B, HAVE_SPEEDUPS = {m.HAVE_SPEEDUPS})\n" + _format(rows)


# --- report -------------------------------------------------------------------------------------------------


def _format(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _rate(value: float, unit: str) -> str:
    return f"{value:,.0f}" if unit == "frames/s" else f"{value:,.1f}"


def environment() -> str:
    from importlib.metadata import version

    import websockets
    import websockets.frames

    try:
        from snow_rt_py.protocol import mask

        ours = f"C accelerator: {'yes' if mask.HAVE_SPEEDUPS else 'no (not built? run `make build`)'}"
    except ImportError as exc:
        ours = f"not importable ({exc})"
    try:
        from websockets.speedups import apply_mask as ws_speedups

        ws_c = getattr(websockets.frames, "apply_mask", None) is ws_speedups
    except ImportError:
        ws_c = False
    return "\n".join(
        [
            f"python      {platform.python_implementation()} {platform.python_version()} ({sys.executable})",
            f"websockets  {websockets.version.version} (C speedups: {'yes' if ws_c else 'no'})",
            f"cffi        {version('cffi')}",
            f"snow_rt_py  {ours}",
            f"machine     {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        ]
    )


def report(workloads: Sequence[Workload], results: dict[str, dict[str, Result]], runs: int) -> str:
    parsers = list(next(iter(results.values())))
    header = ["workload", "unit", WEBSOCKETS]
    if OURS in parsers:
        header += [OURS, "ours/ws", "goal", "met"]
    if OURS_NO_C in parsers:
        header += [OURS_NO_C, "no C/ws"]
    header.append("spread")
    rows = [header]
    for w in workloads:
        by_parser = results[w.key]
        ws = by_parser[WEBSOCKETS].median
        row = [w.title, w.unit, _rate(ws, w.unit)]
        if OURS in by_parser:
            ratio = by_parser[OURS].median / ws
            met = "yes" if ratio >= w.goal else "NO"
            row += [_rate(by_parser[OURS].median, w.unit), f"{ratio:.2f}x", f">= {w.goal:g}x", met]
        if OURS_NO_C in by_parser:
            row += [_rate(by_parser[OURS_NO_C].median, w.unit), f"{by_parser[OURS_NO_C].median / ws:.2f}x"]
        row.append(f"{max(r.spread for r in by_parser.values()):.0%}")
        rows.append(row)
    note = (
        f"median of {runs} runs, each in a fresh process; spread = (max - min) / median, of the noisiest "
        "column; MB = 10**6 bytes of payload"
    )
    faults = [["minor page faults per round (median [min-max] of the runs)", *parsers]]
    for w in workloads:
        faults.append([w.title] + [_faults(results[w.key][p].faults) for p in parsers])
    return _format(rows) + "\n" + note + "\n\n" + _format(faults)


def _faults(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} [{min(values):.0f}-{max(values):.0f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (fewer rounds and runs)")
    parser.add_argument("--runs", type=int, help="timed runs per figure (default 5, 3 with --quick)")
    parser.add_argument("--mask", action="store_true", help="also time apply_mask by payload size")
    parser.add_argument("--no-fallback", action="store_true", help="skip our SNOW_RT_PY_NO_SPEEDUPS=1 figures")
    parser.add_argument("--only", action="append", metavar="WORKLOAD", help="bin32, text32, bin1m or bin1m64k")
    parser.add_argument("--worker", nargs=3, metavar=("INPUTS", "WORKLOAD", "PARSER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        inputs, key, name = args.worker
        print(json.dumps(worker(Path(inputs), key, name)))
        return 0

    runs = args.runs or (3 if args.quick else 5)
    print("Parser throughput (issue 2)\n")
    print(environment())
    print(f"command     {' '.join([Path(sys.executable).name, *sys.argv])}\n", flush=True)

    parsers = [WEBSOCKETS]
    why_not = ours_available()
    if why_not is None:
        parsers += [OURS] if args.no_fallback else [OURS, OURS_NO_C]
    else:
        print(f"NOTE: our ServerProtocol is not benchmarked ({why_not}); websockets only.\n")
    workloads = [w for w in build_workloads(args.quick) if not args.only or w.key in args.only]
    if not workloads:
        parser.error(f"--only: no such workload {args.only}")
    results = measure(workloads, parsers, runs)
    print(report(workloads, results, runs))
    if args.mask:
        print()
        print(mask_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
