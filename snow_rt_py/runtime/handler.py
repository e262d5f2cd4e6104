"""The program's side of a connection: Snow's three lifecycle callbacks plus two extensions.

Subclass :class:`Handler` (or build one from plain functions with :func:`make_handler`). Which thread runs the
callbacks: with ``workers == 0`` the event loop thread (inline fast path: callbacks must not block); with
``workers >= 1`` one of the worker threads, never two at once for the same connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snow_rt_py.protocol.headers import Headers

if TYPE_CHECKING:
    from snow_rt_py.runtime.connection import Connection
    from snow_rt_py.runtime.presence import PresenceEvent


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse a connection.

    Returned from :meth:`Handler.on_upgrade` it is answered before the upgrade with the HTTP ``status`` and
    ``reason`` as body (e.g. 403 for failed authentication). Returned from :meth:`Handler.on_connect` (after the
    upgrade, snow-rt's way) the connection is closed with close ``code`` and ``reason``.
    """

    reason: str = "rejected"
    status: int = 403
    code: int = 1008


class Handler:
    """Callbacks for one server. Every method has a harmless default."""

    def on_upgrade(self, path: str, headers: Headers) -> Reject | None:
        """Before the 101 response, on the event loop thread (must not block). Return a Reject to refuse."""
        return None

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool | Reject | None:
        """After the 101 response, once. ``False`` or a :class:`Reject` closes the connection (1008 by default)
        and on_close is then not called; anything else accepts."""
        return True

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        """Once per complete message, in order: ``str`` for text, ``bytes`` for binary."""

    def on_close(self, conn: Connection, code: int, reason: str) -> None:
        """Exactly once per accepted connection, with what really happened: the peer's close code and reason,
        1006 for a drop without close, 1011 after a crash or a heartbeat timeout, 1001 on server shutdown,
        the code of an explicit :meth:`Connection.close`, or the code we failed the connection with."""

    def on_info(self, conn: Connection, message: Any) -> None:
        """A message another actor or thread sent to this connection's pid, or an
        :class:`~snow_rt_py.runtime.scheduler.ExitSignal` from a linked actor."""

    def on_presence(self, conn: Connection, event: PresenceEvent) -> None:
        """A member joined or left ``event.room``, a room ``conn`` is in (cluster-wide with a cluster; the joiner
        is told of its own join). Only called for handlers that define it; runs in ``conn``'s actor, in order
        with its messages."""


def handler_wants_presence(handler: Handler) -> bool:
    """True if ``handler`` defines ``on_presence`` (presence events are only made for such handlers)."""
    return type(handler).on_presence is not Handler.on_presence or "on_presence" in vars(handler)


class _FunctionHandler(Handler):
    def __init__(self, funcs: dict[str, Callable[..., Any] | None]) -> None:
        for name, fn in funcs.items():
            if fn is not None:
                setattr(self, name, fn)


def make_handler(
    on_connect: Callable[[Connection, str, Headers], bool | Reject | None] | None = None,
    on_message: Callable[[Connection, str | bytes], None] | None = None,
    on_close: Callable[[Connection, int, str], None] | None = None,
    on_info: Callable[[Connection, Any], None] | None = None,
    on_upgrade: Callable[[str, Headers], Reject | None] | None = None,
    on_presence: Callable[[Connection, PresenceEvent], None] | None = None,
) -> Handler:
    """Build a :class:`Handler` from plain functions; a missing one keeps the default."""
    return _FunctionHandler(
        {
            "on_connect": on_connect,
            "on_message": on_message,
            "on_close": on_close,
            "on_info": on_info,
            "on_upgrade": on_upgrade,
            "on_presence": on_presence,
        }
    )
