"""Replays the fuzzing seed corpus and every crash input ever found (fuzz/regressions/) through the checks the atheris
harnesses run (fuzz/checks.py), so a bug a fuzzer once found stays fixed. `make fuzz` runs the harnesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.checks import check_frames, check_handshake, check_inflate

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
CHECKS = {"handshake": check_handshake, "frames": check_frames, "inflate": check_inflate}
INPUTS = sorted(
    (harness, path)
    for harness in CHECKS
    for folder in ("corpus", "regressions")
    for path in (FUZZ / folder / harness).iterdir()
    if path.is_file() and not path.name.startswith(".")
)


@pytest.mark.parametrize(("harness", "path"), INPUTS, ids=[f"{h}/{p.parent.parent.name}/{p.name}" for h, p in INPUTS])
def test_fuzz_input(harness: str, path: Path) -> None:
    CHECKS[harness](path.read_bytes())


def test_the_corpus_is_there() -> None:
    assert {h for h, _ in INPUTS} == set(CHECKS)
    assert len(INPUTS) >= 20
