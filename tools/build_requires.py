"""Print pyproject.toml's [build-system] requires, one per line (for `pip install` before a build without isolation:
`make build` builds in its own venv, which must have setuptools and cffi, cffi needing setuptools on Python >= 3.12)."""

import sys
import tomllib
from pathlib import Path

with (Path(__file__).resolve().parents[1] / "pyproject.toml").open("rb") as f:
    requires = tomllib.load(f)["build-system"]["requires"]
sys.stdout.write("".join(f"{requirement}\n" for requirement in requires))
