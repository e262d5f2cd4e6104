"""The backplane interface: what a :class:`~snow_rt_py.runtime.rooms.RoomRegistry` tells the rest of the world.

A registry holds the members of its rooms on this node and serves them itself; its backplane carries what
members on other nodes must hear, and answers who those other members are. Two implementations:

* :class:`~snow_rt_py.runtime.backplane.local.InProcessBackplane` (the default): one process, nothing to carry.
* :class:`~snow_rt_py.runtime.backplane.redis_backplane.RedisBackplane` (``cluster_url``): Redis pub/sub.

Rules every implementation keeps:

* Every method the registry calls (:meth:`Backplane.broadcast`, :meth:`Backplane.member_changed`,
  :meth:`Backplane.presence`) is safe from any thread. The first two never wait; local members never wait for
  the backplane (they were served before or are served right after, whatever it does).
* **One call per broadcast per room**, never one per member: the registry hands over the frame it encoded, so a
  cluster encodes a message once.
* A broadcast's **position**: :meth:`Backplane.broadcast` carries broadcasts to rooms *without* history and
  returns None. Rooms with history (runtime/history_rooms.py) go to the backplane's history store instead: a
  backplane with an attribute ``history`` (the Redis one: redis_history.py, one script call per broadcast) keeps
  their history and orders their messages itself, and their position is pending until Redis answered (local
  members are then served from the room's channel, in offset order, like every other node's); a backplane
  without one (in-process) leaves the history to the registry's in-process store, where the position is known
  at once.
* Connection ids carry the node number in their high bits (:data:`ID_NODE_SHIFT`): ids are unique across every
  node of a backplane, and node 0 is a runtime that is in no cluster.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from snow_rt_py.runtime.presence import Member

ID_NODE_SHIFT = 40
"""Connection ids are ``node << ID_NODE_SHIFT | n``: 2**40 connections per node, node numbers below 2**23."""


class Position(NamedTuple):
    """Where a broadcast stands in its room's history.

    Attributes:
        epoch: names one life of the room's history: a position is only comparable with others of the same
            epoch (a history that was lost and started again has a new one).
        offset: the broadcast's number in that epoch, from 1, one more per broadcast to the room.
    """

    epoch: str
    offset: int


@runtime_checkable
class Backplane(Protocol):
    """What a room registry talks to. See the module rules. (``isinstance`` checks that the methods exist.)"""

    @property
    def node(self) -> int:
        """This node's number, put in its connection ids (0: in-process)."""
        ...

    def broadcast(self, room: str, frame: bytes, except_id: int) -> Position | None:
        """Carry ``frame`` (one or more whole encoded frames) to the members of ``room`` on the other nodes but
        the connection ``except_id`` (0: none). Called once per broadcast, before the registry queues it for the
        local members; never waits.

        Returns:
            The broadcast's position in the room's history, or None (the room keeps no history).
        """
        ...

    def member_changed(self, joined: bool, room: str, member: Member) -> None:
        """A local member joined (``joined``) or left ``room``. Called under the registry's lock, so changes
        arrive in the order they were made; never waits."""
        ...

    def presence(self, room: str, local: list[Member]) -> list[Member]:
        """Every member of ``room``, given its members on this node (``local``), sorted by id.

        Raises:
            RuntimeError: the answer needs a round trip to a remote store and this is the thread that would make
                it (the event loop's).
        """
        ...

    def statistics(self) -> dict[str, int]:
        """Counters and state for ``snow_rt_py.cluster_statistics`` (names depend on the implementation)."""
        ...

    async def start(self) -> None:
        """Bring the backplane up (on the event loop that will own it).

        Raises:
            ServerStartError: it cannot be brought up (the message names why).
        """
        ...

    async def close(self) -> None:
        """Take it down; this node's members leave the other nodes' presence. Idempotent."""
        ...
