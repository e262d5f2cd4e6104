"""The bench protocol (issue 4) on the ``websockets`` library (asyncio implementation), for bench_broadcast.py.

Every connection joins the room (a set of connections); a text message whose first character is ``B`` goes to
every member, the sender included, through ``websockets.broadcast()``; any other message is echoed with its type.
No compression unless ``--deflate`` (then websockets' own default: a context per connection), no keepalive
pings. Prints ``listening on ws://HOST:PORT/`` when ready; SIGTERM/SIGINT stop it.
``--uvloop`` runs it on uvloop instead of asyncio's own loop.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

ROOM: set[ServerConnection] = set()


def raise_nofile_limit() -> None:
    """10,000 members need more descriptors than the usual soft limit: take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def member(ws: ServerConnection) -> None:
    ROOM.add(ws)
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("B"):
                broadcast(ROOM, message)
            else:
                await ws.send(message)
    except ConnectionClosed:  # the bench client leaves without a close handshake: not an error here
        pass
    finally:
        ROOM.discard(ws)


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    compression = "deflate" if args.deflate else None
    async with serve(member, args.host, args.port, backlog=1024, compression=compression, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on ws://{args.host}:{port}/", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's own loop")
    parser.add_argument("--deflate", action="store_true", help="permessage-deflate on (the library's default settings)")
    arguments = parser.parse_args()
    raise_nofile_limit()
    if arguments.uvloop:
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
