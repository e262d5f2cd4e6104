"""``snow-ws config``: what a C build needs to use libsnow_ws.so, like ``python3-config`` or ``pkg-config``.

The package carries the C interface in its own folders (``pip install`` and ``make build`` put them there)::

    snow_rt_py/include/snow_ws.h          the header
    snow_rt_py/lib/libsnow_ws.so          the library a program links (it finds the runtime from where it is)
    snow_rt_py/lib/_snow_ws_embed.so      the runtime's library, loaded by libsnow_ws.so
    snow_rt_py/lib/pkgconfig/snow_ws.pc   for pkg-config (its paths are relative to itself)

so a program compiles with ``cc prog.c $(snow-ws config --cflags) $(snow-ws config --libs)``. The ``--libs`` line
carries ``-Wl,-rpath`` to the library's folder, so the program runs with no LD_LIBRARY_PATH; moving the venv
afterwards means compiling again (or setting LD_LIBRARY_PATH), as for any library found by rpath.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import snow_rt_py

__all__ = ["include_dir", "lib_dir", "main", "pkgconfig_dir"]

PROG = "snow-ws config"


def _package_dir() -> Path:
    return Path(snow_rt_py.__file__).resolve().parent


def include_dir() -> Path:
    """The folder that holds ``snow_ws.h``."""
    return _package_dir() / "include"


def lib_dir() -> Path:
    """The folder that holds ``libsnow_ws.so``."""
    return _package_dir() / "lib"


def pkgconfig_dir() -> Path:
    """The folder that holds ``snow_ws.pc`` (for ``PKG_CONFIG_PATH``)."""
    return lib_dir() / "pkgconfig"


def _cflags() -> str:
    return f"-I{include_dir()}"


def _libs() -> str:
    return f"-L{lib_dir()} -lsnow_ws -Wl,-rpath,{lib_dir()}"


ANSWERS: dict[str, tuple[Callable[[], object], str]] = {
    "cflags": (_cflags, "the compiler flags: -I<include dir>"),
    "libs": (_libs, "the linker flags: -L<lib dir> -lsnow_ws -Wl,-rpath,<lib dir>"),
    "include-dir": (include_dir, "the folder of snow_ws.h"),
    "lib-dir": (lib_dir, "the folder of libsnow_ws.so"),
    "pkgconfig-dir": (pkgconfig_dir, "the folder of snow_ws.pc (PKG_CONFIG_PATH=$(snow-ws config --pkgconfig-dir))"),
    "modversion": (lambda: snow_rt_py.__version__, "the version of snow_rt_py (and of the library)"),
}


def missing() -> str | None:
    """Why the C interface cannot be used (a file it needs is not installed), or None."""
    for path in (lib_dir() / "libsnow_ws.so", lib_dir() / "_snow_ws_embed.so", include_dir() / "snow_ws.h"):
        if not path.is_file():
            return (
                f"{path} is missing: this snow_rt_py was installed without its C parts (no working C compiler when "
                "it was built); install gcc and reinstall it (pip install --force-reinstall --no-cache-dir snow_rt_py)"
            )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``snow-ws config OPTION...``: print each answer asked for, one per line, in the order asked.

    Args:
        argv: the arguments after ``config``.

    Returns:
        0, 1 when the C parts are not installed, 2 on a usage error.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Print what a C build needs to use libsnow_ws.so. For example: "
        "cc prog.c $(snow-ws config --cflags) $(snow-ws config --libs)",
    )
    for name, (_, help_text) in ANSWERS.items():
        parser.add_argument(f"--{name}", dest="asked", action="append_const", const=name, help=help_text)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.asked:
        parser.error(f"say what to print: one or more of {', '.join('--' + name for name in ANSWERS)}")
    if any(name != "modversion" for name in args.asked) and (why := missing()) is not None:
        print(f"{PROG}: {why}", file=sys.stderr)
        return 1
    for name in args.asked:
        print(ANSWERS[name][0]())
    return 0
