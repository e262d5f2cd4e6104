"""The opaque values C holds: connection handles, server ids, on_connect header handles.

* A connection handle is ``(void *)(uintptr_t)conn.id``: ids are never reused, so a stale handle can never reach
  another client. A connection is registered just before its on_connect runs and dropped when it has ended, just
  before its on_close is called (or right after an on_connect that rejected it); any other value is unknown. Ids
  are a counter, so a handle above the highest id ever registered was never issued (:func:`live_or_ended`).
* A server id is a counter of this module (never reused), dropped once the server is stopped.
* A client id (snow_ws_connect) is a counter of this module too, never reused, dropped once
  snow_ws_client_wait_closed has seen the client end.
* A header handle is a counter too, valid while its on_connect runs: strings returned for it are owned by it and
  freed when on_connect returns.

Every lookup either returns the object or raises :class:`AbiError` with the code C will see. Dict reads and
writes are atomic, so lookups take no lock.

The tables are state of the default :class:`~snow_rt_py.runtime.runtime.Runtime` (C's process-wide runtime, shared
with the Python API): :class:`AbiHandles` is made by ``runtime.component`` and lives as long as that runtime. The
module functions act on it.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from snow_rt_py.abi.errors import BAD_HANDLE, BAD_SERVER, AbiError
from snow_rt_py.protocol.headers import Headers
from snow_rt_py.runtime.backplane.base import ID_NODE_SHIFT
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.runtime import RunningServer, default_runtime


class HeaderScope:
    """The headers of one on_connect call, and the C strings handed out for them (freed by :meth:`close`)."""

    def __init__(self, headers: Headers, free: Any) -> None:
        self.headers = headers
        self._free = free  # lib.snow_string_free
        self._strings: list[Any] = []
        self._lock = threading.Lock()
        self._open = True

    def keep(self, string: Any) -> bool:
        """Own ``string`` until :meth:`close`. False (and the caller frees it) if already closed."""
        with self._lock:
            if self._open:
                self._strings.append(string)
            return self._open

    def close(self) -> None:
        """Free every string handed out. Idempotent."""
        with self._lock:
            self._open = False
            strings, self._strings = self._strings, []
        for string in strings:
            self._free(string)


class AbiHandles:
    """The C ABI's handle tables: connections by id, servers by id, header scopes by id."""

    def __init__(self) -> None:
        self.connections: dict[int, Connection] = {}
        # The highest connection id ever registered, per node prefix (ids are node << 40 | n in a cluster, node 0
        # otherwise): no handle above it with that prefix was issued.
        self.highest_ids: dict[int, int] = {}
        self._lock = threading.Lock()
        self.servers: dict[int, RunningServer] = {}
        self._server_ids = itertools.count(1)
        self.header_scopes: dict[int, HeaderScope] = {}
        self._header_ids = itertools.count(1)
        self.clients: dict[int, Any] = {}  # snow_rt_py.Client by id, until snow_ws_client_wait_closed saw it end
        self._client_ids = itertools.count(1)

    def register_connection(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        with self._lock:
            prefix = conn.id >> ID_NODE_SHIFT
            self.highest_ids[prefix] = max(self.highest_ids.get(prefix, 0), conn.id)

    def register_server(self, server: RunningServer) -> int:
        server_id = next(self._server_ids)
        self.servers[server_id] = server
        return server_id

    def register_client(self, client: Any) -> int:
        client_id = next(self._client_ids)
        self.clients[client_id] = client
        return client_id

    def open_headers(self, scope: HeaderScope) -> int:
        handle = next(self._header_ids)
        self.header_scopes[handle] = scope
        return handle


def tables() -> AbiHandles:
    """The default runtime's handle tables (made on first use)."""
    return default_runtime().component("abi.handles", AbiHandles)


def register_connection(conn: Connection) -> None:
    """Make ``conn``'s handle valid (before its on_connect)."""
    tables().register_connection(conn)


def drop_connection(conn: Connection) -> None:
    """Make ``conn``'s handle stale (before its on_close, or after a rejecting on_connect). Idempotent."""
    tables().connections.pop(conn.id, None)


def connection(handle: int) -> Connection:
    """The connection behind ``handle``.

    Raises:
        AbiError: the handle is unknown (made up, or its connection has ended).
    """
    conn = tables().connections.get(handle)
    if conn is None:
        raise AbiError(BAD_HANDLE, f"connection handle {handle} is unknown or its connection has ended")
    return conn


def live_or_ended(handle: int) -> Connection | None:
    """The connection behind ``handle``, or None if it was issued but its connection has ended.

    Raises:
        AbiError: the handle was never issued (made up: above every connection id registered so far).
    """
    t = tables()
    conn = t.connections.get(handle)
    if conn is None:
        prefix = handle >> ID_NODE_SHIFT
        issued = prefix << ID_NODE_SHIFT < handle <= t.highest_ids.get(prefix, 0)
        if not issued and not is_remote(handle):
            return connection(handle)  # raises
    return conn


def is_remote(handle: int) -> bool:
    """True if ``handle`` is a connection id of another node of the default runtime's cluster."""
    backplane = default_runtime().cluster
    if backplane is None:
        return False
    node = handle >> ID_NODE_SHIFT
    return node != 0 and node != backplane.node


def connection_table() -> dict[int, Connection]:
    """The registry itself, for the hot path (read it with ``.get``; register and drop through the functions)."""
    return tables().connections


def connection_count() -> int:
    """How many handles are valid (for tests: no leak)."""
    return len(tables().connections)


def register_server(server: RunningServer) -> int:
    """A new id for ``server``."""
    return tables().register_server(server)


def server(server_id: int) -> RunningServer:
    """The running server with ``server_id``.

    Raises:
        AbiError: unknown or already stopped.
    """
    found = tables().servers.get(server_id)
    if found is None:
        raise AbiError(BAD_SERVER, f"server {server_id} is unknown or stopped")
    return found


def drop_server(server_id: int) -> None:
    """Forget a stopped server. Idempotent."""
    tables().servers.pop(server_id, None)


def register_client(client: Any) -> int:
    """A new id for ``client`` (a :class:`snow_rt_py.Client`), valid until :func:`drop_client`."""
    return tables().register_client(client)


def client(client_id: int) -> Any:
    """The client with ``client_id``.

    Raises:
        AbiError: unknown (never issued, or already waited for).
    """
    found = tables().clients.get(client_id)
    if found is None:
        raise AbiError(BAD_HANDLE, f"client {client_id} is unknown or was waited for")
    return found


def drop_client(client_id: int) -> None:
    """Forget a client that has ended. Idempotent."""
    tables().clients.pop(client_id, None)


def open_headers(scope: HeaderScope) -> int:
    """A new header handle for ``scope`` (valid until :func:`close_headers`)."""
    return tables().open_headers(scope)


def headers(handle: int) -> HeaderScope:
    """The header scope behind ``handle``.

    Raises:
        AbiError: unknown, or its on_connect has returned.
    """
    scope = tables().header_scopes.get(handle)
    if scope is None:
        raise AbiError(BAD_HANDLE, "these headers are no longer valid: their on_connect has returned")
    return scope


def close_headers(handle: int) -> None:
    """End ``handle``: later lookups fail and its strings are freed."""
    scope = tables().header_scopes.pop(handle, None)
    if scope is not None:
        scope.close()
