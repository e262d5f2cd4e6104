#!/usr/bin/env bash
# Installs what tests/interop needs, idempotently (about a second when everything is there):
#   - Debian's chromium, with apt-get, only if /usr/bin/chromium is missing;
#   - the npm packages pinned in package-lock.json (ws, playwright-core), with `npm ci`, into
#     tests/interop/node_modules, only if they were not installed from this very lock file already.
# No browser is downloaded by npm: playwright-core drives the system chromium.
# Node.js >= 20 and npm come with the machine (Debian's own nodejs is 18, too old for playwright-core): if they
# are missing this script stops with a clear message rather than letting the tests fail obscurely.
set -euo pipefail
cd "$(dirname "$0")"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "tests/interop/setup.sh: node and npm (Node.js >= 20) are required and not on PATH" >&2
    exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    echo "tests/interop/setup.sh: Node.js >= 20 is required, found $(node --version)" >&2
    exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
    echo "tests/interop/setup.sh: installing Debian's chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
if [ ! -x /usr/bin/chromium ]; then
    echo "tests/interop/setup.sh: /usr/bin/chromium is still missing after apt-get install chromium" >&2
    exit 1
fi

# npm ci wipes node_modules every time: skip it when node_modules was installed from this very lock file.
stamp=node_modules/.snow-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
    || [ ! -f node_modules/ws/package.json ] || [ ! -f node_modules/playwright-core/package.json ]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
fi
