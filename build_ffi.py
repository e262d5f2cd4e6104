"""Build the C parts of snow_rt_py with cffi (out-of-line API mode).

Usage::

    python build_ffi.py [TARGET ...]      # default: all

Targets:

* ``speedups`` -- the extension module ``snow_rt_py._speedups`` (RFC 6455 §5.3 masking at C speed). The C
  source lives in this file (:data:`SPEEDUPS_SOURCE`); cffi writes its generated C and object files under
  ``build/`` and the finished ``_speedups.<abi>.so`` is moved into ``snow_rt_py/`` so the package imports it.
* ``all`` -- every target above, in order.

Each target is one function in :data:`TARGETS`. A new target (the cffi embedding-mode library
``build/libsnow_ws.so`` built from ``include/snow_ws.h``, say) is a new ``build_<name>()`` function registered
there; ``main()`` and ``all`` pick it up without further changes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
BUILD_DIR = ROOT / "build"
PACKAGE_DIR = ROOT / "snow_rt_py"

# Appended after Python's own CFLAGS, so these win (gcc and clang keep the last -O).
EXTRA_COMPILE_ARGS = ["-O3", "-std=c99", "-Wall", "-Wextra"]


# ----------------------------------------------------------------------------------------------------------
# speedups: snow_rt_py._speedups
# ----------------------------------------------------------------------------------------------------------

SPEEDUPS_MODULE = "snow_rt_py._speedups"

# What Python sees (``lib.<name>``). Pointers are ``char *`` so that cffi accepts ``bytes`` and
# ``ffi.from_buffer(...)`` results directly, without a cast.
SPEEDUPS_CDEF = """
void snow_mask_copy(const char *src, size_t len, const char *key, char *dst);
void snow_mask_inplace(char *buf, size_t len, const char *key);
"""

SPEEDUPS_SOURCE = r"""
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* RFC 6455 §5.3: octet i of the payload is XORed with octet i % 4 of the 4-byte masking key.
 *
 * The bulk runs 8 octets per step: the key is laid out twice in an 8-byte word (byte order in memory,
 * so it is endian-neutral), and each step XORs one 8-byte word. Loads and stores go through memcpy, so
 * unaligned buffers are fine and there is no strict-aliasing UB; compilers turn them into plain moves,
 * and at -O3 the loop is vectorised further. Every 8-byte step starts at a multiple of 4, so the key
 * phase of the tail is simply i % 4.
 */

static uint64_t snow_key_word(const unsigned char *key)
{
    unsigned char twice[8];
    uint64_t word;
    memcpy(twice, key, 4);
    memcpy(twice + 4, key, 4);
    memcpy(&word, twice, 8);
    return word;
}

/* dst[0:len] = src[0:len] ^ key. src and dst must not overlap (use snow_mask_inplace for that).
 * key points to exactly 4 octets. */
void snow_mask_copy(const char *src_, size_t len, const char *key_, char *dst_)
{
    const unsigned char *restrict src = (const unsigned char *)src_;
    const unsigned char *key = (const unsigned char *)key_;
    unsigned char *restrict dst = (unsigned char *)dst_;
    uint64_t k = snow_key_word(key);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++)
        dst[i] = (unsigned char)(src[i] ^ key[i & 3]);
}

/* buf[0:len] ^= key, in place. key points to exactly 4 octets and must not lie inside buf. */
void snow_mask_inplace(char *buf_, size_t len, const char *key_)
{
    unsigned char *buf = (unsigned char *)buf_;
    const unsigned char *key = (const unsigned char *)key_;
    uint64_t k = snow_key_word(key);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, buf + i, 8);
        w ^= k;
        memcpy(buf + i, &w, 8);
    }
    for (; i < len; i++)
        buf[i] = (unsigned char)(buf[i] ^ key[i & 3]);
}
"""


def speedups_ffi() -> FFI:
    """The cffi builder of ``snow_rt_py._speedups`` (declarations and C source, not yet compiled)."""
    ffibuilder = FFI()
    ffibuilder.cdef(SPEEDUPS_CDEF)
    ffibuilder.set_source(SPEEDUPS_MODULE, SPEEDUPS_SOURCE, extra_compile_args=EXTRA_COMPILE_ARGS)
    return ffibuilder


def build_speedups(verbose: bool) -> Path:
    """Compile ``snow_rt_py._speedups`` under ``build/`` and install the shared object into the package.

    Args:
        verbose: echo the compiler commands.

    Returns:
        The path of the installed extension module.
    """
    BUILD_DIR.mkdir(exist_ok=True)
    built = Path(speedups_ffi().compile(tmpdir=str(BUILD_DIR), verbose=verbose))
    return _install(built, PACKAGE_DIR / built.name)


def _install(built: Path, dest: Path) -> Path:
    """Copy ``built`` to ``dest`` atomically.

    A process that has the old shared object loaded keeps its mapping intact: the old file is replaced by a
    rename, never overwritten in place.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copy2(built, tmp_name)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest


# ----------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------

TARGETS: dict[str, Callable[[bool], Path]] = {
    "speedups": build_speedups,
}


def main(argv: list[str] | None = None) -> int:
    """Build the requested targets (``all`` when none is named).

    Returns:
        The process exit status (0 on success).
    """
    parser = argparse.ArgumentParser(description="Build the C parts of snow_rt_py with cffi.")
    known = [*TARGETS, "all"]
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"one of {', '.join(known)} (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo the compiler commands")
    args = parser.parse_args(argv)
    # Checked here rather than with choices=: argparse (3.11) rejects an empty list for nargs="*" + choices.
    unknown = [target for target in args.targets if target not in known]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r} (choose from {', '.join(known)})")

    names: list[str] = []
    for target in args.targets or ["all"]:
        for name in TARGETS if target == "all" else [target]:
            if name not in names:
                names.append(name)
    for name in names:
        path = TARGETS[name](args.verbose)
        print(f"built {name}: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
