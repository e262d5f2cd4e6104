"""snow_rt_py: Snow's WebSocket runtime in Python, with a C ABI.

The public Python API is re-exported here (see README.md).
"""

from __future__ import annotations

__version__ = "0.1.0"
