"""Server options shared by the Python API, the CLI and the C ABI: the one table of every option and its default.

Each field of :class:`ServerOptions` has its default and, in its metadata (:func:`surfaces`), how it appears outside
Python: its command-line option (:class:`Cli`, from which ``snow-ws serve`` builds its argument, its default and the
default shown in its help) and its ``SnowWsOptions`` field (:class:`CField`, from which the C ABI converts a set
field; a 0 or NULL field is left out, so the default here applies). tests/test_defaults.py checks the defaults
include/snow_ws.h and README.md document against this table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from snow_rt_py.protocol.connection import DEFAULT_MAX_MESSAGE_SIZE  # snow-rt's MAX_PAYLOAD_SIZE
from snow_rt_py.protocol.handshake import DEFAULT_MAX_HANDSHAKE_SIZE
from snow_rt_py.protocol.negotiation import OriginPolicy, check_subprotocol_names

__all__ = [
    "DEFAULT_MAX_HANDSHAKE_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CField",
    "Cli",
    "ServerOptions",
    "c_fields",
    "cli_options",
    "show_default",
    "surfaces",
]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Cli:
    """How an option appears on ``snow-ws serve``'s command line.

    Attributes:
        flag: the option (``"--max-message-size"``); its value goes to the field of the same name.
        value: the name of the parser of its value in cli.py's ``VALUES`` (``"port"``, ``"bytes"``, ...);
            ``"choice"``: one of ``choices``; ``"flag"``: an option without a value, that turns the field's
            default (a bool) around.
        help: its ``--help`` line; ``{default}`` stands for the default, as :func:`show_default` writes it.
        choices: the only values it takes (the field's value is one of them).
        metavar: the name of its value in ``--help`` (default: argparse's).
        repeat: each use adds one item to a list (the field is a sequence).
        default: the command line's own default, where it differs from the field's (``--port``: 8765).
        zero_is_none: a value of 0 means None (``--ping-interval 0``: no heartbeat).
    """

    flag: str
    value: str
    help: str
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    repeat: bool = False
    default: Any = ...
    zero_is_none: bool = False


@dataclass(frozen=True, slots=True)
class CField:
    """How an option appears in the C ABI's ``SnowWsOptions`` (include/snow_ws.h).

    Attributes:
        name: the struct's field (``"ping_interval_ms"``).
        kind: what a set (nonzero, non-NULL) value becomes: ``"int"``, ``"float"``, ``"bool"``, ``"ms"``
            (milliseconds, given as seconds), ``"text"`` (a UTF-8 string), ``"path"`` (a file name), ``"list"``
            (comma-separated), ``"enum"`` (one of the header's constants, named after the field).
        negative: for ``"ms"``: what a negative value means (``()``: nothing special, the number is passed on, and
            ServerOptions.validate says what is wrong with it).
    """

    name: str
    kind: str = "int"
    negative: Any = ()


def surfaces(*, cli: Cli | None = None, c: CField | None = None) -> dict[str, Any]:
    """The metadata of a field of :class:`ServerOptions`: its CLI option and its C field, if it has them."""
    return {"cli": cli, "c": c}


def show_default(value: object) -> str:
    """A default as --help, README.md and include/snow_ws.h write it: ``16 MiB``, ``30``, ``0.5``, ``close``."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int) and value >= MIB and value % MIB == 0:
        return f"{value // MIB} MiB"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


CHAT_HISTORY_MAX = 100_000
"""The chat app's ``--history N`` at most (its own option, not a server's)."""


@dataclass(slots=True)
class ServerOptions:
    """How a server listens and treats its connections.

    Attributes:
        host: address to bind ("127.0.0.1", "0.0.0.0", "::"...).
        port: TCP port; 0 binds an ephemeral port (read it back from ``Server.port``).
        max_message_size: largest message (and frame) accepted, in bytes; bigger ones fail with close 1009.
        max_handshake_size: largest request line + headers, in bytes; bigger ones get HTTP 431.
        handshake_timeout: seconds a client has to complete the opening handshake (TLS included).
        close_timeout: seconds we wait for the peer's half of the close handshake before dropping TCP.
        ping_interval: seconds between server pings; 0 or None disables the heartbeat.
        pong_timeout: seconds a pong echoing the latest ping has to arrive, else close 1011.
        workers: 0 runs handlers inline on the event loop (fast path, handlers must not block); N >= 1 runs
            each connection's actor on a pool of N worker threads.
        tls_cert: PEM certificate chain file for wss:// (with ``tls_key``).
        tls_key: PEM private key file for wss://.
        max_queue_bytes: bound of a connection's outbound queue (bytes not yet accepted by the kernel). A frame
            always fits an empty queue; beyond the bound the slow-consumer policy applies.
        max_inbox_bytes: bound of a connection's received messages not yet handled by its handler (with workers, a
            slow handler): over it the socket is not read (TCP holds the rest) until the handler is down to a
            quarter of it. A message of any allowed size is always taken.
        slow_consumer: what happens to a member whose queue is full: "close" (default) drops the message and closes
            the connection with 1008 "slow consumer"; "drop" drops the message and keeps the connection.
        static_dir: answer plain HTTP GETs and HEADs (no Upgrade header) with the files of this directory; None
            answers them with 400.
        static_index: the file ``GET /`` serves from ``static_dir``.
        tune_malloc: raise glibc's mmap/trim thresholds (process-wide, once) so large message buffers are reused
            instead of faulting in fresh pages for every message (see runtime/allocator.py).
        reuse_port: set SO_REUSEPORT on the listening socket, so several processes can listen on one port (the
            kernel spreads new connections over them).
        cluster_url: ``redis://HOST:PORT/DB``: rooms and presence span every process started with the same URL
            (runtime/backplane/redis_backplane.py; needs ``snow_rt_py[cluster]``). None (default): rooms are in-process.
        cluster_presence_ttl: seconds after which the members of a node that died disappear from the others'
            presence (its liveness key lives 3/4 of it, refreshed every ttl/4; the others check it every ttl/8).
        backlog: listen() backlog.
        allowed_origins: None (default) checks no ``Origin``; else the origins whose pages may connect: exact
            (``"https://app.example.com"``, ``"http://127.0.0.1:8000"``) or every subdomain
            (``"https://*.example.com"``). Any other ``Origin`` gets 403 before any callback runs.
        require_origin: refuse (403) a request without an ``Origin`` header (browsers always send one; other clients
            usually do not). Default False: such requests pass the Origin check.
        subprotocols: the subprotocols the server speaks, in its order of preference; the first one the client
            offered is selected (``conn.subprotocol``), never one it did not offer.
        require_subprotocol: refuse (400, with the reason) a client that offers none of ``subprotocols``.
        max_connections: at most this many open WebSocket connections (0: no cap); over it a handshake gets 503 with
            ``Retry-After`` and its socket is closed; open connections are never affected.
        max_connections_per_ip: the same cap per client IP address (0: no cap).
        handshake_rate: handshakes per second allowed per client IP (a token bucket refilled at this rate; 0: no
            limit); over it a handshake gets 429 with ``Retry-After``.
        handshake_burst: the bucket's size: handshakes an IP may make at once after a quiet spell.
        retry_after: seconds announced in ``Retry-After`` with a 503 (the 429's is when the next token is due).
        drain_window: seconds over which :meth:`drain` spreads its 1001 closes (batches), so clients do not all
            reconnect in the same millisecond.
        drain_timeout: seconds the CLI's SIGTERM drain waits in all before aborting what remains.
        metrics_path: serve OpenMetrics (Prometheus text) at this path to plain HTTP GETs on the server's own port
            (e.g. ``"/metrics"``); None: off.
        metrics_port: serve the same on a separate port of ``host`` (0 picks a free one); None: off.
        access_log: log one line per connection when it ends (logger ``snow_rt_py.access``, level INFO): peer,
            path, duration, bytes each way, close code.
        compression: permessage-deflate (RFC 7692) when a client offers it: "shared" (default: no zlib state
            outlives a message, a broadcast is compressed once), "dedicated" (a compression context per
            connection, within ``compression_memory_budget``), or "off". See runtime/compression.py.
        compression_min_size: messages shorter than this (bytes) are sent uncompressed.
        compression_window_bits: "dedicated": the window (8-15) of a connection's compressor, and of the client's
            when it lets us choose (``client_max_window_bits``).
        compression_mem_level: "dedicated": zlib's memLevel (1-9) of a connection's compressor.
        compression_memory_budget: "dedicated": bytes of zlib state all dedicated connections of the runtime may
            hold together; a connection that would go over it is served in "shared" mode.
    """

    host: str = field(
        default="127.0.0.1",
        metadata=surfaces(cli=Cli("--host", "text", "address to bind (default: {default})"), c=CField("host", "text")),
    )
    port: int = field(
        default=0,
        metadata=surfaces(
            cli=Cli("--port", "port", "TCP port; 0 picks a free one (default: {default})", default=8765),
            c=CField("port"),
        ),
    )
    max_message_size: int = field(
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metadata=surfaces(
            cli=Cli(
                "--max-message-size",
                "bytes",
                "largest message in bytes; bigger ones are closed with 1009 (default: {default})",
            ),
            c=CField("max_message_size"),
        ),
    )
    max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE
    handshake_timeout: float = field(
        default=10.0,
        metadata=surfaces(
            cli=Cli(
                "--handshake-timeout", "positive_seconds", "seconds to complete a handshake (408; default: {default})"
            ),
            c=CField("handshake_timeout_ms", "ms"),
        ),
    )
    close_timeout: float = 5.0
    ping_interval: float | None = field(
        default=30.0,
        metadata=surfaces(
            cli=Cli(
                "--ping-interval",
                "seconds",
                "seconds between server pings, 0 disables the heartbeat (default: {default})",
                zero_is_none=True,
            ),
            c=CField("ping_interval_ms", "ms", negative=None),
        ),
    )
    pong_timeout: float = field(
        default=10.0,
        metadata=surfaces(
            cli=Cli(
                "--pong-timeout",
                "positive_seconds",
                "seconds (> 0) a pong has to arrive before close 1011 (default: {default})",
            ),
            c=CField("pong_timeout_ms", "ms"),
        ),
    )
    workers: int = field(
        default=0,
        metadata=surfaces(
            cli=Cli(
                "--workers", "count", "0: handlers run on the event loop; N: on N worker threads (default: {default})"
            ),
            c=CField("workers"),
        ),
    )
    tls_cert: str | Path | None = field(
        default=None,
        metadata=surfaces(
            cli=Cli("--tls-cert", "text", "PEM certificate chain: serve wss:// (needs --tls-key)"),
            c=CField("tls_cert_path", "path"),
        ),
    )
    tls_key: str | Path | None = field(
        default=None,
        metadata=surfaces(
            cli=Cli("--tls-key", "text", "PEM private key for --tls-cert"), c=CField("tls_key_path", "path")
        ),
    )
    max_queue_bytes: int = field(
        default=MIB,
        metadata=surfaces(
            cli=Cli(
                "--max-queue-bytes", "queue_bytes", "bound of each connection's outbound queue (default: {default})"
            ),
            c=CField("max_queue_bytes"),
        ),
    )
    max_inbox_bytes: int = MIB
    slow_consumer: str = field(
        default="close",
        metadata=surfaces(
            cli=Cli(
                "--slow-consumer",
                "choice",
                "full queue: close the member with 1008, or drop the message for it (default: {default})",
                choices=("close", "drop"),
            ),
            c=CField("slow_consumer", "enum"),
        ),
    )
    static_dir: str | Path | None = field(
        default=None,
        metadata=surfaces(
            cli=Cli(
                "--static-dir", "text", "serve this directory's files to plain HTTP GETs and HEADs (e.g. a web page)"
            ),
            c=CField("static_dir", "path"),
        ),
    )
    static_index: str = field(
        default="index.html",
        metadata=surfaces(
            cli=Cli("--static-index", "text", "file served at / from --static-dir (default: {default})"),
            c=CField("static_index", "path"),
        ),
    )
    tune_malloc: bool = field(
        default=True,
        metadata=surfaces(
            cli=Cli(
                "--no-tune-malloc",
                "flag",
                "leave glibc's malloc thresholds alone (by default they are raised for large messages)",
            )
        ),
    )
    reuse_port: bool = field(
        default=False,
        metadata=surfaces(
            cli=Cli("--reuse-port", "flag", "bind with SO_REUSEPORT (several processes, one port)"),
            c=CField("reuse_port", "bool"),
        ),
    )
    backlog: int = 1024
    allowed_origins: Sequence[str] | None = field(
        default=None,
        metadata=surfaces(
            cli=Cli(
                "--allowed-origin",
                "text",
                "allow pages of this origin (repeat; https://*.example.com for subdomains); others get 403. "
                "Default: no Origin check",
                metavar="ORIGIN",
                repeat=True,
            ),
            c=CField("allowed_origins", "list"),
        ),
    )
    require_origin: bool = field(
        default=False,
        metadata=surfaces(
            cli=Cli("--require-origin", "flag", "refuse (403) requests without an Origin header"),
            c=CField("require_origin", "bool"),
        ),
    )
    subprotocols: Sequence[str] = field(
        default=(),
        metadata=surfaces(
            cli=Cli(
                "--subprotocol",
                "text",
                "a subprotocol the server speaks (repeat, in order of preference)",
                metavar="NAME",
                repeat=True,
            ),
            c=CField("subprotocols", "list"),
        ),
    )
    require_subprotocol: bool = field(
        default=False,
        metadata=surfaces(
            cli=Cli("--require-subprotocol", "flag", "refuse (400) clients offering none of --subprotocol"),
            c=CField("require_subprotocol", "bool"),
        ),
    )
    max_connections: int = field(
        default=0,
        metadata=surfaces(
            cli=Cli("--max-connections", "count", "open connections cap, 0 = none (503 over it; default: {default})"),
            c=CField("max_connections"),
        ),
    )
    max_connections_per_ip: int = field(
        default=0,
        metadata=surfaces(
            cli=Cli("--max-connections-per-ip", "count", "per client IP cap, 0 = none (503; default: {default})"),
            c=CField("max_connections_per_ip"),
        ),
    )
    handshake_rate: float = field(
        default=0.0,
        metadata=surfaces(
            cli=Cli(
                "--handshake-rate",
                "rate",
                "handshakes per second per client IP, 0 = no limit (429; default: {default})",
            ),
            c=CField("handshake_rate", "float"),
        ),
    )
    handshake_burst: int = field(
        default=10,
        metadata=surfaces(
            cli=Cli("--handshake-burst", "burst", "handshakes at once per IP (default: {default})"),
            c=CField("handshake_burst"),
        ),
    )
    retry_after: int = 1
    drain_window: float = field(
        default=2.0,
        metadata=surfaces(
            cli=Cli("--drain-window", "seconds", "SIGTERM: spread the 1001 closes over S seconds (default: {default})"),
            c=CField("drain_window_ms", "ms", negative=0.0),
        ),
    )
    drain_timeout: float = field(
        default=10.0,
        metadata=surfaces(
            cli=Cli(
                "--drain-timeout",
                "positive_seconds",
                "SIGTERM: abort what is left after S seconds (default: {default})",
            )
        ),
    )
    metrics_path: str | None = field(
        default=None,
        metadata=surfaces(
            cli=Cli("--metrics-path", "path", "serve OpenMetrics at this path on the same port (e.g. /metrics)"),
            c=CField("metrics_path", "text"),
        ),
    )
    metrics_port: int | None = field(
        default=None,
        metadata=surfaces(
            cli=Cli("--metrics-port", "port", "serve OpenMetrics on this separate port"), c=CField("metrics_port")
        ),
    )
    access_log: bool = field(
        default=False,
        metadata=surfaces(
            cli=Cli("--access-log", "flag", "log one INFO line per connection when it ends"),
            c=CField("access_log", "bool"),
        ),
    )
    cluster_url: str | None = field(
        default=None,
        metadata=surfaces(
            cli=Cli(
                "--cluster",
                "text",
                "redis://HOST:PORT/DB: rooms and presence span every server started with this URL (default: off)",
                metavar="URL",
            ),
            c=CField("cluster_url", "text"),
        ),
    )
    cluster_presence_ttl: float = field(
        default=10.0,
        metadata=surfaces(
            cli=Cli(
                "--cluster-presence-ttl",
                "ttl",
                "seconds after which a dead node's members leave presence (default: {default})",
            ),
            c=CField("cluster_presence_ttl_ms", "ms"),
        ),
    )
    compression: str = field(
        default="shared",
        metadata=surfaces(
            cli=Cli(
                "--compression",
                "choice",
                "permessage-deflate when a client offers it: shared (no per-connection zlib state), dedicated "
                "(a context per connection, within --compression-memory-budget) or off (default: {default})",
                choices=("shared", "dedicated", "off"),
            ),
            c=CField("compression", "enum"),
        ),
    )
    compression_min_size: int = field(
        default=128,
        metadata=surfaces(
            cli=Cli(
                "--compression-min-size",
                "count",
                "messages shorter than this (bytes) are sent uncompressed (default: {default})",
            ),
            c=CField("compression_min_size"),
        ),
    )
    compression_window_bits: int = field(
        default=12,
        metadata=surfaces(
            cli=Cli(
                "--compression-window-bits", "window_bits", "dedicated: compressor window, 8-15 (default: {default})"
            ),
            c=CField("compression_window_bits"),
        ),
    )
    compression_mem_level: int = field(
        default=5,
        metadata=surfaces(
            cli=Cli("--compression-mem-level", "mem_level", "dedicated: zlib memLevel, 1-9 (default: {default})"),
            c=CField("compression_mem_level"),
        ),
    )
    compression_memory_budget: int = field(
        default=64 * MIB,
        metadata=surfaces(
            cli=Cli(
                "--compression-memory-budget",
                "count",
                "dedicated: bytes of zlib state all connections may hold; beyond, shared mode (default: {default})",
            ),
            c=CField("compression_memory_budget"),
        ),
    )

    def validate(self) -> None:
        """Raise ``ValueError`` with a clear message for an impossible combination."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        if self.max_message_size < 1:
            raise ValueError(f"max_message_size must be positive, got {self.max_message_size}")
        if self.max_handshake_size < 256:
            raise ValueError(f"max_handshake_size must be at least 256, got {self.max_handshake_size}")
        if self.handshake_timeout <= 0 or self.close_timeout <= 0:
            raise ValueError("handshake_timeout and close_timeout must be positive")
        if self.ping_interval is not None and self.ping_interval < 0:
            raise ValueError(f"ping_interval must be >= 0 (0 disables), got {self.ping_interval}")
        if self.pong_timeout <= 0:
            raise ValueError(f"pong_timeout must be positive, got {self.pong_timeout}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.max_queue_bytes < 1024:
            raise ValueError(f"max_queue_bytes must be at least 1024, got {self.max_queue_bytes}")
        if self.max_inbox_bytes < 1024:
            raise ValueError(f"max_inbox_bytes must be at least 1024, got {self.max_inbox_bytes}")
        if self.static_dir is not None and not Path(self.static_dir).is_dir():
            raise ValueError(f"static_dir {str(self.static_dir)!r} is not a directory")
        if self.cluster_url is not None and (not isinstance(self.cluster_url, str) or "://" not in self.cluster_url):
            raise ValueError(f"cluster_url must look like redis://HOST:PORT/DB, got {self.cluster_url!r}")
        if not 0.2 <= self.cluster_presence_ttl < 86400:
            raise ValueError(f"cluster_presence_ttl must be 0.2 to 86400 seconds, got {self.cluster_presence_ttl}")
        if self.slow_consumer not in ("close", "drop"):
            raise ValueError(f"slow_consumer must be 'close' or 'drop', got {self.slow_consumer!r}")
        if isinstance(self.allowed_origins, str):
            raise ValueError("allowed_origins must be a list of origins, not one string")
        self.origin_policy()  # raises for an entry that is not an origin
        if isinstance(self.subprotocols, str):
            raise ValueError("subprotocols must be a list of names, not one string")
        check_subprotocol_names(self.subprotocols)
        if self.require_subprotocol and not self.subprotocols:
            raise ValueError("require_subprotocol needs subprotocols")
        for name in ("max_connections", "max_connections_per_ip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: no cap), got {getattr(self, name)}")
        if not 0 <= self.handshake_rate < math.inf:  # also refuses nan
            raise ValueError(f"handshake_rate must be >= 0 (0: no limit), got {self.handshake_rate}")
        if self.handshake_burst < 1:
            raise ValueError(f"handshake_burst must be at least 1, got {self.handshake_burst}")
        if not 1 <= self.retry_after <= 86400:
            raise ValueError(f"retry_after must be 1 to 86400 seconds, got {self.retry_after}")
        if not 0 <= self.drain_window < math.inf:
            raise ValueError(f"drain_window must be >= 0 seconds, got {self.drain_window}")
        if not 0 < self.drain_timeout < math.inf:
            raise ValueError(f"drain_timeout must be > 0 seconds, got {self.drain_timeout}")
        if self.metrics_path is not None and not (self.metrics_path.startswith("/") and " " not in self.metrics_path):
            raise ValueError(f"metrics_path must start with '/', got {self.metrics_path!r}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be between 0 and 65535, got {self.metrics_port}")

        if self.compression not in ("shared", "dedicated", "off"):
            raise ValueError(f"compression must be 'shared', 'dedicated' or 'off', got {self.compression!r}")
        if self.compression_min_size < 0:
            raise ValueError(f"compression_min_size must be >= 0, got {self.compression_min_size}")
        if not 8 <= self.compression_window_bits <= 15:
            raise ValueError(f"compression_window_bits must be 8 to 15, got {self.compression_window_bits}")
        if not 1 <= self.compression_mem_level <= 9:
            raise ValueError(f"compression_mem_level must be 1 to 9, got {self.compression_mem_level}")
        if self.compression_memory_budget < 0:
            raise ValueError(f"compression_memory_budget must be >= 0, got {self.compression_memory_budget}")

    def origin_policy(self) -> OriginPolicy | None:
        """The compiled Origin rule, or None when no check is asked for."""
        if self.allowed_origins is None and not self.require_origin:
            return None
        return OriginPolicy(self.allowed_origins, self.require_origin)

    @property
    def heartbeat_enabled(self) -> bool:
        """True when the server pings its clients."""
        return bool(self.ping_interval)


def _table(kind: str) -> list[tuple[Field[Any], Any]]:
    return [(f, f.metadata[kind]) for f in fields(ServerOptions) if f.metadata.get(kind) is not None]


def cli_options() -> list[tuple[Field[Any], Cli]]:
    """The fields that have a command-line option, with it, in the order of the table."""
    return _table("cli")


def c_fields() -> list[tuple[Field[Any], CField]]:
    """The fields that have a ``SnowWsOptions`` field, with it, in the order of the table."""
    return _table("c")
