"""Run every atheris harness for a bounded time: ``make fuzz`` (FUZZ_SECONDS=N, default 30 each).

Each harness starts from its committed seed corpus (fuzz/corpus/NAME, read only) plus what earlier runs found in
build/fuzz/NAME (a scratch corpus, not committed). A crash stops that harness: its input is copied into
fuzz/regressions/NAME/ (commit it: tests/protocol/test_fuzz.py then replays it on every `make test`) and the run
fails, naming the file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HARNESSES = ("handshake", "frames", "inflate")


def run(name: str, seconds: int) -> bool:
    """Fuzz one harness for ``seconds``; True if no crash was found."""
    scratch = REPO / "build" / "fuzz" / name
    artifacts = REPO / "build" / "fuzz" / f"{name}-crashes"
    scratch.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        str(REPO / "fuzz" / f"fuzz_{name}.py"),
        str(scratch),  # new inputs go here (the first directory)
        str(REPO / "fuzz" / "corpus" / name),  # the seeds, read only
        f"-max_total_time={seconds}",
        "-max_len=4096",
        "-timeout=10",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
    ]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    runs = [line for line in proc.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
    executed = runs[-1].split(":")[-1].strip() if runs else "?"
    if proc.returncode == 0:
        print(f"fuzz {name}: {executed} inputs in {took:.0f} s, no crash")
        return True
    found = sorted(artifacts.glob("*"), key=lambda p: p.stat().st_mtime)
    print(proc.stderr[-4000:], file=sys.stderr)
    if not found:
        print(f"fuzz {name}: the harness failed (exit {proc.returncode}) without a crash input", file=sys.stderr)
        return False
    keep = REPO / "fuzz" / "regressions" / name / found[-1].name
    shutil.copyfile(found[-1], keep)
    print(f"fuzz {name}: CRASH, input saved as {keep.relative_to(REPO)}: commit it and fix", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="per harness (default: 30)")
    parser.add_argument("harness", nargs="*", help=f"some of {', '.join(HARNESSES)} (default: all)")
    args = parser.parse_args(argv)
    names = args.harness or list(HARNESSES)
    unknown = [name for name in names if name not in HARNESSES]
    if unknown:
        parser.error(f"unknown harness {', '.join(unknown)}: choose from {', '.join(HARNESSES)}")
    results = [run(name, args.seconds) for name in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
