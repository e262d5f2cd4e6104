"""The Redis backplane's names and encodings: what it writes to Redis, and how it reads it back.

Keys and channels (every name starts with :data:`PREFIX`; a room name is its UTF-8 bytes, lone surrogates kept):

* ``snow:room:ROOM``: the room's pub/sub channel. A message on it is a header, ``>cQQ`` (kind, origin node,
  connection id), then a body: kind ``B`` (a broadcast: the id is the excluded connection, 0 for none; the body
  is the encoded frame, handed as it is to the receiving node's members), ``J`` (a member joined: the id is the
  member's, the body its meta), ``L`` (a member left: the id is the member's, no body) or ``H`` (a broadcast to a
  room with history, published by redis_history.py's script with its position: every node takes it, the
  origin's included).
* ``snow:presence:ROOM``: a hash, connection id (decimal) -> ``NODE\\0META``.
* ``snow:node:N``: present while node N is alive; ``snow:nodes:seq``: the counter node numbers are taken from.

Reading: :func:`decode_batch` turns the messages of one read from the subscription into what to apply, in
order, with consecutive broadcasts to one room excluding the same connection joined into one :class:`Run`.
A message shorter than a header is someone else's and is ignored; a node's own messages come back to it and are
ignored too.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from snow_rt_py.runtime.presence import Member

PREFIX = "snow:"
NODE_SEQ_KEY = f"{PREFIX}nodes:seq"
_CHANNEL_PREFIX = f"{PREFIX}room:".encode()
_PRESENCE_PREFIX = f"{PREFIX}presence:".encode()
_HEADER = struct.Struct(">cQQ")  # kind, origin node, connection id (excluded one for B, member for J/L)
_BROADCAST, _JOIN, _LEAVE, _ORDERED = b"B", b"J", b"L", b"H"


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _dec(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


def channel(room: str) -> bytes:
    """The pub/sub channel of ``room``."""
    return _CHANNEL_PREFIX + _enc(room)


def presence_key(room: str) -> bytes:
    """The hash of ``room``'s members (every node's)."""
    return _PRESENCE_PREFIX + _enc(room)


def node_key(node: int) -> str:
    """The key that exists while node ``node`` is alive."""
    return f"{PREFIX}node:{node}"


def broadcast_header(node: int, except_id: int) -> bytes:
    """The header of a broadcast published by ``node``, for every member but ``except_id`` (0: none); the
    encoded frame follows it."""
    return _HEADER.pack(_BROADCAST, node, except_id)


def member_event(joined: bool, node: int, member: Member) -> bytes:
    """The message that tells the other nodes that ``member`` of ``node`` joined (``joined``) or left."""
    if joined:
        return _HEADER.pack(_JOIN, node, member.id) + _enc(member.meta)
    return _HEADER.pack(_LEAVE, node, member.id)


def presence_field(member: Member) -> str:
    """``member``'s field in the presence hash."""
    return str(member.id)


def presence_value(member: Member) -> bytes:
    """``member``'s value in the presence hash."""
    return _enc(f"{member.node}\0{member.meta}")


def parse_presence(field: bytes, value: bytes) -> Member:
    """The member of one entry of a presence hash (see :func:`presence_field`, :func:`presence_value`)."""
    node_text, _, meta = value.partition(b"\0")
    return Member(int(field), int(node_text), _dec(meta))


class Run(NamedTuple):
    """Consecutive broadcasts from other nodes to ``room``, all excluding connection ``except_id``, in order."""

    room: str
    except_id: int
    frames: list[bytes]


class MemberChange(NamedTuple):
    """A member of another node joined (``joined``) or left ``room`` (a leave carries no meta)."""

    room: str
    joined: bool
    member: Member


class Ordered(NamedTuple):
    """A broadcast to a room with history (kind ``H``): ``data`` is the whole publication (redis_history.py)."""

    room: str
    data: bytes


class Batch(NamedTuple):
    """One read from the subscription, decoded.

    Attributes:
        changes: the broadcast runs and presence events from other nodes, in the order they were published.
        confirmed: the channels whose subscription Redis confirmed.
        received: how many messages of other nodes it held (a broadcast counts one, inside a run too).
    """

    changes: list[Run | MemberChange | Ordered]
    confirmed: list[bytes]
    received: int


def decode_batch(messages: list[dict[str, Any]], own_node: int) -> Batch:
    """Decode ``messages`` (redis-py's pub/sub message dicts, as read) for node ``own_node``."""
    size = _HEADER.size
    skip = len(_CHANNEL_PREFIX)
    changes: list[Run | MemberChange | Ordered] = []
    confirmed: list[bytes] = []
    received = 0
    run: Run | None = None
    for msg in messages:
        kind = msg["type"]
        if kind == "message":
            data: bytes = msg["data"]
            if len(data) < size:  # not ours (someone else published on the channel)
                continue
            tag, origin, conn_id = _HEADER.unpack_from(data)
            if tag == _ORDERED:  # every node serves these, the origin too
                received += origin != own_node
                run = None
                changes.append(Ordered(_dec(msg["channel"][skip:]), data))
                continue
            if origin == own_node:
                continue
            received += 1
            room = _dec(msg["channel"][skip:])
            if tag == _BROADCAST:
                if run is None or room != run.room or conn_id != run.except_id:
                    run = Run(room, conn_id, [])
                    changes.append(run)
                run.frames.append(data[size:])
                continue
            run = None  # a presence event (or an unknown kind): the broadcasts before it go first
            if tag in (_JOIN, _LEAVE):
                changes.append(MemberChange(room, tag == _JOIN, Member(conn_id, origin, _dec(data[size:]))))
        elif kind == "subscribe":
            confirmed.append(msg["channel"])
    return Batch(changes, confirmed, received)
