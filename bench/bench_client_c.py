"""The C client's figure for issue 23's client bench: 100 client connections made with snow_ws_connect
(libsnow_ws, bench/client_load.c), 16 text messages of 32 bytes in flight on each, against our C echo server
(build/echo_server); the client on one core (LOADGEN_CORE), the server on the other (SERVER_CORE).

    .venv/bin/python bench/bench_client_c.py [--connections 100] [--inflight 16] [--size 32] [--seconds 5]

Prints the versions line and one result line (msgs/s: echoes received by the client per second). Written beside
bench/bench_client.py (the Python side's client bench), which it can be folded into.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_echo import (
    LOADGEN_CORE,
    ROOT,
    ServerSpec,
    pinned,
    print_versions,
    raise_nofile_limit,
    running_server,
    versions,
)

SOURCE = ROOT / "bench" / "client_load.c"
EXE = ROOT / "build" / "client_load"


def build() -> Path:
    """Compile bench/client_load.c against build/libsnow_ws.so (make build first) unless it is up to date."""
    if EXE.exists() and EXE.stat().st_mtime >= max(
        SOURCE.stat().st_mtime, (ROOT / "include/snow_ws.h").stat().st_mtime
    ):
        return EXE
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-Iinclude", str(SOURCE), "-Lbuild", "-lsnow_ws"]
    subprocess.run([*cmd, f"-Wl,-rpath,{ROOT / 'build'}", "-o", str(EXE)], check=True, cwd=ROOT, timeout=120)
    return EXE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    opts = parser.parse_args(argv)
    raise_nofile_limit()
    print_versions(versions())
    exe = build()
    server = ServerSpec(
        "snow C (echo_server)",
        [str(ROOT / "build" / "echo_server"), "--host", "127.0.0.1", "--port", "0", "--ping-interval", "0"],
    )
    with tempfile.TemporaryDirectory() as tmp, running_server(server, Path(tmp)) as running:
        args = [str(opts.connections), str(opts.inflight), str(opts.size), str(opts.seconds)]
        done = subprocess.run(
            pinned(LOADGEN_CORE, [str(exe), running.url, *args]), capture_output=True, text=True, timeout=120
        )
    if done.returncode != 0:
        print(f"bench_client_c: client_load failed (exit {done.returncode}): {done.stderr.strip()}", file=sys.stderr)
        return 1
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"C client (snow_ws_connect) vs {server.name}: {result['connections']} connections x {result['inflight']} "
        f"in flight, {result['size']}-byte texts: {result['msgs_per_sec']:,.0f} msgs/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
