"""The base class of :class:`~snow_rt_py.protocol.connection.ServerProtocol`: its C part, or the Python stand-in.

``snow_rt_py.protocol._protocol_core`` (``_protocol_core.c``) defines ``ProtocolCore``: the fields the fast receive
of whole simple frames reads, as C members under the names the Python code uses, plus the C API the runtime's C
part calls for one read (``_protocol_core.h``: scan, unmask, UTF-8 check, bounded inflate, encode). Without it (see
:mod:`snow_rt_py.speedups`), :class:`PyProtocolCore` is the base instead: the same fields as ``__slots__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snow_rt_py import speedups

__all__ = ["C_PROTOCOL", "ProtocolCore", "PyProtocolCore", "configure"]


class PyProtocolCore:
    """The fields of ``_protocol_core.ProtocolCore``, in Python (the fallback base class of ServerProtocol)."""

    __slots__ = ("_buf", "_inflater", "_max_message_size", "_msg_opcode", "_stream", "close_sent", "state")


_c = speedups.load("snow_rt_py.protocol._protocol_core")

if TYPE_CHECKING:
    ProtocolCore = PyProtocolCore
else:
    ProtocolCore = PyProtocolCore if _c is None else _c.ProtocolCore

C_PROTOCOL: bool = _c is not None
"""True when ServerProtocol's base class is the C one."""


def configure(state_open: object) -> None:
    """Tell the C part which object is ``State.OPEN`` (called once, by protocol/connection.py)."""
    if _c is not None:
        _c.configure(state_open)
