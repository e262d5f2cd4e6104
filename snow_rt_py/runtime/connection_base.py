"""What every part of a connection shares: its state machine, its constants, and its base class (C or Python).

``snow_rt_py.runtime._connection_core`` (``_connection_core.c`` and ``_connection_out.c``) defines
``ConnectionCore``: the fields one message touches, as C members with the attribute names the Python code uses,
and C versions of ``data_received``, ``send``, ``send_text``, ``send_binary``, ``send_utf8``, ``offer_frame`` and
``_flush`` for the common case, plus the loops over many connections (:data:`offer_all`: a room's broadcast;
:data:`flush_all`: the server's end-of-iteration flush). Every other case goes to the Python methods of
``Connection`` (``_receive``, ``_send_any``, ...), which are the reference implementation.

Without the compiled module, or with ``SNOW_RT_PY_NO_SPEEDUPS=1`` (:mod:`snow_rt_py.speedups`),
:class:`PyConnectionCore` is the base instead: the same fields as ``__slots__``, and ``Connection`` uses its Python
methods under the public names. :data:`C_CONNECTION` says which one runs.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from snow_rt_py import speedups
from snow_rt_py.protocol.close import CloseCode

__all__ = [
    "C_CONNECTION",
    "FLUSH_NOW",
    "SEPARATE_PAYLOAD_MIN",
    "ConnectionCore",
    "Phase",
    "PyConnectionCore",
    "flush_all",
    "offer_all",
]

SEPARATE_PAYLOAD_MIN = 64 << 10
"""From this size on, a message is queued as its frame header plus its payload, and written with writelines: the
payload is never copied into a frame (nor into a joined write). The C part gets it from here (configure)."""
FLUSH_NOW = 64
"""Frames queued by one read from which they are written at once, not at the end of the loop iteration (the C part
gets it from here)."""
SEPARATE_TEXT_MIN = SEPARATE_PAYLOAD_MIN // 4
"""Characters: a str this long may encode to SEPARATE_PAYLOAD_MIN bytes."""
LINGER_BYTES = 64 << 10
"""After an HTTP error response, at most this much of what the client still sends is read and dropped before the
connection is closed (see ``Connection._linger``)."""

KEEPALIVE_TIMEOUT = (int(CloseCode.INTERNAL_ERROR), "keepalive ping timeout")
SERVER_SHUTDOWN = (int(CloseCode.GOING_AWAY), "server shutting down")
HANDLER_CRASH = (int(CloseCode.INTERNAL_ERROR), "internal error")
SLOW_CONSUMER = (int(CloseCode.POLICY_VIOLATION), "slow consumer")
ABORTED = (int(CloseCode.ABNORMAL_CLOSURE), "")


class Phase(enum.Enum):
    """Where a connection is in its life (see runtime/connection.py's docstring)."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


MOVES: frozenset[tuple[Phase, Phase]] = frozenset(
    {
        (Phase.CONNECTING, Phase.OPEN),
        (Phase.CONNECTING, Phase.CLOSING),
        (Phase.CONNECTING, Phase.CLOSED),
        (Phase.OPEN, Phase.CLOSING),
        (Phase.OPEN, Phase.CLOSED),
        (Phase.CLOSING, Phase.CLOSED),
    }
)
"""The moves the state machine allows (``Connection._enter``)."""

move_lock = threading.Lock()
"""Moves out of OPEN can race (close() on one thread, the peer's Close on the loop): this lock makes the check and
the move one step. It is also taken by a send from a thread other than the loop's, so the phase cannot leave OPEN
between its check and its append to the FIFO (``Connection._offer_py``); sends on the loop thread never take it."""


class PyConnectionCore:
    """The fields of ``_connection_core.ConnectionCore``, in Python (the fallback base class of Connection)."""

    __slots__ = (
        "_actor",
        "_deflate",
        "_direct",
        "_fast",
        "_flush_pending",
        "_handler",
        "_handler_state",
        "_in_read",
        "_inbox_done",
        "_inbox_given",
        "_inbox_high",
        "_linger_left",
        "_loop_thread",
        "_max_message_size",
        "_native",
        "_on_text_bytes",
        "_out",
        "_out_bytes",
        "_paused_in",
        "_proto",
        "_scheduler",
        "_transport",
        "bytes_out",
        "id",
        "max_queue_bytes",
        "messages_in",
        "messages_out",
        "phase",
        "server",
    )


OfferAll = Callable[[list[Any], bytes, Any, int, bool], int]
FlushAll = Callable[[Any], None]

_c = speedups.load("snow_rt_py.runtime._connection_core")

if TYPE_CHECKING:
    ConnectionCore = PyConnectionCore
    C_CONNECTION: bool
    offer_all: OfferAll | None
    """``offer_all(members, frame, except_conn, count, write_now) -> failures``: RoomRegistry's member loop in C, or
    None (rooms.py then runs its Python loop)."""
    flush_all: FlushAll | None
    """``flush_all(deque)``: Server._flush_dirty's loop in C, or None."""
else:
    if _c is None:
        ConnectionCore, C_CONNECTION, offer_all, flush_all = PyConnectionCore, False, None, None
    else:
        ConnectionCore, C_CONNECTION = _c.ConnectionCore, True
        offer_all, flush_all = _c.ConnectionCore.offer_all, _c.ConnectionCore.flush_all


def configure(tag_text: object, tag_binary: object, text_message: object) -> None:
    """Give the C part what it compares with and builds, and the constants defined here (runtime/connection.py
    calls it once, at import)."""
    if _c is not None:
        _c.configure(Phase.OPEN, Phase.CLOSED, tag_text, tag_binary, text_message, SEPARATE_PAYLOAD_MIN, FLUSH_NOW)


def c_constants() -> dict[str, int] | None:
    """The constants as the C part uses them (None without it): what tests compare with this module's."""
    return None if _c is None else dict(_c.constants())
