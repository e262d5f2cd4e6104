"""What the parts of a connection see of each other, for the type checker only.

``Connection`` (connection.py) is put together from parts by job -- its sending and outbound queue
(outbound.py), its front door (frontdoor.py), its ways to end (teardown.py) -- over its base class, whose fields
the C part owns (connection_base.py). Each part is a class with no fields of its own (``__slots__ = ()``); for
mypy it derives from :class:`ConnectionFields`, which declares the connection's fields and the methods one part
calls in another. At run time the parts derive from ``object`` and ``Connection`` alone defines the fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from snow_rt_py.protocol import events as ev
    from snow_rt_py.protocol.connection import ServerProtocol
    from snow_rt_py.protocol.headers import Headers
    from snow_rt_py.runtime.compression import ConnectionDeflate
    from snow_rt_py.runtime.connection import Connection
    from snow_rt_py.runtime.connection_base import ConnectionCore, Phase
    from snow_rt_py.runtime.outbound import Held
    from snow_rt_py.runtime.scheduler import Actor, Tag
    from snow_rt_py.runtime.server import Server

    class ConnectionFields(ConnectionCore):
        """The fields and the cross-part methods of a Connection (type checking only)."""

        server: Server
        id: int
        path: str
        headers: Headers
        remote_address: tuple[str, int] | None
        pid: int
        subprotocol: str | None
        phase: Phase
        drops: int
        messages_out: int
        bytes_out: int
        max_queue_bytes: int
        _admitted: bool
        _loop: asyncio.AbstractEventLoop
        _loop_thread: int
        _proto: ServerProtocol
        _out: list[bytes]
        _out_bytes: int
        _transport: asyncio.Transport | None
        _actor: Actor | None
        _flush_pending: bool
        _in_read: bool
        _fast: bool
        _held: Held | None
        _timer: asyncio.TimerHandle | None
        _linger_left: int
        _deflate: ConnectionDeflate | None

        def as_connection(self) -> Connection: ...
        def _enter(self, phase: Phase, end: tuple[int, str] | None = None) -> bool: ...
        def _flush(self) -> None: ...
        def _handle(self, events: list[ev.Event]) -> None: ...
        def _call_on_loop(self, fn: Any, *args: Any) -> None: ...
        def _behave(self, tag: Tag, payload: Any) -> None: ...
        def _crash(self, exc: BaseException) -> None: ...
        def send_text(self, text: str) -> None: ...
        def send_binary(self, data: bytes | bytearray | memoryview) -> None: ...
        def offer_frame(self, frame: bytes, count: int = 1, payload: bytes | None = None) -> bool: ...
        # outbound.py
        def _refused(self) -> None: ...
        def _hold(self, item: tuple[Any, ...]) -> bool: ...
        def _drain_held(self) -> None: ...
        # frontdoor.py
        def _peer_ip(self) -> str: ...
        # teardown.py
        def _close_from_runtime(self, code: int, reason: str) -> bool: ...
        def _send_close_now(self, payload: bytes) -> None: ...
        def _cancel_timer(self) -> None: ...
        def _linger(self) -> None: ...
        def _finish(self) -> None: ...

else:
    ConnectionFields = object
