#!/usr/bin/env bash
# CI: the package on each other supported Python (3.12 and 3.13, from pyenv): a copy of the tree outside it,
# `make build PYTHON=...` there (a venv of that Python, its C parts built), then the protocol, runtime, ABI and
# C-program tests. The suite as a whole runs on 3.11 in `make test`.
# Usage: tools/ci_pythons.sh [X.Y...]   (default: 3.12 3.13; each is `make build PYTHON=pythonX.Y`, found by
# tools/find_python.sh on PATH or under pyenv)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.12 3.13)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for version in "${versions[@]}"; do
    python="python$version"
    tree="$work/snow-$version"
    mkdir -p "$tree"
    # the files of the tree as git sees them (tracked, and new ones not ignored): no venv, no build outputs
    (cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tree")
    echo "== Python $version: make build PYTHON=$python"
    make -C "$tree" build PYTHON="$python"
    echo "== Python $version: protocol, runtime, ABI and C-program tests"
    (cd "$tree" && .venv/bin/python -c 'import sys, snow_rt_py.runtime.connection_base as h; print(sys.version.split()[0], "C parts:", h.C_CONNECTION); sys.exit(not h.C_CONNECTION)')
    (cd "$tree" && .venv/bin/python -m pytest -q -p no:cacheprovider tests/protocol tests/runtime tests/abi tests/c tests/test_packaging.py)
done
