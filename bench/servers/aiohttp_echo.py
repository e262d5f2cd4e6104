"""Echo server on aiohttp (issue 6), a peer for bench/run_all.py and bench_idle.py.

``web.WebSocketResponse`` with no heartbeat and no compression; text comes back as text, binary as binary. Runs
on uvloop (``--asyncio`` for asyncio's own loop). Prints ``listening on ws://HOST:PORT/`` when ready;
SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal

from aiohttp import WSMsgType, web


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=16 * 1024 * 1024)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"listening on ws://{args.host}:{port}/", flush=True)
    await stop
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--asyncio", action="store_true", help="asyncio's own loop instead of uvloop")
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if arguments.asyncio:
        asyncio.run(main(arguments))
    else:
        import uvloop

        uvloop.run(main(arguments))
