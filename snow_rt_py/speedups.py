"""The one switch of the compiled parts: every layer asks here whether to use its C part.

Each C part speeds up one Python class in its own layer (``protocol/_protocol_core.c`` the protocol,
``runtime/_scheduler_core.c`` the scheduler's actors, ``runtime/_connection_core.c`` the connection; see
docs/ARCHITECTURE.md, "Where each rule lives"), and the Python class is the reference. With
``SNOW_RT_PY_NO_SPEEDUPS=1`` in the environment (read once, at import) or without the compiled modules, every
layer runs its Python reference alone: the pure-Python configuration, which the whole test suite also runs.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["DISABLED", "load"]

DISABLED: bool = os.environ.get("SNOW_RT_PY_NO_SPEEDUPS", "") not in ("", "0")
"""True when ``SNOW_RT_PY_NO_SPEEDUPS`` is set to anything but ``0``: no compiled part is used."""


def load(name: str) -> ModuleType | None:
    """The compiled module ``name``, or None when the speed-ups are disabled or that module was not built.

    A module that exists but fails to import (built for another Python, a C API version mismatch) raises: a
    broken build must not pass silently for the pure-Python configuration.
    """
    if DISABLED:
        return None
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None
