"""Server options shared by the Python API, the CLI and the C ABI (one place for every default)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024  # snow-rt's MAX_PAYLOAD_SIZE
DEFAULT_MAX_HANDSHAKE_SIZE = 16 * 1024


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
        reuse_port: set SO_REUSEPORT on the listening socket.
        backlog: listen() backlog.
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
        if self.slow_consumer not in ("close", "drop"):
            raise ValueError(f"slow_consumer must be 'close' or 'drop', got {self.slow_consumer!r}")
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

    @property
    def heartbeat_enabled(self) -> bool:
        """True when the server pings its clients."""
        return bool(self.ping_interval)
