"""Our server with a slow handler, for bench/bench_abuse.py's slow-handler scenario.

The handler sleeps ``--sleep-ms`` (``time.sleep``) per message and sends nothing back; with ``--workers`` >= 1 it
runs on worker threads, so the event loop keeps reading while it sleeps, and ``max_inbox_bytes`` (default 1 MiB)
is what bounds the received messages waiting for it. Every other option keeps ``ServerOptions``' default.

Prints ``listening on ws://HOST:PORT/`` like ``python -m snow_rt_py serve``; SIGTERM/SIGINT stop it.

    python bench/servers/snow_abuse.py [--host H] [--port N] [--workers N] [--sleep-ms MS]
        [--max-inbox-bytes N] [--max-message-size N]
"""

from __future__ import annotations

import argparse
import time

from snow_rt_py import Connection, Handler, ServerOptions, serve
from snow_rt_py.runtime.server import Server


class SlowHandler(Handler):
    """Takes ``delay`` seconds per message, replies nothing."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.handled = 0

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        time.sleep(self.delay)
        self.handled += len(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sleep-ms", type=float, default=50.0)
    defaults = ServerOptions()
    parser.add_argument("--max-inbox-bytes", type=int, default=defaults.max_inbox_bytes)
    parser.add_argument("--max-message-size", type=int, default=defaults.max_message_size)
    args = parser.parse_args()
    options = ServerOptions(
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_inbox_bytes=args.max_inbox_bytes,
        max_message_size=args.max_message_size,
    )
    options.validate()

    def ready(server: Server) -> None:
        print(f"listening on {server.url}", flush=True)

    serve(SlowHandler(args.sleep_ms / 1000.0), options, ready=ready)


if __name__ == "__main__":
    main()
