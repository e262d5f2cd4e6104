"""The WebSocket client: :func:`connect` and the :class:`Client` it returns (reconnects included).

``connect(url, handler)`` returns at once; the connection is made on the runtime's loop thread. Each attempt: parse
the URL, pick a proxy, DNS, TCP, the proxy's tunnel, TLS, our request, the server's response (redirects followed up
to ``max_redirects``, never from wss:// to ws://), all bounded by ``open_timeout``. The connection it makes is a
:class:`~snow_rt_py.runtime.client_connection.ClientConnection`: the server's Connection, with the same handler
callbacks, sends, queues, heartbeat, compression and rooms.

A failure is an answer, never a hang: on_close(conn, 1006, reason) runs once for the connection that never opened
(on_connect is not called), and :meth:`Client.wait_open` raises :class:`ConnectError` with the reason. With
``reconnect``, every lost or failed connection is followed by another, after a jittered exponential backoff: the
first delay random in [0, reconnect_delay], then each bound ``reconnect_factor`` times the previous (capped at
``reconnect_max_delay``), the delay random in its upper half; a connection that opened resets it. Each new
connection is a new ``conn`` (a new id) with its own on_connect / on_close, and joins the rooms the previous one had
joined before its on_connect runs. While there is no open connection, sends fail at once
(ConnectionClosedError): nothing is buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
import threading
from typing import TYPE_CHECKING, Any

from snow_rt_py.protocol.client import ClientProtocol, ResponseRejected
from snow_rt_py.runtime.client_connection import ClientConnection
from snow_rt_py.runtime.client_dial import (
    DialError,
    Target,
    dial,
    parse_url,
    proxy_for,
    redirect_target,
    tls_context,
    tls_failure,
)
from snow_rt_py.runtime.client_endpoint import ClientEndpoint
from snow_rt_py.runtime.client_options import ClientOptions
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError, SnowError
from snow_rt_py.runtime.handler import Handler

if TYPE_CHECKING:
    from snow_rt_py.runtime.runtime import Runtime

__all__ = ["Client", "ConnectError", "connect"]

_REDIRECTS = (301, 302, 303, 307, 308)


class ConnectError(SnowError):
    """The client could not open a connection (or it ended for good before opening).

    Attributes:
        reason: why, e.g. ``"connection refused (127.0.0.1:9)"``, ``"HTTP 403 Forbidden instead of 101"``.
        status: the HTTP status the server (or the proxy) answered with, or None.
    """

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def connect(
    url: str,
    handler: Handler,
    *,
    runtime: Runtime | None = None,
    options: ClientOptions | None = None,
    **overrides: Any,
) -> Client:
    """Connect to a WebSocket server; returns at once (the connection is made on the runtime's loop thread).

    Args:
        url: ``ws://host[:port]/path`` or ``wss://...``.
        handler: the callbacks, the same :class:`~snow_rt_py.Handler` as a server's (on_connect gets the request
            target we sent and the response headers).
        runtime: the owner of the connection's actor and rooms; None = the default runtime.
        options: the :class:`ClientOptions`; ``overrides`` replace single fields of it.

    Returns:
        The :class:`Client`: ``wait_open()``, ``connection``, ``close()``, ``wait_closed()``.

    Raises:
        InvalidArgumentError: an invalid URL or option (the message names it); nothing was started.
    """
    if runtime is None:
        from snow_rt_py.runtime.runtime import default_runtime

        runtime = default_runtime()
    base = options if options is not None else ClientOptions()
    try:
        opts = dataclasses.replace(base, **overrides)
    except TypeError as exc:
        raise InvalidArgumentError(f"connect(): {exc}") from None
    if isinstance(opts.subprotocols, str) or isinstance(opts.headers, dict):
        raise InvalidArgumentError("subprotocols must be a sequence of names, headers of (name, value) pairs")
    opts.validate()
    target = parse_url(url)
    if not isinstance(handler, Handler):
        raise InvalidArgumentError(f"handler must be a snow_rt_py.Handler, got {type(handler).__name__}")
    client = Client(target, handler, runtime, opts)
    client._start()
    return client


class Client:
    """One client of a WebSocket server: its current connection, and its reconnections (see the module).

    Every method is safe from any thread.

    Attributes:
        id: a positive integer unique in its runtime.
        options: the options it was made with.
        url: the URL it was given.
    """

    def __init__(self, target: Target, handler: Handler, runtime: Runtime, options: ClientOptions) -> None:
        self.id: int = next(runtime.component("client-ids", lambda: itertools.count(1)))
        self.url = target.url
        self.options = options
        self.runtime = runtime
        self._target = target
        self._tls = tls_context(options.verify, options.ca_file) if target.secure or options.max_redirects else None
        self._endpoint = ClientEndpoint(runtime, handler, options.connection_options(), self._disconnected)
        self._loop = self._endpoint.loop
        self._cond = threading.Condition()
        self._connection: ClientConnection | None = None  # open (or closing) now
        self._error: ConnectError | None = None  # the last failure
        self._last_open: ClientConnection | None = None  # the last attempt's connection, if it opened
        self._closed = False
        self._stopping = False
        self._close_args = (1000, "")
        self._task: asyncio.Task[None] | None = None
        self._opening = False  # an attempt (or the wait before one) is under way: close() cancels it
        self._wakeup: asyncio.Event | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._connection is not None else "connecting"
        return f"<Client id={self.id} {state} {self.url}>"

    # -- public API (any thread) -----------------------------------------------------------------------------

    @property
    def connection(self) -> ClientConnection | None:
        """The current connection while it is open, else None."""
        conn = self._connection
        return conn if conn is not None and conn.open else None

    @property
    def closed(self) -> bool:
        """True once the client has ended and will not reconnect."""
        return self._closed

    def wait_open(self, timeout: float | None = None) -> ClientConnection:
        """Wait until a connection is open and return it.

        A client that opened its connection and has ended since (the server closed it at once, say) returns that
        connection, closed (``conn.open`` is False): it did open.

        Raises:
            ConnectError: the client ended and its last attempt failed (with that failure's reason and status).
            TimeoutError: not open within ``timeout`` seconds (with reconnect: still trying).
        """
        with self._cond:
            ok = self._cond.wait_for(lambda: self.connection is not None or self._closed, timeout)
            conn = self.connection
            if conn is not None:
                return conn
            if not ok:
                raise TimeoutError(f"client {self.id}: not open after {timeout} s")
            if self._last_open is not None:
                return self._last_open
            raise self._error or ConnectError("closed by the program while connecting")

    def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the client has ended (its last on_close has run) and will not reconnect.

        Raises:
            TimeoutError: not ended within ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed, timeout):
                raise TimeoutError(f"client {self.id}: not closed after {timeout} s")

    def send(self, message: str | bytes) -> None:
        """Send on the current connection (text for str, binary for bytes).

        Raises:
            ConnectionClosedError: no connection is open now (nothing is buffered while disconnected).
        """
        conn = self.connection
        if conn is None:
            raise ConnectionClosedError(f"client {self.id} is not connected")
        conn.send(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason`` and stop reconnecting (a connection being made is
        abandoned: its on_close reports 1006). Idempotent.

        Raises:
            InvalidArgumentError: ``code`` may not be sent, or ``reason`` is invalid.
        """
        from snow_rt_py.protocol.close import build_close_payload
        from snow_rt_py.protocol.errors import UsageError

        try:
            build_close_payload(code, reason)
        except UsageError as exc:
            raise InvalidArgumentError(str(exc)) from None
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._close_args = (code, reason)
        self._loop.call_soon_threadsafe(self._stop_on_loop)

    # -- the loop thread ---------------------------------------------------------------------------------------

    def _start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._begin(), self._loop)

    async def _begin(self) -> None:
        self._task = asyncio.current_task()
        self._wakeup = asyncio.Event()
        try:
            await self._run()
        finally:
            with self._cond:
                self._closed = True
                self._connection = None
                self._cond.notify_all()

    def _stop_on_loop(self) -> None:
        conn = self._connection
        if conn is not None and conn.open:
            with contextlib.suppress(ConnectionClosedError):
                conn.close(*self._close_args)
        elif self._task is not None and self._opening:
            self._task.cancel()  # connecting
        if self._wakeup is not None:
            self._wakeup.set()

    async def _run(self) -> None:
        failures = 0
        rejoin: tuple[tuple[str, str | None], ...] = ()
        while not self._stopping:
            self._opening = True
            try:
                conn = await self._open(rejoin)
            finally:
                self._opening = False
            opened = conn.handshake.done() and conn.handshake.result() is None  # it may have ended already
            if opened:
                failures = 0
                with self._cond:
                    self._connection = self._last_open = conn
                    self._cond.notify_all()
                if self._stopping:  # close() came while the handshake completed
                    self._stop_on_loop()
            await conn.ended  # its on_close has run
            if opened:
                rejoin = conn.rooms_left  # else the rooms still to join are the previous connection's
            with self._cond:
                self._connection = None
            if not self.options.reconnect or self._stopping:
                return
            await self._backoff(failures)
            failures += 1

    async def _backoff(self, failures: int) -> None:
        opts = self.options
        if failures == 0:
            delay = random.uniform(0, opts.reconnect_delay)
        else:
            bound = min(opts.reconnect_max_delay, opts.reconnect_delay * opts.reconnect_factor**failures)
            delay = random.uniform(bound / 2, bound)
        assert self._wakeup is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), delay)

    async def _open(self, rejoin: tuple[tuple[str, str | None], ...]) -> ClientConnection:
        """One attempt, redirects included: the open connection, or one that never opened (on_close delivered)."""
        target = self._target
        conn = self._new_connection(target, rejoin)
        try:
            async with asyncio.timeout(self.options.open_timeout):
                for hop in range(self.options.max_redirects + 1):
                    outcome = await self._attempt(conn, target)
                    if outcome is None:
                        return conn
                    if outcome.status not in _REDIRECTS or outcome.location is None:
                        return self._failed(conn, outcome.reason, outcome.status)
                    if hop == self.options.max_redirects:
                        return self._failed(conn, f"too many redirects ({hop}): {outcome.reason}", outcome.status)
                    try:
                        target = redirect_target(target, outcome.location)
                    except DialError as exc:
                        return self._failed(conn, exc.reason, outcome.status)
                    conn = self._new_connection(target, rejoin)
        except TimeoutError:
            return self._failed(conn, f"opening handshake timed out after {self.options.open_timeout:g} s")
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            return self._failed(conn, "closed by the program while connecting")
        raise AssertionError("unreachable")

    def _new_connection(self, target: Target, rejoin: tuple[tuple[str, str | None], ...]) -> ClientConnection:
        opts = self.options
        proto = ClientProtocol(
            target.host_header,
            target.resource,
            origin=opts.origin,
            subprotocols=opts.subprotocols,
            compression=opts.compression,
            headers=opts.headers,
            max_message_size=opts.max_message_size,
        )
        return ClientConnection(self._endpoint, proto, rejoin)

    async def _attempt(self, conn: ClientConnection, target: Target) -> ResponseRejected | None:
        """Reach the server and run the handshake on ``conn``: None when open, else the reason (may be a 3xx)."""
        loop = self._loop
        try:
            sock = await dial(loop, target, proxy_for(target, self.options.proxy))
        except DialError as exc:
            return ResponseRejected(exc.reason, exc.status, None)
        ssl_ctx = None
        if target.secure:
            ssl_ctx = self._tls or tls_context(self.options.verify, self.options.ca_file)
        try:
            await loop.create_connection(
                lambda: conn,
                sock=sock,
                ssl=ssl_ctx,
                server_hostname=(self.options.server_hostname or target.host) if ssl_ctx is not None else None,
                ssl_handshake_timeout=self.options.open_timeout if ssl_ctx is not None else None,
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError; a verify failure a ValueError too
            sock.close()
            reason = tls_failure(exc) if ssl_ctx is not None else f"connection failed: {exc}"
            return ResponseRejected(reason, None, None)
        except BaseException:
            sock.close()
            raise
        try:
            return await asyncio.shield(conn.handshake)
        except BaseException:
            conn.abort()
            raise

    def _failed(self, conn: ClientConnection, reason: str, status: int | None = None) -> ClientConnection:
        """The attempt failed: drop what it holds and give the program on_close(1006, reason) on ``conn``."""
        if conn._transport is not None:
            conn._transport.abort()
        with self._cond:
            self._error = ConnectError(reason, status)
            self._last_open = None
        conn.fail_unopened(reason)
        return conn

    def _disconnected(self, conn: ClientConnection) -> None:
        """on_close of ``conn`` has run (its actor's thread)."""
        self._loop.call_soon_threadsafe(_resolve, conn.ended)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
