"""Server on the ``websockets`` library (asyncio implementation) for bench/bench_abuse.py.

The library's defaults (``max_size`` 1 MiB, ``max_queue`` 16 frames, ``write_limit`` 32 KiB, keepalive ping every
20 s) unless told otherwise; ``compression=None`` (the benchmark's clients never offer permessage-deflate, so this
changes nothing on the wire). Two behaviours:

* default: echo every message (``await ws.send(message)``, which waits while the write buffer is over its limit);
* ``--sleep-ms N``: a slow consumer, ``await asyncio.sleep(N / 1000)`` per message and no reply (the message stays
  referenced until the sleep ends, as a handler that works on it would keep it).

A connection that ends abnormally (the benchmark's clients end with a TCP reset) ends its handler quietly.
Prints ``listening on ws://HOST:PORT/`` when ready; SIGTERM/SIGINT stop it.

    python bench/servers/websockets_abuse.py [--host H] [--port N] [--max-size BYTES] [--sleep-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


def make_handler(sleep_ms: float) -> Any:
    if sleep_ms <= 0:

        async def echo(ws: ServerConnection) -> None:
            with contextlib.suppress(ConnectionClosed):  # the benchmark's clients end with a reset
                async for message in ws:
                    await ws.send(message)

        return echo

    delay = sleep_ms / 1000.0

    async def slow(ws: ServerConnection) -> None:
        handled = 0
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                await asyncio.sleep(delay)
                handled += len(message)

    return slow


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    kwargs: dict[str, Any] = {"compression": None}
    if args.max_size is not None:
        kwargs["max_size"] = args.max_size
    async with serve(make_handler(args.sleep_ms), args.host, args.port, backlog=1024, **kwargs) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on ws://{args.host}:{port}/", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-size", type=int, default=None, help="bytes (default: the library's, 1 MiB)")
    parser.add_argument("--sleep-ms", type=float, default=0.0, help="slow consumer: sleep per message, no reply")
    asyncio.run(main(parser.parse_args()))
