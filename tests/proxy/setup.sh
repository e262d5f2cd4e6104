#!/usr/bin/env bash
# Installs what the client's proxy tests need (tests/interop/test_client_interop.py), idempotently (instant when it
# is there): Debian's tinyproxy, with apt-get, only if tinyproxy is not on PATH. The test fixture starts its own
# tinyproxy on a free port with its own config file and stops it; the Debian service is not used.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v tinyproxy >/dev/null 2>&1 && [ ! -x /usr/bin/tinyproxy ] && [ ! -x /usr/sbin/tinyproxy ]; then
    echo "tests/proxy/setup.sh: installing Debian's tinyproxy" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends tinyproxy-bin >/dev/null 2>&1 \
        || as_root apt-get install -y -qq --no-install-recommends tinyproxy >/dev/null
fi
if ! command -v tinyproxy >/dev/null 2>&1 && [ ! -x /usr/bin/tinyproxy ] && [ ! -x /usr/sbin/tinyproxy ]; then
    echo "tests/proxy/setup.sh: tinyproxy is still missing after apt-get install" >&2
    exit 1
fi
