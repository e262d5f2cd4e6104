"""``python -m snow_rt_py serve ...`` (also installed as ``snow-ws``)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from snow_rt_py import __version__
from snow_rt_py.api import serve
from snow_rt_py.apps import APPS, ChatApp
from snow_rt_py.runtime.errors import ServerStartError
from snow_rt_py.runtime.options import CHAT_HISTORY_MAX, Cli, ServerOptions, cli_options, show_default
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

VALUES: dict[str, Callable[[str], object]] = {
    "text": str,
    "port": _PORT,
    "count": _integer(0, None, "an integer >= 0"),
    "bytes": _integer(1, None, "a number of bytes >= 1"),
    "queue_bytes": _integer(1024, None, "a number of bytes >= 1024"),
    "seconds": _number("a number of seconds >= 0", 0),
    "positive_seconds": _number("a number of seconds > 0", 0, above=True),
    "ttl": _number("a number of seconds from 0.2 to 86400", 0.2, 86400),
    "rate": _number("a number of handshakes per second >= 0", 0),
    "burst": _integer(1, None, "an integer >= 1"),
    "window_bits": _integer(8, 15, "a window size in bits (8-15)"),
    "mem_level": _integer(1, 9, "a zlib memLevel (1-9)"),
    "path": _path,
}
"""The parsers of the values of the options in ServerOptions' table (``Cli.value``), each with its one error."""


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
    s.add_argument(
        "--history",
        type=_integer(0, CHAT_HISTORY_MAX, f"a number of messages from 0 to {CHAT_HISTORY_MAX}"),
        default=0,
        metavar="N",
        help="--app chat: every room keeps its last N messages; /join shows them, a page recovers what it missed "
        "(default: 0, no history)",
    )
    for spec, cli in cli_options():
        _add_option(s, spec.name, spec.default, cli)
    s.add_argument(
        "--processes",
        type=_integer(1, None, "a number of processes >= 1"),
        default=1,
        help="N server processes on the port (SO_REUSEPORT), supervised by this one (default: 1)",
    )
    s.add_argument("--log-level", type=_log_level, default="WARNING", help="logging level (default: WARNING)")
    return parser


def _add_option(parser: argparse.ArgumentParser, name: str, default: Any, cli: Cli) -> None:
    """The argument of the ServerOptions field ``name`` (with ``default``), as its table entry ``cli`` says."""
    if cli.default is not ...:
        default = cli.default
    help_text = cli.help.format(default=show_default(default))
    if cli.value == "flag":  # the option turns the field's default around
        action = "store_false" if default else "store_true"
        parser.add_argument(cli.flag, dest=name, action=action, default=default, help=help_text)
        return
    kind = _choice(*cli.choices) if cli.choices else VALUES[cli.value]
    metavar = "|".join(cli.choices) if cli.choices else cli.metavar
    if cli.repeat:
        default = None if default is None else list(default)  # appended to: a list of its own each time
    action = "append" if cli.repeat else "store"
    parser.add_argument(cli.flag, dest=name, type=kind, action=action, default=default, metavar=metavar, help=help_text)


def options_from(args: argparse.Namespace) -> ServerOptions:
    """The ServerOptions the parsed command line asks for (unchecked: see ``validate()``)."""
    values: dict[str, Any] = {}
    for spec, cli in cli_options():
        value = getattr(args, spec.name)
        values[spec.name] = None if cli.zero_is_none and value == 0 else value
    return ServerOptions(**values)


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
    options = options_from(args)
    try:
        options.validate()
    except ValueError as exc:
        return _error(_cli_words(str(exc)), 2)
    if args.processes > 1:
        if args.app in ROOM_APPS and args.cluster_url is None:
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
        serve(ChatApp(history=args.history) if args.app == "chat" else APPS[args.app](), options, ready=ready)
    except ServerStartError as exc:
        return _error(_cli_words(str(exc)), 1)
    return 0


def _error(message: str, status: int) -> int:
    """Print the one error line every mistake gets, ``snow-ws: error: MESSAGE``; return the exit status."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


_FIELD_OPTIONS = {spec.name: cli.flag for spec, cli in cli_options() if cli.flag != "--" + spec.name.replace("_", "-")}
"""The ServerOptions fields whose option is not named after them (``cluster_url``: ``--cluster``; the others are,
``tls_cert``: ``--tls-cert``)."""


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
