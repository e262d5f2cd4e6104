#!/usr/bin/env bash
# CI proof of issue 22: the wheel is all a C user needs.
#   1. `pip wheel .` (PEP 517, no Makefile): a cpXY-cpXY-linux_x86_64 wheel carrying the C parts, snow_ws.h,
#      libsnow_ws.so and snow_ws.pc; it goes into a fresh venv outside the repository;
#   2. with the repository out of reach (a private mount namespace with an empty tmpfs over it, so no path into the
#      tree can be opened), examples/echo_server.c is compiled with $(snow-ws config --cflags) ...
#      $(snow-ws config --libs), and again with pkg-config; each program runs with an empty environment and the
#      websockets library talks to it;
#   3. the venv is moved and 2 is done again (with `python -m snow_rt_py config`: a moved venv's scripts name the
#      old path in their #! line);
#   4. `make install PREFIX=...` (outside the repository), and a program compiled with that prefix's pkg-config file;
#   5. without a C compiler (CC=/bin/false) `pip install .` still installs, the pure-Python package, and
#      `snow-ws config --libs` says in one line why there is no library.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
step() { echo "== ci_wheel: $*"; }

port_base=$((20000 + RANDOM % 20000))
run_echo() {  # run_echo WORK EXE: start it with an empty environment, talk to it, stop it with SIGTERM
    local work=$1 exe=$2 pid port=$port_base
    port_base=$((port_base + 1))
    env -i "$exe" --port "$port" > "$work/server.log" 2>&1 &
    pid=$!
    if ! "$work/client/bin/python" "$work/ws_echo_check.py" "$port"; then
        cat "$work/server.log" >&2; kill "$pid"; exit 1
    fi
    if grep -F "$root/" "/proc/$pid/maps"; then echo "ci_wheel: $exe maps files of the repository" >&2; exit 1; fi
    kill -TERM "$pid"
    wait "$pid" || true
}

# steps 2 and 3, inside the mount namespace (a copy of this script): --as-c-user WORK ROOT [FOLDER THAT MUST BE EMPTY]
if [ "${1:-}" = "--as-c-user" ]; then
    work=$2
    root=$3
    if [ -n "$(ls -A "${4:-$root}")" ]; then echo "ci_wheel: the repository is still in reach" >&2; exit 1; fi
    cd "$work"
    for venv in "$work/venv" "$work/venv-moved"; do
        if [ "$venv" = "$work/venv-moved" ]; then
            step "move the venv ($work/venv -> $venv) and do it again"
            mv "$work/venv" "$venv"
        fi
        config="$venv/bin/python -I -m snow_rt_py config"
        step "compile echo_server.c with: cc ... $($config --cflags) $($config --libs)"
        # shellcheck disable=SC2046
        cc -O2 -Wall -Wextra -Werror echo_server.c $($config --cflags) $($config --libs) -o "$work/echo_config"
        run_echo "$work" "$work/echo_config"
        pcdir="$($config --pkgconfig-dir)"
        step "compile echo_server.c with: cc ... $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs snow_ws)"
        # shellcheck disable=SC2046
        cc -O2 -Wall -Wextra -Werror echo_server.c $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs snow_ws) \
            -o "$work/echo_pkgconfig"
        run_echo "$work" "$work/echo_pkgconfig"
    done
    exit 0
fi

python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step "pip wheel ."
"$python" -m pip wheel -q --no-deps -w "$work/wheels" "$root"
wheel="$(ls "$work"/wheels/snow_rt_py-*.whl)"
tag="$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
case "$(basename "$wheel")" in
    snow_rt_py-*-"$tag"-"$tag"-linux_x86_64.whl) echo "wheel: $(basename "$wheel")" ;;
    *) echo "ci_wheel: not a $tag linux_x86_64 wheel: $(basename "$wheel")" >&2; exit 1 ;;
esac
members="$(unzip -Z1 "$wheel")"
for member in snow_rt_py/lib/libsnow_ws.so snow_rt_py/lib/_snow_ws_embed.so snow_rt_py/include/snow_ws.h \
        snow_rt_py/lib/pkgconfig/snow_ws.pc; do
    grep -qx "$member" <<< "$members" || { echo "ci_wheel: $member is not in the wheel" >&2; exit 1; }
done

step "install it into a fresh venv outside the repository (and websockets into another, for the client)"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel"
"$python" -m venv "$work/client"
"$work/client/bin/python" -m pip install -q 'websockets>=13,<18'
cp "$root/examples/echo_server.c" "$root/tools/ws_echo_check.py" "$work/"
step "the repository out of reach: a private mount namespace with an empty tmpfs over $root"
cp "$0" "$work/ci_wheel.sh"
if unshare --mount --propagation private true 2> /dev/null; then
    unshare --mount --propagation private bash -c \
        'mount -t tmpfs snow-out-of-reach "$1" && bash "$2/ci_wheel.sh" --as-c-user "$2" "$1"' _ "$root" "$work"
else  # no mount namespaces here (not root): the programs' memory maps still must name no file of the tree
    echo "ci_wheel: WARNING: cannot unshare a mount namespace; the tree stays in reach, only /proc/PID/maps is checked"
    mkdir -p "$work/empty"
    bash "$work/ci_wheel.sh" --as-c-user "$work" "$root" "$work/empty"
fi

step "make install PREFIX=$work/prefix"
make -C "$root" -s install PREFIX="$work/prefix"
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -Werror "$work/echo_server.c" $(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config \
    --cflags --libs snow_ws) -o "$work/echo_prefix"
if readelf -d "$work/echo_prefix" | grep -F "$root"; then echo "ci_wheel: echo_prefix names the repository" >&2; exit 1; fi
run_echo "$work" "$work/echo_prefix"
"$work/prefix/bin/snow-ws" config --modversion

cd "$work"  # nothing below may import the tree's own package from the working directory
step "without a C compiler: pip install . gives the pure-Python package"
"$python" -m venv "$work/venv-nocc"
CC=/bin/false "$work/venv-nocc/bin/python" -m pip install -q "$root"
"$work/venv-nocc/bin/python" -I -c 'import snow_rt_py.runtime.connection_base as h; assert not h.C_CONNECTION; print("pure Python: ok")'
if "$work/venv-nocc/bin/snow-ws" config --libs 2> "$work/nocc.err"; then
    echo "ci_wheel: snow-ws config --libs succeeded without a library" >&2; exit 1
fi
grep "^snow-ws config: .*libsnow_ws.so is missing: this snow_rt_py was installed without its C parts" "$work/nocc.err"
step "all good"
