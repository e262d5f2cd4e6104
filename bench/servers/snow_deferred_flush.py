"""EXPERIMENT, not a product server: our server with inline handlers, but each read's replies are written at the
end of the loop iteration (one scheduled flush for every connection written to in the iteration, as worker mode
does) instead of right after the read.

It exists to measure one hypothesis from BENCHMARKS.md: on loopback, inline mode loses throughput because
nearly every write wakes a sleeping client (the load generator sees ~1 ready connection per wake-up), and that
wake-up is charged to the server's send. It patches private internals of ``snow_rt_py.runtime.connection``
(``data_received``), so it may break when they change; it changes nothing in the package itself.

Usage: the arguments of ``python -m snow_rt_py serve`` (it prints the same ``listening on`` line).
"""

from __future__ import annotations

import sys

from snow_rt_py.cli import main
from snow_rt_py.runtime.connection import Connection


def data_received(self: Connection, data: bytes) -> None:
    self._in_read = True
    try:
        self._handle(self._proto.receive_data(data))
    finally:
        self._in_read = False
        self.server.schedule_flush(self)  # instead of self._flush(): write at the end of the iteration


if __name__ == "__main__":
    Connection.data_received = data_received  # type: ignore[method-assign]
    sys.exit(main(["serve", *sys.argv[1:]]))
