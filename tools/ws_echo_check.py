"""Talk to an echo server as a client would (the websockets library): wait for its port (bounded), send a text and a
binary message, check each comes back unchanged. Exit 0, or 1 with one line saying what went wrong.

Usage: python tools/ws_echo_check.py PORT
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time

from websockets.asyncio.client import connect


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Wait until 127.0.0.1:port accepts TCP connections (the server prints nothing we could wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"ws_echo_check: nothing listens on 127.0.0.1:{port} after {timeout} s") from None
            time.sleep(0.05)  # polling a port: there is no event to wait for


async def check(port: int) -> None:
    """One connection: text and binary echoed back, then a normal close."""
    async with connect(f"ws://127.0.0.1:{port}/", open_timeout=10, close_timeout=5) as ws:
        for message in ("hello from websockets", b"\x00\x01\x02binary\xff"):
            await ws.send(message)
            got = await asyncio.wait_for(ws.recv(), 10)
            if got != message:
                raise SystemExit(f"ws_echo_check: sent {message!r}, got {got!r}")
    print(f"ws_echo_check: 127.0.0.1:{port} echoed text and binary")


def main() -> None:
    """Entry point."""
    port = int(sys.argv[1])
    wait_port(port)
    asyncio.run(check(port))


if __name__ == "__main__":
    main()
