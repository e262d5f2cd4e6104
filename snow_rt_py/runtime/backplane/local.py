"""The in-process backplane: the default, when a runtime is in no cluster.

Every member of a room is in this process, so the registry has served them all by itself: a broadcast has nobody
else to reach, a join or leave nobody else to tell, and a room's presence is its local members.
"""

from __future__ import annotations

from snow_rt_py.runtime.backplane.base import Position
from snow_rt_py.runtime.presence import Member


class InProcessBackplane:
    """A :class:`~snow_rt_py.runtime.backplane.base.Backplane` for one process (node 0)."""

    __slots__ = ()

    @property
    def node(self) -> int:
        """Always 0: a runtime in no cluster."""
        return 0

    def broadcast(self, room: str, frame: bytes, except_id: int) -> Position | None:
        """Nothing to carry: every member is local. Returns None (rooms with history are numbered by the registry's
        in-process store, runtime/history_rooms.py)."""
        return None

    def member_changed(self, joined: bool, room: str, member: Member) -> None:
        """Nobody else to tell."""

    def presence(self, room: str, local: list[Member]) -> list[Member]:
        """The local members, sorted by id."""
        return sorted(local, key=_member_id)

    def statistics(self) -> dict[str, int]:
        """No counters: ``{}``."""
        return {}

    async def start(self) -> None:
        """Nothing to bring up."""

    async def close(self) -> None:
        """Nothing to take down."""


def _member_id(member: Member) -> int:
    return member.id
