"""Echo server on the ``websockets`` library (asyncio implementation), the reference the benchmarks compare to.

Prints ``listening on ws://HOST:PORT/`` when ready, like ``python -m snow_rt_py serve``; SIGTERM/SIGINT stop it.
``--ping-interval`` unset keeps the library's own keepalive default (20 s); ``--uvloop`` runs it on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal

from websockets.asyncio.server import ServerConnection, serve


def raise_nofile_limit() -> None:
    """10,000 connections need more descriptors than the usual soft limit: take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    kwargs = {}
    if args.ping_interval is not None:
        kwargs["ping_interval"] = args.ping_interval or None
    async with serve(echo, args.host, args.port, backlog=1024, **kwargs) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on ws://{args.host}:{port}/", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=None, help="seconds; 0 disables (default: library's)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's own loop")
    arguments = parser.parse_args()
    raise_nofile_limit()
    if arguments.uvloop:
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
