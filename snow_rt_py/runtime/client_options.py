"""Client options: one place for every default of :func:`snow_rt_py.connect` (the Python API, the CLI, the C ABI)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from snow_rt_py.protocol.client_handshake import build_request, deflate_offer
from snow_rt_py.runtime.errors import InvalidArgumentError
from snow_rt_py.runtime.options import DEFAULT_MAX_MESSAGE_SIZE, ServerOptions

__all__ = ["ClientOptions"]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How a client connects and treats its connection (the server's options where they mean the same).

    Attributes:
        open_timeout: seconds from the start to the server's 101: DNS, TCP, proxy, TLS and the handshake, every
            redirect included; past it the attempt fails ("opening handshake timed out after N s").
        close_timeout: seconds we wait for the server's half of the close handshake, and then for the server to
            close TCP (RFC 6455 §7.1.1: it closes first), before we drop the connection ourselves.
        max_message_size: largest message the server may send, in bytes; bigger fails with 1009.
        max_queue_bytes: bound of the outbound queue (as the server's); beyond it the slow-consumer policy applies.
        slow_consumer: ``"close"`` (1008 "slow consumer") or ``"drop"`` (the message is dropped), as the server's.
        ping_interval: seconds between our pings; 0 disables the client's heartbeat.
        pong_timeout: seconds the pong echoing our latest ping has to arrive, else close 1011.
        compression: ``"off"``, ``"shared"`` or ``"dedicated"``: offer permessage-deflate (with
            ``client_max_window_bits``) with no context kept / a context kept both ways (runtime/compression.py).
        subprotocols: the subprotocols to offer, in our order of preference.
        origin: the ``Origin`` header to send, or None.
        headers: extra ``(name, value)`` request headers.
        verify: check the server's certificate (wss://) against ``ca_file`` or the system's CA store, and its
            host name. False turns every check off: UNSAFE -- anyone on the path can read and change the traffic.
        ca_file: a PEM file of CA certificates to trust instead of the system's.
        server_hostname: the name for SNI and the certificate check (default: the URL's host).
        proxy: None: from ``https_proxy`` (wss://) / ``http_proxy`` (ws://) and ``no_proxy`` in the environment;
            ``""`` or False: no proxy; ``"http://[user:pass@]host:port"``: that HTTP proxy (a ``CONNECT`` tunnel).
        max_redirects: how many 3xx answers with a ``Location`` are followed (never from wss:// to ws://).
        reconnect: reconnect after a failure or a lost connection, with a jittered exponential backoff.
        reconnect_delay: the first delay's bound (the first delay is random in [0, reconnect_delay]).
        reconnect_max_delay: the cap of the delays.
        reconnect_factor: each further delay is the previous bound times this (then jittered: half to all of it).
        workers: 0 runs the handler inline on the event loop (it must not block); N >= 1 on N worker threads
            (shared by every client of the runtime with the same number).
    """

    open_timeout: float = 10.0
    close_timeout: float = 10.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_queue_bytes: int = 1024 * 1024
    slow_consumer: str = "close"
    ping_interval: float = 0.0
    pong_timeout: float = 10.0
    compression: str = "off"
    subprotocols: tuple[str, ...] = ()
    origin: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    verify: bool = True
    ca_file: str | None = None
    server_hostname: str | None = None
    proxy: str | bool | None = None
    max_redirects: int = 5
    reconnect: bool = False
    reconnect_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    reconnect_factor: float = 2.0
    workers: int = 0

    def validate(self) -> None:
        """Check every option.

        Raises:
            InvalidArgumentError: naming the option and what is wrong with it.
        """
        for name in ("open_timeout", "close_timeout", "pong_timeout", "reconnect_max_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0 or not math.isfinite(value):
                raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.ping_interval, int | float) or not 0 <= self.ping_interval < math.inf:
            raise InvalidArgumentError(f"ping_interval must be >= 0 (0 disables), got {self.ping_interval!r}")
        if not isinstance(self.reconnect_delay, int | float) or not 0 <= self.reconnect_delay < math.inf:
            raise InvalidArgumentError(f"reconnect_delay must be >= 0, got {self.reconnect_delay!r}")
        if not isinstance(self.reconnect_factor, int | float) or not 1 <= self.reconnect_factor < math.inf:
            raise InvalidArgumentError(f"reconnect_factor must be >= 1, got {self.reconnect_factor!r}")
        if not isinstance(self.max_message_size, int) or self.max_message_size < 1:
            raise InvalidArgumentError(f"max_message_size must be a positive integer, got {self.max_message_size!r}")
        if not isinstance(self.max_queue_bytes, int) or self.max_queue_bytes < 1024:
            raise InvalidArgumentError(f"max_queue_bytes must be at least 1024, got {self.max_queue_bytes!r}")
        if self.slow_consumer not in ("close", "drop"):
            raise InvalidArgumentError(f"slow_consumer must be 'close' or 'drop', got {self.slow_consumer!r}")
        if not isinstance(self.max_redirects, int) or self.max_redirects < 0:
            raise InvalidArgumentError(f"max_redirects must be >= 0, got {self.max_redirects!r}")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise InvalidArgumentError(f"workers must be >= 0, got {self.workers!r}")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise InvalidArgumentError(f"ca_file {str(self.ca_file)!r} is not a readable file")
        if self.proxy not in (None, "", False) and (
            not isinstance(self.proxy, str) or not self.proxy.startswith("http://")
        ):
            raise InvalidArgumentError(f"proxy must be 'http://host:port', '' or None, got {self.proxy!r}")
        try:
            offer = deflate_offer(self.compression)
            # The request these options make, built once to check the headers, origin and subprotocols.
            build_request(
                "h",
                "/",
                "AAAAAAAAAAAAAAAAAAAAAA==",
                origin=self.origin,
                subprotocols=self.subprotocols,
                extensions=offer,
                headers=self.headers,
            )
        except (ValueError, TypeError) as exc:
            text = str(exc)
            name = "compression" if text.startswith("compression") else "subprotocols" if "token" in text else ""
            if not name:
                name = "origin" if "Origin" in text else "headers"
            raise InvalidArgumentError(text if text.startswith(name) else f"{name}: {text}") from None

    def connection_options(self) -> ServerOptions:
        """The options a connection reads, in the server's form (a client connection is a server connection's
        mirror: the same queues, bounds, heartbeat and compression settings)."""
        return ServerOptions(
            max_message_size=self.max_message_size,
            max_queue_bytes=self.max_queue_bytes,
            slow_consumer=self.slow_consumer,
            close_timeout=self.close_timeout,
            ping_interval=self.ping_interval,
            pong_timeout=self.pong_timeout,
            workers=self.workers,
            compression=self.compression if self.compression != "off" else "off",
        )
