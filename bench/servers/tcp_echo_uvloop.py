"""The ceiling: a raw TCP echo on uvloop with no WebSocket framing at all.

It answers the HTTP upgrade (so the load generator can connect as usual), then writes every chunk it reads back
unchanged, one write per read: no frame parsing, no unmasking, no UTF-8 check, no per-message Python call. The
client's frames come back masked, which ``loadgen -M`` accepts. Any WebSocket server must be slower than this; if
the load generator reaches this rate, it is not what limits the WebSocket figures.

Prints ``listening on ws://HOST:PORT/``; SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import resource
import signal
from typing import cast

import uvloop

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawEcho(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.upgraded:
            self.transport.write(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        key = b""
        for line in self.head[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.upgraded = True
        rest = self.head[end + 4 :]
        self.head = b""
        if rest:
            self.transport.write(rest)


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    server = await loop.create_server(RawEcho, args.host, args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on ws://{args.host}:{port}/", flush=True)
    await stop
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(main(arguments))
