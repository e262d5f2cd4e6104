"""Fixtures of the C-program tests: compile once per session, run each program in a fresh temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.c.harness import ASAN_ENV, Program, clean_env, compile_program, library_missing


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``compiled(name, asan=False)``: the path of tests/c/NAME.c (or examples/NAME.c) compiled, cached."""
    reason = library_missing()
    if reason is not None:
        pytest.fail(reason)
    out_dir = tmp_path_factory.mktemp("c-programs")
    cache: dict[tuple[str, bool], Path] = {}

    def get(name: str, asan: bool = False) -> Path:
        if (name, asan) not in cache:
            cache[name, asan] = compile_program(name, out_dir, asan=asan)
        return cache[name, asan]

    return get


@pytest.fixture
def run(compiled: Callable[..., Path], tmp_path: Path) -> Iterator[Callable[..., Program]]:
    """``run(name, *args, asan=False, env=None, ignore_sigint=False)``: start a compiled program in a temporary
    working directory with an empty environment (plus ``env``); killed at teardown if still running."""
    programs: list[Program] = []

    def start(
        name: str, *args: str, asan: bool = False, env: dict[str, str] | None = None, ignore_sigint: bool = False
    ) -> Program:
        extra = dict(env or {})
        if asan:
            extra.update(ASAN_ENV)
        program = Program(compiled(name, asan), args, cwd=tmp_path, env=clean_env(**extra), ignore_sigint=ignore_sigint)
        programs.append(program)
        return program

    yield start
    for program in programs:
        program.kill()
