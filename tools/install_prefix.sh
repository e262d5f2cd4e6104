#!/usr/bin/env bash
# `make install PREFIX=...`: libsnow_ws for system-wide use from C.
#   PREFIX/lib/snow_ws/                a venv of its own holding snow_rt_py (built as a wheel from this tree)
#   PREFIX/lib/libsnow_ws.so           a relative link to the venv's snow_rt_py/lib/libsnow_ws.so (the library
#                                      follows the link back to its package, so it finds the runtime)
#   PREFIX/include/snow_ws.h           the header
#   PREFIX/lib/pkgconfig/snow_ws.pc    for pkg-config (paths relative to the file: PREFIX/include, PREFIX/lib)
#   PREFIX/bin/snow-ws                 the command (snow-ws config ... answers for the venv's package)
# Usage: tools/install_prefix.sh PREFIX PYTHON   (PYTHON: the build venv's python, with setuptools and cffi)
set -euo pipefail
prefix=$1
python=$2
root="$(cd "$(dirname "$0")/.." && pwd)"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT

"$python" -m pip wheel -q --no-build-isolation --no-deps -w "$wheels" "$root"
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include" "$prefix/bin"
base="$("$python" -c 'import sys; print(sys._base_executable)')"
"$base" -m venv "$prefix/lib/snow_ws"
"$prefix/lib/snow_ws/bin/python" -m pip install -q --upgrade --force-reinstall "$wheels"/snow_rt_py-*.whl
libdir="$("$prefix/lib/snow_ws/bin/python" -I -m snow_rt_py config --lib-dir)"
includedir="$("$prefix/lib/snow_ws/bin/python" -I -m snow_rt_py config --include-dir)"
ln -sfn --relative "$libdir/libsnow_ws.so" "$prefix/lib/libsnow_ws.so"
install -m 644 "$includedir/snow_ws.h" "$prefix/include/snow_ws.h"
install -m 644 "$libdir/pkgconfig/snow_ws.pc" "$prefix/lib/pkgconfig/snow_ws.pc"
ln -sfn --relative "$prefix/lib/snow_ws/bin/snow-ws" "$prefix/bin/snow-ws"
echo "installed libsnow_ws in $prefix (compile with: PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs snow_ws)"
