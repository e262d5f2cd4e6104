"""``snow-ws client URL``: an interactive WebSocket client, or an echo client (``--echo``).

Interactive: each line read from stdin is sent as a text message; each message received is printed on stdout (a
text message as it is, a binary one as ``<binary N bytes: HEX>``); end of input (Ctrl-D) closes with 1000 and
waits for the server's answer. When the server closes, ``connection closed: CODE REASON`` goes to stderr.

``--echo``: every message received is sent back as it came (text as text, binary as binary) until the server
closes; then the program exits 0 (what Autobahn|Testsuite's fuzzingserver drives, ``make autobahn``).

Exit status: 0 once a connection opened and ended; 1 when it could not be opened (one line
``snow-ws: error: cannot connect to URL: REASON``); 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Sequence
from typing import Any

from snow_rt_py.cli import PROG, UsageError, _choice, _error, _integer, _number, _Parser
from snow_rt_py.runtime.client import ConnectError, connect
from snow_rt_py.runtime.client_options import ClientOptions
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError, SnowError
from snow_rt_py.runtime.handler import Handler
from snow_rt_py.runtime.options import DEFAULT_MAX_MESSAGE_SIZE

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``snow-ws client`` (its --help is what the README's client table documents)."""
    p = _Parser(prog=f"{PROG} client", description="Connect to a WebSocket server (interactive, or --echo)")
    p.add_argument("url", help="ws://HOST[:PORT]/PATH or wss://...")
    p.add_argument("--echo", action="store_true", help="send every message back as it came, until the server closes")
    p.add_argument("--origin", default=None, help="the Origin header to send")
    p.add_argument(
        "--subprotocol",
        dest="subprotocols",
        action="append",
        default=[],
        metavar="NAME",
        help="offer this subprotocol (repeatable, in order of preference)",
    )
    p.add_argument(
        "--header",
        dest="headers",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra request header (repeatable)",
    )
    p.add_argument(
        "--ca-file", default=None, help="PEM file of the CA certificates to trust for wss:// (default: system)"
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the server's certificate or host name (UNSAFE: anyone on the path can read and change "
        "the traffic)",
    )
    p.add_argument(
        "--proxy",
        default=None,
        metavar="URL",
        help="HTTP proxy (CONNECT) http://HOST:PORT, or '' for none (default: https_proxy/http_proxy/no_proxy)",
    )
    p.add_argument(
        "--compression",
        type=_choice("off", "shared", "dedicated"),
        default="off",
        metavar="off|shared|dedicated",
        help="offer permessage-deflate: no context kept, or a context kept both ways (default: off)",
    )
    p.add_argument(
        "--ping-interval",
        type=_number("a number of seconds >= 0", 0),
        default=0.0,
        metavar="SECONDS",
        help="ping the server this often; no pong within 10 s closes with 1011 (default: 0, no pings)",
    )
    p.add_argument(
        "--max-message-size",
        type=_integer(1, None, "a positive number of bytes"),
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="BYTES",
        help=f"largest message accepted; bigger closes with 1009 (default: {DEFAULT_MAX_MESSAGE_SIZE})",
    )
    return p


class _Printer(Handler):
    """Interactive mode: print what arrives; say how the connection ended."""

    def __init__(self) -> None:
        self.end: tuple[int, str] | None = None

    def on_message(self, conn: Any, message: str | bytes) -> None:
        if isinstance(message, str):
            print(message, flush=True)
        else:
            print(f"<binary {len(message)} bytes: {message.hex()}>", flush=True)

    def on_close(self, conn: Any, code: int, reason: str) -> None:
        self.end = (code, reason)


class _Echo(_Printer):
    """--echo: every message back as it came."""

    def on_message(self, conn: Any, message: str | bytes) -> None:
        with contextlib.suppress(ConnectionClosedError):  # the server is closing: its last messages go unanswered
            conn.send(message)


def _headers(values: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header: {value!r} is not 'NAME: VALUE'")
        pairs.append((name.strip(), rest.strip()))
    return tuple(pairs)


def main(argv: Sequence[str]) -> int:
    """``snow-ws client ...``; returns the exit status."""
    try:
        args = build_parser().parse_args(list(argv))
        options = ClientOptions(
            origin=args.origin,
            subprotocols=tuple(args.subprotocols),
            headers=_headers(args.headers),
            ca_file=args.ca_file,
            verify=not args.insecure,
            proxy=args.proxy,
            compression=args.compression,
            ping_interval=args.ping_interval,
            max_message_size=args.max_message_size,
        )
    except UsageError as exc:
        return _error(str(exc), 2)
    handler = _Echo() if args.echo else _Printer()
    try:
        client = connect(args.url, handler, options=options)
    except InvalidArgumentError as exc:
        return _error(str(exc).replace("ca_file", "--ca-file"), 2)
    try:
        client.wait_open()
    except ConnectError as exc:
        client.wait_closed()
        return _error(f"cannot connect to {args.url}: {exc.reason}", 1)
    if not args.echo:
        threading.Thread(target=_forward_stdin, args=(client,), daemon=True, name="snow-ws-stdin").start()
    try:
        client.wait_closed()
    except KeyboardInterrupt:
        client.close(1001, "")
        client.wait_closed(options.close_timeout * 2 + 1)
    if not args.echo and handler.end is not None:
        code, reason = handler.end
        print(f"connection closed: {code} {reason}".rstrip(), file=sys.stderr, flush=True)
    return 0


def _forward_stdin(client: Any) -> None:
    """Each stdin line as a text message; end of input closes with 1000."""
    for line in sys.stdin:
        try:
            client.send(line.rstrip("\r\n"))
        except SnowError:
            return  # the connection ended: the main thread reports it
    client.close(1000, "")
