"""A chat node through the Python API (snow_rt_py.start): ``node_api.py CLUSTER_URL [TTL_SECONDS]``.

Serves snow_rt_py's ChatApp on 127.0.0.1, a free port, in the cluster; prints ``listening on ws://...`` and runs
until SIGTERM/SIGINT (then stops: 1001 to every connection)."""

from __future__ import annotations

import signal
import sys

import snow_rt_py
from snow_rt_py.apps import ChatApp


def main() -> None:
    ttl = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    server = snow_rt_py.start(ChatApp(), port=0, cluster_url=sys.argv[1], cluster_presence_ttl=ttl)
    print(f"listening on {server.url}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


if __name__ == "__main__":
    main()
