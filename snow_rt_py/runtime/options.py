"""Server options shared by the Python API, the CLI and the C ABI (one place for every default)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from snow_rt_py.protocol.negotiation import OriginPolicy, check_subprotocol_names

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024  # snow-rt's MAX_PAYLOAD_SIZE
DEFAULT_MAX_HANDSHAKE_SIZE = 16 * 1024


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

    host: str = "127.0.0.1"
    port: int = 0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE
    handshake_timeout: float = 10.0
    close_timeout: float = 5.0
    ping_interval: float | None = 30.0
    pong_timeout: float = 10.0
    workers: int = 0
    tls_cert: str | Path | None = None
    tls_key: str | Path | None = None
    max_queue_bytes: int = 1024 * 1024
    max_inbox_bytes: int = 1024 * 1024
    slow_consumer: str = "close"
    static_dir: str | Path | None = None
    static_index: str = "index.html"
    tune_malloc: bool = True
    reuse_port: bool = False
    backlog: int = 1024
    allowed_origins: Sequence[str] | None = None
    require_origin: bool = False
    subprotocols: Sequence[str] = ()
    require_subprotocol: bool = False
    max_connections: int = 0
    max_connections_per_ip: int = 0
    handshake_rate: float = 0.0
    handshake_burst: int = 10
    retry_after: int = 1
    drain_window: float = 2.0
    drain_timeout: float = 10.0
    metrics_path: str | None = None
    metrics_port: int | None = None
    access_log: bool = False
    cluster_url: str | None = None
    cluster_presence_ttl: float = 10.0
    compression: str = "shared"
    compression_min_size: int = 128
    compression_window_bits: int = 12
    compression_mem_level: int = 5
    compression_memory_budget: int = 64 * 1024 * 1024

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
