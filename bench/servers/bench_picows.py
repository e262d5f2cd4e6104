"""The bench protocol (issue 4) on picows, for bench_broadcast.py.

Every connection joins the room (a set of transports); a text message whose first character is ``B`` is sent to
every member, the sender included, by a loop calling ``transport.send`` on each; any other data frame is echoed
with its type. picows hands over frames, not messages: a fragmented message is echoed frame by frame and never
broadcast (the bench client sends single-frame messages). Pings are answered by picows itself (auto pong); no
keepalive pings are sent. Runs on uvloop (picows' recommended loop; ``--asyncio`` for asyncio's own). Prints
``listening on ws://HOST:PORT/`` when ready; SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

ROOM: set[WSTransport] = set()


def raise_nofile_limit() -> None:
    """10,000 members need more descriptors than the usual soft limit: take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Member(WSListener):
    def on_ws_connected(self, transport: WSTransport) -> None:
        ROOM.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        ROOM.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT and frame.fin:
            payload = frame.get_payload_as_bytes()
            if payload[:1] == b"B":
                for member in ROOM:
                    member.send(WSMsgType.TEXT, payload)
            else:
                transport.send(WSMsgType.TEXT, payload)
        elif kind in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(kind, frame.get_payload_as_bytes(), frame.fin)
        elif kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def new_member(request: WSUpgradeRequest) -> Member:
    return Member()


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    server = await ws_create_server(new_member, args.host, args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on ws://{args.host}:{port}/", flush=True)
    try:
        await stop
    finally:
        server.close()
        for transport in list(ROOM):
            transport.disconnect()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--asyncio", action="store_true", help="run on asyncio's own loop instead of uvloop")
    arguments = parser.parse_args()
    raise_nofile_limit()
    if arguments.asyncio:
        asyncio.run(main(arguments))
    else:
        import uvloop

        uvloop.run(main(arguments))
