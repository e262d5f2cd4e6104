"""Packaging: one version, written once (snow_rt_py.__version__), the declared license file; the wheel and what it
carries, ``snow-ws config``, a moved tree (issues 22 and 25).

include/snow_ws.h's SNOW_WS_VERSION is checked against the same version in tests/abi/test_build.py."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from websockets.sync.client import connect

import snow_rt_py
from snow_rt_py import config_cmd
from tests.c.harness import free_port

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


# -- issue 22: the wheel carries every C part, and the C interface is relocatable ---------------------------------

WHEEL_MEMBERS = (
    "snow_rt_py/lib/libsnow_ws.so",
    "snow_rt_py/lib/_snow_ws_embed.so",
    "snow_rt_py/lib/pkgconfig/snow_ws.pc",
    "snow_rt_py/include/snow_ws.h",
    f"snow_rt_py/_speedups{sysconfig.get_config_var('EXT_SUFFIX')}",
    *(
        f"snow_rt_py/{part}{sysconfig.get_config_var('EXT_SUFFIX')}"
        for part in ("protocol/_protocol_core", "runtime/_scheduler_core", "runtime/_connection_core")
    ),
)


def _setuptools_leftovers() -> set[Path]:
    return {*REPO.glob("*.egg-info"), *(REPO / "build").glob("lib*"), *(REPO / "build").glob("bdist.*")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel .`` of this tree (PEP 517; this venv has the build requirements, so no isolated environment)."""
    out = tmp_path_factory.mktemp("wheel")
    before = _setuptools_leftovers()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        timeout=600,
    )
    # issue 25: setuptools' build/lib, build/bdist.* and egg-info stay out of the tree
    assert _setuptools_leftovers() - before == set()
    [built] = out.glob("*.whl")
    return built


def test_the_wheel_is_for_this_python_and_platform(wheel: Path) -> None:
    cp = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert wheel.name == f"snow_rt_py-{snow_rt_py.__version__}-{cp}-{cp}-linux_x86_64.whl"


def test_the_wheel_carries_the_c_parts_and_the_c_interface(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert set(WHEEL_MEMBERS) <= names
        assert not [name for name in names if name.endswith((".c", ".o"))]  # sources are for the sdist
        assert zf.read("snow_rt_py/include/snow_ws.h") == (REPO / "include" / "snow_ws.h").read_bytes()
        pc = zf.read("snow_rt_py/lib/pkgconfig/snow_ws.pc").decode()
    assert "prefix=${pcfiledir}/../..\n" in pc  # relative to itself: moves with the package
    assert f"Version: {snow_rt_py.__version__}\n" in pc
    assert "Libs: -L${libdir} -lsnow_ws -Wl,-rpath,${libdir}\n" in pc


def config(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m snow_rt_py config ARGS``."""
    return subprocess.run(
        [sys.executable, "-m", "snow_rt_py", "config", *args], capture_output=True, text=True, timeout=60
    )


def test_snow_ws_config_prints_what_a_c_build_needs() -> None:
    pkg = Path(snow_rt_py.__file__).resolve().parent
    done = config("--cflags", "--libs", "--include-dir", "--lib-dir", "--pkgconfig-dir", "--modversion")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"-I{pkg}/include",
        f"-L{pkg}/lib -lsnow_ws -Wl,-rpath,{pkg}/lib",
        f"{pkg}/include",
        f"{pkg}/lib",
        f"{pkg}/lib/pkgconfig",
        snow_rt_py.__version__,
    ]
    # pkg-config, from the shipped file, names the same folders
    env = {**os.environ, "PKG_CONFIG_PATH": f"{pkg}/lib/pkgconfig"}
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "snow_ws"], capture_output=True, text=True, env=env, timeout=30
    ).stdout.split()
    include, libdir, lib, rpath = flags
    assert Path(include.removeprefix("-I")).resolve() == pkg / "include"
    assert Path(libdir.removeprefix("-L")).resolve() == pkg / "lib"
    assert lib == "-lsnow_ws"
    assert Path(rpath.removeprefix("-Wl,-rpath,")).resolve() == pkg / "lib"


def test_snow_ws_config_without_a_question_or_without_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    done = config()
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "snow-ws config: error: say what to print: one or more of --cflags, --libs, --include-dir, --lib-dir, "
        "--pkgconfig-dir, --modversion"
    )
    # a package installed without a compiler has no library: one line, exit 1
    monkeypatch.setattr(config_cmd, "lib_dir", lambda: tmp_path)
    assert config_cmd.main(["--libs"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"snow-ws config: {tmp_path}/libsnow_ws.so is missing: this snow_rt_py was installed without its C parts "
        "(no working C compiler when it was built); install gcc and reinstall it (pip install --force-reinstall "
        "--no-cache-dir snow_rt_py)\n"
    )


def test_a_moved_tree_runs_c_programs(tmp_path: Path) -> None:
    """issue 25: the tree (its package with the C parts built in place, and its .venv) moved elsewhere: a C program
    linked there runs the moved copy's runtime, from an empty environment, with nothing rebuilt."""
    tree = tmp_path / "moved tree"
    shutil.copytree(REPO / "snow_rt_py", tree / "snow_rt_py", ignore=shutil.ignore_patterns("__pycache__"))
    (tree / ".venv").symlink_to(Path(sys.prefix))  # the venv moves along (its own files are not copied: 180 MB)
    lib_dir = tree / "snow_rt_py" / "lib"
    exe = tmp_path / "echo_server"
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", str(REPO / "examples" / "echo_server.c"),
         f"-I{tree}/snow_rt_py/include", f"-L{lib_dir}", "-lsnow_ws", f"-Wl,-rpath,{lib_dir}", "-o", str(exe)],
        check=True,
        timeout=120,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen([str(exe), "--port", str(port)], cwd=tmp_path, env={}, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"listening on ws://127.0.0.1:{port}/\n"
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=10) as ws:
            ws.send("moved")
            assert ws.recv(timeout=10) == "moved"
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert f"{lib_dir}/_snow_ws_embed.so" in maps
        assert f"{tree}/snow_rt_py/runtime/_connection_core" in maps  # the moved copy's package runs
        assert f"{REPO}/snow_rt_py/" not in maps
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_make_notices_a_moved_tree(tmp_path: Path) -> None:
    """issue 25: the venv records the tree it was made for; in a moved tree `make build` makes it again."""
    for name in ("Makefile", "pyproject.toml", "setup.py", "snow_rt_py/__init__.py", "tools/find_python.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, tmp_path / name)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed").touch()

    def plan(origin: str) -> str:
        (tmp_path / ".venv" / ".origin").write_text(origin + "\n")
        env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}  # not `make test`'s
        return subprocess.run(
            ["make", "-n", ".venv/.installed", "PYTHON=python3"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    assert plan(f"{tmp_path} python3") == "make: '.venv/.installed' is up to date.\n"  # where it was made
    moved = plan("/somewhere/else python3")
    assert moved.splitlines()[:2] == ["rm -rf .venv", "python3 -m venv .venv"]
    assert f"echo '{tmp_path} python3' > .venv/.origin" in moved
    assert plan(f"{tmp_path} python3.12").splitlines()[0] == "rm -rf .venv"  # made for another PYTHON: again too
