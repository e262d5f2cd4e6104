"""``python -m snow_rt_py serve ...`` (also installed as ``snow-ws``)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from snow_rt_py import __version__
from snow_rt_py.api import serve
from snow_rt_py.apps import APPS
from snow_rt_py.runtime.errors import ServerStartError
from snow_rt_py.runtime.options import DEFAULT_MAX_MESSAGE_SIZE, ServerOptions
from snow_rt_py.runtime.server import Server

PROG = "snow-ws"
"""The one program name every error line starts with (``snow-ws: error: ...``), whichever subcommand failed."""


class UsageError(Exception):
    """A bad command line: the message names the option and says what is wrong with it (one line)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line, ``snow-ws: error: --OPTION: what is wrong``, not the usage and then
    the error under the subcommand's name: ``error()`` raises :class:`UsageError` for :func:`main` to print."""

    def error(self, message: str) -> NoReturn:
        named = re.fullmatch(r"argument ([^:]+): (.*)", message, re.DOTALL)
        if named is None:
            raise UsageError(message)
        what = "needs a value" if named.group(2) == "expected one argument" else named.group(2)
        raise UsageError(f"{named.group(1)}: {what}")


def _integer(low: int, high: int | None, what: str) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (None: no upper bound), else "TEXT is not WHAT"."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    return parse


