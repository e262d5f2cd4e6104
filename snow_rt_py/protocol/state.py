"""Where a WebSocket connection is in its life, and the one table of how that changes (RFC 6455 §4, §7).

Both sides of a connection go through the same states; only what completes or fails the opening handshake differs
(for a server, its caller's ``accept()`` / ``reject()`` / ``respond()``, see ``protocol/connection.py``). The only
place a protocol object changes its state is ``FrameProtocol._transition`` (``protocol/framing.py``), driven by
:data:`TRANSITIONS`::

    HANDSHAKE --handshake completed (a server: accept())------------------------> OPEN
    HANDSHAKE --handshake refused (reject(), an invalid request: HandshakeFailure)--> CLOSED
    HANDSHAKE --plain HTTP answered (HttpRequest, then respond() or reject())------> CLOSED
    OPEN      --send_close()--------------------------------> CLOSING
    OPEN      --peer Close (reply queued, CloseReceived)----> CLOSED
    OPEN      --peer breaks the protocol (ProtocolFailure)--> CLOSED
    CLOSING   --peer Close (CloseReceived, no reply)--------> CLOSED
    CLOSING   --peer breaks the protocol (ProtocolFailure)--> CLOSED
    any       --EOF, receive_data(b"") (ConnectionLost)-----> CLOSED
"""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "State", "Trigger"]


class State(enum.Enum):
    """Where a connection is in its life (see the module docstring for the transitions)."""

    HANDSHAKE = "HANDSHAKE"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


class Trigger(enum.Enum):
    """What moves a connection from one state to the next (internal to the protocol objects)."""

    ACCEPT = enum.auto()  # the opening handshake completed
    REJECT = enum.auto()  # the opening handshake ended without a WebSocket (refused, failed, or plain HTTP)
    SEND_CLOSE = enum.auto()
    RECEIVE_CLOSE = enum.auto()
    PROTOCOL_FAILURE = enum.auto()
    EOF = enum.auto()


TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (State.HANDSHAKE, Trigger.ACCEPT): State.OPEN,
    (State.HANDSHAKE, Trigger.REJECT): State.CLOSED,
    (State.OPEN, Trigger.SEND_CLOSE): State.CLOSING,
    (State.OPEN, Trigger.RECEIVE_CLOSE): State.CLOSED,
    (State.OPEN, Trigger.PROTOCOL_FAILURE): State.CLOSED,
    (State.CLOSING, Trigger.RECEIVE_CLOSE): State.CLOSED,
    (State.CLOSING, Trigger.PROTOCOL_FAILURE): State.CLOSED,
    **{(state, Trigger.EOF): State.CLOSED for state in State},
}
"""The only transitions there are: a (state, trigger) pair not in the table is a bug in the protocol object."""
