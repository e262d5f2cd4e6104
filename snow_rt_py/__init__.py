"""snow_rt_py: Snow's WebSocket runtime in Python, with a C ABI.

The Python API::

    import snow_rt_py
    server = snow_rt_py.start(on_message=lambda conn, msg: conn.send(msg), port=0)
    server.stop()

See README.md for the whole API.
"""

from __future__ import annotations

from snow_rt_py.api import (
    broadcast,
    broadcast_except,
    cluster_statistics,
    exit_actor,
    join,
    leave,
    link,
    member_count,
    presence,
    presence_count,
    room_names,
    rooms_of,
    send,
    serve,
    spawn,
    start,
)
from snow_rt_py.protocol.headers import Headers
from snow_rt_py.runtime.client import Client, ConnectError, connect
from snow_rt_py.runtime.client_options import ClientOptions
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.errors import (
    ConnectionClosedError,
    InvalidArgumentError,
    QueueFullError,
    ServerStartError,
    SnowError,
)
from snow_rt_py.runtime.handler import Handler, Reject, make_handler
from snow_rt_py.runtime.options import ServerOptions
from snow_rt_py.runtime.presence import Member, PresenceEvent
from snow_rt_py.runtime.runtime import RunningServer, Runtime, default_runtime
from snow_rt_py.runtime.scheduler import ExitSignal

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ClientOptions",
    "ConnectError",
    "Connection",
    "ConnectionClosedError",
    "ExitSignal",
    "Handler",
    "Headers",
    "InvalidArgumentError",
    "Member",
    "PresenceEvent",
    "QueueFullError",
    "Reject",
    "RunningServer",
    "Runtime",
    "ServerOptions",
    "ServerStartError",
    "SnowError",
    "__version__",
    "broadcast",
    "broadcast_except",
    "cluster_statistics",
    "connect",
    "default_runtime",
    "exit_actor",
    "join",
    "leave",
    "link",
    "make_handler",
    "member_count",
    "presence",
    "presence_count",
    "room_names",
    "rooms_of",
    "send",
    "serve",
    "spawn",
    "start",
]
