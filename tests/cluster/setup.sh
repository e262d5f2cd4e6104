#!/usr/bin/env bash
# Installs what tests/cluster (and `make cluster`, bench/bench_cluster.py) need, idempotently (instant when it is
# there): Debian's redis-server, with apt-get, only if redis-server is not on PATH. The test fixture starts its own
# redis-server on a free port (no config file, no persistence) and stops it; the Debian service is not used.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v redis-server >/dev/null 2>&1; then
    echo "tests/cluster/setup.sh: installing Debian's redis-server" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    # Only the binary is used: the tests start their own redis-server on a free port (no service is needed).
    as_root apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
if ! command -v redis-server >/dev/null 2>&1; then
    echo "tests/cluster/setup.sh: redis-server is still missing after apt-get install redis-server" >&2
    exit 1
fi
