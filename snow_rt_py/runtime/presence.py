"""Presence: who is in a room, cluster-wide, and the events that tell a handler who joined and left."""

from __future__ import annotations

from dataclasses import dataclass

META_MAX_BYTES = 256
"""The longest ``meta`` string a member can be given at join, in UTF-8 bytes."""


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a room.

    Attributes:
        id: the connection id (unique across the cluster; the C handle of that connection on its node).
        node: the number of the node (process) the connection is on; 0 when the runtime is not in a cluster.
        meta: the short string given at join ("" if none), e.g. a user name.
    """

    id: int
    node: int
    meta: str


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """Delivered to ``Handler.on_presence(conn, event)`` of every member of ``room`` when a member joins or leaves.

    Attributes:
        room: the room.
        kind: ``"join"`` or ``"leave"``.
        member: who.
    """

    room: str
    kind: str
    member: Member
