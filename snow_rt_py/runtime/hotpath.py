"""The base class of :class:`~snow_rt_py.runtime.connection.Connection`: the C hot path, or its pure-Python stand-in.

``snow_rt_py.runtime._hotpath`` (``_hotpath.c``, built by ``make build``) defines ``ConnectionCore``: the fields one
message touches, as C members with the attribute names the Python code uses, and C versions of ``data_received``,
``send``, ``send_text``, ``send_binary``, ``send_utf8``, ``offer_frame`` and ``_flush`` for the common case (one or
more whole small frames per read on an open connection, replies queued on the loop thread). Every other case goes
to the Python methods of ``Connection`` (``_receive``, ``_send_any``, ...), which are the reference implementation.

Without the compiled module, or with ``SNOW_RT_PY_NO_SPEEDUPS=1`` in the environment (read once, at import),
:class:`PyConnectionCore` is the base instead: the same fields as ``__slots__``, and ``Connection`` uses its Python
methods under the public names. :data:`C_HOT_PATH` says which one runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

__all__ = ["C_HOT_PATH", "ConnectionCore", "PyConnectionCore", "fanout", "flush_all"]


class PyConnectionCore:
    """The fields of ``_hotpath.ConnectionCore``, in Python (the fallback base class of Connection)."""

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


Fanout = Callable[[list[Any], bytes, Any, int, bool], int]


FlushAll = Callable[[Any], None]


def _load() -> tuple[type[PyConnectionCore], bool, Fanout | None, FlushAll | None]:
    if os.environ.get("SNOW_RT_PY_NO_SPEEDUPS", "") not in ("", "0"):
        return PyConnectionCore, False, None, None
    try:
        from snow_rt_py.runtime import _hotpath  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - not built
        return PyConnectionCore, False, None, None
    return _hotpath.ConnectionCore, True, _hotpath.fanout, _hotpath.flush_dirty


if TYPE_CHECKING:
    ConnectionCore = PyConnectionCore
    C_HOT_PATH: bool
    fanout: Fanout | None
    """``fanout(members, frame, except_conn, count, write_now) -> failures``: RoomRegistry's member loop in C, or
    None."""
    flush_all: FlushAll | None
    """``flush_all(deque)``: Server._flush_dirty's loop in C, or None."""
else:
    ConnectionCore, C_HOT_PATH, fanout, flush_all = _load()
