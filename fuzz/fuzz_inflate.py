"""atheris harness: the permessage-deflate inflater (see fuzz/checks.py: check_inflate).

Run by `make fuzz` (fuzz/run.py) with the committed seed corpus fuzz/corpus/inflate/; by hand:
    .venv/bin/python fuzz/fuzz_inflate.py fuzz/corpus/inflate -max_total_time=60
A crash input it finds must be copied into fuzz/regressions/inflate/ (tests/protocol/test_fuzz.py replays it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    from fuzz.checks import check_inflate
    from snow_rt_py.protocol import connection, deflate  # noqa: F401  (instrumented for coverage)


def main() -> None:
    atheris.Setup(sys.argv, check_inflate)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
