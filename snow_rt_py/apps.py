"""Ready-made handlers served by the CLI (``--app NAME``). They use only the public API."""

from __future__ import annotations

import contextlib
import json
import threading

from snow_rt_py.api import (
    broadcast,
    broadcast_except,
    configure_room,
    join,
    join_from,
    leave,
    presence,
    room_position,
    rooms_of,
)
from snow_rt_py.protocol.headers import Headers
from snow_rt_py.runtime.connection import Connection
from snow_rt_py.runtime.errors import ConnectionClosedError, InvalidArgumentError
from snow_rt_py.runtime.handler import Handler
from snow_rt_py.runtime.presence import META_MAX_BYTES


class EchoApp(Handler):
    """Answers every text message with the same text and every binary message with the same bytes."""

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        conn.send(message)


class ChatApp(Handler):
    """Rooms through a line protocol on text messages, usable from any client:

    ``/join ROOM`` -> ``joined ROOM``; ``/joinas ROOM NAME`` -> ``joined ROOM``, NAME (the rest of the line) shown
    in presence, also when the sender is in ROOM already (it leaves and joins again with the new name); a NAME over
    256 bytes of UTF-8 -> ``not joined ROOM: a name is at most 256 bytes of UTF-8``; ``/leave ROOM`` ->
    ``left ROOM``; ``/say ROOM TEXT`` -> TEXT to the other members of ROOM; ``/all ROOM TEXT`` -> TEXT to every
    member, sender included; ``/rooms`` -> the JSON array of the sender's rooms, sorted; ``/who ROOM`` ->
    ``who ROOM `` + the JSON array of its members, ``[id, node, meta]`` each, cluster-wide in a cluster; ``/id``
    -> ``id N``, the connection's id; anything else (and binary) is echoed. A room name is one word (no spaces).

    With ``history=N`` (``--history N``) every room keeps its last N messages and its messages arrive inside the
    envelope (``{"room":R,"epoch":E,"offset":N,"data":TEXT}``): ``/join ROOM`` -> ``joined ROOM``, then its last
    N messages; ``/rejoin ROOM EPOCH OFFSET`` (a page that reconnected) -> what it missed since that position, then
    ``recovered ROOM COUNT``, or ``unrecoverable ROOM`` (joined from now on: reload); a bad position ->
    ``not joined ROOM: WHY``.
    """

    history = 0  # a class default too: subclasses that define their own __init__ keep working

    def __init__(self, history: int = 0) -> None:
        self.history = history

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        if isinstance(message, bytes) or not message.startswith("/"):
            conn.send(message)
            return
        command, _, rest = message.partition(" ")
        if command in ("/join", "/rejoin") and rest and self.history:
            try:
                self._join_history(conn, command, rest)
            except RuntimeError:  # a cluster: reading the history waits for Redis, so not on the loop thread
                threading.Thread(target=self._join_history, args=(conn, command, rest), daemon=True).start()
        elif command == "/join" and rest:
            join(conn, rest)
            conn.send_text(f"joined {rest}")
        elif command == "/joinas" and rest:
            room, _, name = rest.partition(" ")
            if len(name.encode()) > META_MAX_BYTES:
                conn.send_text(f"not joined {room}: a name is at most {META_MAX_BYTES} bytes of UTF-8")
                return
            leave(conn, room)  # a no-op unless a member: joining again is how the new name replaces the old one
            join(conn, room, name or None)
            conn.send_text(f"joined {room}")
        elif command == "/leave" and rest:
            leave(conn, rest)
            conn.send_text(f"left {rest}")
        elif command in ("/say", "/all") and rest:
            room, _, text = rest.partition(" ")
            if command == "/say":
                broadcast_except(room, text, conn)
            else:
                broadcast(room, text, conn.runtime)
        elif command == "/rooms" and not rest:
            conn.send_text(json.dumps(rooms_of(conn)))
        elif command == "/who" and rest:
            try:
                self._who(conn, rest)
            except RuntimeError:  # a room with no member here, asked on the loop thread: Redis is asked elsewhere
                threading.Thread(target=self._who, args=(conn, rest), name="snow-chat-who", daemon=True).start()
        elif command == "/id" and not rest:
            conn.send_text(f"id {conn.id}")
        else:
            conn.send(message)

    def _join_history(self, conn: Connection, command: str, rest: str) -> None:
        room, _, position = rest.partition(" ")
        configure_room(room, history_size=self.history, runtime=conn.runtime)
        try:
            if command == "/join":
                now = room_position(room, conn.runtime)  # first: the only call that may refuse the loop thread
                conn.send_text(f"joined {room}")
                join_from(conn, room, now.epoch, max(0, now.offset - self.history))
                return
            epoch, _, offset = position.partition(" ")
            if not offset.isdigit():
                conn.send_text(f"not joined {room}: /rejoin ROOM EPOCH OFFSET")
                return
            recovery = join_from(conn, room, epoch, int(offset))
            conn.send_text(f"recovered {room} {recovery.replayed}" if recovery.recovered else f"unrecoverable {room}")
        except InvalidArgumentError as exc:
            conn.send_text(f"not joined {room}: {exc}")
        except ConnectionClosedError:
            pass

    @staticmethod
    def _who(conn: Connection, room: str) -> None:
        members = [[m.id, m.node, m.meta] for m in presence(room, conn.runtime)]
        with contextlib.suppress(ConnectionClosedError):
            conn.send_text(f"who {room} {json.dumps(members)}")


class BenchApp(Handler):
    """The benchmark protocol: every connection joins room ``bench``; a text message starting with ``B`` is
    broadcast to the room (sender included); every other message is echoed with its type."""

    def on_connect(self, conn: Connection, path: str, headers: Headers) -> bool:
        join(conn, "bench")
        return True

    def on_message(self, conn: Connection, message: str | bytes) -> None:
        if message and message[0] == "B":  # text starting with B (an item of bytes is an int, never "B")
            broadcast("bench", message)
        else:
            conn.send(message)


APPS: dict[str, type[Handler]] = {"echo": EchoApp, "chat": ChatApp, "bench": BenchApp}
