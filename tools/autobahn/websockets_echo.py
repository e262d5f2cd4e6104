"""The ``websockets`` library's client as an Autobahn echo client (the reference beside ours, client_mode.py).

websockets_echo.py URL              echo every message until the server closes
websockets_echo.py --read-one URL   print the first message (the fuzzing server's /getCaseCount)
"""

from __future__ import annotations

import contextlib
import sys

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def main(argv: list[str]) -> int:
    if argv[:1] == ["--read-one"]:
        with connect(argv[1], max_size=None, open_timeout=30) as ws, contextlib.suppress(ConnectionClosed):
            print(ws.recv(timeout=60))
        return 0
    with connect(argv[0], max_size=None, open_timeout=30, compression="deflate") as ws:
        try:
            for message in ws:
                ws.send(message)
        except ConnectionClosed:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
