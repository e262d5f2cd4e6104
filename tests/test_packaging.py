"""Packaging metadata: one version, written once (snow_rt_py.__version__), and the declared license file.

include/snow_ws.h's SNOW_WS_VERSION is checked against the same version in tests/abi/test_build.py."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import snow_rt_py

REPO = Path(__file__).resolve().parents[1]


def test_the_version_is_written_once_in_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"]  # no second literal to forget when releasing
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "snow_rt_py.__version__"}
    assert importlib.metadata.version("snow_rt_py") == snow_rt_py.__version__  # what pip installed


def test_the_mit_license_file_is_declared_and_installed() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the snow_rt_py authors\n")
    metadata = importlib.metadata.metadata("snow_rt_py")
    assert metadata["License-Expression"] == "MIT"  # PEP 639
    assert metadata.get_all("License-File") == ["LICENSE"]