def _number(what: str, low: float, high: float = math.inf, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a number from ``low`` (excluded if ``above``) to ``high``, else "TEXT is not WHAT"."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not (low < value if above else low <= value) or value > high:
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    return parse


def _choice(*names: str) -> Callable[[str], str]:
    """An argparse type: one of ``names``, else "TEXT is not A, B or C" (the same words in every Python)."""
    what = f"{', '.join(names[:-1])} or {names[-1]}"

    def parse(text: str) -> str:
        if text not in names:
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return text

    return parse


def _log_level(text: str) -> str:
    if text.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise argparse.ArgumentTypeError(f"{text} is not debug, info, warning, error or critical")
    return text.upper()


def _path(text: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text} is not a path starting with /")
    return text


_PORT = _integer(0, 65535, "a port number (0-65535)")
_COUNT = _integer(0, None, "an integer >= 0")
_BYTES = _integer(1, None, "a number of bytes >= 1")
_SECONDS = _number("a number of seconds >= 0", 0)
_POSITIVE_SECONDS = _number("a number of seconds > 0", 0, above=True)


class _ConnectionId(logging.Filter):
    """Gives every record a ``conn_id`` (``-`` when it is not about one connection), for the format below."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "conn_id"):
            record.conn_id = "-"
        return True


def configure_logging(level: str | int) -> None:
    """The CLI's log format: time, level, logger, connection id, message (on stderr)."""
    handler = logging.StreamHandler()
    handler.addFilter(_ConnectionId())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [conn %(conn_id)s]: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def min_level(level: str, at_most: str) -> int:
    """The more verbose of two level names (the access log needs INFO)."""
    levels: list[int] = [logging.getLevelName(name.upper()) for name in (level, at_most)]
    return min(levels)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = _Parser(prog=PROG, description="Snow WebSocket runtime server")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("config", help="print what a C build needs: snow-ws config --cflags --libs (see --help)")
    sub.add_parser("client", help="connect to a WebSocket server: snow-ws client URL [--echo] (see --help)")
    s = sub.add_parser("serve", help="run a WebSocket server")
    s.add_argument(
        "--app", type=_choice(*APPS), metavar="|".join(APPS), default="echo", help="handler to serve (default: echo)"
    )
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    s.add_argument("--port", type=_PORT, default=8765, help="TCP port; 0 picks a free one (default: 8765)")
    s.add_argument(
        "--max-message-size",
        type=_BYTES,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        help="largest message in bytes; bigger ones are closed with 1009 (default: 16 MiB)",
    )
    s.add_argument("--tls-cert", help="PEM certificate chain: serve wss:// (needs --tls-key)")
    s.add_argument("--tls-key", help="PEM private key for --tls-cert")
    s.add_argument(
        "--ping-interval",
        type=_SECONDS,
        default=30.0,
        help="seconds between server pings, 0 disables the heartbeat (default: 30)",
    )
    s.add_argument(
        "--pong-timeout",
        type=_POSITIVE_SECONDS,
        default=10.0,
        help="seconds (> 0) a pong has to arrive before close 1011 (default: 10)",
    )
    s.add_argument(
        "--workers",
        type=_COUNT,
        default=0,
        help="0: handlers run on the event loop; N: on N worker threads (default: 0)",
    )
    s.add_argument(
        "--max-queue-bytes",
        type=_integer(1024, None, "a number of bytes >= 1024"),
        default=1024 * 1024,
        help="bound of each connection's outbound queue (default: 1 MiB)",
    )
    s.add_argument(
        "--slow-consumer",
        type=_choice("close", "drop"),
        metavar="close|drop",
        default="close",
        help="full queue: close the member with 1008 (default) or drop the message for it",
    )
    s.add_argument(
        "--compression",
        type=_choice("shared", "dedicated", "off"),
        metavar="shared|dedicated|off",
        default="shared",
        help="permessage-deflate when a client offers it: shared (default: no per-connection zlib state), "
        "dedicated (a context per connection, within --compression-memory-budget) or off",
    )
    s.add_argument(
        "--compression-min-size",
        type=_COUNT,
        default=128,
        help="messages shorter than this (bytes) are sent uncompressed (default: 128)",
    )
    s.add_argument(
        "--compression-window-bits",
        type=_integer(8, 15, "a window size in bits (8-15)"),
        default=12,
        help="dedicated: compressor window, 8-15 (default: 12)",
    )
    s.add_argument(
        "--compression-mem-level",
        type=_integer(1, 9, "a zlib memLevel (1-9)"),
        default=5,
        help="dedicated: zlib memLevel, 1-9 (default: 5)",
    )
    s.add_argument(
        "--compression-memory-budget",
        type=_COUNT,
        default=64 * 1024 * 1024,
        help="dedicated: bytes of zlib state all connections may hold; beyond, shared mode (default: 64 MiB)",
    )
    s.add_argument("--static-dir", help="serve this directory's files to plain HTTP GETs and HEADs (e.g. a web page)")
    s.add_argument("--static-index", default="index.html", help="file served at / from --static-dir")
    s.add_argument(
        "--no-tune-malloc",
        action="store_true",
        help="leave glibc's malloc thresholds alone (by default they are raised for large messages)",
    )
    s.add_argument(
        "--allowed-origin",
        action="append",
        dest="allowed_origins",
        metavar="ORIGIN",
        help="allow pages of this origin (repeat; https://*.example.com for subdomains); others get 403. "
        "Default: no Origin check",
    )
    s.add_argument("--require-origin", action="store_true", help="refuse (403) requests without an Origin header")
    s.add_argument(
        "--subprotocol",
        action="append",
        dest="subprotocols",
        default=[],
        metavar="NAME",
        help="a subprotocol the server speaks (repeat, in order of preference)",
    )
    s.add_argument(
        "--require-subprotocol", action="store_true", help="refuse (400) clients offering none of --subprotocol"
    )
    s.add_argument("--max-connections", type=_COUNT, default=0, help="open connections cap, 0 = none (503 over it)")
    s.add_argument("--max-connections-per-ip", type=_COUNT, default=0, help="per client IP cap, 0 = none (503)")
    s.add_argument(
        "--handshake-rate",
        type=_number("a number of handshakes per second >= 0", 0),
        default=0.0,
        help="handshakes per second per client IP, 0 = no limit (429)",
    )
    s.add_argument(
        "--handshake-burst",
        type=_integer(1, None, "an integer >= 1"),
        default=10,
        help="handshakes at once per IP (default: 10)",
    )
    s.add_argument(
        "--handshake-timeout", type=_POSITIVE_SECONDS, default=10.0, help="seconds to complete a handshake (408)"
    )
    s.add_argument(
        "--drain-window", type=_SECONDS, default=2.0, help="SIGTERM: spread the 1001 closes over S seconds (2)"
    )
    s.add_argument(
        "--drain-timeout", type=_POSITIVE_SECONDS, default=10.0, help="SIGTERM: abort what is left after S seconds"
    )
    s.add_argument("--metrics-path", type=_path, help="serve OpenMetrics at this path on the same port (e.g. /metrics)")
    s.add_argument("--metrics-port", type=_PORT, help="serve OpenMetrics on this separate port")
    s.add_argument("--access-log", action="store_true", help="log one INFO line per connection when it ends")
    s.add_argument(
        "--cluster",
        metavar="URL",
        help="redis://HOST:PORT/DB: rooms and presence span every server started with this URL (default: off)",
    )
    s.add_argument(
        "--cluster-presence-ttl",
        type=_number("a number of seconds from 0.2 to 86400", 0.2, 86400),
        default=10.0,
        help="seconds after which a dead node's members leave presence (default: 10)",
    )
    s.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT (several processes, one port)")
    s.add_argument(
        "--processes",
        type=_integer(1, None, "a number of processes >= 1"),
        default=1,
        help="N server processes on the port (SO_REUSEPORT), supervised by this one (default: 1)",
    )
    s.add_argument("--log-level", type=_log_level, default="WARNING", help="logging level (default: WARNING)")
    return parser


ROOM_APPS = frozenset({"chat", "bench"})
"""The apps that use rooms: split over several processes they need a cluster."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["config"]:  # `snow-ws config --cflags ...`: what a C build needs (config_cmd.py)
        from snow_rt_py import config_cmd

        return config_cmd.main(raw[1:])
    if raw[:1] == ["client"]:  # `snow-ws client URL`: a WebSocket client (client_cmd.py)
        from snow_rt_py import client_cmd

        return client_cmd.main(raw[1:])
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(raw)
        if extra:
            what = "unknown option" if extra[0].startswith("-") else "unexpected argument"
            raise UsageError(f"{extra[0]}: {what} (see {PROG} {args.command} --help)")
    except UsageError as exc:
        return _error(str(exc), 2)
    configure_logging(args.log_level if not args.access_log else min_level(args.log_level, "INFO"))
    options = ServerOptions(
        host=args.host,
        port=args.port,
        max_message_size=args.max_message_size,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        ping_interval=args.ping_interval or None,
        pong_timeout=args.pong_timeout,
        workers=args.workers,
        max_queue_bytes=args.max_queue_bytes,
        slow_consumer=args.slow_consumer,
        static_dir=args.static_dir,
        static_index=args.static_index,
        tune_malloc=not args.no_tune_malloc,
        allowed_origins=args.allowed_origins,
        require_origin=args.require_origin,
        subprotocols=args.subprotocols,
        require_subprotocol=args.require_subprotocol,
        max_connections=args.max_connections,
        max_connections_per_ip=args.max_connections_per_ip,
        handshake_rate=args.handshake_rate,
        handshake_burst=args.handshake_burst,
        handshake_timeout=args.handshake_timeout,
        drain_window=args.drain_window,
        drain_timeout=args.drain_timeout,
        metrics_path=args.metrics_path,
        metrics_port=args.metrics_port,
        access_log=args.access_log,
        reuse_port=args.reuse_port,
        cluster_url=args.cluster,
        cluster_presence_ttl=args.cluster_presence_ttl,
        compression=args.compression,
        compression_min_size=args.compression_min_size,
        compression_window_bits=args.compression_window_bits,
        compression_mem_level=args.compression_mem_level,
        compression_memory_budget=args.compression_memory_budget,
    )
    try:
        options.validate()
    except ValueError as exc:
        return _error(_cli_words(str(exc)), 2)
    if args.processes > 1:
        if args.app in ROOM_APPS and args.cluster is None:
            return _error(
                f"--processes {args.processes} with --app {args.app} needs --cluster URL "
                "(its rooms would otherwise be split between the processes)",
                2,
            )
        from snow_rt_py.supervisor import supervise

        scheme = "wss" if args.tls_cert else "ws"
        return supervise(raw, args.processes, args.host, args.port, scheme)

    def ready(server: Server) -> None:
        print(f"listening on {server.url}", flush=True)
        if server.metrics is not None and server.metrics.port is not None:
            print(f"metrics on http://{args.host}:{server.metrics.port}/metrics", flush=True)

    try:
        serve(APPS[args.app](), options, ready=ready)
    except ServerStartError as exc:
        return _error(_cli_words(str(exc)), 1)
    return 0


def _error(message: str, status: int) -> int:
    """Print the one error line every mistake gets, ``snow-ws: error: MESSAGE``; return the exit status."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


_FIELD_OPTIONS = {
    "cluster_url": "--cluster",
    "tune_malloc": "--no-tune-malloc",
    "allowed_origins": "--allowed-origin",
    "subprotocols": "--subprotocol",
}
"""The ServerOptions fields whose option is not named after them (the others are: ``tls_cert`` -> ``--tls-cert``)."""


def _cli_words(message: str) -> str:
    """A message of ServerOptions.validate() or of a start error, with each option's field name (``tls_cert``)
    replaced by its command-line option (``--tls-cert``)."""
    # Only names with an underscore (or renamed): "port" or "host" are also plain words of a message.
    fields = {f.name for f in dataclasses.fields(ServerOptions) if "_" in f.name} | set(_FIELD_OPTIONS)
    names = sorted(fields, key=len, reverse=True)

    def option(match: re.Match[str]) -> str:
        field = match.group(1)
        return _FIELD_OPTIONS.get(field, "--" + field.replace("_", "-"))

    return re.sub(rf"(?<![\w/.'-])({'|'.join(names)})(?![\w/.'-])", option, message)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
