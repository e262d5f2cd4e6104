"""Echo server on picows (issue 6), a peer for bench/run_all.py and bench_idle.py.

Every data frame is echoed with its opcode and FIN bit (picows hands over frames, not messages; the load generator
sends single-frame messages). picows answers pings itself; it sends no keepalive pings. With ``--tls-cert`` and
``--tls-key`` it serves wss:// (bench_churn.py). Runs on uvloop (picows' recommended loop; ``--asyncio`` for
asyncio's own). Prints ``listening on ws://HOST:PORT/`` (or wss://) when ready; SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import ssl

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(kind, frame.get_payload_as_bytes(), frame.fin)
        elif kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def new_listener(request: WSUpgradeRequest) -> Echo:
    return Echo()


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    ssl_ctx = None
    if args.tls_cert:  # wss:// (bench_churn.py): the certificate chain and key, PEM
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
    server = await ws_create_server(
        new_listener, args.host, args.port, backlog=1024, max_frame_size=args.max_frame_size, ssl=ssl_ctx
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {'wss' if ssl_ctx else 'ws'}://{args.host}:{port}/", flush=True)
    await stop
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-frame-size", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve wss:// (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--asyncio", action="store_true", help="asyncio's own loop instead of uvloop")
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if arguments.asyncio:
        asyncio.run(main(arguments))
    else:
        import uvloop

        uvloop.run(main(arguments))
